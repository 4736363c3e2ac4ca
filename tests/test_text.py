"""Teachers that take raw strings: TextVectorization in front."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from teacherclass import TeacherClass
from teacherclass import TextTower
from teacherclass import data as data_lib

POSITIVE = ["good", "great", "fun", "superb", "lovely"]
NEGATIVE = ["bad", "awful", "boring", "poor", "dull"]
FILLER = ["the", "movie", "film", "was", "a", "plot", "actor", "and", "it"]


def corpus(n, seed=0):
    """Sentences of filler words and two words of their label's sentiment."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    texts = []
    for label in y:
        words = list(rng.choice(FILLER, 8))
        words += list(rng.choice(POSITIVE if label else NEGATIVE, 2))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return np.array(texts, dtype=object), y.astype("int32")


def string_teacher(texts):
    vectorizer = keras.layers.TextVectorization(
        max_tokens=40, output_sequence_length=10, name="vectorizer"
    )
    vectorizer.adapt(texts)
    inputs = keras.Input(shape=(), dtype="string", name="text")
    x = keras.layers.Embedding(40, 8, name="embedding")(vectorizer(inputs))
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = keras.layers.Dense(16, activation="relu", name="rep")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(x)
    return keras.Model(inputs, outputs, name="text_teacher")


@pytest.fixture(scope="module")
def data():
    return corpus(400), corpus(100, seed=1)


def test_students_take_token_ids_and_composed_takes_strings(data, tmp_path):
    (x, y), (x_test, y_test) = data
    keras.utils.set_random_seed(0)
    tc = TeacherClass(string_teacher(x), num_students=2)
    assert tc.student_input == "vectorizer"
    assert all(isinstance(s, TextTower) for s in tc.students)
    assert tc.students[0].vocab_size == 40
    tc.fit_teacher(x, y, epochs=30, verbose=0)
    assert tc.teacher.evaluate(x_test, y_test, verbose=0)[1] > 0.9
    history = tc.fit_students(x, epochs=25, validation_data=x_test, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    composed = tc.compose()
    assert composed.inputs[0].dtype == "string"
    assert composed.evaluate(x_test, y_test, verbose=0)[1] > 0.9
    # Knowledge reuse and separate jobs see strings and token ids.
    assert tc.representation().inputs[0].dtype == "string"
    tc.save_students(tmp_path / "students")
    student = keras.saving.load_model(tmp_path / "students/student_0.keras")
    assert "int" in student.inputs[0].dtype
    composed.save(tmp_path / "composed.keras")
    tc.save(tmp_path / "tc.keras")
    expected = composed.predict(x_test[:8], verbose=0)
    np.save(tmp_path / "expected.npy", expected)
    texts = [str(t) for t in x_test[:8]]
    script = textwrap.dedent(
        f"""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import keras, numpy as np
        import teacherclass
        d = {str(tmp_path)!r}
        texts = np.array({texts!r}, dtype=object)
        composed = keras.saving.load_model(d + "/composed.keras")
        expected = np.load(d + "/expected.npy")
        np.testing.assert_allclose(
            composed.predict(texts, verbose=0), expected, atol=1e-6)
        tc = keras.saving.load_model(d + "/tc.keras")
        assert tc.student_input == "vectorizer", tc.student_input
        np.testing.assert_allclose(
            tc.predict(texts, verbose=0), expected, atol=1e-6)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_student_input_must_be_preprocessing(data):
    (x, _), _ = data
    teacher = string_teacher(x)
    with pytest.raises(ValueError, match="Received: student_input='pool'"):
        TeacherClass(teacher, student_input="pool")
    with pytest.raises(ValueError, match="Received: student_input='nope'"):
        TeacherClass(teacher, student_input="nope")


def test_numeric_teacher_keeps_its_input():
    teacher = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Rescaling(0.5, name="scale"),
            keras.layers.Dense(6, activation="relu", name="rep"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    assert TeacherClass(teacher).student_input is None
    tc = TeacherClass(teacher, num_students=2, student_input="scale")
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    tc.fit_students(x, epochs=1, verbose=0)
    assert tc.compose().predict(x, verbose=0).shape == (32, 2)


def test_augment_raw_strings_then_vectorize(data):
    """With `student_input`, `augment` sees the raw strings.

    The augmentation (here: removing a marker that makes every word
    unknown) runs before the vectorizer; training so equals training on
    the augmented texts.
    """
    (x, y), _ = data
    keras.utils.set_random_seed(0)
    teacher = string_teacher(x)
    marked = np.array([t.replace(" ", " xq") for t in x], dtype=object)

    def unmark(texts, training=True):
        return tf.strings.regex_replace(texts, " xq", " ")

    fit = dict(epochs=2, batch_size=32, shuffle=False, verbose=0)
    keras.utils.set_random_seed(0)
    augmented = TeacherClass(teacher, num_students=2)
    history = augmented.fit_students(marked, augment=unmark, **fit)
    keras.utils.set_random_seed(0)
    plain = TeacherClass(teacher, num_students=2)
    expected = plain.fit_students(x, **fit)
    np.testing.assert_allclose(
        history.history["loss"], expected.history["loss"], rtol=1e-5
    )
    # Marked words are out of the vocabulary: without the augmentation the
    # teacher's features, and so the losses, would differ.
    keras.utils.set_random_seed(0)
    unaugmented = TeacherClass(teacher, num_students=2).fit_students(
        marked, **fit
    )
    assert not np.allclose(
        unaugmented.history["loss"], expected.history["loss"], rtol=1e-3
    )


def test_an_unbatched_dataset_of_strings_is_batched(data):
    # A string sample has shape (): an unbatched dataset of them (tfds'
    # `imdb_reviews` with `as_supervised`) is batched, not read as
    # batches of one dimension less.
    (x, y), _ = data
    texts = tf.data.Dataset.from_tensor_slices(x[:40].astype(str))
    pairs = tf.data.Dataset.from_tensor_slices((x[:40].astype(str), y[:40]))
    keras.utils.set_random_seed(0)
    tc = TeacherClass(string_teacher(x), num_students=2)
    for dataset in (texts, pairs):
        assert (
            data_lib.dataset_batch_size(dataset, tc.teacher.inputs[0]) is None
        )
        history = tc.fit_students(dataset, batch_size=8, epochs=1, verbose=0)
        assert history.params["steps"] == 5
    assert (
        data_lib.dataset_batch_size(texts.batch(8), tc.teacher.inputs[0]) == 8
    )
