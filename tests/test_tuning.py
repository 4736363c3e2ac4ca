import builtins
import importlib
import os
import sys

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from helpers import blobs
from helpers import mlp_teacher
from helpers import trained_mlp_teacher

from teacherclass import towers
from teacherclass import tuning


@pytest.fixture(scope="module")
def teacher():
    keras.utils.set_random_seed(0)
    x, y = blobs(n=192, classes=3, shape=(8,))
    return trained_mlp_teacher(x, y, epochs=20, width=8)


def _random_search(hypermodel, directory, max_trials):
    return keras_tuner.RandomSearch(
        hypermodel,
        objective=keras_tuner.Objective("val_accuracy", "max"),
        max_trials=max_trials,
        seed=0,
        directory=directory.parent,
        project_name=directory.name,
    )


def test_search_keeps_every_trial_and_passes_callbacks(teacher, tmp_path):
    x, y = blobs(n=192, classes=3, shape=(8,))

    class Counting(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            Counting.epochs += 1
            assert "student_0_loss" in logs  # the students' fit ran it

    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1, 2), units=(4, 8), max_params=10_000
    )
    assert isinstance(hypermodel, keras_tuner.HyperModel)
    assert isinstance(hypermodel, tuning.StudentHyperModel)
    tuner = _random_search(hypermodel, tmp_path / "students", max_trials=2)
    tuner.search(
        x[:128],
        y[:128],
        validation_data=(x[128:], y[128:]),
        epochs=2,
        verbose=0,
        callbacks=[Counting()],
    )
    rows = tuning.trial_results(tuner)
    assert len(rows) == 2 == len(hypermodel.trials)
    for row in rows:
        assert 0.0 <= row["val_accuracy"] <= 1.0
        assert row["params"] > row["student_params"] > 0
        assert row["latency_ms"] > 0
        assert set(row["hyperparameters"]) == {"num_students", "units"}
    assert Counting.epochs == 4  # 2 trials x 2 epochs
    # Both trials read one representation cache: the teacher ran once.
    (folder,) = os.listdir(hypermodel.cache_dir)
    meta = os.path.join(hypermodel.cache_dir, folder, "teacherclass-cache.json")
    assert hypermodel.cache is None and os.path.exists(meta)
    front = tuning.pareto_front(tuner)
    assert 1 <= len(front) <= 2
    best = tuner.get_best_models(1)[0]  # reloads the saved students
    assert best.predict(x[:4], verbose=0).shape == (4, 3)
    # The best epoch's weights were saved with the students marked
    # trained: the reloaded class composes.
    assert best.trained_students == list(range(best.num_students))
    assert best.compose().predict(x[:4], verbose=0).shape == (4, 3)

    # The same hypermodel searches other data: a cache of its own.
    again = _random_search(hypermodel, tmp_path / "other_data", max_trials=1)
    again.search(x[64:], y[64:], validation_data=(x[:64], y[:64]), epochs=1,
                 verbose=0)  # fmt: skip
    assert len(tuning.trial_results(again)) == 1
    assert len(hypermodel.trials) == 3
    assert len(os.listdir(hypermodel.cache_dir)) == 2


def _student_params(teacher, num_students, units):
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(num_students,), units=(units,)
    )
    return tuning._student_params(
        hypermodel.build(keras_tuner.HyperParameters())
    )


