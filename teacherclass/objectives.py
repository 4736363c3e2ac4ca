"""Student objectives: how a student's output is scored against its chunk.

An objective is any Keras regression loss (`"mse"` as in the paper,
`"mae"`, `"huber"`, a `keras.losses.Loss` or a function
`(y_true, y_pred) -> per-sample loss`), reduced to its mean over the batch
and, for feature maps, over positions; or an adversarial objective
(`"adversarial"`, `"adversarial_paper"`, an `Adversarial`), where each
student also plays against a discriminator of its own; or the head-aware
objective (`"head_aware"`, a `HeadAware`), where each student is also
scored through the teacher's frozen head.
"""

import keras
from keras import ops

from teacherclass import validation

_REGRESSION = (
    "mse",
    "mae",
    "huber",
    "log_cosh",
    "mean_squared_error",
    "mean_absolute_error",
)


def get(loss):
    """Resolves the `loss` argument of `fit_students` to a function.

    Args:
        loss: a name from ("mse", "mae", "huber", "log_cosh",
            "mean_squared_error", "mean_absolute_error", "adversarial",
            "adversarial_paper", "head_aware"), an
            `Adversarial`, a `HeadAware`, a `keras.losses.Loss` (an
            instance, or a class: made with its defaults), or a callable
            `(y_true, y_pred) -> loss`.

    Returns:
        A function `(target, prediction) -> scalar float32`, an
        `Adversarial` for the adversarial objectives, or a `HeadAware`.

    Raises:
        ValueError: if `loss` is an unknown name.

    Example:

    >>> import numpy as np
    >>> mse = get("mse")
    >>> float(mse(np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")))
    1.0
    """
    if isinstance(loss, (Adversarial, HeadAware)):
        return loss
    loss = _instance(loss)
    if loss == "head_aware":
        return HeadAware()
    if loss == "adversarial":
        return Adversarial()
    if loss == "adversarial_paper":
        return Adversarial(direct_weight=0.0, name="adversarial_paper")
    if isinstance(loss, str):
        if loss not in _REGRESSION:
            raise ValueError(
                f"`loss` must be one of {_REGRESSION + _OWN_STEP}, a "
                "keras.losses.Loss (class or instance) or a callable. "
                f"Received: loss={loss!r}"
            )
        loss = keras.losses.get(loss)
    if not callable(loss):
        raise ValueError(
            "`loss` must be a loss name, a keras.losses.Loss or a callable. "
            f"Received: loss={loss!r}"
        )

    def objective(target, prediction):
        prediction = ops.cast(prediction, "float32")
        return ops.mean(ops.cast(loss(target, prediction), "float32"))

    return objective


def regression_loss(loss):
    """Resolves a regression `loss` to what `keras.Model.compile` takes.

    Args:
        loss: a name as for `get`, a `keras.losses.Loss` (instance or
            class), or a callable `(y_true, y_pred) -> loss` (per sample,
            or per position for feature maps).

    Returns:
        A Keras loss function or `keras.losses.Loss`.

    Raises:
        ValueError: on an unknown name or an adversarial objective.

    Example:

    >>> regression_loss("mse").__name__
    'mean_squared_error'
    """
    if isinstance(loss, (Adversarial, HeadAware)) or (
        isinstance(loss, str) and loss in _OWN_STEP
    ):
        raise ValueError(
            "An adversarial or head-aware objective has no regression "
            f"loss; it trains with its own step. Received: loss={loss!r}"
        )
    get(loss)  # checks it
    loss = _instance(loss)
    if isinstance(loss, str):
        return keras.losses.get(loss)
    return loss


def _instance(loss):
    """A `keras.losses.Loss` subclass instantiated with its defaults (as
    `keras.Model.compile` does): called on `(y_true, y_pred)`, the class
    would build a loss named after the targets."""
    if isinstance(loss, type) and issubclass(loss, keras.losses.Loss):
        return loss()
    return loss


# ----------------------------------------------------------------------------
# Adversarial objectives
# ----------------------------------------------------------------------------

_ADVERSARIAL = ("adversarial", "adversarial_paper")
_OWN_STEP = _ADVERSARIAL + ("head_aware",)


