import os
import runpy
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

import teacherclass  # noqa: F401  (registers the layers load_model needs)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_runs_and_saves_a_loadable_model(tmp_path):
    out = tmp_path / "composed.keras"
    env = dict(os.environ, TEACHERCLASS_QUICK="1", TEACHERCLASS_OUT=str(out))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "compression ratio: 10.5x" in result.stdout
    model = keras.saving.load_model(out)
    assert model.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape == (2, 10)


def test_imagenet_example_streams_tfds_through_a_disk_cache(
    tmp_path, monkeypatch, capsys
):
    # tfds' own mock: the real builder's code and features, random examples,
    # no download. Everything else (MobileNetV2 teacher, disk cache,
    # students, fine-tuned head, report, save) runs as written.
    import tensorflow_datasets as tfds

    out = tmp_path / "composed.keras"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "imagenet.py",
            "--weights=none",
            "--image-size=32",
            "--students=2",
            "--teacher-epochs=1",
            "--epochs=1",
            "--batch-size=8",
            f"--cache={tmp_path / 'cache'}",
            "--shards=2",
            "--fingerprint-batches=1",
            f"--out={out}",
        ],
    )
    with tfds.testing.mock_data(
        num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        runpy.run_path(str(EXAMPLES / "imagenet.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "representation: representation, chunks (640, 640)" in printed
    assert "compression ratio: 7.3x" in printed
    assert any((tmp_path / "cache").iterdir())
    model = keras.saving.load_model(out)
    images = np.zeros((2, 32, 32, 3), "uint8")
    assert model.predict(images, verbose=0).shape == (2, 10)
