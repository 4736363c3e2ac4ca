import re

import keras
import numpy as np
import pytest

from teacherclass import TeacherClass
from teacherclass import architectures

MNIST_STUDENTS = {1: 77_840, 2: 40_024, 4: 19_144, 8: 10_620}
IMDB_STUDENTS = {1: 178_288, 2: 100_552, 4: 42_064, 8: 21_040}
CIFAR10_STUDENTS = {1: 324_144, 2: 321_968, 4: 320_880, 8: 320_336}


@pytest.fixture(scope="module")
def teachers():
    return {
        "mnist": architectures.mnist_teacher(),
        "imdb": architectures.imdb_teacher(),
        "cifar10": architectures.cifar10_teacher(),
    }


def _zeros(teacher, batch=2):
    spec = teacher.inputs[0]
    return np.zeros((batch,) + tuple(spec.shape[1:]), dtype=spec.dtype)


def test_mnist_teacher_has_the_papers_parameter_count():
    teacher = architectures.mnist_teacher()
    assert teacher.count_params() == 2_446_730
    assert teacher(_zeros(teacher)).shape == (2, 10)


def test_mnist_teacher_rescale_adds_no_parameters():
    teacher = architectures.mnist_teacher(rescale=True)
    assert teacher.count_params() == 2_446_730
    assert teacher.layers[1].name == "rescale"


def test_imdb_teacher_parameter_count_and_output():
    teacher = architectures.imdb_teacher()
    assert teacher.count_params() == 4_147_073
    assert teacher.inputs[0].dtype == "int32"
    assert teacher(_zeros(teacher)).shape == (2, 1)


def test_cifar10_teachers_parameter_counts_and_output():
    vgg = architectures.cifar10_teacher(paper=True)
    assert vgg.count_params() == 14_865_482
    compact = architectures.cifar10_teacher()
    assert compact.count_params() == 1_715_274
    for teacher in (vgg, compact):
        out = keras.ops.convert_to_numpy(teacher(_zeros(teacher)))
        assert out.shape == (2, 10)
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_augmentation_is_inactive_at_inference():
    teacher = architectures.cifar10_teacher()
    x = np.random.rand(2, 32, 32, 3).astype("float32")
    no_aug = architectures.cifar10_teacher(augment=False)
    no_aug.set_weights(teacher.get_weights())
    np.testing.assert_allclose(
        teacher.predict(x, verbose=0), no_aug.predict(x, verbose=0)
    )


@pytest.mark.parametrize("name", ["mnist", "imdb", "cifar10"])
def test_default_rule_finds_the_representation(teachers, name):
    tc = TeacherClass(teachers[name], num_students=1)
    assert tc.feature_layer == "representation"
    assert tc.chunks == (256,)


@pytest.mark.parametrize(
    "builder, shape, counts",
    [
        (architectures.mnist_student, (None, 28, 28, 1), MNIST_STUDENTS),
        (architectures.imdb_student, (None, 500), IMDB_STUDENTS),
        (architectures.cifar10_student, (None, 32, 32, 3), CIFAR10_STUDENTS),
    ],
)
def test_student_parameter_counts(builder, shape, counts):
    for n, expected in counts.items():
        tower = builder(n)
        tower.build(shape)
        assert tower.units == 256 // n
        assert tower.count_params() == expected, n


