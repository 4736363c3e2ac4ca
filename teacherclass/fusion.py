"""Fused composed inference: n student towers run as one computation.

A composed model runs its n towers one after another, then concatenates
their outputs. Towers of one architecture (`ConvTower`, `DenseTower` or
`TextTower` templates that differ only in `units`) can run as one
computation instead, with the same result:

- the first layer with weights reads the same input in every tower, so it
  becomes one layer whose kernel is the towers' kernels concatenated along
  the output axis (exact: each output channel is computed as before);
- later layers read each tower's own channels. A mode says how they run:
  "concat" keeps one layer per tower on its slice of the channels;
  "grouped" runs each kind of layer once as a grouped convolution
  (`Conv2D(groups=n)`; a dense layer is a grouped convolution whose kernel
  covers the whole map, or a 1x1 one on a vector); "einsum" keeps one
  convolution per tower and runs dense layers as one batched dense
  (`BatchedDense`, an einsum over stacked kernels);
- pooling, dropout and activations are per channel, so they run once on
  the joined channels;
- a batch-normalized `ConvTower` (`batch_norm=True`) has each norm folded
  into its convolution (a scaled kernel and a bias, from the moving
  statistics): the fused model computes what the composed one computes at
  inference, and is for inference (train the unfused model).

Which mode is fastest depends on the device and the batch size (on a
2-core CPU a grouped convolution beat separate ones at batch 1 and lost
at batch 64), so `fuse(model, mode="auto")` times "concat", "grouped"
and the unfused model on the current device and keeps the fastest,
recording the timings in `model.fusion` ("einsum" is left out of the
timing, `AUTO_MODES`: its int8 LiteRT export is inaccurate, see below).

The fused model saves with `safe_mode=True` loading and exports to LiteRT
through `teacherclass.export`. For int8 LiteRT, fuse with "grouped" or
"concat": LiteRT's int8 `BATCH_MATMUL`, which "einsum" becomes, loses
much of its accuracy.

Towers of different architectures, other tower classes or custom
callables, and towers whose outputs feed anything but one concatenation
are left unfused, with the reason recorded.
"""

import dataclasses
import math
import statistics

import keras
import numpy as np
from keras import ops

from teacherclass import latency
from teacherclass import teacher as teacher_lib
from teacherclass import towers as towers_lib
from teacherclass import validation

_PACKAGE = "teacherclass"

MODES = ("auto", "none", "concat", "grouped", "einsum")
FUSED_MODES = ("concat", "grouped", "einsum")
# What "auto" chooses from: "einsum" is exact in Keras but LiteRT's int8
# BATCH_MATMUL is not (tests/test_fusion.py), so a model "auto" returns
# always exports to int8 as accurately as the unfused one.
AUTO_MODES = ("concat", "grouped")
# Names, not classes: this module may be imported while `towers` is still
# importing (`import teacherclass.towers` before Keras registers the
# package's layers from inside `towers`' own `import keras`).
SUPPORTED_TOWERS = ("ConvTower", "DenseTower", "TextTower")


def _supported(layer):
    return any(
        type(layer) is getattr(towers_lib, name) for name in SUPPORTED_TOWERS
    )


# Config keys that may differ between the towers of one fused group.
_PER_TOWER_KEYS = ("name", "units", "trainable")


def check_mode(mode, modes=MODES, name="mode"):
    """Raises ValueError naming `name` unless `mode` is one of `modes`."""
    if mode not in modes:
        raise ValueError(
            f"`{name}` must be one of {modes}. Received: {name}={mode!r}"
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchedDense(keras.layers.Layer):
    """`groups` dense layers side by side, as one einsum.

    Maps `(batch, groups, k)` to `(batch, groups, units)`: group `g` is
    multiplied by its own `(k, units)` kernel. One call replaces `groups`
    separate `Dense` layers of the same shape.

    Args:
        groups: int, the number of dense layers.
        units: int, the output width of each.
        activation: activation applied to the output.
        use_bias: bool, whether each dense layer has a bias.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Example:

    >>> layer = BatchedDense(groups=3, units=2)
    >>> tuple(layer(keras.ops.ones((4, 3, 5))).shape)
    (4, 3, 2)
    """

    def __init__(self, groups, units, activation=None, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        groups = towers_lib._check_positive("groups", groups)
        units = towers_lib._check_positive("units", units)
        self.groups = groups
        self.units = units
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] != self.groups:
            raise ValueError(
                f"BatchedDense takes inputs of shape (batch, {self.groups}, "
                f"k). Received: input_shape={tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            shape=(self.groups, input_shape[-1], self.units),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.groups, self.units),
                initializer="zeros",
                name="bias",
            )

    def call(self, inputs):
        x = ops.einsum("bgk,gku->bgu", inputs, self.kernel)
        if self.bias is not None:
            x = x + self.bias
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.groups, self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "groups": self.groups,
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
            }
        )
        return config


# ----------------------------------------------------------------------
# A tower as a list of steps
# ----------------------------------------------------------------------


