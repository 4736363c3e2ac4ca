"""Where the teacher is cut: its trunk (input -> representation) and head.

The representation is the output of one layer of the teacher, by default
the one that feeds its classifier. Everything before it is the trunk, which
produces the students' regression targets; everything after it is the head,
which the composed model reuses with the teacher's trained weights.
"""

import keras

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
        raise ValueError(
            "`teacher` must be a built model with a functional graph: a "
            "Functional model, or a Sequential model that starts with "
            "keras.Input(...). Build it first, e.g. `teacher.build(shape)`. "
            f"Received: teacher={teacher.name!r} (not built)"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "`teacher` must have one input and one output. "
            f"Received: teacher with {len(inputs)} inputs and "
            f"{len(outputs)} outputs"
        )


def _producer(tensor):
    """The layer that produced a KerasTensor, or None for an Input."""
    layer = tensor._keras_history.operation
    return None if isinstance(layer, keras.layers.InputLayer) else layer


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


def _input_of(teacher, layer):
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
    layer = _producer(_input_of(teacher, classifier))
    while isinstance(layer, _INFERENCE_IDENTITY):
        layer = _producer(_input_of(teacher, layer))
    if layer is None:
        raise ValueError(
            f"The teacher's classifier {classifier.name!r} reads the model "
            "input directly: there is no representation to split. Pass "
            "`feature_layer=` explicitly."
        )
    return layer.name


def get_feature_layer(teacher, feature_layer=None):
    """Resolves `feature_layer` (a name or None) to a layer of the teacher."""
    if feature_layer is None:
        feature_layer = default_feature_layer(teacher)
    names = [layer.name for layer in _layers(teacher)]
    if not isinstance(feature_layer, str) or feature_layer not in names:
        raise ValueError(
            "`feature_layer` must be the name of one of the teacher's "
            f"layers: {names}. Received: feature_layer={feature_layer!r}"
        )
    layer = teacher.get_layer(feature_layer)
    if layer is _layers(teacher)[-1]:
        raise ValueError(
            "`feature_layer` is the teacher's output layer, which leaves no "
            "head to compose with. Choose an earlier layer from "
            f"{names}. Received: feature_layer={feature_layer!r}"
        )
    return layer


def trunk(teacher, layer):
    """The model from the teacher's input to the representation."""
    return keras.Model(
        teacher.inputs, output_of(teacher, layer), name=f"{teacher.name}_trunk"
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


def _output_activation(teacher):
    layer = _producer(teacher.outputs[0])
    while isinstance(layer, keras.Model):  # a nested head: look inside
        layer = _producer(layer.outputs[0])
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", None)


def _label_shape(y):
    """The shape of one label, from an array or a dataset's spec."""
    import tensorflow as tf

    if isinstance(y, tf.data.Dataset):
        spec = y.element_spec
        if not isinstance(spec, (tuple, list)) or len(spec) < 2:
            return None
        return tuple(spec[1].shape)  # batched: (None, ...) like an array
    if y is None:
        return None
    return tuple(getattr(y, "shape", ()))


def default_compile_args(teacher, y=None):
    """Compile arguments that fit the teacher's output, for `fit_teacher`.

    Adam, accuracy, and a cross-entropy matching the output: binary for one
    unit, categorical when `y` is one-hot, sparse categorical otherwise;
    `from_logits` unless the output layer ends in softmax or sigmoid.

    Args:
        teacher: the teacher model.
        y: the labels (array or a dataset of `(x, y)`), or None.

    Returns:
        A dict of `compile` keyword arguments.
    """
    output = teacher.outputs[0]
    activation = _output_activation(teacher)
    width = output.shape[-1]
    if width == 1:
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
    label = _label_shape(y)
    one_hot = label is not None and len(label) == len(output.shape)
    one_hot = one_hot and label[-1] == width
    if one_hot:
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=from_logits
        )
    return {"optimizer": "adam", "loss": loss, "metrics": ["accuracy"]}


def weights_digest(model):
    """A short hash of a model's weights, to tell two teachers apart."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]
