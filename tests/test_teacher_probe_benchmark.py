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


def test_alternating_flip_mirrors_each_image_every_other_epoch(probe):
    # Left halves bright: a mirrored image is bright on the right. Each
    # image starts on its own coin, then alternates; the order changes.
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((10, 4, 32, 3)).astype("float32")
    x[:, :, :16] += 10
    y = np.arange(10, dtype="float32")[:, None]
    aug = probe.architectures.cifar10_augmentation(seed=0, pixels=0)
    batches = list(probe.alternating_flip_batches(x, y, 4, 3, aug, 0))
    assert [len(b[0]) for b in batches] == [4, 4, 2] * 3
    epochs = [{}, {}, {}]
    orders = [[], [], []]
    for k, (images, labels) in enumerate(batches):
        for image, label in zip(images.numpy(), labels.numpy()):
            right = image[:, 16:].mean() > image[:, :16].mean()
            epochs[k // 3][int(label[0])] = bool(right)
            orders[k // 3].append(int(label[0]))
    first = epochs[0]
    assert 0 < sum(first.values()) < 10  # a coin per image
    assert epochs[1] == {i: not m for i, m in first.items()}
    assert epochs[2] == first
    assert orders[0] != orders[1]


def test_widths_that_are_not_positive_integers_are_refused(probe, tmp_path):
    argv = ["--data-dir", "d", "--label", "a", "--samples", "60"]
    argv += ["--validation", "40", "--out", str(tmp_path / "probe.json")]
    for text in ("128,x,384", "0,8", ""):
        with pytest.raises(ValueError, match=f"Received: --widths {text}$"):
            probe.main([*argv, "--widths", text])
    assert probe.parse_widths("128,384,384") == (128, 384, 384)
