"""Bad inputs to every public entry point, in one table.

Each row calls one entry point with one bad argument and expects the
library's own error (raised from teacherclass' code, not from deep inside
TensorFlow or Keras) naming the argument and echoing the value received.
The files the user already had, a directory of saved students and an
export target, stay byte-identical whatever the row does. (The CLI's rows
live in test_cli.py.)
"""

import os
from pathlib import Path

import numpy as np
import pytest

import teacherclass
from teacherclass import DenseTower
from teacherclass import TeacherClass
from teacherclass import datasets
from teacherclass import export

PACKAGE = Path(teacherclass.__file__).resolve().parent


class Env:
    """What the rows call: a trained class, its data and the user's files."""

    def __init__(self, teacher, data, root):
        self.teacher = teacher
        self.x, self.y = data[0], data[1]
        self.tc = TeacherClass(
            teacher, num_students=2, student=DenseTower(1, hidden=(4,))
        )
        self.tc.fit_students(self.x, epochs=1, verbose=0)
        self.composed = self.tc.compose()
        self.students = root / "students"
        self.tc.save_students(self.students)
        self.target = root / "model.tflite"
        self.target.write_bytes(b"the user's own model")
        self.root = root

    def fresh(self):
        return TeacherClass(
            self.teacher, num_students=2, student=DenseTower(1, hidden=(4,))
        )

    def nan_x(self):
        x = self.x.copy()
        x[4, 1] = np.nan
        return x

    def bad_y(self):
        y = self.y.copy()
        y[0] = 7
        return y


@pytest.fixture(scope="module")
def env(teacher, data, tmp_path_factory):
    return Env(teacher, data, tmp_path_factory.mktemp("user"))


STRINGS = np.array([["a"] * 8] * 4)

