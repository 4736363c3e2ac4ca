"""Students as files: trained in separate jobs, gathered for `compose`.

`save_students` writes each trained student as `student_{i}.keras` (a
model from the students' input to its chunk, loadable on its own) and
`student_{i}.json` (its chunk, a digest of the teacher's trunk it
learned from and of the target conditioning it regressed); with target
conditioning, the statistics go to `conditioning.npz` in the same
directory. `load_students` checks those against a `TeacherClass`, adopts
the statistics when the class has none yet, and loads the weights.
`TeacherClass.save_students`/`load_students` call these.
"""

import json
import os
import uuid

import keras
import numpy as np

from teacherclass import chunking
from teacherclass import conditioning as conditioning_lib
from teacherclass import saving
from teacherclass import validation


def _meta(tc, i):
    start, stop = chunking.bounds(tc.chunks)[i]
    return {
        "student": i,
        "chunk": [start, stop],
        "chunks": list(tc.chunks),
        "feature_layer": tc.feature_layer,
        "teacher": tc.teacher.name,
        "teacher_trunk_digest": tc.cut.trunk_digest(),
        "tower": keras.saving.serialize_keras_object(tc.students[i]),
        "conditioning": tc.conditioning,
        "conditioning_digest": tc.conditioning_digest(),
    }


_CONDITIONING = "conditioning.npz"


def _save_conditioning(tc, directory, selected, overwrite, path):
    """Writes the class's target statistics to `path`, to be moved beside
    its students; returns whether it wrote them.

    Other statistics already there are replaced only under `overwrite`
    and when every student saved with them is being replaced too; the
    same statistics are not written again.
    """
    fitted = tc.target_conditioning()
    if fitted is None:
        return False
    final = os.path.join(directory, _CONDITIONING)
    if os.path.exists(final):
        saved = _load_conditioning(final)
        if saved.digest() == fitted.digest():
            return False
        kept = sorted(set(_saved_indices(directory)) - set(selected))
        if not overwrite or kept:
            why = (
                f"students {kept} there regressed them: save every "
                "student again with overwrite=True, or choose another "
                "directory"
                if kept
                else "pass overwrite=True to replace them with the students"
            )
            raise ValueError(
                f"{final} holds other target statistics than this class's "
                f"(students in one directory must regress the same "
                f"targets): {why}. Received: directory="
                f"{os.fspath(directory)!r}"
            )
    np.savez(
        path,
        mean=fitted.mean.astype("float32"),
        matrix=fitted.matrix.astype("float32"),
        kind=fitted.kind,
        order=fitted.order or "",
    )
    return True


def _load_conditioning(path):
    with np.load(path) as f:
        # Files written before chunk orders other than "variance" hold a
        # `balance` flag instead of an `order`.
        if "order" in f:
            order = {"balance": False, "order": str(f["order"]) or None}
        else:
            order = {"balance": bool(f["balance"])}
        return conditioning_lib.Conditioning(
            f["mean"], f["matrix"], str(f["kind"]), **order
        )


def save_students(tc, directory, students=None, overwrite=False):
    """Saves `tc`'s trained students (see `TeacherClass.save_students`).

    Nothing is written unless every listed student can be: an untrained
    student or an existing file (without `overwrite`) is refused first.
    The files are written under temporary names, then moved onto theirs:
    a save that fails midway leaves the directory as it was.
    """
    trained = tc.trained_students
    selected = (
        trained
        if students is None
        else validation.check_students(students, tc.num_students)
    )
    missing = [i for i in selected if i not in trained]
    if missing:
        raise ValueError(
            f"Students {missing} were never trained; train them first. "
            f"Received: students={list(selected)}"
        )
    for i in selected:
        path = os.path.join(directory, f"student_{i}.keras")
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(
                f"{path} exists; pass overwrite=True to replace it. "
                f"Received: directory={os.fspath(directory)!r}"
            )
    os.makedirs(directory, exist_ok=True)
    # Every file is written under a temporary name first and moved onto
    # its own only when all were written: a save that fails (a full disk)
    # leaves the files already there as they were. The token keeps jobs
    # saving into one directory at once off each other's temporaries.
    token = uuid.uuid4().hex[:8]
    moves = {}

    def temporary(name):
        moves[name] = os.path.join(directory, f".partial-{token}-{name}")
        return moves[name]

    try:
        if not _save_conditioning(
            tc, directory, selected, overwrite, temporary(_CONDITIONING)
        ):
            del moves[_CONDITIONING]
        for i in selected:
            inputs = tc.cut.student_inputs()
            model = keras.Model(
                inputs, tc.students[i](inputs), name=f"student_{i}"
            )
            model.save(temporary(f"student_{i}.keras"))
            with open(temporary(f"student_{i}.json"), "w") as f:
                json.dump(_meta(tc, i), f, indent=1)
        for name, path in moves.items():
            os.replace(path, os.path.join(directory, name))
    finally:
        for path in moves.values():
            if os.path.exists(path):
                os.remove(path)
    return list(selected)


