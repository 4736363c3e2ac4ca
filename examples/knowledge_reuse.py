"""Knowledge reuse: students of a digits 0-4 teacher, a new head for 5-9.

The students learn to mimic a teacher trained on MNIST digits 0-4, are
frozen, and a new head learns digits 5-9 on their joint representation
(`TeacherClass.compose(head=...)`). benchmarks/knowledge_reuse.py compares
this with the teacher's own representation and with training from scratch.

Run: python examples/knowledge_reuse.py [DATA_DIR]  (TEACHERCLASS_QUICK=1 for
a smoke run on a few hundred samples)
DATA_DIR defaults to the TEACHERCLASS_DATA environment variable, else
to shared/data beside the repository (../shared/data from its root);
runs from any folder.
"""

import os
import sys
from pathlib import Path

import keras
import numpy as np

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass import datasets

quick = os.environ.get("TEACHERCLASS_QUICK") == "1"
# DATA_DIR if given; else None when TEACHERCLASS_DATA is set (datasets.load
# reads the variable); else the shared folder beside this repository.
if len(sys.argv) > 1:
    data_dir = sys.argv[1]
elif os.environ.get("TEACHERCLASS_DATA"):
    data_dir = None
else:
    data_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
keras.utils.set_random_seed(0)

(x, y), (x_test, y_test) = (
    datasets.load("mnist", split, data_dir=data_dir)
    for split in ("train", "test")
)
x, x_test = x / np.float32(255), x_test / np.float32(255)
old, old_test = y < 5, y_test < 5
n = 500 if quick else 10_000

# The old task: a teacher for digits 0-4, students that mimic it.
teacher = architectures.mnist_teacher(num_classes=5)
tc = TeacherClass(
    teacher, num_students=4, student=architectures.mnist_student(4)
)
tc.fit_teacher(x[old][:n], y[old][:n], epochs=1 if quick else 2, verbose=2)
tc.fit_students(x[old][:n], epochs=1 if quick else 6, verbose=2)

# The new task: digits 5-9, a new head on the frozen students.
head = keras.Sequential([keras.Input((256,)), keras.layers.Dense(5, "softmax")])
head.compile(
    optimizer=keras.optimizers.Adam(3e-3),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
new, new_test = ~old, ~old_test
labelled = 100 if quick else 1_000
reused = tc.compose(
    head=head,
    fine_tune=True,
    x=x[new][:labelled],
    y=y[new][:labelled] - 5,
    epochs=5 if quick else 40,
    verbose=0,
)
scores = reused.evaluate(
    x_test[new_test], y_test[new_test] - 5, return_dict=True, verbose=0
)
print("digits 5-9 on reused students:", scores)
