import keras
import numpy as np
import pytest
from helpers import mlp_teacher

from teacherclass import baselines
from teacherclass import teacher as teacher_lib


def test_default_feature_layer_skips_dropout():
    assert teacher_lib.default_feature_layer(mlp_teacher()) == "rep"


def test_default_feature_layer_functional_with_softmax_layer():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Dense(5, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    assert teacher_lib.default_feature_layer(model) == "gap"


def test_default_feature_layer_after_deserialization():
    teacher = mlp_teacher()
    clone = keras.Sequential.from_config(teacher.get_config())
    layer = teacher_lib.get_feature_layer(clone)
    assert layer.name == "rep"
    assert tuple(teacher_lib.output_of(clone, layer).shape) == (None, 16)


def test_unknown_feature_layer_lists_names():
    with pytest.raises(ValueError) as info:
        teacher_lib.get_feature_layer(mlp_teacher(), "dense_9")
    message = str(info.value)
    assert "Received: feature_layer='dense_9'" in message
    assert "['hidden', 'rep', 'drop', 'out']" in message


def test_output_layer_is_not_a_feature_layer():
    with pytest.raises(ValueError, match="leaves no head") as info:
        teacher_lib.get_feature_layer(mlp_teacher(), "out")
    # The choices offered are the layers before it.
    message = str(info.value)
    assert "from ['hidden', 'rep', 'drop']. Received: feature_layer='out'" in (
        message
    )


def test_unbuilt_teacher():
    model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        teacher_lib.check_teacher(model)
    with pytest.raises(TypeError, match="Received: teacher=Dense"):
        teacher_lib.check_teacher(keras.layers.Dense(3))


def test_a_subclassed_teacher_is_told_to_become_functional():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model(np.zeros((1, 4)))  # built: building again would not help
    with pytest.raises(ValueError, match="wrap its layers") as info:
        teacher_lib.check_teacher(model)
    assert "Build it first" not in str(info.value)
    assert "Received: teacher='sub' (a subclassed Sub)" in str(info.value)


def test_clone_head_copies_weights_not_layers():
    teacher = mlp_teacher()
    layer = teacher.get_layer("rep")
    head = teacher_lib.clone_head(teacher, layer)
    out = teacher.get_layer("out")
    assert all(h is not out for h in head.layers)
    features = np.random.rand(4, 16).astype("float32")
    np.testing.assert_allclose(
        head.predict(features, verbose=0),
        keras.ops.convert_to_numpy(out(features)),
        atol=1e-6,
    )
    assert head.count_params() == out.count_params()


def test_feature_range():
    assert teacher_lib.feature_range(keras.layers.Dense(3, "relu")) == (
        0.0,
        None,
    )
    assert teacher_lib.feature_range(keras.layers.Dense(3, "tanh")) == (
        -1.0,
        1.0,
    )
    assert teacher_lib.feature_range(keras.layers.Dense(3)) is None
    assert teacher_lib.feature_range(keras.layers.ReLU(max_value=6)) == (
        0.0,
        6.0,
    )
    # A leaky ReLU goes below 0: no clip at 0.
    leaky = keras.layers.ReLU(negative_slope=0.1)
    assert teacher_lib.feature_range(leaky) is None


def test_the_output_activation_is_read_past_a_float32_cast():
    # Under mixed precision a model ends in a float32 linear Activation
    # (`compose.float32_output`): the softmax before it is the output's.
    inputs = keras.Input((4,))
    probs = keras.layers.Dense(3, activation="softmax", name="out")(inputs)
    cast = keras.layers.Activation("linear", dtype="float32")(probs)
    model = keras.Model(inputs, cast)
    assert teacher_lib.final_layer(model).name == "out"
    loss = teacher_lib.default_compile_args(model)["loss"]
    assert loss.get_config()["from_logits"] is False
    view = baselines.logits_model(model)
    assert view is not model
    x = np.random.default_rng(0).random((5, 4), "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.softmax(view(x))),
        model(x),
        atol=1e-6,
    )


def test_default_compile_args_follow_the_output():
    args = teacher_lib.default_compile_args(mlp_teacher())
    assert isinstance(args["loss"], keras.losses.SparseCategoricalCrossentropy)
    assert not args["loss"].get_config()["from_logits"]
    one_hot = np.eye(3)[[0, 1, 2]]
    args = teacher_lib.default_compile_args(mlp_teacher(), one_hot)
    assert isinstance(args["loss"], keras.losses.CategoricalCrossentropy)
    logits = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(1)]
    )
    args = teacher_lib.default_compile_args(logits)
    assert isinstance(args["loss"], keras.losses.BinaryCrossentropy)
    assert args["loss"].get_config()["from_logits"]


