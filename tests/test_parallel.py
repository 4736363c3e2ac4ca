"""Students trained as separate processes, then composed."""

import json
import os
import subprocess
import sys
import types
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


def test_each_job_is_seeded_from_the_seed(tmp_path, monkeypatch):
    example = _example()
    # Without a seed, as before: 1000 + the job's first student.
    assert example.job_seed([2, 3]) == 1002
    assert example.job_seed([1], seed=2) == 3001
    commands = []

    class Job:
        def __init__(self, command):
            commands.append(command)

        def wait(self):
            return 0

    monkeypatch.setattr(example.subprocess, "Popen", Job)
    example.launch(str(tmp_path), 4, 2, 1, seed=7)
    assert len(commands) == 2
    for command in commands:
        assert command[command.index("--seed") + 1] == "7"


def test_parallel_benchmark_rotates_and_takes_the_median_ratio(
    tmp_path, monkeypatch
):
    bench = load_script("benchmarks/parallel_students.py")
    example = _example()
    # Wall seconds by (round, processes): round 1 ran on a loaded machine.
    walls = {
        (0, 1): 10.0,
        (0, 2): 5.0,
        (1, 2): 30.0,
        (1, 1): 30.0,
        (2, 1): 40.0,
        (2, 2): 16.0,
    }
    calls = []

    def launch(workdir, students, processes, epochs, threads=None, seed=0):
        calls.append((processes, seed))
        return walls[(len(calls) - 1) // 2, processes]

    fake = types.SimpleNamespace(
        prepare=lambda *args: None,
        launch=launch,
        compose=lambda workdir: {"accuracy": 0.9},
        split=example.split,
    )
    monkeypatch.setattr(bench, "_example", lambda: fake)
    out = tmp_path / "parallel.json"
    result = bench.main(
        ["--processes", "1,2", "--seed", "5", "--out", str(out)]
    )
    # The order rotates each round; every job gets the seed.
    assert calls == [(1, 5), (2, 5), (2, 5), (1, 5), (1, 5), (2, 5)]
    assert result["config"]["orders"] == [[1, 2], [2, 1], [1, 2]]
    one, two = result["runs"]
    assert two["speedup_vs_first_per_round"] == [2.0, 1.0, 2.5]
    # The median of the rounds' ratios, not the ratio of median walls
    # (30 / 16).
    assert two["speedup_vs_first"] == 2.0
    assert one["speedup_vs_first"] == 1.0
    assert two["wall_seconds"] == 16.0
    assert json.loads(out.read_text())["runs"][1]["speedup_vs_first"] == 2.0
