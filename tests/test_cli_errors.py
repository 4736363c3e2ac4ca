"""Bad input to each command: its exit status, one line naming the argument
and the value received, and the user's files left as they were.

Every row runs `cli.main` in this process, against a folder of fake runs
written by `_user_files`; only `test_a_corrupt_model_in_a_fresh_process`
starts a process, to see the whole stderr a user sees.
"""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from teacherclass import cli

_SETTINGS = {
    "dataset": "digits",
    "data_dir": None,
    "run_dir": "runs/digits",
    "overwrite": False,
    "students": 4,
    "teacher_epochs": 2,
    "epochs": 2,
    "fine_tune_epochs": 0,
    "batch_size": 64,
    "seed": 0,
    "precision": "float32",
}
_REPORT = {"models": {"composed": {"accuracy": 0.9}}}


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, (dict, list)):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)


def _user_files(root):
    """The folders and files the rows point the commands at."""
    # A finished run whose composed.keras was cut short (a full disk).
    _write(root / "run" / "config.json", _SETTINGS)
    _write(root / "run" / "report.json", _REPORT)
    _write(root / "run" / "teacher.keras", b"PK\x03\x04 not really")
    archive = root / "zip.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", "weights" * 100)
    _write(root / "run" / "composed.keras", archive.read_bytes()[:150])
    archive.unlink()
    _write(root / "run" / "exports" / "composed.tflite", b"an export")
    # A zip archive, but not a Keras one.
    _write(root / "zip" / "config.json", _SETTINGS)
    _write(root / "zip" / "report.json", _REPORT)
    with zipfile.ZipFile(root / "zip" / "composed.keras", "w") as z:
        z.writestr("hello.txt", "hello")
    # A run stopped after its teacher.
    _write(root / "unfinished" / "config.json", _SETTINGS)
    _write(root / "unfinished" / "teacher.keras", b"PK\x03\x04 teacher")
    # Not runs.
    _write(root / "file.txt", "a file")
    _write(root / "mine" / "notes.txt", "my notes")
    # A folder with a config.json that is not only a run.
    _write(root / "project" / "config.json", _SETTINGS)
    _write(root / "project" / "notes.txt", "my notes")
    # A folder of run-like names whose config.json is not a run's.
    _write(root / "theirs" / "config.json", {"learning_rate": 0.1})
    _write(root / "theirs" / "figures" / "loss_curve.png", "a plot")
    (root / "empty").mkdir()
    _write(root / "badjson" / "config.json", "{not json")
    _write(root / "badjson" / "report.json", "{not json")
    _write(root / "list" / "config.json", _SETTINGS)
    _write(root / "list" / "report.json", [1, 2])
    _write(root / "oldconfig" / "config.json", {"dataset": "digits"})
    # A run whose teacher.keras was cut short, with what was made from it.
    _write(root / "stale" / "config.json", _SETTINGS)
    _write(root / "stale" / "teacher.keras", b"PK\x03\x04 teacher")
    _write(root / "stale" / "students" / "student_0.keras", b"a student")
    _write(root / "stale" / "composed.keras", b"a composed model")
    # mnist runs (unfinished, finished) whose data folder has moved.
    moved = {**_SETTINGS, "dataset": "mnist", "data_dir": str(root / "gone")}
    _write(root / "moved" / "config.json", moved)
    _write(root / "moved_done" / "config.json", moved)
    _write(root / "moved_done" / "report.json", _REPORT)
    _write(root / "moved_done" / "composed.keras", b"PK\x03\x04 composed")


def _files(root):
    """Every path under `root`, with the bytes of each file."""
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


