"""FLOPs of a Keras model, counted per layer call from known formulas.

A multiply-add counts 2 FLOPs. `count_flops` runs the model once on one
zero sample, records every layer call (nested ones included) and costs
each from its class and shapes.
"""

import numpy as np

from teacherclass.latency import input_specs
from teacherclass.latency import zero_inputs


def _prod(values):
    return int(np.prod([int(v) for v in values])) if len(values) else 1


def _layer_flops(layer, in_shapes, out_shape):
    """FLOPs of one call of a leaf layer on one sample (batch axis = 1)."""
    import keras

    layers = keras.layers
    in_shape = in_shapes[0]
    out_elems = _prod(out_shape[1:])
    bias = out_elems if getattr(layer, "use_bias", False) else 0
    if isinstance(layer, layers.Dense):
        return 2 * in_shape[-1] * out_elems + bias
    if isinstance(layer, layers.EinsumDense):
        # Every output element reads the kernel's contracted axes.
        contracted = layer.kernel.size // max(
            1, _prod(out_shape[1:]) // max(1, _prod(in_shape[1:-1]))
        )
        return 2 * out_elems * contracted + bias
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        k = _prod(layer.kernel_size)
        mid = _prod(out_shape[1:-1]) * in_shape[-1] * layer.depth_multiplier
        return 2 * mid * k + 2 * mid * out_shape[-1] + bias
    if isinstance(layer, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        return 2 * out_elems * _prod(layer.kernel_size) + bias
    transposed = (
        layers.Conv1DTranspose,
        layers.Conv2DTranspose,
        layers.Conv3DTranspose,
    )
    if isinstance(layer, transposed):
        k = _prod(layer.kernel_size)
        return 2 * _prod(in_shape[1:]) * k * out_shape[-1] + bias
    if isinstance(layer, layers.Conv1D | layers.Conv2D | layers.Conv3D):
        groups = getattr(layer, "groups", 1)
        per_output = _prod(layer.kernel_size) * in_shape[-1] // groups
        return 2 * out_elems * per_output + bias
    pooling = (
        layers.MaxPooling1D,
        layers.MaxPooling2D,
        layers.MaxPooling3D,
        layers.AveragePooling1D,
        layers.AveragePooling2D,
        layers.AveragePooling3D,
    )
    if isinstance(layer, pooling):
        return out_elems * _prod(layer.pool_size)
    global_pooling = (
        layers.GlobalMaxPooling1D,
        layers.GlobalMaxPooling2D,
        layers.GlobalMaxPooling3D,
        layers.GlobalAveragePooling1D,
        layers.GlobalAveragePooling2D,
        layers.GlobalAveragePooling3D,
    )
    if isinstance(layer, global_pooling):
        return _prod(in_shape[1:])
    if isinstance(layer, layers.BatchNormalization):
        return 2 * out_elems  # a scale and a shift at inference
    merging = (layers.Add, layers.Subtract, layers.Multiply, layers.Average)
    if isinstance(layer, merging):
        return (len(in_shapes) - 1) * out_elems
    return 0  # lookups (Embedding), reshapes, dropout, activations


def _shapes(value):
    import keras

    flat = keras.tree.flatten(value)
    return [tuple(keras.ops.shape(t)) for t in flat if hasattr(t, "shape")]


def count_flops(model, per_layer=False):
    """FLOPs of one forward pass on one sample, from per-layer formulas.

    The model runs once on a batch of one zero sample while every layer
    call is recorded (nested layers included, e.g. inside towers), then
    each call is costed. A multiply-add counts 2 FLOPs:

    - `Dense`, `EinsumDense`: 2 x inputs x outputs per position, plus one
      per output for the bias.
    - `Conv1D/2D/3D`: 2 x kernel size x input channels / groups per output
      element, plus the bias; depthwise, separable and transposed
      convolutions by their own formulas.
    - pooling: one per window element per output; global pooling: one per
      input element.
    - `BatchNormalization`: 2 per element; `Add`, `Multiply`, ...: one per
      element per extra input.
    - not counted: activations, `Embedding` (a lookup), reshaping, dropout,
      clipping, and layers outside these families (their own arithmetic;
      their sublayers are counted).

    Args:
        model: a built `keras.Model` or layer with a known input shape.
        per_layer: bool, also return each counted call.

    Returns:
        An int, or `(total, [(layer_name, class_name, flops), ...])` with
        `per_layer=True`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> count_flops(model)  # 2 * 8 * 4 multiply-adds + 4 biases
    68
    """
    import keras

    records = []
    original = keras.layers.Layer.__call__

    def recording(self, *args, **kwargs):
        outputs = original(self, *args, **kwargs)
        inputs = args[0] if args else next(iter(kwargs.values()), None)
        records.append((self, _shapes(inputs), _shapes(outputs)))
        return outputs

    sample = zero_inputs(input_specs(model), batch_size=1)
    keras.layers.Layer.__call__ = recording
    try:
        model(sample, training=False)
    finally:
        keras.layers.Layer.__call__ = original
    counted = []
    for layer, in_shapes, out_shapes in records:
        if not in_shapes or not out_shapes:
            continue
        flops = _layer_flops(layer, in_shapes, out_shapes[0])
        if flops:
            counted.append((layer.name, type(layer).__name__, int(flops)))
    total = sum(f for _, _, f in counted)
    return (total, counted) if per_layer else total