ROWS = [
    # --- TeacherClass(...) ---
    ("tc-teacher", lambda e: TeacherClass("vgg"), TypeError, "teacher=str"),
    (
        "tc-feature_layer",
        lambda e: TeacherClass(e.teacher, feature_layer="nope"),
        ValueError,
        "feature_layer='nope'",
    ),
    (
        "tc-num_students",
        lambda e: TeacherClass(e.teacher, num_students=0),
        ValueError,
        "num_students=0",
    ),
    (
        "tc-chunks",
        lambda e: TeacherClass(e.teacher, chunks=[8, 4]),
        ValueError,
        r"chunks=\(8, 4\)",
    ),
    (
        "tc-chunks-not-a-sequence",
        lambda e: TeacherClass(e.teacher, chunks=16),
        ValueError,
        "chunks=16",
    ),
    (
        "tc-one-layer-for-two-students",
        lambda e: TeacherClass(
            e.teacher, num_students=2, student=[DenseTower(8)] * 2
        ),
        ValueError,
        "student 1=",
    ),
    (
        "tower-hidden-not-a-sequence",
        lambda e: DenseTower(8, hidden=64),
        ValueError,
        "hidden=64",
    ),
    (
        "tower-dropout",
        lambda e: DenseTower(8, dropout=None),
        ValueError,
        "dropout=None",
    ),
    (
        "tc-clip",
        lambda e: TeacherClass(e.teacher, clip="relu"),
        ValueError,
        "clip='relu'",
    ),
    (
        "tc-clip-order",
        lambda e: TeacherClass(e.teacher, clip=(1.0, 0.0)),
        ValueError,
        r"clip=\(1.0, 0.0\)",
    ),
    (
        "tc-student_input",
        lambda e: TeacherClass(e.teacher, student_input="nope"),
        ValueError,
        "student_input='nope'",
    ),
    (
        "tc-student-list",
        lambda e: TeacherClass(
            e.teacher, num_students=2, student=[DenseTower(8)]
        ),
        ValueError,
        "student=",
    ),
    # --- fit_teacher ---
    ("ft-no-y", lambda e: e.fresh().fit_teacher(e.x), ValueError, "y=None"),
    (
        "ft-epochs",
        lambda e: e.fresh().fit_teacher(e.x, e.y, epochs=0),
        ValueError,
        "epochs=0",
    ),
    (
        "ft-strings",
        lambda e: e.fresh().fit_teacher(STRINGS, e.y[:4]),
        TypeError,
        "x of dtype <U1",
    ),
    (
        "ft-labels",
        lambda e: e.fresh().fit_teacher(e.x, e.bad_y()),
        ValueError,
        "y with min=0, max=7",
    ),
    (
        "ft-validation_data",
        lambda e: e.fresh().fit_teacher(e.x, e.y, validation_data=(e.x,)),
        ValueError,
        "validation_data=tuple of 1",
    ),
    (
        "ft-nan",
        lambda e: e.fresh().fit_teacher(e.nan_x(), e.y),
        ValueError,
        "x with 1 non-finite",
    ),
    # --- fit_students ---
    (
        "fs-epochs",
        lambda e: e.fresh().fit_students(e.x, epochs=0),
        ValueError,
        "epochs=0",
    ),
    (
        "fs-initial_epoch",
        lambda e: e.fresh().fit_students(e.x, epochs=2, initial_epoch=2),
        ValueError,
        "initial_epoch=2, epochs=2",
    ),
    (
        "ft-initial_epoch",
        lambda e: e.fresh().fit_teacher(e.x, e.y, initial_epoch=1),
        ValueError,
        "initial_epoch=1, epochs=1",
    ),
    (
        "fs-validation_split",
        lambda e: e.fresh().fit_students(e.x, validation_split=0.2),
        ValueError,
        "validation_split=0.2",
    ),
    (
        "fs-batch_size",
        lambda e: e.fresh().fit_students(e.x, batch_size=0),
        ValueError,
        "batch_size=0",
    ),
    (
        "fs-steps_per_execution",
        lambda e: e.fresh().fit_students(e.x, steps_per_execution=0),
        ValueError,
        "steps_per_execution=0",
    ),
    (
        "fs-students",
        lambda e: e.fresh().fit_students(e.x, students=[5]),
        ValueError,
        r"students=\[5\]",
    ),
    (
        "fs-loss",
        lambda e: e.fresh().fit_students(e.x, loss="hinge"),
        ValueError,
        "loss='hinge'",
    ),
    (
        "fs-nan",
        lambda e: e.fresh().fit_students(e.nan_x()),
        ValueError,
        "x with 1 non-finite",
    ),
    (
        "fs-shape",
        lambda e: e.fresh().fit_students(np.zeros((4, 9), "float32")),
        ValueError,
        r"x.shape=\(4, 9\)",
    ),
    (
        "fs-strings",
        lambda e: e.fresh().fit_students(STRINGS),
        TypeError,
        "x of dtype <U1",
    ),
    (
        "fs-augment",
        lambda e: e.fresh().fit_students(e.x, augment="flip"),
        TypeError,
        "augment='flip'",
    ),
    (
        "fs-validation_data",
        lambda e: e.fresh().fit_students(e.x, validation_data=(e.x,)),
        ValueError,
        "validation_data=tuple of 1",
    ),
    (
        "fs-validation-nan",
        lambda e: e.fresh().fit_students(e.x, validation_data=e.nan_x()),
        ValueError,
        "validation_data with 1 non-finite",
    ),
    (
        "fs-cache",
        lambda e: e.fresh().fit_students(e.x, cache=3),
        TypeError,
        "cache=3",
    ),
    # --- compose ---
    (
        "compose-untrained",
        lambda e: e.fresh().compose(),
        ValueError,
        r"untrained students=\[0, 1\]",
    ),
    (
        "compose-no-x",
        lambda e: e.tc.compose(fine_tune=True),
        ValueError,
        "x=None",
    ),
    (
        "compose-data-without-fine_tune",
        lambda e: e.tc.compose(x=e.x, y=e.y, epochs=2),
        ValueError,
        "fine_tune=False with x, y, epochs",
    ),
    (
        "compose-head",
        lambda e: e.tc.compose(head="dense"),
        TypeError,
        "head='dense'",
    ),
    (
        "compose-labels",
        lambda e: e.tc.compose(fine_tune=True, x=e.x, y=e.bad_y()),
        ValueError,
        "y with min=0, max=7",
    ),
    (
        "compose-epochs",
        lambda e: e.tc.compose(fine_tune=True, x=e.x, y=e.y, epochs=0),
        ValueError,
        "epochs=0",
    ),
    # --- save_students / load_students ---
    (
        "save-exists",
        lambda e: e.tc.save_students(e.students),
        FileExistsError,
        "directory=",
    ),
    (
        "save-students",
        lambda e: e.tc.save_students(e.root / "other", students=[7]),
        ValueError,
        r"students=\[7\]",
    ),
    (
        "load-missing",
        lambda e: e.fresh().load_students(e.root / "nowhere"),
        FileNotFoundError,
        "directory=",
    ),
    (
        "load-students",
        lambda e: e.fresh().load_students(e.students, students=[9]),
        ValueError,
        r"students=\[9\]",
    ),
    # --- datasets.load ---
    (
        "datasets-name",
        lambda e: datasets.load("mnistt"),
        ValueError,
        "name='mnistt'",
    ),
    (
        "datasets-split",
        lambda e: datasets.load("digits", split="dev"),
        ValueError,
        "split='dev'",
    ),
    # --- export ---
    (
        "export-format",
        lambda e: export.export(e.composed, e.root / "m", format="onnx"),
        ValueError,
        "format='onnx'",
    ),
    (
        "export-quantize",
        lambda e: export.export(
            e.composed, e.root / "m.tflite", format="litert", quantize="int4"
        ),
        ValueError,
        "quantize='int4'",
    ),
    (
        "export-exists",
        lambda e: export.export(e.composed, e.target, format="litert"),
        FileExistsError,
        "path=",
    ),
    (
        "export-overwrite-a-file-not-exported",
        lambda e: export.export(
            e.composed, e.target, format="litert", overwrite=True
        ),
        FileExistsError,
        "path=",
    ),
    (
        "report-y-length",
        lambda e: e.tc.report(e.x, e.y[:10]),
        ValueError,
        "y with shape",
    ),
    (
        "report-y-classes",
        lambda e: e.tc.report(e.x, e.y + 5),
        ValueError,
        "y with min=",
    ),
    (
        "report-y-without-x",
        lambda e: e.tc.report(y=e.y),
        ValueError,
        "x=None",
    ),
    (
        "export-suffix",
        lambda e: export.export(e.composed, e.root / "m.lite", format="litert"),
        ValueError,
        "path=",
    ),
    (
        "export-model",
        lambda e: export.export("composed", e.root / "m"),
        TypeError,
        "model='composed'",
    ),
    (
        "export-calibration",
        lambda e: export.export(
            e.composed,
            e.target,
            format="litert",
            quantize="int8",
            overwrite=True,
        ),
        ValueError,
        "representative_data=None",
    ),
]


def _files(root):
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_table_is_large_enough():
    assert len(ROWS) >= 25
    assert len({row[0] for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize(
    "call, error, fragment", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_bad_input(env, call, error, fragment):
    before = _files(env.root)
    with pytest.raises(error, match=f"Received: .*{fragment}") as info:
        call(env)
    # Raised by the library itself, not from inside TensorFlow or Keras.
    raised_in = Path(info.traceback[-1].path).resolve()
    assert raised_in.is_relative_to(PACKAGE), raised_in
    assert _files(env.root) == before
    assert not [p for p in os.listdir(env.root) if p.startswith(".export-")]
