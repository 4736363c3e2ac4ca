"""benchmarks/teacher_probe.py: what it refuses before training."""

import json

import numpy as np
import pytest
from helpers import load_script


@pytest.fixture
def probe(monkeypatch):
    """The script, reading 100 blank CIFAR-10 training images."""
    bench = load_script("benchmarks/teacher_probe.py")

    def load(name, split, data_dir=None):
        return np.zeros((100, 32, 32, 3), "uint8"), np.zeros(100, "int64")

    monkeypatch.setattr(bench.datasets, "load", load)
    return bench


def test_validation_overlapping_the_training_images_is_refused(probe, tmp_path):
    argv = ["--data-dir", "d", "--label", "a", "--samples", "60"]
    argv += ["--epochs", "1", "--out", str(tmp_path / "probe.json")]
    with pytest.raises(
        ValueError, match="Received: --samples 60 --validation 50"
    ):
        probe.main([*argv, "--validation", "50"])
    with pytest.raises(ValueError, match="Received: --validation 0"):
        probe.main([*argv, "--validation", "0"])


def test_a_label_recorded_with_other_settings_is_kept(probe, tmp_path):
    out = tmp_path / "probe.json"
    recorded = {
        "label": "a",
        "samples": 60,
        "validation": "the last 40 training images",
        "epochs": 1,
        "precision": "float32",
        "seed": 0,
        "options": {"bias_lr_scale": 1.0},  # as older records have it
    }
    out.write_text(json.dumps({"runs": {"a": recorded}}))
    argv = ["--data-dir", "d", "--label", "a", "--samples", "60"]
    argv += ["--validation", "40", "--epochs", "1", "--out", str(out)]
    with pytest.raises(
        ValueError,
        match=r"--label a is recorded with other settings "
        r"\(seed 0 recorded, 1 now\)",
    ):
        probe.main([*argv, "--seed", "1"])
    assert json.loads(out.read_text())["runs"] == {"a": recorded}
