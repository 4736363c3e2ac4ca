"""benchmarks/gpu_check.py on a machine without a GPU: the skip path.

The GPU path runs only where a GPU is (`benchmarks/gpu_check.py`; on CPU
`--smoke` runs it at tiny size in about a minute, too slow for the suite).
"""

import os
import subprocess
import sys
from pathlib import Path

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
