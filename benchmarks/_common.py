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
