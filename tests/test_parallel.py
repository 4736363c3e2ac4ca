"""Students trained as separate processes, then composed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
from helpers import load_script

import teacherclass  # noqa: F401  (registers the layers load_model needs)

EXAMPLE = (
    Path(__file__).resolve().parents[1] / "examples" / "parallel_students.py"
)


def _example():
    return load_script("examples/parallel_students.py", "parallel")


def test_split_gives_every_student_one_process():
    split = _example().split
    assert split(4, 1) == [[0, 1, 2, 3]]
    assert split(4, 2) == [[0, 2], [1, 3]]
    assert split(4, 4) == [[0], [1], [2], [3]]


def test_student_index_from_tf_config(monkeypatch):
    example = _example()
    config = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert example._students_from("tf_config") == [1]
    assert example._students_from("0,3") == [0, 3]


def test_two_students_in_two_processes_compose(tmp_path):
    workdir = tmp_path / "run"
    env = dict(os.environ, TEACHERCLASS_QUICK="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--workdir",
            str(workdir),
            "--students",
            "2",
            "--processes",
            "2",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "composed accuracy:" in result.stdout
    saved = sorted(p.name for p in (workdir / "students").iterdir())
    assert saved == [
        "student_0.json",
        "student_0.keras",
        "student_1.json",
        "student_1.keras",
    ]
    metas = [
        json.loads((workdir / "students" / f"student_{i}.json").read_text())
        for i in range(2)
    ]
    assert [m["chunk"] for m in metas] == [[0, 128], [128, 256]]
    model = keras.saving.load_model(workdir / "composed.keras")
    assert model.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape == (2, 10)
