"""One script that checks a GPU end to end in a few minutes.

On a machine with a GPU it measures, under `mixed_float16`:

1. the device: what TensorFlow sees, and `nvidia-smi`'s name and memory;
2. `fit_students` of the MNIST n = 4 class on MNIST-sized data:
   samples per second (epochs after the first) and GPU utilization
   sampled by `nvidia-smi` while it runs;
3. the composed model's latency at batch 1 and 64, unfused and fused
   (when `teacherclass.fusion` can fuse it), against the teacher's;
4. the paper's VGG-16 CIFAR-10 teacher for a few hundred steps: samples
   per second, finite losses, GPU utilization.

It writes `benchmarks/results/gpu_check.json` and prints a summary.
Without a GPU it prints `skipped: no GPU` and writes nothing, so a
CPU run never replaces a GPU result.

Data: `benchmarks/cache/{mnist,cifar10}.npz` from `pack_data.py` when
present (the device machine gets only the working tree, at most 64 MiB,
so pass `benchmarks/cache` in the device tool's `carry`), else random
uint8 images of the same shapes (said so in the JSON).

Usage:
    python benchmarks/pack_data.py --data-dir ../shared/data \
        --max-train cifar10=10000 --max-test cifar10=2000  # once, here
    python benchmarks/gpu_check.py [--vgg-steps 300] [--output PATH]
"""

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check.json"


class GpuSampler:
    """Samples `nvidia-smi` utilization and memory in a background thread.

    Use as a context manager around the work to measure; `summary()`
    gives the mean and max utilization (%) and the max memory (MiB), or
    None where `nvidia-smi` is missing.
    """

    def __init__(self, interval=0.25):
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = None

    def _poll(self):
        while not self._stop.is_set():
            sample = _smi("utilization.gpu,memory.used")
            if sample:
                util, memory = sample[0]
                self.samples.append((float(util), float(memory)))
            self._stop.wait(self.interval)

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self):
        if not self.samples:
            return None
        util = [u for u, _ in self.samples]
        return {
            "utilization_mean_percent": round(float(np.mean(util)), 1),
            "utilization_max_percent": float(max(util)),
            "memory_max_mib": float(max(m for _, m in self.samples)),
            "samples": len(self.samples),
        }


