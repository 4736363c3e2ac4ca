import keras
import numpy as np
import pytest

from teacherclass import TeacherClass
from teacherclass import compose
from teacherclass import teacher as teacher_lib
from teacherclass import towers as towers_lib


def test_feature_clip_bounds_of_different_lengths_are_a_value_error():
    with pytest.raises(
        ValueError,
        match=r"`low` and `high` must have the same length when both hold "
        r"one value per feature \(a list of one value applies to every "
        r"feature\). Received: low=\[0.0, 0.0, 0.0\] \(3 values\), "
        r"high=\[1.0, 1.0\] \(2 values\)",
    ):
        compose.FeatureClip(low=[0, 0, 0], high=[1, 1])
    # An empty list is no one-value list (it gave NumPy's broadcast error).
    with pytest.raises(ValueError, match=r"Received: low=\[\] \(0 values\)"):
        compose.FeatureClip(low=[], high=[1, 2])


@pytest.mark.parametrize(
    "low, high, expected",
    [
        ([0.0], [1.0, 2.0, 3.0], [[0.0, 0.25, 3.0]]),
        ([0.0, 0.5, 1.0], [2.0], [[0.0, 0.5, 2.0]]),
    ],
)
def test_feature_clip_a_one_value_list_beside_a_per_feature_list(
    low, high, expected
):
    # The one value applies to every feature, as it does alone.
    x = np.array([[-1.0, 0.25, 5.0]], "float32")
    np.testing.assert_array_equal(
        compose.FeatureClip(low=low, high=high)(x), expected
    )


@pytest.mark.parametrize("name", ["low", "high"])
def test_feature_clip_bounds_must_match_the_input_width(name):
    clip = compose.FeatureClip(**{name: [0.0, 0.5, 1.0]})
    with pytest.raises(
        ValueError,
        match=rf"`{name}` must hold one value per feature: the input has 4 "
        rf"features, `{name}` 3. Received: {name}=\[0.0, 0.5, 1.0\] for "
        r"input_shape=\(2, 4\)",
    ):
        clip(np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="the input has 4 features"):
        clip(keras.Input((4,)))


def test_feature_clip_per_feature_and_single_bounds_clip():
    x = np.array([[-1.0, 0.25, 5.0]], "float32")
    clip = compose.FeatureClip(low=[0.0, 0.5, 1.0], high=[1.0, 1.0, 2.0])
    np.testing.assert_array_equal(clip(x), [[0.0, 0.5, 2.0]])
    # One value in a list applies to every feature.
    np.testing.assert_array_equal(
        compose.FeatureClip(low=[0.0])(x), [[0.0, 0.25, 5.0]]
    )


def _sparse_ce(model, x, y):
    probs = np.asarray(model.predict(x, verbose=0), "float64")
    return float(np.mean(-np.log(probs[np.arange(len(y)), y])))


def _labelled(n=8, width=6, classes=3):
    rng = np.random.default_rng(0)
    x = rng.random((n, width)).astype("float32")
    return x, rng.integers(0, classes, n)


def _dict_compiled_teacher():
    inputs = keras.Input((6,), name="x")
    features = keras.layers.Dense(5, activation="relu", name="feat")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(
        features
    )
    teacher = keras.Model(inputs, outputs)
    teacher.compile(
        optimizer="adam",
        loss={"predictions": "sparse_categorical_crossentropy"},
        metrics={"predictions": ["accuracy"]},
    )
    return teacher


def test_compile_like_keys_per_output_settings_by_the_composed_output():
    # The teacher's settings are keyed "predictions"; the composed model's
    # one output is named "head" (after the cut head).
    teacher = _dict_compiled_teacher()
    cut = teacher_lib.cut(teacher, "feat")
    towers = [towers_lib.DenseTower(u, hidden=(4,)) for u in (2, 3)]
    composed = compose.compose_model(cut.inputs(), towers, cut.head())
    x, y = _labelled()
    compose.compile_like(composed, teacher, y)
    assert composed.output_names == ["head"]
    assert composed.loss == {"head": "sparse_categorical_crossentropy"}
    loss, accuracy = composed.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(loss, _sparse_ce(composed, x, y), rtol=1e-5)
    predictions = np.argmax(composed.predict(x, verbose=0), -1)
    np.testing.assert_allclose(accuracy, np.mean(predictions == y))


