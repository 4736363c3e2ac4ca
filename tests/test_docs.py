import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import render_results  # noqa: E402


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed: pip install -e '.[docs]'",
)
def test_mkdocs_build_is_strict_clean(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"]
        + ["--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index.html", "results/index.html", "api/export/index.html"):
        assert (site / page).is_file(), page
    # Keras-style "Example:" sections render as code, not as quotes.
    api = (site / "api" / "report" / "index.html").read_text()
    assert 'doc-section-title">Examples' in api
    assert "<blockquote>" not in api


def _result(tmp_path, name, data):
    (tmp_path / f"{name}.json").write_text(json.dumps(data))


MACHINE = {"processor": "test-cpu", "cpu_count": 3, "platform": "TestOS"}


def test_results_page_quotes_each_json_with_machine_and_date(tmp_path):
    _result(
        tmp_path,
        "students_throughput",
        {
            "benchmark": "students_throughput",
            "ratio": 1.2345,
            "reference_samples_per_second": 1000.0,
            "one_pass_samples_per_second": 1234.5,
            "config": {"students": 4},
            "machine": MACHINE,
            "versions": {"keras": "9.9"},
            "date": "2030-01-02T03:04:05+00:00",
        },
    )
    _result(
        tmp_path,
        "mnist",
        {
            "benchmark": "reproduce",
            "dataset": "mnist",
            "runs": {},
            "machine": MACHINE,
            "updated": "2030-02-03T00:00:00+00:00",
        },
    )
    (tmp_path / "mnist.md").write_text("# MNIST\n\n| n | accuracy |\n")
    _result(tmp_path, "other", {"benchmark": "other", "speedup": 2.5})
    # A script writing more than one file names itself.
    _result(
        tmp_path,
        "other_accuracy",
        {"benchmark": "other_accuracy", "script": "benchmarks/other.py -a"},
    )
    page = render_results.render(tmp_path, tmp_path)
    assert "by `benchmarks/other.py -a`" in page
    assert "by `benchmarks/other.py`" in page
    assert "| script |" not in page
    assert "**1.23x**" in page and "1,234" in page
    assert "test-cpu, 3 CPUs" in page and "2030-01-02T03:04:05" in page
    assert "keras 9.9" in page
    assert "### MNIST" in page and "| n | accuracy |" in page
    assert "2030-02-03" in page
    assert "| speedup | 2.5 |" in page


def test_results_page_shows_runs_configs_and_a_benchmarks_own_table(
    tmp_path,
):
    _result(
        tmp_path,
        "memory",
        {
            "benchmark": "memory",
            "config": {"sizes": [10, 100], "mode": "disk"},
            "runs": [
                {"samples": 10, "peak_mib": 800.5},
                {"samples": 100, "peak_mib": 900.25, "extra": [1, 2]},
            ],
            "ratio": {"disk": 1.125},
            "machine": MACHINE,
        },
    )
    _result(tmp_path, "seg", {"benchmark": "seg", "miou": 0.5})
    (tmp_path / "seg.md").write_text("# Seg\n\n| class | IoU |\n")
    page = render_results.render(tmp_path, tmp_path)
    assert "Settings: sizes: 10, 100; mode: disk." in page
    assert "| samples | peak_mib | extra |" in page
    assert "| 100 | 900.2 | 1, 2 |" in page
    assert "| ratio: disk | 1.125 |" in page
    # A benchmark's own table is quoted instead of its raw scalars.
    assert "### Seg" in page and "| class | IoU |" in page
    assert "| miou |" not in page


def test_results_page_without_results(tmp_path):
    page = render_results.render(tmp_path / "missing", tmp_path)
    assert "No results yet" in page
    out = tmp_path / "results.md"
    assert render_results.write(out, tmp_path / "missing", tmp_path)
    assert not render_results.write(out, tmp_path / "missing", tmp_path)


def test_results_page_dates_appended_runs_and_their_own_machines(tmp_path):
    # A file appended to over days (student_probe.json): the top level is
    # the last writer's, so the page gives the runs' dates and each run's
    # own machine where it recorded one.
    _result(
        tmp_path,
        "probe",
        {
            "benchmark": "probe",
            "runs": [
                {"date": "2030-01-01T00:00:00+00:00", "accuracy": 0.5},
                {
                    "date": "2030-01-03T00:00:00+00:00",
                    "accuracy": 0.625,
                    "machine": {"processor": "other-cpu", "cpu_count": 8},
                    "versions": {"keras": "9.8"},
                },
            ],
            "machine": MACHINE,
            "date": "2030-01-03T00:00:00+00:00",
        },
    )
    page = render_results.render(tmp_path, tmp_path)
    assert (
        "Runs dated 2030-01-01T00:00:00+00:00 to 2030-01-03T00:00:00+00:00"
        in page
    )
    assert "The last write was on test-cpu, 3 CPUs" in page
    assert "| other-cpu, 8 CPUs | keras 9.8 |" in page
    assert "Measured on test-cpu" not in page
