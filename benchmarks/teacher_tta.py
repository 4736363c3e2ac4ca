"""Test-time augmentation of the trained CIFAR-10 teachers: how far each is
from the 92% target when scored as airbench94 scores its own.

airbench94's 94% counts test-time augmentation; `reproduce.py`'s tables
count none (for the teacher as for the classes). This script scores each
trained teacher in `benchmarks/cache/cifar10/` on the test split at
airbench's three levels:

- 0: the image alone (what the tables report; checked against the
  teacher's recorded test accuracy);
- 1: the mean of the logits of the image and of its mirror image;
- 2: level 1's logits averaged with those of the image shifted by one
  pixel up-left and down-right (reflect-padded), each with its mirror:
  0.5 * level 1 + 0.25 * each shift's level 1.

Writes `results/cifar10_teacher_tta.json`, one record per teacher file.
No training; the teachers are read as saved.

    python benchmarks/teacher_tta.py --data-dir ../shared/data
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import environment  # noqa: E402
from _common import write_result  # noqa: E402
from reproduce_state import _git_state  # noqa: E402

from teacherclass import datasets  # noqa: E402

LEVELS = (0, 1, 2)


def _mirror(logits, x):
    """The mean of the logits of `x` and of its mirror image."""
    return 0.5 * (logits(x) + logits(x[:, :, ::-1]))


def tta_levels(logits, x):
    """The logits of images `x` at each of airbench's test-time
    augmentation levels, from six passes over `x` in all.

    Args:
        logits: callable, images `(N, H, W, C)` -> logits `(N, classes)`.
        x: float array of images.

    Returns:
        A list of 3 float arrays `(N, classes)`: level 0 (the image
        alone), 1 (with its mirror), 2 (level 1 averaged with the level 1
        of the image shifted one pixel up-left and down-right,
        reflect-padded: 0.5, 0.25, 0.25).
    """
    alone, mirror = logits(x), logits(x[:, :, ::-1])
    mirrored = 0.5 * (alone + mirror)
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    shifted = [padded[:, :h, :w], padded[:, 2 : h + 2, 2 : w + 2]]
    level2 = 0.5 * mirrored + 0.25 * sum(_mirror(logits, s) for s in shifted)
    return [alone, mirrored, level2]


def score(path, x_test, y_test):
    """One teacher file's test accuracy at every level."""
    teacher = keras.saving.load_model(path)
    head = keras.Model(teacher.input, teacher.get_layer("logits").output)

    def logits(images):
        return np.asarray(
            head.predict(images, batch_size=512, verbose=0), "float32"
        )

    accuracy = {
        f"test_accuracy_tta{level}": float((z.argmax(-1) == y_test).mean())
        for level, z in enumerate(tta_levels(logits, x_test))
    }
    sidecar = path.with_suffix(".json")
    recorded = (
        json.loads(sidecar.read_text()).get("test_accuracy")
        if sidecar.exists()
        else None
    )
    return {
        "file": path.name,
        "recorded_test_accuracy": recorded,
        **accuracy,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument(
        "--teachers",
        nargs="+",
        default=None,
        help="teacher .keras files (default: every teacher-*.keras in "
        "benchmarks/cache/cifar10)",
    )
    p.add_argument("--precision", default="mixed_bfloat16")
    p.add_argument(
        "--out", default=str(HERE / "results/cifar10_teacher_tta.json")
    )
    args = p.parse_args(argv)
    paths = (
        [Path(t) for t in args.teachers]
        if args.teachers
        else sorted((HERE / "cache/cifar10").glob("teacher-*.keras"))
    )
    paths = [t for t in paths if not t.name.endswith(".partial.keras")]
    if not paths:
        p.error(
            "no teacher files: train one with reproduce.py, or pass --teachers"
        )
    keras.config.set_dtype_policy(args.precision)
    x_test, y_test = datasets.load("cifar10", "test", data_dir=args.data_dir)
    x_test = x_test.astype("float32") / 255
    records = []
    for path in paths:
        record = score(path, x_test, y_test.ravel())
        print(
            f"{record['file']}: recorded {record['recorded_test_accuracy']}; "
            + ", ".join(
                f"level {level} {record[f'test_accuracy_tta{level}']:.2%}"
                for level in LEVELS
            ),
            flush=True,
        )
        records.append(record)
    write_result(
        args.out,
        {
            "benchmark": "teacher_tta",
            **environment(),
            "git": _git_state(),
            "precision": args.precision,
            "levels": {
                "0": "the image alone (the tables' protocol)",
                "1": "mean logits of the image and its mirror",
                "2": "0.5 * level 1 + 0.25 * level 1 of each 1-pixel "
                "reflect-padded shift (up-left, down-right): airbench94's",
            },
            "teachers": records,
        },
    )


if __name__ == "__main__":
    main()
