"""`TeacherClass` under `tf.distribute`, each strategy in its own processes.

Logical devices must be set before TensorFlow initializes its devices, and a
`MultiWorkerMirroredStrategy` must be created before any other TensorFlow
op, so every run here starts fresh Python processes that write their
results as JSON. One process runs every mirrored case, shared by the tests
through a module fixture.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

_COMMON = """
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

sys.path.insert(0, {tests!r})


def setup():
    import keras

    from helpers import blobs
    from teacherclass import DenseTower
    from teacherclass import TeacherClass

    keras.utils.set_random_seed(0)
    x, y = blobs(n=128, classes=3, shape=(8,))
    # No dropout: replicas draw their own masks, one device draws one.
    teacher = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(8, activation="relu", name="rep"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ],
        name="teacher",
    )
    tc = TeacherClass(
        teacher, num_students=2, student=DenseTower(1, hidden=(8,))
    )
    return tc, x, y


def shift(batch, training=True):
    return batch + 0.5


def run(tc, x, y, optimizer="adam", augment=None, loss="auto", full=True):
    # Teacher, students, fine-tuned head; full=False: the students only
    # (under the untrained teacher), composed without fine-tuning.
    fit = dict(batch_size=32, verbose=0, shuffle=False)
    result = {{}}
    if full:
        h_teacher = tc.fit_teacher(x, y, epochs=2, **fit)
        result["teacher_loss"] = h_teacher.history["loss"]
    h_students = tc.fit_students(
        x, epochs=2, optimizer=optimizer, augment=augment, loss=loss, **fit
    )
    if full:
        composed = tc.compose(fine_tune=True, x=x, y=y, epochs=1, **fit)
    else:
        composed = tc.compose()
    return {{
        **result,
        "students_loss": h_students.history["loss"],
        "student_0_loss": h_students.history["student_0_loss"],
        "teacher": [w.tolist() for w in tc.teacher.get_weights()],
        "students": [
            w.tolist() for s in tc.students for w in s.get_weights()
        ],
        "head": [w.tolist() for w in tc.head.get_weights()],
        "predictions": composed.predict(x[:8], verbose=0).tolist(),
    }}
""".format(tests=str(ROOT / "tests"))

_MIRRORED = (
    _COMMON
    + """
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)


def adversarial():
    from teacherclass.objectives import Adversarial

    return Adversarial(hidden=(8,), optimizer="sgd")


def case(strategy, inside, optimizer, augment=None, loss="auto", full=True):
    try:
        with strategy.scope():
            tc, x, y = setup()
        if inside:
            with strategy.scope():
                return run(tc, x, y, optimizer, augment, loss, full)
        return run(tc, x, y, optimizer, augment, loss, full)
    except Exception as e:  # reported, so other cases still run
        return {"error": f"{type(e).__name__}: {e}"[:2000]}


one = tf.distribute.get_strategy()
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
results = {
    "replicas": mirrored.num_replicas_in_sync,
    "one_adam": case(one, True, "adam"),
    "mirrored_inside_adam": case(mirrored, True, "adam"),
    "mirrored_outside_adam": case(mirrored, False, "adam"),
    # The students' step alone (untrained teacher, no fine-tuning): the
    # reference of the SGD, augmented and adversarial cases.
    "one_sgd_students": case(one, True, "sgd", full=False),
    "mirrored_inside_sgd_students": case(mirrored, True, "sgd", full=False),
    # The teacher runs in the train step on each augmented batch.
    "one_sgd_augment": case(one, True, "sgd", shift, full=False),
    "mirrored_inside_sgd_augment": case(
        mirrored, True, "sgd", shift, full=False
    ),
    # Two optimizers per step (students', discriminators'), both SGD.
    "one_sgd_adversarial": case(
        one, True, "sgd", loss=adversarial(), full=False
    ),
    "mirrored_inside_sgd_adversarial": case(
        mirrored, True, "sgd", loss=adversarial(), full=False
    ),
}
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
"""
)

_WORKER = (
    _COMMON
    + """
# Before any other TensorFlow op: it reads TF_CONFIG and starts the server.
from teacherclass.distribute import MultiWorkerMirroredStrategy