# (argv with {tmp} for the folder of _user_files, exit status, fragments
# the message must hold, environment). Status 1: our one-line error;
# status 2: argparse's usage error, whose last line names the argument.
ROWS = {
    # run
    "students 0": (["run", "--students", "0"], 1, ["--students=0"]),
    "students abc": (
        ["run", "--students", "abc"],
        2,
        ["argument --students", "'abc'"],
    ),
    "students 300": (
        ["run", "--students", "300", "--run-dir", "{tmp}/new"],
        1,
        ["--students=300", "256"],
    ),
    "epochs 0": (["run", "--epochs", "0"], 1, ["--epochs=0"]),
    "teacher epochs -1": (
        ["run", "--teacher-epochs", "-1"],
        1,
        ["--teacher-epochs=-1"],
    ),
    "negative batch": (["run", "--batch-size", "-3"], 1, ["--batch-size=-3"]),
    "fine-tune -1": (
        ["run", "--fine-tune-epochs", "-1"],
        1,
        ["--fine-tune-epochs=-1"],
    ),
    "seed -1": (["run", "--seed", "-1"], 1, ["--seed=-1"]),
    "refine -1": (
        ["run", "--refine-epochs", "-1"],
        1,
        ["--refine-epochs=-1"],
    ),
    "chunk order unconditioned": (
        ["run", "--chunk-order", "variance"],
        1,
        ["--chunk-order=variance", "--conditioning=none"],
    ),
    "correlation of pca": (
        ["run", "--conditioning", "pca", "--chunk-order", "correlation"],
        1,
        ["--chunk-order=correlation", "--conditioning=pca"],
    ),
    "unknown conditioning": (
        ["run", "--conditioning", "zca"],
        2,
        ["argument --conditioning", "'zca'"],
    ),
    "unknown dataset": (
        ["run", "--dataset", "imagenet"],
        2,
        ["argument --dataset", "'imagenet'"],
    ),
    "unknown precision": (
        ["run", "--precision", "float8"],
        2,
        ["argument --precision", "'float8'"],
    ),
    "data dir for digits": (
        ["run", "--data-dir", "{tmp}/empty", "--run-dir", "{tmp}/new"],
        1,
        [
            "--dataset digits reads digits, which ships with scikit-learn "
            "and is read from no folder: leave out --data-dir. Received: "
            "--data-dir={tmp}/empty"
        ],
    ),
    "data dir missing": (
        ["run", "--dataset", "mnist", "--data-dir", "{tmp}/nowhere"],
        1,
        ["--data-dir={tmp}/nowhere", "not a folder"],
    ),
    "data dir is a file": (
        ["run", "--dataset", "mnist", "--data-dir", "{tmp}/file.txt"],
        1,
        ["--data-dir={tmp}/file.txt"],
    ),
    "no data dir": (
        ["run", "--dataset", "fashion_mnist"],
        1,
        ["--data-dir", "TEACHERCLASS_DATA", "Received: --data-dir=None"],
        {"TEACHERCLASS_DATA": None},
    ),
    "TEACHERCLASS_DATA missing": (
        ["run", "--dataset", "mnist"],
        1,
        ["TEACHERCLASS_DATA={tmp}/nowhere"],
        {"TEACHERCLASS_DATA": "{tmp}/nowhere"},
    ),
    "data dir without the files": (
        ["run", "--dataset", "mnist", "--data-dir", "{tmp}/empty"],
        1,
        ["--data-dir={tmp}/empty", "TEACHERCLASS_DATA", "idx3-ubyte"],
        {"TFDS_DATA_DIR": "{tmp}/no-tfds"},
    ),
    "existing run dir": (
        ["run", "--run-dir", "{tmp}/run"],
        1,
        ["pass --overwrite", "--run-dir={tmp}/run"],
    ),
    "run dir is a file": (
        ["run", "--run-dir", "{tmp}/file.txt"],
        1,
        ["--run-dir={tmp}/file.txt", "(a file)"],
    ),
    "overwrite a run folder holding other files": (
        ["run", "--run-dir", "{tmp}/project", "--overwrite"],
        1,
        [
            "holds files a run does not write (notes.txt)",
            "--run-dir={tmp}/project",
        ],
    ),
    "overwrite a folder that is not a run": (
        ["run", "--run-dir", "{tmp}/mine", "--overwrite"],
        1,
        ["not a teacherclass run directory", "--run-dir={tmp}/mine"],
    ),
    "overwrite a folder whose config.json is not a run's": (
        ["run", "--run-dir", "{tmp}/theirs", "--overwrite"],
        1,
        ["not a teacherclass run directory", "--run-dir={tmp}/theirs"],
    ),
    "run dir inside a file": (
        ["run", "--run-dir", "{tmp}/file.txt/run"],
        1,
        ["{tmp}/file.txt is a file", "--run-dir={tmp}/file.txt/run"],
    ),
    "seed beyond 32 bits": (
        ["run", "--seed", "99999999999"],
        1,
        ["--seed must be at most 2**32 - 1", "--seed=99999999999"],
    ),
    "resume a folder that is not a run": (
        ["run", "--resume", "{tmp}/mine"],
        1,
        ["no config.json", "--resume={tmp}/mine"],
    ),
    "resume a missing folder": (
        ["run", "--resume", "{tmp}/nowhere"],
        1,
        ["--resume={tmp}/nowhere", "not a directory"],
    ),
    "resume a file": (
        ["run", "--resume", "{tmp}/file.txt"],
        1,
        ["--resume={tmp}/file.txt"],
    ),
    "resume with settings": (
        ["run", "--resume", "{tmp}/unfinished", "--students", "3"],
        1,
        ["leave out --students", "--resume={tmp}/unfinished"],
    ),
    "resume with a setting at its default value": (
        ["run", "--resume", "{tmp}/unfinished", "--students", "4"],
        1,
        [
            "leave out --students.",
            "Received: --students=4 with --resume={tmp}/unfinished",
        ],
    ),
    "resume with --overwrite": (
        ["run", "--resume", "{tmp}/unfinished", "--seed", "0", "--overwrite"],
        1,
        [
            "leave out --overwrite, --seed.",
            "Received: --overwrite --seed=0 with --resume={tmp}/unfinished",
        ],
    ),
    "resume from a moved data folder": (
        ["run", "--resume", "{tmp}/moved"],
        1,
        [
            "{tmp}/moved reads mnist from the folder its config.json "
            "records, which is not a folder (moved or deleted?); pass "
            "--data-dir DIR",
            "Received: data_dir={tmp}/gone in {tmp}/moved/config.json",
        ],
    ),
    "resume with a --data-dir that is not a folder": (
        ["run", "--resume", "{tmp}/moved", "--data-dir", "{tmp}/nowhere"],
        1,
        ["--data-dir={tmp}/nowhere (not a folder)"],
    ),
    "resume with a --data-dir without the files": (
        ["run", "--resume", "{tmp}/moved", "--data-dir", "{tmp}/empty"],
        1,
        [
            "{tmp}/moved (mnist): the train files were not found in "
            "--data-dir={tmp}/empty. Pass --data-dir to a folder holding",
        ],
        {"TFDS_DATA_DIR": "{tmp}/no-tfds"},
    ),
    "resume digits with a --data-dir": (
        ["run", "--resume", "{tmp}/unfinished", "--data-dir", "{tmp}/empty"],
        1,
        [
            "{tmp}/unfinished reads digits, which ships with scikit-learn",
            "leave out --data-dir. Received: --data-dir={tmp}/empty",
        ],
    ),
    "resume a truncated teacher with what was made from it": (
        ["run", "--resume", "{tmp}/stale"],
        1,
        [
            "{tmp}/stale/teacher.keras is truncated or not a .keras "
            "archive. Delete it and what the run made from it (students, "
            "composed.keras), then `teacherclass run --resume {tmp}/stale` "
            "writes them again."
        ],
    ),
    "resume a corrupt config": (
        ["run", "--resume", "{tmp}/badjson"],
        1,
        ["{tmp}/badjson/config.json", "not readable JSON"],
    ),
    "resume a config of another version": (
        ["run", "--resume", "{tmp}/oldconfig"],
        1,
        ["lacks", "--resume={tmp}/oldconfig"],
    ),
    "resume a truncated teacher": (
        ["run", "--resume", "{tmp}/unfinished"],
        1,
        ["{tmp}/unfinished/teacher.keras", "truncated"],
    ),
    # report
    "report a missing folder": (
        ["report", "{tmp}/nowhere"],
        1,
        ["RUN_DIR={tmp}/nowhere", "does not exist"],
    ),
    "report a file": (
        ["report", "{tmp}/file.txt"],
        1,
        ["RUN_DIR={tmp}/file.txt", "not a directory"],
    ),
    "report an empty folder": (
        ["report", "{tmp}/empty"],
        1,
        ["RUN_DIR={tmp}/empty", "no config.json"],
    ),
    "report an unfinished run": (
        ["report", "{tmp}/unfinished"],
        1,
        ["no report.json", "teacherclass run --resume {tmp}/unfinished"],
    ),
    "report a corrupt report": (
        ["report", "{tmp}/badjson"],
        1,
        ["{tmp}/badjson/config.json", "not readable JSON"],
    ),
    "report a report that is a list": (
        ["report", "{tmp}/list"],
        1,
        ["{tmp}/list/report.json", "JSON object", "list"],
    ),
    "report an unknown option": (
        ["report", "{tmp}/run", "--html"],
        2,
        ["unrecognized arguments: --html"],
    ),
    # export
    "export a missing folder": (
        ["export", "{tmp}/nowhere"],
        1,
        ["RUN_DIR={tmp}/nowhere"],
    ),
    "export a truncated model": (
        ["export", "{tmp}/run", "--output", "{tmp}/out.tflite"],
        1,
        [
            "{tmp}/run/composed.keras is truncated or not a .keras archive. "
            "Delete it and what the run made from it (report.json), then "
            "`teacherclass run --resume {tmp}/run` writes them again."
        ],
    ),
    "export a zip that is not a model": (
        ["export", "{tmp}/zip", "--output", "{tmp}/out.tflite"],
        1,
        ["{tmp}/zip/composed.keras", "could not be loaded"],
    ),
    "export an unfinished run": (
        ["export", "{tmp}/unfinished"],
        1,
        ["teacherclass run --resume {tmp}/unfinished"],
    ),
    "export from a moved data folder": (
        ["export", "{tmp}/moved_done", "--output", "{tmp}/out.tflite"],
        1,
        [
            "{tmp}/moved_done reads mnist from the folder its config.json "
            "records, which is not a folder (moved or deleted?); pass "
            "--data-dir DIR",
            "Received: data_dir={tmp}/gone in {tmp}/moved_done/config.json",
        ],
    ),
    "export with a --data-dir that is not a folder": (
        [
            "export",
            "{tmp}/moved_done",
            "--output",
            "{tmp}/out.tflite",
            "--data-dir",
            "{tmp}/file.txt",
        ],
        1,
        ["--data-dir={tmp}/file.txt (not a folder)"],
    ),
    "export digits with a --data-dir": (
        [
            "export",
            "{tmp}/run",
            "--output",
            "{tmp}/out.tflite",
            "--data-dir",
            "{tmp}/empty",
        ],
        1,
        [
            "{tmp}/run reads digits, which ships with scikit-learn",
            "leave out --data-dir. Received: --data-dir={tmp}/empty",
        ],
    ),
    "export an unknown format": (
        ["export", "{tmp}/run", "--format", "onnx"],
        2,
        ["argument --format", "'onnx'"],
    ),
    "export int8 saved_model": (
        ["export", "{tmp}/run", "--format", "saved_model", "--int8"],
        1,
        ["--int8 needs --format litert", "--format=saved_model"],
    ),
    "export over an export": (
        ["export", "{tmp}/run"],
        1,
        ["pass --overwrite", "--output={tmp}/run/exports/composed.tflite"],
    ),
    "export over the run folder": (
        [
            "export",
            "{tmp}/run",
            "--format",
            "saved_model",
            "--output",
            "{tmp}/run",
            "--overwrite",
        ],
        1,
        [
            "{tmp}/run exists and is not a SavedModel folder",
            "--output={tmp}/run",
        ],
    ),
    "export over a file that is not an export": (
        [
            "export",
            "{tmp}/run",
            "--output",
            "{tmp}/run/exports/composed.tflite",
            "--overwrite",
        ],
        1,
        ["is not a TFLite file", "--output={tmp}/run/exports/composed.tflite"],
    ),
    "no command": ([], 2, ["the following arguments are required"]),
}


