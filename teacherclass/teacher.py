"""Where the teacher is cut: its trunk (input -> representation) and head.

The representation is the output of one layer of the teacher, by default
the one that feeds its classifier. Everything before it is the trunk, which
produces the students' regression targets; everything after it is the head,
which the composed model reuses with the teacher's trained weights. A
teacher that starts with preprocessing (e.g. `TextVectorization`) is also
cut after it (`student_input`): its students learn on the preprocessed
input, and the composed model keeps the preprocessing in front.

`cut(teacher, feature_layer, student_input)` resolves all of it into one
`Cut`. This is the one module that reads the teacher's Keras graph.
"""

import dataclasses

import keras
import numpy as np

# Layers that are the identity at inference: the representation sits before
# them, not after (a Dropout between features and classifier is common).
_INFERENCE_IDENTITY = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
)

# The value range a layer's activation leaves its output in. The composed
# model clips the students' output to it (see `compose.FeatureClip`).
_ACTIVATION_RANGES = {
    "relu": (0.0, None),
    "relu6": (0.0, 6.0),
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "softmax": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "hard_tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
    "softplus": (0.0, None),
    "elu": (-1.0, None),
}


def check_teacher(teacher):
    """Checks that `teacher` is a built, single-input Keras model."""
    if not isinstance(teacher, keras.Model):
        raise TypeError(
            "`teacher` must be a keras.Model. "
            f"Received: teacher={type(teacher).__name__}"
        )
    try:
        inputs, outputs = teacher.inputs, teacher.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        # (A Functional model always has its graph: not built, only a
        # Sequential model lacks one.)
        if isinstance(teacher, keras.Sequential):
            why = (
                "Build it first, e.g. `teacher.build(shape)`. Received: "
                f"teacher={teacher.name!r} (not built)"
            )
        else:
            # A subclassed model has no graph of layers, built or not.
            why = (
                "A subclassed model has no such graph, built or not: wrap "
                "its layers in a Functional model (`keras.Model(inputs, "
                "outputs)`). Received: teacher="
                f"{teacher.name!r} (a subclassed "
                f"{type(teacher).__name__})"
            )
        raise ValueError(
            "`teacher` must be a built model with a functional graph: a "
            "Functional model, or a Sequential model that starts with "
            f"keras.Input(...). {why}"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "`teacher` must have one input and one output. "
            f"Received: teacher with {len(inputs)} inputs and "
            f"{len(outputs)} outputs"
        )


def producer(tensor):
    """The layer that produced a KerasTensor, or None for an Input."""
    layer = tensor._keras_history.operation
    return None if isinstance(layer, keras.layers.InputLayer) else layer


def input_name(tensor):
    """The name of the `Input` layer of an input KerasTensor: the key
    `fit` reads a dict of inputs by."""
    return tensor._keras_history.operation.name


def _node(teacher, layer):
    """The node of `layer` in the teacher's own graph.

    `layer.output` is the output of the layer's first call, which for a
    deserialized Sequential model is not the call inside the model's graph.
    """
    graph = getattr(teacher, "_functional", None) or teacher
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            if node.operation is layer:
                return node
    raise ValueError(
        f"Layer {layer.name!r} is not part of the teacher's graph."
    )


def output_of(teacher, layer):
    """The output tensor of `layer` inside the teacher's graph."""
    return _node(teacher, layer).outputs[0]


def input_of(teacher, layer):
    """The input tensor of `layer` inside the teacher's graph."""
    return _node(teacher, layer).input_tensors[0]


def _layers(teacher):
    return [
        layer
        for layer in teacher.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]


