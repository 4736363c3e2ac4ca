"""The `teacherclass` command.

- `teacherclass run` trains a teacher and a class of students, composes
  them, measures the compression and writes a run directory, offline, on a
  dataset that ships with an installed package (scikit-learn's handwritten
  digits) or one in its official layout on disk.
- `teacherclass report RUN_DIR` prints a run's report (and redraws its
  figures with `--figures`).
- `teacherclass export RUN_DIR --format litert|saved_model [--int8]` exports
  a run's composed model and adds the artifact to the run's report.

A run directory holds `config.json`, `teacher.keras`, `students/` (one
file per student, `TeacherClass.save_students`), `composed.keras`,
`histories.json`, `report.json`, `figures/*.png` and, after `export`,
`exports/`.
"""

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime

_DATASETS = ("digits", "mnist", "fashion_mnist")
_RUN_FILES = ("config.json", "report.json")


class CommandError(Exception):
    """A user error: printed as one line, exit status 1."""


def _parser():
    parser = argparse.ArgumentParser(
        prog="teacherclass",
        description="Compress a Keras teacher into a class of small students.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands)
    _add_report(commands)
    _add_export(commands)
    return parser


def _add_run(commands):
    run = commands.add_parser(
        "run",
        help="train a teacher and its students, compose, write a run folder",
        description=(
            "Trains a teacher, trains its students on the teacher's "
            "representation, composes them with the teacher's head, measures "
            "parameters, FLOPs, CPU latency, test accuracy and each student's "
            "regression error, and writes everything to a run directory. "
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
        "--run-dir",
        default=None,
        help="where to write the run (default: runs/<dataset>-<timestamp>)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run directory",
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
        help="Keras verbosity of each phase (0: phase summaries only)",
    )
    run.add_argument(
        "--no-figures",
        action="store_true",
        help="do not draw figures (they need matplotlib)",
    )


def _add_report(commands):
    report = commands.add_parser(
        "report",
        help="print the report of a run directory",
        description="Prints the compression report saved by `run`.",
    )
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument(
        "--json", action="store_true", help="print the raw JSON instead"
    )
    report.add_argument(
        "--figures",
        action="store_true",
        help="redraw RUN_DIR/figures from the saved report and histories",
    )


def _add_export(commands):
    export = commands.add_parser(
        "export",
        help="export a run's composed model (SavedModel or LiteRT)",
        description=(
            "Exports the composed model of a run directory (never the "
            "teacher) to RUN_DIR/exports/, measures its size, latency and "
            "test accuracy, and adds them to the run's report."
        ),
    )
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument(
        "--format", choices=("litert", "saved_model"), default="litert"
    )
    export.add_argument(
        "--int8",
        action="store_true",
        help="int8 post-training quantization calibrated on training data "
        "(LiteRT only)",
    )
    export.add_argument(
        "--output",
        default=None,
        help="where to write (default: RUN_DIR/exports/composed[_int8]"
        ".tflite or RUN_DIR/exports/composed_saved_model)",
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace an existing export"
    )


# ----------------------------------------------------------------------
# run
# ----------------------------------------------------------------------


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


def _load(dataset, data_dir, split):
    import numpy as np

    from teacherclass import datasets

    x, y = datasets.load(dataset, split, data_dir=data_dir)
    if x.dtype == np.uint8:
        x = x.astype("float32") / 255.0
    return x, y


def _phase(title):
    print(f"\n== {title}", flush=True)


def _check_run_dir(path, overwrite):
    """Checks, before anything runs, that the run can be written there."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise CommandError(
                f"--run-dir {path} exists and is not a directory."
            )
        entries = os.listdir(path)
        if entries and not overwrite:
            raise CommandError(
                f"--run-dir {path} exists; pass --overwrite to replace it, "
                "or choose another --run-dir."
            )
        if entries and not any(f in entries for f in _RUN_FILES):
            raise CommandError(
                f"--run-dir {path} is not empty and is not a teacherclass "
                "run directory; refusing to replace it."
            )


def _create_run_dir(path):
    if os.path.exists(path):
        shutil.rmtree(path)  # checked by _check_run_dir
    os.makedirs(path)


class _Progress:
    """Keras callbacks printing one line per phase step at verbose=0."""

    @staticmethod
    def students(num_students, chunks, every):
        import keras

        class StudentProgress(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = time.perf_counter()
                print(
                    f"representation cached; training {num_students} "
                    f"students of widths {list(chunks)} in one pass",
                    flush=True,
                )

            def on_epoch_end(self, epoch, logs=None):
                epochs = self.params.get("epochs") or 0
                if (epoch + 1) % every and epoch + 1 != epochs:
                    return
                losses = ", ".join(
                    f"{i}: {logs.get(f'student_{i}_loss', float('nan')):.4f}"
                    for i in range(num_students)
                )
                print(
                    f"  epoch {epoch + 1}/{epochs}  student loss {losses}  "
                    f"({time.perf_counter() - self.start:.0f} s)",
                    flush=True,
                )

        return StudentProgress()


def _history(history):
    return {
        k: [float(v) for v in values]
        for k, values in (getattr(history, "history", None) or {}).items()
    }


def run(args):
    """Trains, composes, measures and writes the run. Returns the report."""
    _positive(args)
    run_dir = args.run_dir or os.path.join(
        "runs", f"{args.dataset}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    _check_run_dir(run_dir, args.overwrite)
    import keras

    from teacherclass import TeacherClass
    from teacherclass import report as report_lib

    keras.utils.set_random_seed(args.seed)
    policy = _precision(args.precision)
    start = time.perf_counter()
    x, y = _load(args.dataset, args.data_dir, "train")
    x_test, y_test = _load(args.dataset, args.data_dir, "test")
    teacher, student, defaults = _setup(args.dataset, args.students)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    tc = TeacherClass(teacher, num_students=args.students, student=student)
    _create_run_dir(run_dir)
    print(
        f"{args.dataset}: {len(x)} train / {len(x_test)} test samples; "
        f"{args.students} students of widths {list(tc.chunks)}; "
        f"precision {policy}; run directory {run_dir}"
    )
    config = {
        **{k: v for k, v in vars(args).items() if k != "command"},
        "run_dir": run_dir,
        "precision": policy,
        "chunks": list(tc.chunks),
        "feature_layer": tc.feature_layer,
    }
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)

    _phase(f"teacher ({args.teacher_epochs} epochs)")
    teacher_history = tc.fit_teacher(
        x,
        y,
        epochs=args.teacher_epochs,
        batch_size=args.batch_size,
        verbose=args.verbose,
    )
    tc.teacher.save(os.path.join(run_dir, "teacher.keras"))
    print(f"teacher saved ({time.perf_counter() - start:.0f} s)")

    _phase(f"representation and students ({args.epochs} epochs)")
    progress = _Progress.students(
        tc.num_students, tc.chunks, every=max(1, args.epochs // 4)
    )
    students_history = tc.fit_students(
        x,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=args.verbose,
        callbacks=[progress],
    )
    tc.save_students(os.path.join(run_dir, "students"))
    last = students_history.history
    for i in range(tc.num_students):
        print(
            f"student {i}: final loss {last[f'student_{i}_loss'][-1]:.4f}, "
            f"{tc.students[i].count_params():,} parameters, saved"
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
    composed_path = os.path.join(run_dir, "composed.keras")
    composed.save(composed_path)
    print(f"composed model saved to {composed_path}")

    _phase("measure (parameters, FLOPs, CPU latency, accuracy)")
    report = report_lib.measure(
        tc,
        x_test,
        y_test,
        exports={
            "teacher.keras": os.path.join(run_dir, "teacher.keras"),
            "composed.keras": composed_path,
        },
        composed=composed,
        repeats=10,
    )
    report.save(os.path.join(run_dir, "report.json"))
    histories = {
        "teacher": _history(teacher_history),
        "students": _history(students_history),
    }
    with open(os.path.join(run_dir, "histories.json"), "w") as f:
        json.dump(histories, f)
    if not args.no_figures:
        _figures(report, run_dir, histories)

    _phase(f"summary ({time.perf_counter() - start:.0f} s)")
    print(report)
    teacher_accuracy = report["models"]["teacher"]["accuracy"]
    composed_accuracy = report["models"]["composed"]["accuracy"]
    print(
        f"accuracy: teacher {teacher_accuracy:.4f}, composed "
        f"{composed_accuracy:.4f} "
        f"({100 * (composed_accuracy - teacher_accuracy):+.2f} points) with "
        f"{report['compression_ratio']:.1f}x fewer parameters"
    )
    print(f"run written to {run_dir}")
    return report


def _figures(report, run_dir, histories):
    try:
        paths = report.save_figures(
            os.path.join(run_dir, "figures"), histories=histories
        )
    except ImportError as e:
        print(f"figures skipped: {e}")
        return []
    print(f"figures: {', '.join(os.path.basename(p) for p in paths)}")
    return paths


# ----------------------------------------------------------------------
# report and export
# ----------------------------------------------------------------------


def _read_run(run_dir):
    if not os.path.isdir(run_dir):
        raise CommandError(
            f"RUN_DIR {run_dir} is not a directory. "
            "Create one with `teacherclass run`."
        )
    for name in _RUN_FILES:
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise CommandError(
                f"RUN_DIR {run_dir} has no {name}: not a finished "
                "`teacherclass run` directory."
            )
    from teacherclass import report as report_lib

    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    report = report_lib.CompressionReport.load(
        os.path.join(run_dir, "report.json")
    )
    return config, report


def report(args):
    """Prints (and optionally redraws) a run's report."""
    _, rep = _read_run(args.run_dir)
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print(rep)
    if args.figures:
        path = os.path.join(args.run_dir, "histories.json")
        histories = None
        if os.path.isfile(path):
            with open(path) as f:
                histories = json.load(f)
        try:
            paths = rep.save_figures(
                os.path.join(args.run_dir, "figures"), histories=histories
            )
        except ImportError as e:
            raise CommandError(str(e)) from e
        print(f"figures: {', '.join(paths)}")
    return rep


def export(args):
    """Exports a run's composed model and records it in the report."""
    config, rep = _read_run(args.run_dir)
    if args.int8 and args.format != "litert":
        raise CommandError("--int8 needs --format litert.")
    suffix = "_int8" if args.int8 else ""
    name = (
        f"composed{suffix}.tflite"
        if args.format == "litert"
        else "composed_saved_model"
    )
    output = args.output or os.path.join(args.run_dir, "exports", name)
    if os.path.lexists(output) and not args.overwrite:
        raise CommandError(f"{output} exists; pass --overwrite to replace it.")
    import keras

    import teacherclass  # noqa: F401  (registers the layers to load)
    from teacherclass import export as export_lib
    from teacherclass import report as report_lib

    composed = keras.saving.load_model(
        os.path.join(args.run_dir, "composed.keras"), compile=False
    )
    data_dir = config.get("data_dir")
    x = None
    if args.int8:
        print("calibrating int8 ranges on training data", flush=True)
        x, _ = _load(config["dataset"], data_dir, "train")
    start = time.perf_counter()
    export_lib.export(
        composed,
        output,
        format=args.format,
        quantize="int8" if args.int8 else None,
        representative_data=x,
        overwrite=args.overwrite,
    )
    print(f"exported to {output} ({time.perf_counter() - start:.0f} s)")
    x_test, y_test = _load(config["dataset"], data_dir, "test")
    entry = report_lib.measure_export(
        output, x_test, y_test, rep.get("batch_sizes", (1, 64)), repeats=10
    )
    rep.setdefault("exports", {})[os.path.basename(output)] = entry
    rep.save(os.path.join(args.run_dir, "report.json"))
    composed_accuracy = rep.get("models", {}).get("composed", {})
    composed_accuracy = composed_accuracy.get("accuracy")
    versus = (
        f" (composed.keras {composed_accuracy:.4f})"
        if composed_accuracy is not None
        else ""
    )
    print(
        f"{os.path.basename(output)}: {entry['size_bytes']:,} bytes, "
        f"test accuracy {entry['accuracy']:.4f}{versus}"
    )
    return entry


def main(argv=None):
    """Entry point of the `teacherclass` command. Returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    commands = {"run": run, "report": report, "export": export}
    try:
        commands[args.command](args)
    except (
        CommandError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ImportError,
    ) as e:
        print(f"teacherclass: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
