import re

import keras
import numpy as np
import pytest
from helpers import run_keras_layer_test
from helpers import run_layer_test

from teacherclass import towers
from teacherclass.model import TeacherClass


@keras.saving.register_keras_serializable(package="teacherclass_tests")
def scaled_tanh(x):
    """A custom activation, registered as a user would register one."""
    return 1.7 * keras.ops.tanh(x)


def _image_teacher(shape, classes=3):
    """Conv -> Flatten -> Dense(8) [the representation] -> softmax."""
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu", name="rep"),
            keras.layers.Dense(classes, activation="softmax", name="out"),
        ]
    )


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
        # The value as passed, not its conversion to a tuple.
        ({"units": 4, "filters": "32"}, "Received: filters='32'"),
        ({"units": 4, "filters": {"a": 1}}, "Received: filters={'a': 1}"),
        ({"units": 4, "filters": [8, 0]}, "Received: filters=[8, 0]"),
    ],
)
def test_conv_tower_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        towers.ConvTower(**kwargs)


def test_numpy_integers_are_counts_and_save_as_ints(tmp_path):
    # Widths computed with NumPy (np.int64) are counts like Python ints.
    teacher = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(2)]
    )
    tower = towers.DenseTower(np.int64(8), hidden=np.array([4]), dropout=0)
    assert (tower.units, tower.hidden) == (8, (4,))
    assert all(type(v) is int for v in (tower.units, *tower.hidden))
    assert type(tower.dropout) is float
    tc = TeacherClass(
        teacher, num_students=np.int64(2), student=towers.DenseTower
    )
    assert tc.chunks == (8, 8) and type(tc.chunks[0]) is int
    tc = TeacherClass(teacher, chunks=np.array([12, 4]), student=tower)
    assert tc.chunks == (12, 4) and type(tc.chunks[0]) is int
    tc.save(tmp_path / "tc.keras")  # the configs hold plain ints
    loaded = keras.saving.load_model(tmp_path / "tc.keras")
    assert loaded.chunks == (12, 4)
    assert loaded.students[0].hidden == (4,)


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
    # uint8 pixels (as `datasets.load("mnist")` gives them) are images,
    # not token ids.
    pixels = keras.Sequential(
        [
            keras.Input((28, 28, 1), dtype="uint8"),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
            keras.layers.Dense(2),
        ]
    )
    assert isinstance(towers.default_tower(pixels), towers.ConvTower)


def test_a_template_with_a_function_of_ones_own_is_copied():
    # Registration is needed to save such a tower, not to copy it.
    def my_act(x):
        return keras.ops.relu(x) * 0.5

    template = towers.DenseTower(1, hidden=(4,), activation=my_act)
    tower = towers.make_tower(template, 2, 6, teacher=None)
    assert tower.activation is my_act
    assert tower.units == 6 and tower.name == "student_2"


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


# Keras' own layer harness, beside the project's helper above: its
# serialization, build, symbolic and eager call, training and mixed_float16
# checks, on every public tower.
_TOKENS = np.random.default_rng(0).integers(0, 50, (2, 20)).astype("int32")


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, call, expected_output_shape",
    [
        (
            towers.ConvTower,
            {"units": 5, "filters": (4, 4, 8, 8), "bottleneck": 8},
            {"input_shape": (2, 20, 20, 1)},
            (2, 5),
        ),
        (
            # The default tower's configuration for a 5x5 image.
            towers.ConvTower,
            {"units": 3, "filters": (4, 4, 8, 8), "padding": "same"},
            {"input_shape": (2, 5, 5, 1)},
            (2, 3),
        ),
        (
            towers.DenseTower,
            {"units": 6, "hidden": (16, 8), "dropout": 0.1},
            {"input_shape": (3, 10)},
            (3, 6),
        ),
        (
            towers.TextTower,
            {"units": 4, "vocab_size": 50, "filters": (8, 8), "hidden": (8,)},
            {"input_data": _TOKENS},
            (2, 4),
        ),
        (
            towers.SegmentationTower,
            {"units": 3, "filters": (4, 8), "convs_per_block": 2},
            {"input_shape": (2, 10, 14, 3)},
            (2, 10, 14, 3),
        ),
        (
            towers.SegmentationTower,
            {"units": 2, "filters": (4, 8), "batch_norm": True},
            {"input_shape": (2, 10, 14, 3)},
            (2, 10, 14, 2),
        ),
        (
            towers.DenseTower,
            {"units": 2, "hidden": (4,), "activation": scaled_tanh},
            {"input_shape": (3, 5)},
            (3, 2),
        ),
    ],
    ids=[
        "conv",
        "conv_same",
        "dense",
        "text",
        "segmentation",
        "segmentation_bn",
        "custom_act",
    ],
)
def test_keras_layer_harness(
    layer_cls, init_kwargs, call, expected_output_shape
):
    run_keras_layer_test(
        layer_cls,
        init_kwargs,
        expected_output_shape=expected_output_shape,
        run_training_check=True,
        run_mixed_precision_check=True,
        **call,
    )


