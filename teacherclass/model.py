"""`TeacherClass`: a teacher, a class of students, and their composition."""

import contextlib

import keras
import numpy as np  # noqa: F401  (the docstring example uses it)
from keras import ops

from teacherclass import chunking
from teacherclass import compose as compose_lib
from teacherclass import data
from teacherclass import features
from teacherclass import objectives
from teacherclass import report as report_lib
from teacherclass import teacher as teacher_lib
from teacherclass import towers as towers_lib
from teacherclass import validation

_DEFAULT_BATCH_SIZE = 32


def _scale_for_replicas(loss):
    """Divides a per-replica loss by the replicas that sum its gradients.

    Keras' own losses are scaled this way under a tf.distribute strategy;
    the students' summed loss must be too, or SGD steps grow with the
    replica count.
    """
    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss / replicas


def _resolve_clip(clip, layer):
    if isinstance(clip, str) and clip == "auto":
        return teacher_lib.feature_range(layer)
    if clip is None or clip is False:
        return None
    return validation.check_clip(clip)


def _resolve_student_input(teacher, student_input):
    """The name of the layer whose output the students take, or None.

    None means the teacher's input. A teacher that takes strings has its
    first layer (e.g. `TextVectorization`) as the default: students learn
    on its output (token ids), and the composed model keeps it in front.
    """
    spec = teacher.inputs[0]
    if student_input is None:
        if spec.dtype != "string":
            return None
        users = [
            layer
            for layer in teacher.layers
            if not isinstance(layer, keras.layers.InputLayer)
            and any(
                t is spec
                for node in layer._inbound_nodes
                for t in node.input_tensors
            )
        ]
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
    prefix = keras.Model(
        teacher.inputs,
        teacher_lib.output_of(teacher, teacher.get_layer(student_input)),
    )
    if prefix.trainable_weights:
        raise ValueError(
            "The layers up to `student_input` are the composed model's "
            "preprocessing, kept in front of the students: they must have "
            "no trainable weights, or the composed model would hold part of "
            f"the teacher. Received: student_input={student_input!r} with "
            f"{len(prefix.trainable_weights)} trainable weights before it"
        )
    return student_input


