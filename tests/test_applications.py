"""A large pretrained-style teacher: `keras.applications.MobileNetV2`.

`weights=None` (never downloaded) on tiny 32x32 images; the representation
is the global average pooling output that feeds the classifier.
"""

import keras
import numpy as np
import pytest
from helpers import load_script

from teacherclass import ConvTower
from teacherclass import TeacherClass
from teacherclass import teacher as teacher_lib


def _images(n=24):
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3)).astype("float32")
    return x, rng.integers(0, 3, n)


def _top_teacher():
    return keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=3
    )


def _gap_dense_teacher():
    base = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False
    )
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    out = keras.layers.Dense(3, activation="softmax", name="classifier")(x)
    return keras.Model(base.input, out, name="mobilenet_gap_dense")


@pytest.mark.parametrize(
    "make, gap",
    [(_top_teacher, "global_average_pooling2d"), (_gap_dense_teacher, "gap")],
)
def test_mobilenet_v2_teacher_end_to_end(make, gap, tmp_path):
    teacher = make()
    layer = teacher_lib.default_feature_layer(teacher)
    assert isinstance(
        teacher.get_layer(layer), keras.layers.GlobalAveragePooling2D
    )
    assert layer.startswith(gap)
    x, y = _images()
    tc = TeacherClass(
        teacher,
        num_students=4,
        student=ConvTower(1, filters=(4, 4), bottleneck=8, padding="same"),
    )
    assert tc.feature_layer == layer
    assert sum(tc.chunks) == 1280  # MobileNetV2's last conv width
    history = tc.fit_students(
        x, batch_size=8, epochs=1, verbose=0, cache=tmp_path / "cache"
    )
    assert np.isfinite(history.history["loss"][0])
    composed = tc.compose(fine_tune=True, x=x, y=y, epochs=1, verbose=0)
    assert composed.predict(x[:2], verbose=0).shape == (2, 3)
    # Only the students and the head: no MobileNet layer in it.
    names = {layer.name for layer in composed.layers}
    assert not any(name.startswith("block_") for name in names)
    assert composed.count_params() < teacher.count_params()


def test_imagenet_example_teacher_uses_gap_as_representation():
    # Defines functions; downloads nothing.
    example = load_script("examples/imagenet.py", "imagenet_example")
    teacher, base = example.teacher_model(32, 3, weights=None)
    tc = TeacherClass(teacher, num_students=2, student=ConvTower(1))
    assert tc.feature_layer == "representation"
    assert tc.chunks == (640, 640)
    x = np.zeros((2, 32, 32, 3), dtype="uint8")
    assert tc.representation().predict(x, verbose=0).shape == (2, 1280)