def _smi(fields):
    """`nvidia-smi --query-gpu=fields` rows as lists of strings, or None."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                f"--query-gpu={fields}",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [[v.strip() for v in line.split(",")] for line in out.splitlines()]


def gpus():
    """The GPUs TensorFlow sees (an empty list on a CPU machine)."""
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def _images(name, shape, num_train, num_test, cache_dir):
    """Packed images (see pack_data.py), else random ones of that shape."""
    import pack_data

    packed = pack_data.load(name, cache_dir)
    if packed is not None:
        (x, y), (x_test, y_test) = packed
        return x[:num_train], y[:num_train], x_test, y_test, "packed"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (num_train, *shape), dtype=np.uint8)
    x_test = rng.integers(0, 256, (num_test, *shape), dtype=np.uint8)
    y = rng.integers(0, 10, num_train).astype(np.uint8)
    y_test = rng.integers(0, 10, num_test).astype(np.uint8)
    return x, y, x_test, y_test, "random (no packed copy)"


def _throughput(timer, num_samples):
    """Samples per second over the epochs after the first (tracing)."""
    steady = timer.times[1:] or timer.times
    return num_samples / float(np.median(steady))


def check_students(
    epochs, batch_size, cache_dir, num_train=60000, num_test=10000
):
    """fit_students of the MNIST n = 4 class under mixed_float16."""
    from _common import EpochTimer

    from teacherclass import TeacherClass
    from teacherclass import architectures

    x, y, x_test, y_test, source = _images(
        "mnist", (28, 28, 1), num_train, num_test, cache_dir
    )
    teacher = architectures.mnist_teacher(rescale=True)
    tc = TeacherClass(
        teacher, num_students=4, student=architectures.mnist_student(4)
    )
    start = time.perf_counter()
    tc.fit_teacher(x, y, epochs=1, batch_size=batch_size, verbose=0)
    teacher_seconds = time.perf_counter() - start
    timer = EpochTimer()
    with GpuSampler() as sampler:
        history = tc.fit_students(
            x,
            loss="mse",  # as before (a comparison of MSE fits)
            epochs=epochs,
            batch_size=batch_size,
            callbacks=[timer],
            verbose=0,
        )
    losses = history.history["loss"]
    composed = tc.compose()
    accuracy = composed.evaluate(
        x_test, y_test, verbose=0, return_dict=True
    ).get("accuracy")
    return (
        {
            "data": source,
            "train_samples": int(len(x)),
            "batch_size": batch_size,
            "epochs": epochs,
            "teacher_epoch_seconds": round(teacher_seconds, 2),
            "student_epoch_seconds": [round(t, 3) for t in timer.times],
            "samples_per_second": round(_throughput(timer, len(x)), 1),
            "student_loss": [float(v) for v in losses],
            "losses_finite": bool(np.all(np.isfinite(losses))),
            "composed_test_accuracy": accuracy,
            "composed_output_dtype": str(
                np.asarray(composed.predict(x_test[:2], verbose=0)).dtype
            ),
            "gpu": sampler.summary(),
        },
        tc,
        composed,
    )


def _latency(model, batch_sizes, repeats):
    """Median milliseconds per call on the GPU, after warm-up."""
    import tensorflow as tf

    from teacherclass.latency import input_specs
    from teacherclass.latency import sample_inputs
    from teacherclass.latency import time_call

    call = tf.function(lambda x: model(x, training=False))
    specs = input_specs(model)
    return {
        str(b): round(time_call(call, sample_inputs(specs, b), repeats), 4)
        for b in batch_sizes
    }


def check_latency(tc, composed, repeats):
    """Teacher, composed and (where it applies) fused composed latency."""
    result = {
        "batch_sizes": [1, 64],
        "teacher_ms": _latency(tc.teacher, (1, 64), repeats),
        "composed_ms": _latency(composed, (1, 64), repeats),
    }
    try:
        from teacherclass import fusion
    except ImportError:
        result["fused"] = "teacherclass.fusion is not available"
        return result
    try:
        fused = fusion.fuse(composed)
    except Exception as e:  # report, do not fail the whole check
        result["fused"] = f"not fused: {type(e).__name__}: {e}"
        return result
    model = getattr(fused, "model", fused)
    result["fused_ms"] = _latency(model, (1, 64), repeats)
    return result


def check_vgg(steps, batch_size, cache_dir, num_train=10000, num_test=2000):
    """The paper's VGG-16 CIFAR-10 teacher for `steps` training steps."""
    import keras

    from teacherclass import architectures

    x, y, x_test, y_test, source = _images(
        "cifar10", (32, 32, 3), num_train, num_test, cache_dir
    )
    model = architectures.cifar10_teacher(paper=True, rescale=True)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    steps_per_epoch = max(1, len(x) // batch_size)
    epochs = max(1, -(-steps // steps_per_epoch))
    from _common import EpochTimer

    timer = EpochTimer()
    with GpuSampler() as sampler:
        history = model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=[timer],
            verbose=0,
        )
    losses = history.history["loss"]
    return {
        "data": source,
        "parameters": int(model.count_params()),
        "optimizer_loss_scaled": isinstance(
            model.optimizer, keras.optimizers.LossScaleOptimizer
        ),
        "steps": steps_per_epoch * epochs,
        "batch_size": batch_size,
        "epoch_seconds": [round(t, 3) for t in timer.times],
        "samples_per_second": round(
            _throughput(timer, steps_per_epoch * batch_size), 1
        ),
        "loss": [float(v) for v in losses],
        "losses_finite": bool(np.all(np.isfinite(losses))),
        "test_accuracy": model.evaluate(
            x_test, y_test, verbose=0, return_dict=True
        )["accuracy"],
        "gpu": sampler.summary(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Check a GPU end to end: mixed_float16 students, "
        "latency, the paper's VGG-16 teacher."
    )
    parser.add_argument("--student-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--vgg-steps", type=int, default=300)
    parser.add_argument("--vgg-batch-size", type=int, default=128)
    parser.add_argument("--latency-repeats", type=int, default=50)
    parser.add_argument(
        "--cache-dir", default=str(Path(__file__).parent / "cache")
    )
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, and run on CPU too: checks the script itself",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    found = gpus()
    if not found and not args.smoke:
        print("skipped: no GPU")
        return 0
    # (train, test) samples for the students and the VGG-16 teacher.
    sizes = (
        ((256, 64), (16, 8)) if args.smoke else ((60000, 10000), (10000, 2000))
    )

    import keras
    from _common import environment
    from _common import write_result

    keras.config.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    result = {
        "benchmark": "gpu_check",
        "precision": "mixed_float16",
        "smoke": args.smoke,
        "environment": environment(),
        "devices": [d.name for d in found],
        "nvidia_smi": _smi("name,memory.total,driver_version"),
    }
    students, tc, composed = check_students(
        args.student_epochs, args.batch_size, args.cache_dir, *sizes[0]
    )
    result["fit_students"] = students
    print(
        f"fit_students: {students['samples_per_second']:.0f} samples/s, "
        f"GPU {students['gpu']}"
    )
    result["latency"] = check_latency(tc, composed, args.latency_repeats)
    print(f"latency (ms): {result['latency']}")
    result["vgg16_teacher"] = check_vgg(
        args.vgg_steps, args.vgg_batch_size, args.cache_dir, *sizes[1]
    )
    print(
        "VGG-16 teacher: "
        f"{result['vgg16_teacher']['samples_per_second']:.0f} samples/s"
    )
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    write_result(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