@pytest.mark.parametrize(
    "name, builder, counts",
    [
        ("mnist", architectures.mnist_student, MNIST_STUDENTS),
        ("imdb", architectures.imdb_student, IMDB_STUDENTS),
        ("cifar10", architectures.cifar10_student, CIFAR10_STUDENTS),
    ],
)
@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_teacher_class_builds_with_paper_students(
    teachers, name, builder, counts, n
):
    teacher = teachers[name]
    tc = TeacherClass(teacher, num_students=n, student=builder(n))
    assert tc.chunks == (256 // n,) * n
    assert [s.count_params() for s in tc.students] == [counts[n]] * n
    outputs = tc.students[0](_zeros(teacher))
    assert outputs.shape == (2, 256 // n)


@pytest.mark.parametrize("n, params", [(4, 21_712), (8, 11_776)])
def test_wider_bottleneck_keeps_25x(teachers, n, params):
    teacher = teachers["mnist"]
    student = architectures.mnist_student(n, bottleneck=16)
    assert student.bottleneck == 16
    tc = TeacherClass(teacher, num_students=n, student=student)
    assert [s.count_params() for s in tc.students] == [params] * n
    composed = n * params + tc.head.count_params()
    assert teacher.count_params() / composed >= 25


def test_units_overrides_the_chunk_width():
    assert architectures.mnist_student(4, units=10).units == 10
    assert architectures.imdb_student(2, vocab_size=50).vocab_size == 50


@pytest.mark.parametrize(
    "builder", [architectures.mnist_student, architectures.imdb_student]
)
@pytest.mark.parametrize("n", [3, 16, 0, True, 4.0])
def test_paper_students_reject_other_class_sizes(builder, n):
    with pytest.raises(ValueError, match=f"Received: num_students={n}"):
        builder(n)


@pytest.mark.parametrize("n", [0, 257, 2.0])
def test_cifar10_student_rejects_bad_class_sizes(n):
    with pytest.raises(ValueError, match=f"Received: num_students={n}"):
        architectures.cifar10_student(n)


def test_teachers_reject_one_class():
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        architectures.mnist_teacher(num_classes=1)


def test_student_tower_keras_round_trip(tmp_path):
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, architectures.mnist_student(8)(inputs))
    x = np.random.rand(3, 28, 28, 1).astype("float32")
    path = str(tmp_path / "student.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    tower = loaded.layers[-1]
    assert tower.get_config()["filters"] == (16, 16, 16, 16)
    assert tower.count_params() == MNIST_STUDENTS[8]
    np.testing.assert_allclose(
        model.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=1e-6
    )


# ----------------------------------------------------------------------
# for_dataset and size_to_budget
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, teacher_params, student_n4, units",
    [
        ("digits", 349_578, None, 64),
        ("mnist", 2_446_730, 21_712, 64),  # bottleneck widened to 16
        ("fashion_mnist", 2_446_730, 21_712, 64),
        ("imdb_reviews", 4_147_073, IMDB_STUDENTS[4], 64),
        ("cifar10", 1_973_930, 39_024, 64),  # the fast teacher, BN students
    ],
)
def test_for_dataset_builds_a_working_class(
    name, teacher_params, student_n4, units
):
    setup = architectures.for_dataset(name)
    teacher = setup.teacher()
    assert teacher.count_params() == teacher_params
    assert teacher.inputs[0].dtype == setup.input_dtype
    assert teacher.outputs[0].shape[-1] == setup.num_classes
    tc = TeacherClass(teacher, num_students=4, student=setup.student(4))
    assert tc.chunks == (units,) * 4
    if student_n4 is not None:
        assert tc.students[0].count_params() == student_n4
    for key in ("teacher_epochs", "epochs", "batch_size", "num_students"):
        assert setup.defaults[key] >= 1
    with pytest.raises(TypeError):
        setup.defaults["epochs"] = 1  # read-only


def test_for_dataset_paper_profile():
    improved = architectures.for_dataset("mnist")
    paper = architectures.for_dataset("mnist", paper=True)
    assert improved.defaults["augment"] == "shift"
    assert improved.defaults["min_student_bottleneck"] == 16
    for key in ("augment", "teacher_lr_schedule", "min_student_bottleneck"):
        assert key not in paper.defaults
    assert paper.defaults["epochs"] == improved.defaults["epochs"]
    assert [paper.student(n).bottleneck for n in (1, 2, 4, 8)] == [
        16,
        56,
        8,
        12,
    ]
    assert improved.student(4, min_bottleneck=0).bottleneck == 8
    assert improved.student(2).bottleneck == 56  # wider than 16 already
    assert improved.student(4, bottleneck=20).bottleneck == 20
    vgg = architectures.for_dataset("cifar10", paper=True)
    assert "VGG-16" in vgg.teacher_name
    assert vgg.teacher().name == "cifar10_vgg16_teacher"


def test_for_dataset_prepares_inputs():
    x = np.full((2, 28, 28, 1), 255, dtype="uint8")
    mnist = architectures.for_dataset("mnist")
    np.testing.assert_allclose(mnist.prepare(x), 1.0)
    assert mnist.prepare(x).dtype == "float32"
    floats = np.random.rand(2, 8, 8, 1).astype("float32")
    assert architectures.for_dataset("digits").prepare(floats) is floats
    camvid = architectures.for_dataset("camvid")
    assert camvid.prepare(x).max() == 255.0  # the teacher rescales
    assert camvid.student_input == "rescale"
    imdb = architectures.for_dataset("imdb_reviews")
    texts = np.array(["a good film", "a bad film", "good good"], dtype=object)
    vectorizer = imdb.text_vectorizer(texts=texts)
    ids = imdb.prepare(texts, vectorizer)
    assert ids.shape == (3, 500) and ids.dtype == "int32"
    # An empty split (reproduce's --split validation test slice) keeps
    # the shape of the ids.
    empty = imdb.prepare(texts[:0], vectorizer)
    assert empty.shape == (0, 500) and empty.dtype == "int32"
    again = imdb.text_vectorizer(vocabulary=vectorizer.get_vocabulary()[2:])
    np.testing.assert_array_equal(imdb.prepare(texts, again), ids)
    with pytest.raises(ValueError, match="Received: vectorizer=None"):
        imdb.prepare(texts)
    with pytest.raises(ValueError, match="has no text inputs"):
        mnist.text_vectorizer(texts=texts)


def test_for_dataset_camvid_teacher_and_student():
    camvid = architectures.for_dataset("camvid")
    teacher = camvid.teacher(input_shape=(32, 32, 3), filters=(8, 16))
    assert teacher.outputs[0].shape == (None, 32, 32, 11)
    tc = TeacherClass(
        teacher,
        num_students=2,
        student=camvid.student(2),
        student_input=camvid.student_input,
    )
    assert tc.chunks == (4, 4)


def test_for_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match="Received: name='svhn'"):
        architectures.for_dataset("svhn")
    with pytest.raises(ValueError, match="are for the mnist"):
        architectures.for_dataset("cifar10").student(4, bottleneck=16)
    with pytest.raises(ValueError, match="Received: num_students=0"):
        architectures.for_dataset("digits").student(0)