def test_over_budget_trials_fail_untrained_and_are_never_best(
    teacher, tmp_path
):
    x, y = blobs(n=64, classes=3, shape=(8,))
    one, two = _student_params(teacher, 1, 4), _student_params(teacher, 2, 4)
    assert one < two
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1, 2), units=(4,), max_params=one
    )
    hp = keras_tuner.HyperParameters()
    hp.Choice("num_students", (1, 2), default=2)
    with pytest.raises(
        keras_tuner.errors.FailedTrialError,
        match=f"Received: student_params={two}, max_params={one}",
    ):
        hypermodel.build(hp)

    tuner = _random_search(hypermodel, tmp_path / "budget", max_trials=2)
    tuner.search(x, validation_data=(x, y), epochs=1, verbose=0)
    statuses = sorted(t.status for t in tuner.oracle.trials.values())
    assert statuses == ["COMPLETED", "FAILED"]
    failed = next(
        t for t in tuner.oracle.trials.values() if t.status == "FAILED"
    )
    assert f"max_params={one}" in failed.message
    # Only the trained trial has results, and it is the best one.
    assert [r["student_params"] for r in tuning.trial_results(tuner)] == [one]
    assert [r["student_params"] for r in hypermodel.trials] == [one]
    assert len(tuning.pareto_front(tuner)) == 1
    best = tuner.get_best_models(1)[0]
    assert best.num_students == 1 and best.trained_students == [0]
    # The failed trial has no model: asking for it says why.
    with pytest.raises(
        keras_tuner.errors.FailedTrialError, match=f"max_params={one}"
    ):
        tuner.get_best_models(2)


def test_a_budget_no_choice_fits_is_refused_when_the_tuner_is_made(
    teacher, tmp_path
):
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1, 2), units=(4, 8), max_params=10
    )
    with pytest.raises(ValueError, match="Received: max_params=10"):
        _random_search(hypermodel, tmp_path / "none_fit", max_trials=2)


def test_validation_data_may_be_a_dataset(teacher, tmp_path):
    x, y = blobs(n=48, classes=3, shape=(8,))
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(4,), latency_batch=2
    )
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    for name, val in (
        ("arrays", (x, y)),
        ("batched", batched),
        ("unbatched", unbatched),
    ):
        keras.utils.set_random_seed(0)  # the same students each time
        tuner = _random_search(hypermodel, tmp_path / name, max_trials=1)
        tuner.search(x, validation_data=val, epochs=1, verbose=0)
        (row,) = tuning.trial_results(tuner)
        assert row["latency_ms"] > 0
    # Each scores the same students on the same samples.
    accuracies = [r["val_accuracy"] for r in hypermodel.trials]
    assert len(accuracies) == 3 and len(set(accuracies)) == 1


@pytest.mark.parametrize(
    "validation_data, message",
    [
        ({"x": 0}, "validation_data of type dict"),
        (np.zeros((4, 8)), "validation_data of type ndarray"),
        (
            tf.data.Dataset.from_tensor_slices(np.zeros((4, 8))),
            "validation_data.element_spec=",
        ),
        (
            tf.data.Dataset.from_tensor_slices(
                (np.zeros((4, 8)), np.zeros(4))
            ).repeat(),
            "infinite",
        ),
        ((np.zeros((0, 8)), np.zeros(0)), "holds no sample"),
    ],
    ids=["dict", "array", "no_labels", "repeated", "empty"],
)
def test_unsupported_validation_data_is_refused(
    teacher, validation_data, message
):
    hypermodel = tuning.StudentHyperModel(teacher, num_students=(1,))
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    with pytest.raises(ValueError, match=message):
        hypermodel.fit(
            hp, model, np.zeros((4, 8)), validation_data=validation_data
        )


def test_validation_data_is_required(teacher):
    hypermodel = tuning.StudentHyperModel(teacher, num_students=(1,))
    hp = keras_tuner.HyperParameters()
    with pytest.raises(ValueError, match="Received: validation_data=None"):
        hypermodel.fit(hp, hypermodel.build(hp), np.zeros((4, 8)))


def test_bad_choices(teacher):
    with pytest.raises(ValueError, match=r"Received: units=\(\)"):
        tuning.StudentHyperModel(teacher, units=())
    with pytest.raises(ValueError, match="Received: max_params=0"):
        tuning.StudentHyperModel(teacher, max_params=0)
    with pytest.raises(ValueError, match="Received: latency_batch=0"):
        tuning.StudentHyperModel(teacher, latency_batch=0)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        tuning.StudentHyperModel(teacher, batch_size=0)


