"""The `teacherclass` command.

- `teacherclass run` trains a teacher and a class of students, composes
  them, measures the compression and writes a run directory, offline, on a
  dataset that ships with an installed package (scikit-learn's handwritten
  digits) or one in its official layout on disk.
- `teacherclass run --resume RUN_DIR` finishes an interrupted run from the
  products its run directory holds.
- `teacherclass report RUN_DIR` prints a run's report (and redraws its
  figures with `--figures`).
- `teacherclass export RUN_DIR --format litert|saved_model [--int8]` exports
  a run's composed model and adds the artifact to the run's report.

A run directory holds `config.json`, `teacher.keras`, `students/` (one
file per student, `TeacherClass.save_students`), `composed.keras`,
`histories.json`, `figures/*.png`, `report.json` (written last: a run
without it is unfinished) and, after `export`, `exports/`.

Exit status: 0 on success, 1 for a user error (one `teacherclass: error:`
line on stderr), 2 for a usage error found by argparse, 130 when
interrupted (Ctrl-C).

TensorFlow is imported only by the commands that need it, so `--help`
answers at once; its log lines are hidden unless `--verbose`.
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime

_DATASETS = ("digits", "mnist", "fashion_mnist")
# precision.POLICIES, spelt here so `--help` imports no Keras.
_POLICIES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
_DATA_LAYOUTS = {
    "mnist": "mnist/",
    "fashion_mnist": "fashion_mnist/ or fashion-mnist/",
}
_IDX_FILES = (
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"
)
_DEFAULTS = {
    "digits": {"teacher_epochs": 30, "epochs": 80, "batch_size": 64},
    "mnist": {"teacher_epochs": 4, "epochs": 8, "batch_size": 128},
    "fashion_mnist": {"teacher_epochs": 4, "epochs": 8, "batch_size": 128},
}
# The products of a run, in the order `run` writes them; each is written
# whole (to a temporary name, then renamed), so its presence means done.
_PRODUCTS = (
    "config.json",
    "teacher.keras",
    "students",
    "composed.keras",
    "report.json",
)
# Everything `run`, `report --figures` and `export` write in a run
# directory (and their ".partial" leftovers): --overwrite replaces a
# directory holding these only.
_RUN_ENTRIES = (
    *_PRODUCTS,
    "refined_students",
    "histories.json",
    "figures",
    "exports",
)
# `run` options that --resume takes from the run's config.json instead.
_SETTINGS = (
    "dataset",
    "data_dir",
    "run_dir",
    "overwrite",
    "students",
    "teacher_epochs",
    "epochs",
    "fine_tune_epochs",
    "batch_size",
    "seed",
    "precision",
    "conditioning",
    "chunk_order",
    "refine_epochs",
)
# Settings added after the first runs were written: a config.json without
# them ran at these values.
_LATER_SETTINGS = {
    "conditioning": "none",
    "chunk_order": "contiguous",
    "refine_epochs": 0,
}

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A user error: printed as one line, exit status 1."""


class Interrupted(Exception):
    """Ctrl-C: its message says what to do next; exit status 130."""


# ----------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------


class _Formatter(argparse.HelpFormatter):
    """Shows each option's default, unless it has none worth printing."""

    def _get_help_string(self, action):
        help = action.help or ""
        default = action.default
        if (
            "%(default)" in help
            or "default:" in help
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return help
        return f"{help} (default: %(default)s)"


def _parser():
    """The command's parser. A parse of `run` records in `typed` the
    settings typed (`_Setting`)."""
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        # Given after the command too, without resetting one given before.
        default=argparse.SUPPRESS,
        help="show TensorFlow's log lines and warnings",
    )
    parser = argparse.ArgumentParser(
        prog="teacherclass",
        description="Compress a Keras teacher into a class of small students.",
        epilog="Exit status: 0 done, 1 user error, 2 usage error, "
        "130 interrupted.",
        parents=[verbose],
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands, verbose)
    _add_report(commands, verbose)
    _add_export(commands, verbose)
    return parser


