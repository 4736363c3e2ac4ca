"""Refinement: the composed class trained end to end after its students.

Once every student learned its chunk, `refine` builds the composed model
(the students and the head that reads them) and trains it as one on
labels plus logit distillation from the teacher, with
`keras.distillation` (see `baselines.distill_into`). It is the public
`TeacherClass.refine`; its docstring there is the reference.

A dataset whose targets are `{"labels": y, "logits": teacher_logits}`
(e.g. `views.ViewCache.dataset(..., labels=y, with_logits=True)`) is
refined on those cached logits by a `CachedLogitsTrainer`, the same loss
without running the teacher. `Refinement` holds the models, for a caller
that trains them epoch by epoch itself (a resumable run).
"""

import os

import keras
from keras import ops

from teacherclass import baselines
from teacherclass import compose as compose_lib
from teacherclass import distribute
from teacherclass import saving
from teacherclass import teacher as teacher_lib
from teacherclass import training as training_lib
from teacherclass import validation

_CACHED_KEYS = ("labels", "logits")


class Refinement:
    """The composed model of a class, and the view of it that is trained.

    Args:
        tc: a `TeacherClass` whose students are all trained or loaded.
        labels: optional training labels (an array, or a dataset of
            `(x, y)`): `finish` compiles the refined model with the
            teacher's settings, or for an uncompiled teacher with the
            cross-entropy these labels need (one-hot or integer).

    Attributes:
        composed: the composed `keras.Model` (students, clip, head).
        logits: the same model ending at the head's logits: what is
            trained (it shares every weight with `composed`).
        head: the head `composed` reads the students with (under target
            conditioning, a folded copy of the teacher's).
        parts: the layers refinement trains (the students and the head).
    """

    def __init__(self, tc, labels=None):
        tc._check_composable()
        self._teacher = tc.teacher
        # The training labels (an array, or a dataset of `(x, y)`): what
        # `finish` picks an uncompiled teacher's default loss from.
        self.labels = labels
        self.head, clip = tc.target_head()
        inputs = tc.cut.inputs()
        rep = compose_lib.representation_model(
            inputs,
            tc.students,
            clip,
            preprocessor=tc.cut.preprocessor(),
        ).outputs[0]
        self.composed = keras.Model(
            inputs, compose_lib.float32_output(self.head(rep)), name="composed"
        )
        self._head_logits = baselines.logits_model(self.head)
        self.logits = keras.Model(
            inputs, self._head_logits(rep), name="composed_logits"
        )
        self.parts = [*tc.students, self.head]
        self._logits_trained = False

    def _fused_output(self):
        """`(linear copy, original)` of a fused output layer, or None."""
        last = self._head_logits.layers[-1]
        if last in self.head.layers:
            return None
        return last, self.head.get_layer(last.name.removesuffix("_logits"))

    def logits_for_training(self):
        """`logits`, about to be trained.

        A fused output layer's linear copy takes the head's current
        weights the first time (the head may have been tuned through
        `composed`), and `finish` copies them back. Called again (a
        trainer per epoch), the copy keeps what it learned and the head
        catches up with it.
        """
        fused = self._fused_output()
        if fused is not None:
            if self._logits_trained:
                fused[1].set_weights(fused[0].get_weights())
            else:
                fused[0].set_weights(fused[1].get_weights())
        self._logits_trained = True
        return self.logits

    def trainer(self, temperature=4.0, alpha=0.5):
        """A `CachedLogitsTrainer` of `logits` (not compiled), whose
        checkpoints are the composed model (see `Checkpointed`)."""
        return _CheckpointedTrainer(
            self.logits_for_training(),
            temperature=temperature,
            alpha=alpha,
            # None: a one-logit head is a sigmoid's, linear or not.
            sigmoid=(
                teacher_lib.sigmoid_output(self.head, self._teacher) or None
            ),
        ).checkpoint_as(self)

    def current(self):
        """`composed` as trained so far (what a checkpoint writes).

        A fused output activation trained as a linear copy (the logits
        view's last layer, once `logits_for_training` handed it out)
        gives its weights back to the head.
        """
        fused = self._fused_output()
        if fused is not None and self._logits_trained:
            fused[1].set_weights(fused[0].get_weights())
        return self.composed

    def restored(self):
        """After weights were loaded into `composed`: the trained linear
        copy of a fused output takes them from the head."""
        fused = self._fused_output()
        if fused is not None:
            fused[0].set_weights(fused[1].get_weights())

    def finish(self):
        """The refined composed model, compiled like the teacher."""
        composed = self.current()
        compose_lib.compile_like(composed, self._teacher, self.labels)
        return composed


