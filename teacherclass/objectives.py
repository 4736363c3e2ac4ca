"""Student objectives: how a student's output is scored against its chunk.

An objective is any Keras regression loss (`"mse"` as in the paper,
`"mae"`, `"huber"`, a `keras.losses.Loss` or a function
`(y_true, y_pred) -> per-sample loss`), reduced to its mean over the batch
and, for feature maps, over positions; or an adversarial objective
(`"adversarial"`, `"adversarial_paper"`, an `Adversarial`), where each
student also plays against a discriminator of its own.
"""

import keras
from keras import ops

_REGRESSION = ("mse", "mae", "huber", "log_cosh")


def get(loss):
    """Resolves the `loss` argument of `fit_students` to a function.

    Args:
        loss: a name from ("mse", "mae", "huber", "log_cosh",
            "adversarial", "adversarial_paper"), an `Adversarial`, a
            `keras.losses.Loss`, or a callable `(y_true, y_pred) -> loss`.

    Returns:
        A function `(target, prediction) -> scalar float32`, or an
        `Adversarial` for the adversarial objectives.

    Raises:
        ValueError: if `loss` is an unknown name.

    Example:

    >>> import numpy as np
    >>> mse = get("mse")
    >>> float(mse(np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")))
    1.0
    """
    if isinstance(loss, Adversarial):
        return loss
    if loss == "adversarial":
        return Adversarial()
    if loss == "adversarial_paper":
        return Adversarial(direct_weight=0.0, name="adversarial_paper")
    if isinstance(loss, str):
        if loss not in _REGRESSION:
            raise ValueError(
                f"`loss` must be one of {_REGRESSION + _ADVERSARIAL}, a "
                "keras.losses.Loss or a callable. "
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
        loss: a name from ("mse", "mae", "huber", "log_cosh"), a
            `keras.losses.Loss`, or a callable `(y_true, y_pred) -> loss`
            (per sample, or per position for feature maps).

    Returns:
        A Keras loss function or `keras.losses.Loss`.

    Raises:
        ValueError: on an unknown name or an adversarial objective.

    Example:

    >>> regression_loss("mse").__name__
    'mean_squared_error'
    """
    if isinstance(loss, Adversarial) or (
        isinstance(loss, str) and loss in _ADVERSARIAL
    ):
        raise ValueError(
            "An adversarial objective has no regression loss; it trains "
            f"with its own step. Received: loss={loss!r}"
        )
    get(loss)  # checks it
    if isinstance(loss, str):
        return keras.losses.get(loss)
    return loss


# ----------------------------------------------------------------------------
# Adversarial objectives
# ----------------------------------------------------------------------------

_ADVERSARIAL = ("adversarial", "adversarial_paper")


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
        for arg, value in (
            ("direct_weight", direct_weight),
            ("adversarial_weight", adversarial_weight),
        ):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"`{arg}` must be a non-negative float. "
                    f"Received: {arg}={value!r}"
                )
        hidden = tuple(hidden)
        if not hidden or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0
            for h in hidden
        ):
            raise ValueError(
                "`hidden` must hold at least one positive integer. "
                f"Received: hidden={hidden!r}"
            )
        self.direct_weight = float(direct_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.hidden = hidden
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
