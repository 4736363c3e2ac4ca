import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import PreemptedAfterFirstEpoch
from helpers import mlp_teacher

from teacherclass import DenseTower
from teacherclass import TeacherClass


def _tc(teacher, **kwargs):
    kwargs.setdefault("student", DenseTower(1, hidden=(16,)))
    return TeacherClass(teacher, **kwargs)


# --- construction and bad input --------------------------------------------


def test_defaults(teacher):
    tc = TeacherClass(teacher)
    assert tc.feature_layer == "rep"
    assert tc.chunks == (4, 4, 4, 4)
    assert tc.num_students == 4
    assert tc.clip == (0.0, None)  # the representation is post-ReLU
    assert [s.name for s in tc.students] == [f"student_{i}" for i in range(4)]
    assert all(isinstance(s, DenseTower) for s in tc.students)
    assert tc.trained_students == []


def test_uneven_split_keeps_every_feature(teacher):
    assert _tc(teacher, num_students=3).chunks == (6, 5, 5)


def test_unknown_feature_layer(teacher):
    with pytest.raises(ValueError, match="Received: feature_layer='dense_9'"):
        TeacherClass(teacher, feature_layer="dense_9")


@pytest.mark.parametrize("n", [0, 17])
def test_num_students_out_of_range(teacher, n):
    with pytest.raises(
        ValueError, match=f"feature width 16. Received: num_students={n}"
    ):
        TeacherClass(teacher, num_students=n)


def test_chunks_must_cover_the_width(teacher):
    with pytest.raises(ValueError, match=r"Received: chunks=\(8, 4\)"):
        TeacherClass(teacher, chunks=[8, 4])
    with pytest.raises(ValueError, match="must be positive integers"):
        TeacherClass(teacher, chunks=[16, 0])


def test_tower_with_wrong_width(teacher):
    with pytest.raises(
        ValueError,
        match=r"Student 1 outputs shape \(3,\) but "
        r"its chunk has shape \(8,\)",
    ):
        TeacherClass(
            teacher,
            num_students=2,
            student=lambda i, units: keras.layers.Dense(units if i == 0 else 3),
        )


def test_bad_clip(teacher):
    with pytest.raises(ValueError, match="Received: clip='relu'"):
        TeacherClass(teacher, clip="relu")


def test_data_shape_mismatch(teacher):
    tc = _tc(teacher)
    with pytest.raises(ValueError, match=r"Received: x.shape=\(10, 9\)"):
        tc.fit_students(np.zeros((10, 9), "float32"), verbose=0)


def test_empty_dataset(teacher):
    tc = _tc(teacher)
    empty = tf.data.Dataset.from_tensor_slices(np.zeros((0, 8), "float32"))
    with pytest.raises(ValueError, match="`x` is empty"):
        tc.fit_students(empty, verbose=0)
    unknown = tf.data.Dataset.from_tensor_slices(
        np.zeros((4, 8), "float32")
    ).filter(lambda x: False)
    with pytest.raises(ValueError, match="holds no sample"):
        tc.fit_students(unknown, verbose=0)


def test_bad_students_selection(teacher, data):
    tc = _tc(teacher)
    with pytest.raises(ValueError, match=r"Received: students=\[0, 4\]"):
        tc.fit_students(data[0], students=[0, 4], verbose=0)
    with pytest.raises(ValueError, match=r"Received: students=\[1, 1\]"):
        tc.fit_students(data[0], students=[1, 1], verbose=0)


def test_bad_loss(teacher, data):
    with pytest.raises(ValueError, match="Received: loss='hinge'"):
        _tc(teacher).fit_students(data[0], loss="hinge", verbose=0)


def test_compose_before_training(teacher, data):
    tc = _tc(teacher)
    tc.fit_students(data[0], students=[0, 2], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"students \[1, 3\] are not"):
        tc.compose()


