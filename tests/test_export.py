import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass import datasets
from teacherclass import export as export_lib
from teacherclass import report
from teacherclass.report import accuracy


@pytest.fixture(scope="module")
def digits():
    """A TeacherClass on digits trained for a few epochs, and its data."""
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    (x, y), (x_test, y_test) = (
        datasets.load("digits", split) for split in ("train", "test")
    )
    tc = TeacherClass(
        architectures.digits_teacher(),
        num_students=4,
        student=architectures.digits_student(),
    )
    tc.fit_teacher(x, y, epochs=5, batch_size=32, verbose=0)
    tc.fit_students(x, epochs=8, batch_size=32, verbose=0)
    composed = tc.compose()
    return {
        "tc": tc,
        "composed": composed,
        "x": x,
        "x_test": x_test,
        "y_test": y_test,
        "reference": composed.predict(x_test, verbose=0),
    }


@pytest.fixture(scope="module")
def exported(digits, tmp_path_factory):
    """One artifact per format, exported once for the module."""
    root = tmp_path_factory.mktemp("exports")
    composed = digits["composed"]
    return {
        # From the TeacherClass: its composed model is what gets exported.
        "saved_model": export_lib.export(digits["tc"], root / "saved_model"),
        "litert": export_lib.export(
            composed, root / "float.tflite", format="litert"
        ),
        "int8": export_lib.export(
            composed,
            root / "int8.tflite",
            format="litert",
            quantize="int8",
            representative_data=digits["x"],
        ),
    }


def test_the_digits_model_learned_something(digits):
    acc = accuracy(digits["reference"], digits["y_test"])
    print(f"composed digits accuracy after a short training: {acc:.4f}")
    assert acc > 0.8


# The SavedModel was exported from the TeacherClass itself, the LiteRT file
# from its composed model: both must give the composed model's outputs.
@pytest.mark.parametrize("kind", ["saved_model", "litert"])
def test_float_exports_match_keras(digits, exported, kind):
    artifact = export_lib.load(exported[kind])
    got = artifact.predict(digits["x_test"], batch_size=64)
    np.testing.assert_allclose(got, digits["reference"], atol=1e-4)
    # Batch 1 works too (the LiteRT interpreter is resized per shape).
    np.testing.assert_allclose(
        artifact(digits["x_test"][:1]), digits["reference"][:1], atol=1e-4
    )


def test_int8_accuracy_within_one_point(digits, exported):
    artifact = export_lib.load(exported["int8"])
    keras_acc = accuracy(digits["reference"], digits["y_test"])
    int8_acc = accuracy(artifact.predict(digits["x_test"]), digits["y_test"])
    assert abs(int8_acc - keras_acc) <= 0.01, (int8_acc, keras_acc)


def test_int8_is_smaller_than_float(exported):
    float_size = export_lib.size_on_disk(exported["litert"])
    assert export_lib.size_on_disk(exported["int8"]) < 0.6 * float_size


def test_saved_model_holds_the_composed_weights_only(digits, exported):
    artifact = export_lib.load(exported["saved_model"])
    composed = digits["composed"].count_params()
    assert artifact.num_params == composed
    assert artifact.num_params < digits["tc"].teacher.count_params() / 5


def test_litert_file_is_the_composed_models_size(digits, exported):
    # float32 weights take 4 bytes each: the teacher's alone would be 1.4 MB.
    size = export_lib.size_on_disk(exported["litert"])
    composed = digits["composed"].count_params()
    assert 4 * composed <= size < 4 * composed * 1.5
    assert size < 4 * digits["tc"].teacher.count_params() / 5


def _small_model(dtype=None):
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", dtype=dtype),
            keras.layers.Dense(3, activation="softmax", dtype=dtype),
        ]
    )


def test_existing_path_is_kept_unless_overwrite(tmp_path):
    model = _small_model()
    path = tmp_path / "m.tflite"
    export_lib.export(model, path, format="litert")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        export_lib.export(_small_model(), path, format="litert")
    assert path.read_bytes() == before
    export_lib.export(_small_model(), path, format="litert", overwrite=True)
    assert path.read_bytes() != before
    # A SavedModel directory is replaced whole.
    export_lib.export(model, tmp_path / "sm")
    export_lib.export(model, tmp_path / "sm", overwrite=True)
    assert export_lib.load(tmp_path / "sm").format == "saved_model"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export")]