def test_with_new_head_keys_the_heads_settings_by_the_composed_output():
    inputs = keras.Input((6,), name="inputs")
    towers = [towers_lib.DenseTower(u, hidden=(4,)) for u in (2, 3)]
    rep = compose.representation_model(inputs, towers)
    head_inputs = keras.Input((5,))
    head = keras.Model(
        head_inputs,
        keras.layers.Dense(3, activation="softmax", name="cls")(head_inputs),
        name="head",
    )
    head.compile(
        optimizer="adam",
        loss={"cls": "sparse_categorical_crossentropy"},
        metrics={"cls": ["accuracy"]},
    )
    composed = compose.with_new_head(rep, head)
    x, y = _labelled()
    history = composed.fit(x, y, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    loss, _ = composed.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(loss, _sparse_ce(composed, x, y), rtol=1e-5)


def _head_with_dict_output(keys):
    inputs = keras.Input((5,))
    layers = {
        "cls": keras.layers.Dense(3, activation="softmax", name="dense_cls"),
        "box": keras.layers.Dense(2, name="dense_box"),
    }
    head = keras.Model(
        inputs, {key: layers[key](inputs) for key in keys}, name="head"
    )
    losses = {"cls": "sparse_categorical_crossentropy", "box": "mse"}
    head.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={key: losses[key] for key in keys},
        metrics={"cls": ["accuracy"]},
    )
    return head


@pytest.mark.parametrize("keys", [("cls", "box"), ("cls",)])
def test_with_new_head_keeps_the_settings_of_a_head_with_a_dict_output(keys):
    # Keras matches the settings by the dict's keys, not by the output
    # names (both the head's name): they stay as the head has them.
    inputs = keras.Input((6,), name="inputs")
    towers = [towers_lib.DenseTower(u, hidden=(4,)) for u in (2, 3)]
    rep = compose.representation_model(inputs, towers)
    composed = compose.with_new_head(rep, _head_with_dict_output(keys))
    losses = {"cls": "sparse_categorical_crossentropy", "box": "mse"}
    assert composed.loss == {key: losses[key] for key in keys}
    assert isinstance(composed.optimizer, keras.optimizers.SGD)
    x, y = _labelled()
    labels = {"cls": y, "box": np.zeros((len(y), 2), "float32")}
    history = composed.fit(
        x, {key: labels[key] for key in keys}, epochs=1, verbose=0
    )
    if len(keys) == 2:
        expected = {"loss", "cls_loss", "box_loss", "cls_accuracy"}
    else:
        expected = {"loss", "accuracy"}
    assert set(history.history) == expected


def test_settings_for_outputs_the_model_lacks_bring_the_defaults():
    inputs = keras.Input((4,))
    source = keras.Model(
        inputs,
        {
            "a": keras.layers.Dense(2, name="a")(inputs),
            "b": keras.layers.Dense(2, name="b")(inputs),
        },
    )
    source.compile(optimizer="adam", loss={"a": "mse", "b": "mae"})
    model = keras.Model(inputs, keras.layers.Dense(2, name="c")(inputs))
    assert compose._compile_from(model, source) is False
    assert not model.compiled


def test_teacher_class_compose_with_a_teacher_compiled_per_output():
    teacher = _dict_compiled_teacher()
    tc = TeacherClass(
        teacher,
        num_students=2,
        feature_layer="feat",
        student=towers_lib.DenseTower(1, hidden=(4,)),
    )
    x, y = _labelled(16)
    tc.fit_students(x, epochs=1, verbose=0)
    composed = tc.compose()
    loss, _ = composed.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(loss, _sparse_ce(composed, x, y), rtol=1e-5)
    # The class itself is compiled like the teacher too.
    np.testing.assert_allclose(tc.evaluate(x, y, verbose=0)[0], loss, rtol=1e-5)


def test_a_new_head_on_the_mixed_precision_representation():
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((6,))
    features = keras.layers.Dense(5, activation="relu", name="feat")(inputs)
    teacher = keras.Model(inputs, keras.layers.Dense(3)(features))
    tc = TeacherClass(
        teacher,
        num_students=2,
        feature_layer="feat",
        student=towers_lib.DenseTower(1, hidden=(4,)),
    )
    x, _ = _labelled()
    tc.fit_students(x, epochs=1, verbose=0)
    representation = tc.representation()
    assert representation.output.dtype == "float32"
    head = keras.layers.Dense(3)  # computes in float16
    composed = compose.with_new_head(representation, head)
    names = [layer.name for layer in composed.layers]
    assert names.count("float32_output") == 1
    assert composed.output.dtype == "float32"
    np.testing.assert_allclose(
        composed.predict(x, verbose=0),
        head(representation.predict(x, verbose=0)),
        rtol=1e-2,
        atol=1e-2,
    )
