"""Single-student baselines, for comparing a class of students against.

Three ways to spend the same parameter budget on one student:

1. The paper's single student: one tower regressing the whole
   representation, composed with the teacher's head. That is
   `TeacherClass(teacher, num_students=1, student=tower)`; nothing here.
2. Logit distillation (Hinton et al., 2015) with Keras' own
   `keras.distillation.Distiller` and `LogitsDistillation`:
   `distill_logits`.
3. The same student trained from scratch on the labels:
   `train_from_scratch`.

For 2 and 3, `single_student_classifier` makes the student: a tower and a
`Dense(num_classes)` classifier, so a tower of the budget's size gives a
classifier of the composed class's size (e.g. `mnist_student(1)` plus
Dense(10) has 80,410 parameters, four `mnist_student(4)` plus the
teacher's head 79,146).

Example:

>>> import numpy as np
>>> from teacherclass import DenseTower
>>> teacher = keras.Sequential([
...     keras.Input((8,)),
...     keras.layers.Dense(16, activation="relu"),
...     keras.layers.Dense(3),
...     keras.layers.Activation("softmax"),
... ])
>>> x = np.random.rand(64, 8).astype("float32")
>>> y = np.random.randint(0, 3, 64)
>>> student = single_student_classifier(
...     DenseTower(8), num_classes=3, input_shape=(8,), activation="softmax")
>>> student = distill_logits(teacher, student, x, y, epochs=1, verbose=0)
>>> student.predict(x, verbose=0).shape
(64, 3)
"""

import keras

from teacherclass import teacher as teacher_lib
from teacherclass import validation

# Output activations that turn logits into probabilities: the logits are
# their input.
PROBABILITIES = ("softmax", "sigmoid")
_LINEAR = (None, "linear")