def test_numpy_integer_choices_are_taken(teacher):
    hypermodel = tuning.StudentHyperModel(
        teacher,
        num_students=np.array([2, 1]),
        units=(np.int64(4),),
        max_params=np.int64(10_000),
        latency_batch=np.int32(2),
    )
    assert hypermodel.num_students == [1, 2]
    assert hypermodel.max_params == 10_000
    assert all(type(v) is int for v in hypermodel.num_students)
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert model.num_students == 1


def test_a_teacher_compiled_with_acc_is_scored(tmp_path):
    x, y = blobs(n=32, classes=3, shape=(8,))
    teacher = mlp_teacher(width=4)
    teacher.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(2,)
    )
    hp = keras_tuner.HyperParameters()
    result = hypermodel.fit(
        hp, hypermodel.build(hp), x, validation_data=(x, y), verbose=0
    )
    assert 0.0 <= result["val_accuracy"] <= 1.0
    # A teacher without any accuracy is refused before any trial trains.
    teacher.compile("adam", "sparse_categorical_crossentropy", metrics=["mae"])
    with pytest.raises(
        ValueError,
        match=r"Received: teacher compiled with metrics=\['mae'\], "
        r"weighted_metrics=\[\]",
    ):
        tuning.StudentHyperModel(teacher)


def test_a_teacher_with_a_weighted_accuracy_is_scored():
    # `weighted_metrics=["accuracy"]` reports "accuracy" too.
    x, y = blobs(n=32, classes=3, shape=(8,))
    teacher = mlp_teacher(width=4)
    teacher.compile(
        "adam", "sparse_categorical_crossentropy", weighted_metrics=["accuracy"]
    )
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(2,)
    )
    hp = keras_tuner.HyperParameters()
    result = hypermodel.fit(
        hp,
        hypermodel.build(hp),
        x,
        validation_data=(x, y, np.ones(len(y))),
        verbose=0,
    )
    assert 0.0 <= result["val_accuracy"] <= 1.0


def test_batch_size_none_takes_the_datasets_batches(teacher):
    x, y = blobs(n=32, classes=3, shape=(8,))
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(2,), batch_size=None
    )
    assert hypermodel.batch_size is None
    hp = keras_tuner.HyperParameters()
    result = hypermodel.fit(
        hp,
        hypermodel.build(hp),
        tf.data.Dataset.from_tensor_slices(x).batch(16),
        # Unbatched: batched by 32, there being no batch size.
        validation_data=tf.data.Dataset.from_tensor_slices((x, y)),
        verbose=0,
    )
    assert 0.0 <= result["val_accuracy"] <= 1.0


def test_best_models_leave_the_teacher_trained_on_since(tmp_path):
    x, y = blobs(n=32, classes=3, shape=(8,))
    teacher = mlp_teacher(width=4)
    searched = [w.copy() for w in teacher.get_weights()]
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(2,), units=(2,)
    )
    tuner = _random_search(hypermodel, tmp_path / "best", max_trials=1)
    tuner.search(x, validation_data=(x, y), epochs=1, verbose=0)
    # The user trains the teacher on after the search.
    teacher.set_weights([w + 1.0 for w in searched])
    trained = [w.copy() for w in teacher.get_weights()]
    best = tuner.get_best_models(1)[0]
    for kept, now in zip(trained, teacher.get_weights()):
        np.testing.assert_array_equal(kept, now)
    # The best model is the one scored: its teacher has the search's
    # weights.
    assert best.teacher is not teacher
    for was, copy in zip(searched, best.teacher.get_weights()):
        np.testing.assert_array_equal(was, copy)


def _normalized_teacher(x):
    """A teacher whose `Normalization` was adapted to `x`: its mean and
    variance are computed from its weights, not weights themselves."""
    normalize = keras.layers.Normalization()
    normalize.adapt(x)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(8, activation="relu", name="rep")(normalize(inputs))
    teacher = keras.Model(inputs, keras.layers.Dense(3, "softmax")(h))
    teacher.compile(
        "adam", "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return teacher


def test_the_copy_of_an_adapted_normalization_answers_as_the_teacher():
    x, y = blobs(n=32, classes=3, shape=(8,))
    x = 100 * x + 50  # far from a mean of 0 and a variance of 1
    teacher = _normalized_teacher(x)
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(2,)
    )
    copy = hypermodel.build(keras_tuner.HyperParameters()).teacher
    assert copy is not teacher
    np.testing.assert_allclose(
        copy.predict(x, verbose=0), teacher.predict(x, verbose=0), atol=1e-6
    )
    assert copy.evaluate(x, y, verbose=0) == teacher.evaluate(x, y, verbose=0)


