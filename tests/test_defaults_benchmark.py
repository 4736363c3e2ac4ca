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
    summary = defaults.summarize(record, "validation")
    assert set(summary) == {"mse", "head_aware"}
    assert summary["mse"]["seeds"] == [0, 1]
    assert summary["mse"]["composed_mean"] == pytest.approx(0.945)
    assert summary["mse"]["points_lost_mean"] == pytest.approx(2.5)
    record["summary"] = {"validation": summary}
    table = defaults.markdown(record)
    assert "| validation | mse | 0, 1 | 97.00% | 94.50% | 2.50 |" in table


def test_recorded_runs_are_skipped(tmp_path, monkeypatch):
    out = tmp_path / "defaults.json"
    runs = {
        f"validation|{c}|seed=0": _run("validation", c, 0, 0.9, 0.9)
        for c in defaults.CANDIDATES
    }
    out.write_text(json.dumps({"runs": runs}))

    def no_data(args):
        empty = np.zeros((0, 28, 28, 1), "float32"), np.zeros(0, "int64")
        return empty, empty

    monkeypatch.setattr(defaults, "data", no_data)
    defaults.main(["--seeds", "1", "--out", str(out)])
    # Nothing trained (no data to train on); the record is kept, summarized.
    saved = json.loads(out.read_text())
    assert saved["runs"] == runs
    assert saved["summary"]["validation"]["mse"]["seeds"] == [0]
    assert (tmp_path / "defaults.md").exists()
