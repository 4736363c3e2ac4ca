"""Helpers that test modules import directly (`from helpers import ...`).

Learnable data and small teachers, the shared data folder, and the layer
checks every tower goes through: the project's own `run_layer_test` and
Keras' own harness (`run_keras_layer_test`).
"""

import importlib.util
import os
from pathlib import Path

import keras
import numpy as np
import pytest


def shared_data():
    """The real datasets beside the repository (`../shared/data`).

    Else `$TEACHERCLASS_SHARED_DATA`; the calling test is skipped when
    neither is a folder.
    """
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir() and os.environ.get("TEACHERCLASS_SHARED_DATA"):
        path = Path(os.environ["TEACHERCLASS_SHARED_DATA"])
    if not path.is_dir():
        pytest.skip(f"no shared data folder at {path}")
    return path


def write_idx_files(folder, n_train=5, n_test=3):
    """MNIST's four official IDX files (gzipped) in `folder`, tiny: images
    of zeros, labels `arange(n) % 10`. Returns the labels by split."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for split, prefix, n in (
        ("train", "train", n_train),
        ("test", "t10k", n_test),
    ):
        labels[split] = np.arange(n, dtype=np.uint8) % 10
        for kind, array in (
            ("images-idx3", np.zeros((n, 28, 28), np.uint8)),
            ("labels-idx1", labels[split]),
        ):
            header = bytes([0, 0, 0x08, array.ndim])
            header += b"".join(d.to_bytes(4, "big") for d in array.shape)
            with gzip.open(folder / f"{prefix}-{kind}-ubyte.gz", "wb") as f:
                f.write(header + array.tobytes())
    return labels


def load_script(path, name=None):
    """A script of the repository (`path` relative to its root, e.g.
    "benchmarks/reproduce.py"), imported as a module named `name` (default:
    the file's stem). Benchmark scripts put benchmarks/ on sys.path."""
    path = Path(__file__).resolve().parents[1] / path
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_once(monkeypatch):
    """Every latency timed with one warm-up call and one timed call.

    For tests of wiring that write latency figures but do not read them
    (the runs that check the figures time as a user's run does). A
    function, for module fixtures: `with pytest.MonkeyPatch.context() as
    m: time_once(m)`.
    """
    from teacherclass import latency
    from teacherclass import report

    real = latency.time_call

    def once(fn, x, repeats=20, warmup=3):
        return real(fn, x, repeats=1, warmup=min(warmup, 1))

    monkeypatch.setattr(latency, "time_call", once)
    monkeypatch.setattr(report, "time_call", once)


def blobs(n=256, classes=3, shape=(8,), seed=0, spread=0.3):
    """Learnable data: one Gaussian blob per class, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    dim = int(np.prod(shape))
    centers = rng.uniform(0.2, 0.8, size=(classes, dim))
    y = rng.integers(0, classes, size=n)
    x = centers[y] + spread * 0.1 * rng.standard_normal((n, dim))
    return x.reshape((n, *shape)).astype("float32"), y.astype("int32")


def mlp_teacher(input_dim=8, width=16, classes=3, name="teacher"):
    """Input -> Dense(32) -> Dense(width, relu) [rep] -> Dropout -> softmax."""
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(width, activation="relu", name="rep"),
            keras.layers.Dropout(0.2, name="drop"),
            keras.layers.Dense(classes, activation="softmax", name="out"),
        ],
        name=name,
    )


def trained_mlp_teacher(x, y, epochs, **kwargs):
    """`mlp_teacher(**kwargs)` compiled with Adam and fitted on `(x, y)`."""
    model = mlp_teacher(**kwargs)
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


class PreemptedAfterFirstEpoch(keras.callbacks.Callback):
    """Raises `RuntimeError("preempted")` at the end of epoch 0: a run
    stopped after one epoch, for the tests of resuming."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise RuntimeError("preempted")


def run_keras_layer_test(layer_cls, init_kwargs, **kwargs):
    """Keras' own layer harness, `keras.src.testing.TestCase.run_layer_test`.

    Runs its serialization, build, symbolic and eager call, training and
    `mixed_float16` checks. `kwargs` go to `run_layer_test` (for instance
    `input_shape`, `input_data`, `expected_output_shape`). The calling test
    is skipped when this Keras has no such harness (it is private API).
    """
    try:
        from keras.src.testing import TestCase
    except ImportError:  # pragma: no cover, depends on the Keras version
        pytest.skip("keras.src.testing.TestCase is not available")
    if not hasattr(TestCase, "run_layer_test"):  # pragma: no cover
        pytest.skip("keras.src.testing.TestCase has no run_layer_test")
    filtering = keras.config.is_traceback_filtering_enabled()
    case = TestCase()
    case.setUp()  # clears the session, turns traceback filtering off
    try:
        case.run_layer_test(layer_cls, init_kwargs, **kwargs)
    finally:
        case.doCleanups()
        if filtering:
            keras.config.enable_traceback_filtering()


def _sample(input_shape, input_dtype, vocab=None, seed=0):
    rng = np.random.default_rng(seed)
    if "int" in input_dtype:
        return rng.integers(0, vocab or 10, size=input_shape).astype(
            input_dtype
        )
    return rng.random(input_shape).astype(input_dtype)


def _model(layer_cls, kwargs, input_shape, input_dtype):
    inputs = keras.Input(shape=input_shape[1:], dtype=input_dtype)
    layer = layer_cls(**kwargs)
    return keras.Model(inputs, layer(inputs)), layer


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    tmp_path,
    input_dtype="float32",
):
    """Builds, calls, trains, serializes and reloads a layer.

    Checks: symbolic and eager output shapes; one training step changes the
    weights; `get_config`/`from_config` round trip; `.keras` save/load with
    the default `safe_mode=True` gives equal outputs; a `mixed_bfloat16`
    build computes in bfloat16 and trains to a finite loss.
    """
    vocab = init_kwargs.get("vocab_size")
    x = _sample(input_shape, input_dtype, vocab)

    # Symbolic and eager calls.
    model, layer = _model(layer_cls, init_kwargs, input_shape, input_dtype)
    assert tuple(model.output.shape[1:]) == tuple(expected_output_shape[1:])
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == tuple(expected_output_shape)
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(
        expected_output_shape
    )

    # One training step moves the weights.
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    y = np.ones(expected_output_shape, "float32")
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    after = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))

    # Config round trip.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    # .keras round trip, safe mode.
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )

    # Mixed precision.
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model, layer = _model(layer_cls, init_kwargs, input_shape, input_dtype)
        assert layer.compute_dtype == "bfloat16"
        assert layer.variable_dtype == "float32"
        assert keras.backend.standardize_dtype(layer(x).dtype) == "bfloat16"
        model.compile(optimizer="sgd", loss="mse")
        assert np.isfinite(model.train_on_batch(x, y))
    finally:
        keras.config.set_dtype_policy(policy)
    return layer