@keras.saving.register_keras_serializable(package="test_tuning")
class _Offset(keras.layers.Layer):
    """Adds a weight and `offset`, an attribute its config leaves out."""

    offset = 0.0

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w + self.offset


@keras.saving.register_keras_serializable(package="test_tuning")
class _Unrebuildable(keras.layers.Dense):
    """A layer whose config does not rebuild it."""

    def get_config(self):
        return {"name": self.name}


@pytest.mark.parametrize(
    "layer, problem",
    [
        ("offset", "differ from the teacher's on a probe batch"),
        ("config", "could not copy the teacher .TypeError"),
    ],
)
@pytest.mark.parametrize("compiled", [True, False])
def test_a_teacher_that_cannot_be_copied_is_wrapped_itself(
    layer, problem, compiled
):
    if layer == "offset":
        layer = _Offset()
        layer.offset = 5.0  # set after construction: not in the config
    else:
        layer = _Unrebuildable(8)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(8, activation="relu", name="rep")(layer(inputs))
    teacher = keras.Model(inputs, keras.layers.Dense(3, "softmax")(h))
    if compiled:
        teacher.compile(
            "adam", "sparse_categorical_crossentropy", metrics=["acc"]
        )
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(2,)
    )
    with pytest.warns(UserWarning, match=problem):
        model = hypermodel.build(keras_tuner.HyperParameters())
    assert model.teacher is teacher
    assert teacher.compiled is compiled


def test_object_arrays_of_arrays_are_cached_by_their_whole_content(teacher):
    # NumPy's repr of a long array elides its middle ("...").
    def object_array(middle):
        values = np.zeros(2000, "float32")
        values[1000] = middle
        x = np.empty(2, dtype=object)
        x[0], x[1] = values, values
        return x

    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(2,)
    )
    model = hypermodel.build(keras_tuner.HyperParameters())
    folders = {
        hypermodel._trial_cache(object_array(m), model) for m in (0, 1, 0)
    }
    assert len(folders) == 2


def test_a_new_dataset_never_reads_an_old_cache(teacher, monkeypatch):
    # Python gives a freed object's id to a new one: every object sharing
    # one id, each dataset must still get a cache of its own, not the
    # teacher's features of other data. (tuning no longer calls `id`;
    # the patch keeps a return to it from passing unnoticed.)
    monkeypatch.setattr(tuning, "id", lambda obj: 1, raising=False)
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(2,)
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    for seed in range(2):
        x, y = blobs(n=16, classes=3, shape=(8,), seed=seed)
        data = tf.data.Dataset.from_tensor_slices(x).batch(8)
        hypermodel.fit(hp, model, data, validation_data=(x, y), verbose=0)
    assert len(os.listdir(hypermodel.cache_dir)) == 2


def test_string_inputs_are_cached_by_their_content():
    texts = np.array(
        ["good movie", "bad movie", "great film", "awful"] * 2, dtype=object
    )
    y = np.array([1, 0, 1, 0] * 2)
    vectorize = keras.layers.TextVectorization(
        max_tokens=20, output_sequence_length=4
    )
    vectorize.adapt(texts)
    inputs = keras.Input((), dtype="string")
    h = keras.layers.Embedding(20, 4)(vectorize(inputs))
    h = keras.layers.GlobalAveragePooling1D()(h)
    teacher = keras.Model(inputs, keras.layers.Dense(2, "softmax")(h))
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(1,), units=(2,)
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    for _ in range(2):  # equal strings, other objects
        x = np.array(["".join(t) for t in texts.tolist()], dtype=object)
        hypermodel.fit(hp, model, x, validation_data=(texts, y), verbose=0)
    assert len(os.listdir(hypermodel.cache_dir)) == 1