def _check_functional(arg, model):
    """Checks that `model` is a built single-input, single-output model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{arg}` must be a keras.Model. "
            f"Received: {arg}={type(model).__name__}"
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"`{arg}` must be a built Functional or Sequential model (one "
            "that starts with keras.Input) with one input and one output. "
            f"Received: {arg}={model.name!r}"
        )


def logits_model(model, share_weights=False):
    """A view of a classifier that outputs its logits.

    The logits are the input of a final `Softmax` or `Activation("softmax"
    | "sigmoid")` layer: the view ends before it and shares every layer
    with `model`. When the activation is fused into the last layer (e.g.
    `Dense(10, activation="softmax")`), the view ends with a linear copy of
    that layer holding its current weights. A model with a linear output
    already outputs logits and is returned as is.

    Args:
        model: a built single-input, single-output functional model.
        share_weights: bool, refuse a fused activation, whose view would
            hold a copy of the last layer's weights: set it when the view
            will be trained (a student).

    Returns:
        A `keras.Model` with `model`'s input and the logits as output.

    Raises:
        ValueError: if the output activation is neither a probability
            (softmax, sigmoid) nor linear, is fused and
            `share_weights=True`, or ends a nested model.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(3, activation="softmax"),
    ... ])
    >>> logits_model(model).layers[-1].get_config()["activation"]
    'linear'
    """
    _check_functional("model", model)
    layer = teacher_lib.output_layer(model)
    inner = teacher_lib.final_layer(model)
    ending = teacher_lib.activation_name(inner)
    if inner is not layer and ending not in _LINEAR:
        raise ValueError(
            f"The model's output layer {layer.name!r} is a nested model "
            f"ending in {ending!r}, whose logits are out of reach "
            "inside it. Build the model flat (the nested model's "
            "layers applied in the outer graph). Received: "
            f"model={model.name!r}"
        )
    name = teacher_lib.activation_name(layer)
    if name in _LINEAR:
        return model
    if name not in PROBABILITIES:
        raise ValueError(
            "Logit distillation needs a model whose output is softmax, "
            "sigmoid or linear, so that its logits are known. Received: "
            f"model={model.name!r} with output activation {name!r}"
        )
    inputs = teacher_lib.input_of(model, layer)
    if isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
        return keras.Model(model.inputs, inputs, name=f"{model.name}_logits")
    if share_weights:
        raise ValueError(
            f"The output layer {layer.name!r} fuses its {name} activation, "
            "so a logits view could only hold a copy of its weights and "
            "training it would not train the model. End the model with a "
            "separate activation layer (see `single_student_classifier`). "
            f"Received: model={model.name!r}"
        )
    config = layer.get_config()
    config.update({"activation": "linear", "name": f"{layer.name}_logits"})
    linear = layer.__class__.from_config(config)
    logits = linear(inputs)
    linear.set_weights(layer.get_weights())
    return keras.Model(model.inputs, logits, name=f"{model.name}_logits")


def single_student_classifier(
    tower,
    num_classes,
    input_shape,
    activation=None,
    input_dtype="float32",
    name="single_student",
):
    """One student as a classifier: input -> tower -> Dense(num_classes).

    The classifier's logits layer is named "logits"; `activation`, when
    given, follows as its own layer named "probabilities" (use the
    teacher's: "softmax" or "sigmoid"), so `logits_model` can read the
    logits without copying weights.

    Args:
        tower: a `keras.layers.Layer` (e.g. a `Tower`), used as is (not
            copied): its output feeds the classifier.
        num_classes: int, the classifier's width (1 for a binary sigmoid
            output).
        input_shape: tuple, one sample's shape (the teacher's input).
        activation: None (logits out), "softmax" or "sigmoid".
        input_dtype: the input's dtype; "int32" for token ids.
        name: the model's name.

    Returns:
        An uncompiled functional `keras.Model`.

    Raises:
        ValueError: on a non-positive `num_classes` or an `activation`
            other than None, "softmax" or "sigmoid".

    Example:

    >>> from teacherclass import DenseTower
    >>> model = single_student_classifier(
    ...     DenseTower(8), num_classes=3, input_shape=(4,))
    >>> model.output.shape
    (None, 3)
    """
    if (
        not isinstance(num_classes, int)
        or isinstance(num_classes, bool)
        or num_classes < 1
    ):
        raise ValueError(
            "`num_classes` must be a positive integer. "
            f"Received: num_classes={num_classes!r}"
        )
    if activation not in (None, *PROBABILITIES):
        raise ValueError(
            "`activation` must be None, 'softmax' or 'sigmoid'. "
            f"Received: activation={activation!r}"
        )
    if not isinstance(tower, keras.layers.Layer):
        raise TypeError(
            f"`tower` must be a keras.layers.Layer. Received: tower={tower!r}"
        )
    inputs = keras.Input(shape=input_shape, dtype=input_dtype, name="inputs")
    outputs = keras.layers.Dense(num_classes, name="logits")(tower(inputs))
    if activation is not None:
        # In float32, as Keras' mixed-precision guide advises (bfloat16
        # probabilities tie: 8 bits of mantissa).
        outputs = keras.layers.Activation(
            activation, dtype="float32", name="probabilities"
        )(outputs)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="teacherclass")
class BernoulliKL(keras.losses.Loss):
    """KL divergence between Bernoulli distributions given as logits.

    `LogitsDistillation`'s KL takes a softmax over the last axis, which for
    one sigmoid logit is always 1. This loss receives the logits already
    divided by the temperature and scales by its square, as the KL does.
    A `keras.losses.Loss`, so that Keras divides it by the replicas of a
    `tf.distribute` strategy (whose gradients it sums), as it does the
    softmax KL.

    Args:
        temperature: float > 0, the distillation temperature.
        reduction: as for `keras.losses.Loss`.
        name: the loss's name.
        dtype: as for `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0], [-1.0]], "float32")
    >>> round(float(BernoulliKL(temperature=1.0)(t, t)), 6)
    0.0
    """

    def __init__(
        self,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="bernoulli_kl",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = temperature

    def call(self, y_true, y_pred):
        target = keras.ops.sigmoid(y_true)
        cross = keras.losses.binary_crossentropy(
            target, y_pred, from_logits=True
        )
        entropy = keras.losses.binary_crossentropy(
            target, y_true, from_logits=True
        )
        return (cross - entropy) * self.temperature**2

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def logits_distillation(width, temperature, sigmoid=None):
    """The `keras.distillation.LogitsDistillation` for `width` logits.

    The KL between the softened distributions, times the temperature's
    square: over a softmax, or for a sigmoid's logits (one unit, or a
    multi-label head's independent units), the Bernoulli KL per unit
    averaged over the units (`BernoulliKL`, on the scale of Keras'
    binary cross-entropy, as the softmax KL is on the categorical
    one's). Both are `keras.losses.Loss` instances, which Keras divides
    by the replicas of a `tf.distribute` strategy.

    Args:
        width: int, the number of logits.
        temperature: float > 0.
        sigmoid: None, or whether the logits are a sigmoid's; None: only
            for one logit.

    Returns:
        A `LogitsDistillation`; its `compute_loss(teacher_logits,
        student_logits)` is the distillation term.
    """
    if sigmoid is None:
        sigmoid = width == 1
    if sigmoid:
        return keras.distillation.LogitsDistillation(
            temperature=temperature, loss=BernoulliKL(temperature)
        )
    # An instance, not the default "kl_divergence": that string becomes a
    # plain function, which LogitsDistillation (Keras 3.15) does not
    # recognise as the KL, so it would skip the softmax and the T^2.
    return keras.distillation.LogitsDistillation(
        temperature=temperature, loss=keras.losses.KLDivergence()
    )


@keras.saving.register_keras_serializable(package="teacherclass")
class RegularizedDistiller(keras.distillation.Distiller):
    """`keras.distillation.Distiller` that adds the student's
    regularization losses (weight regularizers, `add_loss`).

    Keras 3.15's `Distiller.compute_loss` returns the weighted label and
    distillation terms only; a plain `keras.Model` adds `losses` once,
    divided by the replicas, and so does this one (the student's, not
    the frozen teacher's). Arguments are the `Distiller`'s. The logs'
    `loss` holds the regularization; the `Distiller`'s own
    `total_loss` (its weighted label and distillation terms, tracked
    inside Keras' `compute_loss`) does not.
    """

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        from teacherclass import training as training_lib

        total = super().compute_loss(
            x, y, y_pred, sample_weight, training=training
        )
        return total + training_lib.regularization(self.student)


def _check_models(teacher, student_model):
    _check_functional("teacher", teacher)
    _check_functional("student_model", student_model)
    t_shape = tuple(teacher.outputs[0].shape[1:])
    s_shape = tuple(student_model.outputs[0].shape[1:])
    if t_shape != s_shape:
        raise ValueError(
            "The student must output one score per teacher class. Teacher "
            f"output shape: {t_shape}. Received: student_model output "
            f"shape {s_shape}"
        )


def _compile_if_needed(model, y):
    if not model.compiled:
        model.compile(**teacher_lib.default_compile_args(model, y))


def distill_logits(
    teacher,
    student_model,
    x,
    y=None,
    temperature=3.0,
    alpha=0.1,
    epochs=1,
    batch_size=None,
    validation_data=None,
    optimizer="adam",
    **fit_kwargs,
):
    """Trains a student classifier by logit distillation from a teacher.

    Wraps `keras.distillation.Distiller` with a
    `keras.distillation.LogitsDistillation` loss. Both models are read
    through `logits_model`: a softmax (or sigmoid) teacher is distilled
    from the input of its last activation, and the student is trained on
    its logits, with a cross-entropy from logits on the labels. A sigmoid
    teacher (binary, or multi-label with several units) gets a Bernoulli
    KL per unit in place of the softmax KL, and a binary cross-entropy
    per unit on the labels. The teacher is frozen while distilling; its
    layers' `trainable` flags are restored afterwards.

    Args:
        teacher: a trained classifier (softmax, sigmoid or linear output).
        student_model: the student classifier, e.g. from
            `single_student_classifier`, with the teacher's input and
            output shapes and a separate output activation (or none).
        x: inputs, as for `keras.Model.fit` (a dataset may carry labels).
        y: labels; may be None only when `alpha=0` (pure distillation) or
            `x` is a dataset.
        temperature: float > 0, the softmax temperature of both models'
            logits.
        alpha: float in `[0, 1]`, the weight of the label loss (Keras'
            `student_loss_weight`); the distillation loss gets
            `1 - alpha`.
        epochs: int, as for `fit`.
        batch_size: int, as for `fit`.
        validation_data: as for `fit`.
        optimizer: optimizer name or instance for the student.
        **fit_kwargs: passed to the distiller's `fit`. Its logs hold
            `student_loss`, `distillation_loss` and `total_loss` (the
            last without the student's regularization, which `loss`
            adds: `RegularizedDistiller`); pass a
            `keras.callbacks.History()` in `callbacks` to keep them.

    Returns:
        `student_model`, trained, and compiled (if it was not) with a loss
        and accuracy that fit its output, for `evaluate`.

    Raises:
        TypeError: if `teacher` or `student_model` is not a keras.Model.
        ValueError: on a model without a functional graph, mismatched
            output shapes, a student with a fused output activation, a
            `temperature` that is not positive, an `alpha` outside
            `[0, 1]`, or array inputs without labels while `alpha > 0`.
    """
    _check_models(teacher, student_model)
    # Python floats: Keras' distillation loss refuses NumPy scalars.
    temperature = validation.check_real("temperature", temperature, strict=True)
    alpha = validation.check_real("alpha", alpha, maximum=1)
    if alpha > 0 and y is None and hasattr(x, "shape"):
        raise ValueError(
            "`alpha` weighs the label loss, so `y` is needed when alpha > "
            "0; pass alpha=0 for distillation without labels. "
            f"Received: alpha={alpha}, y=None"
        )
    student_logits = logits_model(student_model, share_weights=True)
    distill_into(
        teacher,
        student_logits,
        x,
        y,
        temperature=temperature,
        alpha=alpha,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        optimizer=optimizer,
        **fit_kwargs,
    )
    labels = y if y is not None or hasattr(x, "shape") else x
    _compile_if_needed(student_model, labels)
    return student_model


def distill_into(
    teacher,
    student_logits,
    x,
    y=None,
    temperature=3.0,
    alpha=0.1,
    epochs=1,
    batch_size=None,
    validation_data=None,
    optimizer="adam",
    distiller=None,
    **fit_kwargs,
):
    """Trains a model that outputs logits by distillation from `teacher`.

    The step `distill_logits` and `TeacherClass.refine` share: a
    `keras.distillation.Distiller` from `logits_model(teacher)` to
    `student_logits`, with `LogitsDistillation` (a Bernoulli KL per unit for a
    sigmoid teacher, see `logits_distillation`) and a cross-entropy from logits
    on the labels weighted `alpha`. The teacher's layers' `trainable` flags are
    restored afterwards. The student's regularization losses are added once (see
    `RegularizedDistiller`). Arguments are those of `distill_logits` (checked
    there), and `distiller`: None, or a callable taking the `Distiller`'s
    keyword arguments and returning one (a subclass of `RegularizedDistiller`,
    e.g. refinement's, whose checkpoints are the composed model).

    Returns:
        The distiller's `History`.

    Raises:
        ValueError: on `sample_weight` or `class_weight`, which the
            `Distiller` ignores.
    """
    validation.check_unweighted(
        {**fit_kwargs, "validation_data": validation_data},
        "Logit distillation (keras.distillation.Distiller)",
        x,
    )
    teacher_logits = logits_model(teacher)
    width = teacher_logits.outputs[0].shape[-1]
    distillation_loss = logits_distillation(
        width,
        temperature,
        sigmoid=width == 1 or teacher_lib.sigmoid_output(teacher),
    )
    # Where the labels are, for the loss's form: `y`, or a dataset `x`.
    labels = y if y is not None or hasattr(x, "shape") else x
    from teacherclass import training

    # The Distiller freezes every layer of the teacher it is given, which
    # the logits view shares with `teacher`.
    with training.flags_kept([teacher]):
        distiller = (distiller or RegularizedDistiller)(
            teacher=teacher_logits,
            student=student_logits,
            distillation_losses=distillation_loss,
            student_loss_weight=float(alpha),
        )
        label_args = teacher_lib.label_compile_args(
            teacher, student_logits, labels
        )
        distiller.compile(
            optimizer=optimizer,
            loss=label_args["loss"],
            metrics=None if labels is None else label_args["metrics"],
        )
        history = distiller.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            **fit_kwargs,
        )
    return history


def train_from_scratch(
    student_model,
    x,
    y=None,
    epochs=1,
    batch_size=None,
    validation_data=None,
    optimizer=None,
    **fit_kwargs,
):
    """Trains a student classifier on the labels alone: no teacher.

    Compiles the model first if it is not compiled: `optimizer` (Adam by
    default), accuracy and a cross-entropy that fits its output (see
    `teacher.default_compile_args`).

    Args:
        student_model: the classifier, e.g. from
            `single_student_classifier`.
        x: inputs, as for `keras.Model.fit`.
        y: labels, as for `keras.Model.fit`.
        epochs: int, as for `fit`.
        batch_size: int, as for `fit`.
        validation_data: as for `fit`.
        optimizer: None, or an optimizer name or instance (e.g. with a
            learning-rate schedule) to compile an uncompiled model with.
        **fit_kwargs: passed to `fit` (`callbacks`, `verbose`, ...).

    Returns:
        `student_model`, trained; its `History` is
        `student_model.history`.

    Raises:
        TypeError: if `student_model` is not a keras.Model.
        ValueError: if `optimizer` is given for a compiled model.

    Example:

    >>> import numpy as np
    >>> from teacherclass import DenseTower
    >>> model = single_student_classifier(
    ...     DenseTower(8), 2, input_shape=(4,), activation="softmax")
    >>> x = np.random.rand(32, 4).astype("float32")
    >>> y = np.random.randint(0, 2, 32)
    >>> model = train_from_scratch(model, x, y, verbose=0)
    """
    if not isinstance(student_model, keras.Model):
        raise TypeError(
            "`student_model` must be a keras.Model. "
            f"Received: student_model={type(student_model).__name__}"
        )
    labels = y if y is not None else x
    if optimizer is not None:
        if student_model.compiled:
            raise ValueError(
                "`student_model` is compiled already, with its own "
                "optimizer: pass `optimizer` for an uncompiled model only. "
                f"Received: optimizer={optimizer!r}"
            )
        args = teacher_lib.default_compile_args(student_model, labels)
        student_model.compile(**{**args, "optimizer": optimizer})
    _compile_if_needed(student_model, labels)
    student_model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        **fit_kwargs,
    )
    return student_model


def matched_student(
    build, params, macs, tolerance=0.05, limit=1024, max_width=2**16
):
    """Two widths at which one student matches a class in params AND MACs.

    A baseline is fair when it costs what the class costs in both memory
    and compute. `build(a, b)` makes the student at two widths: `a`
    drives its multiply-adds (e.g. its convolutions' filters), `b` its
    parameters (e.g. a dense bottleneck). For each `a` (searched by
    doubling, then bisecting on the multiply-adds) `b` is the smallest
    width reaching `params` (`architectures.size_to_budget`); the pair
    whose larger relative error is smallest is kept.

    Args:
        build: callable `(a, b) -> keras.Model` (built).
        params: int, the parameters to match (e.g. the composed model's).
        macs: int, the multiply-adds per sample to match
            (`flops.count_macs` of the composed model).
        tolerance: float > 0, the largest relative error accepted on
            each.
        limit: int, the largest `a` tried.
        max_width: int, the largest `b` tried.

    Returns:
        A dict: `widths` (`(a, b)`), `params`, `macs` (the student's),
        `params_error` and `macs_error` (relative, signed).

    Raises:
        ValueError: on a bad budget or tolerance, or when no pair is
            within `tolerance` of both.

    Example:

    >>> def build(a, b):
    ...     inputs = keras.Input((16,))
    ...     x = keras.layers.Dense(a)(inputs)
    ...     return keras.Model(inputs, keras.layers.Dense(b)(x))
    >>> m = matched_student(build, params=700, macs=600)
    >>> m["widths"], abs(m["params_error"]) <= 0.05
    ((5, 103), True)
    """
    from teacherclass import architectures
    from teacherclass.flops import count_macs

    for arg, value in (("params", params), ("macs", macs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"`{arg}` must be a positive integer. Received: {arg}={value!r}"
            )
    tolerance = validation.check_real("tolerance", tolerance, strict=True)
    seen = {}

    def at(a):
        if a not in seen:
            try:
                b = architectures.size_to_budget(
                    lambda b: build(a, b), params, limit=max_width
                )
            except ValueError:
                seen[a] = None
                return None
            model = build(a, b)
            p, m = int(model.count_params()), int(count_macs(model))
            seen[a] = {
                "widths": (a, b),
                "params": p,
                "macs": m,
                "params_error": p / params - 1,
                "macs_error": m / macs - 1,
            }
        return seen[a]

    def over(a):
        entry = at(a)
        return entry is not None and entry["macs"] >= macs

    low, high = 0, 1
    while high <= limit and not over(high):
        low, high = high, 2 * high
    high = min(high, limit)
    while high - low > 1:
        middle = (low + high) // 2
        if over(middle):
            high = middle
        else:
            low = middle
    candidates = [e for e in seen.values() if e is not None]
    if candidates:
        best = min(
            candidates,
            key=lambda e: max(abs(e["params_error"]), abs(e["macs_error"])),
        )
        if max(abs(best["params_error"]), abs(best["macs_error"])) <= (
            tolerance
        ):
            return best
    raise ValueError(
        f"No student from `build` is within {tolerance:.0%} of both "
        f"{params} parameters and {macs} multiply-adds (the closest: "
        f"{best if candidates else None}). Change what each width "
        f"controls. Received: params={params}, macs={macs}"
    )
