"""Every notebook in `examples/` runs top to bottom on a small setting.

Each runs in its own Jupyter kernel (nbclient) with `TEACHERCLASS_QUICK=1`
(small data, one or two epochs), in a temporary working directory, with
`TEACHERCLASS_DATA` pointing at the real datasets in `../shared/data`;
a notebook that needs them is skipped where they are absent. A cell that
raises fails the test with the cell's traceback.
"""

import os
from pathlib import Path

import nbclient
import nbformat
import pytest
from helpers import shared_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Notebook -> the shared dataset it reads (None: none, digits are bundled).
NOTEBOOKS = {
    "mnist_quickstart": "mnist",
    "imdb": "imdb",
    "cifar10": "cifar10",
    "camvid": "camvid",
    "tuning": "mnist",
    "parallel_students": None,
}


def test_every_notebook_is_run_here():
    assert {p.stem for p in EXAMPLES.glob("*.ipynb")} == set(NOTEBOOKS)


def _run(path, cwd):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return notebook


def _text(notebook):
    """Everything the notebook printed, as one string."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_runs(name, tmp_path, monkeypatch, keras_home):
    if NOTEBOOKS[name]:
        monkeypatch.setenv("TEACHERCLASS_DATA", str(shared_data()))
    else:
        monkeypatch.delenv("TEACHERCLASS_DATA", raising=False)
    monkeypatch.setenv("TEACHERCLASS_QUICK", "1")
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = _run(EXAMPLES / f"{name}.ipynb", tmp_path)
    text = _text(notebook)
    assert "quick: True" in text
    saved = {
        "mnist_quickstart": "mnist_composed.keras",
        "imdb": "imdb_composed.keras",
        "cifar10": "cifar10_composed.keras",
        "camvid": "camvid_composed.keras",
    }
    if name in saved:
        assert (tmp_path / saved[name]).is_file()
    if name == "mnist_quickstart":
        assert (tmp_path / "mnist_composed_int8.tflite").is_file()
        assert "int8 test accuracy" in text
    if name == "tuning":
        assert "2 trials" in text
    if name == "parallel_students":
        students = sorted(os.listdir(tmp_path / "parallel_run" / "students"))
        assert [s for s in students if s.endswith(".json")] == [
            f"student_{i}.json" for i in range(2)
        ]
        assert "composed:" in text
