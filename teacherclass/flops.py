"""FLOPs of a Keras model, counted per layer call from known formulas.

A multiply-add counts 2 FLOPs; `count_macs` counts the multiply-adds
alone. `count_flops` runs the model once on one
zero sample, records every layer call (nested ones included) and costs
each from its class and shapes.
"""

import numpy as np

from teacherclass.latency import input_specs
from teacherclass.latency import pack_inputs
from teacherclass.latency import zero_inputs


def _prod(values):
    return int(np.prod([int(v) for v in values])) if len(values) else 1


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") != "channels_first"


def _channels(shape, layer):
    """`(spatial_dims, channels)` of a convolution's per-sample shape."""
    if _channels_last(layer):
        return shape[1:-1], shape[-1]
    return shape[2:], shape[1]


def _einsum_contracted(layer, in_shape):
    """Product of the kernel dims an `EinsumDense` sums over.

    Those are the kernel's letters missing from the output; each is also
    an input letter, whose size is read from the input (the kernel of a
    quantized layer may be packed), else from the kernel.
    """
    equation = layer.equation.replace(" ", "")
    inputs, output = equation.split("->")
    in_spec, kernel_spec = inputs.split(",")
    dims = {}
    if "..." in in_spec:
        left, right = in_spec.split("...")
        dims.update(zip(left, in_shape[: len(left)]))
        dims.update(zip(right, in_shape[len(in_shape) - len(right) :]))
    else:
        dims.update(zip(in_spec, in_shape))
    kernel_shape = tuple(layer.kernel.shape)
    return _prod(
        [
            dims.get(letter, kernel_shape[i])
            for i, letter in enumerate(kernel_spec)
            if letter not in output
        ]
    )