def _steps(template):
    """The computation of a tower template, as a list of steps.

    Steps with weights ("conv", "dense", "output", "embedding") come in
    the order of `_weighted_layers`.
    """
    t = template
    if isinstance(t, towers_lib.ConvTower):
        steps = [("image",)]
        for i, f in enumerate(t.filters):
            steps.append(("conv", 2, f, t.kernel_size, t.padding, t.activation))
            if (i + 1) % t.convs_per_block == 0:
                steps.append(("pool", 2, 2))
        steps += [("dropout", t.dropout), ("flatten",)]
        if t.bottleneck:
            steps += [
                ("dense", t.bottleneck, t.activation),
                ("dropout", t.dropout),
            ]
        return steps + [("output",)]
    if isinstance(t, towers_lib.DenseTower):
        steps = [("cast",), ("flatten",)]
        for width in t.hidden:
            steps += [("dense", width, t.activation), ("dropout", t.dropout)]
        return steps + [("output",)]
    # TextTower
    steps = [
        ("embedding", t.vocab_size, t.embedding_dim),
        ("dropout", t.dropout),
    ]
    for f in t.filters:
        steps += [
            ("conv", 1, f, t.kernel_size, "same", t.activation),
            ("pool", 1, t.pool_size),
        ]
    steps += [("flatten",), ("dropout", t.dropout)]
    for width in t.hidden:
        steps += [("dense", width, t.activation), ("dropout", t.dropout)]
    return steps + [("output",)]


def _weighted_layers(tower):
    """A built tower's layers with weights, in the order of `_steps`.

    A convolution followed by batch normalization comes with the norm
    folded in (`_FoldedNorm`).
    """
    if isinstance(tower, towers_lib.ConvTower):
        convs = [
            conv if norm is None else _FoldedNorm(conv, norm)
            for conv, norm in zip(tower._convs, tower._norms)
        ]
        bottleneck = [tower._bottleneck] if tower._bottleneck else []
        return [*convs, *bottleneck, tower._output]
    if isinstance(tower, towers_lib.DenseTower):
        return [*tower._hidden, tower._output]
    return [
        tower._embedding,
        *(conv for conv, _ in tower._blocks),
        *tower._hidden,
        tower._output,
    ]


class _FoldedNorm:
    """A convolution and the batch normalization after it, as one
    convolution with a bias: the weights inference computes with.

    `norm(conv(x))` with the norm's moving statistics is
    `conv(x) * scale + (bias - mean) * scale + beta`, `scale = gamma /
    sqrt(variance + epsilon)`: a kernel scaled per output channel and a
    bias. So a fused batch-normalized tower computes what the tower
    computes at inference (`training=False`); it does not train its
    norms.
    """

    def __init__(self, conv, norm):
        kernel = ops.convert_to_numpy(conv.kernel).astype("float32")
        channels = kernel.shape[-1]
        bias = np.zeros(channels, "float32")
        if conv.use_bias:
            bias = ops.convert_to_numpy(conv.bias).astype("float32")

        def value(variable, default):
            if variable is None:
                return np.full(channels, default, "float32")
            return ops.convert_to_numpy(variable).astype("float32")

        gamma, beta = value(norm.gamma, 1.0), value(norm.beta, 0.0)
        mean = value(norm.moving_mean, 0.0)
        variance = value(norm.moving_variance, 1.0)
        scale = gamma / np.sqrt(variance + norm.epsilon)
        self.weights = [kernel * scale, (bias - mean) * scale + beta]

    def get_weights(self):
        return list(self.weights)