def default_feature_layer(teacher):
    """Names the layer whose output feeds the teacher's classifier.

    The classifier is the last layer with weights; walking back from its
    input over layers that are the identity at inference (Dropout, noise)
    gives the representation.
    """
    weighted = [layer for layer in _layers(teacher) if layer.weights]
    if not weighted:
        raise ValueError(
            "Cannot find the teacher's classifier: it has no layer with "
            "weights. Pass `feature_layer=` explicitly."
        )
    classifier = weighted[-1]
    layer = producer(input_of(teacher, classifier))
    while isinstance(layer, _INFERENCE_IDENTITY):
        layer = producer(input_of(teacher, layer))
    if layer is None:
        raise ValueError(
            f"The teacher's classifier {classifier.name!r} reads the model "
            "input directly: there is no representation to split. Pass "
            "`feature_layer=` explicitly."
        )
    return layer.name


def named_layer(teacher, argument, name, also=""):
    """The teacher's layer named `name` (not an input layer), for the
    argument `argument`; a `ValueError` naming both otherwise. `also`:
    the argument's other accepted values, for the message."""
    names = [layer.name for layer in _layers(teacher)]
    if not isinstance(name, str) or name not in names:
        raise ValueError(
            f"`{argument}` must be {also}the name of one of the teacher's "
            f"layers: {names}. Received: {argument}={name!r}"
        )
    return teacher.get_layer(name)


def get_feature_layer(teacher, feature_layer=None):
    """Resolves `feature_layer` (a name or None) to a layer of the teacher."""
    if feature_layer is None:
        feature_layer = default_feature_layer(teacher)
    layer = named_layer(teacher, "feature_layer", feature_layer)
    layers = _layers(teacher)
    if layer is layers[-1]:
        raise ValueError(
            "`feature_layer` is the teacher's output layer, which leaves no "
            "head to compose with. Choose an earlier layer from "
            f"{[each.name for each in layers[:-1]]}. "
            f"Received: feature_layer={feature_layer!r}"
        )
    return layer


def trunk(teacher, feature_layer=None):
    """The model from the teacher's input to the representation.

    Args:
        teacher: the teacher model.
        feature_layer: a layer of the teacher or its name; None for the
            default (see `default_feature_layer`).

    Returns:
        A functional `keras.Model` sharing the teacher's layers.

    Example:

    >>> teacher = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(6, activation="relu", name="rep"),
    ...     keras.layers.Dense(2, name="out"),
    ... ])
    >>> trunk(teacher).output.shape
    (None, 6)
    """
    if not isinstance(feature_layer, keras.layers.Layer):
        feature_layer = get_feature_layer(teacher, feature_layer)
    return keras.Model(
        teacher.inputs,
        output_of(teacher, feature_layer),
        name=f"{teacher.name}_trunk",
    )


def clone_head(teacher, layer):
    """A copy of the teacher's layers after `layer`, with their weights.

    Args:
        teacher: the teacher model.
        layer: the representation layer.

    Returns:
        A functional `keras.Model` named "head" from a
        representation-shaped input to the teacher's output. Its layers are
        new objects: training the head never changes the teacher.
    """
    features = output_of(teacher, layer)
    try:
        original = keras.Model(features, teacher.outputs[0])
    except ValueError as e:
        raise ValueError(
            "The teacher's output cannot be computed from the output of "
            f"`feature_layer` alone (the graph bypasses it): {e}. "
            f"Received: feature_layer={layer.name!r}"
        ) from e
    head_input = keras.Input(
        shape=features.shape[1:], dtype=features.dtype, name="features"
    )
    head = keras.models.clone_model(original, input_tensors=head_input)
    head.set_weights(original.get_weights())
    return keras.Model(head.inputs, head.outputs, name="head")


def _head_of(teacher, layer):
    """The teacher's own head layers (shared, not copied), as a model."""
    return keras.Model(output_of(teacher, layer), teacher.outputs[0])


def copy_head_weights(teacher, layer, head):
    """Copies the teacher's current head weights into `head`."""
    head.set_weights(_head_of(teacher, layer).get_weights())


def head_digest(teacher, layer):
    """A short hash of the teacher's current head weights.

    A copy of the head (`clone_head`) records it when it takes the
    teacher's weights; a different digest later means the teacher was
    trained since, and the copy is stale.
    """
    return weights_digest(_head_of(teacher, layer))


