"""`fit`-like inputs: datasets, labels, validation, batch sizes, the head.

What a Keras user passes to `fit` reaches the students as Keras would
treat it: a batched dataset's batches, labels paired with their own
inputs, `val_` losses of the training objective, `tc(x)` agreeing with
`tc.predict(x)`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import blobs
from helpers import mlp_teacher
from helpers import trained_mlp_teacher

from teacherclass import DenseTower
from teacherclass import TeacherClass
from teacherclass import data as data_lib
from teacherclass import features
from teacherclass import objectives

LABELS_ONLY = objectives.HeadAware(
    feature_weight=0.0, distill_weight=0.0, label_weight=1.0
)


@pytest.fixture(scope="module")
def data():
    return blobs(n=64, classes=3)


@pytest.fixture(scope="module")
def teacher(data):
    keras.utils.set_random_seed(0)
    return trained_mlp_teacher(*data, epochs=5)


def _class(teacher):
    keras.utils.set_random_seed(1)
    return TeacherClass(
        teacher, feature_layer="rep", num_students=2, student=DenseTower(8)
    )


def _fresh_class(x, y):
    """A class of two default students on a new teacher (one epoch), for
    tests that train or recompile the teacher."""
    keras.utils.set_random_seed(0)
    teacher = trained_mlp_teacher(x, y, epochs=1)
    return TeacherClass(teacher, feature_layer="rep", num_students=2)


def test_a_repeated_dataset_is_refused_not_read_forever(teacher, data):
    x, _ = data
    tc = _class(teacher)
    repeated = tf.data.Dataset.from_tensor_slices(x).batch(16).repeat()
    message = "`x` repeats forever: the teacher's targets are computed once"
    with pytest.raises(ValueError, match=message):
        tc.fit_students(repeated, epochs=1, steps_per_epoch=2, verbose=0)
    with pytest.raises(ValueError, match="`validation_data` repeats forever"):
        tc.fit_students(x, epochs=1, validation_data=repeated, verbose=0)


def test_labels_of_a_shuffled_dataset_stay_with_their_inputs(teacher, data):
    x, _ = data
    tc = _class(teacher)
    # The label is a function of the input: a mismatch shows.
    y = np.argsort(x[:, 0]).argsort().astype("int32")
    for ds in (
        tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64).batch(16),
        tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64),  # unbatched
    ):
        feats = features.representation(tc.cut, tc.chunks, ds, 16, labels=True)
        seen = 0
        for inputs, targets in feats.batches(16):
            rows = [
                int(np.flatnonzero((x == r).all(1))[0]) for r in inputs.numpy()
            ]
            np.testing.assert_array_equal(targets["labels"], y[rows])
            seen += len(rows)
        assert seen == 64


def test_validation_losses_include_the_label_term(teacher, data):
    x, y = data
    tc = _class(teacher)
    # Frozen students (learning rate 0): on the training data itself, the
    # validation loss is the training loss.
    history = tc.fit_students(
        x,
        y,
        epochs=1,
        batch_size=16,
        loss=LABELS_ONLY,
        optimizer=keras.optimizers.SGD(0.0),
        validation_data=(x, y),
        verbose=0,
    ).history
    assert history["loss"][0] > 0.1
    assert history["val_loss"][0] == pytest.approx(history["loss"][0], 1e-4)
    labelled = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = tc.fit_students(
        labelled,
        epochs=1,
        loss=LABELS_ONLY,
        optimizer=keras.optimizers.SGD(0.0),
        validation_data=labelled,
        verbose=0,
    ).history
    assert history["val_loss"][0] == pytest.approx(history["loss"][0], 1e-4)
    with pytest.raises(ValueError, match="validation_data of type ndarray wit"):
        tc.fit_students(
            x, y, epochs=1, loss=LABELS_ONLY, validation_data=x, verbose=0
        )


def test_labels_for_the_label_term_are_checked(teacher, data):
    x, y = data
    tc = _class(teacher)
    with pytest.raises(ValueError, match=r"outside \[0, 3\).*max=5"):
        tc.fit_students(x, np.full(64, 5), loss=LABELS_ONLY, verbose=0)
    one_hot = np.eye(3, dtype="float32")[y]
    one_hot[0, 0] = np.nan
    with pytest.raises(ValueError, match="the label term would be NaN"):
        tc.fit_students(x, one_hot, loss=LABELS_ONLY, verbose=0)
    with pytest.raises(ValueError, match=r"`validation_data\[1\]` holds cl"):
        tc.fit_students(
            x,
            y,
            loss=LABELS_ONLY,
            validation_data=(x, np.full(64, 7)),
            verbose=0,
        )
    assert tc.trained_students == []


def test_a_batched_dataset_keeps_its_batch_size(teacher, data):
    x, _ = data
    tc = _class(teacher)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(8)
    history = tc.fit_students(ds, epochs=1, loss="mse", verbose=0)
    assert history.params["steps"] == 8  # 64 samples in batches of 8
    history = tc.fit_students(ds, epochs=1, loss="mse", batch_size=32)
    assert history.params["steps"] == 2  # an explicit size wins
    # A generator is read once: its first batch is not spent on peeking.
    one_shot = tf.data.Dataset.from_generator(
        lambda: (x[i : i + 8] for i in range(0, 64, 8)),
        output_signature=tf.TensorSpec((None, 8), tf.float32),
    )
    assert data_lib.dataset_batch_size(one_shot, tc.teacher.inputs[0]) is None


def _teacher_to_train_on(teacher, x, y):
    """A compiled copy of `teacher` one epoch into training, for tests
    that train it further (a new head) behind a class's back."""
    teacher = keras.models.clone_model(teacher)
    teacher.set_weights(trained_mlp_teacher(x, y, epochs=1).get_weights())
    teacher.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return teacher