@pytest.mark.parametrize(
    "name, format, what",
    [
        ("mine", "saved_model", "is not a SavedModel folder"),
        (".", "saved_model", "is not a SavedModel folder"),
        ("notes.tflite", "litert", "is not a TFLite file"),
        ("mine.tflite", "litert", "is not a TFLite file"),
    ],
)
def test_overwrite_replaces_only_an_earlier_export(
    name, format, what, tmp_path, monkeypatch
):
    # The user's files: a folder and a file that no export wrote.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.tflite").mkdir()
    for folder in (tmp_path, tmp_path / "mine.tflite"):
        (folder / "notes.txt").write_text("keep me")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    (tmp_path / "notes.tflite").write_text("keep me")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(FileExistsError, match=what) as error:
        export_lib.export(_small_model(), name, format=format, overwrite=True)
    assert f"Received: path={name!r}" in str(error.value)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_failed_replacement_puts_the_old_export_back(tmp_path, monkeypatch):
    path = tmp_path / "m.tflite"
    export_lib.export(_small_model(), path, format="litert")
    before = path.read_bytes()
    moves = []
    real_replace = os.replace

    def failing_second_move(src, dst):
        moves.append((src, dst))
        if len(moves) == 2:  # the new artifact onto `path`
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(export_lib.os, "replace", failing_second_move)
    with pytest.raises(OSError, match="disk full"):
        export_lib.export(_small_model(), path, format="litert", overwrite=True)
    assert path.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export")]

    # Were the put-back to fail too, the old export stays, and is named.
    def failing_moves_back(src, dst):
        moves.append((src, dst))
        if len(moves) > 1:
            raise OSError("disk full")
        real_replace(src, dst)

    moves.clear()
    monkeypatch.setattr(export_lib.os, "replace", failing_moves_back)
    with pytest.raises(OSError, match="the old export is kept at") as info:
        export_lib.export(_small_model(), path, format="litert", overwrite=True)
    kept = str(info.value).rsplit(" kept at ", 1)[1].rstrip(".")
    with open(kept, "rb") as f:
        assert f.read() == before


def test_mixed_precision_model_exports_in_float32(tmp_path):
    model = _small_model(dtype="mixed_bfloat16")
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    path = export_lib.export(model, tmp_path / "m.tflite", format="litert")
    got = export_lib.load(path).predict(x)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=2e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "onnx"}, "`format` must be one of"),
        ({"quantize": "int4"}, "`quantize` must be one of"),
        ({"quantize": "int8"}, "needs format='litert'"),
        (
            {"format": "litert", "quantize": "int8", "path": "m.tflite"},
            "pass `representative_data`",
        ),
        ({"format": "litert", "path": "m.bin"}, "ends with '.tflite'"),
    ],
)
def test_bad_arguments(kwargs, message, tmp_path):
    kwargs = dict(kwargs)
    path = tmp_path / kwargs.pop("path", "out")
    with pytest.raises(ValueError, match=message):
        export_lib.export(_small_model(), path, **kwargs)
    assert not path.exists()


def test_not_a_model_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="Received: model="):
        export_lib.export("model.keras", tmp_path / "out")


def test_calibration_samples_from_arrays_and_datasets():
    x = np.arange(500 * 2, dtype="float32").reshape(500, 2)
    assert export_lib.calibration_samples(x, 50).shape == (50, 2)
    assert export_lib.calibration_samples((x, None), 600).shape == (500, 2)
    batched = tf.data.Dataset.from_tensor_slices((x, x[:, 0])).batch(32)
    assert export_lib.calibration_samples(batched, 40).shape == (40, 2)
    with pytest.raises(ValueError, match="at least one sample"):
        export_lib.calibration_samples(np.zeros((0, 2)))


def test_int8_calibrates_on_batches_of_a_fixed_size(tmp_path):
    # `drop_remainder=True` batches have a known first axis: they are
    # still batches of the model's (8, 8, 1) inputs, not samples.
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    x = np.random.default_rng(0).random((32, 8, 8, 1)).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((x, x[:, 0, 0, 0]))
    batches = batches.batch(16, drop_remainder=True)
    path = export_lib.export(
        model,
        tmp_path / "q.tflite",
        format="litert",
        quantize="int8",
        representative_data=batches,
        num_calibration_samples=8,
    )
    assert export_lib.load(path)(x[:2]).shape == (2, 2)
    samples = export_lib.calibration_samples(batches, 10, sample_rank=3)
    np.testing.assert_array_equal(samples, x[:10])


def test_load_rejects_unknown_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="No exported model"):
        export_lib.load(tmp_path / "missing.tflite")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="Received: path="):
        export_lib.load(tmp_path / "model.bin")


def test_litert_runs_on_the_threads_asked_for(digits, exported):
    # LiteRT's default is one thread, TensorFlow's pools one per CPU: a
    # latency comparison gives LiteRT TensorFlow's count.
    default = export_lib.load(exported["int8"])
    assert default.num_threads is None
    threads = export_lib.tensorflow_threads()
    assert threads >= 1
    matched = export_lib.load(exported["int8"], num_threads=threads)
    assert matched.num_threads == threads
    np.testing.assert_array_equal(
        matched.predict(digits["x_test"][:8]),
        default.predict(digits["x_test"][:8]),
    )
    assert export_lib.load(exported["saved_model"], 2).num_threads is None
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"Received: num_threads={bad!r}"):
            export_lib.load(exported["int8"], num_threads=bad)
    entry = report.measure_export(exported["int8"], repeats=1)
    assert entry["num_threads"] == threads
