"""Composition: every student, concatenated in chunk order, into the head.

The students regress the teacher's representation with a linear output.
When the teacher's representation layer has a bounded activation (ReLU,
sigmoid, tanh, ...), the head was trained on values in that range only, so
the composed model clips the concatenated students' output to it. Clipping
is the projection onto a set that holds every target, so it never moves a
prediction away from its target: it can only lower each student's error
(for ReLU features it is the paper's ReLU after the students).
"""

import keras
import numpy as np
from keras import ops

from teacherclass import teacher as teacher_lib


@keras.saving.register_keras_serializable(package="teacherclass")
class FeatureClip(keras.layers.Layer):
    """Clips its input to `[low, high]`; None leaves that end open.

    Args:
        low: float, a list of floats (one per feature: the clip of a
            standardized representation, see `conditioning`; a list of
            one value applies it to every feature), or None.
        high: the upper bound, in the same forms.
        **kwargs: base layer arguments.

    Raises:
        ValueError: if `low` exceeds `high`, `low` and `high` are lists of
            different lengths both longer than one, or (when the layer is
            built) a list's length is neither 1 nor the input's feature
            width.

    Example:

    >>> clip = FeatureClip(low=0.0)
    >>> keras.ops.convert_to_numpy(clip(keras.ops.array([-1.0, 2.0])))
    array([0., 2.], dtype=float32)
    """

    def __init__(self, low=None, high=None, **kwargs):
        super().__init__(**kwargs)
        low, high = _bound(low), _bound(high)
        if (
            isinstance(low, list)
            and isinstance(high, list)
            and len(low) != len(high)
            and 1 not in (len(low), len(high))
        ):
            raise ValueError(
                "`low` and `high` must have the same length when both hold "
                "one value per feature (a list of one value applies to "
                f"every feature). Received: low={low} ({len(low)} values), "
                f"high={high} ({len(high)} values)"
            )
        if (
            low is not None
            and high is not None
            and np.any(np.asarray(low) > np.asarray(high))
        ):
            raise ValueError(
                f"`low` must not exceed `high`. Received: low={low}, "
                f"high={high}"
            )
        self.low = low
        self.high = high

    def build(self, input_shape):
        width = input_shape[-1] if input_shape else None
        for name, bound in (("low", self.low), ("high", self.high)):
            if (
                isinstance(bound, list)
                and width is not None
                and len(bound) not in (1, width)
            ):
                raise ValueError(
                    f"`{name}` must hold one value per feature: the input "
                    f"has {width} features, `{name}` {len(bound)}. "
                    f"Received: {name}={bound} for "
                    f"input_shape={tuple(input_shape)}"
                )
        self.built = True

    def call(self, inputs):
        x = inputs
        if self.low is not None:
            x = ops.maximum(x, ops.cast(self.low, x.dtype))
        if self.high is not None:
            x = ops.minimum(x, ops.cast(self.high, x.dtype))
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"low": self.low, "high": self.high})
        return config


def _bound(value):
    if value is None or isinstance(value, (int, float)):
        return value
    return [float(v) for v in np.asarray(value, dtype="float64").ravel()]


def join(outputs, clip=None):
    """Concatenates the students' outputs in chunk order, then clips them.

    For eager and traced calls (`TeacherClass.call`); `representation_model`
    builds the same with layers, for a functional model.
    """
    rep = outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, -1)
    return rep if clip is None else clip(rep)


def representation_model(
    inputs, towers, clip=None, name="representation", preprocessor=None
):
    """A functional model from the input to the students' joint output.

    Args:
        inputs: a `keras.Input` shaped like the teacher's input.
        towers: the student towers, in chunk order.
        clip: optional `FeatureClip` applied to the concatenation.
        name: the model's name.
        preprocessor: optional model from `inputs` to the students' input
            (the teacher's preprocessing, see `teacher.Cut.preprocessor`).

    Returns:
        A functional `keras.Model` sharing its layers with `towers`.
    """
    x = inputs if preprocessor is None else preprocessor(inputs)
    outputs = [tower(x) for tower in towers]
    if len(outputs) == 1:
        rep = outputs[0]
    else:
        rep = keras.layers.Concatenate(axis=-1, name="concatenate")(outputs)
    if clip is not None:
        rep = clip(rep)
    return keras.Model(inputs, rep, name=name)


def compose_model(
    inputs, towers, head, clip=None, name="composed", preprocessor=None
):
    """Builds the standalone composed model.

    Args:
        inputs: a `keras.Input` shaped like the teacher's input.
        towers: the student towers, in chunk order.
        head: a model from the representation to the teacher's output.
        clip: optional `FeatureClip` applied to the concatenation.
        name: the model's name.
        preprocessor: optional model in front of the students (see
            `representation_model`).

    Returns:
        A functional `keras.Model`: input -> (preprocessor) -> students ->
        concatenate -> (clip) -> head. It shares its layers with `towers`
        and `head`.
    """
    rep = representation_model(
        inputs, towers, clip, preprocessor=preprocessor
    ).outputs[0]
    return keras.Model(inputs, float32_output(head(rep)), name=name)