class _Setting(argparse.Action):
    """Stores a setting of `run` (of `_SETTINGS`) and adds its name to the
    parse's `typed`: --resume refuses it, even typed at its default."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        typed = tuple(getattr(namespace, "typed", None) or ())
        if self.dest not in typed:
            namespace.typed = (*typed, self.dest)


class _SettingFlag(_Setting):
    """A `store_true` setting of `run`, recorded as `_Setting` records."""

    def __init__(self, option_strings, dest, default=False, help=None):
        super().__init__(
            option_strings, dest, nargs=0, default=default, help=help
        )

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, True, option_string)


def _add_run(commands, verbose):
    run = commands.add_parser(
        "run",
        parents=[verbose],
        formatter_class=_Formatter,
        help="train a teacher and its students, compose, write a run folder",
        description=(
            "Trains a teacher, trains its students on the teacher's "
            "representation, composes them with the teacher's head, measures "
            "parameters, FLOPs, CPU latency, test accuracy and each student's "
            "regression error, and writes everything to a run directory. "
            "Nothing is downloaded: digits ships with scikit-learn; mnist and "
            "fashion_mnist are read from their official IDX files in "
            "--data-dir (or $TEACHERCLASS_DATA). An interrupted run is "
            "finished by `teacherclass run --resume RUN_DIR`."
        ),
    )

    # The settings typed, whatever their value (see `_Setting`).
    run.set_defaults(typed=())

    def add(*names, **kwargs):
        if names[0][2:].replace("-", "_") in _SETTINGS:
            flag = kwargs.get("action") == "store_true"
            kwargs["action"] = _SettingFlag if flag else _Setting
        run.add_argument(*names, **kwargs)

    add("--dataset", choices=_DATASETS, default="digits", help="the data")
    add(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder with the dataset's official files, in mnist/ or "
        "fashion_mnist/ or directly (digits, built in, takes none); with "
        "--resume, in place of the folder the run recorded, if it moved "
        "(default: $TEACHERCLASS_DATA)",
    )
    add(
        "--run-dir",
        metavar="DIR",
        default=None,
        help="where to write the run (default: runs/<dataset>-<timestamp>)",
    )
    add(
        "--overwrite",
        action="store_true",
        help="replace an existing run directory",
    )
    add(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="finish an interrupted run: the settings come from its "
        "config.json, and the teacher, students and composed model it "
        "saved are loaded instead of trained",
    )
    add(
        "--students",
        metavar="N",
        type=int,
        default=4,
        help="number of students",
    )
    add(
        "--teacher-epochs",
        metavar="N",
        type=int,
        default=None,
        help="teacher epochs (default: 30 on digits, 4 on mnist and "
        "fashion_mnist)",
    )
    add(
        "--epochs",
        metavar="N",
        type=int,
        default=None,
        help="student epochs (default: 80 on digits, 8 on mnist and "
        "fashion_mnist)",
    )
    add(
        "--fine-tune-epochs",
        metavar="N",
        type=int,
        default=0,
        help="epochs of head fine-tuning after composing",
    )
    add(
        "--conditioning",
        choices=("none", "standardize", "pca", "whiten"),
        default="none",
        help="the coordinates the students regress the representation in "
        "(`TeacherClass(conditioning=...)`): none, every feature at unit "
        "variance, the covariance's eigenvectors, or both",
    )
    add(
        "--chunk-order",
        choices=("contiguous", "variance", "correlation"),
        default="contiguous",
        help="how the conditioned coordinates are dealt to the students "
        "(`TeacherClass(chunk_order=...)`, needs --conditioning): in "
        "order, an equal share of the variance each, or strongly "
        "correlated features to one student (with standardize)",
    )
    add(
        "--refine-epochs",
        metavar="N",
        type=int,
        default=0,
        help="epochs of end-to-end refinement of the composed model after "
        "composing (`TeacherClass.refine`: students and head on labels "
        "and the teacher's logits)",
    )
    add(
        "--batch-size",
        metavar="N",
        type=int,
        default=None,
        help="batch size (default: 64 on digits, 128 on mnist and "
        "fashion_mnist)",
    )
    add("--seed", metavar="N", type=int, default=0, help="random seed")
    add(
        "--precision",
        choices=_POLICIES,
        default="auto",
        help="Keras dtype policy; auto: mixed_float16 on GPU, "
        "mixed_bfloat16 on a CPU with bfloat16 instructions, float32 on "
        "other CPUs",
    )
    add(
        "--progress",
        type=int,
        choices=(0, 1, 2),
        default=2,
        help="Keras progress output of each phase: 0 phase summaries "
        "only, 1 a progress bar, 2 one line per epoch",
    )
    add(
        "--no-figures",
        action="store_true",
        help="do not draw figures (they need matplotlib)",
    )


def _add_report(commands, verbose):
    report = commands.add_parser(
        "report",
        parents=[verbose],
        formatter_class=_Formatter,
        help="print the report of a run directory",
        description="Prints the compression report saved by `run`.",
    )
    report.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory written by run"
    )
    report.add_argument(
        "--json", action="store_true", help="print the raw JSON instead"
    )
    report.add_argument(
        "--figures",
        action="store_true",
        help="redraw RUN_DIR/figures from the saved report and histories",
    )


def _add_export(commands, verbose):
    export = commands.add_parser(
        "export",
        parents=[verbose],
        formatter_class=_Formatter,
        help="export a run's composed model (SavedModel or LiteRT)",
        description=(
            "Exports the composed model of a run directory (never the "
            "teacher) to RUN_DIR/exports/, measures its size, latency and "
            "test accuracy, and adds them to the run's report."
        ),
    )
    export.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory written by run"
    )
    export.add_argument(
        "--format",
        choices=("litert", "saved_model"),
        default="litert",
        help="the artifact's format",
    )
    export.add_argument(
        "--int8",
        action="store_true",
        help="int8 post-training quantization calibrated on training data "
        "(LiteRT only)",
    )
    export.add_argument(
        "--output",
        metavar="PATH",
        default=None,
        help="where to write (default: RUN_DIR/exports/composed[_int8]"
        ".tflite or RUN_DIR/exports/composed_saved_model)",
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace an existing export"
    )
    export.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder with the dataset's official files, in place of the one "
        "the run recorded (which it then records); for mnist and "
        "fashion_mnist, moved since the run",
    )


def _flag(name):
    return "--" + name.replace("_", "-")


def _conditioning(flag):
    """`TeacherClass`'s `conditioning` of the `--conditioning` flag."""
    return None if flag == "none" else flag