def _check_meta(i, saved, expected, keys, directory):
    """Refuses a saved student `i` made for another class: `saved`'s
    `keys` must be as `expected` (`_meta`)."""
    for key in keys:
        if saved.get(key) != expected[key]:
            raise ValueError(
                f"Student {i} in {os.fspath(directory)!r} does not "
                f"match this class: its {key} is {saved.get(key)!r}, "
                f"expected {expected[key]!r}."
            )


def _tower_config(tower):
    """What makes two towers the same: their configuration less the
    layer's name (made up by Keras for a tower built by a callable) and
    its dtype policy (a student trained under `mixed_bfloat16` holds
    float32 weights like one trained in float32)."""
    config = dict(tower.get_config())
    config.pop("name", None)
    config.pop("dtype", None)
    return config


def _check_tower(i, tower, expected, directory):
    """Refuses a saved student `i` whose `tower` is not like `expected`,
    naming what differs."""
    saved, mine = _tower_config(tower), _tower_config(expected)
    if type(tower) is type(expected) and saved == mine:
        return
    if type(tower) is not type(expected):
        what = (
            f"a {tower.__class__.__name__}, this class's a "
            f"{expected.__class__.__name__}"
        )
    else:
        what = "; ".join(
            f"{key}={saved.get(key)!r} saved, {mine.get(key)!r} here"
            for key in sorted(set(saved) | set(mine))
            if saved.get(key) != mine.get(key)
        )
    raise ValueError(
        f"Student {i} in {os.fspath(directory)!r} is a different tower "
        f"than this class's: {what}. Received: directory="
        f"{os.fspath(directory)!r}"
    )


def _saved_indices(directory):
    """The indices of the students saved in `directory`."""
    if not os.path.isdir(directory):
        return []
    names = (n[len("student_") : -len(".json")] for n in os.listdir(directory)
             if n.startswith("student_") and n.endswith(".json"))  # fmt: skip
    return sorted(int(n) for n in names if n.isdigit())


def _holdings(directory, num_students):
    """A hint when `directory` holds students beyond this class's."""
    beyond = [i for i in _saved_indices(directory) if i >= num_students]
    if not beyond:
        return ""
    return (
        f" {os.fspath(directory)!r} also holds student_"
        f"{', student_'.join(map(str, beyond))}, beyond this class's "
        f"{num_students}: saved from a class of another size?"
    )


def load_students(tc, directory, students=None):
    """Loads students into `tc` (see `TeacherClass.load_students`).

    Every listed student is checked (its files, its chunk, teacher,
    tower and target statistics) before the class changes: its students'
    weights and, when it has none yet, the target statistics of the
    directory, which every student must have regressed.
    """
    selected = validation.check_students(students, tc.num_students)

    def path(i, ext):
        return os.path.join(directory, f"student_{i}.{ext}")

    present = [i for i in selected if os.path.exists(path(i, "json"))]
    # The students that are there first: one of another split says so,
    # rather than a later student being "missing".
    keys = ["chunk", "feature_layer", "teacher_trunk_digest", "conditioning"]
    fitted = tc.conditioning_fitted
    if fitted:
        keys.append("conditioning_digest")
    saved = {}
    for i in present:
        with open(path(i, "json")) as f:
            saved[i] = json.load(f)
        _check_meta(i, saved[i], _meta(tc, i), keys, directory)
    for i in selected:
        for ext in ("keras", "json"):
            if not os.path.exists(path(i, ext)):
                raise FileNotFoundError(
                    f"Student {i} is missing: no {path(i, ext)}. Train it "
                    f"with fit_students(x, students=[{i}]) and "
                    f"save_students.{_holdings(directory, tc.num_students)}"
                    f" Received: directory={os.fspath(directory)!r}"
                )
    # Statistics the class does not hold yet come from the directory,
    # read once; every student must have regressed them.
    adopted = None
    if not fitted and any(
        saved[i].get("conditioning_digest") is not None for i in selected
    ):
        stats = os.path.join(directory, _CONDITIONING)
        if os.path.exists(stats):
            adopted = _load_conditioning(stats)
    for i in selected:
        digest = saved[i].get("conditioning_digest")
        if fitted or digest is None:
            continue
        if adopted is None or adopted.digest() != digest:
            held = "no" if adopted is None else f"other ({adopted.digest()})"
            raise ValueError(
                f"Student {i} in {os.fspath(directory)!r} regressed "
                f"conditioned targets (digest {digest}), and "
                f"{_CONDITIONING} there holds {held} statistics: students "
                "in one directory must regress the same targets. "
                f"Received: directory={os.fspath(directory)!r}"
            )
    loaded = {}
    for i in selected:
        model = saving.load_model(os.path.join(directory, f"student_{i}.keras"))
        tower = model.layers[-1]
        _check_tower(i, tower, tc.students[i], directory)
        loaded[i] = tower.get_weights()
    # Every student passed: only now does the class change.
    if adopted is not None:
        tc.set_target_conditioning(adopted)
    for i, weights in loaded.items():
        tc.students[i].set_weights(weights)
    return sorted(loaded)