def feature_range(layer):
    """The value range of a layer's output, from its activation.

    Returns:
        `(low, high)` with None for an open end, or None when the
        activation leaves the output unbounded (linear, or unknown).
    """
    if isinstance(layer, keras.layers.ReLU):
        if layer.negative_slope or layer.threshold:
            return None  # leaky (negative outputs) or thresholded
        high = layer.max_value
        return (0.0, None if high is None else float(high))
    if isinstance(layer, keras.layers.Softmax):
        return (0.0, 1.0)
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    if isinstance(activation, str):
        name = activation
    else:
        name = getattr(activation, "__name__", "")
    return _ACTIVATION_RANGES.get(name)


def activation_name(layer):
    """The name of the activation a layer ends with ("softmax", ...), or
    None for a layer with none."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None or isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", None)


def output_layer(model):
    """The layer that produces `model`'s output, past identity activations
    (`Activation("linear")`, e.g. the float32 cast that ends a model
    under mixed precision, `compose.float32_output`)."""
    layer = producer(model.outputs[0])
    while isinstance(layer, keras.layers.Activation) and activation_name(
        layer
    ) in (None, "linear"):
        layer = producer(input_of(model, layer))
    return layer


def final_layer(model):
    """The layer that produces `model`'s output, inside nested models and
    past identity activations (see `output_layer`)."""
    layer = output_layer(model)
    while isinstance(layer, keras.Model):  # a nested head: look inside
        layer = output_layer(layer)
    return layer


# A compiled loss that scores each output unit as a Bernoulli variable.
_BINARY_LOSSES = ("binary_crossentropy", "binary_focal_crossentropy")


def _binary_loss(loss):
    """Whether a compiled loss (a name, a `Loss` or a function) is a
    binary cross-entropy, from logits or not."""
    if isinstance(loss, str):
        return loss in (*_BINARY_LOSSES, "bce")
    if isinstance(
        loss,
        (
            keras.losses.BinaryCrossentropy,
            keras.losses.BinaryFocalCrossentropy,
        ),
    ):
        return True
    name = getattr(loss, "__name__", None)
    return name in _BINARY_LOSSES


def sigmoid_output(model, teacher=None):
    """Whether `model`'s outputs are independent Bernoulli units (a
    binary or multi-label classifier), whatever its width.

    They are when `model` ends in a sigmoid, or in a linear layer (logits)
    of a teacher compiled with a binary cross-entropy (from logits or
    not).

    Args:
        model: a model whose final layer is read: a teacher, or its head.
        teacher: the model whose compiled loss is read (the teacher of a
            head); default `model`.

    Example:

    >>> import keras
    >>> tags = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
    >>> sigmoid_output(tags)
    False
    >>> tags.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    >>> sigmoid_output(tags)
    True
    """
    activation = activation_name(final_layer(model))
    if activation == "sigmoid":
        return True
    if activation not in (None, "linear"):
        return False
    teacher = model if teacher is None else teacher
    return _binary_loss(getattr(teacher, "loss", None))


def _label_shape(y):
    """The shape of one label, from an array, a dataset's spec or a
    `PyDataset`'s first batch; None for a generator (not read ahead)."""
    import inspect

    import tensorflow as tf

    if inspect.isgenerator(y):
        return None
    if isinstance(y, keras.utils.PyDataset):
        batch = y[0]
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            return None
        return tuple(keras.ops.shape(batch[1]))
    if isinstance(y, tf.data.Dataset):
        spec = y.element_spec
        if not isinstance(spec, (tuple, list)) or len(spec) < 2:
            return None
        return tuple(spec[1].shape)  # batched: (None, ...) like an array
    if y is None:
        return None
    return tuple(np.shape(y))


