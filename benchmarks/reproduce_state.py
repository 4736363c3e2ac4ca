"""benchmarks/reproduce.py's resumable state: the results JSON.

Every finished unit of work (a teacher for a seed, a (configuration,
seed) run) is written at once, atomically, so a rerun or a run after a
kill skips what is done.
"""

import json
import os
import subprocess
import time
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


# ======================================================================
# RESUMABLE STAGES (CIFAR-10 and any long run): an epoch-granular
# checkpoint per stage and a wall-clock budget. Kept apart from `State`,
# which records finished units only.
# ======================================================================


def runs_dir(flag=None):
    """Where stage checkpoints live: outside git.

    `--runs-dir` if given, else `$TEACHERCLASS_RUNS`, else
    `~/.cache/teacherclass/reproduce`.
    """
    if flag:
        return Path(flag)
    env = os.environ.get("TEACHERCLASS_RUNS")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "teacherclass" / "reproduce"


class BudgetExhausted(Exception):
    """Raised after the epoch that crosses `--budget-minutes` is saved."""


class Budget:
    """A wall-clock budget from the moment it is made.

    A sitting always makes progress: `check` raises only after some work
    (`worked()`: an epoch, a cached view) was done in it.

    Args:
        minutes: float or None (no limit).
    """

    def __init__(self, minutes=None):
        self.minutes = minutes
        self.start = time.monotonic()
        self.units = 0

    def worked(self):
        """Counts one unit of work (an epoch) done in this sitting."""
        self.units += 1

    def left_seconds(self):
        """Seconds left, or None without a limit."""
        if self.minutes is None:
            return None
        return self.minutes * 60 - (time.monotonic() - self.start)

    def check(self, where):
        """Raises `BudgetExhausted` once the budget is spent."""
        left = self.left_seconds()
        if self.units and left is not None and left <= 0:
            raise BudgetExhausted(
                f"budget of {self.minutes:g} minutes spent after {where}"
            )


def _duration(seconds):
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


# The key of a stage's progress inside its `state.npz`.
_PROGRESS = "__progress__"


class Stage:
    """One resumable stage: variables and progress saved every epoch.

    The checkpoint is `<directory>/state.npz` (every variable of
    `variables()`: the model's weights and its optimizer's slots and
    step count) and `<directory>/progress.json` (epochs done, their
    seconds and logs), each written atomically, the npz first. A new
    `Stage` on the same directory reads the progress; `restore()` puts
    the saved values back into freshly built variables of the same
    shapes, in the same order.

    Args:
        directory: the stage's folder.
        label: its name in progress lines.
        epochs: int, the epochs the stage runs in all.
        variables: callable returning the list of variables to save.
    """

    def __init__(self, directory, label, epochs, variables):
        self.directory = Path(directory)
        self.label = label
        self.epochs = epochs
        self.variables = variables
        self.progress_path = self.directory / "progress.json"
        self.state_path = self.directory / "state.npz"
        self.progress = {"epochs_done": 0, "epoch_seconds": [], "logs": []}
        if self.progress_path.exists():
            self.progress = json.loads(self.progress_path.read_text())
        # The checkpoint holds its own progress (one atomic file): a kill
        # between its write and progress.json's leaves progress.json one
        # epoch behind, and the checkpoint is then the truth.
        saved = self._saved_progress()
        if saved is not None:
            self.progress = saved

    def _saved_progress(self):
        """The progress stored in `state.npz`, or None (none there, or a
        checkpoint written before it held one)."""
        if not self.state_path.exists():
            return None
        import numpy as np

        with np.load(self.state_path) as f:
            if _PROGRESS not in f.files:
                return None
            return json.loads(str(f[_PROGRESS]))

    @property
    def epochs_done(self):
        return self.progress["epochs_done"]

    @property
    def done(self):
        return self.epochs_done >= self.epochs

    def restore(self):
        """Loads the saved variables, if any; returns the epochs done.

        Raises:
            ValueError: if epochs are recorded done but their checkpoint
                is gone (the stage would otherwise count as trained with
                fresh weights).
        """
        if self.epochs_done and not self.state_path.exists():
            raise ValueError(
                f"{self.progress_path} records {self.epochs_done} epoch(s) "
                f"done, but their checkpoint {self.state_path} is missing: "
                f"delete {self.directory} to start the stage again. "
                f"Received: epochs_done={self.epochs_done}"
            )
        if self.epochs_done:
            import numpy as np

            with np.load(self.state_path) as f:
                count = sum(name.startswith("v") for name in f.files)
                values = [f[f"v{i}"] for i in range(count)]
            variables = self.variables()
            if len(values) != len(variables):
                raise ValueError(
                    f"{self.state_path} holds {len(values)} variables, the "
                    f"stage has {len(variables)}: delete {self.directory} "
                    "to start the stage again."
                )
            for var, value in zip(variables, values):
                var.assign(value)
        return self.epochs_done

    def save(self, seconds, logs):
        """Saves the variables and one more finished epoch."""
        import numpy as np

        self.directory.mkdir(parents=True, exist_ok=True)
        values = {
            f"v{i}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            for i, v in enumerate(self.variables())
        }
        progress = {
            "epochs_done": self.progress["epochs_done"] + 1,
            "epoch_seconds": [*self.progress["epoch_seconds"], seconds],
            "logs": [
                *self.progress["logs"],
                {k: float(v) for k, v in (logs or {}).items()},
            ],
        }
        values[_PROGRESS] = np.array(json.dumps(progress))
        tmp = self.state_path.with_name("state.partial.npz")
        np.savez(tmp, **values)
        os.replace(tmp, self.state_path)  # weights and progress at once
        self.progress = progress
        # A readable copy; the checkpoint's own is the one trusted.
        atomic_write(self.progress_path, json.dumps(self.progress, indent=1))

    def run(self, run_epoch, budget=None, log=print):
        """Runs the epochs left, saving after each; checks the budget.

        Args:
            run_epoch: callable `epoch -> logs dict` training one epoch.
            budget: a `Budget` or None.
            log: where progress lines go.

        Returns:
            The stage's progress dict.

        Raises:
            BudgetExhausted: after saving the epoch that spent the budget.
        """
        start = self.restore()
        if budget is not None and start < self.epochs:
            budget.check(f"{self.label}: before epoch {start + 1}")
        if start:
            log(f"[{self.label}] resuming after epoch {start}/{self.epochs}")
        for epoch in range(start, self.epochs):
            began = time.perf_counter()
            logs = run_epoch(epoch)
            seconds = time.perf_counter() - began
            self.save(seconds, logs)
            if budget is not None:
                budget.worked()
            recent = self.progress["epoch_seconds"][-3:]
            left = (self.epochs - epoch - 1) * sum(recent) / len(recent)
            shown = ", ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items())
            budget_left = budget.left_seconds() if budget else None
            log(
                f"[{self.label}] epoch {epoch + 1}/{self.epochs} "
                f"{_duration(seconds)}; {shown}; stage left ~"
                f"{_duration(left)}"
                + (
                    f"; budget left {_duration(max(budget_left, 0))}"
                    if budget_left is not None
                    else ""
                )
            )
            if budget is not None and epoch + 1 < self.epochs:
                budget.check(f"{self.label} epoch {epoch + 1}/{self.epochs}")
        return self.progress
