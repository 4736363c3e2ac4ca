import os
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