def test_compose_fine_tune_needs_data(teacher, data):
    tc = _tc(teacher)
    tc.fit_students(data[0], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Received: x=None"):
        tc.compose(fine_tune=True)


def test_non_finite_teacher_features(data):
    teacher = mlp_teacher()
    bias = teacher.get_layer("rep").bias.numpy()
    bias[13] = np.inf
    teacher.get_layer("rep").bias.assign(bias)
    with pytest.raises(ValueError, match=r"chunk 3 \(student 3\): 256"):
        _tc(teacher).fit_students(data[0], verbose=0)


# --- training -----------------------------------------------------------------


def test_class_reaches_teacher_accuracy(teacher, data):
    x, y, x_test, y_test = data
    teacher_acc = teacher.evaluate(x_test, y_test, verbose=0)[1]
    assert teacher_acc > 0.9
    tc = _tc(teacher, num_students=4)
    history = tc.fit_students(
        x,
        epochs=40,
        batch_size=32,
        validation_data=(x_test, y_test),
        loss="mse",  # evaluate_students reports the MSE below
        verbose=0,
    )
    assert set(history.history) == {
        "loss",
        "val_loss",
        *(f"student_{i}_loss" for i in range(4)),
        *(f"val_student_{i}_loss" for i in range(4)),
    }
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    composed = tc.compose()
    composed_acc = composed.evaluate(x_test, y_test, verbose=0)[1]
    assert composed_acc >= teacher_acc - 0.05
    assert tc.evaluate(x_test, y_test, verbose=0)[1] == pytest.approx(
        composed_acc
    )
    # The composed model holds the students and the head only.
    report = tc.report()
    assert composed.count_params() == report["composed_params"]
    assert (
        report["composed_params"]
        == sum(s.count_params() for s in tc.students) + tc.head.count_params()
    )
    assert not {id(w) for w in composed.weights} & {
        id(w) for w in teacher.weights
    }
    errors = tc.evaluate_students(x_test)
    assert set(errors) == {"loss", *(f"student_{i}_loss" for i in range(4))}
    np.testing.assert_allclose(
        errors["loss"], history.history["val_loss"][-1], rtol=1e-4
    )


def test_one_pass_equals_independent_training(teacher, data):
    """Same initial weights, same batches, plain SGD: same weights."""
    x = data[0]
    tc = _tc(teacher, num_students=3)
    initial = [s.get_weights() for s in tc.students]
    sgd = dict(shuffle=False, batch_size=32, epochs=2, verbose=0)
    tc.fit_students(x, optimizer=keras.optimizers.SGD(0.1), **sgd)
    together = [s.get_weights() for s in tc.students]
    for s, w in zip(tc.students, initial):
        s.set_weights(w)
    alone = []
    for i in range(3):
        tc.fit_students(
            x, students=[i], optimizer=keras.optimizers.SGD(0.1), **sgd
        )
        alone.append(tc.students[i].get_weights())
    for i in range(3):
        assert any(
            not np.allclose(a, b) for a, b in zip(together[i], initial[i])
        )
        for a, b in zip(together[i], alone[i]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_subset_leaves_other_students_untouched(teacher, data):
    tc = _tc(teacher)
    before = [s.get_weights() for s in tc.students]
    history = tc.fit_students(data[0], students=[1, 3], epochs=1, verbose=0)
    assert set(history.history) == {"loss", "student_1_loss", "student_3_loss"}
    after = [s.get_weights() for s in tc.students]
    for i in (0, 2):
        for a, b in zip(before[i], after[i]):
            np.testing.assert_array_equal(a, b)
    assert tc.trained_students == [1, 3]


def test_teacher_is_not_changed_by_students(teacher, data):
    before = teacher.get_weights()
    tc = _tc(teacher)
    tc.fit_students(data[0], epochs=1, verbose=0)
    tc.compose(fine_tune=True, x=data[0], y=data[1], epochs=1, verbose=0)
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert teacher.trainable


@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: (x, y),
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)),
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
    ],
    ids=["tuple", "unbatched", "batched"],
)
def test_input_forms(teacher, data, make):
    tc = _tc(teacher)
    history = tc.fit_students(make(data[0], data[1]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_fine_tune_trains_the_head_only(teacher, data):
    x, y, _, _ = data
    tc = _tc(teacher)
    tc.fit_students(x, epochs=2, verbose=0)
    students = [s.get_weights() for s in tc.students]
    head = tc.head.get_weights()
    tc.compose(fine_tune=True, x=x, y=y, epochs=2, verbose=0)
    assert "accuracy" in tc.history.history
    for s, w in zip(tc.students, students):
        for a, b in zip(s.get_weights(), w):
            np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(tc.head.get_weights(), head)
    )


def test_fit_teacher_compiles_and_syncs_the_head(data):
    x, y, x_test, y_test = data
    teacher = mlp_teacher()
    tc = _tc(teacher)
    history = tc.fit_teacher(x, y, epochs=20, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    out = teacher.get_layer("out").get_weights()
    head = tc.head.get_weights()
    for a, b in zip(out, head):
        np.testing.assert_array_equal(a, b)


def test_callbacks(teacher, data, tmp_path):
    x, _, x_test, _ = data
    tc = _tc(teacher)
    checkpoint = tmp_path / "tc.keras"
    history = tc.fit_students(
        x,
        epochs=30,
        validation_data=x_test,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(
                "val_student_0_loss", mode="min", patience=0, min_delta=10.0
            ),
            keras.callbacks.ModelCheckpoint(checkpoint),
            keras.callbacks.TensorBoard(tmp_path / "logs"),
            keras.callbacks.BackupAndRestore(tmp_path / "backup"),
        ],
    )
    assert len(history.history["loss"]) == 2  # stopped early
    assert checkpoint.exists()
    assert any((tmp_path / "logs").rglob("events.out.tfevents*"))
    loaded = keras.saving.load_model(checkpoint)
    assert isinstance(loaded, TeacherClass)


def test_backup_and_restore_resumes(teacher, data, tmp_path):
    x = data[0]

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("preempted")

    class InterruptFirstEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("preempted")

    tc = _tc(teacher)
    with pytest.raises(RuntimeError, match="preempted"):
        tc.fit_students(
            x, epochs=4, verbose=0, callbacks=[InterruptFirstEpoch()]
        )
    assert tc.trained_students == []  # no epoch ended: nothing marked
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="preempted"):
        tc.fit_students(x, epochs=4, verbose=0, callbacks=[backup, Interrupt()])
    # Two epochs ended: the students are marked, as a checkpoint of them.
    assert tc.trained_students == [0, 1, 2, 3]
    history = tc.fit_students(x, epochs=4, verbose=0, callbacks=[backup])
    assert len(history.history["loss"]) == 2  # epochs 3 and 4 only
    assert tc.trained_students == [0, 1, 2, 3]