def _check_counts(args):
    for name in ("students", "teacher_epochs", "epochs", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CommandError(
                f"{_flag(name)} must be positive. "
                f"Received: {_flag(name)}={value}"
            )
    for name in ("fine_tune_epochs", "refine_epochs", "seed"):
        value = getattr(args, name)
        if value < 0:
            raise CommandError(
                f"{_flag(name)} must be >= 0. Received: {_flag(name)}={value}"
            )
    if args.seed > 2**32 - 1:  # NumPy's and Keras' seeds are 32 bits
        raise CommandError(
            f"--seed must be at most 2**32 - 1. Received: --seed={args.seed}"
        )


def _check_recipe(args):
    """`--chunk-order` needs the conditioning it orders."""
    order = args.chunk_order
    if order != "contiguous" and args.conditioning == "none":
        raise CommandError(
            "--chunk-order deals conditioned coordinates: pass "
            "--conditioning too. Received: "
            f"--chunk-order={order} --conditioning=none"
        )
    if order == "correlation" and args.conditioning != "standardize":
        raise CommandError(
            "--chunk-order=correlation groups standardized features (pca "
            "and whiten coordinates are uncorrelated): pass --conditioning="
            f"standardize. Received: --chunk-order={order} "
            f"--conditioning={args.conditioning}"
        )


# ----------------------------------------------------------------------
# TensorFlow, quietly
# ----------------------------------------------------------------------


@contextlib.contextmanager
def _stderr_hidden():
    """Sends file descriptor 2 to a temporary file; replays it on error.

    TensorFlow's C++ libraries log at import, before any log level they
    read applies, so only the descriptor itself can hide those lines.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        error = None
        try:
            yield
        except BaseException as e:
            error = e
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if error is not None and not isinstance(error, KeyboardInterrupt):
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))


def _quiet(args):
    """`_stderr_hidden()` unless `--verbose`."""
    if getattr(args, "verbose", False):
        return contextlib.nullcontext()
    return _stderr_hidden()


def _import_tensorflow(verbose):
    """Imports TensorFlow and Keras; hides their logs unless `verbose`."""
    if not verbose:
        # 3: not even errors such as a failed cuInit on a machine without
        # a GPU; what goes wrong reaches the user as a Python exception.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not verbose:
        with _stderr_hidden():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    import logging

    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    if not verbose:
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _load_keras(path, what, compile=False):
    """Loads a `.keras` file of a run, or says why it cannot."""
    import zipfile

    from teacherclass.saving import load_model

    if not zipfile.is_zipfile(path):
        run_dir, name = os.path.split(path)
        # Made from it: kept, they would be measured against the model
        # trained again. (report.json's export records go too: they
        # measured the composed model that is replaced.)
        later = (
            _PRODUCTS[_PRODUCTS.index(name) + 1 :] if name in _PRODUCTS else ()
        )
        later = [p for p in later if os.path.exists(os.path.join(run_dir, p))]
        also = f" and what the run made from it ({', '.join(later)})"
        raise CommandError(
            f"{what} {path} is truncated or not a .keras archive. Delete "
            f"it{also if later else ''}, then {_resume_hint(run_dir)} "
            f"writes {'them' if later else 'it'} again."
        )
    try:
        return load_model(path, compile=compile)
    except (ValueError, TypeError, OSError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CommandError(
            f"{what} {path} could not be loaded: {type(e).__name__}: {first}"
        ) from e


# ----------------------------------------------------------------------
# run
# ----------------------------------------------------------------------


def _precision(name):
    from teacherclass import precision

    return precision.set_policy(name)


def _architectures(dataset, num_students):
    """The teacher and the student template of a dataset."""
    from teacherclass import architectures

    setup = architectures.for_dataset(dataset)
    return setup.teacher(), setup.student(num_students)


def _data_dir(dataset, data_dir, run_dir=None, recorded=None):
    """The folder to read `dataset` from, and where its name came from.

    For a run directory (`run_dir`: `run --resume`, `export`), `--data-dir`
    replaces the folder its config.json recorded (`recorded`), and
    TEACHERCLASS_DATA is not read: the run names its own data. digits
    ships with scikit-learn: a `--data-dir` for it is an error, not
    ignored.
    """
    if dataset == "digits":
        if data_dir is not None:
            subject = "--dataset digits" if run_dir is None else run_dir
            raise CommandError(
                f"{subject} reads digits, which ships with scikit-learn and "
                "is read from no folder: leave out --data-dir. Received: "
                f"--data-dir={data_dir}"
            )
        return None, None
    if data_dir is not None:
        source = "--data-dir"
    elif run_dir is not None:
        if recorded is None or not os.path.isdir(recorded):
            raise CommandError(
                f"{run_dir} reads {dataset} from the folder its config.json "
                "records, which is not a folder (moved or deleted?); pass "
                "--data-dir DIR, a folder holding "
                f"{_DATA_LAYOUTS[dataset]} with the official files of "
                f"{dataset}, to read it from there. Received: "
                f"data_dir={recorded} in {os.path.join(run_dir, 'config.json')}"
            )
        return recorded, "the recorded data_dir"
    elif os.environ.get("TEACHERCLASS_DATA"):
        data_dir, source = os.environ["TEACHERCLASS_DATA"], "TEACHERCLASS_DATA"
    else:
        raise CommandError(
            f"--dataset {dataset} is read from its official IDX files in "
            "--data-dir DIR or the folder named by the TEACHERCLASS_DATA "
            "environment variable; neither is given. Received: "
            "--data-dir=None, TEACHERCLASS_DATA unset"
        )
    if not os.path.isdir(data_dir):
        raise CommandError(
            f"{source} must be a folder holding {_DATA_LAYOUTS[dataset]} "
            f"with the official files of {dataset}. Received: "
            f"{source}={data_dir} (not a folder)"
        )
    # Absolute: config.json keeps it for --resume and export, which may
    # run from another folder.
    return os.path.abspath(data_dir), source


def _load(dataset, data_dir, split, source="--data-dir", run_dir=None):
    """`dataset`'s `split`, prepared for its architectures; errors worded
    for the command: a new run (`--dataset`, `--data-dir`,
    TEACHERCLASS_DATA) or one of `run_dir` (`--data-dir` only)."""
    from teacherclass import architectures
    from teacherclass import datasets

    if run_dir is None:
        subject = f"--dataset {dataset}"
        advice = "Pass --data-dir, or set TEACHERCLASS_DATA,"
    else:
        subject = f"{run_dir} ({dataset})"
        advice = "Pass --data-dir"
    try:
        x, y = datasets.load(dataset, split, data_dir=data_dir)
    except FileNotFoundError as e:
        raise CommandError(
            f"{subject}: the {split} files were not found in "
            f"{source}={data_dir}. {advice} to a folder holding, in "
            f"{_DATA_LAYOUTS.get(dataset, '')} or directly, {_IDX_FILES} "
            "(or unzipped)."
        ) from e
    except datasets.WrongDatasetError as e:
        # The library's message names its Python argument (`name=`).
        fix = (
            f"pass --dataset {e.found}, or --data-dir"
            if run_dir is None
            else "pass --data-dir"
        )
        raise CommandError(
            f"{subject}: the IDX files in {e.where} are the official "
            f"{e.found} files (their labels match), not {dataset} ones; "
            f"{fix} to a folder holding {_DATA_LAYOUTS[dataset]} with the "
            f"files of {dataset}. Received: {source}={data_dir}"
        ) from e
    return architectures.for_dataset(dataset).prepare(x), y


def _phase(title):
    print(f"\n== {title}", flush=True)


def _check_run_dir(path, overwrite):
    """Checks, before anything runs, that the run can be written there."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CommandError(
            f"--run-dir must be a directory path; {parent} is a file. "
            f"Received: --run-dir={path}"
        )
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise CommandError(
                "--run-dir must be a directory. Received: "
                f"--run-dir={path} (a file)"
            )
        entries = os.listdir(path)
        if entries and not overwrite:
            raise CommandError(
                f"--run-dir {path} exists; pass --overwrite to replace it, "
                f"or choose another --run-dir. Received: --run-dir={path}"
            )
        if entries and not _is_run_config(os.path.join(path, "config.json")):
            raise CommandError(
                f"--run-dir {path} is not empty and is not a teacherclass "
                "run directory (no config.json written by `teacherclass "
                "run`); refusing to replace it. Received: "
                f"--run-dir={path}"
            )
        ours = {
            *_RUN_ENTRIES,
            *(_partial_name(name) for name in _RUN_ENTRIES),
        }
        foreign = sorted(set(entries) - ours)
        if foreign:
            raise CommandError(
                f"--run-dir {path} holds files a run does not write "
                f"({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); refusing to "
                f"replace it. Received: --run-dir={path}"
            )


