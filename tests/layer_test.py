"""A shared check every tower goes through, in the spirit of Keras'
`run_layer_test`."""

import keras
import numpy as np


def _sample(input_shape, input_dtype, vocab=None, seed=0):
    rng = np.random.default_rng(seed)
    if "int" in input_dtype:
        return rng.integers(0, vocab or 10, size=input_shape).astype(
            input_dtype
        )
    return rng.random(input_shape).astype(input_dtype)


def _model(layer_cls, kwargs, input_shape, input_dtype):
    inputs = keras.Input(shape=input_shape[1:], dtype=input_dtype)
    layer = layer_cls(**kwargs)
    return keras.Model(inputs, layer(inputs)), layer


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    tmp_path,
    input_dtype="float32",
):
    """Builds, calls, trains, serializes and reloads a layer.

    Checks: symbolic and eager output shapes; one training step changes the
    weights; `get_config`/`from_config` round trip; `.keras` save/load with
    the default `safe_mode=True` gives equal outputs; a `mixed_bfloat16`
    build computes in bfloat16 and trains to a finite loss.
    """
    vocab = init_kwargs.get("vocab_size")
    x = _sample(input_shape, input_dtype, vocab)

    # Symbolic and eager calls.
    model, layer = _model(layer_cls, init_kwargs, input_shape, input_dtype)
    assert tuple(model.output.shape[1:]) == tuple(expected_output_shape[1:])
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == tuple(expected_output_shape)
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(
        expected_output_shape
    )

    # One training step moves the weights.
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    y = np.ones(expected_output_shape, "float32")
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    after = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))

    # Config round trip.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    # .keras round trip, safe mode.
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )

    # Mixed precision.
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model, layer = _model(layer_cls, init_kwargs, input_shape, input_dtype)
        assert layer.compute_dtype == "bfloat16"
        assert layer.variable_dtype == "float32"
        assert keras.backend.standardize_dtype(layer(x).dtype) == "bfloat16"
        model.compile(optimizer="sgd", loss="mse")
        assert np.isfinite(model.train_on_batch(x, y))
    finally:
        keras.config.set_dtype_policy(policy)
    return layer