def test_mixed_bfloat16(data):
    keras.config.set_dtype_policy("mixed_bfloat16")
    x, y, x_test, y_test = data
    teacher = mlp_teacher()
    tc = _tc(teacher)
    tc.fit_teacher(x, y, epochs=20, verbose=0)
    assert tc.students[0].compute_dtype == "bfloat16"
    history = tc.fit_students(x, epochs=20, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    composed = tc.compose()
    assert composed.evaluate(x_test, y_test, verbose=0)[1] > 0.8


def test_text_teacher_gets_text_towers():
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential(
        [
            keras.Input((12,), dtype="int32"),
            keras.layers.Embedding(30, 4),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    tc = TeacherClass(teacher, num_students=2)
    x = np.random.default_rng(0).integers(0, 30, (40, 12)).astype("int32")
    tc.fit_students(x, epochs=1, verbose=0)
    composed = tc.compose()
    assert composed.predict(x, verbose=0).shape == (40, 1)


# --- save and load ------------------------------------------------------------


def test_config_round_trip(teacher):
    tc = _tc(teacher, chunks=[10, 6], clip=None)
    clone = TeacherClass.from_config(tc.get_config())
    assert clone.chunks == (10, 6)
    assert clone.clip is None
    assert [s.units for s in clone.students] == [10, 6]
    assert clone.feature_layer == "rep"


# --- students as independent jobs ---------------------------------------------


def test_students_saved_separately_compose_like_one(teacher, data, tmp_path):
    x, _, x_test, _ = data
    jobs = []
    for i in range(2):  # two "jobs", each training and saving one student
        tc = _tc(teacher, num_students=2)
        tc.fit_students(x, students=[i], epochs=2, verbose=0)
        assert tc.save_students(tmp_path) == [i]
        jobs.append(tc.students[i].get_weights())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "student_0.json",
        "student_0.keras",
        "student_1.json",
        "student_1.keras",
    ]
    tc = _tc(teacher, num_students=2)
    assert tc.load_students(tmp_path) == [0, 1]
    for i in range(2):
        for a, b in zip(tc.students[i].get_weights(), jobs[i]):
            np.testing.assert_array_equal(a, b)
    assert tc.compose().predict(x_test, verbose=0).shape == (128, 3)


def test_load_students_errors(teacher, data, tmp_path):
    x = data[0]
    tc = _tc(teacher, num_students=2)
    tc.fit_students(x, students=[0], epochs=1, verbose=0)
    tc.save_students(tmp_path)
    with pytest.raises(FileNotFoundError, match="Student 1 is missing"):
        _tc(teacher, num_students=2).load_students(tmp_path)
    with pytest.raises(FileExistsError, match="student_0.keras exists"):
        tc.save_students(tmp_path)
    with pytest.raises(ValueError, match=r"Students \[1\] were never trained"):
        tc.save_students(tmp_path, students=[1])
    # Another split of the same teacher: chunk 0 is (0, 6), not (0, 8).
    other = _tc(teacher, num_students=3)
    with pytest.raises(ValueError, match="Student 0 .* its chunk is"):
        other.load_students(tmp_path, students=[0])
    # All students: the one of another split is named, not a missing one.
    with pytest.raises(ValueError, match="Student 0 .* its chunk is"):
        other.load_students(tmp_path)
    # Another split whose first chunk is the same (0, 8): student 1 differs.
    tc.fit_students(x, students=[1], epochs=1, verbose=0)
    tc.save_students(tmp_path / "two")
    halves = _tc(teacher, chunks=(8, 4, 4))
    with pytest.raises(ValueError, match="Student 1 .* its chunk is"):
        halves.load_students(tmp_path / "two")
    (tmp_path / "two" / "student_1.json").unlink()
    (tmp_path / "two" / "student_1.keras").unlink()
    one = _tc(teacher, chunks=(8, 8))
    (tmp_path / "two" / "student_5.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="also holds student_5"):
        one.load_students(tmp_path / "two")
    # Another teacher (different weights).
    retrained = keras.models.clone_model(teacher)
    with pytest.raises(ValueError, match="teacher_trunk_digest"):
        _tc(retrained, num_students=2).load_students(tmp_path, students=[0])
    # Another tower.
    wide = _tc(teacher, num_students=2, student=DenseTower(1, hidden=(4,)))
    with pytest.raises(ValueError, match="different tower"):
        wide.load_students(tmp_path, students=[0])


# --- knowledge reuse ----------------------------------------------------------


def test_compose_with_a_new_head(teacher, data):
    x, y, x_test, y_test = data
    tc = _tc(teacher)
    tc.fit_students(x, epochs=20, verbose=0)
    students = [s.get_weights() for s in tc.students]
    new_y = (y == 0).astype("int32")  # another labelling of the same inputs
    head = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(2, activation="softmax")]
    )
    head.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    composed = tc.compose(
        head=head, fine_tune=True, x=x, y=new_y, epochs=30, verbose=0
    )
    accuracy = composed.evaluate(x_test, (y_test == 0), verbose=0)[1]
    assert accuracy > 0.9
    for s, w in zip(tc.students, students):
        for a, b in zip(s.get_weights(), w):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="must take the students'"):
        tc.compose(
            head=keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
        )


def _one_hot_fit(x, y, form):
    """`compose` fine-tuning arguments: one-hot labels beside or in `x`."""
    one_hot = keras.utils.to_categorical(y, 3)
    if form == "arrays":
        return dict(x=x, y=one_hot)
    return dict(x=tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(16))


@pytest.mark.parametrize("form", ["arrays", "dataset"])
def test_fine_tune_an_uncompiled_teacher_on_one_hot_labels(data, form):
    # An uncompiled teacher's default loss fits the labels, as in
    # `fit_teacher` (a sparse one failed on one-hot labels).
    x, y = data[0][:64], data[1][:64]
    tc = _tc(mlp_teacher(), num_students=2)
    tc.fit_students(x, epochs=1, loss="mse", verbose=0)
    composed = tc.compose(
        fine_tune=True, epochs=1, verbose=0, **_one_hot_fit(x, y, form)
    )
    assert isinstance(composed.loss, keras.losses.CategoricalCrossentropy)
    assert isinstance(tc.loss, keras.losses.CategoricalCrossentropy)