class _Step:
    """One step of a fused computation: its kind, layers and shapes.

    A plain object (not tracked by Keras): the layers it names are also in
    `FusedTowers._fused_layers`, which is what saves them.
    """

    def __init__(self, kind, layers=(), **info):
        self.kind = kind
        self.layers = list(layers)
        self.__dict__.update(info)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FusedTowers(keras.layers.Layer):
    """n towers of one architecture as one computation.

    Its output equals the towers' outputs concatenated in order. Build one
    from trained towers with `FusedTowers.from_towers`; `fuse` puts it in
    a composed model. The first layer with weights is one layer with the
    towers' kernels concatenated; later layers run as `mode` says (see the
    module's docstring); pooling, dropout and activations run once on the
    joined channels.

    Args:
        tower: dict, one of the towers serialized with
            `keras.saving.serialize_keras_object` (its `units` and `name`
            are ignored): the architecture every tower shares.
        units: list of ints, each tower's output width, in output order.
        mode: "concat", "grouped" or "einsum".
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `tower` is not a serialized tower (a dict).
        ValueError: if `tower` is not one of `SUPPORTED_TOWERS`, `units`
            holds fewer than 2 positive integers, or `mode` is unknown.

    Example:

    >>> towers = [towers_lib.DenseTower(u, hidden=(8,)) for u in (3, 5)]
    >>> x = keras.ops.ones((2, 4))
    >>> joined = keras.ops.concatenate([t(x) for t in towers], axis=-1)
    >>> fused = FusedTowers.from_towers(towers, mode="einsum")
    >>> tuple(fused(x).shape)
    (2, 8)
    >>> bool(np.allclose(fused(x), joined, atol=1e-6))
    True
    """

    def __init__(self, tower, units, mode="grouped", **kwargs):
        super().__init__(**kwargs)
        check_mode(mode, FUSED_MODES)
        units = towers_lib._check_positive_tuple("units", units)
        if len(units) < 2:
            raise ValueError(
                "FusedTowers joins at least 2 towers. "
                f"Received: units={list(units)!r}"
            )
        if not isinstance(tower, dict):
            # A tower instance would fail inside Keras' deserialization
            # with "Could not parse config".
            raise TypeError(
                "`tower` must be a tower serialized with "
                "`keras.saving.serialize_keras_object` (a dict), e.g. "
                "`FusedTowers(keras.saving.serialize_keras_object(tower), "
                "units)`, or use `FusedTowers.from_towers(towers)`. "
                f"Received: tower={tower!r}"
            )
        template = keras.saving.deserialize_keras_object(tower)
        if not _supported(template):
            names = list(SUPPORTED_TOWERS)
            raise ValueError(
                f"`tower` must be one of {names}. "
                f"Received: tower of class {type(template).__name__}"
            )
        self.tower = tower
        self.units = list(units)
        self.mode = mode
        # The steps, not the template: a layer stored on `self` would be
        # tracked (and saved) as a sublayer.
        self._tower_steps = _Step("plan", steps=_steps(template))

    @classmethod
    def from_towers(cls, towers, mode="grouped", name="fused_students"):
        """Builds the fused layer of built towers and copies their weights.

        Args:
            towers: the built towers, in output order (see
                `compatible_towers`).
            mode: "concat", "grouped" or "einsum".
            name: the layer's name.

        Returns:
            A built `FusedTowers` whose output equals the towers'
            outputs concatenated.

        Raises:
            ValueError: if the towers cannot be fused (the message says
                why), or `mode` is unknown.
        """
        check_mode(mode, FUSED_MODES)
        reason = incompatibility(towers)
        if reason:
            raise ValueError(f"{reason}. Received: towers={list(towers)!r}")
        shape = towers[0].get_build_config()["input_shape"]
        layer = cls(
            keras.saving.serialize_keras_object(towers[0]),
            [t.units for t in towers],
            mode=mode,
            name=name,
            dtype=towers[0].dtype_policy,
        )
        layer.build(shape)
        layer.set_tower_weights(towers)
        return layer

    # -- building ------------------------------------------------------

    def _layer(self, cls, *args, **kwargs):
        layer = cls(*args, dtype=self.dtype_policy, **kwargs)
        self._fused_layers.append(layer)
        return layer

    def build(self, input_shape):
        n = len(self.units)
        self._fused_layers = []
        steps = []
        # `shape`: per-tower shape without the batch axis; `joined`: whether
        # the channels are already the towers' own (after the first layer
        # with weights); `flat`: a joined map awaiting its flatten.
        shape = tuple(input_shape[1:])
        joined = False
        flat = False
        index = 0
        for step in self._tower_steps.steps:
            kind = step[0]
            name = f"{kind}_{index}"
            if kind == "image":
                expand = len(shape) == 2
                if expand:
                    shape = shape + (1,)
                steps.append(_Step("image", expand=expand))
            elif kind == "cast":
                steps.append(_Step("cast"))
            elif kind == "embedding":
                _, vocab, width = step
                emb = self._layer(
                    keras.layers.Embedding, vocab, n * width, name=name
                )
                emb.build((None, *shape))
                steps.append(_Step("joint", [emb]))
                shape, joined = shape + (width,), True
            elif kind == "conv":
                _, rank, f, k, padding, activation = step
                conv_cls = (
                    keras.layers.Conv2D if rank == 2 else keras.layers.Conv1D
                )
                if not joined:
                    conv = self._layer(
                        conv_cls,
                        n * f,
                        k,
                        padding=padding,
                        activation=activation,
                        name=name,
                    )
                    conv.build((None, *shape))
                    steps.append(_Step("joint", [conv]))
                elif self.mode == "grouped":
                    conv = self._layer(
                        conv_cls,
                        n * f,
                        k,
                        padding=padding,
                        activation=activation,
                        groups=n,
                        name=name,
                    )
                    conv.build((None, *shape[:-1], n * shape[-1]))
                    steps.append(_Step("joint", [conv]))
                else:
                    convs = []
                    for i in range(n):
                        conv = self._layer(
                            conv_cls,
                            f,
                            k,
                            padding=padding,
                            activation=activation,
                            name=f"{name}_{i}",
                        )
                        conv.build((None, *shape))
                        convs.append(conv)
                    steps.append(_Step("split", convs, width=shape[-1]))
                probe = conv_cls(f, k, padding=padding)
                shape = tuple(probe.compute_output_shape((None, *shape))[1:])
                joined = True
            elif kind == "pool":
                _, rank, size = step
                pool_cls = (
                    keras.layers.MaxPooling2D
                    if rank == 2
                    else keras.layers.MaxPooling1D
                )
                pool = self._layer(pool_cls, size, name=name)
                steps.append(_Step("joint", [pool]))
                shape = tuple(pool.compute_output_shape((None, *shape))[1:])
            elif kind == "dropout":
                drop = self._layer(keras.layers.Dropout, step[1], name=name)
                steps.append(_Step("dropout", [drop]))
            elif kind == "flatten":
                if joined:
                    flat = True  # done by the next dense step, per tower
                else:
                    steps.append(_Step("flatten"))
                    shape = (math.prod(shape),)
            else:  # "dense" or "output"
                last = kind == "output"
                widths = self.units if last else [step[1]] * n
                activation = None if last else step[2]
                steps.append(
                    self._dense_step(
                        shape, joined, flat, widths, activation, name
                    )
                )
                shape, joined, flat = (max(widths),), True, False
            index += 1
        self._steps = steps

    def _dense_step(self, shape, joined, flat, widths, activation, name):
        """Builds one dense layer of every tower, as the mode says."""
        n = len(widths)
        if not joined:
            dense = self._layer(
                keras.layers.Dense,
                sum(widths),
                activation=activation,
                name=name,
            )
            dense.build((None, *shape))
            return _Step("joint", [dense])
        k = math.prod(shape)
        wide = max(widths)
        # Uneven output widths run padded to the widest; `take` then keeps
        # each tower's own columns.
        keep = None
        if len(set(widths)) > 1 and self.mode != "concat":
            keep = [
                g * wide + j for g, u in enumerate(widths) for j in range(u)
            ]
        if self.mode == "concat":
            denses = []
            for i, width in enumerate(widths):
                dense = self._layer(
                    keras.layers.Dense,
                    width,
                    activation=activation,
                    name=f"{name}_{i}",
                )
                dense.build((None, k))
                denses.append(dense)
            return _Step("split_dense", denses, shape=shape, flat=flat)
        if self.mode == "grouped":
            spatial = shape[:-1] if flat else ()
            channels = shape[-1] if flat else k
            if len(spatial) == 1:
                conv_cls, kernel = keras.layers.Conv1D, spatial
                map_shape = (*spatial, n * channels)
            else:
                conv_cls = keras.layers.Conv2D
                kernel = spatial if spatial else (1, 1)
                map_shape = (*(spatial or (1, 1)), n * channels)
            conv = self._layer(
                conv_cls,
                n * wide,
                kernel,
                activation=activation,
                groups=n,
                name=name,
            )
            conv.build((None, *map_shape))
            return _Step(
                "grouped_dense",
                [conv],
                map_shape=map_shape,
                out=n * wide,
                keep=keep,
                kernel_shape=(*kernel, channels),
            )
        dense = self._layer(
            BatchedDense, n, wide, activation=activation, name=name
        )
        dense.build((None, n, k))
        return _Step(
            "batched_dense",
            [dense],
            shape=shape,
            flat=flat,
            k=k,
            out=n * wide,
            keep=keep,
        )

    # -- weights -------------------------------------------------------

    def set_tower_weights(self, towers):
        """Copies the weights of `towers` (in output order) into this layer.

        An unbuilt layer is first built on the towers' input shape.

        Args:
            towers: built towers of this layer's architecture (`tower`),
                with this layer's `units` in order, built on its input
                shape.

        Raises:
            ValueError: if the towers' units differ from `units` (another
                order included), the towers cannot be fused, their
                architecture is not `tower`'s, or they were built on
                another input shape than this layer.
        """
        towers = list(towers)
        units = [getattr(t, "units", None) for t in towers]
        if units != self.units:
            raise ValueError(
                f"`towers` must have this layer's units {self.units}, in "
                f"output order. Received: towers with units={units}"
            )
        reason = incompatibility(towers)
        if reason:
            raise ValueError(f"{reason}. Received: towers={towers!r}")
        template = keras.saving.deserialize_keras_object(self.tower)
        if type(towers[0]) is not type(template) or _shared_config(
            towers[0]
        ) != _shared_config(template):
            raise ValueError(
                "`towers` must have this layer's architecture `tower` "
                f"(equal configs but for {list(_PER_TOWER_KEYS)}). "
                f"Received: towers with config "
                f"{_shared_config(towers[0])}, tower={_shared_config(template)}"
            )
        shape = tuple(towers[0].get_build_config()["input_shape"])
        if not self.built:
            self.build(shape)
        built = tuple(self.get_build_config()["input_shape"])
        if built[1:] != shape[1:]:
            raise ValueError(
                "`towers` must be built on this layer's input shape "
                f"{built}. Received: towers built on input_shape={shape}"
            )
        per_tower = [_weighted_layers(t) for t in towers]
        index = 0
        for step in self._steps:
            if step.kind in ("image", "cast", "flatten", "dropout"):
                continue
            if step.kind == "joint" and not step.layers[0].weights:
                continue  # pooling
            sources = [layers[index] for layers in per_tower]
            index += 1
            kernels = [ops.convert_to_numpy(s.weights[0]) for s in sources]
            biases = [
                ops.convert_to_numpy(s.weights[1])
                for s in sources
                if len(s.weights) > 1
            ]
            if step.kind in ("split", "split_dense"):
                for layer, source in zip(step.layers, sources):
                    layer.set_weights(source.get_weights())
            elif step.kind == "joint":
                values = [np.concatenate(kernels, axis=-1)]
                if biases:
                    values.append(np.concatenate(biases, axis=-1))
                step.layers[0].set_weights(values)
            else:
                wide = step.out // len(sources)
                pad = [wide - k.shape[-1] for k in kernels]
                kernels = [
                    np.pad(k, [(0, 0)] * (k.ndim - 1) + [(0, p)])
                    for k, p in zip(kernels, pad)
                ]
                biases = [np.pad(b, (0, p)) for b, p in zip(biases, pad)]
                if step.kind == "grouped_dense":
                    kernel = np.concatenate(
                        [k.reshape(*step.kernel_shape, wide) for k in kernels],
                        axis=-1,
                    )
                    step.layers[0].set_weights([kernel, np.concatenate(biases)])
                else:
                    step.layers[0].set_weights(
                        [np.stack(kernels), np.stack(biases)]
                    )

    # -- calling -------------------------------------------------------

    def _per_tower_flat(self, x, shape, flat, n):
        """(batch, n, k): each tower's vector, flattened in its own order."""
        if not flat:
            return ops.reshape(x, (-1, n, math.prod(shape)))
        positions = math.prod(shape[:-1])
        x = ops.reshape(x, (-1, positions, n, shape[-1]))
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, n, positions * shape[-1]))

    def call(self, inputs, training=None):
        x = inputs
        n = len(self.units)
        for step in self._steps:
            kind = step.kind
            if kind == "image":
                if step.expand:
                    x = ops.expand_dims(x, -1)
                x = ops.cast(x, self.compute_dtype)
            elif kind == "cast":
                x = ops.cast(x, self.compute_dtype)
            elif kind == "flatten":
                x = ops.reshape(x, (-1, math.prod(x.shape[1:])))
            elif kind == "dropout":
                x = step.layers[0](x, training=training)
            elif kind == "joint":
                x = step.layers[0](x)
            elif kind == "split":
                w = step.width
                x = ops.concatenate(
                    [
                        layer(x[..., i * w : (i + 1) * w])
                        for i, layer in enumerate(step.layers)
                    ],
                    axis=-1,
                )
            elif kind == "split_dense":
                parts = self._per_tower_flat(x, step.shape, step.flat, n)
                x = ops.concatenate(
                    [
                        layer(parts[:, i, :])
                        for i, layer in enumerate(step.layers)
                    ],
                    axis=-1,
                )
            elif kind == "grouped_dense":
                x = step.layers[0](ops.reshape(x, (-1, *step.map_shape)))
                x = ops.reshape(x, (-1, step.out))
            else:  # batched_dense
                parts = self._per_tower_flat(x, step.shape, step.flat, n)
                x = ops.reshape(step.layers[0](parts), (-1, step.out))
            keep = getattr(step, "keep", None)
            if keep is not None:
                x = ops.take(x, keep, axis=1)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], sum(self.units))

    def get_config(self):
        config = super().get_config()
        config.update(
            {"tower": self.tower, "units": self.units, "mode": self.mode}
        )
        return config