def _output_shaped(label, output, unknown=False):
    """Whether a label shape (`_label_shape`) is one output's: one-hot or
    multi-hot, not a class index. With `unknown`, an unknown last
    dimension (as a generator's dataset declares it) counts as the
    output's: a sigmoid output's labels are then its units; a softmax
    output's stay class indices, as before."""
    widths = (None, output.shape[-1]) if unknown else (output.shape[-1],)
    return (
        label is not None
        and len(label) == len(output.shape)
        and label[-1] in widths
    )


def default_compile_args(teacher, y=None, sigmoid=None):
    """Compile arguments that fit the teacher's output, for `fit_teacher`.

    Adam, accuracy, and a cross-entropy matching the output and the
    labels: binary for one unit, and per unit for a sigmoid output
    (multi-label) unless `y` holds class indices; else categorical when
    `y` is one-hot, sparse categorical otherwise; `from_logits` unless
    the output layer ends in softmax or sigmoid.

    Args:
        teacher: the teacher model.
        y: the labels (array or a dataset of `(x, y)`), or None.
        sigmoid: None, or whether the outputs are independent Bernoulli
            units (given for a model outputting a sigmoid's logits);
            None: a sigmoid output. Several such units take a binary
            cross-entropy on labels of the output's shape (multi-hot)
            or unknown ones (None, a generator), a sparse categorical
            one on class indices.

    Returns:
        A dict of `compile` keyword arguments.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> tags = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(5, "sigmoid")])
    >>> y = np.zeros((2, 5))
    >>> type(default_compile_args(tags, y)["loss"]).__name__
    'BinaryCrossentropy'
    >>> type(default_compile_args(tags, np.zeros(2, int))["loss"]).__name__
    'SparseCategoricalCrossentropy'
    """
    output = teacher.outputs[0]
    activation = activation_name(final_layer(teacher))
    width = output.shape[-1]
    if sigmoid is None:
        sigmoid = activation == "sigmoid"
    label = _label_shape(y)
    # Several Bernoulli units are scored per unit on multi-hot labels (or
    # labels not known ahead); class indices keep a sparse loss.
    per_unit = label is None or _output_shaped(label, output, unknown=True)
    if width == 1 or (sigmoid and per_unit):
        loss = keras.losses.BinaryCrossentropy(
            from_logits=activation != "sigmoid"
        )
        metrics = [
            keras.metrics.BinaryAccuracy(
                name="accuracy",
                threshold=0.5 if activation == "sigmoid" else 0.0,
            )
        ]
        return {"optimizer": "adam", "loss": loss, "metrics": metrics}
    from_logits = activation != "softmax"
    if _output_shaped(label, output):
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=from_logits
        )
    return {"optimizer": "adam", "loss": loss, "metrics": ["accuracy"]}


def ignore_class(teacher):
    """The label value the teacher's loss ignores (a segmentation's void).

    Its compiled loss's `ignore_class`, or None.
    """
    return getattr(getattr(teacher, "loss", None), "ignore_class", None)


def label_compile_args(teacher, model, y=None):
    """`default_compile_args(model, y)` that honour the teacher's void
    and its sigmoid (a multi-label teacher's logits get a binary
    cross-entropy per unit on multi-hot labels, a sparse one on class
    indices).

    A teacher compiled with a sparse cross-entropy that ignores a label
    value (`ignore_class`, a segmentation's void) passes it on: `model`
    (trained on the same labels, e.g. refined) ignores it too.
    """
    # `model` may output the logits of the teacher's sigmoid.
    sigmoid = sigmoid_output(teacher)
    args = default_compile_args(model, y, sigmoid=sigmoid)
    ignore = ignore_class(teacher)
    loss = args["loss"]
    if ignore is not None and isinstance(
        loss, keras.losses.SparseCategoricalCrossentropy
    ):
        args["loss"] = keras.losses.SparseCategoricalCrossentropy(
            from_logits=loss.get_config()["from_logits"], ignore_class=ignore
        )
    return args


