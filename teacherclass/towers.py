"""Student towers: small, serializable Keras layers, one per chunk.

A tower maps the teacher's input to one chunk of the teacher's
representation. Every tower takes `units` (the chunk width) as its first
argument, so `TeacherClass` can build one tower per chunk from a single
template; the rest of the arguments set its width and depth.
"""

import inspect

import keras
import numpy as np
from keras import ops

from teacherclass import validation

_PACKAGE = "teacherclass"


def _check_positive(name, value, allow_zero=False):
    """Checks a count; returns it as a Python int (NumPy ints welcome)."""
    ok = validation.is_int(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "a non-negative" if allow_zero else "a positive"
        raise ValueError(
            f"`{name}` must be {bound} integer. Received: {name}={value!r}"
        )
    return int(value)


def _check_positive_tuple(name, values):
    """Checks a sequence of counts; returns it as a tuple of ints.

    Errors echo the value received, not its conversion: a string or a
    dict is iterable but no sequence of counts, and is refused whole.
    """
    received = values
    error = ValueError(
        f"`{name}` must be a sequence of positive integers, one per "
        f"layer, e.g. (32, 16). Received: {name}={received!r}"
    )
    if isinstance(values, (str, bytes, dict, set, frozenset)):
        raise error
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(
            f"`{name}` must be a sequence of positive integers, one per "
            f"layer, e.g. ({values!r},). Received: {name}={values!r}"
        ) from None
    for value in values:
        if not validation.is_int(value) or value < 1:
            raise ValueError(
                f"`{name}` must hold positive integers. "
                f"Received: {name}={received!r}"
            )
    return tuple(int(v) for v in values)


def _check_rate(name, value):
    """Checks a rate in [0, 1); returns it as a float."""
    number = isinstance(value, (int, float, np.number)) and not isinstance(
        value, bool
    )
    if not number or not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{name}` must be a number in [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def _image_shape(input_shape, tower):
    """(batch, H, W, C) from an image input shape; (batch, H, W) gets C=1."""
    shape = tuple(input_shape)
    if len(shape) == 3:  # grayscale without a channel axis
        shape = shape + (1,)
    if len(shape) != 4:
        raise ValueError(
            f"{tower} takes images of shape (batch, H, W[, C]). "
            f"Received: input_shape={tuple(input_shape)}"
        )
    return shape


def _activation(activation):
    """`keras.activations.get`, with an error that echoes the value."""
    try:
        return keras.activations.get(activation)
    except ValueError:  # a TypeError (unregistered function) stays Keras'
        raise ValueError(
            "`activation` must name a Keras activation or be a callable "
            "(registered with `keras.saving.register_keras_serializable` "
            f"to save it). Received: activation={activation!r}"
        ) from None


def _conv_stack(
    sizes, num_convs, kernel_size, convs_per_block, padding, pool_padding
):
    """Walks spatial sizes through a `ConvTower` stack.

    Yields `(layer name, sizes before, sizes after)` for each convolution
    and pooling; an unknown (None) size stays None.
    """
    shrink = kernel_size - 1 if padding == "valid" else 0
    for i in range(num_convs):
        after = tuple(None if n is None else n - shrink for n in sizes)
        yield f"conv_{i}", sizes, after
        sizes = after
        if (i + 1) % convs_per_block == 0:
            after = tuple(_pooled(n, 2, pool_padding) for n in sizes)
            yield f"pool_{i}", sizes, after
            sizes = after


def _pooled(n, pool_size, padding):
    """A length after a pooling of `pool_size` (stride the same)."""
    if n is None:
        return None
    if padding == "same":
        return -(-n // pool_size)
    return max((n - pool_size) // pool_size + 1, 0)


_POOLINGS = ("flatten", "global_average", "global_max")


def _check_pooling(pooling):
    if pooling not in _POOLINGS:
        raise ValueError(
            f"`pooling` must be one of {list(_POOLINGS)}. "
            f"Received: pooling={pooling!r}"
        )
    return pooling


def _to_vector(pooling, rank, dtype):
    """The layer that turns the conv stack's map into a vector."""
    if pooling == "flatten":
        return keras.layers.Flatten(dtype=dtype)
    layers = {
        ("global_average", 1): keras.layers.GlobalAveragePooling1D,
        ("global_max", 1): keras.layers.GlobalMaxPooling1D,
        ("global_average", 2): keras.layers.GlobalAveragePooling2D,
        ("global_max", 2): keras.layers.GlobalMaxPooling2D,
    }
    return layers[pooling, rank](dtype=dtype)


def _unknown_width(tower, input_shape, pooling_hint):
    """The error for a tower whose Flatten width is unknown."""
    hint = (
        f"pass pooling={pooling_hint!r} (a global pooling takes any size) "
        "or `student=` a tower of your own"
        if pooling_hint
        else "pass `student=` a tower that takes inputs of any size"
    )
    return ValueError(
        f"{tower} flattens its input into Dense layers, which need a "
        f"fully known size, but this input's size is unknown (None); "
        f"{hint}. Received: input_shape={tuple(input_shape)}"
    )


class Tower(keras.layers.Layer):
    """Base class of student towers.

    Subclasses take `units` as their first argument and end in
    `Dense(units)` (or a per-pixel equivalent). Use it with `isinstance`
    to recognise a tower. Its output is `(batch, units)` unless a subclass
    says otherwise.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        units = _check_positive("units", units)
        self.units = units

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvTower(Tower):
    """A small convolutional student for image inputs.

    Conv blocks (`convs_per_block` convolutions, then 2x2 max pooling),
    dropout, a dense bottleneck and a linear `Dense(units)` output. The
    defaults are the paper's MNIST student for 4 students (19,144
    parameters on 28x28x1 inputs with `units=64`). With `batch_norm`,
    each convolution (then without a bias) is followed by a
    `BatchNormalization` before its activation, as in the fast CIFAR-10
    teacher's blocks: deep, narrow towers train much faster so.

    Args:
        units: int, the width of the chunk this tower regresses.
        filters: tuple of ints, the filters of each convolution in order.
        kernel_size: int, the convolution kernel size.
        convs_per_block: int, convolutions between two poolings.
        padding: `"valid"` or `"same"`.
        bottleneck: int or None, width of the dense layer before the
            output. None goes straight from the features to the output.
        dropout: float, dropout rate after the conv stack and before the
            output layer.
        activation: activation of the hidden layers: a name or a function
            (register your own with
            `keras.saving.register_keras_serializable` to save it).
        batch_norm: bool, normalize each convolution's output (Keras
            `BatchNormalization`, its moving statistics updated in
            training) before the activation.
        pooling: how the conv stack's map becomes a vector: `"flatten"`
            (needs a fixed image size), `"global_average"` or
            `"global_max"` (any size: the 2x2 poolings then pad, so a
            map never pools to nothing).
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Raises:
        ValueError: if `batch_norm` is not a bool.
        ValueError: at build, when the images are too small for the stack
            (each "valid" convolution takes `kernel_size - 1` pixels off,
            each pooling halves the map); the message names the layer.
        ValueError: at build, when `pooling="flatten"` meets an image of
            unknown (None) height or width.

    Example:

    >>> tower = ConvTower(units=64)
    >>> tuple(tower(keras.ops.zeros((2, 28, 28, 1))).shape)
    (2, 64)
    """

    def __init__(
        self,
        units,
        filters=(32, 32, 16, 16),
        kernel_size=3,
        convs_per_block=2,
        padding="valid",
        bottleneck=8,
        dropout=0.25,
        activation="relu",
        batch_norm=False,
        pooling="flatten",
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.filters = _check_positive_tuple("filters", filters)
        if not isinstance(batch_norm, bool):
            raise ValueError(
                "`batch_norm` must be True or False. "
                f"Received: batch_norm={batch_norm!r}"
            )
        self.pooling = _check_pooling(pooling)
        kernel_size = _check_positive("kernel_size", kernel_size)
        convs_per_block = _check_positive("convs_per_block", convs_per_block)
        if padding not in ("valid", "same"):
            raise ValueError(
                "`padding` must be 'valid' or 'same'. "
                f"Received: padding={padding!r}"
            )
        if bottleneck is not None:
            bottleneck = _check_positive("bottleneck", bottleneck)
        dropout = _check_rate("dropout", dropout)
        self.kernel_size = kernel_size
        self.convs_per_block = convs_per_block
        self.padding = padding
        self.bottleneck = bottleneck
        self.dropout = dropout
        self.activation = _activation(activation)
        self.batch_norm = batch_norm

    @property
    def _pool_padding(self):
        # Under a global pooling any size is welcome: a padded pooling
        # keeps at least one pixel where a valid one would leave none.
        return "valid" if self.pooling == "flatten" else "same"

    def _misfit(self, input_shape):
        """Why this tower cannot take `input_shape`, or None if it can.

        A "valid" convolution shrinks the map by `kernel_size - 1` and a
        pooling halves it; the stack fits when every map keeps at least
        one pixel.

        Args:
            input_shape: the image input's shape, `(batch, H, W[, C])`.

        Returns:
            None, or a sentence naming the layer the map is too small for.
        """
        shape = _image_shape(input_shape, "ConvTower")
        stack = _conv_stack(
            shape[1:3],
            len(self.filters),
            self.kernel_size,
            self.convs_per_block,
            self.padding,
            self._pool_padding,
        )
        for name, before, after in stack:
            if any(n is not None and n < 1 for n in after):
                size = "x".join(str(n) for n in before)
                return f"a {size} map is too small for its layer {name}"
        return None

    def build(self, input_shape):
        reason = self._misfit(input_shape)
        if reason is not None:
            raise ValueError(
                f"ConvTower does not fit this input: {reason}. Pass "
                "padding='same' or fewer `filters` (every "
                "`convs_per_block` of them adds a 2x2 pooling); "
                "TeacherClass's default student fits itself to the input. "
                f"Received: input_shape="
                f"{tuple(input_shape)}, filters={self.filters}, "
                f"kernel_size={self.kernel_size}, padding={self.padding!r}"
            )
        shape = _image_shape(input_shape, "ConvTower")
        self._convs = []
        self._norms = []
        self._pools = []
        for i, f in enumerate(self.filters):
            conv = keras.layers.Conv2D(
                f,
                self.kernel_size,
                padding=self.padding,
                # With a norm after it, the activation follows the norm
                # and a bias would only duplicate the norm's offset.
                activation=None if self.batch_norm else self.activation,
                use_bias=not self.batch_norm,
                dtype=self.dtype_policy,
                name=f"conv_{i}",
            )
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            self._convs.append(conv)
            norm = None
            if self.batch_norm:
                norm = keras.layers.BatchNormalization(
                    dtype=self.dtype_policy, name=f"norm_{i}"
                )
                norm.build(shape)
            self._norms.append(norm)
            if (i + 1) % self.convs_per_block == 0:
                pool = keras.layers.MaxPooling2D(
                    2,
                    padding=self._pool_padding,
                    dtype=self.dtype_policy,
                    name=f"pool_{i}",
                )
                shape = pool.compute_output_shape(shape)
                self._pools.append(pool)
            else:
                self._pools.append(None)
        self._dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy
        )
        # Flatten or a global pooling, under the one attribute name that
        # files saved before `pooling` existed hold.
        self._flatten = _to_vector(self.pooling, 2, self.dtype_policy)
        shape = self._flatten.compute_output_shape(shape)
        if shape[-1] is None:
            raise _unknown_width("ConvTower", input_shape, "global_average")
        self._bottleneck = None
        if self.bottleneck:
            self._bottleneck = keras.layers.Dense(
                self.bottleneck,
                activation=self.activation,
                dtype=self.dtype_policy,
                name="bottleneck",
            )
            self._bottleneck.build(shape)
            shape = (shape[0], self.bottleneck)
        self._output = keras.layers.Dense(
            self.units, dtype=self.dtype_policy, name="output"
        )
        self._output.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if len(x.shape) == 3:
            x = ops.expand_dims(x, -1)
        x = ops.cast(x, self.compute_dtype)
        for conv, norm, pool in zip(self._convs, self._norms, self._pools):
            x = conv(x)
            if norm is not None:
                x = self.activation(norm(x, training=training))
            if pool is not None:
                x = pool(x)
        x = self._dropout(x, training=training)
        x = self._flatten(x)
        if self._bottleneck is not None:
            x = self._bottleneck(x)
            x = self._dropout(x, training=training)
        return self._output(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "convs_per_block": self.convs_per_block,
                "padding": self.padding,
                "bottleneck": self.bottleneck,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "batch_norm": self.batch_norm,
                "pooling": self.pooling,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DenseTower(Tower):
    """A multilayer perceptron student for vector inputs.

    The input is flattened, passed through `Dense` layers of widths
    `hidden` (each followed by dropout) and a linear `Dense(units)`.

    Args:
        units: int, the width of the chunk this tower regresses.
        hidden: tuple of ints, widths of the hidden layers.
        activation: activation of the hidden layers.
        dropout: float, dropout rate after each hidden layer.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Example:

    >>> tower = DenseTower(units=16, hidden=(32,))
    >>> tuple(tower(keras.ops.zeros((2, 64))).shape)
    (2, 16)
    """

    def __init__(
        self, units, hidden=(64,), activation="relu", dropout=0.0, **kwargs
    ):
        super().__init__(units, **kwargs)
        self.hidden = _check_positive_tuple("hidden", hidden)
        dropout = _check_rate("dropout", dropout)
        self.activation = _activation(activation)
        self.dropout = dropout

    def build(self, input_shape):
        self._flatten = keras.layers.Flatten(dtype=self.dtype_policy)
        shape = self._flatten.compute_output_shape(tuple(input_shape))
        if shape[-1] is None:
            raise _unknown_width("DenseTower", input_shape, None)
        self._hidden = []
        for i, width in enumerate(self.hidden):
            dense = keras.layers.Dense(
                width,
                activation=self.activation,
                dtype=self.dtype_policy,
                name=f"hidden_{i}",
            )
            dense.build(shape)
            shape = (shape[0], width)
            self._hidden.append(dense)
        self._dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy
        )
        self._output = keras.layers.Dense(
            self.units, dtype=self.dtype_policy, name="output"
        )
        self._output.build(shape)

    def call(self, inputs, training=None):
        x = self._flatten(ops.cast(inputs, self.compute_dtype))
        for dense in self._hidden:
            x = self._dropout(dense(x), training=training)
        return self._output(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden": self.hidden,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TextTower(Tower):
    """A small 1D-convolutional student for integer token sequences.

    Embedding, dropout, blocks of `Conv1D` + `MaxPooling1D`, flatten (or
    a global pooling), dropout, dense hidden layers and a linear
    `Dense(units)`: the shape of the paper's IMDB students.

    Args:
        units: int, the width of the chunk this tower regresses.
        vocab_size: int, number of token ids (the teacher's vocabulary).
        embedding_dim: int, width of the token embedding.
        filters: tuple of ints, filters of each `Conv1D` block.
        kernel_size: int, the `Conv1D` kernel size.
        pool_size: int, the `MaxPooling1D` pool size.
        hidden: tuple of ints, widths of the dense layers before the output.
        dropout: float, dropout rate after the embedding, the conv stack and
            each hidden layer.
        activation: activation of the hidden layers.
        pooling: how the conv stack's output becomes a vector:
            `"flatten"` (needs a fixed sequence length),
            `"global_average"` or `"global_max"` (any length: the block
            poolings then pad, so a sequence never pools to nothing).
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Raises:
        ValueError: at build, when `pooling="flatten"` meets sequences
            too short for the block poolings (each divides the length by
            `pool_size`) or of unknown (None) length.

    Example:

    >>> tower = TextTower(units=32, vocab_size=100)
    >>> tuple(tower(keras.ops.zeros((2, 50), dtype="int32")).shape)
    (2, 32)
    """

    def __init__(
        self,
        units,
        vocab_size,
        embedding_dim=10,
        filters=(16, 16),
        kernel_size=3,
        pool_size=2,
        hidden=(16,),
        dropout=0.25,
        activation="relu",
        pooling="flatten",
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.pooling = _check_pooling(pooling)
        vocab_size = _check_positive("vocab_size", vocab_size)
        embedding_dim = _check_positive("embedding_dim", embedding_dim)
        kernel_size = _check_positive("kernel_size", kernel_size)
        pool_size = _check_positive("pool_size", pool_size)
        dropout = _check_rate("dropout", dropout)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.filters = _check_positive_tuple("filters", filters)
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.hidden = _check_positive_tuple("hidden", hidden)
        self.dropout = dropout
        self.activation = _activation(activation)

    @property
    def _pool_padding(self):
        # As in ConvTower: under a global pooling any length is welcome.
        return "valid" if self.pooling == "flatten" else "same"

    def _misfit(self, input_shape):
        """Why this tower cannot take `input_shape`, or None if it can.

        Each block's pooling divides the length by `pool_size` (its
        convolution keeps it); the stack fits when every block keeps at
        least one step.

        Args:
            input_shape: the token ids' shape, `(batch, length)`.

        Returns:
            None, or a sentence naming the pooling the sequence is too
            short for.
        """
        length = input_shape[1]
        for i in range(len(self.filters)):
            after = _pooled(length, self.pool_size, self._pool_padding)
            if after is not None and after < 1:
                return (
                    f"its {input_shape[1]} steps are {length} before its "
                    f"layer pool_{i}, too few to pool by {self.pool_size}"
                )
            length = after
        return None

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                "TextTower takes token ids of shape (batch, length). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        reason = self._misfit(input_shape)
        if reason is not None:
            raise ValueError(
                f"TextTower does not fit this input: {reason}. Pass fewer "
                "`filters` (each block pools by `pool_size`), a smaller "
                "`pool_size`, or pooling='global_max'; TeacherClass's "
                "default student fits itself to the input. Received: "
                f"input_shape={tuple(input_shape)}, filters={self.filters}, "
                f"pool_size={self.pool_size}"
            )
        self._embedding = keras.layers.Embedding(
            self.vocab_size,
            self.embedding_dim,
            dtype=self.dtype_policy,
            name="embedding",
        )
        self._embedding.build(input_shape)
        shape = (input_shape[0], input_shape[1], self.embedding_dim)
        self._dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy
        )
        self._blocks = []
        for i, f in enumerate(self.filters):
            conv = keras.layers.Conv1D(
                f,
                self.kernel_size,
                padding="same",
                activation=self.activation,
                dtype=self.dtype_policy,
                name=f"conv_{i}",
            )
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            pool = keras.layers.MaxPooling1D(
                self.pool_size,
                padding=self._pool_padding,
                dtype=self.dtype_policy,
                name=f"pool_{i}",
            )
            shape = pool.compute_output_shape(shape)
            self._blocks.append((conv, pool))
        # Flatten or a global pooling (one attribute name, as in ConvTower).
        self._flatten = _to_vector(self.pooling, 1, self.dtype_policy)
        shape = self._flatten.compute_output_shape(shape)
        if shape[-1] is None:
            raise _unknown_width("TextTower", input_shape, "global_max")
        self._hidden = []
        for i, width in enumerate(self.hidden):
            dense = keras.layers.Dense(
                width,
                activation=self.activation,
                dtype=self.dtype_policy,
                name=f"hidden_{i}",
            )
            dense.build(shape)
            shape = (shape[0], width)
            self._hidden.append(dense)
        self._output = keras.layers.Dense(
            self.units, dtype=self.dtype_policy, name="output"
        )
        self._output.build(shape)

    def call(self, inputs, training=None):
        x = self._dropout(self._embedding(inputs), training=training)
        for conv, pool in self._blocks:
            x = pool(conv(x))
        x = self._dropout(self._flatten(x), training=training)
        for dense in self._hidden:
            x = self._dropout(dense(x), training=training)
        return self._output(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim,
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "pool_size": self.pool_size,
                "hidden": self.hidden,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "pooling": self.pooling,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SegmentationTower(Tower):
    """A small encoder-decoder student for feature-map chunks.

    For teachers whose representation is a feature map at the input's
    resolution (a segmentation network's last decoder features): the
    encoder runs `convs_per_block` 3x3 convolutions per entry of
    `filters`, halving the resolution between entries; the decoder
    doubles it back, joins the encoder's features of the same resolution
    (U-Net skips) and convolves; a linear 1x1 convolution gives `units`
    channels per pixel. Any input size works: an upsampled map is cropped
    to its skip's size.

    Args:
        units: int, the chunk's channels.
        filters: tuple of ints, filters per resolution, finest first.
        kernel_size: int, the convolutions' kernel size.
        convs_per_block: int, convolutions per resolution and side.
        dropout: float, dropout rate before the output convolution.
        activation: activation of the hidden convolutions.
        batch_norm: bool, normalize each hidden convolution's output
            (Keras `BatchNormalization`, its moving statistics updated in
            training) before the activation, as in `ConvTower`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Raises:
        ValueError: if `filters` is empty or holds a non-positive entry,
            or `batch_norm` is not a bool.

    Example:

    >>> tower = SegmentationTower(units=4, filters=(8, 16))
    >>> tuple(tower(keras.ops.zeros((2, 15, 20, 3))).shape)
    (2, 15, 20, 4)
    """

    def __init__(
        self,
        units,
        filters=(16, 32, 64),
        kernel_size=3,
        convs_per_block=1,
        dropout=0.0,
        activation="relu",
        batch_norm=False,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.filters = _check_positive_tuple("filters", filters)
        if not isinstance(batch_norm, bool):
            raise ValueError(
                "`batch_norm` must be True or False. "
                f"Received: batch_norm={batch_norm!r}"
            )
        if not self.filters:
            raise ValueError(
                "`filters` must hold at least one positive integer. "
                f"Received: filters={filters!r}"
            )
        kernel_size = _check_positive("kernel_size", kernel_size)
        convs_per_block = _check_positive("convs_per_block", convs_per_block)
        dropout = _check_rate("dropout", dropout)
        self.kernel_size = kernel_size
        self.convs_per_block = convs_per_block
        self.dropout = dropout
        self.activation = _activation(activation)
        self.batch_norm = batch_norm

    def _conv(self, filters, name, shape):
        """A convolution's layers (with its norm and activation when
        batch-normalized) and its output shape."""
        conv = keras.layers.Conv2D(
            filters,
            self.kernel_size,
            padding="same",
            # With a norm after it, the activation follows the norm and
            # a bias would only duplicate the norm's offset.
            activation=None if self.batch_norm else self.activation,
            use_bias=not self.batch_norm,
            dtype=self.dtype_policy,
            name=name,
        )
        conv.build(shape)
        shape = conv.compute_output_shape(shape)
        if not self.batch_norm:
            return [conv], shape
        norm = keras.layers.BatchNormalization(
            dtype=self.dtype_policy, name=f"{name}_norm"
        )
        norm.build(shape)
        activation = keras.layers.Activation(
            self.activation, dtype=self.dtype_policy, name=f"{name}_act"
        )
        return [conv, norm, activation], shape

    def build(self, input_shape):
        shape = _image_shape(input_shape, "SegmentationTower")
        self._down = []
        for level, f in enumerate(self.filters):
            block = []
            for j in range(self.convs_per_block):
                layers, shape = self._conv(f, f"down_{level}_{j}", shape)
                block.extend(layers)
            self._down.append(block)
        self._up = []
        for level in reversed(range(len(self.filters) - 1)):
            f = self.filters[level]
            # The decoder joins the upsampled map and the skip: f_up + f.
            shape = shape[:3] + (shape[-1] + f,)
            block = []
            for j in range(self.convs_per_block):
                layers, shape = self._conv(f, f"up_{level}_{j}", shape)
                block.extend(layers)
            self._up.append(block)
        self._pool = keras.layers.MaxPooling2D(
            2, padding="same", dtype=self.dtype_policy
        )
        self._upsample = keras.layers.UpSampling2D(2, dtype=self.dtype_policy)
        self._dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy
        )
        self._output = keras.layers.Conv2D(
            self.units, 1, dtype=self.dtype_policy, name="output"
        )
        self._output.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if len(x.shape) == 3:
            x = ops.expand_dims(x, -1)
        x = ops.cast(x, self.compute_dtype)
        skips = []
        for level, block in enumerate(self._down):
            if level:
                x = self._pool(x)
            for layer in block:
                x = layer(x, training=training)
            skips.append(x)
        for block, skip in zip(self._up, reversed(skips[:-1])):
            x = self._upsample(x)
            height, width = ops.shape(skip)[1], ops.shape(skip)[2]
            x = ops.concatenate([x[:, :height, :width, :], skip], axis=-1)
            for layer in block:
                x = layer(x, training=training)
        x = self._dropout(x, training=training)
        return self._output(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "convs_per_block": self.convs_per_block,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "batch_norm": self.batch_norm,
            }
        )
        return config


def _vocab_size(teacher):
    for layer in teacher._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Embedding):
            return layer.input_dim
    raise ValueError(
        "The teacher takes integer inputs but has no Embedding layer to "
        "read the vocabulary size from; pass `student=` explicitly, e.g. "
        "`student=lambda i, units: TextTower(units, vocab_size=...)`."
    )


def _fitting_conv_tower(input_shape):
    """The paper's `ConvTower` if it fits the input, else a smaller one.

    Images smaller than 16x16 take "same" padding, then fewer of the
    paper's convolutions (and so fewer poolings) until the stack fits.
    """
    paper = ConvTower(1)
    if paper._misfit(input_shape) is None:
        return paper
    for count in range(len(paper.filters), 1, -1):
        tower = ConvTower(1, filters=paper.filters[:count], padding="same")
        if tower._misfit(input_shape) is None:
            return tower
    # One convolution and no pooling fits any size.
    return ConvTower(1, filters=paper.filters[:1], padding="same")


def _fitting_text_tower(length, vocab_size):
    """The paper's `TextTower` if it fits the length, else a smaller one.

    Sequences too short for its block poolings take fewer blocks; below
    `pool_size` steps, one block that does not pool. An unknown length
    takes a global max pooling (as keras.io's text classifiers do).
    """
    if length is None:
        return TextTower(1, vocab_size=vocab_size, pooling="global_max")
    paper = TextTower(1, vocab_size=vocab_size)
    for count in range(len(paper.filters), 0, -1):
        tower = TextTower(
            1, vocab_size=vocab_size, filters=paper.filters[:count]
        )
        if tower._misfit((None, length)) is None:
            return tower
    return TextTower(
        1, vocab_size=vocab_size, filters=paper.filters[:1], pool_size=1
    )


def default_tower(teacher, input_spec=None, feature_shape=None):
    """Picks a tower template from the students' input and target.

    Images (rank 3 or 4 float inputs) get `SegmentationTower` when the
    representation is a feature map of the same height and width, else
    `ConvTower`: the paper's MNIST student where it fits (images of at
    least 16x16), else one with "same" padding and, below 4x4, fewer
    convolution blocks, so any image size works; images of unknown
    (None) height or width get one with "same" padding and a global
    average pooling. Integer sequences get `TextTower` (vocabulary read
    from the teacher's `Embedding`), with fewer blocks for short
    sequences and a global max pooling for an unknown length; anything
    else `DenseTower`.

    Args:
        teacher: a built single-input `keras.Model`.
        input_spec: the students' input (a `KerasTensor`); defaults to the
            teacher's input.
        feature_shape: the representation's shape `(batch, ..., d)`, or
            None if unknown.

    Returns:
        A tower template (its `units` is replaced per chunk).

    Example:

    >>> teacher = keras.Sequential([
    ...     keras.Input((8, 8, 3)),
    ...     keras.layers.Conv2D(4, 3, padding="same"),
    ...     keras.layers.Conv2D(2, 1),
    ... ])
    >>> type(default_tower(teacher, feature_shape=(None, 8, 8, 4))).__name__
    'SegmentationTower'
    """
    spec = teacher.inputs[0] if input_spec is None else input_spec
    kind = input_kind(spec, feature_shape)
    if kind == "text":
        return _fitting_text_tower(spec.shape[1], _vocab_size(teacher))
    if kind == "segmentation":
        return SegmentationTower(1)
    if kind == "image":
        if None in tuple(spec.shape[1:3]):
            return ConvTower(1, padding="same", pooling="global_average")
        return _fitting_conv_tower(spec.shape)
    return DenseTower(1)


def input_kind(input_spec, feature_shape=None):
    """What the students' input is, as `default_tower` reads it.

    Token ids are integers of rank 2 `(batch, length)`; any other input of
    rank 3 or 4 (float or integer pixels, e.g. uint8) is an image, whose
    students make a "segmentation" feature map when the representation
    is a map of the image's height and width; the rest is "dense".

    Args:
        input_spec: the students' input (a `KerasTensor`, or anything with
            `shape` and `dtype`).
        feature_shape: the representation's shape `(batch, ..., d)`, or
            None if unknown.

    Returns:
        "text", "segmentation", "image" or "dense".

    Example:

    >>> input_kind(keras.Input((8, 8, 1), dtype="uint8"))
    'image'
    >>> input_kind(keras.Input((8, 8, 1)), feature_shape=(None, 8, 8, 4))
    'segmentation'
    >>> input_kind(keras.Input((20,), dtype="int32"))
    'text'
    """
    shape = tuple(input_spec.shape)
    if "int" in str(input_spec.dtype) and len(shape) == 2:
        # Token ids; integer images (uint8 pixels) fall through.
        return "text"
    if len(shape) in (3, 4):
        if feature_shape is not None and len(feature_shape) == 4:
            if tuple(feature_shape[1:3]) == shape[1:3]:
                return "segmentation"
        return "image"
    return "dense"


def make_tower(
    student, index, units, teacher, input_spec=None, feature_shape=None
):
    """Builds the tower for one chunk from the `student` argument.

    Args:
        student: None (pick from the teacher's input), a `Tower` instance
            (a template: copied with `units` replaced), a `Tower` subclass
            (called as `cls(units)`), or a callable
            `(index, units) -> keras.layers.Layer`.
        index: int, the student's index.
        units: int, its chunk width.
        teacher: the teacher model, to pick a default.
        input_spec: the students' input, to pick a default (see
            `default_tower`).
        feature_shape: the representation's shape, to pick a default.

    Returns:
        An unbuilt `keras.layers.Layer` named `student_{index}`.
    """
    name = f"student_{index}"
    if student is None:
        student = default_tower(teacher, input_spec, feature_shape)
    if isinstance(student, keras.layers.Layer):
        config = student.get_config()
        if "units" not in config:
            raise ValueError(
                "A tower template must take a `units` argument so it can be "
                "resized per chunk; pass a callable `(index, units) -> layer` "
                f"instead. Received: student={student!r}"
            )
        config.update({"units": units, "name": name})
        if callable(getattr(student, "activation", None)):
            # The live function: a function of the user's own does not
            # deserialize unless registered, and a copy needs no saving.
            config["activation"] = student.activation
        return student.__class__.from_config(config)
    if inspect.isclass(student) and issubclass(student, keras.layers.Layer):
        return student(units, name=name)
    if callable(student):
        layer = student(index, units)
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                "`student` must return a keras.layers.Layer. "
                f"Received: student({index}, {units})={layer!r}"
            )
        return layer
    raise TypeError(
        "`student` must be a Tower instance, a Tower class or a callable "
        f"(index, units) -> keras.layers.Layer. Received: student={student!r}"
    )


def make_students(student, chunks, teacher, inputs, feature_shape):
    """Builds one tower per chunk and checks each one's output shape.

    Args:
        student: a list with one `keras.layers.Layer` per chunk, or what
            `make_tower` takes.
        chunks: tuple of chunk widths.
        teacher: the teacher model, to pick a default tower.
        inputs: the students' input (a `KerasTensor`).
        feature_shape: the representation's shape `(batch, ..., d)`.

    Returns:
        The list of towers, called once on `inputs`.

    Raises:
        ValueError: on a list of the wrong length or holding non-layers,
            one layer given (or made) for two students, or a tower whose
            output is not its chunk's shape (in its width, or in its
            positions: a representation at another resolution).
    """
    n = len(chunks)
    if isinstance(student, (list, tuple)):
        if len(student) != n or not all(
            isinstance(s, keras.layers.Layer) for s in student
        ):
            raise ValueError(
                f"A list of students must hold {n} layers, one per "
                f"chunk. Received: student={student!r}"
            )
        layers = list(student)
    else:
        layers = [
            make_tower(
                student,
                i,
                width,
                teacher,
                input_spec=inputs,
                feature_shape=feature_shape,
            )
            for i, width in enumerate(chunks)
        ]
    first = {}
    for i, tower in enumerate(layers):
        j = first.setdefault(id(tower), i)
        if j != i:
            # One layer twice would be one student with two chunks: its
            # weights shared, every chunk regressed by the same output.
            raise ValueError(
                f"Each student needs its own layer: students {j} and {i} "
                "are the same layer object. Build one per chunk (or pass "
                "a tower class or `(index, units) -> layer` that makes a "
                f"new one each call). Received: student {i}={tower!r}"
            )
    for i, (tower, width) in enumerate(zip(layers, chunks)):
        expected = tuple(feature_shape[1:-1]) + (width,)
        got = tuple(tower(inputs).shape[1:])
        if got != expected:
            raise ValueError(_shape_mismatch(i, tower, got, expected, inputs))
    return layers


def _positions(shape):
    return "x".join(str(s) for s in shape)


def _shape_mismatch(i, tower, got, expected, inputs):
    """The message for student `i` whose output is not its chunk's shape."""
    head = f"Student {i} outputs shape {got} but its chunk has shape {expected}"
    received = f"Received: student {i}={tower!r}"
    if got[:-1] == expected[:-1]:
        return (
            f"{head}: a tower must end with `units` equal to its chunk "
            f"width. {received}"
        )
    # Positions differ: no `units` fixes that.
    hint = ""
    if len(expected) > 1:
        rep = f"a feature map of {_positions(expected[:-1])} positions"
        space = tuple(inputs.shape[1:-1])
        if len(space) == len(expected) - 1 and space != expected[:-1]:
            rep += f", not the students' input's {_positions(space)}"
            hint = " No built-in tower changes resolution;"
        elif space == expected[:-1]:
            hint = " `SegmentationTower` keeps the input's positions;"
    else:
        rep = "a vector, with no positions"
    advice = (
        "pass `student=` a tower (a layer per chunk, or `(index, units) "
        "-> layer`) whose output matches the chunk's shape."
    )
    advice = f"{hint} {advice}" if hint else f" P{advice[1:]}"
    return (
        f"{head}: the representation is {rep}, so the mismatch is in the "
        f"spatial axes, not in `units`.{advice} {received}"
    )