@keras.saving.register_keras_serializable(package="teacherclass")
class TeacherClass(keras.Model):
    """A teacher network and a class of students that share its work.

    The teacher's representation (the output of `feature_layer`, by default
    the layer that feeds its classifier) is split along its last axis into
    chunks. One small student tower per chunk learns to regress its chunk
    from the teacher's input, without labels and independently of the other
    students. `compose()` then joins the students, concatenated in chunk
    order, to a copy of the teacher's head (its layers after
    `feature_layer`, with their weights): a model that never contains the
    teacher's trunk.

    Calling the model (`tc(x)`, `predict`, `evaluate`) runs that composed
    path; `compose()` also compiles it with the teacher's compile settings
    and returns it as a standalone functional model.

    A teacher that starts with preprocessing, e.g. `Input(string) ->
    TextVectorization -> Embedding -> ...`, keeps it for itself and for the
    composed model, while its students learn on the preprocessed input
    (token ids; see `student_input`). The preprocessing runs once per
    sample, when the representation is cached, not once per student and
    epoch; each student does not carry its own copy of the vocabulary; and
    the composed model takes what the teacher takes (raw strings), its
    `.keras` file holding the vectorizer's vocabulary. Pass strings as an
    object array (`np.array(texts, dtype=object)`, as
    `datasets.load("imdb_reviews")` returns them) or a `tf.string` tensor.

    Args:
        teacher: a built single-input, single-output `keras.Model`
            (Functional, or Sequential starting with `keras.Input`).
        feature_layer: name of the teacher layer whose output is the
            representation, a vector `(batch, d)` or a feature map
            `(batch, ..., d)`. Defaults to the layer that feeds the
            teacher's last weighted layer, skipping Dropout-like layers.
        num_students: int, students for a contiguous near-equal split
            (the remainder goes to the first chunks). Defaults to 4 unless
            `chunks` is given.
        chunks: sequence of chunk widths summing to `d`, instead of
            `num_students`.
        student: how to build each student: None (chosen from the
            teacher's input: `ConvTower` for images, `TextTower` for token
            ids, `DenseTower` otherwise), a tower instance used as a
            template, a tower class, a callable `(index, units) -> layer`,
            or a list with one layer per chunk.
        clip: range the students' joint output is clipped to before the
            head: "auto" (the range of `feature_layer`'s activation, e.g.
            `[0, inf)` after ReLU; none when it is linear), None for no
            clipping, or a `(low, high)` pair with None for an open end.
        student_input: name of the teacher layer whose output the students
            take, for teachers that start with preprocessing (layers
            without trainable weights, e.g. `TextVectorization`).
            Defaults to the teacher's input, or, for a teacher that takes
            strings, to its first layer. That preprocessing runs once per
            sample when the features are cached (students train on its
            output, e.g. token ids) and sits in front of the students in
            the composed model, which so takes what the teacher takes
            (e.g. raw strings).
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        ValueError: on an unknown `feature_layer`, a `num_students` outside
            `[1, d]`, `chunks` that do not sum to `d`, or a student whose
            output does not match its chunk.

    Example:

    >>> teacher = keras.Sequential([
    ...     keras.Input((8,)),
    ...     keras.layers.Dense(16, activation="relu"),
    ...     keras.layers.Dense(3, activation="softmax"),
    ... ])
    >>> tc = TeacherClass(teacher, num_students=2)
    >>> tc.chunks
    (8, 8)
    >>> x = np.random.rand(64, 8).astype("float32")
    >>> _ = tc.fit_students(x, epochs=1, verbose=0)
    >>> composed = tc.compose()
    >>> composed.predict(x, verbose=0).shape
    (64, 3)
    """

    def __init__(
        self,
        teacher,
        feature_layer=None,
        num_students=None,
        chunks=None,
        student=None,
        clip="auto",
        student_input=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        teacher_lib.check_teacher(teacher)
        layer = teacher_lib.get_feature_layer(teacher, feature_layer)
        self.student_input = _resolve_student_input(teacher, student_input)
        feature_shape = tuple(teacher_lib.output_of(teacher, layer).shape)
        if feature_shape[-1] is None:
            raise ValueError(
                "The representation's last axis must have a known width. "
                f"Received: feature_layer={layer.name!r} with output shape "
                f"{feature_shape}"
            )
        self.teacher = teacher
        self.feature_layer = layer.name
        self.chunks = chunking.resolve(feature_shape[-1], num_students, chunks)
        self.clip = _resolve_clip(clip, layer)
        self.head = teacher_lib.clone_head(teacher, layer)
        # The teacher's head weights `head` was last synced with; None:
        # take the current pair as synced (after loading weights).
        self._head_digest = teacher_lib.head_digest(teacher, layer)
        self._feature_clip = (
            None
            if self.clip is None
            else compose_lib.FeatureClip(*self.clip, name="feature_clip")
        )
        self.students = self._make_students(student, feature_shape)
        self._student_losses = [
            keras.metrics.Mean(name=f"student_{i}_loss")
            for i in range(len(self.chunks))
        ]
        # Which students were trained (or loaded): saved with the weights.
        self._trained = self.add_weight(
            shape=(len(self.chunks),),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            name="students_trained",
        )
        self._fitting = None  # indices of the students being fitted
        self._objective = None
        self._adversary = None  # training-only state of adversarial fits
        self._step_targets = None  # the trunk, run in the step (augment=)
        self.built = True

    # ------------------------------------------------------------------
    # Construction
    # ------------------------------------------------------------------

    def _make_students(self, student, feature_shape):
        n = len(self.chunks)
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
                towers_lib.make_tower(
                    student,
                    i,
                    width,
                    self.teacher,
                    input_spec=self._input(),
                    feature_shape=feature_shape,
                )
                for i, width in enumerate(self.chunks)
            ]
        inputs = self._input()
        for i, (tower, width) in enumerate(zip(layers, self.chunks)):
            expected = feature_shape[1:-1] + (width,)
            got = tuple(tower(inputs).shape[1:])
            if got != expected:
                raise ValueError(
                    f"Student {i} outputs shape {got} but its chunk has "
                    f"shape {expected}: a tower must end with `units` equal "
                    f"to its chunk width. Received: student {i}={tower!r}"
                )
        return layers

    def _raw_input(self):
        """A new input like the teacher's."""
        spec = self.teacher.inputs[0]
        return keras.Input(
            shape=spec.shape[1:], dtype=spec.dtype, name="inputs"
        )

    def _input(self):
        """A new input like the students' (see `student_input`)."""
        if self.student_input is None:
            return self._raw_input()
        spec = self._student_input_tensor()
        return keras.Input(
            shape=spec.shape[1:], dtype=spec.dtype, name="student_inputs"
        )

    def _student_input_tensor(self):
        layer = self.teacher.get_layer(self.student_input)
        return teacher_lib.output_of(self.teacher, layer)

    def _preprocessor(self):
        """The teacher's layers up to `student_input`, as a model."""
        # Built on demand: stored, it would be tracked and could list the
        # teacher's preprocessing weights twice.
        return keras.Model(
            self.teacher.inputs[0],
            self._student_input_tensor(),
            name="preprocessor",
        )

    def _feature_layer(self):
        return self.teacher.get_layer(self.feature_layer)

    @property
    def num_students(self):
        """The number of students (chunks)."""
        return len(self.chunks)

    def _sync_head(self):
        """Takes the teacher's current head weights if they changed.

        The head is a copy of the teacher's, made when the class is built.
        A teacher trained afterwards with its own `fit` has new head
        weights: they replace the copy's. A head fine-tuned by
        `compose(fine_tune=True)` on an unchanged teacher is kept.
        """
        current = teacher_lib.head_digest(self.teacher, self._feature_layer())
        if self._head_digest is not None and current != self._head_digest:
            teacher_lib.copy_head_weights(
                self.teacher, self._feature_layer(), self.head
            )
        self._head_digest = current

    def load_own_variables(self, store):
        super().load_own_variables(store)
        # Loaded teacher and head are a saved pair: keep both as they are.
        self._head_digest = None

    def set_weights(self, weights):
        super().set_weights(weights)
        self._head_digest = None

    def predict(self, x, *args, **kwargs):
        self._sync_head()
        return super().predict(x, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._sync_head()
        return super().evaluate(x, y, *args, **kwargs)

    @property
    def trained_students(self):
        """Indices of the students that were trained or loaded."""
        return [i for i, t in enumerate(self._trained.numpy()) if t]

    # ------------------------------------------------------------------
    # Forward pass and loss
    # ------------------------------------------------------------------

    def call(self, inputs, training=None):
        if self._fitting is not None:
            # Students train on cached inputs, already preprocessed.
            return {
                f"student_{i}": self.students[i](inputs, training=training)
                for i in self._fitting
            }
        if self.student_input is not None:
            inputs = self._preprocessor()(inputs)
        outputs = [s(inputs, training=training) for s in self.students]
        rep = compose_lib.join(outputs, self._feature_clip)
        return self.head(rep, training=training)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if self._fitting is None:
            return super().compute_loss(
                x, y, y_pred, sample_weight, training=training
            )
        if y_pred is None:
            y_pred = self(x, training=training)
        total = 0.0
        bounds = chunking.bounds(self.chunks)
        for i in self._fitting:
            start, stop = bounds[i]
            value = self._objective(y[..., start:stop], y_pred[f"student_{i}"])
            self._student_losses[i].update_state(value)
            total = total + value
        return _scale_for_replicas(total)

    def get_compile_config(self):
        # A checkpoint written while students train must not carry their
        # internal compile (no loss of its own): it loads uncompiled.
        if self._fitting is not None:
            return None
        return super().get_compile_config()

    @property
    def metrics(self):
        own = {id(m) for m in self._student_losses}
        metrics = [m for m in super().metrics if id(m) not in own]
        if self._fitting is not None:
            metrics += [self._student_losses[i] for i in self._fitting]
        if self._adversary is not None:
            # Its step never calls compute_metrics, which would build the
            # (empty) compiled metrics; unbuilt, they cannot report.
            metrics = [m for m in metrics if getattr(m, "built", True)]
            metrics += self._adversary.metrics
        return metrics

    def train_step(self, data):
        if self._step_targets is not None:
            # Augmented batches come as `(x,)`: the teacher's features of
            # this very batch are the targets.
            x = data[0]
            data = (x, self._step_targets(x))
        # The regression objectives go through `compute_loss`; only the
        # adversarial one needs two optimizers, hence its own step.
        if self._adversary is None:
            return super().train_step(data)
        return self._adversary.step(data, training=True)

    def test_step(self, data):
        if self._adversary is None:
            return super().test_step(data)
        return self._adversary.step(data, training=False)

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------

    def fit_teacher(self, x=None, y=None, **fit_kwargs):
        """Trains the teacher, then copies its head into the class.

        Compiles the teacher first if it is not compiled: Adam, accuracy and
        a cross-entropy that fits its output (see
        `teacher.default_compile_args`). A teacher trained elsewhere can
        skip this and go straight to `fit_students`.

        Args:
            x: inputs, as for `keras.Model.fit`.
            y: labels, as for `keras.Model.fit`.
            **fit_kwargs: passed to the teacher's `fit` (`epochs`,
                `batch_size`, `validation_data`, `callbacks`, ...).

        Returns:
            The teacher's `History`.

        Raises:
            ValueError: on missing labels (`y`), class labels outside the
                head's outputs, non-finite inputs, or counts (`epochs`,
                `batch_size`) below 1.
            TypeError: on strings for a numeric teacher, or the reverse.
        """
        self._check_labelled(x, y, self.teacher, fit_kwargs)
        with self._scope():
            if not self.teacher.compiled:
                self.teacher.compile(
                    **teacher_lib.default_compile_args(
                        self.teacher, y if y is not None else x
                    )
                )
            trainable = self.teacher.trainable
            self.teacher.trainable = True
            try:
                history = self.teacher.fit(x, y, **fit_kwargs)
            finally:
                self.teacher.trainable = trainable
        teacher_lib.copy_head_weights(
            self.teacher, self._feature_layer(), self.head
        )
        self._head_digest = teacher_lib.head_digest(
            self.teacher, self._feature_layer()
        )
        return history

    def _check_labelled(self, x, y, head, fit_kwargs):
        """Checks labelled data and `fit` arguments for a model ending
        in `head` (taking the teacher's input)."""
        input_dtype = self.teacher.inputs[0].dtype
        outputs = getattr(head, "outputs", None)
        width = outputs[0].shape[-1] if outputs else None
        validation.check_labelled_data(x, y, input_dtype, width)
        validation.check_validation_data(
            fit_kwargs.get("validation_data"), input_dtype, width
        )
        validation.check_fit_kwargs(fit_kwargs)

    def _scope(self):
        """The strategy scope this model was built in, if any."""
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None:
            return contextlib.nullcontext()
        return strategy.scope()

    def _check_students(self, students):
        return validation.check_students(students, len(self.chunks))

    @contextlib.contextmanager
    def _student_mode(self, selected, objective, optimizer, **compile_kwargs):
        """Fits or evaluates `selected` students, restoring state after."""
        saved_trainable = [
            (layer, layer.trainable)
            for layer in [self.teacher, self.head, *self.students]
        ]
        previous = self.get_compile_config() if self.compiled else None
        self.teacher.trainable = False
        self.head.trainable = False
        for i, tower in enumerate(self.students):
            tower.trainable = i in selected
        self._fitting = selected
        self._objective = objective
        try:
            # compile() keeps a previous loss when given none; the students'
            # loss is compute_loss's, so drop the head's (from compose()).
            self._compile_loss = None
            self.compile(optimizer=optimizer, metrics=[], **compile_kwargs)
            yield
        finally:
            self._fitting = None
            self._objective = None
            for layer, trainable in saved_trainable:
                layer.trainable = trainable
            if previous is not None:
                self.compile_from_config(previous)
            else:
                self.compiled = False

    @contextlib.contextmanager
    def _adversarial(self, selected, objective):
        """Discriminators for `selected` students, for one fit only."""
        if objective is None:
            yield
            return
        # A plain attribute holder: Keras does not track what it holds, so
        # the discriminators never become weights of this model.
        self._adversary = _Adversary(self, selected, objective)
        try:
            yield
        finally:
            self._adversary = None

    def _trunk(self):
        """The teacher up to the representation, from the students' input."""
        if self.student_input is None:
            return teacher_lib.trunk(self.teacher, self._feature_layer())
        return keras.Model(
            self._student_input_tensor(),
            teacher_lib.output_of(self.teacher, self._feature_layer()),
        )

    def _batches(self, x, batch_size, name):
        batches = data.batched_inputs(
            x, self.teacher.inputs[0], batch_size, name=name
        )
        if self.student_input is not None:
            # What the students take: the rest of the trunk runs from there.
            preprocessor = self._preprocessor()
            batches = batches.map(lambda b: preprocessor(b, training=False))
        return batches

    def _features(self, x, batch_size, cache=None, name="x"):
        batches = self._batches(x, batch_size, name)
        return features.extract(
            self._trunk(), batches, self.chunks, cache, name=name
        )

    def _augmented(self, x, batch_size, augment):
        batches = data.batched_inputs(x, self.teacher.inputs[0], batch_size)
        if self.student_input is not None:
            # Augment the raw inputs, then preprocess them, per batch.
            preprocessor = self._preprocessor()
            raw_augment = augment

            def augment(b, training=True):
                return preprocessor(
                    raw_augment(b, training=training), training=False
                )

        return features.augmented(batches, augment)

    @contextlib.contextmanager
    def _teacher_in_step(self, trunk):
        """Has the train step compute its targets with `trunk`."""
        if trunk is None:
            yield
            return

        # A plain function: Keras does not track it, so the trunk's
        # (the teacher's) weights do not become this model's twice.
        def targets(x):
            return ops.stop_gradient(
                ops.cast(trunk(x, training=False), "float32")
            )

        self._step_targets = targets
        try:
            yield
        finally:
            self._step_targets = None

    def fit_students(
        self,
        x,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_data=None,
        shuffle=True,
        initial_epoch=0,
        students=None,
        loss="mse",
        optimizer="adam",
        cache=None,
        steps_per_execution=1,
        augment=None,
    ):
        """Trains students to regress their chunks of the representation.

        The teacher's trunk runs once per sample; its output is cached (in
        memory, or on disk with `cache=path`) and every epoch reads the
        cache. With `augment`, it runs on every augmented batch instead.
        All selected students train in one pass: one input pipeline,
        one step that updates each student from its own chunk loss. Since
        students share no parameter and the total loss is the sum of theirs,
        this is the same as training each alone on the same batches.

        Args:
            x: inputs: array, tensor, `(x, y)` tuple, or `tf.data.Dataset`
                (batched or not, yielding `x` or `(x, y[, sw])`). Labels
                are ignored: students learn from the teacher only.
            y: ignored; accepted so calls mirror `fit`.
            batch_size: int, default 32 (unused for batched datasets).
            epochs: int, epochs over the data.
            verbose: "auto", 0, 1 or 2, as in `fit`.
            callbacks: list of `keras.callbacks.Callback`; they see this
                model, so ModelCheckpoint and BackupAndRestore save it.
                To monitor one student, pass the mode, e.g.
                `EarlyStopping("val_student_0_loss", mode="min")`.
            validation_data: inputs for a validation loss per student, in
                any form `x` accepts.
            shuffle: bool, reshuffle the samples every epoch.
            initial_epoch: int, as in `fit`.
            students: indices of the students to train (default all); the
                others are left untouched.
            loss: the student objective, see `objectives.get`: a
                regression loss ("mse", the paper's default), or
                "adversarial" / "adversarial_paper" / an
                `objectives.Adversarial`, where each student also plays
                against a discriminator of its own that lives only for
                this call (TensorFlow backend).
            optimizer: optimizer name or instance, fresh for this call;
                the students' (the generators') optimizer.
            cache: None (memory) or a directory for a disk cache.
            steps_per_execution: int, training steps per graph call; more
                amortize per-step overhead for small towers.
            augment: None, or a callable applied to every training batch
                of inputs with `training=True` inside the input pipeline
                (a Keras preprocessing layer such as `RandomTranslation`,
                or a `keras.Sequential` of them). The train step then runs
                the teacher's trunk on each augmented batch, on the
                training device, and the students regress its features on
                that same batch: nothing is cached, every epoch costs one
                more forward pass of the trunk, and the check for
                non-finite features (made when caching) is not made.
                Validation data is not augmented. Not combinable with
                `cache`.

        Returns:
            A `History` with `loss` (the sum) and `student_{i}_loss` for
            each trained student (`val_` versions with validation data).
            Adversarial objectives add `student_{i}_d_loss` (its
            discriminator's loss) and `student_{i}_mse` (its regression
            error); their `student_{i}_loss` is the generator loss.

        Raises:
            ValueError: on bad `students` or `loss`, data that does not
                fit the teacher, or both `augment` and `cache`.
            TypeError: if `augment` is not callable.
            NotImplementedError: for an adversarial objective on a backend
                other than TensorFlow.
        """
        del y  # students never see labels
        selected = self._check_students(students)
        validation.check_fit_kwargs(
            {"epochs": epochs, "initial_epoch": initial_epoch}
        )
        validation.check_int("steps_per_execution", steps_per_execution)
        batch_size = validation.check_int(
            "batch_size", batch_size, allow_none=True
        )
        batch_size = batch_size or _DEFAULT_BATCH_SIZE
        validation.check_callable(
            "augment", augment, "a callable such as a Keras preprocessing layer"
        )
        if augment is not None and cache is not None:
            raise ValueError(
                "`augment` runs the teacher on every augmented batch, so "
                "there is no representation to cache: pass one of them. "
                f"Received: augment={augment!r}, cache={cache!r}"
            )
        if augment is None:
            train = self._features(x, batch_size, cache=cache)
        else:
            train = self._augmented(x, batch_size, augment)
        val = None
        if validation_data is not None:
            val = self._features(
                validation.split_validation_data(validation_data),
                batch_size,
                name="validation_data",
            ).batches(batch_size)
        objective = objectives.get(loss)
        adversarial = objectives.is_adversarial(objective)
        if adversarial and keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                "Adversarial student objectives have a TensorFlow train "
                "step only. Received: loss="
                f"{loss!r} on backend {keras.backend.backend()!r}"
            )
        with (
            self._scope(),
            self._student_mode(
                selected,
                objectives.get("mse") if adversarial else objective,
                optimizer,
                steps_per_execution=steps_per_execution,
            ),
            self._adversarial(selected, objective if adversarial else None),
            self._teacher_in_step(None if augment is None else self._trunk()),
        ):
            history = self.fit(
                train.batches(batch_size, shuffle=shuffle),
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                validation_data=val,
                initial_epoch=initial_epoch,
                shuffle=False,  # `train` reshuffles every epoch itself
            )
        trained = self._trained.numpy()
        trained[list(selected)] = 1
        self._trained.assign(trained)
        return history

    def evaluate_students(self, x, batch_size=None, loss="mse", verbose=0):
        """Each student's regression error on `x` against the teacher.

        Args:
            x: inputs, in any form `fit_students` accepts.
            batch_size: int, default 32.
            loss: the objective to report, see `objectives.get`.
            verbose: 0 or 1, a progress bar.

        Returns:
            A dict `{"student_{i}_loss": float, ..., "loss": sum}`.
        """
        objective = objectives.get(loss)
        if objectives.is_adversarial(objective):
            raise ValueError(
                "evaluate_students reports a regression error; pass a "
                f"regression loss such as 'mse'. Received: loss={loss!r}"
            )
        batch_size = validation.check_int(
            "batch_size", batch_size, allow_none=True
        )
        batch_size = batch_size or _DEFAULT_BATCH_SIZE
        feats = self._features(x, batch_size)
        selected = tuple(range(len(self.chunks)))
        with self._scope(), self._student_mode(selected, objective, "sgd"):
            return self.evaluate(
                feats.batches(batch_size), verbose=verbose, return_dict=True
            )

    # ------------------------------------------------------------------
    # Composition
    # ------------------------------------------------------------------

    def _compile_like_teacher(self, model):
        config = None
        if self.teacher.compiled:
            try:
                config = self.teacher.get_compile_config()
            except Exception:  # custom objects that do not serialize
                config = None
        if config:
            model.compile_from_config(config)
        else:
            model.compile(**teacher_lib.default_compile_args(self.teacher))

    def representation(self):
        """A model from the input to the students' joint representation.

        The students' outputs, concatenated in chunk order and clipped like
        the composed model's, without the head: features to reuse for
        another task.

        Returns:
            A functional `keras.Model` sharing the students' layers.
        """
        if self.student_input is None:
            return compose_lib.representation_model(
                self._input(), self.students, self._feature_clip
            )
        inputs = self._raw_input()
        x = self._preprocessor()(inputs)
        outputs = [tower(x) for tower in self.students]
        rep = outputs[0]
        if len(outputs) > 1:
            rep = keras.layers.Concatenate(axis=-1, name="concatenate")(outputs)
        if self._feature_clip is not None:
            rep = self._feature_clip(rep)
        return keras.Model(inputs, rep, name="representation")

    def compose(self, fine_tune=False, x=None, y=None, head=None, **fit_kwargs):
        """Joins the students and a head into one small model.

        Input -> every student -> concatenate in chunk order -> clip (see
        `clip`) -> the teacher's head, or `head` for another task. With
        `fine_tune=True` the head is first trained on `(x, y)` with the
        students frozen (the paper's final step). With the teacher's head,
        the class itself is compiled like the teacher, so `evaluate` works
        on it too.

        Args:
            fine_tune: bool, train the head on `(x, y)` first.
            x: inputs for fine-tuning, as for `fit`.
            y: labels for fine-tuning.
            head: None for the teacher's head (`self.head`), or a new
                `keras.Model`/layer taking the representation (shape
                `representation().output.shape`) for another task: it is
                compiled as it is, or with defaults that fit its output
                (see `teacher.default_compile_args`), and `self` is left as
                it was. Reusing students this way is knowledge reuse.
            **fit_kwargs: passed to `fit` for fine-tuning (`epochs`, ...).
                With the teacher's head its `History` is `self.history`.

        Returns:
            A functional `keras.Model` named "composed", compiled, holding
            only the students and the head.

        Raises:
            ValueError: if a student was never trained nor loaded,
                `fine_tune=True` comes without `x`, or `head` does not take
                the representation.
        """
        untrained = [
            i for i in range(len(self.chunks)) if i not in self.trained_students
        ]
        if untrained:
            raise ValueError(
                "compose() needs every student trained or loaded; students "
                f"{untrained} are not. Train them with "
                f"fit_students(x, students={untrained}) or load_students(). "
                f"Received: untrained students={untrained}"
            )
        if fine_tune and x is None:
            raise ValueError(
                "compose(fine_tune=True) trains the head on labelled data: "
                "pass `x` and `y`. Received: x=None"
            )
        if fine_tune:
            self._check_labelled(
                x, y, self.teacher if head is None else head, fit_kwargs
            )
        with self._scope():
            if head is not None:
                return self._compose_new_head(head, fine_tune, x, y, fit_kwargs)
            return self._compose_teacher_head(fine_tune, x, y, fit_kwargs)

    def _compose_teacher_head(self, fine_tune, x, y, fit_kwargs):
        self._sync_head()
        self._compile_like_teacher(self)
        if fine_tune:
            with self._frozen_students():
                self._compile_like_teacher(self)
                self.fit(x, y, **fit_kwargs)
        if self.student_input is None:
            composed = compose_lib.compose_model(
                self._input(), self.students, self.head, self._feature_clip
            )
        else:
            rep = self.representation()
            composed = keras.Model(
                rep.inputs[0], self.head(rep.outputs[0]), name="composed"
            )
        self._compile_like_teacher(composed)
        return composed

    @contextlib.contextmanager
    def _frozen_students(self):
        saved = [
            (layer, layer.trainable) for layer in [self.teacher, *self.students]
        ]
        self.teacher.trainable = False
        for tower in self.students:
            tower.trainable = False
        try:
            yield
        finally:
            for layer, trainable in saved:
                layer.trainable = trainable

    def _compose_new_head(self, head, fine_tune, x, y, fit_kwargs):
        if not isinstance(head, keras.layers.Layer):
            raise TypeError(
                "`head` must be a keras.Model or layer taking the "
                f"representation. Received: head={head!r}"
            )
        rep = self.representation()
        try:
            head(rep.outputs[0])
        except Exception as e:
            raise ValueError(
                "`head` must take the students' representation of shape "
                f"{tuple(rep.outputs[0].shape)}: {e}. Received: head={head!r}"
            ) from e
        composed = keras.Model(
            rep.inputs[0], head(rep.outputs[0]), name="composed"
        )
        if getattr(head, "compiled", False):
            composed.compile_from_config(head.get_compile_config())
        else:
            composed.compile(**teacher_lib.default_compile_args(composed, y))
        if fine_tune:
            with self._frozen_students():
                composed.compile_from_config(composed.get_compile_config())
                composed.fit(x, y, **fit_kwargs)
        return composed

    # ------------------------------------------------------------------
    # Students as independent jobs
    # ------------------------------------------------------------------

    def _student_meta(self, i):
        start, stop = chunking.bounds(self.chunks)[i]
        trunk = teacher_lib.trunk(self.teacher, self._feature_layer())
        return {
            "student": i,
            "chunk": [start, stop],
            "chunks": list(self.chunks),
            "feature_layer": self.feature_layer,
            "teacher": self.teacher.name,
            "teacher_trunk_digest": teacher_lib.weights_digest(trunk),
            "tower": keras.saving.serialize_keras_object(self.students[i]),
        }

    def save_students(self, directory, students=None, overwrite=False):
        """Saves trained students, one `.keras` file each, for `compose`.

        Students trained in separate processes or machines
        (`fit_students(x, students=[i])`) each save theirs into a shared
        directory; `load_students` then gathers them. Each student is
        `student_{i}.keras` (a model from the input to its chunk, loadable
        on its own) and `student_{i}.json` (its chunk and the teacher it
        learned from).

        Args:
            directory: path of the directory (created if missing).
            students: indices to save; default every trained student.
            overwrite: bool, replace existing files of these students.

        Returns:
            The list of saved student indices.

        Raises:
            ValueError: if a listed student was never trained.
            FileExistsError: if a student's file exists and `overwrite` is
                False.
        """
        import json
        import os

        trained = self.trained_students
        selected = (
            trained if students is None else self._check_students(students)
        )
        missing = [i for i in selected if i not in trained]
        if missing:
            raise ValueError(
                f"Students {missing} were never trained; train them first. "
                f"Received: students={list(selected)}"
            )
        os.makedirs(directory, exist_ok=True)
        for i in selected:
            path = os.path.join(directory, f"student_{i}.keras")
            if os.path.exists(path) and not overwrite:
                raise FileExistsError(
                    f"{path} exists; pass overwrite=True to replace it. "
                    f"Received: directory={os.fspath(directory)!r}"
                )
        for i in selected:
            inputs = self._input()
            model = keras.Model(
                inputs, self.students[i](inputs), name=f"student_{i}"
            )
            model.save(os.path.join(directory, f"student_{i}.keras"))
            with open(os.path.join(directory, f"student_{i}.json"), "w") as f:
                json.dump(self._student_meta(i), f, indent=1)
        return list(selected)

    def load_students(self, directory, students=None):
        """Loads students written by `save_students`, then marks them trained.

        Args:
            directory: the directory `save_students` wrote to.
            students: indices to load; default all of this class's students.

        Returns:
            The list of loaded student indices.

        Raises:
            FileNotFoundError: if a student's files are missing (the message
                names the student).
            ValueError: if a saved student belongs to another split, tower
                or teacher.
        """
        import json
        import os

        selected = self._check_students(students)
        for i in selected:
            for ext in ("keras", "json"):
                path = os.path.join(directory, f"student_{i}.{ext}")
                if not os.path.exists(path):
                    raise FileNotFoundError(
                        f"Student {i} is missing: no {path}. Train it with "
                        f"fit_students(x, students=[{i}]) and save_students."
                        f" Received: directory={os.fspath(directory)!r}"
                    )
        loaded = {}
        for i in selected:
            with open(os.path.join(directory, f"student_{i}.json")) as f:
                saved = json.load(f)
            expected = self._student_meta(i)
            for key in ("chunk", "feature_layer", "teacher_trunk_digest"):
                if saved.get(key) != expected[key]:
                    raise ValueError(
                        f"Student {i} in {os.fspath(directory)!r} does not "
                        f"match this class: its {key} is {saved.get(key)!r}, "
                        f"expected {expected[key]!r}."
                    )
            model = keras.saving.load_model(
                os.path.join(directory, f"student_{i}.keras")
            )
            tower = model.layers[-1]
            if tower.get_config() != self.students[i].get_config():
                raise ValueError(
                    f"Student {i} in {os.fspath(directory)!r} is a different "
                    f"tower ({tower.__class__.__name__}, units="
                    f"{tower.get_config().get('units')}) than this class's."
                )
            loaded[i] = tower.get_weights()
        for i, weights in loaded.items():
            self.students[i].set_weights(weights)
        trained = self._trained.numpy()
        trained[list(loaded)] = 1
        self._trained.assign(trained)
        return sorted(loaded)

    def report(self, x=None, y=None, **measure_kwargs):
        """What the class of students costs and keeps against the teacher.

        Without arguments: parameter counts of the teacher, each student,
        the head and the composed model, and the compression ratio. With
        data or options, `report.measure` adds FLOPs, CPU latency and
        accuracy (and exported artifacts' size and latency).

        Args:
            x: optional inputs for accuracy and students' errors.
            y: optional labels.
            **measure_kwargs: passed to `report.measure` (`batch_sizes`,
                `exports`, `repeats`, ...).

        Returns:
            A `report.CompressionReport`: a dict that prints as a table.
        """
        self._sync_head()
        if x is not None or y is not None or measure_kwargs:
            return report_lib.measure(self, x, y, **measure_kwargs)
        return report_lib.CompressionReport.from_counts(
            teacher=self.teacher.count_params(),
            students=[s.count_params() for s in self.students],
            head=self.head.count_params(),
        )

    def export(self, path, **export_kwargs):
        """Exports the composed model (never the teacher).

        Args:
            path: where to write.
            **export_kwargs: see `export.export` (`format="saved_model"` or
                `"litert"`, `quantize="int8"`, `representative_data`,
                `overwrite`).

        Returns:
            What `export.export` returns.
        """
        from teacherclass import export as export_lib

        return export_lib.export(self, path, **export_kwargs)

    # ------------------------------------------------------------------
    # Serialization
    # ------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "feature_layer": self.feature_layer,
                "chunks": list(self.chunks),
                "student": [
                    keras.saving.serialize_keras_object(s)
                    for s in self.students
                ],
                "clip": None if self.clip is None else list(self.clip),
                "student_input": self.student_input,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["teacher"] = keras.saving.deserialize_keras_object(
            config["teacher"]
        )
        config["student"] = [
            keras.saving.deserialize_keras_object(s) for s in config["student"]
        ]
        return cls(**config)