def _is_run_config(path):
    """Whether `path` is a config.json that `teacherclass run` wrote."""
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict):
        return False
    config = {**_LATER_SETTINGS, **config}
    return all(key in config for key in _SETTINGS)


def _create_run_dir(path):
    """Makes the run directory; empties an existing one (checked by
    `_check_run_dir`: empty, or a run that --overwrite replaces), keeping
    the directory itself, which may be a link the user made."""
    if not os.path.isdir(path):
        os.makedirs(path)
        return
    for name in os.listdir(path):
        entry = os.path.join(path, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.remove(entry)


def _saved(run_dir):
    """The products of `_PRODUCTS` that `run_dir` holds."""
    return [
        name
        for name in _PRODUCTS
        if os.path.exists(os.path.join(run_dir, name))
    ]


def _resume_hint(run_dir):
    return f"`teacherclass run --resume {run_dir}`"


def _partial_name(path):
    """Where `_writing` writes `path` before renaming it."""
    base, ext = os.path.splitext(path)
    return f"{base}.partial{ext}"


@contextlib.contextmanager
def _writing(path):
    """Yields a temporary path beside `path`, renamed to it when done."""
    partial = _partial_name(path)
    for stale in (partial,):
        if os.path.isdir(stale):
            shutil.rmtree(stale)
        elif os.path.lexists(stale):
            os.remove(stale)
    yield partial
    os.replace(partial, path)


def _write_json(path, content):
    with _writing(path) as partial, open(partial, "w") as f:
        json.dump(content, f, indent=1)


def _read_json(path, what):
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, ValueError) as e:
        raise CommandError(
            f"{what} {path} is not readable JSON: {type(e).__name__}: {e}"
        ) from e
    if not isinstance(content, dict):
        raise CommandError(
            f"{what} {path} must hold a JSON object. "
            f"Received: {type(content).__name__}"
        )
    return content