def _shared_config(tower):
    """A tower's config without the keys that may differ within a group."""
    config = tower.get_config()
    return {k: v for k, v in config.items() if k not in _PER_TOWER_KEYS}


def incompatibility(towers):
    """Why `towers` cannot be fused, or "" when they can.

    They can when there are at least two, all built on the same input
    shape, of one class in `SUPPORTED_TOWERS`, with equal configurations
    but for `units`, `name` and `trainable` (ignored: the fused layer is
    for inference), and, for towers that have a `pooling` argument
    (`TextTower`), `pooling="flatten"` (the fused steps flatten the
    convolutions' map).

    Args:
        towers: a list of layers.

    Returns:
        A string: the reason, or "" if the towers can be fused.

    Example:

    >>> incompatibility([towers_lib.DenseTower(4)])
    'fewer than 2 towers'
    """
    towers = list(towers)
    if len(towers) < 2:
        return "fewer than 2 towers"
    classes = sorted({type(t).__name__ for t in towers})
    if len(classes) > 1:
        return f"towers of different classes {classes}"
    if not _supported(towers[0]):
        names = list(SUPPORTED_TOWERS)
        return f"{classes[0]} is not one of the fusable towers {names}"

    first = _shared_config(towers[0])
    if any(_shared_config(t) != first for t in towers[1:]):
        return "towers of different architectures (configs differ)"
    pooling = getattr(towers[0], "pooling", "flatten")
    if pooling != "flatten":
        # The fused steps flatten the conv stack's map.
        return f"towers with pooling={pooling!r} (fusion flattens)"
    if not all(t.built for t in towers):
        return "towers not built"
    shapes = {tuple(t.get_build_config()["input_shape"]) for t in towers}
    if len(shapes) > 1:
        return f"towers built on different input shapes {sorted(shapes)}"
    return ""