strategy = MultiWorkerMirroredStrategy()
with strategy.scope():
    tc, x, y = setup()
    result = run(tc, x, y)
result["replicas"] = strategy.num_replicas_in_sync
with open(sys.argv[1], "w") as f:
    json.dump(result, f)
"""
)


def _env(**extra):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p
    )
    env.update(TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def _max_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
        for u, v in zip(a, b)
    )


def _run_script(folder, source, timeout=600):
    """Runs `source` as a script in a fresh process (`_env`) with the
    path of its JSON result as its argument; returns the result."""
    script = folder / "script.py"
    script.write_text(source)
    out = folder / "result.json"
    result = subprocess.run(
        [sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    # Over 300 s was seen with the machine loaded three times over.
    return _run_script(
        tmp_path_factory.mktemp("mirrored"), _MIRRORED, timeout=900
    )


def _check_case(results, name, reference):
    got = results[name]
    assert "error" not in got, got.get("error")
    ref = results[reference]
    for key in ("teacher", "students", "head"):
        assert _max_diff(got[key], ref[key]) < 1e-4, key
    np.testing.assert_allclose(
        got["predictions"], ref["predictions"], atol=1e-4
    )
    np.testing.assert_allclose(
        got["student_0_loss"], ref["student_0_loss"], rtol=1e-4
    )
    if "teacher_loss" in ref:
        np.testing.assert_allclose(
            got["teacher_loss"], ref["teacher_loss"], rtol=1e-4
        )
    else:
        assert "teacher_loss" not in got


def test_mirrored_two_devices_matches_one_device(mirrored):
    """Built and run inside `strategy.scope()`, with Adam (the default)."""
    assert mirrored["replicas"] == 2
    _check_case(mirrored, "mirrored_inside_adam", "one_adam")


def test_mirrored_students_loss_is_not_counted_per_replica(mirrored):
    # Keras sums the replicas' gradients: an unscaled student loss doubles
    # the step (Adam hides it, SGD does not) and the logged `loss`.
    _check_case(mirrored, "mirrored_inside_sgd_students", "one_sgd_students")
    np.testing.assert_allclose(
        mirrored["mirrored_inside_sgd_students"]["students_loss"],
        mirrored["one_sgd_students"]["students_loss"],
        rtol=1e-4,
    )


def test_mirrored_built_in_scope_then_called_outside(mirrored):
    _check_case(mirrored, "mirrored_outside_adam", "one_adam")


def test_mirrored_augmented_students(mirrored):
    """`augment=`: each replica runs the teacher on its share of the batch."""
    _check_case(mirrored, "mirrored_inside_sgd_augment", "one_sgd_augment")
    assert (
        _max_diff(
            mirrored["one_sgd_augment"]["students"],
            mirrored["one_sgd_students"]["students"],
        )
        > 1e-3
    )


def test_mirrored_adversarial_students(mirrored):
    """Generator and discriminator losses are divided by the replicas."""
    _check_case(
        mirrored, "mirrored_inside_sgd_adversarial", "one_sgd_adversarial"
    )
    assert (
        _max_diff(
            mirrored["one_sgd_adversarial"]["students"],
            mirrored["one_sgd_students"]["students"],
        )
        > 1e-3
    )


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_mirrored_two_processes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        config = {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / f"{index}.json")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(TF_CONFIG=json.dumps(config)),
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=900))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for index, (proc, (_, err)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"worker {index}: {err[-3000:]}"
    first, second = (
        json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2)
    )
    assert first["replicas"] == second["replicas"] == 2
    for key in ("teacher", "students", "head", "predictions"):
        assert _max_diff(first[key], second[key]) < 1e-6, key


_REFINE_STEPS = """
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras

from teacherclass import baselines
from teacherclass import refinement

x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")


def labels(width):
    return np.zeros((16, 1) if width == 1 else (16,), "int32")


def dense(width, activation=None):
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(width, activation=activation)]
    )


