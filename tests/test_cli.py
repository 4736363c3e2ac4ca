import contextlib
import io
import json
import subprocess
import sys

import pytest

from teacherclass import cli
from teacherclass.report import CompressionReport


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """A 2-epoch digits run written once for the module: (status, out, dir)."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(
            [
                "run",
                "--teacher-epochs",
                "2",
                "--epochs",
                "2",
                "--verbose",
                "0",
                "--run-dir",
                str(run_dir),
            ]
        )
    return status, out.getvalue(), run_dir


def test_run_digits_quick(quick_run):
    status, out, _ = quick_run
    assert status == 0
    assert "digits: 1438 train / 359 test samples" in out
    # Progress for each phase, then the measured table.
    for phase in (
        "== teacher (2 epochs)",
        "== representation and students (2 epochs)",
        "representation cached; training 4 students",
        "student 3: final loss",
        "== compose",
        "== measure",
    ):
        assert phase in out
    header = [s for s in out.splitlines() if s.startswith("model ")][-1]
    assert header.split() == [
        "model",
        "params",
        "FLOPs",
        "ms@1",
        "ms@64",
        "accuracy",
        "mse",
    ]
    assert "student 3" in out
    assert "compression ratio: 10.5x" in out


def test_run_writes_a_run_directory(quick_run):
    _, _, run_dir = quick_run
    for name in (
        "config.json",
        "teacher.keras",
        "composed.keras",
        "report.json",
        "histories.json",
        "students/student_3.keras",
        "students/student_3.json",
        "figures/accuracy_vs_params.png",
        "figures/student_errors.png",
        "figures/training_curves.png",
    ):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "digits" and config["chunks"] == [64] * 4
    report = CompressionReport.load(run_dir / "report.json")
    assert report["models"]["composed"]["params"] == 33290
    assert (
        report["exports"]["composed.keras"]["size_bytes"]
        < (report["exports"]["teacher.keras"]["size_bytes"])
    )


def test_report_command_prints_the_saved_report(quick_run, capsys):
    _, _, run_dir = quick_run
    assert cli.main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == str(CompressionReport.load(run_dir / "report.json"))


def test_export_command_adds_the_artifact_to_the_report(quick_run, capsys):
    _, _, run_dir = quick_run
    argv = ["export", str(run_dir), "--format", "litert", "--int8"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "composed_int8.tflite" in out and "test accuracy" in out
    path = run_dir / "exports" / "composed_int8.tflite"
    assert path.is_file()
    report = CompressionReport.load(run_dir / "report.json")
    entry = report["exports"]["composed_int8.tflite"]
    assert entry["size_bytes"] == path.stat().st_size
    composed = report["models"]["composed"]["accuracy"]
    assert abs(entry["accuracy"] - composed) <= 0.02

    # Exporting again needs --overwrite.
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "pass --overwrite" in err and "Traceback" not in err


@pytest.mark.slow
def test_run_digits_meets_the_target(capsys, tmp_path):
    """The default run: within 2 points of the teacher, >= 5x smaller."""
    run_dir = tmp_path / "run"
    assert cli.main(["run", "--verbose", "0", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    line = [s for s in out.splitlines() if s.startswith("accuracy:")][-1]
    teacher = float(line.split("teacher ")[1].split(",")[0])
    composed = float(line.split("composed ")[1].split(" ")[0])
    ratio = float(line.split(" with ")[1].split("x")[0])
    assert teacher > 0.95
    assert composed >= teacher - 0.02
    assert ratio >= 5
    assert (run_dir / "report.json").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--students", "0"], "--students must be positive"),
        (["run", "--epochs", "-1"], "--epochs must be positive"),
        (
            ["run", "--dataset", "mnist", "--data-dir", "/nonexistent"],
            "mnist",
        ),
        (["report", "/nonexistent-run"], "RUN_DIR /nonexistent-run is not"),
        (["export", "/nonexistent-run"], "RUN_DIR /nonexistent-run is not"),
    ],
)
def test_bad_arguments_give_one_line(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", "/nonexistent-tfds")
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("teacherclass: error: ")
    assert message in err
    assert "Traceback" not in err


def test_an_existing_run_dir_is_not_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    assert cli.main(["run", "--run-dir", str(run_dir)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert (run_dir / "config.json").read_text() == "{}"


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["run", "--run-dir", str(tmp_path), "--overwrite"]
    assert cli.main(argv) == 1
    assert "not a teacherclass run directory" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_report_of_an_unfinished_run(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "has no report.json" in capsys.readouterr().err


def test_int8_needs_litert(tmp_path, capsys):
    for name in ("config.json", "report.json"):
        (tmp_path / name).write_text("{}")
    argv = ["export", str(tmp_path), "--format", "saved_model", "--int8"]
    assert cli.main(argv) == 1
    assert "--int8 needs --format litert" in capsys.readouterr().err


def test_module_and_help():
    result = subprocess.run(
        [sys.executable, "-m", "teacherclass", "run", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "--students" in result.stdout and "--dataset" in result.stdout
    assert "--run-dir" in result.stdout and "--overwrite" in result.stdout


@pytest.mark.parametrize(
    "command, flag",
    [
        (None, "{run,report,export}"),
        ("report", "RUN_DIR"),
        ("export", "--int8"),
    ],
)
def test_every_command_has_help(command, flag, capsys):
    argv = ([command] if command else []) + ["--help"]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    assert flag in capsys.readouterr().out


def test_unknown_dataset_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--dataset", "imagenet"])
    assert info.value.code == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
