import keras
import numpy as np
import pytest
import tensorflow as tf

from teacherclass import data

SPEC = keras.Input((4,))


def _count(ds):
    return sum(int(b.shape[0]) for b in ds)


@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: x,
        lambda x, y: (x, y),
        lambda x, y: list(x),
        lambda x, y: tf.data.Dataset.from_tensor_slices(x),
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)),
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(7),
        lambda x, y: tf.data.Dataset.from_tensor_slices(x).batch(7),
    ],
    ids=[
        "array",
        "tuple",
        "list",
        "unbatched",
        "unbatched-xy",
        "batched-xy",
        "batched",
    ],
)
def test_every_fit_input_form(make):
    x = np.arange(40, dtype="float32").reshape(10, 4)
    y = np.arange(10)
    ds = data.batched_inputs(make(x, y), SPEC, batch_size=4)
    batches = list(ds)
    assert tuple(batches[0].shape[1:]) == (4,)
    np.testing.assert_array_equal(np.concatenate(batches), x)


def test_float64_is_stored_as_float32():
    ds = data.batched_inputs(np.zeros((3, 4)), SPEC, batch_size=2)
    assert ds.element_spec.dtype == tf.float32


def test_shape_mismatch_names_argument_and_shape():
    with pytest.raises(ValueError) as info:
        data.batched_inputs(np.zeros((3, 5)), SPEC, 2, name="validation_data")
    message = str(info.value)
    assert "teacher expects (4,)" in message
    assert "Received: validation_data.shape=(3, 5)" in message


def test_dataset_shape_mismatch():
    ds = tf.data.Dataset.from_tensor_slices(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="yields samples of shape"):
        data.batched_inputs(ds, SPEC, 2)


def test_empty_inputs():
    with pytest.raises(ValueError, match=r"Received: x.shape=\(0, 4\)"):
        data.batched_inputs(np.zeros((0, 4)), SPEC, 2)
    empty = tf.data.Dataset.from_tensor_slices(np.zeros((0, 4), "float32"))
    with pytest.raises(ValueError, match="`x` is empty"):
        data.batched_inputs(empty, SPEC, 2)


def test_wrong_type():
    with pytest.raises(TypeError, match="Received: x of type dict"):
        data.batched_inputs({"a": 1}, SPEC, 2)