class _StudentProgress:
    """A Keras callback printing the students' losses on lines of their own."""

    @staticmethod
    def make(num_students, chunks, every):
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


def _resume_settings(args):
    """The settings of the run in `args.resume`, and its config.json as
    saved; checks it is resumable."""
    run_dir = args.resume
    typed = getattr(args, "typed", None)
    if typed is None:
        # `args` not parsed by `_parser` (made in Python): what differs
        # from the defaults is what was given.
        defaults = _parser().parse_args(["run"])
        typed = [
            name
            for name in _SETTINGS
            if getattr(args, name) != getattr(defaults, name)
        ]
    # --data-dir replaces the run's data folder: the data may move.
    given = [name for name in _SETTINGS if name in typed and name != "data_dir"]
    if given:
        received = " ".join(
            _flag(name)
            if getattr(args, name) is True
            else f"{_flag(name)}={getattr(args, name)}"
            for name in given
        )
        raise CommandError(
            "--resume takes the run's settings from RUN_DIR/config.json; "
            f"leave out {', '.join(_flag(name) for name in given)}. "
            f"Received: {received} with --resume={run_dir}"
        )
    if not os.path.isdir(run_dir):
        raise CommandError(
            "--resume must name a run directory written by `teacherclass "
            f"run`. Received: --resume={run_dir} (not a directory)"
        )
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise CommandError(
            "--resume must name a run directory written by `teacherclass "
            f"run`; it has no config.json. Received: --resume={run_dir}"
        )
    saved = _read_json(path, "--resume")
    config = {**_LATER_SETTINGS, **saved}
    missing = [k for k in _SETTINGS if k not in config]
    if missing:
        raise CommandError(
            f"--resume {run_dir}: its config.json lacks {missing}; it was "
            "not written by this version of `teacherclass run`. Received: "
            f"--resume={run_dir}"
        )
    settings = argparse.Namespace(**vars(args))
    for key in _SETTINGS:
        setattr(settings, key, config[key])
    settings.run_dir = run_dir
    settings.data_dir = args.data_dir  # None: the recorded one
    return settings, saved


def _record_data_dir(run_dir, config, data_dir):
    """Records in `run_dir`/config.json the data folder that --data-dir
    gave in place of the one `config` (as saved) records."""
    if data_dir is None or data_dir == config.get("data_dir"):
        return
    _write_json(
        os.path.join(run_dir, "config.json"), {**config, "data_dir": data_dir}
    )
    print(
        f"data_dir recorded in {os.path.join(run_dir, 'config.json')}: "
        f"{data_dir} (was {config.get('data_dir')})"
    )


def run(args):
    """Trains, composes, measures and writes the run. Returns the report.

    With `--resume RUN_DIR`, finishes an interrupted run: each product the
    run directory holds (teacher, students, composed model) is loaded
    instead of trained again. `args` are `_parser()`'s parse, whose
    `typed` names the settings typed, which --resume refuses (in a
    namespace made otherwise, those that differ from their defaults).
    """
    state = {}
    try:
        return _run(args, state)
    except KeyboardInterrupt:
        run_dir = state.get("run_dir")
        if run_dir is None:
            raise
        raise Interrupted(
            f"{run_dir} is unfinished (saved: {', '.join(_saved(run_dir))}); "
            f"resume it with {_resume_hint(run_dir)}"
        ) from None