def float32_output(outputs, name="float32_output"):
    """`outputs` in float32: a mixed-precision head may compute in float16.

    Keras' mixed-precision guide keeps a model's outputs in float32 for
    numeric stability of the loss and for the user; a float32 linear
    activation casts them (and is the identity otherwise).

    Args:
        outputs: a KerasTensor, or a structure of them (a head of several
            tasks, whose casts Keras names).
        name: the name of the cast layer of a single output; None lets
            Keras choose a unique one.

    Returns:
        `outputs`, float32.
    """
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        outputs = outputs[0]  # a functional head returns a list
    if isinstance(outputs, (list, tuple, dict)):  # a head of several tasks
        return keras.tree.map_structure(_float32, outputs)
    return _float32(outputs, name=name)


def _float32(outputs, name=None):
    dtype = keras.backend.standardize_dtype(outputs.dtype)
    if dtype in ("float16", "bfloat16"):
        return keras.layers.Activation("linear", dtype="float32", name=name)(
            outputs
        )
    return outputs


def compile_like(model, teacher, y=None):
    """Compiles `model` like `teacher` (or with defaults fitting its output).

    The teacher's own compile settings when they serialize, else Adam,
    accuracy and a matching cross-entropy (`teacher.default_compile_args`),
    chosen for the labels `y` (an array, or a dataset of `(x, y)`) as
    `TeacherClass.fit_teacher` chooses it. Losses and metrics given per
    output (dicts keyed by the teacher's output name) are keyed by
    `model`'s output name when both have one output (a single tensor);
    for a dict output they must use its keys, and keys it lacks bring
    the defaults instead. For a list of outputs Keras' `compile` decides.
    """
    if not _compile_from(model, teacher):
        model.compile(**teacher_lib.default_compile_args(teacher, y))


# The compile arguments that may be dicts keyed by output name.
_PER_OUTPUT = ("loss", "loss_weights", "metrics", "weighted_metrics")


def _compile_from(model, source):
    """Compiles `model` with `source`'s compile config; False when it has
    none, it does not round-trip (a loss or metric of one's own, not
    registered with Keras) or its per-output dicts name outputs `model`
    does not have (the keys of a dict output, the name of one tensor).

    A one-key dict is re-keyed to the output name of a `model` whose
    output is one tensor (a composed model's output is named after its
    head, not after the teacher's output layer), or unwrapped for a model
    without output names. A dict output is matched by its keys, as Keras
    matches it, and never re-keyed; for a list of outputs (whose names
    may all be a nested head's) `compile` decides."""
    if not getattr(source, "compiled", False):
        return False
    try:
        config = source.get_compile_config()
        if not config:
            return False
        config = keras.saving.deserialize_keras_object(config)
    except Exception:  # custom objects that do not (de)serialize
        return False
    names = list(getattr(model, "output_names", None) or [])
    keys, tensor = _output_keys(model) if names else (None, False)
    single = len(getattr(source, "output_names", None) or [None]) == 1
    for key in _PER_OUTPUT:
        value = config.get(key)
        if not isinstance(value, dict):
            continue
        if len(value) == 1 and tensor:
            config[key] = {keys[0]: next(iter(value.values()))}
        elif len(value) == 1 and not names and single:
            # A subclassed model (`TeacherClass`) has no output names: the
            # one output's setting applies to its one output.
            config[key] = next(iter(value.values()))
        elif keys is not None and not set(value) <= set(keys):
            return False
    try:
        model.compile(**config)
        if model.built and model.optimizer is not None:
            # As `compile_from_config` does: the optimizer's slots exist.
            model.optimizer.build(model.trainable_variables)
    except Exception:  # a loss or metric that does not fit `model`
        return False
    return True


def _output_keys(model):
    """`(keys, tensor)`: the names Keras matches a functional `model`'s
    per-output settings by (a dict output's keys, the output name of one
    tensor, None for a list of outputs: `compile` decides) and whether
    the output is one tensor."""
    try:
        output = model.output
    except (AttributeError, ValueError):  # e.g. a Sequential not built
        names = list(model.output_names)
        return names, len(names) == 1
    if isinstance(output, dict):
        return list(output), False
    if len(keras.tree.flatten(output)) == 1:
        return list(model.output_names)[:1], True
    return None, False


def with_new_head(representation, head, y=None):
    """The students' representation under a new head, compiled.

    Args:
        representation: the model from the input to the students' joint
            output (`TeacherClass.representation()`).
        head: a `keras.Model` or layer taking that output.
        y: labels (an array, or a dataset of `(x, y)`), to choose a
            default loss when `head` is not compiled.

    Returns:
        A functional `keras.Model` named "composed", compiled as `head` is,
        or with defaults fitting its output.

    Raises:
        TypeError: if `head` is not a Keras layer.
        ValueError: if `head` does not take the representation.
    """
    if not isinstance(head, keras.layers.Layer):
        raise TypeError(
            "`head` must be a keras.Model or layer taking the "
            f"representation. Received: head={head!r}"
        )
    rep = representation.outputs[0]
    try:
        outputs = head(rep)
    except Exception as e:
        raise ValueError(
            "`head` must take the students' representation of shape "
            f"{tuple(rep.shape)}: {e}. Received: head={head!r}"
        ) from e
    # `representation()` under mixed precision already ends in a cast
    # named "float32_output": the head's cast takes another name.
    taken = {layer.name for layer in representation.layers}
    name = None if "float32_output" in taken else "float32_output"
    composed = keras.Model(
        representation.inputs[0],
        float32_output(outputs, name=name),  # None: Keras names it
        name="composed",
    )
    if not _compile_from(composed, head):
        composed.compile(**teacher_lib.default_compile_args(composed, y))
    return composed
