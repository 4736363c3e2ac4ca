import keras
import numpy as np
import pytest
import tensorflow as tf

from teacherclass import DenseTower
from teacherclass import architectures
from teacherclass import baselines

NUM_CLASSES = 4
SHAPE = (8, 8, 1)


def _blobs(num_classes, n, shape, seed):
    """Gaussian blobs: one random center per class plus unit noise."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(num_classes, int(np.prod(shape))))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = centers[y] + rng.normal(size=(n, centers.shape[1]))
    return x.astype("float32").reshape((n,) + shape), y


@pytest.fixture(scope="module")
def data():
    train = _blobs(NUM_CLASSES, 400, SHAPE, seed=1)
    test = _blobs(NUM_CLASSES, 200, SHAPE, seed=2)
    return train, test


@pytest.fixture(scope="module")
def teacher(data):
    keras.utils.set_random_seed(0)
    (x, y), _ = data
    model = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(NUM_CLASSES),
            keras.layers.Activation("softmax"),
        ],
        name="teacher",
    )
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=5, verbose=0)
    return model


def _student(num_classes=NUM_CLASSES, shape=SHAPE, activation="softmax"):
    return baselines.single_student_classifier(
        DenseTower(8, hidden=(8,)),
        num_classes,
        input_shape=shape,
        activation=activation,
    )


def _accuracy(model, x, y):
    p = model.predict(x, verbose=0)
    pred = p.argmax(-1) if p.shape[-1] > 1 else (p[:, 0] > 0.5)
    return float(np.mean(pred == y))


def test_teacher_is_learnable(teacher, data):
    _, (x_test, y_test) = data
    assert _accuracy(teacher, x_test, y_test) > 0.9


def test_distillation_without_labels_learns_from_the_teacher(teacher, data):
    (x, _), (x_test, y_test) = data
    flags = [layer.trainable for layer in teacher.layers]
    history = keras.callbacks.History()
    student = baselines.distill_logits(
        teacher,
        _student(),
        x,
        alpha=0.0,
        epochs=8,
        optimizer=keras.optimizers.Adam(0.01),
        callbacks=[history],
        verbose=0,
    )
    losses = history.history["distillation_loss"]
    assert losses[0] > 0 and losses[-1] < losses[0] / 3
    assert _accuracy(student, x_test, y_test) > 0.9
    # The Distiller freezes the teacher; distill_logits restores it.
    assert [layer.trainable for layer in teacher.layers] == flags
    # The student comes back compiled, ready for evaluate().
    assert (
        student.evaluate(x_test, y_test, return_dict=True, verbose=0)[
            "accuracy"
        ]
        > 0.9
    )


def test_distillation_with_labels_tracks_both_losses(teacher, data):
    (x, y), (x_test, y_test) = data
    history = keras.callbacks.History()
    student = baselines.distill_logits(
        teacher,
        _student(),
        x,
        y,
        temperature=4.0,
        alpha=0.5,
        epochs=6,
        batch_size=32,
        validation_data=(x_test, y_test),
        optimizer=keras.optimizers.Adam(0.01),
        callbacks=[history],
        verbose=0,
    )
    logs = history.history
    for key in ("student_loss", "distillation_loss", "val_accuracy"):
        assert key in logs
    assert logs["distillation_loss"][-1] < logs["distillation_loss"][0]
    assert logs["student_loss"][-1] < logs["student_loss"][0]
    assert _accuracy(student, x_test, y_test) > 0.8


def test_train_from_scratch_learns_the_labels(data):
    (x, y), (x_test, y_test) = data
    student = baselines.train_from_scratch(
        _student(), x, y, epochs=8, verbose=0
    )
    assert _accuracy(student, x_test, y_test) > 0.8
    assert "accuracy" in student.history.history


def test_train_from_scratch_takes_an_optimizer(data):
    (x, y), _ = data
    optimizer = keras.optimizers.SGD(0.05)
    student = baselines.train_from_scratch(
        _student(), x, y, optimizer=optimizer, verbose=0
    )
    assert student.optimizer is optimizer
    with pytest.raises(ValueError, match="Received: optimizer='adam'"):
        baselines.train_from_scratch(student, x, y, optimizer="adam")


def test_binary_teacher_with_fused_sigmoid(data):
    keras.utils.set_random_seed(0)
    x, y = _blobs(2, 300, (16,), 3)
    x_test, y_test = _blobs(2, 100, (16,), 4)
    teacher = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    teacher.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy"
    )
    teacher.fit(x, y, epochs=5, verbose=0)
    assert _accuracy(teacher, x_test, y_test) > 0.9
    history = keras.callbacks.History()
    student = baselines.distill_logits(
        teacher,
        _student(1, (16,), "sigmoid"),
        x,
        alpha=0.0,
        epochs=6,
        optimizer=keras.optimizers.Adam(0.01),
        callbacks=[history],
        verbose=0,
    )
    losses = history.history["distillation_loss"]
    assert losses[0] > 0 and losses[-1] < losses[0]
    assert _accuracy(student, x_test, y_test) > 0.8


def test_logits_model_shares_layers_after_a_separate_activation(teacher):
    view = baselines.logits_model(teacher)
    assert view.layers[-1] is teacher.layers[-2]
    assert view.output.shape == (None, NUM_CLASSES)


def test_logits_model_copies_a_fused_output_layer():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
    )
    view = baselines.logits_model(model)
    x = np.random.rand(5, 4).astype("float32")
    probs = keras.ops.softmax(view.predict(x, verbose=0))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(probs),
        model.predict(x, verbose=0),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="fuses its softmax activation"):
        baselines.logits_model(model, share_weights=True)


def test_logits_model_keeps_a_linear_model_and_rejects_others():
    linear = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert baselines.logits_model(linear) is linear
    relu = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu")]
    )
    with pytest.raises(ValueError, match="output activation 'relu'"):
        baselines.logits_model(relu)
    # A nested model ending in softmax: its logits are out of reach (its
    # probabilities were taken for logits before); a linear one is kept.
    nested = keras.Sequential(
        [
            keras.Input((4,)),
            keras.Sequential(
                [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
            ),
        ]
    )
    with pytest.raises(ValueError, match="nested model ending in 'softmax'"):
        baselines.logits_model(nested)
    nested_linear = keras.Sequential([keras.Input((4,)), linear])
    assert baselines.logits_model(nested_linear) is nested_linear


def test_single_student_classifier_matches_the_class_budget():
    model = baselines.single_student_classifier(
        architectures.mnist_student(1),
        10,
        input_shape=(28, 28, 1),
        activation="softmax",
    )
    # mnist_student(1) (77,840) + Dense(256 -> 10) (2,570).
    assert model.count_params() == 80_410
    assert [layer.name for layer in model.layers[-2:]] == [
        "logits",
        "probabilities",
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, "Received: num_classes=0"),
        ({"activation": "relu"}, "Received: activation='relu'"),
    ],
)
def test_single_student_classifier_rejects_bad_arguments(kwargs, message):
    args = {"num_classes": 3, "input_shape": (4,), **kwargs}
    with pytest.raises(ValueError, match=message):
        baselines.single_student_classifier(DenseTower(4), **args)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": 0}, "Received: temperature=0"),
        ({"alpha": 1.5}, "Received: alpha=1.5"),
        ({"alpha": 0.5, "y": None}, "Received: alpha=0.5, y=None"),
    ],
)
def test_distill_logits_rejects_bad_arguments(teacher, data, kwargs, message):
    (x, y), _ = data
    args = {"y": y, **kwargs}
    with pytest.raises(ValueError, match=message):
        baselines.distill_logits(teacher, _student(), x, **args)


def test_distillation_refuses_weights_the_distiller_would_ignore(teacher, data):
    (x, y), _ = data
    for name, value, shown in (
        ("sample_weight", np.zeros(len(x)), f"ndarray of shape ({len(x)},)"),
        ("class_weight", {0: 0.0, 1: 0.0}, "{0: 0.0, 1: 0.0}"),
    ):
        with pytest.raises(ValueError, match="ignores sample weights") as e:
            baselines.distill_logits(
                teacher, _student(), x, y, epochs=1, verbose=0, **{name: value}
            )
        assert f"Received: {name}={shown}" in str(e.value)
    # Weights inside the data too.
    triples = tf.data.Dataset.from_tensor_slices((x, y, np.zeros(len(x))))
    for kwargs in (
        dict(x=triples.batch(8), y=None),
        dict(x=x, y=y, validation_data=(x, y, np.zeros(len(x)))),
    ):
        with pytest.raises(ValueError, match="ignores sample weights"):
            baselines.distill_logits(
                teacher, _student(), epochs=1, verbose=0, **kwargs
            )


def test_a_classifier_gives_float32_probabilities_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = baselines.single_student_classifier(
            DenseTower(4), 3, (4,), activation="softmax"
        )
    finally:
        keras.config.set_dtype_policy("float32")
    x = np.random.default_rng(0).random((5, 4), "float32")
    assert model.predict(x, verbose=0).dtype == np.float32
    assert baselines.logits_model(model).outputs[0].dtype == "bfloat16"


def test_distill_logits_rejects_mismatched_models(teacher, data):
    (x, y), _ = data
    with pytest.raises(ValueError, match="output shape: \\(4,\\)"):
        baselines.distill_logits(teacher, _student(num_classes=3), x, y)
    with pytest.raises(TypeError, match="Received: student_model=DenseTower"):
        baselines.distill_logits(teacher, DenseTower(4), x, y)
    other_teacher = keras.Sequential(
        [keras.Input(SHAPE), DenseTower(NUM_CLASSES), keras.layers.Softmax()]
    )
    fused_student = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    with pytest.raises(ValueError, match="fuses its softmax"):
        baselines.distill_logits(other_teacher, fused_student, x, y)