@pytest.mark.parametrize("shape", [(12, 12, 1), (8, 8, 3), (5, 5, 1)])
def test_default_student_fits_small_images(shape):
    # The paper's tower ("valid" padding, two blocks of two convolutions)
    # needs 16x16; below that the default takes "same" padding.
    teacher = _image_teacher(shape)
    x = np.random.default_rng(0).random((8, *shape)).astype("float32")
    tc = TeacherClass(teacher, num_students=2)
    assert all(isinstance(s, towers.ConvTower) for s in tc.students)
    assert tc.students[0].padding == "same"
    before = [w.numpy().copy() for w in tc.students[0].trainable_weights]
    tc.fit_students(x, epochs=1, batch_size=8, verbose=0)
    after = tc.students[0].trainable_weights
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, after))
    composed = tc.compose()
    probs = composed.predict(x, verbose=0)
    assert probs.shape == (8, 3)
    assert np.all(np.isfinite(probs))


def test_default_conv_tower_is_the_papers_where_it_fits():
    tower = towers.default_tower(_image_teacher((28, 28, 1)))
    config = towers.ConvTower(1, name=tower.name).get_config()
    assert tower.get_config() == config
    assert towers.default_tower(_image_teacher((16, 16, 1))).padding == "valid"
    # Below 4x4 "same" padding alone is not enough: fewer blocks.
    tiny = towers.default_tower(_image_teacher((3, 3, 1)))
    assert tiny.padding == "same" and tiny.filters == (32, 32, 16)
    one = towers.default_tower(_image_teacher((1, 1, 1)))
    assert one.filters == (32,)
    assert tuple(one(keras.ops.zeros((2, 1, 1, 1))).shape) == (2, 1)


def _low_resolution_segmenter():
    """16x16 input, an 8x8 representation "rep", upsampled to 16x16."""
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(4, 3, padding="same", name="rep"),
            keras.layers.UpSampling2D(),
            keras.layers.Conv2D(3, 1, activation="softmax"),
        ]
    )


def test_a_representation_at_another_resolution_names_the_spatial_axes():
    teacher = _low_resolution_segmenter()
    # The default (a ConvTower, vectors out) and a SegmentationTower (the
    # input's 16x16 out) both miss the 8x8 map.
    for student, got in (
        (None, r"\(2,\)"),
        (towers.SegmentationTower, r"\(16, 16, 2\)"),
    ):
        with pytest.raises(
            ValueError,
            match=rf"Student 0 outputs shape {got} but its chunk has shape "
            r"\(8, 8, 2\): the representation is a feature map of 8x8 "
            r"positions, not the students' input's 16x16, so the mismatch "
            r"is in the spatial axes, not in `units`\. No built-in tower "
            r"changes resolution; pass `student=` a tower",
        ):
            TeacherClass(
                teacher, feature_layer="rep", num_students=2, student=student
            )


def test_a_tower_of_vectors_for_a_same_size_map_names_the_fix():
    teacher = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, padding="same", name="rep"),
            keras.layers.Conv2D(3, 1, activation="softmax"),
        ]
    )
    with pytest.raises(
        ValueError,
        match=r"not in `units`\. `SegmentationTower` keeps the input's "
        r"positions; pass `student=`",
    ):
        TeacherClass(teacher, num_students=2, student=towers.DenseTower(1))