class Checkpointed:
    """Mixin: a refinement trainer whose checkpoints are the composed model.

    The user's callbacks reach the trainer (a `Distiller` or a
    `CachedLogitsTrainer`); its `save`, `save_weights` and `load_weights`
    act on the composed model being refined instead, so `ModelCheckpoint`
    writes a model that loads like the one `refine` returns and
    `BackupAndRestore` restores the students, the head and the trainer's
    optimizer state (kept in the same `.weights.h5` file, see
    `saving.save_optimizer_state`), so a resumed refinement goes on with
    its moments and step count.
    """

    def checkpoint_as(self, refinement):
        """Sends this trainer's saving and loading to `refinement`."""
        self._refinement_ref = training_lib._Ref(refinement)
        self.built = True  # its models are; `BackupAndRestore` asks
        return self

    def save(self, filepath, overwrite=True, **kwargs):
        """Saves the composed model as refined so far, compiled like the
        teacher (as `refine` returns it)."""
        composed = self._refinement_ref.value.finish()
        return composed.save(filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Saves the composed model's weights (see `save`)."""
        composed = self._refinement_ref.value.current()
        existed = os.path.exists(filepath)
        composed.save_weights(filepath, overwrite, **kwargs)
        if overwrite or not existed:
            saving.save_optimizer_state(self.optimizer, filepath)

    def load_weights(self, filepath, **kwargs):
        """Loads weights saved by `save_weights` into the composed model
        (and the trainer's optimizer state, when the file has it)."""
        refinement = self._refinement_ref.value
        refinement.composed.load_weights(filepath, **kwargs)
        refinement.restored()
        saving.load_optimizer_state(
            self.optimizer, self.trainable_variables, filepath
        )


class _CheckpointedDistiller(Checkpointed, baselines.RegularizedDistiller):
    """`keras.distillation.Distiller` checkpointed as the composed model."""


class CachedLogitsTrainer(keras.Model):
    """Labels plus distillation from cached teacher logits: no teacher run.

    The loss of `keras.distillation.Distiller` with `LogitsDistillation`
    (`baselines.logits_distillation`), `alpha` times the compiled label
    loss plus `1 - alpha` times the distillation term, plus the student's
    regularization losses once (as `baselines.RegularizedDistiller`),
    where the teacher's logits come with each batch: `(x, {"labels": y,
    "logits": z})`.

    Args:
        student: a model that outputs logits (trained in place).
        temperature: float > 0, the distillation temperature.
        alpha: float in [0, 1], the weight of the label loss.
        sigmoid: None, or whether the logits are a sigmoid's (a binary
            or multi-label head: the Bernoulli KL per unit, see
            `baselines.logits_distillation`); None: only for one logit.
        **kwargs: base `keras.Model` arguments.

    Example:

    >>> import numpy as np
    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> trainer = CachedLogitsTrainer(student, temperature=2.0, alpha=0.5)
    >>> trainer.compile(
    ...     optimizer="sgd",
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ... )
    >>> x = np.ones((8, 4), "float32")
    >>> targets = {"labels": np.zeros(8, "int32"),
    ...            "logits": np.ones((8, 3), "float32")}
    >>> history = trainer.fit(x, targets, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['loss']
    """

    def __init__(
        self,
        student,
        temperature=4.0,
        alpha=0.5,
        sigmoid=None,
        name="cached_logits_trainer",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        temperature, alpha = _check_temperature_alpha(temperature, alpha)
        self.student = student
        self.temperature = temperature
        self.alpha = alpha
        self.sigmoid = sigmoid
        self._distillation = baselines.logits_distillation(
            student.outputs[0].shape[-1], temperature, sigmoid=sigmoid
        )
        self.built = True

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _targets(self, y):
        if not isinstance(y, dict) or set(y) != set(_CACHED_KEYS):
            raise ValueError(
                "CachedLogitsTrainer's batches are `(x, {'labels': y, "
                "'logits': teacher_logits})`. Received: y="
                f"{sorted(y) if isinstance(y, dict) else type(y).__name__}"
            )
        return y["labels"], y["logits"]

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Compiles the trainer; `loss` is the label loss (any loss
        `keras.Model.compile` takes for one output), weighted `alpha`."""
        if loss is None:
            raise ValueError(
                "CachedLogitsTrainer needs the label loss: pass `loss`. "
                "Received: loss=None"
            )
        label_loss = keras.losses.get(loss)
        if not isinstance(label_loss, keras.losses.Loss):
            # Reduced over the batch and divided by the replicas, as
            # `compile` does a loss function.
            label_loss = _FunctionLoss(label_loss)
        self.label_loss = label_loss
        # As `keras.distillation.Distiller`: Keras' compiled loss would
        # add the regularization losses inside the label term (weighted
        # `alpha`); `compute_loss` adds them once.
        super().compile(
            optimizer=optimizer, loss=None, metrics=metrics, **kwargs
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y_pred is None:
            y_pred = self(x, training=training)
        labels, teacher_logits = self._targets(y)
        label_loss = self.label_loss(labels, y_pred, sample_weight)
        distillation = self._distillation.compute_loss(
            ops.cast(teacher_logits, "float32"), ops.cast(y_pred, "float32")
        )
        # Both terms are `keras.losses.Loss` results, already divided by
        # the replicas (whose gradients Keras sums); the student's
        # regularization losses count once, whatever `alpha`.
        return (
            self.alpha * ops.cast(label_loss, "float32")
            + (1.0 - self.alpha) * distillation
            + training_lib.regularization(self.student)
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = self._targets(y)
        return super().compute_metrics(x, labels, y_pred, sample_weight)


class _FunctionLoss(keras.losses.Loss):
    """A loss function `(y_true, y_pred) -> per-sample loss` as a Loss."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", None))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