# ----------------------------------------------------------------------
# Fusing a composed model
# ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FusionInfo:
    """What `fuse` did, attached to the model it returns as `.fusion`.

    Attributes:
        mode: the mode the model runs in: "none" (unfused), "concat",
            "grouped" or "einsum" ("mixed" for a model fused before whose
            groups run in different modes).
        requested: the `mode` asked for ("auto" included).
        reason: why this mode: the measurement, or why fusion was not
            possible.
        latency_ms: `{mode: {batch_size: milliseconds}}` measured by
            "auto" on this device (empty otherwise).
        groups: the number of fused groups of towers.
    """

    mode: str
    requested: str
    reason: str
    latency_ms: dict = dataclasses.field(default_factory=dict)
    groups: int = 0

    def as_dict(self):
        """The info as a JSON-ready dict."""
        return dataclasses.asdict(self)


class _Unfusable(Exception):
    pass


class _TowerOutput:
    """Stands for a tower's output until the concatenation that takes it."""

    def __init__(self, tower, inputs, kwargs):
        self.tower = tower
        self.inputs = inputs
        self.kwargs = kwargs


def _contains_tower_output(args):
    return any(
        isinstance(x, _TowerOutput) for x in keras.tree.flatten(list(args))
    )


def _holds_towers(layer):
    """Whether `layer` is a model with fusable towers inside (at any
    depth)."""
    return isinstance(layer, keras.Model) and any(
        _supported(inner) or _holds_towers(inner)
        for inner in getattr(layer, "layers", ())
    )