def test_explicit_conv_tower_too_big_for_the_input_names_the_fix():
    teacher = _image_teacher((12, 12, 1))
    message = (
        r"a 2x2 map is too small for its layer conv_3\. Pass padding='same' "
        r"or fewer `filters`.*Received: input_shape=\(None, 12, 12, 1\)"
    )
    with pytest.raises(ValueError, match=message):
        TeacherClass(teacher, num_students=2, student=towers.ConvTower(1))
    with pytest.raises(ValueError, match=r"conv_1.*input_shape=\(4, 3, 3\)"):
        towers.ConvTower(2, filters=(4, 4), kernel_size=3).build((4, 3, 3))
    # Pooling a 1-pixel map is as bad as a too-large kernel.
    with pytest.raises(ValueError, match="too small for its layer pool_0"):
        towers.ConvTower(2, filters=(4,), convs_per_block=1, padding="same")(
            keras.ops.zeros((1, 1, 1, 1))
        )


@pytest.mark.parametrize(
    "layer_cls, kwargs, x",
    [
        (towers.ConvTower, {"filters": (4, 4)}, np.ones((2, 8, 8, 1))),
        (towers.DenseTower, {"hidden": (4,)}, np.ones((2, 5))),
        (
            towers.TextTower,
            {"vocab_size": 9, "filters": (4,), "hidden": (4,)},
            np.ones((2, 6), "int32"),
        ),
        (towers.SegmentationTower, {"filters": (4, 4)}, np.ones((2, 6, 6, 1))),
    ],
    ids=["conv", "dense", "text", "segmentation"],
)
def test_custom_activation_saves_and_loads(layer_cls, kwargs, x, tmp_path):
    x = x if x.dtype == "int32" else x.astype("float32") * 0.5
    inputs = keras.Input(x.shape[1:], dtype=x.dtype)
    tower = layer_cls(3, activation=scaled_tanh, **kwargs)
    assert tower.activation is scaled_tanh
    model = keras.Model(inputs, tower(inputs))
    config = tower.get_config()
    assert config["activation"]["config"] == "teacherclass_tests>scaled_tanh"
    assert layer_cls.from_config(config).activation is scaled_tanh
    copy = towers.make_tower(tower, 1, 4, teacher=None)
    assert copy.activation is scaled_tanh and copy.units == 4
    path = tmp_path / "tower.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.layers[-1].activation is scaled_tanh
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_string_activations_in_existing_configs_still_load():
    # A config as saved before activations went through keras.activations.
    config = towers.ConvTower(3).get_config()
    config["activation"] = "relu"
    tower = towers.ConvTower.from_config(config)
    assert tower.activation is keras.activations.relu
    assert tower.get_config()["activation"] == "relu"
    dense = towers.DenseTower.from_config(
        {"units": 2, "hidden": [4], "activation": "gelu", "dropout": 0.0}
    )
    assert dense.get_config()["activation"] == "gelu"
    assert towers.DenseTower(2, activation=None).activation is (
        keras.activations.linear
    )


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="Received: activation='nope'"):
        towers.DenseTower(2, activation="nope")


def test_conv_tower_with_batch_norm_normalizes_and_round_trips(tmp_path):
    x = np.random.default_rng(0).random((8, 8, 8, 3)).astype("float32") * 9
    tower = towers.ConvTower(
        3, filters=(4, 4), padding="same", dropout=0.0, batch_norm=True
    )
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, tower(inputs))
    # A norm per convolution, and no conv bias beside the norm's offset.
    assert [w.path.split("/")[-2:] for w in tower.weights[:5]] == [
        ["conv_0", "kernel"],
        ["norm_0", "gamma"],
        ["norm_0", "beta"],
        ["norm_0", "moving_mean"],
        ["norm_0", "moving_variance"],
    ]
    before = keras.ops.convert_to_numpy(tower._norms[0].moving_mean)
    model(x, training=True)  # training updates the moving statistics
    after = keras.ops.convert_to_numpy(tower._norms[0].moving_mean)
    assert not np.allclose(before, after)
    _assert_batch_norm_round_trips(model, x, tmp_path / "bn_tower.keras")
    assert towers.ConvTower(3).get_config()["batch_norm"] is False


