"""Student training: one small Keras model per `fit_students` call.

`StudentTrainer` follows `keras.distillation.Distiller`: a `keras.Model`
that holds the students it trains, whose `call` returns
`{"student_i": tower_i(x)}`, compiled with one Keras loss per student (a
dict of losses). Keras' own loss handling then gives the per-student loss
metrics (`student_i_loss`), the summed `loss`, loss scaling for mixed
precision and for the replicas of a `tf.distribute` strategy.
`compute_loss` only turns the batch's targets, the teacher's whole
representation, into one chunk per student (or first computes them with
the trunk, for augmented batches that come without targets).

`AdversarialTrainer` is the adversarial objective (`objectives.Adversarial`):
the same model, plus one discriminator per student and a second optimizer,
with its own `train_step` (the two-optimizer step of the Keras GAN guide).
The discriminators live in the trainer only, so they are never saved with
the `TeacherClass`.

`HeadAwareTrainer` is the head-aware objective (`objectives.HeadAware`):
the same model with its own `compute_loss`, scoring each student's output
through the frozen head (held out of sight of Keras' tracking, so its
weights are never the trainer's) in place of its chunk of the teacher's
representation.

Targets may come as the representation alone, or as a dict with the
teacher's `logits` and the `labels` beside its `features` (see
`features.Features`); with target conditioning the trainer moves the
representation into the conditioned coordinates (`transform`) first.

The trainer is what `fit_students`' callbacks see as their `model`, and
what they log and stop. What they save is the `TeacherClass` being
trained: the trainer's `save`, `save_weights` and `load_weights` are the
class's. So `ModelCheckpoint` writes a `.keras` file that loads as a
`TeacherClass`, `ModelCheckpoint(save_weights_only=True)` a weights file
for `tc.load_weights`, Keras Tuner's best-epoch weights load into the
`TeacherClass` its hypermodel builds, and `BackupAndRestore` restores the
students' weights (the students' optimizer starts afresh on resuming:
it belongs to one `fit_students` call).
"""

import contextlib
import os

import keras
from keras import ops

from teacherclass import chunking
from teacherclass import objectives
from teacherclass import saving

_ADAM = "adam"


class _Ref:
    """Holds an object out of sight of Keras' attribute tracking."""

    def __init__(self, value):
        self.value = value


def _names(indices):
    return [f"student_{i}" for i in indices]


