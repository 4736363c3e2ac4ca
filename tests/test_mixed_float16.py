"""The `mixed_float16` path (the CLI's choice on a GPU), at tiny sizes on CPU.

float16 compute is slow on CPU, so every model here is a small MLP or a
two-block conv tower. Each test checks what a GPU user relies on: the
optimizers that need it are loss-scaled (discriminators included), losses
stay finite, the composed model returns float32, and the result is close
to float32 training of the same models on learnable data.
"""

import os

import keras
import numpy as np
import pytest

from teacherclass import TeacherClass
from teacherclass import export as export_lib

# Accuracy of the composed model under mixed_float16 may differ from the
# float32 run of the same seeds by at most this much (3 blobs, 128 tests).
_ACCURACY_TOLERANCE = 0.05


def _blobs(n=384, classes=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0.2, 0.8, size=(classes, dim))
    y = rng.integers(0, classes, size=n)
    x = centers[y] + 0.03 * rng.standard_normal((n, dim))
    return x.astype("float32"), y.astype("int32")


def _teacher():
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(16, activation="relu", name="rep"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ],
        name="teacher",
    )


def _run(policy, loss="mse"):
    """Teacher, students and composed model trained under `policy`."""
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    x, y = _blobs()
    tc = TeacherClass(_teacher(), num_students=2)
    teacher_history = tc.fit_teacher(
        x[:256], y[:256], epochs=15, batch_size=32, verbose=0
    )
    optimizers = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            optimizers.append(self.model.optimizer)

    student_history = tc.fit_students(
        x[:256],
        epochs=15,
        batch_size=32,
        loss=loss,
        verbose=0,
        callbacks=[Spy()],
    )
    composed = tc.compose()
    return {
        "tc": tc,
        "composed": composed,
        "teacher_history": teacher_history.history,
        "student_history": student_history.history,
        "student_optimizer": optimizers[0],
        "x_test": x[256:],
        "y_test": y[256:],
    }


@pytest.fixture(scope="module")
def float32_run():
    run = _run("float32")
    keras.config.set_dtype_policy("float32")
    return run


@pytest.fixture(scope="module")
def fp16_run():
    run = _run("mixed_float16")
    keras.config.set_dtype_policy("float32")
    return run


def _finite(history):
    return all(np.all(np.isfinite(v)) for v in history.values())


def test_teacher_and_students_are_float16_and_loss_scaled(fp16_run):
    tc = fp16_run["tc"]
    assert tc.teacher.layers[0].compute_dtype == "float16"
    assert tc.students[0].compute_dtype == "float16"
    # Keras wraps the optimizer of a model compiled under mixed_float16.
    assert isinstance(tc.teacher.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(
        fp16_run["student_optimizer"], keras.optimizers.LossScaleOptimizer
    )
    assert _finite(fp16_run["teacher_history"])
    assert _finite(fp16_run["student_history"])
    losses = fp16_run["student_history"]["loss"]
    assert losses[-1] < losses[0]


def test_composed_outputs_float32_and_match_float32_training(
    fp16_run, float32_run
):
    composed = fp16_run["composed"]
    probabilities = composed.predict(fp16_run["x_test"], verbose=0)
    assert probabilities.dtype == np.float32
    assert np.all(np.isfinite(probabilities))
    fp16 = composed.evaluate(
        fp16_run["x_test"], fp16_run["y_test"], verbose=0, return_dict=True
    )["accuracy"]
    fp32 = float32_run["composed"].evaluate(
        float32_run["x_test"],
        float32_run["y_test"],
        verbose=0,
        return_dict=True,
    )["accuracy"]
    assert fp32 > 0.9
    assert abs(fp16 - fp32) <= _ACCURACY_TOLERANCE


def test_fine_tuned_compose_is_finite(fp16_run):
    keras.config.set_dtype_policy("mixed_float16")
    tc = fp16_run["tc"]
    x, y = _blobs()
    composed = tc.compose(
        fine_tune=True, x=x[:256], y=y[:256], epochs=2, verbose=0
    )
    assert np.all(np.isfinite(tc.history.history["loss"]))
    out = composed.predict(fp16_run["x_test"], verbose=0)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))


def test_keras_round_trip(fp16_run, tmp_path):
    composed = fp16_run["composed"]
    path = tmp_path / "composed.keras"
    composed.save(path)
    loaded = keras.saving.load_model(path)
    x = fp16_run["x_test"]
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), composed.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_litert_export(fp16_run, tmp_path, quantize):
    composed = fp16_run["composed"]
    x = fp16_run["x_test"]
    path = export_lib.export(
        composed,
        tmp_path / "model.tflite",
        format="litert",
        quantize=quantize,
        representative_data=x if quantize else None,
    )
    assert os.path.getsize(path) > 0
    predict = export_lib.load(path)
    out = np.asarray(predict(x[:8]))
    assert out.shape == (8, 3) and np.all(np.isfinite(out))
    reference = composed.predict(x[:8], verbose=0)
    # float16 compute vs the float32 export; int8 adds its own rounding.
    atol = 0.1 if quantize else 0.02
    np.testing.assert_allclose(out, reference, atol=atol)


def test_adversarial_students_loss_scaled():
    """Both optimizers of the adversarial step are loss-scaled."""
    keras.config.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    x, _ = _blobs(n=64)
    tc = TeacherClass(_teacher(), num_students=2)
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["students"] = self.model.optimizer
            seen["discriminators"] = self.model.d_optimizer

    history = tc.fit_students(
        x,
        epochs=2,
        batch_size=32,
        loss="adversarial",
        verbose=0,
        callbacks=[Spy()],
    )
    assert _finite(history.history)
    for optimizer in seen.values():
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    out = tc.compose().predict(x, verbose=0)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
