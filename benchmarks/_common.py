"""What every benchmark writes next to its numbers: machine, versions, date."""

import json
import os
import platform
import time
from datetime import datetime
from datetime import timezone
from pathlib import Path


def environment():
    """A dict with the date, the machine and the library versions."""
    import keras
    import numpy as np
    import tensorflow as tf

    import teacherclass

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "devices": [d.name for d in tf.config.list_physical_devices()],
        },
        "versions": {
            "teacherclass": teacherclass.__version__,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


def write_result(path, result):
    """Writes a benchmark's result as indented JSON; prints where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


def _keras_callback():
    import keras

    return keras.callbacks.Callback


class EpochTimer(_keras_callback()):
    """Wall seconds of each epoch (the first one includes tracing)."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


# The probes' held-out images: the last 5,000 of CIFAR-10's training
# split. The students and baselines a probe trains never see them; the
# test split is not read. The teachers `reproduce.py` trains (its test
# split protocol) did train on them, all 50,000 images: a probe through
# such a teacher compares students under one teacher, its accuracies are
# not the teacher's held-out ones (`teacher_training_samples` says which).
CIFAR10_VALIDATION = 5000
CIFAR10_TRAIN = 50000


def teacher_training_samples(teacher_path, results=None):
    """How many CIFAR-10 training images a cached teacher trained on.

    Reads `reproduce.py`'s record of the teacher (a file named
    `teacher-<teacher id>-seed<s>.keras`) in `results` (default
    `benchmarks/results/cifar10.json`). Returns an int (the first that
    many training images), or None for a teacher not recorded there.
    """
    from pathlib import Path

    stem = Path(teacher_path).stem
    results = Path(results or Path(__file__).parent / "results/cifar10.json")
    if not stem.startswith("teacher-") or not results.is_file():
        return None
    import json

    record = json.loads(results.read_text())["teachers"].get(
        stem[len("teacher-") :]
    )
    if record is None:
        return None
    return int(record["config"]["samples"])


def validation_in_teacher_training(teacher_path, results=None):
    """Whether a cached teacher trained on the probes' held-out images
    (True, False, or None when its record is not found)."""
    samples = teacher_training_samples(teacher_path, results)
    if samples is None:
        return None
    return samples > CIFAR10_TRAIN - CIFAR10_VALIDATION


def cosine_adam(epochs, samples, batch_size):
    """Adam at 1e-3 with cosine decay to 0 over `epochs` of `samples`
    in batches of `batch_size`: the CIFAR-10 students', baselines' and
    refinement's optimizer (reproduce_cifar10, student_probe)."""
    import math

    import keras

    steps = epochs * math.ceil(samples / batch_size)
    return keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps)
    )


def cifar10_probe_split(teacher, data_dir, samples, batch_size=512):
    """CIFAR-10's training split carved for a student probe.

    Returns `(x, y, x_val, y_val, clean)`: the first `samples` training
    images (at most all but the last `CIFAR10_VALIDATION`) in `[0, 1]`
    and their labels, the held-out last images and labels, and the
    teacher's representation of the held-out images (float32), the
    students' clean targets.
    """
    from teacherclass import datasets
    from teacherclass import teacher as teacher_lib

    x, y = datasets.load("cifar10", "train", data_dir=data_dir)
    x = x.astype("float32") / 255
    x_val, y_val = x[-CIFAR10_VALIDATION:], y[-CIFAR10_VALIDATION:]
    keep = min(samples, len(x) - CIFAR10_VALIDATION)
    x, y = x[:keep], y[:keep]
    trunk = teacher_lib.trunk(teacher, "representation")
    clean = trunk.predict(x_val, batch_size=batch_size, verbose=0)
    return x, y, x_val, y_val, clean.astype("float32")


def student_scores(tc, x_val, y_val, clean, batch_size=512):
    """A class's held-out scores, before any head fine-tuning.

    The composed model's accuracy (the teacher's head on the students'
    output; under target conditioning, the head folded to read targets)
    and the students' mean squared error to their targets (`clean`, the
    teacher's representation, in the class's target coordinates). Returns
    a dict: `val_accuracy`, `val_mse` and `val_mse_features` (the same
    error in the teacher's feature coordinates, which `target_variance`
    is in; equal to `val_mse` without conditioning).
    """
    import numpy as np

    students = tc.representation().predict(
        x_val, batch_size=batch_size, verbose=0
    )
    fitted = tc.target_conditioning()
    targets = clean if fitted is None else fitted.transform(clean)
    # The students' output is clipped as the composed model clips it;
    # the head reading it is the composed model's (folded, if conditioned).
    head, _ = tc.target_head()
    probs = head.predict(students, batch_size=batch_size, verbose=0)
    features = students if fitted is None else fitted.inverse(students)
    return {
        "val_accuracy": float(np.mean(probs.argmax(-1) == y_val)),
        "val_mse": float(np.mean((students - targets) ** 2)),
        "val_mse_features": float(np.mean((features - clean) ** 2)),
    }