def weights_digest(model):
    """A short hash of a model's weights, to tell two teachers apart."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def _users(teacher, tensor):
    """The teacher's layers that take `tensor` as an input."""
    return [
        layer
        for layer in _layers(teacher)
        if any(
            t is tensor
            for node in layer._inbound_nodes
            for t in node.input_tensors
        )
    ]


def resolve_student_input(teacher, student_input=None):
    """The name of the layer whose output the students take, or None.

    None means the teacher's input. A teacher that takes strings has its
    first layer (e.g. `TextVectorization`) as the default: students learn
    on its output (token ids), and the composed model keeps it in front.

    Raises:
        ValueError: on an unknown layer, a string teacher whose input feeds
            several layers, or preprocessing with trainable weights.
    """
    spec = teacher.inputs[0]
    if student_input is None:
        if spec.dtype != "string":
            return None
        users = _users(teacher, spec)
        if len(users) != 1:
            raise ValueError(
                "The teacher takes strings; its students need numbers. Name "
                "the layer that turns the strings into numbers (e.g. a "
                "TextVectorization) as `student_input`. Received: "
                "student_input=None, and the teacher's input feeds "
                f"{[u.name for u in users]}"
            )
        student_input = users[0].name
    names = [layer.name for layer in teacher.layers]
    if not isinstance(student_input, str) or student_input not in names:
        raise ValueError(
            "`student_input` must be None or the name of one of the "
            f"teacher's layers: {names}. "
            f"Received: student_input={student_input!r}"
        )
    prefix = _prefix(teacher, student_input)
    if prefix.trainable_weights:
        raise ValueError(
            "The layers up to `student_input` are the composed model's "
            "preprocessing, kept in front of the students: they must have "
            "no trainable weights, or the composed model would hold part of "
            "the teacher still in training. To share trained layers as a "
            "frozen trunk, freeze them first (`layer.trainable = False`, or "
            "`teacherclass.teacher.freeze_through(teacher, "
            f"{student_input!r})`). Received: student_input="
            f"{student_input!r} with {len(prefix.trainable_weights)} "
            "trainable weights before it"
        )
    return student_input


def freeze_through(teacher, layer_name):
    """Freezes `teacher`'s layers up to and including `layer_name`.

    Sets `trainable = False` on every layer the output of `layer_name`
    depends on, so that layer can be a class's `student_input`: the
    students take its output and the composed model holds the frozen
    layers once, in front of them (counted in its size). Call it on a
    trained teacher, before building the class (`TeacherClass(teacher,
    student_input=layer_name)`): a frozen layer no longer trains, and its
    batch normalization runs in inference mode.

    Args:
        teacher: a functional `keras.Model`.
        layer_name: str, the name of one of its layers.

    Returns:
        The names of the layers frozen, in the teacher's order.

    Raises:
        ValueError: if `layer_name` is not one of the teacher's layers.

    Example:

    >>> import keras
    >>> inputs = keras.Input((4,), name="x")
    >>> h = keras.layers.Dense(8, name="block")(inputs)
    >>> outputs = keras.layers.Dense(2, name="head")(h)
    >>> teacher = keras.Model(inputs, outputs)
    >>> freeze_through(teacher, "block")
    ['x', 'block']
    >>> teacher.get_layer("head").trainable
    True
    """
    names = [layer.name for layer in teacher.layers]
    if not isinstance(layer_name, str) or layer_name not in names:
        raise ValueError(
            f"`layer_name` must name one of the teacher's layers: {names}. "
            f"Received: layer_name={layer_name!r}"
        )
    prefix = _prefix(teacher, layer_name)
    for layer in prefix.layers:
        layer.trainable = False
    return [layer.name for layer in prefix.layers]


def _prefix(teacher, layer_name):
    """The teacher's layers up to `layer_name`, as a model sharing them."""
    return keras.Model(
        teacher.inputs, output_of(teacher, teacher.get_layer(layer_name))
    )


