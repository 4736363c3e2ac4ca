import re

import keras
import numpy as np
import pytest

from teacherclass import TeacherClass
from teacherclass import report
from teacherclass import segmentation
from teacherclass.towers import SegmentationTower

COLOURS = np.array([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]])
VOID = 3


def patches(n, size=16, seed=0):
    """Images of 4x4 colour patches; a pixel's label is its colour.

    Every tenth patch is grey, labelled void (3): no loss or IoU counts it.
    """
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 3, (n, size // 4, size // 4))
    grey = rng.random((n, size // 4, size // 4)) < 0.1
    labels = np.where(grey, VOID, grid).repeat(4, 1).repeat(4, 2)
    images = COLOURS[grid].repeat(4, 1).repeat(4, 2)
    images[labels == VOID] = 0.5
    images += 0.05 * rng.standard_normal(images.shape)
    return images.astype("float32"), labels.astype("int32")


@pytest.fixture(scope="module")
def data():
    return patches(64), patches(16, seed=1)


@pytest.fixture(scope="module")
def teacher(data):
    keras.utils.set_random_seed(0)
    (x, y), _ = data
    teacher = segmentation.unet_teacher(
        (16, 16, 3), num_classes=3, filters=(8, 16), rescale=False
    )
    teacher.compile(**segmentation.compile_args(3, VOID, learning_rate=3e-3))
    teacher.fit(x, y, epochs=15, batch_size=8, verbose=0)
    return teacher


def test_unet_teacher_shape_and_errors():
    teacher = segmentation.unet_teacher()
    assert teacher.count_params() == 1_945_691
    assert tuple(teacher.output.shape) == (None, 96, 128, 11)
    with pytest.raises(ValueError, match=r"Received: input_shape=\(90, 120"):
        segmentation.unet_teacher((90, 120, 3))
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        segmentation.unet_teacher(num_classes=1)


def test_unet_teacher_takes_any_size():
    teacher = segmentation.unet_teacher(
        (None, None, 3), num_classes=3, filters=(4, 8)
    )
    assert tuple(teacher.output.shape) == (None, None, None, 3)
    x = np.zeros((1, 6, 10, 3), "float32")
    assert tuple(teacher(x).shape) == (1, 6, 10, 3)
    with pytest.raises(ValueError, match=r"input_shape=\(30, None, 3\)"):
        segmentation.unet_teacher((30, None, 3), filters=(4, 8, 16, 32))


def test_one_resolution_names_its_encoder_output_representation():
    # No decoder: the encoder's last ReLU is the representation, so
    # TeacherClass finds it as with more resolutions.
    teacher = segmentation.unet_teacher((8, 8, 3), num_classes=3, filters=(4,))
    assert [layer.name for layer in teacher.layers[-3:]] == [
        "representation",
        "logits",
        "probabilities",
    ]
    assert tuple(teacher.get_layer("representation").output.shape) == (
        None,
        8,
        8,
        4,
    )
    tc = TeacherClass(teacher, num_students=2)
    assert tc.feature_layer == "representation"
    assert tc.chunks == (2, 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # Without a resolution there is no layer "representation".
        ({"filters": ()}, "Received: filters=()"),
        ({"filters": (8, 0)}, "Received: filters=(8, 0)"),
        ({"filters": "16"}, "Received: filters='16'"),
        ({"input_shape": (32, 32)}, "Received: input_shape=(32, 32)"),
        ({"input_shape": (32, 32, None)}, "input_shape=(32, 32, None)"),
        ({"num_classes": True}, "Received: num_classes=True"),
    ],
)
def test_unet_teacher_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        segmentation.unet_teacher(**kwargs)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0])
def test_masked_mean_iou_rejects_bad_batch_sizes(batch_size):
    inputs = keras.Input((2, 2, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    x, y = np.zeros((2, 2, 2, 1)), np.zeros((2, 2, 2))
    with pytest.raises(
        ValueError, match=re.escape(f"Received: batch_size={batch_size}")
    ):
        segmentation.masked_mean_iou(model, x, y, 2, batch_size=batch_size)


def test_masked_mean_iou_leaves_void_out():
    inputs = keras.Input((2, 2, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    y = np.array([[[0, 0], [VOID, VOID]]])
    # All-zero logits: argmax is class 0 everywhere; void is not counted.
    result = segmentation.masked_mean_iou(
        model, np.zeros((1, 2, 2, 1)), y, 2, ignore_class=VOID
    )
    assert result["per_class_iou"] == [pytest.approx(1.0), None]
    assert result["mean_iou"] == pytest.approx(1.0)


def test_feature_map_teacher_to_composed_segmenter(teacher, data, tmp_path):
    (x, _), (x_test, y_test) = data
    teacher_iou = segmentation.masked_mean_iou(
        teacher, x_test, y_test, 3, VOID
    )["mean_iou"]
    assert teacher_iou > 0.9
    tc = TeacherClass(
        teacher,
        num_students=2,
        student=segmentation.segmentation_student((8, 16)),
    )
    # The representation is the last decoder map; the head is 1x1 + softmax.
    assert tc.feature_layer == "representation"
    assert tc.chunks == (4, 4)
    assert tc.clip == (0.0, None)
    assert [layer.name for layer in tc.head.layers[1:]] == [
        "logits",
        "probabilities",
    ]
    history = tc.fit_students(x, epochs=20, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    composed = tc.compose()
    composed_iou = segmentation.masked_mean_iou(
        composed, x_test, y_test, 3, VOID
    )["mean_iou"]
    assert composed_iou > 0.8
    assert composed.count_params() < teacher.count_params()
    # The report's pixel accuracy leaves void out, as the teacher's loss.
    measured = report.measure(
        tc, x_test, y_test, batch_sizes=(1,), repeats=1, composed=composed
    )
    keep = y_test != VOID
    for name, model in (("teacher", teacher), ("composed", composed)):
        pred = model.predict(x_test, verbose=0).argmax(-1)
        expected = np.mean(pred[keep] == y_test[keep])
        assert measured["models"][name]["accuracy"] == pytest.approx(expected)
    composed.save(tmp_path / "composed.keras")
    tc.save(tmp_path / "tc.keras")
    loaded = keras.saving.load_model(tmp_path / "composed.keras")
    np.testing.assert_allclose(
        loaded.predict(x_test, verbose=0),
        composed.predict(x_test, verbose=0),
        atol=1e-5,
    )
    reloaded = keras.saving.load_model(tmp_path / "tc.keras")
    np.testing.assert_allclose(
        reloaded.predict(x_test, verbose=0),
        composed.predict(x_test, verbose=0),
        atol=1e-5,
    )


def test_default_student_for_a_feature_map_teacher(teacher):
    tc = TeacherClass(teacher, num_students=2)
    assert all(isinstance(s, SegmentationTower) for s in tc.students)


def test_adversarial_students_on_feature_maps(teacher, data):
    (x, _), _ = data
    tc = TeacherClass(
        teacher,
        num_students=2,
        student=segmentation.segmentation_student((8,)),
    )
    history = tc.fit_students(
        x, epochs=3, batch_size=16, loss="adversarial", verbose=0
    )
    assert {"student_0_d_loss", "student_1_mse"} <= set(history.history)
    assert (
        history.history["student_0_mse"][-1]
        < (history.history["student_0_mse"][0])
    )


def test_label_term_on_void_labels(teacher, data):
    # The teacher's loss ignores void; so does the head-aware label term
    # (a void label outside the head's classes would fail otherwise).
    from teacherclass import objectives

    (x, y), _ = data
    assert (y == VOID).any()
    keras.utils.set_random_seed(0)
    tc = TeacherClass(
        teacher,
        num_students=2,
        student=segmentation.segmentation_student((8, 16)),
    )
    history = tc.fit_students(
        x,
        y,
        epochs=1,
        batch_size=16,
        loss=objectives.HeadAware(label_weight=1.0),
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])