def _fused_layers(model):
    """The `FusedTowers` layers of `model` and of the models inside it."""
    found = []
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, FusedTowers):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += _fused_layers(layer)
    return found


def _tower_classes(model):
    """The class names of the towers in `model` and the models inside."""
    found = set()
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, towers_lib.Tower):
            found.add(type(layer).__name__)
        elif isinstance(layer, keras.Model):
            found |= _tower_classes(layer)
    return found


def _fused_clone(model, mode, groups=None, notes=None):
    """An uncompiled copy of `model` (sharing its other layers) with towers
    fused, inside the functional models it nests too.

    A nested model whose towers cannot be fused is kept as it is; why is
    added to `notes`.

    Returns:
        `(model, groups, notes)`, or raises `_Unfusable` with the reason
        (for `model` itself, or when no group was fused anywhere).
    """
    top = groups is None
    groups = [] if top else groups
    notes = [] if notes is None else notes

    def clone(layer):
        if not _holds_towers(layer):
            return layer
        before = len(groups)
        try:
            return _fused_clone(layer, mode, groups, notes)[0]
        except _Unfusable as e:
            del groups[before:]  # fused in the copy that is dropped
            notes.append(
                f"the towers sit inside nested model {layer.name!r}, which "
                f"could not be fused: {e}"
            )
            return layer

    def call(layer, *args, **kwargs):
        if _supported(layer):
            extra = {k: v for k, v in kwargs.items() if k != "training"}
            if len(args) != 1 or extra:
                raise _Unfusable(f"tower {layer.name} takes extra arguments")
            return _TowerOutput(layer, args[0], kwargs)
        if not _contains_tower_output(args) and not _contains_tower_output(
            kwargs.values()
        ):
            return layer(*args, **kwargs)
        parts = args[0] if len(args) == 1 else None
        if (
            not isinstance(layer, keras.layers.Concatenate)
            or not isinstance(parts, (list, tuple))
            or not all(isinstance(p, _TowerOutput) for p in parts)
        ):
            raise _Unfusable(
                f"a tower's output feeds {layer.name} "
                f"({type(layer).__name__}), not only one concatenation "
                "of towers"
            )
        if layer.axis not in (-1, 1):  # tower outputs are (batch, units)
            raise _Unfusable(f"{layer.name} does not join the last axis")
        if any(p.inputs is not parts[0].inputs for p in parts):
            raise _Unfusable("the towers read different inputs")
        if any(p.kwargs != parts[0].kwargs for p in parts):
            raise _Unfusable("the towers are called differently")
        towers = [p.tower for p in parts]
        reason = incompatibility(towers)
        if reason:
            raise _Unfusable(reason)
        name = (
            "fused_students" if not groups else f"fused_students_{len(groups)}"
        )
        fused = FusedTowers.from_towers(towers, mode=mode, name=name)
        groups.append(fused)
        return fused(parts[0].inputs, **parts[0].kwargs)

    try:
        if any(
            _supported(teacher_lib.producer(t))
            for t in keras.tree.flatten(model.output)
        ):
            raise _Unfusable(
                f"a tower's output is an output of model {model.name!r}, "
                "not joined there by one concatenation of towers"
            )
        # An uncompiled view of the same graph: `clone_model` recompiles a
        # compiled model from its compile config, which fails for a loss
        # or metric Keras cannot deserialize (a plain function, a lambda).
        # `fuse` compiles the copy itself (`_compile_like`).
        view = _view(model)
        clone = keras.models.clone_model(
            view, clone_function=clone, call_function=call
        )
    except _Unfusable:
        raise
    except Exception as e:  # a graph clone_model cannot replay
        raise _Unfusable(f"the model could not be rebuilt: {e}") from e
    if top and not groups:
        if notes:
            raise _Unfusable("; ".join(notes))
        found = sorted(_tower_classes(model))
        if found:
            raise _Unfusable(f"no fusable towers (found {found})")
        raise _Unfusable("no student towers in the model")
    return clone, len(groups), notes