def _run(args, state):
    verbose = getattr(args, "verbose", False)
    resuming = args.resume is not None
    if resuming:
        args, saved = _resume_settings(args)
        if os.path.isfile(os.path.join(args.run_dir, "report.json")):
            print(f"{args.run_dir} is finished; nothing to resume.")
            return None
        state["run_dir"] = args.run_dir
        data_dir, source = _data_dir(
            args.dataset, args.data_dir, args.run_dir, saved.get("data_dir")
        )
    else:
        _check_counts(args)
        _check_recipe(args)
        data_dir, source = _data_dir(args.dataset, args.data_dir)
    run_dir = args.run_dir or os.path.join(
        "runs", f"{args.dataset}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    if not resuming:
        _check_run_dir(run_dir, args.overwrite)
        for key, value in _DEFAULTS[args.dataset].items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    _import_tensorflow(verbose)
    from teacherclass import TeacherClass

    policy = _precision(args.precision)
    of_run = args.run_dir if resuming else None
    x, y = _load(args.dataset, data_dir, "train", source, of_run)
    x_test, y_test = _load(args.dataset, data_dir, "test", source, of_run)
    if resuming:  # read from --data-dir: the run's data from now on
        _record_data_dir(args.run_dir, saved, data_dir)
    teacher_path = os.path.join(run_dir, "teacher.keras")
    try:
        _seed(args.seed, "teacher model")
        teacher, student = _architectures(args.dataset, args.students)
        if resuming and os.path.isfile(teacher_path):
            teacher = _load_keras(teacher_path, "RUN_DIR", compile=True)
        _seed(args.seed, "student models")  # whether the teacher loaded
        tc = TeacherClass(
            teacher,
            num_students=args.students,
            student=student,
            conditioning=_conditioning(args.conditioning),
            chunk_order=args.chunk_order,  # "contiguous" is the default
        )
    except ValueError as e:
        raise CommandError(
            f"--students={args.students} does not fit the teacher: {e}"
        ) from e
    if not resuming:
        _create_run_dir(run_dir)
        config = {
            **{k: getattr(args, k) for k in _SETTINGS},
            "data_dir": data_dir,
            "run_dir": run_dir,
            "precision": policy,
            "chunks": list(tc.chunks),
            "feature_layer": tc.feature_layer,
        }
        _write_json(os.path.join(run_dir, "config.json"), config)
        state["run_dir"] = run_dir  # resumable from here on
    resumed = f" (resumed; saved: {', '.join(_saved(run_dir))})"
    recipe = ""
    if args.conditioning != "none":
        recipe += f"; targets {args.conditioning}, dealt {args.chunk_order}"
    if args.refine_epochs:
        recipe += f"; {args.refine_epochs} refinement epoch(s)"
    print(
        f"{args.dataset}: {len(x)} train / {len(x_test)} test samples; "
        f"{args.students} students of widths {list(tc.chunks)}{recipe}; "
        f"precision {policy}; run directory {run_dir}"
        + (resumed if resuming else "")
    )
    return _stages(args, run_dir, tc, (x, y), (x_test, y_test))


# What `_seed` seeds, in run order: each starts from its own seed, so
# that it draws the same numbers whether the stages before it ran or were
# loaded (a resumed run trains what an uninterrupted one would).
_SEEDED = ("teacher model", "student models", "teacher", "students", "compose")


def _stage_seed(seed, stage):
    """The seed of `stage` in a run of `--seed` `seed`: `seed * 1000` plus
    the stage's index, so that no stage of one `--seed` shares another's
    seed (with `seed + index`, seed 1's teacher model was seed 0's
    student models). Modulo 2**32: NumPy's and Keras' seeds are 32 bits
    (two seeds then share one only if they differ by a multiple of
    2**29)."""
    return (seed * 1000 + _SEEDED.index(stage)) % 2**32


def _seed(seed, stage):
    import keras

    keras.utils.set_random_seed(_stage_seed(seed, stage))


def _stages(args, run_dir, tc, train, test):
    """The run's stages; each saves its product, which a resume reuses."""
    import keras

    from teacherclass import fusion
    from teacherclass import report as report_lib

    (x, y), (x_test, y_test) = train, test
    start = time.perf_counter()
    histories_path = os.path.join(run_dir, "histories.json")
    histories = {}
    if os.path.isfile(histories_path):
        histories = _read_json(histories_path, "RUN_DIR")

    teacher_path = os.path.join(run_dir, "teacher.keras")
    if os.path.isfile(teacher_path):
        _phase("teacher: loaded from teacher.keras")
    else:
        _phase(f"teacher ({args.teacher_epochs} epochs)")
        _seed(args.seed, "teacher")
        history = tc.fit_teacher(
            x,
            y,
            epochs=args.teacher_epochs,
            batch_size=args.batch_size,
            verbose=args.progress,
        )
        with _writing(teacher_path) as partial:
            tc.teacher.save(partial)
        histories["teacher"] = _history(history)
        _write_json(histories_path, histories)
        print(f"teacher saved ({time.perf_counter() - start:.0f} s)")

    students_path = os.path.join(run_dir, "students")
    if os.path.isdir(students_path):
        _phase("students: loaded from students/")
        tc.load_students(students_path)
    else:
        _phase(f"representation and students ({args.epochs} epochs)")
        _seed(args.seed, "students")
        progress = _StudentProgress.make(
            tc.num_students, tc.chunks, every=max(1, args.epochs // 4)
        )
        # Keras' own progress bar first, so that it ends its line before
        # the students' summary line is printed.
        callbacks = [keras.callbacks.ProgbarLogger()] if args.progress else []
        history = tc.fit_students(
            x,
            epochs=args.epochs,
            batch_size=args.batch_size,
            verbose=args.progress,
            callbacks=callbacks + [progress],
        )
        with _writing(students_path) as partial:
            tc.save_students(partial)
        histories["students"] = _history(history)
        _write_json(histories_path, histories)
        last = history.history
        for i in range(tc.num_students):
            print(
                f"student {i}: final loss {last[f'student_{i}_loss'][-1]:.4f}"
                f", {tc.students[i].count_params():,} parameters, saved"
            )

    composed_path = os.path.join(run_dir, "composed.keras")
    # Refinement trains the students in place: the report measures them
    # as refined, on a resumed run too.
    refined_path = os.path.join(run_dir, "refined_students")
    if os.path.isfile(composed_path):
        _phase("compose: loaded from composed.keras")
        composed = _load_keras(composed_path, "RUN_DIR")
        if os.path.isdir(refined_path):
            tc.load_students(refined_path)
    else:
        if os.path.isdir(refined_path):  # of a composed model now gone
            shutil.rmtree(refined_path)
        _phase("compose")
        _seed(args.seed, "compose")
        refine = args.refine_epochs > 0
        fuse = "none" if refine else "auto"
        if args.fine_tune_epochs > 0:
            composed = tc.compose(
                fine_tune=True,
                x=x,
                y=y,
                fuse=fuse,
                epochs=args.fine_tune_epochs,
                batch_size=args.batch_size,
                verbose=args.progress,
            )
        else:
            composed = tc.compose(fuse=fuse)
        if refine:
            _phase(f"refine ({args.refine_epochs} epochs, end to end)")
            history = keras.callbacks.History()
            refined = tc.refine(
                x,
                y,
                epochs=args.refine_epochs,
                batch_size=args.batch_size,
                verbose=args.progress,
                callbacks=[history],
            )
            composed = fusion.fuse(refined, mode="auto")
            histories["refine"] = _history(history)
            _write_json(histories_path, histories)
            with _writing(refined_path) as partial:
                tc.save_students(partial)
        info = composed.fusion
        print(
            f"towers fused: {info.mode}"
            + (f" ({info.reason})" if info.reason else "")
        )
        with _writing(composed_path) as partial:
            composed.save(partial)
        print(f"composed model saved to {composed_path}")

    _phase("measure (parameters, FLOPs, CPU latency, accuracy)")
    report = report_lib.measure(
        tc,
        x_test,
        y_test,
        exports={
            "teacher.keras": teacher_path,
            "composed.keras": composed_path,
        },
        composed=composed,
        repeats=10,
    )
    if not args.no_figures:
        _figures(report, run_dir, histories)
    # Last: a run directory with report.json is finished.
    with _writing(os.path.join(run_dir, "report.json")) as partial:
        report.save(partial)

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
    print(_compute_summary(report))
    print(f"run written to {run_dir}")
    return report


def _compared(teacher, composed, fewer, more):
    """'2.0x fewer FLOPs' or '1.5x more FLOPs', the composed model first."""
    if composed <= teacher:
        return f"{teacher / max(composed, 1e-12):.1f}x {fewer}"
    return f"{composed / max(teacher, 1e-12):.1f}x {more}"


def _compute_summary(report):
    """The composed model's compute and CPU latency against the teacher's."""
    teacher, composed = (report["models"][k] for k in ("teacher", "composed"))
    flops = _compared(
        teacher["flops"], composed["flops"], "fewer FLOPs", "MORE FLOPs"
    )
    latency = ", ".join(
        _compared(
            teacher["latency_ms"][batch],
            composed["latency_ms"][batch],
            f"faster at batch {batch}",
            f"SLOWER at batch {batch}",
        )
        for batch in sorted(composed["latency_ms"], key=int)
    )
    return (
        f"compute against the teacher: {flops}; CPU latency {latency} "
        "(medians of repeated calls)"
    )


def _figures(report, run_dir, histories):
    try:
        paths = report.save_figures(
            os.path.join(run_dir, "figures"), histories=histories or None
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
    """The config and report of a finished run, or an error saying why not."""
    if not os.path.exists(run_dir):
        raise CommandError(
            "RUN_DIR must be a run directory written by `teacherclass run`. "
            f"Received: RUN_DIR={run_dir} (does not exist)"
        )
    if not os.path.isdir(run_dir):
        raise CommandError(
            "RUN_DIR must be a run directory written by `teacherclass run`. "
            f"Received: RUN_DIR={run_dir} (not a directory)"
        )
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise CommandError(
            "RUN_DIR must be a run directory written by `teacherclass run`; "
            f"it has no config.json. Received: RUN_DIR={run_dir}"
        )
    if not os.path.isfile(os.path.join(run_dir, "report.json")):
        raise CommandError(
            f"RUN_DIR {run_dir} is an unfinished run: it has no report.json "
            f"(saved: {', '.join(_saved(run_dir))}). Finish it with "
            f"{_resume_hint(run_dir)}"
        )
    from teacherclass import report as report_lib

    config = _read_json(os.path.join(run_dir, "config.json"), "RUN_DIR")
    path = os.path.join(run_dir, "report.json")
    report = report_lib.CompressionReport(_read_json(path, "RUN_DIR"))
    if not isinstance(report.get("models"), dict):
        raise CommandError(
            f"RUN_DIR {path} is not a report written by `teacherclass run` "
            f"(no models). Received: RUN_DIR={run_dir}"
        )
    return config, report


def report(args):
    """Prints (and optionally redraws) a run's report."""
    _, rep = _read_run(args.run_dir)
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        try:
            text = str(rep)
        except (KeyError, TypeError, ValueError) as e:
            raise CommandError(
                f"RUN_DIR {args.run_dir}/report.json is incomplete: "
                f"{type(e).__name__}: {e}. Received: RUN_DIR={args.run_dir}"
            ) from e
        print(text)
    if args.figures:
        path = os.path.join(args.run_dir, "histories.json")
        histories = None
        if os.path.isfile(path):
            histories = _read_json(path, "RUN_DIR")
        try:
            paths = rep.save_figures(
                os.path.join(args.run_dir, "figures"), histories=histories
            )
        except ImportError as e:
            raise CommandError(
                "--figures needs matplotlib: pip install matplotlib "
                '(or, in a clone of the repository, pip install ".[demo]")'
                f". ({e})"
            ) from e
        print(f"figures: {', '.join(paths)}")
    return rep


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def export(args):
    """Exports a run's composed model and records it in the report."""
    config, rep = _read_run(args.run_dir)
    if args.int8 and args.format != "litert":
        raise CommandError(
            "--int8 needs --format litert. Received: "
            f"--format={args.format} --int8"
        )
    suffix = "_int8" if args.int8 else ""
    name = (
        f"composed{suffix}.tflite"
        if args.format == "litert"
        else "composed_saved_model"
    )
    output = args.output or os.path.join(args.run_dir, "exports", name)
    existed = os.path.lexists(output)
    if existed and not args.overwrite:
        raise CommandError(
            f"{output} exists; pass --overwrite to replace it. "
            f"Received: --output={output}"
        )
    from teacherclass import export as export_lib

    try:  # before anything loads: --overwrite replaces an export only
        export_lib.check_replaceable(output, args.format, "--output")
    except FileExistsError as e:
        raise CommandError(str(e)) from None
    dataset = config.get("dataset")
    if dataset not in _DATASETS:
        raise CommandError(
            f"RUN_DIR {args.run_dir}/config.json names no dataset of "
            f"{', '.join(_DATASETS)}. Received: dataset={dataset!r}"
        )
    data_dir, source = _data_dir(
        dataset, args.data_dir, args.run_dir, config.get("data_dir")
    )
    _import_tensorflow(getattr(args, "verbose", False))
    from teacherclass import report as report_lib

    composed = _load_keras(
        os.path.join(args.run_dir, "composed.keras"), "RUN_DIR"
    )
    # Before the export: data that fails to load leaves no artifact.
    x = None
    if args.int8:
        x, _ = _load(dataset, data_dir, "train", source, args.run_dir)
    x_test, y_test = _load(dataset, data_dir, "test", source, args.run_dir)
    try:
        if args.int8:
            print("calibrating int8 ranges on training data", flush=True)
        start = time.perf_counter()
        with _quiet(args):  # the converter's C++ log lines
            export_lib.export(
                composed,
                output,
                format=args.format,
                quantize="int8" if args.int8 else None,
                representative_data=x,
                overwrite=args.overwrite,
            )
    except KeyboardInterrupt:
        if not existed:
            _remove(output)  # a partial artifact
        raise Interrupted(
            f"the export was not finished and {args.run_dir} is unchanged; "
            "run the same command again."
        ) from None
    print(f"exported to {output} ({time.perf_counter() - start:.0f} s)")
    try:
        with _quiet(args):  # LiteRT's interpreter logs its delegate
            entry = report_lib.measure_export(
                output,
                x_test,
                y_test,
                rep.get("batch_sizes", (1, 64)),
                repeats=10,
                threshold=report_lib.decision_threshold(composed),
            )
    except KeyboardInterrupt:
        if not existed:
            _remove(output)  # written, not measured: no half-done export
        raise Interrupted(
            f"the export was not measured and {args.run_dir} is unchanged; "
            "run the same command again."
        ) from None
    key = _export_key(args.run_dir, output)
    rep.setdefault("exports", {})[key] = entry
    with _writing(os.path.join(args.run_dir, "report.json")) as partial:
        rep.save(partial)
    _record_data_dir(args.run_dir, config, data_dir)
    composed_accuracy = rep.get("models", {}).get("composed", {})
    composed_accuracy = composed_accuracy.get("accuracy")
    versus = (
        f" (composed.keras {composed_accuracy:.4f})"
        if composed_accuracy is not None
        else ""
    )
    print(
        f"{key}: {entry['size_bytes']:,} bytes, "
        f"test accuracy {entry['accuracy']:.4f}{versus}"
    )
    return entry


def _export_key(run_dir, output):
    """An export's name in report.json: its file name in the run's
    exports/ folder, else its absolute path (two exports elsewhere may
    share a file name)."""
    exports = os.path.abspath(os.path.join(run_dir, "exports"))
    path = os.path.abspath(output)
    if os.path.dirname(path) == exports:
        return os.path.basename(path)
    return path


_INTERRUPTED_HINTS = {
    "run": "nothing was written yet; run the same command again.",
    "report": "nothing was changed.",
    "export": "run the same command again.",
}


def main(argv=None):
    """Entry point of the `teacherclass` command. Returns the exit status.

    Usage errors (an unknown option, a bad choice, `--help`) exit through
    argparse's `SystemExit` (status 2, or 0 for `--help`).
    """
    args = _parser().parse_args(argv)  # None: sys.argv[1:], as argparse
    commands = {"run": run, "report": report, "export": export}
    try:
        commands[args.command](args)
        sys.stdout.flush()  # a closed pipe fails here, not at exit
    except (Interrupted, KeyboardInterrupt) as e:
        hint = str(e) if isinstance(e, Interrupted) else ""
        hint = hint or _INTERRUPTED_HINTS[args.command]
        print(f"teacherclass: interrupted; {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (`teacherclass report RUN --json | head`): no
        # traceback, and none when Python flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except (CommandError, ValueError, ImportError, OSError) as e:
        message = " ".join(str(e).split())  # one line
        if isinstance(e, OSError) and not isinstance(
            e, (FileNotFoundError, FileExistsError)
        ):
            message = f"{type(e).__name__}: {message}"  # permissions, ...
        print(f"teacherclass: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