@dataclasses.dataclass(frozen=True)
class Cut:
    """Where a teacher is cut, resolved: see `cut`.

    The models it returns are built on demand and share the teacher's
    layers (stored, they would be tracked by the model holding the cut and
    list the teacher's weights twice).

    Attributes:
        teacher: the teacher model.
        feature_layer: str, the name of the representation layer.
        student_input: str or None, the name of the layer whose output the
            students take (None: the teacher's input).
        feature_shape: tuple, the representation's shape, batch axis None.
    """

    teacher: keras.Model
    feature_layer: str
    student_input: str | None
    feature_shape: tuple

    def layer(self):
        """The representation layer."""
        return self.teacher.get_layer(self.feature_layer)

    def _student_tensor(self):
        if self.student_input is None:
            return self.teacher.inputs[0]
        return output_of(
            self.teacher, self.teacher.get_layer(self.student_input)
        )

    def inputs(self):
        """A new `keras.Input` like the teacher's."""
        spec = self.teacher.inputs[0]
        return keras.Input(
            shape=spec.shape[1:], dtype=spec.dtype, name="inputs"
        )

    def student_inputs(self):
        """A new `keras.Input` like the students' (see `student_input`)."""
        if self.student_input is None:
            return self.inputs()
        spec = self._student_tensor()
        return keras.Input(
            shape=spec.shape[1:], dtype=spec.dtype, name="student_inputs"
        )

    def preprocessor(self):
        """The teacher's layers up to `student_input` as a model, or None."""
        if self.student_input is None:
            return None
        return keras.Model(
            self.teacher.inputs[0], self._student_tensor(), name="preprocessor"
        )

    def trunk(self):
        """The model from the students' input to the representation."""
        if self.student_input is None:
            return trunk(self.teacher, self.layer())
        return keras.Model(
            self._student_tensor(),
            output_of(self.teacher, self.layer()),
            name=f"{self.teacher.name}_trunk",
        )

    def head(self):
        """A copy of the teacher's head with its current weights."""
        return clone_head(self.teacher, self.layer())

    def head_digest(self):
        """A hash of the teacher's current head weights (see `head_digest`)."""
        return head_digest(self.teacher, self.layer())

    def copy_head_weights(self, head):
        """Copies the teacher's current head weights into `head`."""
        copy_head_weights(self.teacher, self.layer(), head)

    def trunk_digest(self):
        """A hash of the teacher's weights up to the representation."""
        return weights_digest(trunk(self.teacher, self.layer()))

    def feature_range(self):
        """The value range of the representation (see `feature_range`)."""
        return feature_range(self.layer())


def cut(teacher, feature_layer=None, student_input=None):
    """Cuts a teacher into preprocessing, trunk, representation and head.

    Args:
        teacher: a built single-input, single-output `keras.Model`.
        feature_layer: name of the representation layer, or None for the
            layer that feeds the classifier (see `default_feature_layer`).
        student_input: name of the layer whose output the students take,
            or None (see `resolve_student_input`).

    Returns:
        A `Cut`.

    Raises:
        TypeError: if `teacher` is not a keras.Model.
        ValueError: on a teacher that is not built or has several inputs
            or outputs, an unknown layer, or a representation whose last
            axis has no known width.

    Example:

    >>> teacher = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(6, activation="relu", name="rep"),
    ...     keras.layers.Dense(2, name="out"),
    ... ])
    >>> c = cut(teacher)
    >>> c.feature_layer, c.feature_shape, c.student_input
    ('rep', (None, 6), None)
    >>> c.head().outputs[0].shape
    (None, 2)
    """
    check_teacher(teacher)
    layer = get_feature_layer(teacher, feature_layer)
    student_input = resolve_student_input(teacher, student_input)
    feature_shape = tuple(output_of(teacher, layer).shape)
    if feature_shape[-1] is None:
        raise ValueError(
            "The representation's last axis must have a known width. "
            f"Received: feature_layer={layer.name!r} with output shape "
            f"{feature_shape}"
        )
    return Cut(teacher, layer.name, student_input, feature_shape)
