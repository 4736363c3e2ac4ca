"""The `teacherclass` command.

`teacherclass run` trains a teacher, a class of students, composes them and
prints the compression summary, offline, on a dataset that ships with an
installed package (scikit-learn's handwritten digits) or one in its official
layout on disk.
"""

import argparse
import os
import sys
import time

_DATASETS = ("digits", "mnist", "fashion_mnist")


def _parser():
    parser = argparse.ArgumentParser(
        prog="teacherclass",
        description="Compress a Keras teacher into a class of small students.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="train a teacher and its students, compose, print the summary",
        description=(
            "Trains a teacher, trains its students on the teacher's "
            "representation, composes them with the teacher's head and prints "
            "parameters, test accuracy and each student's regression error. "
            "Nothing is downloaded: digits ships with scikit-learn; mnist and "
            "fashion_mnist are read from their official IDX files in "
            "--data-dir (or $TEACHERCLASS_DATA)."
        ),
    )
    run.add_argument("--dataset", choices=_DATASETS, default="digits")
    run.add_argument(
        "--data-dir",
        default=None,
        help="folder with the dataset's official files (default: "
        "$TEACHERCLASS_DATA)",
    )
    run.add_argument(
        "--students", type=int, default=4, help="number of students"
    )
    run.add_argument(
        "--teacher-epochs", type=int, default=None, help="teacher epochs"
    )
    run.add_argument("--epochs", type=int, default=None, help="student epochs")
    run.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=0,
        help="epochs of head fine-tuning after composing (default 0)",
    )
    run.add_argument("--batch-size", type=int, default=None)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--precision",
        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
        default="auto",
        help="dtype policy; auto: mixed_float16 on GPU, mixed_bfloat16 on CPU",
    )
    run.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=2,
        help="Keras verbosity of each phase",
    )
    return parser


def _positive(args):
    for name in ("students", "teacher_epochs", "epochs", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be positive. Received: {value}")
    if args.fine_tune_epochs < 0:
        raise ValueError(
            "--fine-tune-epochs must be >= 0. "
            f"Received: {args.fine_tune_epochs}"
        )


def _precision(name):
    import keras
    import tensorflow as tf

    if name == "auto":
        gpu = bool(tf.config.list_physical_devices("GPU"))
        name = "mixed_float16" if gpu else "mixed_bfloat16"
    keras.config.set_dtype_policy(name)
    return name


def _setup(dataset, num_students):
    """Teacher, student template and training defaults per dataset."""
    from teacherclass import architectures

    if dataset == "digits":
        return (
            architectures.digits_teacher(),
            architectures.digits_student(),
            {"teacher_epochs": 30, "epochs": 80, "batch_size": 64},
        )
    return (
        architectures.mnist_teacher(),
        architectures.mnist_student(num_students),
        {"teacher_epochs": 4, "epochs": 8, "batch_size": 128},
    )


def _load(dataset, data_dir):
    import numpy as np

    from teacherclass import datasets

    x, y = datasets.load(dataset, "train", data_dir=data_dir)
    x_test, y_test = datasets.load(dataset, "test", data_dir=data_dir)
    if x.dtype == np.uint8:
        x, x_test = x.astype("float32") / 255.0, x_test.astype("float32") / 255
    return x, y, x_test, y_test


def _phase(title):
    print(f"\n== {title}", flush=True)


def run(args):
    """Trains, composes and prints the summary. Returns the report."""
    _positive(args)
    import keras

    from teacherclass import TeacherClass

    keras.utils.set_random_seed(args.seed)
    policy = _precision(args.precision)
    start = time.perf_counter()
    x, y, x_test, y_test = _load(args.dataset, args.data_dir)
    teacher, student, defaults = _setup(args.dataset, args.students)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    tc = TeacherClass(teacher, num_students=args.students, student=student)
    print(
        f"{args.dataset}: {len(x)} train / {len(x_test)} test samples; "
        f"{args.students} students of widths {list(tc.chunks)}; "
        f"precision {policy}"
    )

    _phase(f"teacher ({args.teacher_epochs} epochs)")
    tc.fit_teacher(
        x,
        y,
        epochs=args.teacher_epochs,
        batch_size=args.batch_size,
        verbose=args.verbose,
    )
    teacher_accuracy = teacher.evaluate(x_test, y_test, verbose=0)[1]

    _phase(f"students ({args.epochs} epochs, one pass for all)")
    tc.fit_students(
        x, epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose
    )

    _phase("compose")
    composed = tc.compose(
        fine_tune=args.fine_tune_epochs > 0,
        x=x,
        y=y,
        epochs=args.fine_tune_epochs,
        batch_size=args.batch_size,
        verbose=args.verbose,
    )
    composed_accuracy = composed.evaluate(x_test, y_test, verbose=0)[1]
    errors = tc.evaluate_students(x_test, batch_size=args.batch_size)

    report = tc.report()
    report["teacher_accuracy"] = float(teacher_accuracy)
    report["composed_accuracy"] = float(composed_accuracy)
    for i in range(tc.num_students):
        report[f"student_{i}_test_mse"] = float(errors[f"student_{i}_loss"])
    _phase(f"summary ({time.perf_counter() - start:.0f} s)")
    print(report)
    print(
        f"accuracy: teacher {teacher_accuracy:.4f}, composed "
        f"{composed_accuracy:.4f} "
        f"({100 * (composed_accuracy - teacher_accuracy):+.2f} points) with "
        f"{report['compression_ratio']:.1f}x fewer parameters"
    )
    return report


def main(argv=None):
    """Entry point of the `teacherclass` command. Returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.command == "run":
            run(args)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"teacherclass: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