class _CheckpointedTrainer(Checkpointed, CachedLogitsTrainer):
    """A `CachedLogitsTrainer` checkpointed as the composed model."""


def _check_temperature_alpha(temperature, alpha):
    """`(temperature, alpha)` as Python floats, checked.

    Keras' distillation loss refuses NumPy scalars such as np.float32.
    """
    return (
        validation.check_real("temperature", temperature, strict=True),
        validation.check_real("alpha", alpha, maximum=1),
    )


def cached_logits(x):
    """Whether `x` is a dataset of `(inputs, {"labels", "logits"})`."""
    import tensorflow as tf

    if not isinstance(x, tf.data.Dataset):
        return False
    spec = x.element_spec
    return (
        isinstance(spec, tuple)
        and len(spec) == 2
        and isinstance(spec[1], dict)
        and set(spec[1]) == set(_CACHED_KEYS)
    )


def refine(
    tc,
    x,
    y,
    epochs=1,
    temperature=4.0,
    alpha=0.5,
    optimizer=None,
    batch_size=None,
    **fit_kwargs,
):
    """Composes `tc`, then trains the composed model end to end.

    See `TeacherClass.refine` (which calls this) for the arguments.

    Args:
        tc: a `TeacherClass` whose students are all trained or loaded.
        x: inputs, as for `fit` (a dataset may carry the labels, or
            `{"labels": y, "logits": teacher_logits}`: cached logits).
        y: labels (None only for a dataset `x`).
        epochs: int >= 1.
        temperature: float > 0, the distillation temperature.
        alpha: float in [0, 1], the weight of the label loss.
        optimizer: optimizer name or instance; default Adam(1e-4).
        batch_size: int, as for `fit`.
        **fit_kwargs: passed to the distiller's (or trainer's) `fit`.

    Returns:
        The refined composed `keras.Model`, compiled like the teacher.

    Raises:
        ValueError: on untrained students, missing labels, a generator
            or `PyDataset` `x`, `epochs` or `batch_size` below 1,
            `initial_epoch` not below `epochs`, a `temperature` that is
            not positive or an `alpha` outside [0, 1].
    """
    import tensorflow as tf

    # `epochs` and `batch_size` are refine's own arguments: checked with
    # the other counts (`initial_epoch` below `epochs`), on both paths.
    counts = {"epochs": epochs, "batch_size": batch_size, **fit_kwargs}
    validation.check_fit_kwargs(counts)
    if validation.is_stream(x):
        raise ValueError(
            "refine() reads arrays or a tf.data.Dataset (the distillation "
            "runs the teacher on the same batches); wrap a generator with "
            "tf.data.Dataset.from_generator. Received: x of type "
            f"{type(x).__name__}"
        )
    if y is None and not isinstance(x, tf.data.Dataset):
        raise ValueError(
            "refine() trains on labels: pass `y`, or a dataset of "
            "`(x, y)` as `x`. Received: y=None"
        )
    temperature, alpha = _check_temperature_alpha(temperature, alpha)
    # The distillation term takes no weights (`keras.distillation`).
    validation.check_unweighted(fit_kwargs, "`refine`", x)
    cached = y is None and cached_logits(x)
    tc._check_composable()
    if not cached:
        validation.check_labelled_fit(tc.teacher, x, y, tc.teacher, counts)
    with distribute.scope(tc._strategy):
        refinement = Refinement(
            tc,
            labels=(
                x.map(lambda a, t: (a, t["labels"]))
                if cached
                else (y if y is not None else x)
            ),
        )
        optimizer = optimizer or keras.optimizers.Adam(1e-4)
        try:
            with training_lib.trainable(refinement.parts, True):
                if cached:
                    trainer = refinement.trainer(temperature, alpha)
                    label_args = teacher_lib.label_compile_args(
                        tc.teacher, refinement.logits, refinement.labels
                    )
                    trainer.compile(
                        optimizer=optimizer,
                        loss=label_args["loss"],
                        metrics=label_args["metrics"],
                    )
                    history = trainer.fit(
                        x,
                        epochs=epochs,
                        batch_size=batch_size,
                        **fit_kwargs,
                    )
                else:
                    history = baselines.distill_into(
                        tc.teacher,
                        refinement.logits_for_training(),
                        x,
                        y,
                        temperature=temperature,
                        alpha=alpha,
                        epochs=epochs,
                        batch_size=batch_size,
                        optimizer=optimizer,
                        distiller=lambda **kw: _CheckpointedDistiller(
                            **kw
                        ).checkpoint_as(refinement),
                        **fit_kwargs,
                    )
        finally:
            # Interrupted too (a callback's error, KeyboardInterrupt): a
            # fused output's linear copy gives what it learned back to
            # the head, which would otherwise keep its weights from
            # before refinement beside refined students.
            refinement.current()
        refined = refinement.finish()
        refined.history = history  # as `fit` leaves it on a model
        return refined
