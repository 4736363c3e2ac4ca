"""Students as files: trained in separate jobs, gathered for `compose`.

`save_students` writes each trained student as `student_{i}.keras` (a
model from the students' input to its chunk, loadable on its own) and
`student_{i}.json` (its chunk and a digest of the teacher's trunk it
learned from); `load_students` checks those against a `TeacherClass` and
loads the weights. `TeacherClass.save_students`/`load_students` call these.
"""

import json
import os

import keras

from teacherclass import chunking
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
    }


def save_students(tc, directory, students=None, overwrite=False):
    """Saves `tc`'s trained students (see `TeacherClass.save_students`).

    Nothing is written unless every listed student can be: an untrained
    student or an existing file (without `overwrite`) is refused first.
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
    for i in selected:
        inputs = tc.cut.student_inputs()
        model = keras.Model(inputs, tc.students[i](inputs), name=f"student_{i}")
        model.save(os.path.join(directory, f"student_{i}.keras"))
        with open(os.path.join(directory, f"student_{i}.json"), "w") as f:
            json.dump(_meta(tc, i), f, indent=1)
    return list(selected)


def load_students(tc, directory, students=None):
    """Loads students into `tc` (see `TeacherClass.load_students`).

    Every listed student is checked before any weight is set.
    """
    selected = validation.check_students(students, tc.num_students)
    for i in selected:
        for ext in ("keras", "json"):
            path = os.path.join(directory, f"student_{i}.{ext}")
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"Student {i} is missing: no {path}. Train it with "
                    f"fit_students(x, students=[{i}]) and save_students."
                    f" Received: directory={os.fspath(directory)!r}"
                )
    loaded = {}
    for i in selected:
        with open(os.path.join(directory, f"student_{i}.json")) as f:
            saved = json.load(f)
        expected = _meta(tc, i)
        for key in ("chunk", "feature_layer", "teacher_trunk_digest"):
            if saved.get(key) != expected[key]:
                raise ValueError(
                    f"Student {i} in {os.fspath(directory)!r} does not "
                    f"match this class: its {key} is {saved.get(key)!r}, "
                    f"expected {expected[key]!r}."
                )
        model = saving.load_model(os.path.join(directory, f"student_{i}.keras"))
        tower = model.layers[-1]
        if tower.get_config() != tc.students[i].get_config():
            raise ValueError(
                f"Student {i} in {os.fspath(directory)!r} is a different "
                f"tower ({tower.__class__.__name__}, units="
                f"{tower.get_config().get('units')}) than this class's."
            )
        loaded[i] = tower.get_weights()
    for i, weights in loaded.items():
        tc.students[i].set_weights(weights)
    return sorted(loaded)