class _Adversary:
    """The training-only half of an adversarial `fit_students` call.

    Holds one discriminator per fitted student, their optimizer and their
    metrics, and runs the two-optimizer step (the pattern of the Keras GAN
    guide; one forward pass, two tapes: the discriminators learn from the
    students' detached outputs, the students from the discriminators'
    verdict). It is not a Keras object, so nothing in it is tracked by,
    or saved with, the `TeacherClass`.
    """

    def __init__(self, model, selected, objective):
        self.model = model
        self.selected = tuple(selected)
        self.objective = objective
        feature_shape = tuple(
            teacher_lib.output_of(model.teacher, model._feature_layer()).shape
        )
        bounds = chunking.bounds(model.chunks)
        self.bounds = {i: bounds[i] for i in self.selected}
        self.discriminators = {
            i: objective.discriminator(
                feature_shape[1:-1] + (model.chunks[i],),
                name=f"discriminator_{i}",
            )
            for i in self.selected
        }
        self.variables = [
            v for d in self.discriminators.values() for v in d.trainable_weights
        ]
        # Built here, eagerly: the step runs traced and must not create
        # variables.
        self.optimizer = objective.make_optimizer()
        self.optimizer.build(self.variables)
        self.d_losses = {
            i: keras.metrics.Mean(name=f"student_{i}_d_loss")
            for i in self.selected
        }
        self.errors = {
            i: keras.metrics.Mean(name=f"student_{i}_mse")
            for i in self.selected
        }
        self.metrics = [
            m for i in self.selected for m in (self.d_losses[i], self.errors[i])
        ]

    def step(self, data, training):
        import tensorflow as tf

        model = self.model
        x, target = data[0], data[1]
        g_tape = tf.GradientTape() if training else contextlib.nullcontext()
        d_tape = tf.GradientTape() if training else contextlib.nullcontext()
        with g_tape, d_tape:
            predictions = model(x, training=training)
            g_total = 0.0
            d_total = 0.0
            for i in self.selected:
                start, stop = self.bounds[i]
                real = ops.cast(target[..., start:stop], "float32")
                fake = predictions[f"student_{i}"]
                discriminator = self.discriminators[i]
                d_loss = self.objective.discriminator_loss(
                    discriminator,
                    real,
                    ops.stop_gradient(ops.cast(fake, "float32")),
                )
                g_loss = self.objective.generator_loss(
                    discriminator, real, fake
                )
                model._student_losses[i].update_state(g_loss)
                self.d_losses[i].update_state(d_loss)
                self.errors[i].update_state(
                    ops.mean(ops.square(ops.cast(fake, "float32") - real))
                )
                g_total = g_total + g_loss
                d_total = d_total + d_loss
            if training:
                scaled = model.optimizer.scale_loss(g_total)
        if training:
            g_vars = model.trainable_weights
            model.optimizer.apply(g_tape.gradient(scaled, g_vars), g_vars)
            self.optimizer.apply(
                d_tape.gradient(d_total, self.variables), self.variables
            )
        model._loss_tracker.update_state(g_total, sample_weight=ops.shape(x)[0])
        tracked = [model._loss_tracker]
        tracked += [model._student_losses[i] for i in self.selected]
        return {m.name: m.result() for m in tracked + self.metrics}