@pytest.mark.parametrize("form", ["arrays", "dataset"])
def test_refine_an_uncompiled_teacher_on_one_hot_labels(data, form):
    # The refined model is compiled for the labels it was refined on
    # (it was compiled with a sparse loss: evaluate failed on them).
    x, y = data[0][:64], data[1][:64]
    tc = _tc(mlp_teacher(), num_students=2)
    tc.fit_students(x, epochs=1, loss="mse", verbose=0)
    fit = _one_hot_fit(x, y, form)
    refined = tc.refine(fit["x"], fit.get("y"), epochs=1, verbose=0)
    assert isinstance(refined.loss, keras.losses.CategoricalCrossentropy)
    loss, _ = refined.evaluate(**fit, verbose=0)
    assert np.isfinite(loss)


@pytest.mark.parametrize("form", ["arrays", "dataset"])
def test_fine_tune_an_uncompiled_new_head_on_one_hot_labels(
    teacher, data, form
):
    # The default loss of an uncompiled head fits labels inside a dataset
    # too (it was chosen from `y` only: sparse for a dataset).
    x, y = data[0][:64], data[1][:64]
    tc = _tc(teacher, num_students=2)
    tc.fit_students(x, epochs=1, loss="mse", verbose=0)
    head = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(3, activation="softmax")]
    )
    composed = tc.compose(
        head=head,
        fine_tune=True,
        epochs=1,
        verbose=0,
        **_one_hot_fit(x, y, form),
    )
    assert isinstance(composed.loss, keras.losses.CategoricalCrossentropy)


# --- augmentation: the teacher runs on each augmented batch ------------------


class AddInTraining(keras.layers.Layer):
    """A deterministic 'augmentation': adds a constant in training only."""

    def __init__(self, shift, **kwargs):
        super().__init__(**kwargs)
        self.shift = shift

    def call(self, x, training=False):
        return x + self.shift if training else x


def test_augment_teacher_and_students_see_the_same_batch(teacher, data):
    """The teacher runs on the augmented batch the students train on.

    With a deterministic 'augmentation' (add 1 in training), training on
    `x` with `augment` is training on `x + 1` without: same losses, same
    weights. Evaluation does not augment.
    """
    x = data[0]
    fit = dict(epochs=3, batch_size=32, verbose=0)
    keras.utils.set_random_seed(0)
    augmented = _tc(teacher, num_students=2)
    history = augmented.fit_students(x, augment=AddInTraining(1.0), **fit)
    keras.utils.set_random_seed(0)
    shifted = _tc(teacher, num_students=2)
    expected = shifted.fit_students(x + 1.0, **fit)
    np.testing.assert_allclose(
        history.history["loss"], expected.history["loss"], rtol=1e-5
    )
    for a, b in zip(augmented.get_weights(), shifted.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert augmented.evaluate_students(x)["loss"] == pytest.approx(
        shifted.evaluate_students(x)["loss"], rel=1e-5
    )


def test_augment_random_targets_are_the_teachers_of_that_batch(teacher, data):
    """A random augmentation: the step's targets come from its own batch.

    Plain SGD, one step on one batch: the students' update equals the one
    computed by hand from the features of that augmented batch.
    """
    x = data[0][:16]
    tc = _tc(teacher, num_students=2)
    seen = []

    def augment(b, training=True):
        out = b + tf.random.normal(tf.shape(b))
        out = tf.numpy_function(
            lambda a: seen.append(a) or a, [out], tf.float32, stateful=True
        )
        return tf.ensure_shape(out, b.shape)

    initial = tc.get_weights()
    tc.fit_students(
        x,
        batch_size=16,
        epochs=1,
        shuffle=False,
        augment=augment,
        optimizer=keras.optimizers.SGD(0.1),
        verbose=0,
    )
    (x_aug,) = seen
    assert not np.allclose(x_aug, x)
    expected = _tc(teacher, num_students=2)
    expected.set_weights(initial)
    expected.fit_students(
        x_aug,
        batch_size=16,
        epochs=1,
        shuffle=False,
        optimizer=keras.optimizers.SGD(0.1),
        verbose=0,
    )
    for a, b in zip(tc.get_weights(), expected.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_augment_errors(teacher, data, tmp_path):
    tc = _tc(teacher)
    cache = str(tmp_path / "cache")
    with pytest.raises(ValueError, match="Received: augment=.*, cache="):
        tc.fit_students(data[0], augment=AddInTraining(1.0), cache=cache)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(TypeError, match="Received: augment='flip'"):
        tc.fit_students(data[0], augment="flip")


# --- the teacher's current weights (issue 11) ---------------------------------


def _head_kernel(model):
    return model.get_layer("head").get_layer("out").kernel.numpy()


def test_compose_takes_the_head_the_teacher_has_now(data):
    """A teacher trained with its own `fit` after wrapping gives its head."""
    x, y, _, _ = data
    teacher = mlp_teacher()
    tc = _tc(teacher, num_students=2)
    untrained = teacher.get_layer("out").kernel.numpy()
    teacher.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=2, verbose=0)
    trained = teacher.get_layer("out").kernel.numpy()
    assert not np.allclose(trained, untrained)
    tc.fit_students(x, epochs=1, verbose=0)
    np.testing.assert_array_equal(_head_kernel(tc.compose()), trained)
    np.testing.assert_array_equal(tc.head.get_layer("out").kernel, trained)
    # A head fine-tuned on an unchanged teacher is kept ...
    tc.compose(fine_tune=True, x=x, y=y, epochs=1, verbose=0)
    tuned = tc.head.get_layer("out").kernel.numpy()
    assert not np.allclose(tuned, trained)
    np.testing.assert_array_equal(_head_kernel(tc.compose()), tuned)
    # ... until the teacher changes again.
    teacher.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(
        _head_kernel(tc.compose()), teacher.get_layer("out").kernel
    )


def _trained_after_wrapping(data):
    """A class whose teacher was trained (its own `fit`) after wrapping,
    with MSE students (which never sync the head), and the new kernel."""
    x, y, _, _ = data
    teacher = mlp_teacher()
    tc = _tc(teacher, num_students=2)
    teacher.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=2, verbose=0)
    trained = teacher.get_layer("out").kernel.numpy()
    assert not np.allclose(tc.head.get_layer("out").kernel, trained)
    return tc, trained