def test_a_multi_label_sigmoid_output_gets_a_binary_loss():
    """Several sigmoid units are independent Bernoulli units: a binary
    cross-entropy per unit, for the teacher and for its logits view."""
    inputs = keras.Input((4,))
    teacher = keras.Model(
        inputs, keras.layers.Dense(5, activation="sigmoid")(inputs)
    )
    args = teacher_lib.default_compile_args(teacher, np.zeros((2, 5)))
    assert isinstance(args["loss"], keras.losses.BinaryCrossentropy)
    assert not args["loss"].get_config()["from_logits"]
    assert isinstance(args["metrics"][0], keras.metrics.BinaryAccuracy)
    logits = baselines.logits_model(teacher)
    loss = teacher_lib.label_compile_args(teacher, logits)["loss"]
    assert isinstance(loss, keras.losses.BinaryCrossentropy)
    assert loss.get_config()["from_logits"]


def test_class_indices_of_a_sigmoid_output_keep_a_sparse_loss():
    """Several sigmoid units trained on class indices (not multi-hot) get
    a sparse cross-entropy, as before the multi-label loss: a binary one
    crashed in `fit_teacher` on labels of another shape."""
    import tensorflow as tf

    from teacherclass import TeacherClass

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(6, activation="relu", name="rep")(inputs)
    teacher = keras.Model(
        inputs, keras.layers.Dense(5, activation="sigmoid")(hidden)
    )
    x = np.random.default_rng(0).random((8, 4)).astype("float32")
    y = np.arange(8) % 5
    sparse = keras.losses.SparseCategoricalCrossentropy
    for labels in (y, tf.data.Dataset.from_tensor_slices((x, y)).batch(4)):
        args = teacher_lib.default_compile_args(teacher, labels)
        assert isinstance(args["loss"], sparse)
        logits = baselines.logits_model(teacher)
        loss = teacher_lib.label_compile_args(teacher, logits, labels)["loss"]
        assert isinstance(loss, sparse)
        assert loss.get_config()["from_logits"]
    tc = TeacherClass(teacher, feature_layer="rep", num_students=2)
    tc.fit_teacher(x, y, epochs=1, batch_size=4, verbose=0)
    assert isinstance(teacher.loss, sparse)


def test_label_loss_keeps_the_teachers_void():
    from teacherclass import segmentation

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(4, 1, activation="softmax")(inputs)
    teacher = keras.Model(inputs, outputs)
    teacher.compile(**segmentation.compile_args(4, ignore_class=4))
    logits = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    loss = teacher_lib.label_compile_args(teacher, logits)["loss"]
    assert loss.get_config()["ignore_class"] == 4
    assert loss.get_config()["from_logits"]
    # Label 4 (void) costs nothing, as for the teacher.
    y = np.full((2, 8, 8), 4)
    y[0, 0, 0] = 1
    pred = np.zeros((2, 8, 8, 4), "float32")
    assert float(loss(y, pred)) == pytest.approx(np.log(4.0), rel=1e-5)
    # A teacher without a void: the plain loss.
    teacher.compile(loss="sparse_categorical_crossentropy")
    plain = teacher_lib.label_compile_args(teacher, logits)["loss"]
    assert plain.get_config()["ignore_class"] is None


@pytest.mark.parametrize(
    "activation, expected",
    [
        # Multi-hot for a multi-unit sigmoid output (it got a sparse loss).
        ("sigmoid", keras.losses.BinaryCrossentropy),
        # A softmax output keeps the sparse loss it had.
        ("softmax", keras.losses.SparseCategoricalCrossentropy),
    ],
)
def test_labels_of_unknown_width_are_a_sigmoid_outputs_units(
    activation, expected
):
    # A generator's dataset declares labels `(None, None)`: read as the
    # output's units for a sigmoid output only.
    import tensorflow as tf

    from teacherclass import teacher as teacher_lib

    inputs = keras.Input((4,))
    teacher = keras.Model(
        inputs, keras.layers.Dense(5, activation=activation)(inputs)
    )
    labels = tf.data.Dataset.from_generator(
        lambda: iter(()),
        output_signature=(
            tf.TensorSpec((None, 4)),
            tf.TensorSpec((None, None)),
        ),
    )
    loss = teacher_lib.default_compile_args(teacher, labels)["loss"]
    assert isinstance(loss, expected)
    if activation == "sigmoid":  # a list of multi-hot labels too
        listed = teacher_lib.default_compile_args(
            teacher, [[0, 1, 0, 0, 1]] * 3
        )["loss"]
        assert isinstance(listed, expected)
