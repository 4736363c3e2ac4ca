"""The documented default commands of benchmarks whose results files
refuse a run at other settings: the defaults are the recorded ones."""

from pathlib import Path

import pytest
from helpers import load_script

REPO = Path(__file__).resolve().parents[1]
TEACHER = "benchmarks/cache/cifar10/teacher-36e8359d4c-seed0.keras"


class _Started(Exception):
    """Raised where a benchmark would start its work."""


@pytest.fixture
def views_speed(monkeypatch):
    bench = load_script("benchmarks/views_speed.py")
    monkeypatch.setattr(bench.precision, "set_policy", lambda policy: None)
    monkeypatch.setattr(bench, "speed", lambda args: args)
    monkeypatch.setattr(bench, "accuracy", lambda args: args)
    return bench


def test_views_speed_defaults_are_the_recorded_runs(views_speed):
    args = views_speed.main([])
    assert args.samples == 4096 and args.out == views_speed.SPEED_OUT
    args = views_speed.main(["--accuracy", "--teacher", TEACHER])
    assert args.seeds == 2 and args.out == views_speed.ACCURACY_OUT
    # A path from the repository root, however spelt.
    for teacher in (TEACHER, "./" + TEACHER, str(REPO / TEACHER)):
        views_speed.check_out(views_speed.ACCURACY_OUT, {"teacher": teacher})


@pytest.mark.parametrize(
    "cwd, teacher",
    [
        (REPO, "./" + TEACHER),
        (REPO / "benchmarks", "../" + TEACHER),
        (REPO / "docs", str(REPO / TEACHER)),
    ],
)
def test_views_speed_compares_the_teacher_resolved(
    views_speed, monkeypatch, cwd, teacher
):
    monkeypatch.chdir(cwd)
    args = views_speed.main(["--accuracy", "--teacher", teacher])
    assert views_speed.teacher_path(args.teacher) == TEACHER
    with pytest.raises(ValueError, match="teacher .* recorded"):
        views_speed.main(["--accuracy", "--teacher", "other.keras"])


def test_knowledge_reuse_default_is_the_recorded_variant(monkeypatch):
    bench = load_script("benchmarks/knowledge_reuse.py")

    def load(*args, **kwargs):
        raise _Started

    monkeypatch.setattr(bench.datasets, "load", load)
    with pytest.raises(_Started):
        bench.main([])
    with pytest.raises(ValueError, match="holds --variant best"):
        bench.main(["--variant", "plain"])