def test_save_writes_the_head_the_teacher_has_now(data, tmp_path):
    x, y, _, _ = data
    tc, trained = _trained_after_wrapping(data)
    tc.fit_students(x, epochs=1, loss="mse", verbose=0)
    tc.save(tmp_path / "tc.keras")
    loaded = keras.saving.load_model(tmp_path / "tc.keras")
    np.testing.assert_array_equal(_head_kernel(loaded.compose()), trained)
    np.testing.assert_allclose(
        loaded.predict(x[:8], verbose=0), tc.predict(x[:8], verbose=0)
    )
    # Weights only, into a class of another (untrained) teacher.
    tc.save_weights(tmp_path / "tc.weights.h5")
    other = _tc(mlp_teacher(), num_students=2)
    other.load_weights(tmp_path / "tc.weights.h5")
    np.testing.assert_array_equal(_head_kernel(other.compose()), trained)
    # A head fine-tuned on the unchanged teacher is saved as tuned.
    tc.compose(fine_tune=True, x=x, y=y, epochs=1, verbose=0)
    tuned = tc.head.get_layer("out").kernel.numpy()
    assert not np.allclose(tuned, trained)
    tc.save(tmp_path / "tuned.keras")
    loaded = keras.saving.load_model(tmp_path / "tuned.keras")
    np.testing.assert_array_equal(_head_kernel(loaded.compose()), tuned)


def test_a_loaded_class_takes_the_head_its_teacher_is_trained_to(
    data, tmp_path
):
    """A class loaded from a file, then its teacher trained: predict and
    save take the new head (the first sync after loading used to take
    the trained teacher as the loaded pair). A head fine-tuned on the
    unchanged teacher before saving stays as loaded."""
    x, y, _, _ = data
    tc, _ = _trained_after_wrapping(data)
    tc.fit_students(x, epochs=1, loss="mse", verbose=0)
    tc.compose(fine_tune=True, x=x, y=y, epochs=1, verbose=0)
    tuned = tc.head.get_layer("out").kernel.numpy()
    tc.save(tmp_path / "tc.keras")
    tc.save_weights(tmp_path / "tc.weights.h5")
    loaded = keras.saving.load_model(tmp_path / "tc.keras")
    other = _tc(mlp_teacher(), num_students=2)
    other.load_weights(tmp_path / "tc.weights.h5")
    for c in (loaded, other):  # no sync before the teacher is trained
        np.testing.assert_array_equal(c.head.get_layer("out").kernel, tuned)
    loaded.teacher.fit(x, y, epochs=1, verbose=0)
    loaded.save(tmp_path / "again.keras")
    again = keras.saving.load_model(tmp_path / "again.keras")
    trained = loaded.teacher.get_layer("out").kernel.numpy()
    assert not np.allclose(trained, tuned)
    np.testing.assert_array_equal(again.head.get_layer("out").kernel, trained)
    other.teacher.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy"
    )
    other.teacher.fit(x, y, epochs=1, verbose=0)
    other.predict(x[:8], verbose=0)
    np.testing.assert_array_equal(
        other.head.get_layer("out").kernel,
        other.teacher.get_layer("out").kernel,
    )
    # Unchanged teacher: the tuned head loaded is kept.
    kept = keras.saving.load_model(tmp_path / "tc.keras")
    np.testing.assert_array_equal(_head_kernel(kept.compose()), tuned)


def test_backup_and_restore_keeps_the_head_the_teacher_has_now(data, tmp_path):
    x = data[0]
    tc, trained = _trained_after_wrapping(data)
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(RuntimeError):
        tc.fit_students(
            x,
            epochs=2,
            loss="mse",
            verbose=0,
            callbacks=[backup, PreemptedAfterFirstEpoch()],
        )
    # The resumed fit restores the class from the backup.
    tc.fit_students(x, epochs=2, loss="mse", verbose=0, callbacks=[backup])
    np.testing.assert_array_equal(_head_kernel(tc.compose()), trained)


def test_features_follow_the_teacher_between_calls(teacher, data):
    """Two fit_students calls: the second regresses the changed teacher."""
    x = data[0]
    changed = keras.models.clone_model(teacher)
    changed.set_weights(teacher.get_weights())
    sgd = dict(shuffle=False, epochs=1, verbose=0)
    tc = _tc(changed, num_students=2)
    initial = [s.get_weights() for s in tc.students]
    tc.fit_students(x, optimizer=keras.optimizers.SGD(0.1), **sgd)
    before = [s.get_weights() for s in tc.students]
    rep = changed.get_layer("rep")
    rep.bias.assign(rep.bias.numpy() + 1.0)
    for s, w in zip(tc.students, initial):
        s.set_weights(w)
    tc.fit_students(x, optimizer=keras.optimizers.SGD(0.1), **sgd)
    fresh = _tc(changed, num_students=2)
    for s, w in zip(fresh.students, initial):
        s.set_weights(w)
    fresh.fit_students(x, optimizer=keras.optimizers.SGD(0.1), **sgd)
    for i in range(2):
        for a, b in zip(
            tc.students[i].get_weights(), fresh.students[i].get_weights()
        ):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert any(
            not np.allclose(a, c)
            for a, c in zip(tc.students[i].get_weights(), before[i])
        )