class Adversarial:
    """Settings of an adversarial student objective.

    Each trained student gets its own discriminator, a small MLP over its
    chunk (applied per position for feature-map chunks, as `Dense` acts on
    the last axis) with two heads: a real/fake logit and a regression of
    the chunk. Per batch, in one step with two optimizers (the students',
    and one for the discriminators):

    - discriminator loss: binary cross-entropy telling the teacher's chunk
      (real) from the student's output (fake), plus the regression head's
      MSE to the teacher's chunk on the real chunk;
    - student (generator) loss: `adversarial_weight` x the cross-entropy of
      the discriminator calling its output real, plus the MSE between the
      regression head's reading of its output and the teacher's chunk,
      plus `direct_weight` x the MSE between its output and the chunk.

    `loss="adversarial_paper"` is the authors' version (`direct_weight=0`:
    the student is pulled toward its chunk only through the
    discriminator); `loss="adversarial"` adds the direct MSE
    (`direct_weight=1`), which keeps the regression stable early on, when
    the discriminator knows nothing yet.

    Discriminators exist while `fit_students` runs only: they are neither
    weights of the `TeacherClass` nor saved with it or its students.

    Args:
        direct_weight: float >= 0, weight of the direct MSE term.
        adversarial_weight: float >= 0, weight of the real/fake term.
        hidden: tuple of ints, the discriminators' hidden widths.
        optimizer: the discriminators' optimizer, a name or an instance
            (a fresh copy is made per `fit_students` call).
        name: str, the name `fit_students` reports.

    Raises:
        ValueError: on a weight that is not a finite number >= 0 (bools
            are not numbers here), or `hidden` not a non-empty sequence
            of positive integers.

    Example:

    >>> objective = Adversarial(direct_weight=0.5, hidden=(32,))
    >>> get(objective) is objective
    True
    >>> get("adversarial_paper").direct_weight
    0.0
    """

    def __init__(
        self,
        direct_weight=1.0,
        adversarial_weight=0.1,
        hidden=(64, 64),
        optimizer="adam",
        name="adversarial",
    ):
        direct_weight = validation.check_real("direct_weight", direct_weight)
        adversarial_weight = validation.check_real(
            "adversarial_weight", adversarial_weight
        )
        try:
            widths = tuple(hidden)
        except TypeError:
            widths = ()
        if not widths or not all(
            validation.is_int(h) and h > 0 for h in widths
        ):
            raise ValueError(
                "`hidden` must be a sequence of at least one positive "
                f"integer, e.g. (64, 64). Received: hidden={hidden!r}"
            )
        self.direct_weight = direct_weight
        self.adversarial_weight = adversarial_weight
        self.hidden = tuple(int(h) for h in widths)
        self.optimizer = optimizer
        self.name = name

    def __repr__(self):
        return (
            f"Adversarial(direct_weight={self.direct_weight}, "
            f"adversarial_weight={self.adversarial_weight}, "
            f"hidden={self.hidden}, name={self.name!r})"
        )

    def make_optimizer(self):
        """A fresh discriminator optimizer from `optimizer`."""
        if isinstance(self.optimizer, keras.optimizers.Optimizer):
            return self.optimizer.__class__.from_config(
                self.optimizer.get_config()
            )
        return keras.optimizers.get(self.optimizer)

    def discriminator(self, chunk_shape, name="discriminator"):
        """Builds one discriminator for chunks of shape `chunk_shape`.

        Args:
            chunk_shape: tuple, one sample's chunk shape, `(width,)` or
                `(..., width)` for feature maps.
            name: the model's name.

        Returns:
            A built functional `keras.Model` mapping a chunk to
            `(logit, regression)`: shapes `(..., 1)` and `chunk_shape`.
        """
        inputs = keras.Input(shape=tuple(chunk_shape), name="chunk")
        x = inputs
        for i, width in enumerate(self.hidden):
            x = keras.layers.Dense(width, name=f"hidden_{i}")(x)
            x = keras.layers.LeakyReLU(0.2, name=f"leaky_relu_{i}")(x)
        logit = keras.layers.Dense(1, name="real_fake")(x)
        regression = keras.layers.Dense(chunk_shape[-1], name="regression")(x)
        return keras.Model(inputs, [logit, regression], name=name)

    def discriminator_loss(self, discriminator, real, fake):
        """The discriminator's loss on one batch of real and fake chunks."""
        real_logit, real_regression = _f32(discriminator(real, training=True))
        fake_logit, _ = _f32(discriminator(fake, training=True))
        adversarial = _bce(ops.ones_like(real_logit), real_logit) + _bce(
            ops.zeros_like(fake_logit), fake_logit
        )
        return adversarial + _mse(real, real_regression)

    def generator_loss(self, discriminator, real, fake):
        """A student's loss: fool the discriminator, match its chunk."""
        fake = ops.cast(fake, "float32")
        logit, regression = _f32(discriminator(fake, training=True))
        loss = self.adversarial_weight * _bce(ops.ones_like(logit), logit)
        loss = loss + _mse(real, regression)
        if self.direct_weight:
            loss = loss + self.direct_weight * _mse(real, fake)
        return loss


def _f32(outputs):
    return [ops.cast(o, "float32") for o in outputs]


def _bce(target, logit):
    return ops.mean(ops.binary_crossentropy(target, logit, from_logits=True))


