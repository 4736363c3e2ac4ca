"""IMDB end to end on raw strings: TextVectorization in front of everything.

The teacher is `Input(string) -> TextVectorization -> Embedding -> ...`.
`TeacherClass` takes its first layer as the students' input
(`student_input`, by default the layer after a string input): the
vectorizer runs once per review when the features are cached, students
train on token ids, and the composed model keeps the same vectorizer in
front of them, so it takes raw strings like the teacher and its `.keras`
file loads and predicts on strings anywhere (`safe_mode=True`).

Runs on the real IMDB copy (`DATA_DIR/imdb`); by default on a subset and
few epochs so it takes a few CPU minutes (TEACHERCLASS_QUICK=1: seconds).

Run: python examples/imdb.py [DATA_DIR]
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
samples = 200 if quick else 4_000
vocab, length = 1_000, 200
keras.utils.set_random_seed(0)

(x, y), (x_test, y_test) = (
    datasets.load("imdb_reviews", split, data_dir=data_dir)
    for split in ("train", "test")
)
x, y, x_test, y_test = (
    x[:samples],
    y[:samples],
    x_test[:samples],
    y_test[:samples],
)

vectorizer = keras.layers.TextVectorization(
    max_tokens=vocab, output_sequence_length=length, name="vectorizer"
)
vectorizer.adapt(x)

# The paper's IMDB teacher, with the vectorizer as its first layer.
text = keras.Input(shape=(), dtype="string", name="text")
h = keras.layers.Embedding(vocab, 32, name="embedding")(vectorizer(text))
for i in (1, 2):
    h = keras.layers.Conv1D(
        64, 3, padding="same", activation="relu", name=f"conv_{i}"
    )(h)
h = keras.layers.MaxPooling1D(2, name="pool")(h)
h = keras.layers.Flatten(name="flatten")(h)
h = keras.layers.Dense(256, activation="relu", name="representation")(h)
logits = keras.layers.Dense(1, name="logits")(h)
probabilities = keras.layers.Activation("sigmoid", name="probabilities")(logits)
teacher = keras.Model(text, probabilities, name="imdb_string_teacher")

tc = TeacherClass(
    teacher,
    num_students=4,
    student=architectures.imdb_student(4, vocab_size=vocab),
)
print("students take:", tc.student_input)  # "vectorizer"
tc.fit_teacher(x, y, epochs=1 if quick else 2, batch_size=64, verbose=2)
tc.fit_students(x, epochs=1 if quick else 5, batch_size=64, verbose=2)
composed = tc.compose()
print("teacher:", teacher.evaluate(x_test, y_test, return_dict=True, verbose=0))
print(
    "composed:", composed.evaluate(x_test, y_test, return_dict=True, verbose=0)
)
print(tc.report())

path = os.environ.get("TEACHERCLASS_OUT", "imdb_composed.keras")
composed.save(path)
reviews = np.array(
    ["A wonderful, moving film.", "Dull and far too long."], dtype=object
)
print(keras.saving.load_model(path).predict(reviews, verbose=0).ravel())