# --- inputs checked before tracing (issue 11) ---------------------------------


def test_non_finite_inputs_are_named(teacher, data):
    x = data[0].copy()
    x[[3, 7, 9], 2] = np.nan
    x[11, 0] = np.inf
    tc = _tc(teacher)
    message = r"`x` holds non-finite values \(NaN or Inf\) in 4 of 256"
    with pytest.raises(ValueError, match=message):
        tc.fit_students(x, verbose=0)
    with pytest.raises(ValueError, match=message):
        tc.fit_students(tf.data.Dataset.from_tensor_slices(x), verbose=0)
    with pytest.raises(ValueError, match=message):
        tc.fit_students(x, augment=AddInTraining(0.0), verbose=0)
    with pytest.raises(ValueError, match="`validation_data` holds non-finite"):
        tc.fit_students(data[0], validation_data=(x, None), verbose=0)
    with pytest.raises(ValueError, match=message):
        tc.fit_teacher(x, data[1], verbose=0)
    assert tc.trained_students == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=0), "Received: epochs=0"),
        (dict(epochs=2.0), "Received: epochs=2.0"),
        (dict(batch_size=0), "Received: batch_size=0"),
        (dict(batch_size=True), "Received: batch_size=True"),
        (dict(steps_per_execution=0), "Received: steps_per_execution=0"),
        (dict(initial_epoch=-1), "Received: initial_epoch=-1"),
    ],
)
def test_counts_must_be_positive_integers(teacher, data, kwargs, message):
    tc = _tc(teacher)
    with pytest.raises(ValueError, match=message):
        tc.fit_students(data[0], verbose=0, **kwargs)
    assert tc.trained_students == []


def test_fit_teacher_counts(data):
    tc = _tc(mlp_teacher())
    with pytest.raises(ValueError, match="Received: epochs=0"):
        tc.fit_teacher(data[0], data[1], epochs=0)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        tc.fit_teacher(data[0], data[1], batch_size=0)


def test_strings_for_a_numeric_teacher(teacher):
    tc = _tc(teacher)
    strings = np.array([["a"] * 8] * 4)
    with pytest.raises(TypeError, match=r"`x` holds strings .*float32"):
        tc.fit_students(strings, verbose=0)
    with pytest.raises(TypeError, match=r"`x` holds strings .*float32"):
        tc.fit_students(tf.data.Dataset.from_tensor_slices(strings), verbose=0)
    with pytest.raises(TypeError, match=r"Received: x of dtype <U1"):
        tc.fit_teacher(strings, np.zeros(4, "int32"))


def test_fit_teacher_needs_labels(data):
    tc = _tc(mlp_teacher())
    with pytest.raises(ValueError, match="`y` is required.*Received: y=None"):
        tc.fit_teacher(data[0])
    unlabelled = tf.data.Dataset.from_tensor_slices(data[0]).batch(8)
    with pytest.raises(ValueError, match="`y` is missing"):
        tc.fit_teacher(unlabelled)


@pytest.mark.parametrize("bad, shown", [(3, "max=3"), (-1, "min=-1")])
def test_labels_beyond_the_head(data, bad, shown):
    x, y, _, _ = data
    y = y.copy()
    y[5] = bad
    tc = _tc(mlp_teacher())
    with pytest.raises(ValueError, match=rf"`y` .*3 outputs.*{shown}"):
        tc.fit_teacher(x, y)
    with pytest.raises(ValueError, match=rf"`validation_data` .*{shown}"):
        tc.fit_teacher(x, data[1], validation_data=(x, y))
    tc.fit_students(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=rf"`y` .*{shown}"):
        tc.compose(fine_tune=True, x=x, y=y)


@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: (x, y),
        lambda x, y: [x, y],
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
        lambda x, y: x,
    ],
    ids=["tuple", "list", "dataset", "inputs"],
)
def test_validation_data_forms(teacher, data, make):
    _, _, x_test, y_test = data
    history = _tc(teacher).fit_students(
        data[0], validation_data=make(x_test, y_test), verbose=0
    )
    assert np.isfinite(history.history["val_loss"][0])


def test_validation_batch_size(teacher, data):
    x_val = data[2][:10]
    sizes = []

    class Sizes(keras.callbacks.Callback):
        def on_test_batch_begin(self, batch, logs=None):
            sizes.append(batch)

    tc = _tc(teacher, num_students=2)
    history = tc.fit_students(
        data[0][:64],
        loss="mse",  # as `evaluate_students` scores
        verbose=0,
        validation_data=x_val,
        validation_batch_size=4,
        validation_steps=1,
        callbacks=[Sizes()],
    )
    assert sizes == [0]  # one step of 4 samples, not of 32
    assert history.history["val_loss"][0] == pytest.approx(
        tc.evaluate_students(x_val[:4])["loss"], rel=1e-5
    )
    with pytest.raises(ValueError, match="Received: validation_batch_size=0"):
        tc.fit_students(data[0], validation_data=x_val, validation_batch_size=0)


