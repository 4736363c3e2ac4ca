import keras
import pytest
from layer_test import run_layer_test

from teacherclass import towers


def test_conv_tower(tmp_path):
    run_layer_test(
        towers.ConvTower,
        {"units": 12, "filters": (4, 4, 8, 8), "bottleneck": 8},
        (2, 28, 28, 1),
        (2, 12),
        tmp_path,
    )


def test_conv_tower_same_padding_no_bottleneck(tmp_path):
    run_layer_test(
        towers.ConvTower,
        {
            "units": 5,
            "filters": (4, 8),
            "convs_per_block": 1,
            "padding": "same",
            "bottleneck": None,
        },
        (2, 8, 8, 3),
        (2, 5),
        tmp_path,
    )


def test_conv_tower_grayscale_without_channel():
    tower = towers.ConvTower(units=3, filters=(4,), convs_per_block=1)
    assert tower(keras.ops.zeros((2, 10, 10))).shape == (2, 3)


def test_dense_tower(tmp_path):
    run_layer_test(
        towers.DenseTower,
        {"units": 6, "hidden": (16, 8), "dropout": 0.1},
        (3, 10),
        (3, 6),
        tmp_path,
    )


def test_text_tower(tmp_path):
    run_layer_test(
        towers.TextTower,
        {"units": 4, "vocab_size": 50, "filters": (8, 8), "hidden": (8,)},
        (2, 20),
        (2, 4),
        tmp_path,
        input_dtype="int32",
    )


def test_paper_default_conv_tower_size():
    # The paper's MNIST student for 4 students: 19,144 parameters.
    tower = towers.ConvTower(units=64)
    tower.build((None, 28, 28, 1))
    assert tower.count_params() == 19_144


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "Received: units=0"),
        ({"units": 4, "filters": (8, -1)}, "Received: filters=(8, -1)"),
        ({"units": 4, "padding": "full"}, "Received: padding='full'"),
        ({"units": 4, "dropout": 1.5}, "Received: dropout=1.5"),
        ({"units": 4, "bottleneck": 0}, "Received: bottleneck=0"),
    ],
)
def test_conv_tower_bad_arguments(kwargs, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        towers.ConvTower(**kwargs)


def test_conv_tower_rejects_vectors():
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, 8\)"):
        towers.ConvTower(units=3).build((None, 8))


def test_make_tower_from_template_class_and_callable():
    teacher = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(2)]
    )
    template = towers.DenseTower(units=1, hidden=(7,))
    tower = towers.make_tower(template, 2, 5, teacher)
    assert tower.name == "student_2"
    assert tower.units == 5 and tower.hidden == (7,)
    tower = towers.make_tower(towers.DenseTower, 0, 3, teacher)
    assert tower.units == 3 and tower.name == "student_0"
    tower = towers.make_tower(
        lambda i, units: keras.layers.Dense(units), 1, 6, teacher
    )
    assert tower.units == 6


def test_make_tower_bad_student():
    teacher = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(2)]
    )
    with pytest.raises(TypeError, match="Received: student=3"):
        towers.make_tower(3, 0, 4, teacher)
    with pytest.raises(TypeError, match=r"Received: student\(0, 4\)=None"):
        towers.make_tower(lambda i, u: None, 0, 4, teacher)
    with pytest.raises(ValueError, match="must take a `units` argument"):
        towers.make_tower(keras.layers.Flatten(), 0, 4, teacher)


def test_default_tower_follows_teacher_input():
    image = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
            keras.layers.Dense(2),
        ]
    )
    text = keras.Sequential(
        [
            keras.Input((20,), dtype="int32"),
            keras.layers.Embedding(77, 4),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
            keras.layers.Dense(2),
        ]
    )
    vector = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(2)]
    )
    assert isinstance(towers.default_tower(image), towers.ConvTower)
    text_tower = towers.default_tower(text)
    assert isinstance(text_tower, towers.TextTower)
    assert text_tower.vocab_size == 77
    assert isinstance(towers.default_tower(vector), towers.DenseTower)


def test_segmentation_tower(tmp_path):
    run_layer_test(
        towers.SegmentationTower,
        {"units": 3, "filters": (4, 8), "convs_per_block": 2, "dropout": 0.1},
        (2, 10, 14, 3),
        (2, 10, 14, 3),
        tmp_path,
    )


def test_segmentation_tower_odd_sizes_and_bad_arguments():
    tower = towers.SegmentationTower(units=2, filters=(4, 4, 4))
    assert tuple(tower(keras.ops.zeros((1, 9, 11))).shape) == (1, 9, 11, 2)
    with pytest.raises(ValueError, match=r"Received: filters=\(\)"):
        towers.SegmentationTower(units=2, filters=())
    with pytest.raises(ValueError, match=r"Received: input_shape=\(None, 8\)"):
        towers.SegmentationTower(units=2).build((None, 8))
