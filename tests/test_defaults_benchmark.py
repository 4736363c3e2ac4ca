"""benchmarks/defaults.py: its summary and table, and a rerun that skips."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import defaults  # noqa: E402


def _run(split, candidate, seed, teacher, composed):
    return {
        "split": split,
        "candidate": candidate,
        "seed": seed,
        "teacher_accuracy": teacher,
        "composed_accuracy": composed,
        "loss_to_teacher_points": 100 * (teacher - composed),
    }


# The top-level setting of benchmarks/results/defaults.json, recorded
# before each run kept its own.
OLD_SETTING = (
    "MNIST, first 12000 training images, the paper's teacher 2 epochs "
    "(Adam, batch 32), then TeacherClass(teacher) (4 students, default "
    "tower), fit_students(x, epochs=4, loss=<candidate>) and compose(), "
    "every other argument at its default"
)


def test_summary_means_over_seeds_per_split_and_candidate():
    record = {
        "setting": "tiny",
        "runs": {
            "a": _run("validation", "mse", 0, 0.96, 0.94),
            "b": _run("validation", "mse", 1, 0.98, 0.95),
            "c": _run("validation", "head_aware", 0, 0.96, 0.96),
            "d": _run("test", "mse", 0, 0.90, 0.10),  # another split
        },
    }
    summary = defaults.summarize(record, "validation")["tiny"]
    assert set(summary) == {"mse", "head_aware"}
    assert summary["mse"]["seeds"] == [0, 1]
    assert summary["mse"]["composed_mean"] == pytest.approx(0.945)
    assert summary["mse"]["points_lost_mean"] == pytest.approx(2.5)
    table = defaults.markdown(record)
    assert "| validation | mse | 0, 1 | 97.00% | 94.50% | 2.50 |" in table


def test_recorded_runs_are_skipped(tmp_path, monkeypatch):
    out = tmp_path / "defaults.json"
    runs = {
        f"validation|{c}|seed=0": _run("validation", c, 0, 0.9, 0.9)
        for c in defaults.CANDIDATES
    }
    # As recorded before runs kept their settings: the setting is the
    # record's own.
    setting = OLD_SETTING
    out.write_text(json.dumps({"setting": setting, "runs": runs}))

    def no_data(args):
        empty = np.zeros((0, 28, 28, 1), "float32"), np.zeros(0, "int64")
        return empty, empty

    monkeypatch.setattr(defaults, "data", no_data)
    defaults.main(["--seeds", "1", "--out", str(out)])
    # Nothing trained (no data to train on); the record is kept, summarized.
    saved = json.loads(out.read_text())
    assert saved["runs"] == runs
    assert saved["summary"]["validation"][setting]["mse"]["seeds"] == [0]
    assert (tmp_path / "defaults.md").exists()


def test_a_rerun_at_other_settings_is_recorded_beside(tmp_path, monkeypatch):
    out = tmp_path / "defaults.json"
    old = _run("validation", "mse", 0, 0.9, 0.8)
    setting = OLD_SETTING
    out.write_text(
        json.dumps({"setting": setting, "runs": {"validation|mse|seed=0": old}})
    )
    rng = np.random.default_rng(0)

    def tiny_data(args):
        x = rng.uniform(size=(40, 28, 28, 1)).astype("float32")
        y = rng.integers(0, 10, 40)
        return (x[:32], y[:32]), (x[32:], y[32:])

    monkeypatch.setattr(defaults, "data", tiny_data)
    argv = ["--seeds", "1", "--candidates", "mse", "--out", str(out)]
    defaults.main([*argv, "--samples", "40", "--epochs", "1"])
    saved = json.loads(out.read_text())
    # The earlier run and its setting stay; the new run keeps its own.
    assert saved["setting"] == setting
    assert saved["runs"]["validation|mse|seed=0"] == old
    (key,) = set(saved["runs"]) - {"validation|mse|seed=0"}
    assert key == "validation|mse|seed=0|samples=40|teacher_epochs=2|epochs=1"
    new = saved["runs"][key]
    assert new["settings"] == {"samples": 40, "teacher_epochs": 2, "epochs": 1}
    assert new["setting"].startswith("MNIST, first 40 training images")
    # Each setting is summarized apart, in a table of its own.
    summary = saved["summary"]["validation"]
    assert set(summary) == {setting, new["setting"]}
    assert summary[setting]["mse"]["composed_mean"] == pytest.approx(0.8)
    table = (tmp_path / "defaults.md").read_text()
    assert table.count("| split | loss= |") == 2
    assert new["setting"] + ". Points lost" in table
    # At those settings again: skipped.
    defaults.main([*argv, "--samples", "40", "--epochs", "1"])
    assert json.loads(out.read_text())["runs"] == saved["runs"]