def _dense(units):
    inputs = keras.Input((9,))
    return keras.Model(inputs, keras.layers.Dense(units)(inputs))


@pytest.mark.parametrize(
    "budget, start, expected",
    [(100, 1, 10), (101, 1, 11), (10, 1, 1), (100, 30, 30), (1_000, 3, 100)],
)
def test_size_to_budget_finds_the_smallest_width(budget, start, expected):
    builds = []

    def build(units):
        builds.append(units)
        return _dense(units)

    width = architectures.size_to_budget(build, budget, start=start)
    assert width == expected
    assert _dense(width).count_params() >= budget
    if width > start:
        assert _dense(width - 1).count_params() < budget
    assert len(builds) <= 2 * max(1, expected - start).bit_length() + 2


def test_size_to_budget_rejects_bad_input():
    with pytest.raises(ValueError, match="Received: budget=0"):
        architectures.size_to_budget(_dense, 0)
    with pytest.raises(ValueError, match="Received: start=0"):
        architectures.size_to_budget(_dense, 10, start=0)
    with pytest.raises(ValueError, match="No width from 1 to 8"):
        architectures.size_to_budget(_dense, 10_000, limit=8)


# ----------------------------------------------------------------------
# Argument checks: NumPy integers are counts, bools and floats are not
# ----------------------------------------------------------------------


def test_numpy_integers_are_counts():
    n = np.int64(4)
    assert architectures.mnist_student(n).units == 64
    assert architectures.imdb_student(n).units == 64
    assert architectures.cifar10_student(n).units == 64
    assert architectures.cifar10_fast_student(n).units == 64
    assert (
        architectures.mnist_teacher(num_classes=np.int64(3)).output.shape[-1]
        == 3
    )
    recipe = architectures.cifar10_fast_recipe(np.int64(10), np.int32(98))
    assert recipe.epochs == 10 and type(recipe.epochs) is int
    teacher = architectures.cifar10_fast_teacher((np.int64(4), 8, 8))
    assert teacher.get_layer("representation").output.shape == (None, 8)
    aug = architectures.cifar10_augmentation(pixels=np.int64(2))
    assert aug is not None
    sgd = architectures.BiasScaledSGD(bias_lr_scale=np.float32(64))
    assert sgd.bias_lr_scale == 64.0 and type(sgd.bias_lr_scale) is float


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: architectures.cifar10_fast_recipe(1, 1, batch_size=0),
            "Received: batch_size=0",
        ),
        (
            lambda: architectures.cifar10_fast_recipe(1, 1, batch_size=-8),
            "Received: batch_size=-8",
        ),
        (
            lambda: architectures.cifar10_fast_teacher(widths=(True, 8)),
            "Received: widths=(True, 8)",
        ),
        (
            lambda: architectures.cifar10_augmentation(pixels=True),
            "Received: pixels=True",
        ),
        (
            lambda: architectures.BiasScaledSGD(bias_lr_scale=True),
            "Received: bias_lr_scale=True",
        ),
        (
            lambda: architectures.cifar10_fast_student(4, filters=16),
            "`filters` must be a sequence of positive integers, one per "
            "layer, e.g. (16,). Received: filters=16",
        ),
        (
            lambda: architectures.cifar10_fast_student(4.0),
            "Received: num_students=4.0",
        ),
        (
            # DatasetSetup.student has no `filters`: name the call that has.
            lambda: architectures.for_dataset("cifar10").student(2),
            "`architectures.cifar10_fast_student(n, filters=(...))`. "
            "Received: num_students=2",
        ),
    ],
    ids=[
        "batch_size_0",
        "batch_size_negative",
        "widths_bool",
        "pixels_bool",
        "bias_lr_scale_bool",
        "filters_int",
        "num_students_float",
        "dataset_student",
    ],
)
def test_bad_arguments_name_the_argument(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