def _view(model):
    """A new, uncompiled model on `model`'s graph, of `model`'s own class
    where it is built like a functional model (as `clone_model` keeps the
    class: a subclass's own `compute_loss` or `train_step` stays)."""
    cls = type(model)
    try:
        # The test `clone_model` applies: a constructor taking
        # `(inputs, outputs, name=...)` as `keras.Model` does.
        from keras.src.models.functional import functional_like_constructor

        like = functional_like_constructor(cls)
    except ImportError:  # moved in another Keras: the plain class
        like = False
    if like:
        try:
            return cls(model.input, model.output, name=model.name)
        except Exception:  # a constructor that wants more: the plain class
            pass
    return keras.Model(model.input, model.output, name=model.name)


def _with_info(model, info):
    model.fusion = info
    return model


def _compile_like(clone, model):
    """Compiles `clone` as `model` is compiled.

    Returns:
        "" when it is (or `model` is not compiled), else a note for the
        fusion record: why `clone` was left uncompiled, or which metric
        objects it shares with `model` (they do not copy).
    """
    if not getattr(model, "compiled", False):
        return ""
    shared = []
    # The compile arguments as they were passed. Keras keeps them only in
    # the private `_compile_config`: `get_compile_config` serializes them,
    # and an unregistered function (a plain function, a lambda) does not
    # deserialize from there.
    passed = getattr(getattr(model, "_compile_config", None), "config", {})
    kwargs = {}
    try:
        for key, value in model.get_compile_config().items():
            try:
                kwargs[key] = keras.saving.deserialize_keras_object(value)
            except Exception:
                if key not in passed:
                    raise
                kwargs[key] = _fresh(passed[key], shared)
        clone.compile(**kwargs)
        if clone.built and clone.optimizer is not None:
            # As `compile_from_config` does: the optimizer's slots exist.
            clone.optimizer.build(clone.trainable_variables)
    except Exception as e:
        return f"; left uncompiled: its compile settings do not copy ({e})"
    if shared:
        return (
            "; shares the metric object(s) "
            f"{', '.join(repr(n) for n in shared)} with the model (they do "
            "not copy: a MeanMetricWrapper of an unregistered function, or "
            "a get_config that leaves out an argument)"
        )
    return ""


def _fresh(value, shared):
    """A compile argument as passed, with each Keras object in it copied
    and its functions and strings kept.

    A metric holds its running state and an optimizer its model's slots,
    so the fused model must not share them with `model`; a function holds
    no state. A loss holds none either: one that does not copy (it wraps
    an unregistered function) is kept. So is a metric that does not copy,
    its name appended to `shared` (the fused model then shares its
    running state: better than leaving the model uncompiled).
    """
    if isinstance(value, dict):
        return {key: _fresh(v, shared) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(v, shared) for v in value)
    if isinstance(value, keras.optimizers.Optimizer):
        return type(value).from_config(value.get_config())
    if isinstance(value, keras.metrics.Metric):
        try:
            return type(value).from_config(value.get_config())
        except Exception:
            shared.append(value.name)
            return value
    if isinstance(value, keras.losses.Loss):
        try:
            return type(value).from_config(value.get_config())
        except Exception:
            return value
    return value


def _max_error(a, b):
    a, b = keras.tree.flatten(a), keras.tree.flatten(b)
    return max(
        float(np.max(np.abs(np.asarray(x, "float64") - np.asarray(y))))
        for x, y in zip(a, b)
    )


def _tolerance(model, reference):
    scale = max(
        1.0, *(float(np.max(np.abs(r))) for r in keras.tree.flatten(reference))
    )
    low = any(
        "16" in str(getattr(layer, "compute_dtype", ""))
        for layer in model.layers
    )
    return (5e-2 if low else 1e-4) * scale