def _layer_cost(layer, in_shapes, out_shape):
    """`(multiply_adds, other_flops)` of one call of a leaf layer on one
    sample (batch axis = 1)."""
    import keras

    # Imported on use, so that `fusion` (towers, Keras layers) may one day
    # import this module without a cycle.
    from teacherclass.fusion import BatchedDense

    layers = keras.layers
    in_shape = in_shapes[0]
    out_elems = _prod(out_shape[1:])
    bias = out_elems if getattr(layer, "use_bias", False) else 0
    if isinstance(layer, layers.TimeDistributed):
        # Keras runs the wrapped layer's `call` once per step, unseen by
        # the `Layer.__call__` hook (a wrapped model's own layers are
        # seen, once per step, and cost 0 here).
        steps = in_shape[1]
        macs, other = _layer_cost(
            layer.layer,
            [(s[0], *s[2:]) for s in in_shapes],
            (out_shape[0], *out_shape[2:]),
        )
        return steps * macs, steps * other
    if isinstance(layer, layers.Dense | BatchedDense):
        # BatchedDense: `groups` dense layers, (1, groups, k) -> (1,
        # groups, units), k multiply-adds per output.
        return in_shape[-1] * out_elems, bias
    if isinstance(layer, layers.EinsumDense):
        # Every output element reads the kernel's contracted axes.
        bias = out_elems if layer.bias is not None else 0
        return out_elems * _einsum_contracted(layer, in_shape), bias
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        k = _prod(layer.kernel_size)
        _, in_channels = _channels(in_shape, layer)
        spatial, out_channels = _channels(out_shape, layer)
        mid = _prod(spatial) * in_channels * layer.depth_multiplier
        return mid * k + mid * out_channels, bias
    if isinstance(layer, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        return out_elems * _prod(layer.kernel_size), bias
    transposed = (
        layers.Conv1DTranspose,
        layers.Conv2DTranspose,
        layers.Conv3DTranspose,
    )
    if isinstance(layer, transposed):
        k = _prod(layer.kernel_size)
        _, out_channels = _channels(out_shape, layer)
        return _prod(in_shape[1:]) * k * out_channels, bias
    if isinstance(layer, layers.Conv1D | layers.Conv2D | layers.Conv3D):
        groups = getattr(layer, "groups", 1)
        _, in_channels = _channels(in_shape, layer)
        per_output = _prod(layer.kernel_size) * in_channels // groups
        return out_elems * per_output, bias
    pooling = (
        layers.MaxPooling1D,
        layers.MaxPooling2D,
        layers.MaxPooling3D,
        layers.AveragePooling1D,
        layers.AveragePooling2D,
        layers.AveragePooling3D,
    )
    if isinstance(layer, pooling):
        return 0, out_elems * _prod(layer.pool_size)
    global_pooling = (
        layers.GlobalMaxPooling1D,
        layers.GlobalMaxPooling2D,
        layers.GlobalMaxPooling3D,
        layers.GlobalAveragePooling1D,
        layers.GlobalAveragePooling2D,
        layers.GlobalAveragePooling3D,
    )
    if isinstance(layer, global_pooling):
        return 0, _prod(in_shape[1:])
    if isinstance(layer, layers.BatchNormalization):
        return 0, 2 * out_elems  # a scale and a shift at inference
    merging = (layers.Add, layers.Subtract, layers.Multiply, layers.Average)
    if isinstance(layer, merging):
        return 0, (len(in_shapes) - 1) * out_elems
    return 0, 0  # lookups (Embedding), reshapes, dropout, activations


def _layer_flops(layer, in_shapes, out_shape):
    """FLOPs of one call of a leaf layer on one sample (batch axis = 1)."""
    macs, other = _layer_cost(layer, in_shapes, out_shape)
    return 2 * macs + other


def _shapes(value):
    import keras

    flat = keras.tree.flatten(value)
    return [tuple(keras.ops.shape(t)) for t in flat if hasattr(t, "shape")]


def count_flops(model, per_layer=False, sequence_length=None):
    """FLOPs of one forward pass on one sample, from per-layer formulas.

    The model runs once on a batch of one zero sample while every layer
    call is recorded (nested layers included, e.g. inside towers), then
    each call is costed. A multiply-add counts 2 FLOPs:

    - `Dense` and the fused students' `BatchedDense`: 2 x inputs x outputs
      per position, plus one per output for the bias; `EinsumDense`
      (`MultiHeadAttention`'s projections too): 2 x the product of the
      kernel's summed axes (its equation letters missing from the output)
      per output element, plus the bias.
    - `Conv1D/2D/3D`: 2 x kernel size x input channels / groups per output
      element, plus the bias; depthwise, separable and transposed
      convolutions by their own formulas; either `data_format`.
    - `TimeDistributed`: its layer's FLOPs on one step, times the steps.
    - pooling: one per window element per output; global pooling: one per
      input element.
    - `BatchNormalization`: 2 per element; `Add`, `Multiply`, ...: one per
      element per extra input.
    - not counted: activations, `Embedding` (a lookup), reshaping, dropout,
      clipping, and layers outside these families (their own arithmetic,
      such as the attention scores of `MultiHeadAttention`; their
      sublayers are counted).

    Args:
        model: a functional or Sequential `keras.Model` (any structure
            of inputs, a dict included). A layer or a subclassed model
            has no known inputs: count it wrapped,
            `keras.Model(x, layer(x))`.
        per_layer: bool, also return each counted call.
        sequence_length: None, or an int that a variable-length input
            dimension (`keras.Input((None,))`) is counted at; with None,
            such an input raises a `ValueError`.

    Returns:
        An int, or `(total, [(layer_name, class_name, flops), ...])` with
        `per_layer=True`.

    Raises:
        ValueError: if `model` has no known inputs (a layer, a subclassed
            model), or a variable-length input and no `sequence_length`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> count_flops(model)  # 2 * 8 * 4 multiply-adds + 4 biases
    68
    """
    counted = [
        (name, kind, 2 * macs + other)
        for name, kind, macs, other in _costs(model, sequence_length)
        if 2 * macs + other
    ]
    total = sum(f for _, _, f in counted)
    return (total, counted) if per_layer else total


def _costs(model, sequence_length=None):
    """`[(layer_name, class_name, multiply_adds, other_flops), ...]`, on
    one zero sample (unknown dimensions at `sequence_length`)."""
    import keras

    records = []
    original = keras.layers.Layer.__call__

    def recording(self, *args, **kwargs):
        outputs = original(self, *args, **kwargs)
        inputs = args[0] if args else next(iter(kwargs.values()), None)
        records.append((self, _shapes(inputs), _shapes(outputs)))
        return outputs

    sample = pack_inputs(
        model, zero_inputs(input_specs(model, sequence_length), batch_size=1)
    )
    keras.layers.Layer.__call__ = recording
    try:
        model(sample, training=False)
    finally:
        keras.layers.Layer.__call__ = original
    costs = []
    for layer, in_shapes, out_shapes in records:
        if not in_shapes or not out_shapes:
            continue
        macs, other = _layer_cost(layer, in_shapes, out_shapes[0])
        costs.append((layer.name, type(layer).__name__, int(macs), int(other)))
    return costs


def count_macs(model, per_layer=False, sequence_length=None):
    """Multiply-adds of one forward pass on one sample.

    The multiply-add part of `count_flops`: each `Dense`, `BatchedDense`,
    `EinsumDense` and convolution (plain, grouped, depthwise, separable,
    transposed) counts one per weight use (inputs x outputs per position;
    kernel size x input channels / groups per output element), a
    `TimeDistributed` layer once per step. A composed model counts the
    same whichever way its students are fused (but for the padding of
    uneven student widths in the "grouped" and "einsum" modes). Biases, pooling,
    normalization, merging and activations are not multiply-adds, so
    `count_flops(model) == 2 * count_macs(model) + those FLOPs`. This is
    the usual "MACs" of model cards (e.g. a `Dense(4)` on 8 inputs: 32).

    Args:
        model: a functional or Sequential `keras.Model` (any structure
            of inputs, a dict included). A layer or a subclassed model
            has no known inputs: count it wrapped,
            `keras.Model(x, layer(x))`.
        per_layer: bool, also return each counted call.
        sequence_length: None, or an int that a variable-length input
            dimension (`keras.Input((None,))`) is counted at; with None,
            such an input raises a `ValueError`.

    Returns:
        An int, or `(total, [(layer_name, class_name, macs), ...])` with
        `per_layer=True`.

    Raises:
        ValueError: if `model` has no known inputs (a layer, a subclassed
            model), or a variable-length input and no `sequence_length`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> count_macs(model)
    32
    """
    counted = [
        (name, kind, macs)
        for name, kind, macs, _ in _costs(model, sequence_length)
        if macs
    ]
    total = sum(m for _, _, m in counted)
    return (total, counted) if per_layer else total