def _status(argv):
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse
        return e.code


@pytest.mark.parametrize("row", list(ROWS), ids=list(ROWS))
def test_bad_input(row, tmp_path, monkeypatch, capsys):
    argv, status, fragments, *env = ROWS[row]
    tmp = str(tmp_path)
    monkeypatch.chdir(tmp_path)  # a default run dir would land here
    for name, value in (env[0] if env else {}).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(tmp=tmp))
    _user_files(tmp_path)
    before = _files(tmp_path)

    assert _status([a.format(tmp=tmp) for a in argv]) == status
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = err.splitlines()
    if status == 1:
        assert len(lines) == 1, err
        assert lines[0].startswith("teacherclass: error: ")
    else:
        assert lines[0].startswith("usage: teacherclass")
    for fragment in fragments:
        assert fragment.format(tmp=tmp) in lines[-1], (fragment, lines[-1])
    # Nothing written, replaced or removed.
    assert _files(tmp_path) == before


def test_run_refuses_settings_typed_with_resume_without_main(tmp_path):
    """`cli.run` on a parse of its own refuses a setting typed at its
    default, as `main` does: the parse records what was typed."""
    _user_files(tmp_path)
    before = _files(tmp_path)
    resume = ["run", "--resume", str(tmp_path / "unfinished")]
    assert cli._parser().parse_args(resume).typed == ()
    args = cli._parser().parse_args(resume + ["--seed", "0", "--overwrite"])
    assert args.typed == ("seed", "overwrite")
    with pytest.raises(cli.CommandError, match="leave out --overwrite, --seed"):
        cli.run(args)
    assert _files(tmp_path) == before


