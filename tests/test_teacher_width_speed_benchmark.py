"""benchmarks/teacher_width_speed.py: what it refuses, before any model."""

import pytest
from helpers import load_script


@pytest.mark.parametrize(
    "argv, received",
    [
        (["--rounds", "0"], "--rounds 0"),
        (["--batch-size", "-1"], "--batch-size -1"),
        (["--widths", "8,x"], "--widths 8,x"),
        (["--minutes", "0"], "--minutes 0"),
    ],
)
def test_bad_arguments_are_refused(argv, received, tmp_path):
    bench = load_script("benchmarks/teacher_width_speed.py")
    out = tmp_path / "speed.json"
    with pytest.raises(ValueError, match=f"Received: {received}$"):
        bench.main([*argv, "--out", str(out)])
    assert not out.exists()