def test_validation_data_of_one(teacher, data):
    with pytest.raises(
        ValueError, match=r"Received: validation_data=tuple of 1"
    ):
        _tc(teacher).fit_students(
            data[0], validation_data=(data[2],), verbose=0
        )


def test_refused_validation_data_leaves_the_statistics_unfitted(teacher, data):
    x, x_test = data[0][:64], data[2]
    tc = _tc(teacher, num_students=2, conditioning="standardize")
    with pytest.raises(ValueError, match="validation_data=tuple of 1"):
        tc.fit_students(x, validation_data=(x_test,), verbose=0)
    assert not tc.conditioning_fitted
    with pytest.raises(ValueError, match="validation_data"):
        tc.fit_students(x, validation_data=x_test[:, :5], verbose=0)
    assert not tc.conditioning_fitted
    tc.fit_students(x, validation_data=x_test, verbose=0)
    assert tc.conditioning_fitted


def test_compose_keeps_the_layers_the_user_froze(data, tmp_path):
    from teacherclass.teacher import freeze_through

    x, y = data[0], data[1]
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="stem")(inputs)
    h = keras.layers.Dense(16, activation="relu", name="rep")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    teacher = keras.Model(inputs, outputs)
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=1, verbose=0)
    freeze_through(teacher, "stem")
    tc = _tc(teacher, num_students=2, student_input="stem")
    tc.fit_students(x, epochs=1, verbose=0)
    tc.compose(fine_tune=True, x=x, y=y, epochs=1, verbose=0)
    assert not teacher.get_layer("stem").trainable
    assert teacher.get_layer("rep").trainable  # as it was
    tc.save(tmp_path / "tc.keras")  # refused with an unfrozen stem
    keras.saving.load_model(tmp_path / "tc.keras")


def test_a_checkpoint_of_the_first_fit_composes(teacher, data, tmp_path):
    x = data[0]
    tc = _tc(teacher, num_students=2)
    checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / "ck.keras")
    tc.fit_students(x, epochs=1, verbose=0, callbacks=[checkpoint])
    # (Weights alone: test_training's ModelCheckpoint test.)
    saved = keras.saving.load_model(tmp_path / "ck.keras")
    assert saved.trained_students == [0, 1]
    np.testing.assert_allclose(
        saved.compose().predict(x[:8], verbose=0),
        tc.compose().predict(x[:8], verbose=0),
        rtol=1e-6,
    )


def test_students_made_by_a_callable_load_in_another_process(
    teacher, data, tmp_path
):
    # Each class built here makes new towers, so Keras names them anew
    # (dense_tower, dense_tower_4, ...), as in another process.
    x = data[0]

    def make(i, units):
        return DenseTower(units, hidden=(8,))

    for i in (0, 1):
        job = TeacherClass(teacher, num_students=2, student=make)
        job.fit_students(x, students=[i], epochs=1, verbose=0)
        job.save_students(tmp_path)
    loaded = TeacherClass(teacher, num_students=2, student=make)
    assert loaded.load_students(tmp_path) == [0, 1]
    wider = TeacherClass(
        teacher, num_students=2, student=lambda i, u: DenseTower(u, hidden=(9,))
    )
    with pytest.raises(ValueError, match="different tower"):
        wider.load_students(tmp_path)


def test_save_students_replaces_statistics_only_with_every_student(
    teacher, data, tmp_path
):
    x = data[0]
    first = _tc(teacher, num_students=2, conditioning="standardize")
    first.fit_students(x, epochs=1, verbose=0)
    first.save_students(tmp_path, students=[0])
    # The same pipeline on other data: other target statistics.
    second = _tc(teacher, num_students=2, conditioning="standardize")
    second.fit_students(x[:64] * 2.0, epochs=1, verbose=0)
    assert second.conditioning_digest() != first.conditioning_digest()
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"students \[0\] there regressed"):
            second.save_students(tmp_path, students=[1], overwrite=overwrite)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "conditioning.npz", "student_0.json", "student_0.keras"
    ]  # fmt: skip
    assert second.save_students(tmp_path, overwrite=True) == [0, 1]
    loaded = _tc(teacher, num_students=2, conditioning="standardize")
    assert loaded.load_students(tmp_path) == [0, 1]
    assert loaded.conditioning_digest() == second.conditioning_digest()
    # Statistics left alone in a folder: replaced only under overwrite.
    for name in ("student_0", "student_1"):
        for ext in (".json", ".keras"):
            (tmp_path / (name + ext)).unlink()
    with pytest.raises(ValueError, match="pass overwrite=True"):
        first.save_students(tmp_path)
    assert first.save_students(tmp_path, overwrite=True) == [0, 1]


def test_load_students_checks_every_student_before_changing_the_class(
    teacher, data, tmp_path
):
    x = data[0][:32]
    jobs = {}
    for name, x_job, student in (
        ("a", x, None),
        ("b", x * 2.0, None),  # other data: other target statistics
        ("c", x, DenseTower(1, hidden=(4,))),  # the statistics of "a"
    ):
        kwargs = {} if student is None else {"student": student}
        job = _tc(teacher, num_students=2, conditioning="standardize", **kwargs)
        job.fit_students(x_job, epochs=1, verbose=0)
        job.save_students(tmp_path / name)
        jobs[name] = job
    assert jobs["a"].conditioning_digest() == jobs["c"].conditioning_digest()
    for other, match in (
        ("b", r"Student 1 .* regressed conditioned targets .* holds other"),
        ("c", "Student 1 .* different tower"),
    ):
        gathered = tmp_path / f"a_{other}"
        gathered.mkdir()
        for path in (tmp_path / "a").iterdir():
            if not path.name.startswith("student_1"):
                (gathered / path.name).write_bytes(path.read_bytes())
        for ext in (".json", ".keras"):
            name = "student_1" + ext
            (gathered / name).write_bytes(
                (tmp_path / other / name).read_bytes()
            )
        fresh = _tc(teacher, num_students=2, conditioning="standardize")
        with pytest.raises(ValueError, match=match):
            fresh.load_students(gathered)
        # Refused: the class holds neither weights nor statistics.
        assert not fresh.conditioning_fitted
        assert fresh.trained_students == []