def _time_models(models, batch_sizes, rounds, calls):
    """`{name: {batch: median ms}}`, models timed in alternating order."""
    import tensorflow as tf

    names = list(models)
    first = next(iter(models.values()))  # the others take the same inputs
    specs = latency.input_specs(first)
    samples = {
        b: latency.pack_inputs(first, latency.sample_inputs(specs, b))
        for b in batch_sizes
    }
    functions = {
        name: tf.function(lambda x, m=m: m(x, training=False))
        for name, m in models.items()
    }
    times = {name: {b: [] for b in batch_sizes} for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        if r % 2:
            order.reverse()
        for b in batch_sizes:
            for name in order:
                times[name][b].append(
                    latency.time_call(
                        functions[name],
                        samples[b],
                        repeats=calls,
                        warmup=3 if r == 0 else 1,
                    )
                )
    return {
        name: {str(b): statistics.median(t) for b, t in per.items()}
        for name, per in times.items()
    }


def fuse(
    model,
    mode="auto",
    batch_sizes=(1, 64),
    rounds=3,
    calls=10,
    check=True,
):
    """Runs a composed model's towers as one computation.

    Student towers of one architecture that read the same input and are
    joined by one concatenation become one `FusedTowers` layer (see the
    module's docstring for the modes); every other layer is shared with
    `model`. Towers inside a functional model nested in `model` (e.g. a
    representation model called by a larger one) are fused there; a
    nested model whose towers cannot be fused is kept unfused, and
    `fusion.reason` says why. The fused model's outputs equal `model`'s
    within float tolerance; it saves and loads with `safe_mode=True` and
    exports to LiteRT like any composed model (a functional subclass
    stays of its class, so it loads where `model` loads: registered). A
    compiled `model`'s settings are copied; a metric object that does not
    copy is shared, and `fusion.reason` says so. A model that already holds
    `FusedTowers` is returned as it is, its `fusion` record kept (or,
    loaded from a file, set to "already fused").

    With `mode="auto"`, "concat", "grouped" and the unfused model are
    timed (not "einsum", whose int8 LiteRT export is inaccurate) on the
    current device at `batch_sizes` (median over `rounds` rounds of
    `calls` calls, in alternating order) and the mode with the lowest
    geometric mean latency is kept, which may be "none". What happened is
    recorded in the returned model's `fusion` attribute (a `FusionInfo`).

    Args:
        model: a functional `keras.Model`, e.g. `TeacherClass.compose()`.
        mode: "auto", "none", "concat", "grouped" or "einsum".
        batch_sizes: batch sizes "auto" times.
        rounds: int, timing rounds for "auto".
        calls: int, timed calls per model, batch size and round.
        check: bool, compare the fused model's outputs with `model`'s on
            a random batch, and keep `model` when they differ.

    Returns:
        A `keras.Model` with a `fusion` attribute: the fused model, or
        `model` itself when it was not fused (the reason is in
        `fusion.reason`). A fused model is compiled like `model`: where
        a compile argument does not deserialize (it holds a plain
        function or a lambda), with `model`'s own functions and copies of
        its metric, loss and optimizer objects (the fused model keeps its
        own metric state; a metric object that does not copy is shared,
        and `fusion.reason` says so); where compiling fails even so, it
        is left uncompiled and `fusion.reason` says why.

    Raises:
        TypeError: if `model` is not a `keras.Model` (in every mode).
        ValueError: if `mode` is unknown, `batch_sizes` does not hold
            positive integers, or `rounds` or `calls` is not an integer
            >= 1.

    Example:

    >>> inputs = keras.Input((6,))
    >>> towers = [towers_lib.DenseTower(u, hidden=(4,)) for u in (2, 3)]
    >>> rep = keras.layers.Concatenate()([t(inputs) for t in towers])
    >>> composed = keras.Model(inputs, keras.layers.Dense(1)(rep))
    >>> fused = fuse(composed, mode="einsum")
    >>> fused.fusion.mode
    'einsum'
    >>> x = np.ones((2, 6), "float32")
    >>> bool(np.allclose(fused(x), composed(x), atol=1e-5))
    True
    """
    check_mode(mode)
    batch_sizes = validation.check_batch_sizes(batch_sizes)
    rounds = validation.check_int("rounds", rounds)
    calls = validation.check_int("calls", calls)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a functional keras.Model. "
            f"Received: model={model!r}"
        )
    fused = _fused_layers(model)
    if fused:
        # A record of the earlier `fuse` is kept (it says what was done);
        # a model loaded from a file has none.
        if isinstance(getattr(model, "fusion", None), FusionInfo):
            return model
        modes = sorted({layer.mode for layer in fused})
        return _with_info(
            model,
            FusionInfo(
                modes[0] if len(modes) == 1 else "mixed",
                mode,
                f"already fused (mode={'/'.join(modes)!r})",
                groups=len(fused),
            ),
        )
    if mode == "none":
        return _with_info(model, FusionInfo("none", mode, "mode='none'"))
    modes = AUTO_MODES if mode == "auto" else (mode,)
    candidates = {}
    groups = 0
    notes = []
    for m in modes:
        try:
            candidates[m], groups, notes = _fused_clone(model, m)
        except _Unfusable as e:
            return _with_info(model, FusionInfo("none", mode, str(e)))
    if check:
        specs = latency.input_specs(model)
        x = latency.pack_inputs(
            model, latency.sample_inputs(specs, max(batch_sizes), seed=1)
        )
        reference = model(x, training=False)
        tolerance = _tolerance(model, reference)
        for m, candidate in list(candidates.items()):
            error = _max_error(candidate(x, training=False), reference)
            if not error <= tolerance:
                del candidates[m]
                if not candidates:
                    return _with_info(
                        model,
                        FusionInfo(
                            "none",
                            mode,
                            f"fused outputs differ from the unfused by "
                            f"{error:.3g} > {tolerance:.3g} in mode {m!r}",
                        ),
                    )
    latencies = {}
    if mode == "auto":
        latencies = _time_models(
            {"none": model, **candidates}, batch_sizes, rounds, calls
        )

        def score(name):
            values = latencies[name].values()
            return math.exp(statistics.fmean(math.log(v) for v in values))

        best = min(latencies, key=score)
        gain = score("none") / score(best)
        reason = (
            f"fastest on this device at batch sizes {list(batch_sizes)}: "
            f"{best} ({gain:.2f}x the unfused speed, geometric mean)"
        )
        if best == "none":
            return _with_info(
                model, FusionInfo("none", mode, reason, latencies, groups)
            )
        chosen = best
    else:
        chosen = mode
        reason = f"mode={mode!r}"
    # Nested models left unfused say why (the same in every mode).
    reason += "".join(f"; {note}" for note in notes)
    reason += _compile_like(candidates[chosen], model)
    return _with_info(
        candidates[chosen],
        FusionInfo(chosen, mode, reason, latencies, groups),
    )