def cached(width):
    keras.utils.set_random_seed(1)
    student = dense(width)
    before = student.get_weights()[0].copy()
    trainer = refinement.CachedLogitsTrainer(student, 2.0, alpha=0.0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if width == 1:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
    trainer.compile(optimizer=keras.optimizers.SGD(1.0), loss=loss)
    logits = np.random.default_rng(5).normal(size=(16, width)) * 3
    targets = {"labels": labels(width), "logits": logits.astype("float32")}
    ds = tf.data.Dataset.from_tensor_slices((x, targets)).batch(16)
    trainer.fit(ds, epochs=1, verbose=0)
    return before, student


def distilled(width):
    keras.utils.set_random_seed(1)
    teacher = dense(width, "sigmoid" if width == 1 else "softmax")
    keras.utils.set_random_seed(2)
    student = dense(width)
    before = student.get_weights()[0].copy()
    ds = tf.data.Dataset.from_tensor_slices((x, labels(width))).batch(16)
    baselines.distill_into(
        teacher, student, ds, None, temperature=2.0, alpha=0.0,
        optimizer=keras.optimizers.SGD(1.0), verbose=0,
    )
    return before, student


def step(strategy, fn, width):
    with strategy.scope():
        before, student = fn(width)
    return float(np.abs(student.get_weights()[0] - before).sum())


one = tf.distribute.OneDeviceStrategy("/cpu:0")
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
results = {
    f"{fn.__name__}_{width}": [step(one, fn, width), step(two, fn, width)]
    for fn in (cached, distilled)
    for width in (3, 1)
}
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
"""


def test_refinement_distillation_is_divided_once_per_replica(tmp_path):
    """One SGD step of refinement's distillation term (alpha=0), by cached
    logits and by the Distiller, softmax and one-unit sigmoid, moves the
    weights as far on two replicas as on one (same global batch)."""
    for name, (one, two) in _run_script(tmp_path, _REFINE_STEPS).items():
        assert one > 1e-3, name
        np.testing.assert_allclose(two, one, rtol=1e-4, err_msg=name)


_VECTOR_METRIC = """
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from teacherclass import distribute

from keras.src.backend.tensorflow import trainer

strategy = distribute.MultiWorkerMirroredStrategy()
vector = strategy.run(lambda: tf.constant([0.2, 0.5, 0.9]))
scalar = strategy.run(lambda: tf.constant(0.5))
per_example = strategy.run(lambda: tf.constant([1.0, 2.0, 3.0, 4.0]))
# Keras' path for a multi-worker cluster (one process here is not one).
trainer._collective_all_reduce_multi_worker = lambda strategy: True
logs = trainer.reduce_per_replica(
    {"vector": vector, "scalar": scalar}, strategy, reduction="auto"
)
with open(sys.argv[1], "w") as f:
    json.dump(
        {
            "vector": logs["vector"].numpy().tolist(),
            "scalar": float(logs["scalar"]),
            # A custom loop's per-example values: `axis` honoured.
            "sum": float(strategy.reduce("SUM", per_example, axis=0)),
            "mean": float(strategy.reduce("MEAN", per_example, axis=0)),
            "scalar_axis": float(strategy.reduce("SUM", scalar, axis=0)),
            # A NumPy value, as TensorFlow's strategies take it.
            "numpy": float(
                strategy.reduce("SUM", np.ones(3, "float32"), axis=0)
            ),
        },
        f,
    )
"""


def test_multi_worker_reduces_a_vector_metric_element_wise(tmp_path):
    """A metric with one value per class (`F1Score(average=None)`) keeps
    its classes in Keras' multi-worker path: averaged across replicas
    only, as Keras does under its other strategies (one process: the
    reduction is the same). A custom loop's `axis` is honoured."""
    got = _run_script(tmp_path, _VECTOR_METRIC)
    np.testing.assert_allclose(got["vector"], [0.2, 0.5, 0.9], rtol=1e-6)
    assert got["scalar"] == pytest.approx(0.5)
    # Other callers' `axis` reduces that axis too (was ignored).
    assert got["sum"] == pytest.approx(10.0)
    assert got["mean"] == pytest.approx(2.5)
    assert got["scalar_axis"] == pytest.approx(0.5)
    assert got["numpy"] == pytest.approx(3.0)