def test_fit_takes_the_teachers_new_head_as_predict_does(teacher, data):
    x, y = data
    teacher = _teacher_to_train_on(teacher, x, y)
    tc = _class(teacher)
    tc.fit_students(x, epochs=1, loss="mse", verbose=0)
    tc.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    targets = tc.predict(x, verbose=0)
    head = [w.copy() for w in tc.head.get_weights()]
    teacher.fit(x, y, epochs=2, verbose=0)  # new head weights
    tc.fit(x, targets, epochs=1, verbose=0)
    fresh = teacher.get_layer("out").get_weights()
    assert np.abs(head[-2] - fresh[0]).max() > 1e-4
    for got, want in zip(tc.head.get_weights()[-2:], fresh):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # A direct call uses the head as `predict` and `fit` last took it.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(tc(x[:8])),
        tc.predict(x[:8], verbose=0),
        atol=1e-6,
    )


@pytest.mark.parametrize("entry", ["call", "predict_on_batch"])
def test_a_direct_call_takes_the_head_of_a_teacher_trained_since(
    teacher, data, entry
):
    x, y = data
    teacher = _teacher_to_train_on(teacher, x, y)
    tc = _class(teacher)
    tc.fit_students(x, epochs=1, loss="mse", verbose=0)
    before = keras.ops.convert_to_numpy(tc(x[:8]))
    teacher.fit(x, y, epochs=2, verbose=0)  # new head weights
    if entry == "call":
        got = keras.ops.convert_to_numpy(tc(x[:8]))
    else:
        got = tc.predict_on_batch(x[:8])
    assert np.abs(got - before).max() > 1e-4
    np.testing.assert_allclose(got, tc.predict(x[:8], verbose=0), atol=1e-6)


def test_fit_teacher_with_augment_takes_sample_weights(data):
    x, y = data
    tc = _fresh_class(x, y)
    history = tc.fit_teacher(
        x,
        y,
        sample_weight=np.zeros(64, "float32"),
        augment=keras.layers.GaussianNoise(0.01),
        epochs=1,
        verbose=0,
    )
    assert history.history["loss"] == [0.0]  # every sample weighs zero
    with pytest.raises(ValueError, match="goes inside the dataset `x`"):
        tc.fit_teacher(
            tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
            sample_weight=np.zeros(64, "float32"),
            augment=keras.layers.GaussianNoise(0.01),
        )


def test_predict_is_float32_under_mixed_precision(data):
    x, y = data
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        tc = _fresh_class(x, y)
        tc.fit_students(x, epochs=1, loss="mse", verbose=0)
        assert tc.predict(x[:4], verbose=0).dtype == np.float32
        assert tc.compose().predict(x[:4], verbose=0).dtype == np.float32
    finally:
        keras.config.set_dtype_policy("float32")


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=16):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


def test_fit_teacher_reads_a_pydataset_and_a_generator(data):
    x, y = data
    tc = _fresh_class(x, y)
    history = tc.fit_teacher(
        _Batches(x, y), validation_data=_Batches(x, y), epochs=2, verbose=0
    )
    assert len(history.history["val_loss"]) == 2

    def batches():
        while True:
            yield x[:16], y[:16]

    history = tc.fit_teacher(batches(), steps_per_epoch=2, epochs=1)
    assert len(history.history["loss"]) == 1
    with pytest.raises(ValueError, match="Received: x of type _Batches"):
        tc.fit_teacher(_Batches(x, y), augment=keras.layers.GaussianNoise(0.1))
    tc.fit_students(x, epochs=1, loss="mse", verbose=0)
    with pytest.raises(ValueError, match="Received: x of type _Batches"):
        tc.refine(_Batches(x, y), None)


