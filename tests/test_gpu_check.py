"""benchmarks/gpu_check.py: the skip path, and the script itself at tiny size."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _run(*args, tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )


def test_skips_without_gpu_and_writes_nothing(tmp_path):
    output = tmp_path / "gpu_check.json"
    done = _run("--output", str(output), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "skipped: no GPU"
    assert not output.exists()


@pytest.mark.slow
def test_smoke_run_on_cpu_writes_every_section(tmp_path):
    output = tmp_path / "gpu_check.json"
    done = _run(
        "--smoke",
        "--student-epochs",
        "2",
        "--batch-size",
        "64",
        "--vgg-steps",
        "1",
        "--vgg-batch-size",
        "4",
        "--latency-repeats",
        "2",
        "--cache-dir",
        str(tmp_path / "no-cache"),
        "--output",
        str(output),
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(output.read_text())
    assert result["smoke"] is True
    students = result["fit_students"]
    assert students["data"].startswith("random")
    assert students["losses_finite"]
    assert students["composed_output_dtype"] == "float32"
    assert set(result["latency"]["composed_ms"]) == {"1", "64"}
    vgg = result["vgg16_teacher"]
    assert vgg["optimizer_loss_scaled"] and vgg["losses_finite"]
