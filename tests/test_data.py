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


def _flips(ds, x):
    """How each served image relates to its original (unshuffled)."""
    kinds = []
    for i, (batch, _) in enumerate(ds):
        for got, image in zip(batch.numpy(), x[8 * i : 8 * i + 8]):
            kinds.append(
                "same"
                if np.array_equal(got, image)
                else "h"
                if np.array_equal(got, image[:, ::-1])
                else "other"
            )
    return kinds


def test_augment_reads_images_given_without_their_channel_axis():
    """`(N, H, W)` for `Input((H, W, 1))`, as Keras' `fit` takes them: the
    augmentation sees `(B, H, W, 1)` batches, not one image of height B;
    the batches keep the rank given (Keras adds the axis)."""
    x = np.random.default_rng(0).random((32, 5, 5), dtype="float32")
    y = np.arange(32)
    spec = keras.Input((5, 5, 1))
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    arrays = data.augmented_labelled(
        x, y, flip, 8, input_spec=spec, shuffle=False
    )
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    on_dataset = data.augmented_labelled(
        batches, None, flip, 8, input_spec=spec
    )
    for ds in (arrays, on_dataset):
        assert tuple(ds.element_spec[0].shape) == (None, 5, 5)
        kinds = _flips(ds, x)
        assert set(kinds) == {"same", "h"} and len(kinds) == 32
    # Another rank than the teacher's (less its axis of 1): refused.
    with pytest.raises(ValueError, match=r"x.shape=\(32, 5\)"):
        data.augmented_labelled(x[..., 0], y, flip, 8, input_spec=spec)
    with pytest.raises(ValueError, match=r"x.element_spec=.*shape=\(None, 5\)"):
        data.augmented_labelled(
            batches.map(lambda a, b: (a[..., 0], b)),
            None,
            flip,
            8,
            input_spec=spec,
        )
    with pytest.raises(ValueError, match=r"teacher takes \(None, 5, 5, 3\)"):
        data.augmented_labelled(
            x, y, flip, 8, input_spec=keras.Input((5, 5, 3))
        )


def test_augment_reads_a_dict_of_the_teachers_input():
    x = np.random.default_rng(0).random((16, 5, 5, 1), dtype="float32")
    y = np.arange(16)
    spec = keras.Input((5, 5, 1), name="image")
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    ds = data.augmented_labelled(
        {"image": x}, y, flip, 8, input_spec=spec, shuffle=False
    )
    assert set(_flips(ds, x)) == {"same", "h"}
    batches = tf.data.Dataset.from_tensor_slices(({"image": x}, y)).batch(8)
    ds = data.augmented_labelled(batches, None, flip, 8, input_spec=spec)
    assert set(_flips(ds, x)) == {"same", "h"}
    with pytest.raises(ValueError, match=r"Received: x with keys \['img'\]"):
        data.augmented_labelled({"img": x}, y, flip, 8, input_spec=spec)
    # Without the teacher's input (the positional call of the CIFAR-10
    # notebook): the inputs as given; a dict cannot be read.
    ds = data.augmented_labelled(x, y, flip, 8, False, 0)
    assert tuple(ds.element_spec[0].shape) == (None, 5, 5, 1)
    with pytest.raises(ValueError, match="input_spec="):
        data.augmented_labelled({"image": x}, y, flip, 8)


def test_inputs_lacking_the_teachers_axis_of_one_get_it_as_in_keras():
    """Keras' Functional model adds a missing trailing axis of 1: `(N,)`
    for `Input((1,))`, `(N, H, W)` for `Input((H, W, 1))`; a batched
    dataset of `(None,)` is batches of scalars, not one sample."""
    scalar = keras.Input((1,))
    x = np.arange(10, dtype="float32")
    batched = tf.data.Dataset.from_tensor_slices(x).batch(4)
    for form in (
        x,
        batched,
        tf.data.Dataset.from_tensor_slices((x, x)).batch(4),
        tf.data.Dataset.from_tensor_slices(x),  # unbatched scalars
    ):
        ds = data.batched_inputs(form, scalar, batch_size=4)
        assert tuple(ds.element_spec.shape) == (None, 1)
        np.testing.assert_array_equal(np.concatenate(list(ds)), x[:, None])
    assert data.dataset_batch_size(batched, scalar) == 4
    fixed = tf.data.Dataset.from_tensor_slices(x).batch(5, drop_remainder=True)
    assert data.dataset_batch_size(fixed, scalar) == 5
    assert len(list(data.batched_inputs(fixed, scalar, 4))) == 2
    images = np.random.default_rng(0).random((6, 3, 3), dtype="float32")
    channel = keras.Input((3, 3, 1))
    for form in (images, tf.data.Dataset.from_tensor_slices(images).batch(4)):
        ds = data.batched_inputs(form, channel, batch_size=4)
        assert tuple(ds.element_spec.shape) == (None, 3, 3, 1)
        np.testing.assert_array_equal(
            np.concatenate(list(ds)), images[..., None]
        )
    texts = tf.data.Dataset.from_tensor_slices(["a b", "c", "d e"]).batch(2)
    ds = data.batched_inputs(texts, keras.Input((1,), dtype="string"), 4)
    assert [tuple(b.shape) for b in ds] == [(2, 1), (1, 1)]
    # A variable-length sample of the teacher's shape stays a sample.
    sequence = tf.data.Dataset.from_tensor_slices(np.zeros((3, 5, 1)))
    ds = data.batched_inputs(sequence, keras.Input((None, 1)), 2)
    assert [tuple(b.shape) for b in ds] == [(2, 5, 1), (1, 5, 1)]
    with pytest.raises(ValueError, match=r"x.shape=\(10, 2\)"):
        data.batched_inputs(np.zeros((10, 2)), scalar, 4)


def test_a_loose_element_spec_is_one_sample():
    # A generator's `(None, None)` for `Input((8, 1))` is one sample of
    # unknown sizes (was read as a batch lacking the axis of 1); a fully
    # known `(None,)` for `Input((1,))` is a batch of scalars.
    assert data.element_layout((None, None), (8, 1)) == (False, False)
    assert data.element_layout((None, None, None), (5, 5, 1)) == (
        False,
        False,
    )
    assert data.element_layout((None,), (1,)) == (True, True)
    assert data.element_layout((None, 4, 4), (4, 4, 1)) == (True, True)
