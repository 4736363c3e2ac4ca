"""`TeacherClass`: a teacher, a class of students, and their composition."""

import contextlib

import keras
import numpy as np

from teacherclass import chunking
from teacherclass import compose as compose_lib
from teacherclass import data
from teacherclass import features
from teacherclass import objectives
from teacherclass import report as report_lib
from teacherclass import teacher as teacher_lib
from teacherclass import towers as towers_lib

_DEFAULT_BATCH_SIZE = 32


def _resolve_clip(clip, layer):
    if clip == "auto":
        return teacher_lib.feature_range(layer)
    if clip is None or clip is False:
        return None
    try:
        low, high = clip
    except (TypeError, ValueError):
        low = high = object()
    if not all(v is None or isinstance(v, (int, float)) for v in (low, high)):
        raise ValueError(
            "`clip` must be 'auto', None or a (low, high) pair of floats or "
            f"None. Received: clip={clip!r}"
        )
    return (low, high)


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
        **kwargs,
    ):
        super().__init__(**kwargs)
        teacher_lib.check_teacher(teacher)
        layer = teacher_lib.get_feature_layer(teacher, feature_layer)
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
                towers_lib.make_tower(student, i, width, self.teacher)
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

    def _input(self):
        spec = self.teacher.inputs[0]
        return keras.Input(
            shape=spec.shape[1:], dtype=spec.dtype, name="inputs"
        )

    def _feature_layer(self):
        return self.teacher.get_layer(self.feature_layer)

    @property
    def num_students(self):
        """The number of students (chunks)."""
        return len(self.chunks)

    @property
    def trained_students(self):
        """Indices of the students that were trained or loaded."""
        return [i for i, t in enumerate(self._trained.numpy()) if t]

    # ------------------------------------------------------------------
    # Forward pass and loss
    # ------------------------------------------------------------------

    def call(self, inputs, training=None):
        if self._fitting is not None:
            return {
                f"student_{i}": self.students[i](inputs, training=training)
                for i in self._fitting
            }
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
        return total

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
        return metrics

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
        """
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
        return history

    def _check_students(self, students):
        n = len(self.chunks)
        if students is None:
            return tuple(range(n))
        if isinstance(students, int):
            students = [students]
        students = list(students)
        if (
            not students
            or len(set(students)) != len(students)
            or not all(
                isinstance(i, (int, np.integer)) and 0 <= i < n
                for i in students
            )
        ):
            raise ValueError(
                f"`students` must list distinct student indices in [0, {n}). "
                f"Received: students={students!r}"
            )
        return tuple(sorted(int(i) for i in students))

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

    def _features(self, x, batch_size, cache=None, name="x"):
        batches = data.batched_inputs(
            x, self.teacher.inputs[0], batch_size, name=name
        )
        trunk = teacher_lib.trunk(self.teacher, self._feature_layer())
        return features.extract(trunk, batches, self.chunks, cache=cache)

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
    ):
        """Trains students to regress their chunks of the representation.

        The teacher's trunk runs once per sample; its output is cached (in
        memory, or on disk with `cache=path`) and every epoch reads the
        cache. All selected students train in one pass: one input pipeline,
        one step that updates each student from its own chunk loss. Since
        students share no parameter and the total loss is the sum of theirs,
        this is the same as training each alone on the same batches.

        Args:
            x: inputs: array, tensor, `(x, y)` tuple, or `tf.data.Dataset`
                (batched or not, yielding `x` or `(x, y[, sw])`). Labels
                are ignored: students learn from the teacher only.
            y: ignored; accepted so calls mirror `fit`.
            batch_size: int, default 32 (unused for batched datasets).
            epochs: int, epochs over the cached representation.
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
            loss: the student objective, see `objectives.get`.
            optimizer: optimizer name or instance, fresh for this call.
            cache: None (memory) or a directory for a disk cache.
            steps_per_execution: int, training steps per graph call; more
                amortize per-step overhead for small towers.

        Returns:
            A `History` with `loss` (the sum) and `student_{i}_loss` for
            each trained student (`val_` versions with validation data).
        """
        del y  # students never see labels
        selected = self._check_students(students)
        batch_size = batch_size or _DEFAULT_BATCH_SIZE
        train = self._features(x, batch_size, cache=cache)
        val = None
        if validation_data is not None:
            val = self._features(
                validation_data, batch_size, name="validation_data"
            ).batches(batch_size)
        objective = objectives.get(loss)
        with self._student_mode(
            selected,
            objective,
            optimizer,
            steps_per_execution=steps_per_execution,
        ):
            history = self.fit(
                train.batches(batch_size, shuffle=shuffle),
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                validation_data=val,
                initial_epoch=initial_epoch,
                shuffle=False,  # the cache is reshuffled every epoch
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
        batch_size = batch_size or _DEFAULT_BATCH_SIZE
        feats = self._features(x, batch_size)
        selected = tuple(range(len(self.chunks)))
        with self._student_mode(selected, objectives.get(loss), "sgd"):
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
        return compose_lib.representation_model(
            self._input(), self.students, self._feature_clip
        )

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
        if head is not None:
            return self._compose_new_head(head, fine_tune, x, y, fit_kwargs)
        self._compile_like_teacher(self)
        if fine_tune:
            with self._frozen_students():
                self._compile_like_teacher(self)
                self.fit(x, y, **fit_kwargs)
        composed = compose_lib.compose_model(
            self._input(), self.students, self.head, self._feature_clip
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
            rep.inputs, head(rep.outputs[0]), name="composed"
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

    def report(self):
        """Parameter counts of the teacher, students, head and composition.

        Returns:
            A `report.CompressionReport`: a dict that prints as a table.
        """
        return report_lib.CompressionReport.from_counts(
            teacher=self.teacher.count_params(),
            students=[s.count_params() for s in self.students],
            head=self.head.count_params(),
        )

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