class StudentTrainer(keras.Model):
    """Trains some of a class's students on `(inputs, representation)`.

    Args:
        students: the towers to train, in the order of `indices`. They are
            shared, not copied: training the trainer trains them.
        indices: their student indices (their chunks).
        chunks: the widths of every chunk of the representation.
        targets: None, or a function `x -> representation` (the teacher's
            trunk) for batches that come as `(x,)` without targets.
        owner: None, or the `TeacherClass` the students belong to: what
            `save`, `save_weights` and `load_weights` act on.
        transform: None, or a function mapping the representation to the
            students' targets (target conditioning).
        **kwargs: base `keras.Model` arguments.

    Example:

    >>> import numpy as np
    >>> towers = [keras.layers.Dense(2), keras.layers.Dense(3)]
    >>> trainer = StudentTrainer(towers, indices=(0, 1), chunks=(2, 3))
    >>> trainer.compile(optimizer="sgd", loss="mse")
    >>> x = np.ones((8, 4), "float32")
    >>> features = np.ones((8, 5), "float32")
    >>> history = trainer.fit(x, features, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['loss', 'student_0_loss', 'student_1_loss']
    """

    def __init__(
        self,
        students,
        indices,
        chunks,
        targets=None,
        owner=None,
        name="student_trainer",
        transform=None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.students = list(students)
        self.indices = tuple(int(i) for i in indices)
        if len(self.students) != len(self.indices):
            raise ValueError(
                "`students` and `indices` must have the same length. "
                f"Received: {len(self.students)} students, "
                f"indices={self.indices}"
            )
        bounds = chunking.bounds(chunks)
        self.bounds = tuple(bounds[i] for i in self.indices)
        # Not tracked (a plain function; a holder Keras does not look
        # into): the teacher's weights must not become the trainer's.
        self._targets = targets
        self._transform = transform
        self._owner_ref = _Ref(owner)
        self._lone_loss = None
        self._lone_objective = None
        # Its towers (and discriminators) are built: so is the trainer,
        # and `load_weights` works before any fit.
        self.built = True

    @property
    def _owner(self):
        return self._owner_ref.value

    def call(self, inputs, training=None):
        return {
            name: tower(inputs, training=training)
            for name, tower in zip(_names(self.indices), self.students)
        }

    def unpack(self, x, y=None):
        """The batch's targets: `(representation, logits, labels)`.

        Args:
            x: the batch of (students') inputs.
            y: the teacher's representation of `x`, a dict holding it as
                `features` (and maybe `logits`, `labels`), or None (or a
                dict without `features`) to compute it with `targets`.

        Returns:
            The representation in the students' coordinates (float32),
            the teacher's logits or None, and the labels or None.
        """
        logits = labels = None
        if isinstance(y, dict):
            logits = y.get("logits")
            labels = y.get("labels")
            y = y.get("features")
        if y is None:
            if self._targets is None:
                raise ValueError(
                    "The batch has no targets and the trainer has no trunk "
                    "to compute them. Received: y=None"
                )
            computed = self._targets(x)
            if isinstance(computed, tuple):
                computed, logits = computed
                logits = ops.stop_gradient(logits)
            y = ops.stop_gradient(computed)
        y = ops.cast(y, "float32")
        if self._transform is not None:
            y = self._transform(y)
        return y, logits, labels

    def targets(self, x, y=None):
        """The chunk each student regresses, as a dict like `call`'s.

        Args:
            x: the batch of (students') inputs.
            y: the teacher's representation of `x` (see `unpack`), or None
                to compute it with `targets` (augmented batches).
        """
        y, _, _ = self.unpack(x, y)
        return {
            name: y[..., start:stop]
            for name, (start, stop) in zip(_names(self.indices), self.bounds)
        }

    def compile(self, optimizer=_ADAM, loss="mse", **kwargs):
        """Compiles with `loss` for every student (a dict of losses).

        Args:
            optimizer: the students' optimizer.
            loss: a regression loss for `objectives.regression_loss`.
            **kwargs: other `keras.Model.compile` arguments
                (`steps_per_execution`, ...).
        """
        loss = objectives.regression_loss(loss)
        names = _names(self.indices)
        if len(names) == 1:
            # Keras names per-output losses only for several outputs;
            # `student_{i}_loss` is documented for one student too.
            self._lone_loss = keras.metrics.Mean(name=f"{names[0]}_loss")
            self._lone_objective = objectives.get(loss)
        super().compile(
            optimizer=optimizer, loss={n: loss for n in names}, **kwargs
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y_pred is None:
            y_pred = self(x, training=training)
        targets = self.targets(x, y)
        if self._lone_loss is not None:
            name = _names(self.indices)[0]
            self._lone_loss.update_state(
                self._lone_objective(targets[name], y_pred[name]),
                sample_weight=_batch_size(y_pred),
            )
        return super().compute_loss(
            x, targets, y_pred, sample_weight, training=training
        )

    def save(self, filepath, overwrite=True, **kwargs):
        """Saves the `TeacherClass` being trained, not the trainer.

        `ModelCheckpoint` calls this: its file loads as a `TeacherClass`.
        A trainer built without an owner saves itself as Keras would.
        """
        if self._owner is None:
            return super().save(filepath, overwrite=overwrite, **kwargs)
        return self._owner.save(filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Saves the `TeacherClass`'s weights (see `save`), and the
        students' optimizer state in the same `.weights.h5` file (for
        `BackupAndRestore`; the class ignores it when it loads them).
        An adversarial trainer's discriminators and their optimizer are
        not saved: a resumed run starts them afresh."""
        if self._owner is None:
            return super().save_weights(filepath, overwrite, **kwargs)
        existed = os.path.exists(filepath)
        self._owner.save_weights(filepath, overwrite, **kwargs)
        if overwrite or not existed:
            saving.save_optimizer_state(self.optimizer, filepath)

    def load_weights(self, filepath, **kwargs):
        """Loads weights saved by `save_weights` into the `TeacherClass`
        (and the students' optimizer state, when the file has it)."""
        if self._owner is None:
            return super().load_weights(filepath, **kwargs)
        self._owner.load_weights(filepath, **kwargs)
        saving.load_optimizer_state(
            self.optimizer, self._optimized_variables(), filepath
        )

    def _optimized_variables(self):
        """The variables `optimizer` trains."""
        return self.trainable_variables

    def get_compile_config(self):
        # Nothing to restore: a trainer is rebuilt for every fit.
        return None


class AdversarialTrainer(StudentTrainer):
    """A `StudentTrainer` for an `objectives.Adversarial` objective.

    Each trained student plays against a discriminator of its own, built
    here and trained by a second optimizer in the same step: one forward
    pass, two tapes; the discriminators learn from the students' detached
    outputs, the students from the discriminators' verdict (see
    `objectives.Adversarial`). TensorFlow backend only.

    Args:
        students, indices, chunks, targets, owner: as for
            `StudentTrainer`.
        objective: the `objectives.Adversarial`.
        chunk_shapes: one sample's chunk shape per student, e.g. `(8,)`.
        **kwargs: base `keras.Model` arguments.

    Its metrics: `loss` (the generators' sum), and per student
    `student_i_loss` (generator), `student_i_d_loss` (discriminator) and
    `student_i_mse` (the student's regression error).
    """

    def __init__(
        self,
        students,
        indices,
        chunks,
        objective,
        chunk_shapes,
        targets=None,
        owner=None,
        **kwargs,
    ):
        super().__init__(
            students, indices, chunks, targets=targets, owner=owner, **kwargs
        )
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                "Adversarial student objectives have a TensorFlow train "
                f"step only. Received: loss={objective!r} on backend "
                f"{keras.backend.backend()!r}"
            )
        self.objective = objective
        self.discriminators = [
            objective.discriminator(shape, name=f"discriminator_{i}")
            for i, shape in zip(self.indices, chunk_shapes)
        ]
        self.d_optimizer = objective.make_optimizer()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.trackers = []
        for i in self.indices:
            self.trackers.append(
                [
                    keras.metrics.Mean(name=f"student_{i}_loss"),
                    keras.metrics.Mean(name=f"student_{i}_d_loss"),
                    keras.metrics.Mean(name=f"student_{i}_mse"),
                ]
            )

    @property
    def metrics(self):
        # The documented Keras pattern for a custom train_step: list the
        # trackers it updates (there is no compiled loss).
        return [self.loss_tracker] + [m for ms in self.trackers for m in ms]

    def compile(self, optimizer=_ADAM, **kwargs):
        """Compiles the students' (generators') optimizer; no loss."""
        kwargs.pop("loss", None)
        keras.Model.compile(self, optimizer=optimizer, **kwargs)
        # float16 discriminators need their loss scaled like the students'
        # (Keras wraps only the compiled optimizer).
        policies = {d.dtype_policy.name for d in self.discriminators}
        if "mixed_float16" in policies and not isinstance(
            self.d_optimizer, keras.optimizers.LossScaleOptimizer
        ):
            self.d_optimizer = keras.optimizers.LossScaleOptimizer(
                self.d_optimizer
            )
        # Built eagerly: the traced step must not create variables. The
        # students' optimizer too, on the students' weights alone (else
        # `BackupAndRestore` builds it on every trainable variable,
        # discriminators included, before it loads a saved state).
        self.d_optimizer.build(self._d_variables())
        self.optimizer.build(self.student_weights)

    def _optimized_variables(self):
        return self.student_weights

    @property
    def student_weights(self):
        """The trainable weights of the students (not discriminators)."""
        return [w for s in self.students for w in s.trainable_weights]

    def _d_variables(self):
        return [w for d in self.discriminators for w in d.trainable_weights]

    def _step(self, data, training):
        import contextlib

        import tensorflow as tf

        # A bare `x` (augmented batches) or `(x, y)`, as Keras' own steps.
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        g_tape = tf.GradientTape() if training else contextlib.nullcontext()
        d_tape = tf.GradientTape() if training else contextlib.nullcontext()
        with g_tape, d_tape:
            y_pred = self(x, training=training)
            targets = self.targets(x, y)
            g_total = 0.0
            d_total = 0.0
            for name, disc, (g_m, d_m, e_m) in zip(
                _names(self.indices), self.discriminators, self.trackers
            ):
                real = targets[name]
                fake = y_pred[name]
                d_loss = self.objective.discriminator_loss(
                    disc, real, ops.stop_gradient(ops.cast(fake, "float32"))
                )
                g_loss = self.objective.generator_loss(disc, real, fake)
                batch = _batch_size(fake)
                g_m.update_state(g_loss, sample_weight=batch)
                d_m.update_state(d_loss, sample_weight=batch)
                e_m.update_state(
                    ops.mean(ops.square(ops.cast(fake, "float32") - real)),
                    sample_weight=batch,
                )
                g_total = g_total + g_loss
                d_total = d_total + d_loss
            # The students' regularizers, as Keras' `compute_loss` adds
            # them (not the discriminators'): trained and logged.
            g_total = g_total + _penalty(
                [loss for s in self.students for loss in s.losses]
            )
            if training:
                # Per replica, as Keras' losses are (see `_per_replica`).
                g_scaled = self.optimizer.scale_loss(_per_replica(g_total))
                d_scaled = self.d_optimizer.scale_loss(_per_replica(d_total))
        if training:
            g_vars = self.student_weights
            self.optimizer.apply(g_tape.gradient(g_scaled, g_vars), g_vars)
            d_vars = self._d_variables()
            self.d_optimizer.apply(d_tape.gradient(d_scaled, d_vars), d_vars)
        self.loss_tracker.update_state(g_total, sample_weight=ops.shape(x)[0])
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        return self._step(data, training=True)

    def test_step(self, data):
        return self._step(data, training=False)


class HeadAwareTrainer(StudentTrainer):
    """A `StudentTrainer` for an `objectives.HeadAware` objective.

    Student i's output replaces chunk i of the batch's representation
    (the rest stay the teacher's), the clip and the frozen head run on
    that, and `objective.loss` scores it against the chunk, the teacher's
    logits and, when the batch has them, the labels. The loss of student
    i depends on no other student's output, so training all together is
    training each alone. The head is held out of Keras' tracking: it is
    never trained nor saved with the trainer.

    Args:
        students, indices, chunks, targets, owner, transform: as for
            `StudentTrainer`; `targets` (augmented batches) returns
            `(representation, logits)`.
        objective: the `objectives.HeadAware`.
        logits_head: a function from the representation, in the
            students' coordinates, to the head's logits.
        clip: None, or the clip the composed model applies before the
            head (a callable).
        ignore_class: None, or an integer label the label term leaves
            out (the teacher's loss `ignore_class`).
        sigmoid: None, or whether the head ends in a sigmoid (its units
            are scored as Bernoulli units, see `objectives.HeadAware`);
            None: only a one-unit head.
        **kwargs: base `keras.Model` arguments.

    Its metrics: `loss` (the sum) and `student_i_loss` per student.
    """

    def __init__(
        self,
        students,
        indices,
        chunks,
        objective,
        logits_head,
        clip=None,
        targets=None,
        owner=None,
        transform=None,
        ignore_class=None,
        sigmoid=None,
        **kwargs,
    ):
        super().__init__(
            students,
            indices,
            chunks,
            targets=targets,
            owner=owner,
            transform=transform,
            **kwargs,
        )
        self.objective = objective
        self.ignore_class = ignore_class
        self.sigmoid = sigmoid
        self._head_ref = _Ref(logits_head)
        self._clip_ref = _Ref(clip)
        self.trackers = [
            keras.metrics.Mean(name=f"student_{i}_loss") for i in self.indices
        ]

    @property
    def metrics(self):
        base = [m for m in super().metrics if m.name == "loss"]
        return base + list(self.trackers)

    def compile(self, optimizer=_ADAM, **kwargs):
        """Compiles the students' optimizer; the loss is the objective."""
        kwargs.pop("loss", None)
        keras.Model.compile(self, optimizer=optimizer, **kwargs)

    def student_logits(self, representation, start, stop, prediction):
        """The head's logits with `prediction` in place of a chunk."""
        parts = [
            p
            for p in (
                representation[..., :start],
                prediction,
                representation[..., stop:],
            )
            if p.shape[-1] != 0
        ]
        rep = parts[0] if len(parts) == 1 else ops.concatenate(parts, -1)
        clip = self._clip_ref.value
        if clip is not None:
            rep = clip(rep)
        return ops.cast(self._head_ref.value(rep), "float32")

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y_pred is None:
            y_pred = self(x, training=training)
        representation, logits, labels = self.unpack(x, y)
        needs_head = self.objective.distill_weight or (
            self.objective.label_weight and labels is not None
        )
        if self.objective.distill_weight and logits is None:
            raise ValueError(
                "The head-aware objective needs the teacher's logits with "
                "the representation. Received: a batch without logits"
            )
        total = 0.0
        for name, (start, stop), tracker in zip(
            _names(self.indices), self.bounds, self.trackers
        ):
            prediction = ops.cast(y_pred[name], "float32")
            student_logits = None
            if needs_head:
                student_logits = self.student_logits(
                    representation, start, stop, prediction
                )
            loss = self.objective.loss(
                representation[..., start:stop],
                prediction,
                logits,
                student_logits,
                labels,
                self.ignore_class,
                self.sigmoid,
            )
            tracker.update_state(loss, sample_weight=_batch_size(prediction))
            total = total + loss
        # Keras' own losses divide a replica's loss by the replicas (whose
        # gradients it then sums); this loss is not a Keras loss, so the
        # same is done here; `regularization` divides its own sum.
        return _per_replica(total) + regularization(self)


def _batch_size(outputs):
    """The batch size of `outputs` (a tensor or a structure of them): the
    weight Keras gives a batch's loss in its `loss` and per-output
    trackers, so that an epoch's figure is the mean over samples even
    when its last batch is short."""
    return ops.shape(keras.tree.flatten(outputs)[0])[0]


def _per_replica(loss):
    """`loss` divided by the replicas of the current `tf.distribute`
    strategy, as Keras' losses are (one replica: unchanged)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss / replicas
    return loss


def callback_list(callbacks):
    """The callbacks as a list, from any form `keras.Model.fit` takes.

    None, one callback, a (nested) list of them, or a
    `keras.callbacks.CallbackList` (its callbacks: a `History` or
    `ProgbarLogger` among them is reused by `fit`, not added twice).
    """
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return list(callbacks.callbacks)
    return keras.tree.flatten(callbacks) if callbacks else []


def regularization(model):
    """The sum of `model.losses` (weight regularizers, `add_loss`),
    divided by the replicas as Keras' own `compute_loss` divides them;
    0.0 for a model without any."""
    losses = model.losses
    return _per_replica(_penalty(losses)) if losses else 0.0


def _penalty(losses):
    """The sum of `losses` (a layer's `losses`), in float32."""
    total = 0.0
    for loss in losses:
        total = total + ops.sum(ops.cast(loss, "float32"))
    return total


class MarkTrained(keras.callbacks.Callback):
    """Marks a class's students trained at the end of each epoch.

    `fit_students` puts it before the user's callbacks, so a
    `ModelCheckpoint` (or a Keras Tuner trial's best-epoch weights) saved
    at an epoch's end holds students that `compose` accepts.

    Args:
        tc: the `TeacherClass`.
        students: the indices being trained.
    """

    def __init__(self, tc, students):
        super().__init__()
        self.tc = tc
        self.students = list(students)

    def on_epoch_end(self, epoch, logs=None):
        self.tc._mark_trained(self.students)


@contextlib.contextmanager
def trainable(layers, flag):
    """Sets `trainable` on `layers` for a while (a context manager).

    On exit every layer inside them gets its own flag back
    (`flags_kept`), not only `layers` themselves: setting a model's
    `trainable` sets all its layers', which would unfreeze the layers a
    user froze (a teacher's shared trunk, `teacher.freeze_through`).
    """
    with flags_kept(layers):
        for layer in layers:
            layer.trainable = flag
        yield


@contextlib.contextmanager
def flags_kept(layers):
    """Restores the `trainable` flag of `layers` and of every layer inside
    them on exit, whatever the block set (a context manager)."""
    saved = [(inner, inner.trainable) for layer in layers for inner in
             _layer_tree(layer)]  # fmt: skip
    try:
        yield
    finally:
        # Outer layers first: each setter cascades to the inner ones,
        # whose own flags come after.
        for layer, value in saved:
            layer.trainable = value


def _layer_tree(layer):
    """`layer` and every layer inside it, outer ones first."""
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return [layer]
    return list(flatten(include_self=True, recursive=True))


def for_class(tc, students=None, loss="mse", augment=False, **kwargs):
    """The trainer `tc.fit_students` builds for `students`, compiled or not.

    Args:
        tc: a `TeacherClass`.
        students: indices (default all).
        loss: the `fit_students` objective; an adversarial one gives an
            `AdversarialTrainer`.
        augment: bool, batches come without targets and the trainer runs
            the teacher's trunk on them.
        **kwargs: base `keras.Model` arguments.

    Returns:
        A `StudentTrainer` (not compiled) sharing `tc`'s student towers;
        a `HeadAwareTrainer` for a head-aware objective, scoring students
        through `tc`'s head as the composed model uses it (folded into
        the conditioned coordinates under target conditioning).

    """
    from teacherclass import baselines
    from teacherclass import teacher as teacher_lib
    from teacherclass import validation

    selected = validation.check_students(students, tc.num_students)
    towers = [tc.students[i] for i in selected]
    resolved = objectives.get(loss)
    head_aware = objectives.is_head_aware(resolved)
    targets = None
    if augment:
        trunk = tc.cut.trunk()
        teacher_logits = baselines.logits_model(tc.head) if head_aware else None

        def targets(x):
            features = ops.cast(trunk(x, training=False), "float32")
            if teacher_logits is None:
                return features
            return features, ops.cast(teacher_logits(features), "float32")

    common = dict(targets=targets, owner=tc, **kwargs)
    transform = tc.target_transform()
    if head_aware:
        head, clip = tc.target_head()
        return HeadAwareTrainer(
            towers,
            selected,
            tc.chunks,
            resolved,
            baselines.logits_model(head),
            clip=clip,
            transform=transform,
            ignore_class=teacher_lib.ignore_class(tc.teacher),
            # None: a one-unit head is a sigmoid's, linear or not.
            sigmoid=teacher_lib.sigmoid_output(head, tc.teacher) or None,
            **common,
        )
    common["transform"] = transform
    if objectives.is_adversarial(resolved):
        shape = tc.cut.feature_shape
        chunk_shapes = [shape[1:-1] + (tc.chunks[i],) for i in selected]
        trainer = AdversarialTrainer(
            towers, selected, tc.chunks, resolved, chunk_shapes, **common
        )
    else:
        trainer = StudentTrainer(towers, selected, tc.chunks, **common)
    return trainer
