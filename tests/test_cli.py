import subprocess
import sys

import pytest

from teacherclass import cli


def test_run_digits_quick(capsys):
    status = cli.main(
        ["run", "--teacher-epochs", "2", "--epochs", "2", "--verbose", "0"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "digits: 1438 train / 359 test samples" in out
    assert "student 3" in out and "test_mse=" in out
    assert "compression ratio: 10.5x" in out


@pytest.mark.slow
def test_run_digits_meets_the_target(capsys):
    """The default run: within 2 points of the teacher, >= 5x smaller."""
    assert cli.main(["run", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    line = [s for s in out.splitlines() if s.startswith("accuracy:")][-1]
    teacher = float(line.split("teacher ")[1].split(",")[0])
    composed = float(line.split("composed ")[1].split(" ")[0])
    ratio = float(line.split(" with ")[1].split("x")[0])
    assert teacher > 0.95
    assert composed >= teacher - 0.02
    assert ratio >= 5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--students", "0"], "--students must be positive"),
        (["run", "--epochs", "-1"], "--epochs must be positive"),
        (
            ["run", "--dataset", "mnist", "--data-dir", "/nonexistent"],
            "mnist",
        ),
    ],
)
def test_bad_arguments_give_one_line(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", "/nonexistent-tfds")
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("teacherclass: error: ")
    assert message in err
    assert "Traceback" not in err


def test_module_and_help():
    result = subprocess.run(
        [sys.executable, "-m", "teacherclass", "run", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "--students" in result.stdout and "--dataset" in result.stdout


def test_unknown_dataset_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--dataset", "imagenet"])
    assert info.value.code == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