def test_every_command_is_fed_bad_input():
    commands = [argv[0] for argv, *_ in ROWS.values() if argv]
    for command in ("run", "report", "export"):
        assert commands.count(command) >= 5, command
    assert len(ROWS) >= 30


def test_docs_state_the_exit_statuses():
    """docs/cli.md's table of exit statuses is the one the CLI uses."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    table = re.findall(r"^\| `?(\d+)`? \|", docs.read_text(), re.MULTILINE)
    assert sorted(int(s) for s in table) == sorted(
        {cli.EXIT_OK, cli.EXIT_ERROR, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED}
    )
    assert (cli.EXIT_ERROR, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED) == (
        1,
        2,
        130,
    )
    statuses = {row[1] for row in ROWS.values()}
    assert statuses == {cli.EXIT_ERROR, cli.EXIT_USAGE}


def test_mnist_files_given_as_fashion_mnist_name_the_flags(
    tmp_path, monkeypatch, capsys
):
    """The library's error names its argument `name=`; the command's names
    --dataset and --data-dir."""
    import hashlib

    from helpers import write_idx_files

    from teacherclass import datasets

    labels = write_idx_files(tmp_path / "data" / "mnist")
    # These tiny files stand for the official MNIST ones.
    digests = {
        split: hashlib.sha256(y.tobytes()).hexdigest()[:16]
        for split, y in labels.items()
    }
    monkeypatch.setitem(datasets._OFFICIAL_LABELS, "mnist", digests)
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "mnist"
    argv = ["run", "--dataset", "fashion_mnist", "--data-dir", str(folder)]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == (
        f"teacherclass: error: --dataset fashion_mnist: the IDX files in "
        f"{folder} are the official mnist files (their labels match), not "
        "fashion_mnist ones; pass --dataset mnist, or --data-dir to a "
        "folder holding fashion_mnist/ or fashion-mnist/ with the files of "
        f"fashion_mnist. Received: --data-dir={folder}\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_corrupt_model_in_a_fresh_process(tmp_path):
    """The whole stderr is one line: TensorFlow's log lines are hidden."""
    _user_files(tmp_path)
    before = _files(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "teacherclass",
            "export",
            str(tmp_path / "run"),
            "--output",
            str(tmp_path / "out.tflite"),
        ],
        capture_output=True,
        text=True,
        env={
            k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"
        },
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("teacherclass: error: RUN_DIR ")
    assert "composed.keras is truncated" in result.stderr
    assert _files(tmp_path) == before