def _mse(target, prediction):
    return ops.mean(ops.square(ops.cast(prediction, "float32") - target))


def is_adversarial(objective):
    """Whether `get` returned an adversarial objective."""
    return isinstance(objective, Adversarial)


# ----------------------------------------------------------------------------
# Head-aware objective
# ----------------------------------------------------------------------------


class HeadAware:
    """Settings of the head-aware student objective.

    Student i is scored on its chunk and through the teacher's frozen
    head: its output replaces chunk i in the teacher's cached
    representation of the same sample (the other chunks stay the
    teacher's, so students stay independent), the head runs up to its
    logits (before a final softmax or sigmoid), and

        loss_i = feature_weight * MSE(chunk_i, student_i)
               + distill_weight * T^2 * KL(softmax(t / T) || softmax(s / T))
               + label_weight * cross-entropy(labels, s)

    with `t` the teacher's logits (cached with the representation: still
    one teacher pass per sample) and `s` the head's logits on the substituted
    representation. A sigmoid head (binary, or multi-label with several units)
    gets the Bernoulli KL per unit and a binary cross-entropy per unit on the
    labels; heads with feature-map outputs (segmentation) are scored per
    position, averaged. The label term needs labels (`fit_students(x, y,
    loss=HeadAware(label_weight=...))`). The head is the one the composed model
    uses (folded into the targets' coordinates under target conditioning), with
    the composed model's clip before it; its weights do not change.

    This is SRRL (Yang et al., ICLR 2021) for a class of students: the
    MSE weighs every feature equally, while the head reads a few logit
    directions; the distillation term weighs a student's errors by what
    they do to the teacher's prediction.

    Args:
        temperature: float > 0, `T`.
        feature_weight: float >= 0, weight of the chunk MSE.
        distill_weight: float >= 0, weight of the logit KL.
        label_weight: float >= 0, weight of the label cross-entropy.
            At least one of the three weights must be positive.
        name: str, the name reports use.

    Raises:
        ValueError: on a weight or temperature that is not a finite
            number of the right sign (bools are not numbers here), or
            all three weights 0.

    Example:

    >>> objective = HeadAware(temperature=2.0, label_weight=0.5)
    >>> get("head_aware").temperature
    4.0
    >>> HeadAware.from_config(objective.get_config()).label_weight
    0.5
    """

    def __init__(
        self,
        temperature=4.0,
        feature_weight=1.0,
        distill_weight=1.0,
        label_weight=0.0,
        name="head_aware",
    ):
        temperature = validation.check_real(
            "temperature", temperature, strict=True
        )
        given = {
            "feature_weight": feature_weight,
            "distill_weight": distill_weight,
            "label_weight": label_weight,
        }
        weights = {k: validation.check_real(k, v) for k, v in given.items()}
        if not any(weights.values()):
            # A zero loss leaves the students as they start, marked trained.
            received = ", ".join(f"{k}={v!r}" for k, v in given.items())
            raise ValueError(
                "At least one of `feature_weight`, `distill_weight` and "
                "`label_weight` must be positive: with all three 0 the "
                f"loss is 0 and the students learn nothing. Received: "
                f"{received}"
            )
        self.temperature = temperature
        self.feature_weight = weights["feature_weight"]
        self.distill_weight = weights["distill_weight"]
        self.label_weight = weights["label_weight"]
        self.name = name

    def __repr__(self):
        return (
            f"HeadAware(temperature={self.temperature}, "
            f"feature_weight={self.feature_weight}, "
            f"distill_weight={self.distill_weight}, "
            f"label_weight={self.label_weight}, name={self.name!r})"
        )

    def get_config(self):
        """The constructor's arguments, JSON-serializable."""
        return {
            "temperature": self.temperature,
            "feature_weight": self.feature_weight,
            "distill_weight": self.distill_weight,
            "label_weight": self.label_weight,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        """Rebuilds a `HeadAware` from `get_config`'s dict."""
        return cls(**config)

    def distillation(self, teacher_logits, student_logits, sigmoid=None):
        """`T^2` x the KL from the teacher's to the student's logits.

        Softmax over the last axis; for a sigmoid head (`sigmoid=True`:
        a binary or multi-label head's independent units), the Bernoulli
        KL per unit, averaged over the units (as `baselines.BernoulliKL`).
        `sigmoid=None`: a sigmoid only for a one-unit last axis.
        Averaged over the batch and any positions.
        """
        t = ops.cast(teacher_logits, "float32") / self.temperature
        s = ops.cast(student_logits, "float32") / self.temperature
        if _sigmoid(sigmoid, t):
            p = ops.sigmoid(t)
            kl = p * (ops.log_sigmoid(t) - ops.log_sigmoid(s)) + (1 - p) * (
                ops.log_sigmoid(-t) - ops.log_sigmoid(-s)
            )
            return self.temperature**2 * ops.mean(kl)
        log_p = ops.log_softmax(t, axis=-1)
        kl = ops.exp(log_p) * (log_p - ops.log_softmax(s, axis=-1))
        return self.temperature**2 * ops.mean(ops.sum(kl, axis=-1))

    def label_loss(
        self, labels, student_logits, ignore_class=None, sigmoid=None
    ):
        """Cross-entropy of the student's logits against labels.

        Integer labels (`(batch, ...)` or `(batch, ..., 1)`), one-hot
        labels (the logits' shape), or for a sigmoid head (`sigmoid`, as
        for `distillation`) 0/1 labels of the logits' shape, scored by a
        binary cross-entropy per unit. `ignore_class`: an integer label
        left out of the mean (a segmentation's void, as the teacher's
        loss ignores it).
        """
        logits = ops.cast(student_logits, "float32")
        width = logits.shape[-1]
        if _sigmoid(sigmoid, logits):
            labels = ops.reshape(ops.cast(labels, "float32"), ops.shape(logits))
            loss = ops.binary_crossentropy(labels, logits, from_logits=True)
            return ops.mean(loss)
        if len(labels.shape) == len(logits.shape) and labels.shape[-1] == width:
            loss = ops.categorical_crossentropy(
                ops.cast(labels, "float32"), logits, from_logits=True
            )
            return ops.mean(loss)
        if len(labels.shape) == len(logits.shape):
            labels = ops.squeeze(labels, axis=-1)
        labels = ops.cast(labels, "int32")
        if ignore_class is None:
            loss = ops.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
            return ops.mean(loss)
        keep = ops.not_equal(labels, ignore_class)
        loss = ops.sparse_categorical_crossentropy(
            ops.where(keep, labels, 0), logits, from_logits=True
        )
        keep = ops.cast(keep, "float32")
        return ops.sum(loss * keep) / ops.maximum(ops.sum(keep), 1.0)

    def loss(
        self,
        chunk,
        prediction,
        teacher_logits,
        student_logits,
        labels,
        ignore_class=None,
        sigmoid=None,
    ):
        """One student's loss (see the class), a float32 scalar.

        Args:
            chunk: the teacher's chunk (its target).
            prediction: the student's output.
            teacher_logits: the teacher's logits.
            student_logits: the head's logits with the student's output
                in place of its chunk.
            labels: the labels, or None (the label term is then skipped).
            ignore_class: an integer label the label term leaves out.
            sigmoid: None, or whether the head ends in a sigmoid (see
                `distillation`).
        """
        prediction = ops.cast(prediction, "float32")
        total = self.feature_weight * _mse(chunk, prediction)
        if self.distill_weight:
            total = total + self.distill_weight * self.distillation(
                teacher_logits, student_logits, sigmoid
            )
        if self.label_weight and labels is not None:
            total = total + self.label_weight * self.label_loss(
                labels, student_logits, ignore_class, sigmoid
            )
        return total


def _sigmoid(sigmoid, logits):
    """Whether `logits` are a sigmoid's: `sigmoid`, or when None, a
    one-unit last axis."""
    return logits.shape[-1] == 1 if sigmoid is None else bool(sigmoid)


def is_head_aware(objective):
    """Whether `get` returned a head-aware objective."""
    return isinstance(objective, HeadAware)


def default_for(head):
    """The objective `fit_students(loss="auto")` trains with, for a head.

    `HeadAware()` (chunk MSE plus the KL through the frozen head, no
    labels) when the head ends in a softmax or a sigmoid (of any width:
    a multi-label head is scored per unit), whose inputs are logits: the
    head classifies, and scoring the students through it
    won on the validation splits of MNIST, Fashion-MNIST and the
    short-run defaults setting (`benchmarks/results/defaults.json`,
    `benchmarks/results/mnist.md`). `"mse"`, the paper's objective,
    otherwise: a linear or other head may not output logits (a
    regression), so the KL would mean nothing.

    Args:
        head: the class's head (`TeacherClass.head`), a functional model.

    Returns:
        A `HeadAware` or `"mse"`.

    Example:

    >>> inputs = keras.Input((8,))
    >>> classifier = keras.Model(
    ...     inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    >>> type(default_for(classifier)).__name__
    'HeadAware'
    >>> regressor = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    >>> default_for(regressor)
    'mse'
    """
    from teacherclass import baselines
    from teacherclass import teacher as teacher_lib

    outputs = getattr(head, "outputs", None)
    if not outputs or len(outputs) != 1:
        return "mse"
    # Past a float32 cast (mixed precision) and into a nested head.
    layer = teacher_lib.final_layer(head)
    if teacher_lib.activation_name(layer) in baselines.PROBABILITIES:
        return HeadAware()
    return "mse"