def _assert_batch_norm_round_trips(model, x, path):
    """Saved and loaded, the tower keeps its flag and its predictions."""
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[-1].batch_norm is True
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )


def test_conv_tower_batch_norm_must_be_a_bool():
    with pytest.raises(ValueError, match="Received: batch_norm='yes'"):
        towers.ConvTower(3, batch_norm="yes")


def test_segmentation_tower_with_batch_norm_normalizes_and_round_trips(
    tmp_path,
):
    x = np.random.default_rng(0).random((4, 6, 10, 3)).astype("float32") * 9
    tower = towers.SegmentationTower(2, filters=(4, 8), batch_norm=True)
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, tower(inputs))
    # A norm after each hidden convolution (down 0, down 1, up 0), no bias.
    norms = [w.path for w in tower.weights if w.path.endswith("moving_mean")]
    assert [p.split("/")[-2] for p in norms] == [
        "down_0_0_norm",
        "down_1_0_norm",
        "up_0_0_norm",
    ]
    assert not any(w.path.endswith("down_0_0/bias") for w in tower.weights)
    before = [keras.ops.convert_to_numpy(w).copy() for w in tower.weights]
    model(x, training=True)  # training updates the moving statistics
    moved = [
        w.path
        for w, b in zip(tower.weights, before)
        if not np.allclose(keras.ops.convert_to_numpy(w), b)
    ]
    assert moved and all("moving" in p for p in moved)
    path = tmp_path / "bn_segmentation.keras"
    _assert_batch_norm_round_trips(model, x, path)
    assert towers.SegmentationTower(3).get_config()["batch_norm"] is False
    with pytest.raises(ValueError, match="Received: batch_norm=1"):
        towers.SegmentationTower(3, batch_norm=1)


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, input_shape, input_dtype",
    [
        (
            towers.ConvTower,
            {"units": 3, "filters": (4, 4), "pooling": "global_average"},
            (2, 9, 7, 1),
            "float32",
        ),
        (
            towers.ConvTower,
            {"units": 3, "filters": (4,), "pooling": "global_max"},
            (2, 6, 6, 3),
            "float32",
        ),
        (
            towers.TextTower,
            {"units": 2, "vocab_size": 9, "filters": (4,), "hidden": (4,)}
            | {"pooling": "global_max"},
            (2, 5),
            "int32",
        ),
    ],
    ids=["conv_average", "conv_max", "text_max"],
)
def test_global_pooling_towers(
    layer_cls, init_kwargs, input_shape, input_dtype, tmp_path
):
    run_layer_test(
        layer_cls,
        init_kwargs,
        input_shape,
        (input_shape[0], init_kwargs["units"]),
        tmp_path,
        input_dtype=input_dtype,
    )


def test_global_pooling_takes_inputs_of_any_size():
    conv = towers.ConvTower(2, padding="same", pooling="global_average")
    assert tuple(conv(keras.Input((None, None, 3))).shape) == (None, 2)
    # A padded pooling: a 1x1 image still pools to a pixel, not to none.
    small = keras.ops.convert_to_numpy(conv(np.ones((1, 1, 1, 3), "float32")))
    assert np.all(np.isfinite(small))
    text = towers.TextTower(2, vocab_size=9, pooling="global_max")
    assert tuple(text(keras.Input((None,), dtype="int32")).shape) == (None, 2)
    short = keras.ops.convert_to_numpy(text(np.ones((1, 1), "int32")))
    assert np.all(np.isfinite(short))
    with pytest.raises(ValueError, match=r"Received: pooling='average'"):
        towers.ConvTower(2, pooling="average")


