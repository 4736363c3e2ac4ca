"""The README's quickstart: digits, 4 students, compose, report.

Run: python examples/quickstart.py  (TEACHERCLASS_QUICK=1 for a 2-epoch smoke
run, as the tests do).
"""

import os

import keras

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass import datasets

quick = os.environ.get("TEACHERCLASS_QUICK") == "1"
keras.utils.set_random_seed(0)

(x, y), (x_test, y_test) = (
    datasets.load("digits", split) for split in ("train", "test")
)

teacher = architectures.digits_teacher()  # any built keras.Model
tc = TeacherClass(
    teacher, num_students=4, student=architectures.digits_student()
)
tc.fit_teacher(x, y, epochs=2 if quick else 30, batch_size=64, verbose=2)

tc.fit_students(x, epochs=2 if quick else 80, batch_size=64, verbose=2)
composed = tc.compose()
print(composed.evaluate(x_test, y_test, return_dict=True, verbose=0))
print(tc.report())
composed.save(os.environ.get("TEACHERCLASS_OUT", "digits_composed.keras"))
