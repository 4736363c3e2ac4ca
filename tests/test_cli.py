import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import time_once

from teacherclass import cli
from teacherclass.report import CompressionReport


def _files(root):
    """Every file under `root` with its bytes: what must stay untouched."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _copy_run(quick_run, tmp_path, remove=()):
    """A copy of the quick run without `remove`: an interrupted run."""
    _, _, run_dir = quick_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("exports"))
    for name in remove:
        path = copy / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return copy


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """A 2-epoch digits run written once for the module: (status, out, dir).

    With Keras' progress bars (`--progress 1`), which the students' summary
    lines must not land in.
    """
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.MonkeyPatch.context() as m:
        time_once(m)
        status = cli.main(
            [
                "run",
                "--teacher-epochs",
                "2",
                "--epochs",
                "2",
                "--progress",
                "1",
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
        "MACs",
        "ms@1",
        "ms@64",
        "accuracy",
        "mse",
    ]
    assert "student 3" in out
    assert "compression ratio: 10.5x" in out


def test_student_summary_lines_are_lines_of_their_own(quick_run):
    _, out, _ = quick_run
    summaries = [s for s in out.splitlines() if "student loss" in s]
    assert len(summaries) == 2, summaries
    for line in summaries:
        # Not after a progress bar's text or carriage return.
        assert line.startswith("  epoch "), repr(line[:120])


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
    # Each product was written whole, under a temporary name first.
    assert not [p for p in run_dir.rglob("*") if ".partial" in p.name]
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


def test_report_into_a_closed_pipe_ends_quietly(quick_run):
    """`teacherclass report RUN --json | head`: no traceback."""
    _, _, run_dir = quick_run
    script = (
        "import sys, os\n"
        "r, w = os.pipe(); os.close(r)\n"
        "os.dup2(w, sys.stdout.fileno())\n"
        "from teacherclass import cli\n"
        f"sys.exit(cli.main(['report', {str(run_dir)!r}, '--json']))\n"
    )
    # Buffered stdout (as in a shell): the write fails at the flush.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env
    )
    assert result.returncode == cli.EXIT_ERROR
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "BrokenPipeError" not in result.stderr


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
    assert cli.main(["run", "--progress", "0", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    line = [s for s in out.splitlines() if s.startswith("accuracy:")][-1]
    teacher = float(line.split("teacher ")[1].split(",")[0])
    composed = float(line.split("composed ")[1].split(" ")[0])
    ratio = float(line.split(" with ")[1].split("x")[0])
    assert teacher > 0.95
    assert composed >= teacher - 0.02
    assert ratio >= 5
    assert (run_dir / "report.json").is_file()


def test_run_with_conditioning_correlation_and_refinement(
    tmp_path, capsys, quick_latency
):
    run_dir = tmp_path / "run"
    # Wiring more than accuracy (the default run checks that): two
    # students, no figures. 8 student epochs: the composed model reached
    # 0.91 in float32 and bfloat16 (5 epochs: 0.80 in float32).
    argv = ["run", "--teacher-epochs", "5", "--epochs", "8", "--progress", "0"]
    argv += ["--conditioning", "standardize", "--chunk-order", "correlation"]
    argv += ["--students", "2", "--no-figures"]
    argv += ["--refine-epochs", "1", "--run-dir", str(run_dir)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "; targets standardize, dealt correlation; 1 refinement" in out
    assert "== refine (1 epochs, end to end)" in out
    config = json.loads((run_dir / "config.json").read_text())
    assert config["conditioning"] == "standardize"
    assert config["chunk_order"] == "correlation"
    assert config["refine_epochs"] == 1
    histories = json.loads((run_dir / "histories.json").read_text())
    assert len(histories["refine"]["loss"]) == 1
    saved = json.loads((run_dir / "students" / "student_0.json").read_text())
    assert saved["conditioning"] == "standardize"
    assert (run_dir / "students" / "conditioning.npz").is_file()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["models"]["composed"]["accuracy"] > 0.8
    # Refinement trained the students in place: saved as refined, and a
    # run resumed after its composed model reports them as they are.
    assert (run_dir / "refined_students" / "student_0.keras").is_file()
    (run_dir / "report.json").unlink()
    assert cli.main(["run", "--resume", str(run_dir), "--progress", "0"]) == 0
    assert "compose: loaded from composed.keras" in capsys.readouterr().out
    resumed = json.loads((run_dir / "report.json").read_text())
    students = [m for m in report["models"] if m.startswith("student_")]
    assert students
    for name in students:
        assert resumed["models"][name]["mse"] == pytest.approx(
            report["models"][name]["mse"], rel=1e-5
        )
    # Resumed after its students: they load under the same conditioning.
    for name in ("composed.keras", "report.json"):
        (run_dir / name).unlink()
    assert cli.main(["run", "--resume", str(run_dir), "--progress", "0"]) == 0
    out = capsys.readouterr().out
    assert "students: loaded from students/" in out
    assert "== refine (1 epochs, end to end)" in out
    assert (run_dir / "report.json").is_file()


def test_neighbouring_seeds_share_no_stage_seed(monkeypatch):
    """Runs of seeds 0, 1, 2 averaged together are independent draws: no
    stage of one is seeded like a stage of another (`seed + index` made
    seed 1's teacher model seed 0's student models)."""
    import keras

    seeded = []
    monkeypatch.setattr(keras.utils, "set_random_seed", seeded.append)
    for seed in (0, 1, 2, 2**32 - 1):
        for stage in cli._SEEDED:
            cli._seed(seed, stage)
    assert len(seeded) == len(set(seeded)) == 4 * len(cli._SEEDED)
    assert all(0 <= s < 2**32 for s in seeded)


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


def test_report_figures_redraws_the_figures(quick_run, tmp_path, capsys):
    run_dir = _copy_run(quick_run, tmp_path, remove=["figures"])
    assert cli.main(["report", str(run_dir), "--figures"]) == 0
    assert "figures:" in capsys.readouterr().out
    for name in ("accuracy_vs_params", "student_errors", "training_curves"):
        assert (run_dir / "figures" / f"{name}.png").is_file(), name


def test_the_demo_extra_brings_what_the_figures_need():
    import configparser
    from pathlib import Path

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    demo = setup["options.extras_require"]["demo"].split()
    assert "matplotlib" in demo and "scikit-learn" in demo


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for shown in (
        "number of students (default: 4)",
        "(default: digits)",
        "(default: 30 on digits, 4 on mnist and fashion_mnist)",
        "random seed (default: 0)",
        "(default: auto)",
        "(default: $TEACHERCLASS_DATA)",
    ):
        assert shown in out, shown
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    assert "(default: litert)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, verbose",
    [
        (["report", "r"], False),
        (["--verbose", "report", "r"], True),
        (["report", "r", "--verbose"], True),
        (["-v", "run", "--progress", "0"], True),
        (["export", "r", "-v"], True),
    ],
)
def test_verbose_is_a_global_flag(argv, verbose):
    args = cli._parser().parse_args(argv)
    assert getattr(args, "verbose", False) is verbose


def test_help_answers_without_tensorflow():
    """`--help` is fast because TensorFlow is not imported for it."""
    script = (
        "import sys, teacherclass.cli\n"
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]"]

    import time

    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "teacherclass", "--help"],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and "{run,report,export}" in result.stdout
    assert result.stderr == ""
    # Under 1 s on an idle machine; slack for a loaded one.
    assert elapsed < 3, elapsed


# ----------------------------------------------------------------------
# Ctrl-C and --resume
# ----------------------------------------------------------------------


def test_ctrl_c_in_run_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from teacherclass import TeacherClass

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TeacherClass, "fit_teacher", interrupt)
    run_dir = tmp_path / "run"
    argv = ["run", "--run-dir", str(run_dir), "--progress", "0"]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("teacherclass: interrupted; ")
    assert f"`teacherclass run --resume {run_dir}`" in err
    assert sorted(_files(run_dir)) == ["config.json"]

    # report says the run is unfinished and how to finish it.
    assert cli.main(["report", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "unfinished run" in err
    assert f"`teacherclass run --resume {run_dir}`" in err


def test_ctrl_c_before_the_run_dir_is_written(tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_load", interrupt)
    run_dir = tmp_path / "run"
    assert cli.main(["run", "--run-dir", str(run_dir)]) == 130
    err = capsys.readouterr().err
    assert err == (
        "teacherclass: interrupted; nothing was written yet; run the same "
        "command again.\n"
    )
    assert not run_dir.exists()


def test_ctrl_c_while_resuming(quick_run, tmp_path, monkeypatch, capsys):
    from teacherclass import TeacherClass

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    run_dir = _copy_run(
        quick_run, tmp_path, remove=["composed.keras", "report.json"]
    )
    before = _files(run_dir)
    monkeypatch.setattr(TeacherClass, "compose", interrupt)
    argv = ["run", "--resume", str(run_dir), "--progress", "0"]
    assert cli.main(argv) == 130
    out, err = capsys.readouterr()
    # The saved teacher and students were loaded, not trained again.
    assert "teacher: loaded from teacher.keras" in out
    assert "students: loaded from students/" in out
    assert err.count("\n") == 1
    assert f"resume it with `teacherclass run --resume {run_dir}`" in err
    assert _files(run_dir) == before


def test_resume_finishes_an_interrupted_run(
    quick_run, tmp_path, capsys, quick_latency
):
    run_dir = _copy_run(
        quick_run,
        tmp_path,
        remove=["students", "composed.keras", "report.json", "figures"],
    )
    teacher = (run_dir / "teacher.keras").read_bytes()
    # Written before --conditioning, --chunk-order, --refine-epochs: it
    # resumes as it ran, without them.
    config = json.loads((run_dir / "config.json").read_text())
    for key in ("conditioning", "chunk_order", "refine_epochs"):
        del config[key]
    (run_dir / "config.json").write_text(json.dumps(config))
    argv = ["run", "--resume", str(run_dir), "--progress", "0"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "resumed; saved: config.json, teacher.keras" in out
    assert "targets" not in out and "== refine" not in out
    assert "teacher: loaded from teacher.keras" in out
    assert "== representation and students (2 epochs)" in out
    assert (run_dir / "teacher.keras").read_bytes() == teacher
    for name in (
        "students/student_3.keras",
        "composed.keras",
        "report.json",
        "figures/training_curves.png",
    ):
        assert (run_dir / name).is_file(), name
    histories = json.loads((run_dir / "histories.json").read_text())
    assert len(histories["students"]["student_0_loss"]) == 2
    assert len(histories["teacher"]["loss"]) == 2
    # The students trained as in the uninterrupted run: each stage is
    # seeded from --seed, whether the stages before it ran or loaded.
    _, _, uninterrupted = quick_run
    expected = json.loads((uninterrupted / "histories.json").read_text())
    assert histories["students"] == expected["students"]
    report = json.loads((run_dir / "report.json").read_text())
    expected = json.loads((uninterrupted / "report.json").read_text())
    for i in range(4):
        name = f"student_{i}"
        assert report["models"][name]["mse"] == pytest.approx(
            expected["models"][name]["mse"], rel=1e-6
        )

    assert cli.main(["report", str(run_dir)]) == 0
    capsys.readouterr()
    # A finished run: nothing left to do.
    assert cli.main(argv) == 0
    assert "nothing to resume" in capsys.readouterr().out


@pytest.mark.parametrize("stage", ["export", "measure"])
def test_ctrl_c_in_export_leaves_no_partial_file(
    quick_run, tmp_path, monkeypatch, capsys, stage
):
    from teacherclass import export as export_lib
    from teacherclass import report as report_lib

    run_dir = _copy_run(quick_run, tmp_path)
    before = _files(run_dir)

    def interrupt(model, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half an artifact")
        raise KeyboardInterrupt

    def written(model, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"a whole artifact")

    def interrupt_measure(*args, **kwargs):
        raise KeyboardInterrupt

    if stage == "export":
        monkeypatch.setattr(export_lib, "export", interrupt)
    else:  # written, then interrupted while it is measured
        monkeypatch.setattr(export_lib, "export", written)
        monkeypatch.setattr(report_lib, "measure_export", interrupt_measure)
    output = tmp_path / "out.tflite"
    argv = ["export", str(run_dir), "--output", str(output)]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run the same command again" in err
    assert not output.exists()
    assert _files(run_dir) == before


@pytest.mark.parametrize("failure", ["interrupted", "missing"])
def test_export_loads_its_test_data_before_writing(
    quick_run, tmp_path, monkeypatch, capsys, failure
):
    """Test data that fails to load leaves no artifact behind, which a
    second try would refuse to replace."""
    from teacherclass import datasets
    from teacherclass import export as export_lib

    run_dir = _copy_run(quick_run, tmp_path)
    before = _files(run_dir)
    load = datasets.load

    def load_train_only(name, split="train", **kwargs):
        if split != "test":
            return load(name, split, **kwargs)
        if failure == "interrupted":
            raise KeyboardInterrupt
        raise FileNotFoundError("no test files")

    def written(model, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"a whole artifact")

    monkeypatch.setattr(datasets, "load", load_train_only)
    monkeypatch.setattr(export_lib, "export", written)
    output = tmp_path / "out.tflite"
    argv = ["export", str(run_dir), "--output", str(output), "--int8"]
    assert cli.main(argv) == (130 if failure == "interrupted" else 1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not output.exists()
    assert _files(run_dir) == before


def test_exports_outside_the_run_are_named_by_their_path(tmp_path):
    run = tmp_path / "run"
    inside = run / "exports" / "composed.tflite"
    assert cli._export_key(str(run), str(inside)) == "composed.tflite"
    # Two exports elsewhere with one file name keep two entries.
    a, b = tmp_path / "a" / "m.tflite", tmp_path / "b" / "m.tflite"
    assert cli._export_key(str(run), str(a)) == str(a)
    assert cli._export_key(str(run), str(a)) != cli._export_key(str(run), b)


def test_a_relative_data_dir_is_kept_absolute(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    data_dir, source = cli._data_dir("mnist", "data")
    assert data_dir == str(tmp_path / "data") and source == "--data-dir"


def _no_stages(monkeypatch):
    """Stubs the run's stages: what is before them runs; returns the
    training and test sizes each call saw."""
    calls = []

    def stages(args, run_dir, tc, train, test):
        calls.append((len(train[0]), len(test[0])))

    monkeypatch.setattr(cli, "_stages", stages)
    return calls


def test_a_moved_data_folder_is_given_by_data_dir(
    tmp_path, monkeypatch, capsys
):
    """config.json records where the data was; once it has moved,
    --data-dir names the new folder to --resume and to export, which
    record it."""
    from helpers import write_idx_files

    from teacherclass import export as export_lib
    from teacherclass import report as report_lib

    monkeypatch.delenv("TEACHERCLASS_DATA", raising=False)
    calls = _no_stages(monkeypatch)
    data, moved = tmp_path / "data", tmp_path / "moved"
    write_idx_files(data / "mnist", n_train=5, n_test=3)
    run_dir = tmp_path / "run"
    argv = ["run", "--dataset", "mnist", "--data-dir", str(data)]
    assert cli.main(argv + ["--run-dir", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data_dir"] == str(data)
    data.rename(moved)
    before = _files(run_dir)

    resume = ["run", "--resume", str(run_dir)]
    assert cli.main(resume) == 1
    err = capsys.readouterr().err
    assert "pass --data-dir DIR" in err and "TEACHERCLASS_DATA" not in err
    assert f"Received: data_dir={data} in {run_dir / 'config.json'}" in err
    assert _files(run_dir) == before

    capsys.readouterr()
    assert cli.main(resume + ["--data-dir", str(moved)]) == 0
    out = capsys.readouterr().out
    path = run_dir / "config.json"
    assert f"data_dir recorded in {path}: {moved} (was {data})" in out
    assert json.loads(path.read_text()) == {**config, "data_dir": str(moved)}
    assert calls == [(5, 3), (5, 3)]

    # export, of the run now finished, after the data moved again.
    (run_dir / "report.json").write_text(json.dumps({"models": {}}))
    moved.rename(data)
    measured = []

    def written(model, path, **kwargs):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"an artifact")

    def measure(path, x, y, *args, **kwargs):
        measured.append(len(x))
        return {"size_bytes": 11, "accuracy": 0.5}

    monkeypatch.setattr(cli, "_load_keras", lambda *args: "composed")
    monkeypatch.setattr(export_lib, "export", written)
    monkeypatch.setattr(report_lib, "measure_export", measure)
    monkeypatch.setattr(report_lib, "decision_threshold", lambda m: None)
    export = ["export", str(run_dir)]
    assert cli.main(export) == 1
    assert f"data_dir={moved} in {path}" in capsys.readouterr().err
    assert cli.main(export + ["--data-dir", str(data)]) == 0
    assert f"{path}: {data} (was {moved})" in capsys.readouterr().out
    assert json.loads(path.read_text()) == {**config, "data_dir": str(data)}
    assert measured == [3]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["exports"]["composed.tflite"]["size_bytes"] == 11


def test_run_dir_may_be_a_link_to_an_empty_folder(
    tmp_path, monkeypatch, capsys
):
    """Used as it is; --overwrite empties it, keeping the link."""
    _no_stages(monkeypatch)
    target = tmp_path / "disk" / "empty"
    target.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(target)
    argv = ["run", "--run-dir", str(link), "--progress", "0"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert link.is_symlink() and (target / "config.json").is_file()
    (target / "histories.json").write_text("{}")
    assert cli.main(argv) == 1  # a run: replaced with --overwrite only
    assert "pass --overwrite" in capsys.readouterr().err
    assert cli.main(argv + ["--overwrite"]) == 0, capsys.readouterr().err
    assert link.is_symlink() and target.is_dir()
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]