def test_configs_without_pooling_load_as_flatten():
    # Configs saved before `pooling` existed.
    for tower in (towers.ConvTower(2), towers.TextTower(2, vocab_size=9)):
        config = tower.get_config()
        assert config.pop("pooling") == "flatten"
        assert tower.__class__.from_config(config).pooling == "flatten"


@pytest.mark.parametrize(
    "tower, shape, fix",
    [
        (towers.ConvTower(2), (None, None, None, 3), "pooling='global_avera"),
        (towers.ConvTower(2), (None, 28, None, 1), "pooling='global_avera"),
        (towers.TextTower(2, vocab_size=9), (None, None), "pooling='global_m"),
        (towers.DenseTower(2), (None, None, 5), "`student=`"),
    ],
    ids=["conv", "conv_width", "text", "dense"],
)
def test_flattening_an_unknown_size_names_the_tower_and_the_fix(
    tower, shape, fix
):
    name = type(tower).__name__
    message = (
        f"{name} flattens .*unknown.*{re.escape(fix)}.*"
        f"Received: input_shape={re.escape(str(shape))}"
    )
    with pytest.raises(ValueError, match=message):
        tower.build(shape)


def _varlen_text_teacher(vocab=30):
    """keras.io's text classifier: any length, Conv1D, global max pool."""
    inputs = keras.Input((None,), dtype="int64")
    x = keras.layers.Embedding(vocab, 8)(inputs)
    x = keras.layers.Conv1D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    x = keras.layers.Dense(8, activation="relu", name="representation")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def _varsize_image_teacher():
    """A fully convolutional teacher on images of any size."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation="relu", name="representation")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "make_teacher, x, other, pooling",
    [
        (
            _varlen_text_teacher,
            np.random.default_rng(0).integers(0, 30, (16, 12)),
            np.random.default_rng(1).integers(0, 30, (2, 5)),
            "global_max",
        ),
        (
            _varsize_image_teacher,
            np.random.default_rng(0).random((16, 10, 10, 3), "float32"),
            np.random.default_rng(1).random((2, 6, 7, 3), "float32"),
            "global_average",
        ),
    ],
    ids=["text", "images"],
)
def test_default_student_takes_inputs_of_any_size(
    make_teacher, x, other, pooling, tmp_path
):
    tc = TeacherClass(make_teacher(), num_students=2)
    assert [s.pooling for s in tc.students] == [pooling] * 2
    before = [w.numpy().copy() for w in tc.students[0].trainable_weights]
    tc.fit_students(x, epochs=1, batch_size=8, verbose=0)  # two steps
    after = tc.students[0].trainable_weights
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, after))
    tc.save(tmp_path / "tc.keras")
    loaded = keras.saving.load_model(tmp_path / "tc.keras")
    assert [s.pooling for s in loaded.students] == [pooling] * 2
    for batch in (x[:2], other):  # the length it trained on, and another
        expected = keras.ops.convert_to_numpy(tc(batch))
        got = keras.ops.convert_to_numpy(loaded(batch))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_text_tower_too_long_a_stack_for_short_sequences_names_the_fix():
    message = (
        r"TextTower does not fit this input: its 3 steps are 1 before its "
        r"layer pool_1.*Received: input_shape=\(None, 3\), "
        r"filters=\(16, 16\), pool_size=2"
    )
    with pytest.raises(ValueError, match=message):
        towers.TextTower(4, vocab_size=20)(keras.Input((3,), dtype="int32"))


def _text_teacher(length, vocab=20):
    return keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocab, 4),
            keras.layers.Flatten(),
            keras.layers.Dense(6, activation="relu", name="rep"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


@pytest.mark.parametrize(
    "length, filters, pool_size",
    [(20, (16, 16), 2), (3, (16,), 2), (1, (16,), 1)],
)
def test_default_text_tower_fits_short_sequences(length, filters, pool_size):
    tower = towers.default_tower(_text_teacher(length))
    assert (tower.filters, tower.pool_size) == (filters, pool_size)
    tc = TeacherClass(_text_teacher(length), num_students=2)
    x = np.random.default_rng(0).integers(0, 20, (4, length))
    assert keras.ops.convert_to_numpy(tc(x)).shape == (4, 2)