def test_an_uncompiled_teacher_takes_a_pydatasets_one_hot_labels(data):
    x, y = data
    keras.utils.set_random_seed(0)
    fresh = mlp_teacher()  # not compiled
    assert not fresh.compiled
    tc = TeacherClass(fresh, feature_layer="rep", num_students=2)
    one_hot = np.eye(3, dtype="float32")[y]
    history = tc.fit_teacher(_Batches(x, one_hot), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert isinstance(fresh.loss, keras.losses.CategoricalCrossentropy)


def test_sample_weights_in_the_data_are_refused_not_dropped(teacher, data):
    # `sample_weight=` is refused (students learn no labels); weights
    # inside the data were silently dropped.
    x, y = data
    tc = _class(teacher)
    w = np.zeros(len(x), "float32")
    message = "Sample weights weigh labels, and students learn no labels"
    triples = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(16)
    for kwargs, shown in (
        (dict(x=(x, y, w)), "Received: x as a tuple of 3"),
        (dict(x=triples), "Received: x.element_spec="),
        (
            dict(x=x, validation_data=(x, y, w)),
            "Received: validation_data=tuple of 3",
        ),
        (dict(x=x, validation_data=triples), "validation_data.element_spec"),
    ):
        with pytest.raises(ValueError, match=message) as info:
            tc.fit_students(epochs=1, verbose=0, **kwargs)
        assert shown in str(info.value)
    # No weights, as Keras' `fit` takes them: `(x, y, None)`.
    history = tc.fit_students(
        (x, y, None), validation_data=(x, y, None), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["val_loss"][0])


def test_a_dataset_of_one_tuples_has_no_labels(teacher, data):
    x, _ = data
    tc = _class(teacher)
    ones = tf.data.Dataset.from_tensor_slices((x,)).batch(16)
    with pytest.raises(ValueError, match="label term"):
        tc.fit_students(ones, loss=LABELS_ONLY, epochs=1, verbose=0)
    history = tc.fit_students(ones, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def _image_teacher(name="image"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 5, 1), name=name)
    h = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    r = keras.layers.GlobalAveragePooling2D(name="representation")(h)
    out = keras.layers.Dense(2, activation="softmax")(r)
    return keras.Model(inputs, out)


def test_fit_teacher_augments_images_without_channel_axis_or_in_a_dict():
    """Keras' `fit` takes `(N, H, W)` for `Input((H, W, 1))` and a dict
    keyed by the input's name; `augment` reads batches of `(B, H, W, 1)`
    either way (not one image of height B)."""
    x = np.random.default_rng(0).random((16, 5, 5), dtype="float32")
    y = np.arange(16) % 2
    seen = []

    def augment(images, training=False):
        seen.append(tuple(images.shape))  # traced once per pipeline
        return images

    tc = TeacherClass(_image_teacher(), num_students=2)
    tc.fit_teacher(x, y, augment=augment, epochs=1, verbose=0)
    assert seen == [(None, 5, 5, 1)]
    tc.fit_teacher({"image": x}, y, augment=augment, epochs=1, verbose=0)
    assert seen == [(None, 5, 5, 1)] * 2
    with pytest.raises(ValueError, match=r"x with keys \['pixels'\]"):
        tc.fit_teacher({"pixels": x}, y, augment=augment, verbose=0)


def test_a_dataset_of_scalar_batches_feeds_a_teacher_of_one_feature():
    """`Input((1,))` fed batches of shape `(None,)`, as Keras' `fit` takes
    them: read once as batches (labels too), not batched again."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1,))
    rep = keras.layers.Dense(4, activation="relu", name="rep")(inputs)
    teacher = keras.Model(inputs, keras.layers.Dense(3)(rep))
    x = np.random.default_rng(0).random(20, dtype="float32")
    y = np.arange(20) % 3
    tc = TeacherClass(
        teacher, feature_layer="rep", num_students=2, student=DenseTower(4)
    )
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    for form in (ds, x):
        history = tc.fit_students(form, epochs=1, loss="mse", verbose=0)
        assert np.isfinite(history.history["loss"][0])
    history = tc.fit_students(ds, epochs=1, loss=LABELS_ONLY, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_augment_keeps_the_rank_keras_fit_sees():
    """A teacher fit with `augment` on `(N, H, W)` images trains without
    it on the same arrays, and the reverse (a batch traced at another
    rank made Keras' retracing lose the shape); an extra trailing 1
    (`(N, H, W, 1)` for `Input((H, W))`, which Keras squeezes) passes."""
    x = np.random.default_rng(0).random((16, 5, 5), dtype="float32")
    y = np.arange(16) % 2
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    tc = TeacherClass(_image_teacher(), num_students=2)
    tc.fit_teacher(x, y, augment=flip, epochs=1, verbose=0)
    tc.fit_teacher(x, y, epochs=1, verbose=0)
    tc.fit_teacher(x, y, augment=flip, epochs=1, verbose=0)
    inputs = keras.Input((5, 5))
    rep = keras.layers.Dense(4, activation="relu", name="rep")(
        keras.layers.Flatten()(inputs)
    )
    flat = keras.Model(inputs, keras.layers.Dense(2)(rep))
    tc = TeacherClass(flat, feature_layer="rep", num_students=2)
    history = tc.fit_teacher(
        x[..., None], y, augment=lambda a, training: a, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