def test_load_students_ignores_the_dtype_policy(teacher, data, tmp_path):
    x = data[0][:32]
    keras.config.set_dtype_policy("mixed_bfloat16")
    job = _tc(teacher, num_students=2)
    job.fit_students(x, epochs=1, verbose=0)
    job.save_students(tmp_path)
    keras.config.set_dtype_policy("float32")
    tc = _tc(teacher, num_students=2)
    assert tc.load_students(tmp_path) == [0, 1]
    for a, b in zip(
        tc.students[0].get_weights(), job.students[0].get_weights()
    ):
        np.testing.assert_array_equal(a, b)
    # What does differ is named, saved and here.
    wide = _tc(teacher, num_students=2, student=DenseTower(1, hidden=(4,)))
    with pytest.raises(
        ValueError,
        match=r"different tower than this class's: hidden=\(16,\) saved, "
        r"\(4,\) here\. Received: directory=",
    ):
        wide.load_students(tmp_path)


def test_a_failed_save_students_leaves_the_directory_as_it_was(
    teacher, data, tmp_path, monkeypatch
):
    x = data[0][:32]
    first = _tc(teacher, num_students=2, conditioning="standardize")
    first.fit_students(x, epochs=1, verbose=0)
    first.save_students(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    second = _tc(teacher, num_students=2, conditioning="standardize")
    second.fit_students(x * 2.0, epochs=1, verbose=0)
    save = keras.Model.save

    def full_disk(model, filepath, *args, **kwargs):
        if "student_1" in str(filepath):
            raise OSError(28, "No space left on device")
        return save(model, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        second.save_students(tmp_path, overwrite=True)
    monkeypatch.undo()
    # Every file as it was, and no temporary left behind.
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    loaded = _tc(teacher, num_students=2, conditioning="standardize")
    assert loaded.load_students(tmp_path) == [0, 1]
    assert loaded.conditioning_digest() == first.conditioning_digest()


def test_representation_is_float32_under_mixed_bfloat16(data):
    keras.config.set_dtype_policy("mixed_bfloat16")
    x = data[0][:32]
    tc = _tc(mlp_teacher(), num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    rep = tc.representation().predict(x, verbose=0)
    assert rep.dtype == "float32"  # as predict's and compose()'s
    assert tc.compose().predict(x, verbose=0).dtype == "float32"
    # A new head still reads the students' outputs uncast: they fuse.
    head = keras.Sequential([keras.layers.Dense(2, activation="softmax")])
    assert tc.compose(head=head, fuse="grouped").fusion.mode == "grouped"


def _rep_teacher():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(12, activation="relu", name="rep"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def test_compose_falls_back_when_a_compile_config_does_not_load():
    # A loss of one's own, not registered: the config serializes but does
    # not load; compose falls back to defaults instead of failing.
    def my_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.abs(y_true - y_pred))

    teacher = _rep_teacher()
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    tc = TeacherClass(teacher, feature_layer="rep", num_students=2)
    tc.fit_students(x, epochs=1, verbose=0, batch_size=16)
    head = keras.Sequential([keras.Input((12,)), keras.layers.Dense(1)])
    head.compile("adam", loss=my_loss)
    assert tc.compose(head=head).compiled
    teacher.compile("adam", loss=my_loss)
    composed = tc.compose()
    assert composed.compiled
    assert composed.evaluate(x, np.arange(32) % 3, verbose=0) is not None

    class Warm(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):  # no get_config: NotImplementedError
            return 1e-3

    teacher.compile(keras.optimizers.Adam(Warm()), "mse")
    assert tc.compose().compiled


def test_compose_takes_a_head_of_two_outputs():
    teacher = _rep_teacher()
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    tc = TeacherClass(teacher, feature_layer="rep", num_students=2)
    tc.fit_students(x, epochs=1, verbose=0, batch_size=16)
    i = keras.Input((12,))
    head = keras.Model(
        i,
        [
            keras.layers.Dense(2, activation="softmax", name="a")(i),
            keras.layers.Dense(1, name="b")(i),
        ],
    )
    head.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        composed = tc.compose(head=head)
    finally:
        keras.config.set_dtype_policy("float32")
    assert [tuple(o.shape) for o in composed.outputs] == [(None, 2), (None, 1)]
    a, b = composed.predict(x[:4], verbose=0)
    assert a.shape == (4, 2) and b.shape == (4, 1)


def test_conditioning_runs_eagerly_under_mixed_precision():
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        teacher = _rep_teacher()
        tc = TeacherClass(
            teacher,
            feature_layer="rep",
            num_students=2,
            conditioning="standardize",
        )
        tc.fit_students(x, epochs=1, verbose=0, batch_size=16)
        eager = keras.ops.convert_to_numpy(tc(x[:4]))
    finally:
        keras.config.set_dtype_policy("float32")
    np.testing.assert_allclose(eager, tc.predict(x[:4], verbose=0), atol=1e-2)