def _image_teacher(shape, dtype="float32", segmentation=False):
    layers = [keras.Input(shape, dtype=dtype)]
    if dtype == "uint8":
        layers.append(keras.layers.Rescaling(1 / 255))
    layers.append(keras.layers.Conv2D(4, 3, padding="same"))
    if segmentation:
        layers.append(keras.layers.Conv2D(2, 1, activation="softmax"))
    else:
        layers.append(keras.layers.GlobalAveragePooling2D())
        layers.append(keras.layers.Dense(3, activation="softmax"))
    return keras.Sequential(layers)


@pytest.mark.parametrize(
    "shape, dtype, segmentation, tower, filters, pooling",
    [
        ((8, 8, 1), "uint8", False, towers.ConvTower, (2, 2), "flatten"),
        ((3, 3, 1), "float32", False, towers.ConvTower, (2,), "flatten"),
        ((1, 1, 1), "float32", False, towers.ConvTower, (2,), "flatten"),
        (
            (None, None, 3),
            "float32",
            False,
            towers.ConvTower,
            (2, 2),
            "global_average",
        ),  # fmt: skip
        ((8, 8, 1), "float32", True, towers.SegmentationTower, (2, 2), None),
    ],
    ids=["uint8", "3px", "1px", "unknown_size", "feature_map"],
)
def test_image_students_fit_the_teacher(
    shape, dtype, segmentation, tower, filters, pooling
):
    teacher = _image_teacher(shape, dtype, segmentation)
    hypermodel = tuning.StudentHyperModel(
        teacher, num_students=(2,), filters=(2,), units=(2,)
    )
    model = hypermodel.build(keras_tuner.HyperParameters())
    for student in model.students:
        assert type(student) is tower
        assert student.filters == filters
        if pooling is not None:
            assert student.pooling == pooling
    # Each student maps the students' input to its chunk's shape.
    x = np.ones((2, *(s or 6 for s in shape)), "float32")  # (rescaled)
    size = (6, 6) if None in shape else shape[:2]
    for student, width in zip(model.students, model.chunks):
        expected = (2, *size, width) if segmentation else (2, width)
        assert tuple(student(x).shape) == expected


def test_pareto_front_drops_dominated_trials():
    rows = [
        {"params": 10, "val_accuracy": 0.8},
        {"params": 20, "val_accuracy": 0.7},  # worse and bigger than 10
        {"params": 30, "val_accuracy": 0.9},
        {"params": 30, "val_accuracy": 0.85},  # same size, worse
        {"params": 5},  # no accuracy: not a result
    ]
    front = tuning.pareto_front(rows)
    assert [(r["params"], r["val_accuracy"]) for r in front] == [
        (10, 0.8),
        (30, 0.9),
    ]


def test_missing_keras_tuner_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_tuner(name, *args, **kwargs):
        if name == "keras_tuner" or name.startswith("keras_tuner."):
            raise ImportError("No module named 'keras_tuner'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tuner)
    monkeypatch.delitem(sys.modules, "keras_tuner", raising=False)
    with pytest.raises(
        ImportError, match="pip install keras-tuner tensorboard"
    ):
        importlib.reload(tuning)
    monkeypatch.undo()
    importlib.reload(tuning)  # leave a whole module for the other tests


def test_the_temporary_cache_goes_with_the_hypermodel(teacher, tmp_path):
    import gc

    hypermodel = tuning.StudentHyperModel(teacher, num_students=(1,))
    folder = hypermodel.cache_dir
    os.makedirs(os.path.join(folder, "trial"))
    assert os.path.isdir(folder)
    del hypermodel
    gc.collect()
    assert not os.path.exists(folder)
    # A cache the user named stays.
    kept = tmp_path / "cache"
    kept.mkdir()
    hypermodel = tuning.StudentHyperModel(teacher, cache=str(kept))
    assert hypermodel.cache_dir == str(kept)
    del hypermodel
    gc.collect()
    assert kept.is_dir()
