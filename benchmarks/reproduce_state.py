"""benchmarks/reproduce.py's resumable state: the results JSON.

Every finished unit of work (a teacher for a seed, a (configuration,
seed) run) is written at once, atomically, so a rerun or a run after a
kill skips what is done.
"""

import json
import os
import subprocess
from datetime import datetime
from datetime import timezone
from pathlib import Path

from _common import environment

ROOT = Path(__file__).resolve().parents[1]


def atomic_write(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def now():
    """The UTC time, to the second, in ISO format."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def unit_info():
    """When a unit finished and how loaded the machine was."""
    return {"finished": now(), "load_average": list(os.getloadavg())}


def _machine():
    return {
        **environment()["machine"],
        "note": (
            "times are wall seconds; see each run's load_average: the "
            "machine may be shared with other jobs, which inflates them"
        ),
    }


def _git_state():
    """The commit and the library files changed since, when in a clone."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "uncommitted_library_files": git(
                "status", "--porcelain", "teacherclass"
            ).splitlines(),
        }
    except OSError:
        return None


def _versions():
    return {"git": _git_state(), **environment()["versions"]}


class State:
    """The results JSON: every finished unit, saved as soon as it ends.

    Args:
        path: the JSON file (read if it exists).
        dataset: the dataset's name, for a new file.
        record_environment: stamp the current machine and versions (off
            to only read and render what was recorded).
    """

    def __init__(self, path, dataset, record_environment=True):
        self.path = Path(path)
        if self.path.exists():
            self.data = json.loads(self.path.read_text())
        else:
            self.data = {
                "benchmark": "reproduce",
                "dataset": dataset,
                "created": now(),
                "invocations": [],
                "teachers": {},
                "runs": {},
                "unavailable": {},
            }
        if record_environment:
            self.data["machine"] = _machine()
            self.data["versions"] = _versions()

    def save(self):
        """Writes the JSON, stamped with the time, atomically."""
        self.data["updated"] = self.data["date"] = now()
        atomic_write(self.path, json.dumps(self.data, indent=1) + "\n")
