"""`TeacherClass`: a teacher, a class of students, and their composition.

The class orchestrates the steps of the method; each step lives in its own
module (see docs/architecture.md): `teacher` cuts the teacher, `features`
computes the representation, `conditioning` holds the students' target
coordinates, `training` trains the students, `compose` joins them to the
head, `refinement` trains the composed model end to end, `student_files`
writes students as files, `export` and `report` take the composed model.
"""

import math
import weakref

import keras
import numpy as np

try:  # The base of what Keras' saving walks; not exported by `keras`.
    from keras.src.saving.keras_saveable import KerasSaveable
except ImportError:  # a Keras that moved it: loaded pairs sync lazily
    KerasSaveable = object

from teacherclass import baselines
from teacherclass import chunking
from teacherclass import compose as compose_lib
from teacherclass import conditioning as conditioning_lib
from teacherclass import data
from teacherclass import distribute
from teacherclass import export as export_lib
from teacherclass import features
from teacherclass import fusion
from teacherclass import objectives
from teacherclass import refinement
from teacherclass import report as report_lib
from teacherclass import student_files
from teacherclass import teacher as teacher_lib
from teacherclass import towers as towers_lib
from teacherclass import training
from teacherclass import validation
from teacherclass import views as views_lib

_DEFAULT_BATCH_SIZE = 32
# `fit` arguments that weigh labels: students learn no labels.
_LABEL_WEIGHTS = ("class_weight", "sample_weight")


class _AfterLoad(KerasSaveable):
    """Records a `TeacherClass`'s head pair once Keras loaded its weights.

    Keras' saving walks a model's own variables first, then its public
    attributes (the teacher among them), then its private ones: held by
    a private attribute, this is loaded after the teacher. Recording the
    teacher's head digest here (not lazily at the first sync) lets a
    teacher trained after `load_model`/`load_weights` be detected. Not a
    `Layer`, so no layer tracks it; it saves nothing.
    """

    def __init__(self, owner):
        # A weak reference: Keras' walk ignores it (no cycle to visit).
        self._owner = weakref.ref(owner)

    def _obj_type(self):
        # Keras' walk knows a closed list of kinds; this one holds no
        # attribute to walk, and a Loss's skip list is small.
        return "Loss"

    def load_own_variables(self, store):
        owner = self._owner()
        if owner is not None:
            owner._record_head()


def _resolve_clip(clip, cut):
    if isinstance(clip, str) and clip == "auto":
        return cut.feature_range()
    if clip is None or clip is False:
        return None
    return validation.check_clip(clip)


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
    and returns it as a standalone functional model. The head is the
    teacher's current one: a teacher trained after wrapping (with its own
    `fit`) gives its new head weights to `compose`, `predict`, `evaluate`,
    `fit`, `report` and what `save` and `save_weights` write (checkpoints
    of `fit_students` too). A direct call `tc(x)` and the `*_on_batch`
    methods take it when the teacher's optimizer stepped since (a
    teacher trained by `fit` or an optimizer); a head whose weights were
    set by hand (`set_weights`, `load_weights` on the teacher) is taken
    by the next `predict`, `evaluate` or `fit`: comparing the head's
    weights costs a hash of them (4.4x the call's time for a 2.2M-weight
    head at batch 1), too much per call.

    The class orchestrates; each step lives in its module
    (docs/architecture.md): `teacher.cut` resolves where the teacher is
    cut (`self.cut`), `features.representation` computes the students'
    targets, `training.StudentTrainer` trains the students, `compose`
    joins them to the head, `student_files` writes them as files.

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
            teacher's input: `ConvTower` for images, `SegmentationTower`
            for images whose representation is a feature map of their
            height and width, `TextTower` for token ids, `DenseTower`
            otherwise), a tower instance used as a
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
            (e.g. raw strings). The layers of a trained teacher can be
            the students' shared input: freeze them first
            (`teacherclass.teacher.freeze_through(teacher, name)`), then
            build the class; the composed model holds them once and
            counts them.
        conditioning: None, or the coordinates the students regress the
            representation in (see `conditioning.Conditioning`):
            "standardize" (every feature at unit variance), "pca" (the
            covariance's eigenvectors) or "whiten" (both). The statistics
            come from the training cache on the first `fit_students` call
            (one more pass over the cache, not the teacher; with
            `augment`, one pass of the teacher over one augmented draw of
            the inputs) and are then weights of the class: saved with it,
            and recorded (with a digest) by `save_students`, so students
            trained in separate jobs agree. `compose()` folds the inverse
            into the head's first Dense or 1x1 Conv2D and its bias (no
            extra layer; a head without one is refused here);
            the clip moves into the target coordinates for "standardize"
            and is dropped for "pca" and "whiten" (a rotation mixes
            features, so no per-coordinate range holds).
        balance_chunks: bool, with `conditioning`: order the coordinates
            so that every chunk holds about the same share of the
            targets' variance (`chunk_order="variance"`).
        chunk_order: None (or "contiguous"), "variance" or
            "correlation", with `conditioning`: how the conditioned
            coordinates are dealt to the chunks. "variance" is
            `balance_chunks=True`; "correlation" (with "standardize")
            puts strongly correlated features in one chunk
            (`conditioning.correlated_order`), so each student regresses
            a group of features that share their causes rather than a
            slice of all of them.
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
        conditioning=None,
        balance_chunks=False,
        chunk_order=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Not a Keras object: Keras does not track what it holds.
        self.cut = teacher_lib.cut(teacher, feature_layer, student_input)
        self.teacher = teacher
        self.feature_layer = self.cut.feature_layer
        self.student_input = self.cut.student_input
        feature_shape = self.cut.feature_shape
        self.chunks = chunking.resolve(feature_shape[-1], num_students, chunks)
        self.clip = _resolve_clip(clip, self.cut)
        self.head = self.cut.head()
        # The teacher's head weights `head` was last synced with; None:
        # take the current pair as synced (after loading weights).
        self._head_digest = self.cut.head_digest()
        # Records the pair as loaded once the teacher's weights are in.
        if KerasSaveable is not object:
            self._after_load = _AfterLoad(self)
        self._feature_clip = (
            None
            if self.clip is None
            else compose_lib.FeatureClip(*self.clip, name="feature_clip")
        )
        self.students = towers_lib.make_students(
            student,
            self.chunks,
            self.teacher,
            self.cut.student_inputs(),
            feature_shape,
        )
        # Which students were trained (or loaded): saved with the weights.
        self._trained = self.add_weight(
            shape=(len(self.chunks),),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            name="students_trained",
        )
        self.conditioning = conditioning
        self.chunk_order = conditioning_lib.resolve_order(
            balance_chunks, chunk_order, "balance_chunks", "chunk_order"
        )
        self.balance_chunks = self.chunk_order == "variance"
        # The arguments the user set the order with, for errors.
        given = ["balance_chunks=True"] if balance_chunks else []
        if chunk_order not in (None, "contiguous"):
            given.append(f"chunk_order={chunk_order!r}")
        # Not a Keras object either: its statistics are this model's weights.
        self._targets = conditioning_lib.TargetConditioning(
            self,
            conditioning,
            self.chunk_order,
            feature_shape[-1],
            self.head,
            self.clip,
            self._feature_clip,
            order_argument=", ".join(given) or None,
        )
        self._strategy = distribute.current_strategy()
        self.built = True

    @property
    def conditioning_fitted(self):
        """Whether the target conditioning's statistics are known."""
        return self._targets.fitted

    def target_conditioning(self):
        """The fitted `conditioning.Conditioning`, or None.

        None without `conditioning` or before its statistics were fitted
        (by the first `fit_students` call, or loaded).
        """
        return self._targets.get()

    def set_target_conditioning(self, fitted):
        """Stores a fitted `conditioning.Conditioning` as the class's.

        Raises:
            ValueError: without `conditioning`, or on another kind/width.
        """
        self._targets.set(fitted)

    def conditioning_digest(self):
        """A short hash of the fitted conditioning statistics, or None."""
        fitted = self.target_conditioning()
        return None if fitted is None else fitted.digest()

    def target_transform(self):
        """A function from the representation to the students' targets.

        None without target conditioning. Raises if it is not fitted.
        """
        return self._targets.transform()

    def target_head(self):
        """The head and clip as the composed model uses them.

        Returns:
            `(head, clip)`: `self.head` and the feature clip; under target
            conditioning, a copy of the head folded to read the targets
            (`Conditioning.fold`) and the clip in target coordinates
            ("standardize") or None (rotations).
        """
        self._sync_head()
        return self._targets.target_head()

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
        current = self.cut.head_digest()
        if self._head_digest is not None and current != self._head_digest:
            self.cut.copy_head_weights(self.head)
        self._head_digest = current
        self._synced_step = self._teacher_step()

    def _teacher_step(self):
        """The teacher's optimizer and its step count, or None: what a
        `fit` of the teacher changes, cheap to read (no hash)."""
        optimizer = getattr(self.teacher, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        if iterations is None:
            return None
        return id(optimizer), int(keras.ops.convert_to_numpy(iterations))

    def _sync_head_if_teacher_trained(self):
        """`_sync_head` when the teacher's optimizer stepped since the last
        sync (per-call entry points: a hash per call costs too much)."""
        import tensorflow as tf

        if not tf.executing_eagerly():
            return  # traced inside a function: the caller synced
        if self._teacher_step() != getattr(self, "_synced_step", None):
            self._sync_head()

    def save_own_variables(self, store):
        # Keras saves a model's own variables before its children (the
        # teacher, the head): the head a teacher trained since wrapping
        # gave is taken first, so the file holds a synced pair (and
        # `ModelCheckpoint`, `BackupAndRestore` files too).
        self._sync_head()
        super().save_own_variables(store)

    def load_own_variables(self, store):
        super().load_own_variables(store)
        # Loaded teacher and head are a saved pair: keep both as they are.
        # Keras loads the children (the teacher) after this: `_AfterLoad`
        # records the teacher's head as loaded; None until then.
        self._head_digest = None

    def _record_head(self):
        """Takes the teacher and head as they are now as a synced pair."""
        self._head_digest = self.cut.head_digest()
        self._synced_step = self._teacher_step()

    def set_weights(self, weights):
        super().set_weights(weights)
        self._record_head()

    # The whole-data entry points first take the teacher's head if it
    # changed (`_sync_head`); per-call ones if the teacher's optimizer
    # stepped since (see the class).

    def __call__(self, *args, **kwargs):
        self._sync_head_if_teacher_trained()
        return super().__call__(*args, **kwargs)

    def predict_on_batch(self, x):
        self._sync_head_if_teacher_trained()
        return super().predict_on_batch(x)

    def test_on_batch(self, *args, **kwargs):
        self._sync_head_if_teacher_trained()
        return super().test_on_batch(*args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self._sync_head_if_teacher_trained()
        return super().train_on_batch(*args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._sync_head()
        return super().predict(x, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._sync_head()
        return super().evaluate(x, y, *args, **kwargs)

    def fit(self, *args, **kwargs):
        self._sync_head()
        return super().fit(*args, **kwargs)

    @property
    def trained_students(self):
        """Indices of the students that were trained or loaded."""
        return [i for i, t in enumerate(self._trained.numpy()) if t]

    def _mark_trained(self, indices):
        trained = self._trained.numpy()
        trained[list(indices)] = 1
        self._trained.assign(trained)

    def call(self, inputs, training=None):
        preprocessor = self.cut.preprocessor()
        if preprocessor is not None:
            inputs = preprocessor(inputs)
        outputs = [s(inputs, training=training) for s in self.students]
        outputs = self.head(self._targets.features(outputs), training=training)
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            outputs = outputs[0]  # a functional head returns a list
        # Float32 under mixed precision, as the composed model's.
        dtype = keras.backend.standardize_dtype(outputs.dtype)
        if dtype in ("float16", "bfloat16"):
            outputs = keras.ops.cast(outputs, "float32")
        return outputs

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------

    def fit_teacher(self, x=None, y=None, augment=None, **fit_kwargs):
        """Trains the teacher, then copies its head into the class.

        Compiles the teacher first if it is not compiled: Adam, accuracy and
        a cross-entropy that fits its output (see
        `teacher.default_compile_args`). A teacher trained elsewhere can
        skip this and go straight to `fit_students`.

        Args:
            x: inputs, as for `keras.Model.fit`: arrays, a
                `tf.data.Dataset`, a `keras.utils.PyDataset` or a
                generator (these two yielding `(x, y)` batches). An
                uncompiled teacher is compiled for the labels' form; a
                generator is not read ahead, so it gets integer (sparse)
                labels' loss: compile the teacher first for one-hot.
            y: labels, as for `keras.Model.fit`.
            augment: None, or a callable applied to every training batch
                of inputs with `training=True` in the input pipeline (a
                Keras preprocessing layer such as `RandomTranslation`, or
                a `keras.Sequential` of them); labels pass unchanged, and
                validation data is not augmented. Arrays are shuffled
                every epoch unless `shuffle=False`. Inputs that lack the
                teacher's trailing axis of 1 (`(N, H, W)` for `Input((H,
                W, 1))`) get it first, as Keras' `fit` adds it; a dict
                of inputs holds the teacher's input alone.
            **fit_kwargs: passed to the teacher's `fit` (`epochs`,
                `batch_size`, `validation_data`, `callbacks`, ...).

        Returns:
            The teacher's `History`.

        Raises:
            ValueError: on missing labels (`y`), class labels outside the
                head's outputs, non-finite inputs, counts (`epochs`,
                `batch_size`) below 1, or `augment` with a generator or
                `PyDataset` (or with `sample_weight` beside a dataset,
                inputs of another rank than the teacher's, or a dict of
                other inputs).
            TypeError: on strings for a numeric teacher, or the reverse.
        """
        validation.check_labelled_fit(
            self.teacher, x, y, self.teacher, fit_kwargs
        )
        validation.check_callable(
            "augment", augment, "a callable such as a Keras preprocessing layer"
        )
        if augment is not None:
            if validation.is_stream(x):
                raise ValueError(
                    "`augment` runs in a tf.data pipeline of arrays or of "
                    "a tf.data.Dataset; augment inside the generator or "
                    "PyDataset instead. Received: x of type "
                    f"{type(x).__name__}"
                )
            if fit_kwargs.get("validation_split"):  # 0.0 and None: no split
                raise ValueError(
                    "`augment` feeds the teacher a tf.data pipeline, which "
                    "cannot be split: pass `validation_data` instead. "
                    "Received: validation_split="
                    f"{fit_kwargs['validation_split']!r}"
                )
            x = data.augmented_labelled(
                x,
                y,
                augment,
                fit_kwargs.pop("batch_size", None) or _DEFAULT_BATCH_SIZE,
                shuffle=fit_kwargs.pop("shuffle", True),
                sample_weight=fit_kwargs.pop("sample_weight", None),
                input_spec=self.teacher.inputs[0],
            )
            y = None
            fit_kwargs["shuffle"] = False  # the pipeline shuffles itself
        with distribute.scope(self._strategy):
            if not self.teacher.compiled:
                self.teacher.compile(
                    **teacher_lib.default_compile_args(
                        self.teacher, y if y is not None else x
                    )
                )
            with training.trainable([self.teacher], True):
                history = self.teacher.fit(x, y, **fit_kwargs)
        self.cut.copy_head_weights(self.head)
        self._head_digest = self.cut.head_digest()
        return history

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
        loss="auto",
        optimizer="adam",
        cache=None,
        steps_per_execution=1,
        augment=None,
        views=None,
        **fit_kwargs,
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
                (batched or not, yielding `x` or `(x, y)`). Labels are
                ignored: students learn from the teacher only. Sample
                weights (a third element) are refused, as
                `sample_weight` is.
            y: labels, used only by a head-aware objective with
                `label_weight > 0` (`objectives.HeadAware`); otherwise
                ignored (accepted so calls mirror `fit`).
            batch_size: int, the students' batch size; default: a
                batched dataset's own, else 32.
            epochs: int, epochs over the data.
            verbose: "auto", 0, 1 or 2, as in `fit`.
            callbacks: list of `keras.callbacks.Callback` (or one, or
                a `keras.callbacks.CallbackList`, as `fit` takes). Their
                `model` is the students' trainer
                (`training.StudentTrainer`), whose
                `save`, `save_weights` and `load_weights` are this class's:
                `ModelCheckpoint` writes a `TeacherClass` (`.keras` or
                weights for `load_weights`), `BackupAndRestore` restores
                the students. To monitor one student, pass the mode, e.g.
                `EarlyStopping("val_student_0_loss", mode="min")`.
            validation_data: inputs for a validation loss per student, in
                any form `x` accepts; with labels (`(x, y)` or a dataset
                of them) when the objective has a label term, which the
                `val_` losses then include. Scored in batches of
                `validation_batch_size` (in `fit_kwargs`; default
                `batch_size`), whatever its form.
            shuffle: bool, reshuffle the samples every epoch.
            initial_epoch: int, as in `fit`.
            students: indices of the students to train (default all); the
                others are left untouched.
            loss: the student objective, see `objectives.get`: "auto"
                (the default, `objectives.default_for`: "head_aware"
                when the teacher's head ends in a softmax or sigmoid,
                else "mse"), a regression loss ("mse", the paper's), or
                "adversarial" / "adversarial_paper" / an
                `objectives.Adversarial`, where each student also plays
                against a discriminator of its own that lives only for
                this call (TensorFlow backend), or "head_aware" / an
                `objectives.HeadAware`, where each student is also scored
                through the teacher's frozen head against the teacher's
                logits (cached with the representation).
            optimizer: optimizer name or instance, fresh for this call;
                the students' (the generators') optimizer.
            cache: None (memory) or a directory for a disk cache (see
                `features.DiskCache`). A head-aware fit caches the
                teacher's logits too; an MSE fit reads such a cache
                without them, and a head-aware fit reads a cache without
                logits by running the head on the cached features.
            steps_per_execution: int, training steps per graph call; more
                amortize per-step overhead for small towers. With `views`,
                it must divide the steps of an epoch.
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
            views: None, or a complete `views.ViewCache` built on `x`
                (the array or tensor of training inputs) with this
                class's teacher: the teacher's targets of the clean
                inputs and of its augmented views, computed once. Epoch
                `e` reads view `e mod (num_views + 1)` in an order
                drawn from the cache's seed and `e`, so a fit resumed
                with `initial_epoch` (and the students' weights) sees
                what an uninterrupted one would. The teacher does not
                run; target conditioning, if not fitted, is fitted on
                every view. Not combinable with `augment`, `cache`,
                `steps_per_epoch` (one epoch is every input once) or a
                `BackupAndRestore` callback (it picks the epoch after the
                views are drawn: resume with `initial_epoch` instead).
            **fit_kwargs: the rest of `keras.Model.fit`'s arguments
                (`validation_freq`, `steps_per_epoch`, ...), passed
                through. `class_weight` and `sample_weight` weigh labels,
                which students do not learn: they are refused.

        Returns:
            A `History` with `loss` (the sum) and `student_{i}_loss` for
            each trained student (`val_` versions with validation data).
            Adversarial objectives add `student_{i}_d_loss` (its
            discriminator's loss) and `student_{i}_mse` (its regression
            error); their `student_{i}_loss` is the generator loss.

        Raises:
            ValueError: on bad `students` or `loss`, data that does not
                fit the teacher, both `augment` and `cache`, or `views`
                that do not fit `x`, the teacher or the other arguments.
            TypeError: if `augment` is not callable, or `views` not a
                `views.ViewCache`.
            NotImplementedError: for an adversarial objective on a backend
                other than TensorFlow.
        """
        if isinstance(loss, str) and loss == "auto":
            loss = objectives.default_for(self.head)
        objective = objectives.get(loss)  # checked before the teacher runs
        head_aware = objectives.is_head_aware(objective)
        use_labels = head_aware and objective.label_weight > 0
        if use_labels and not validation.has_labels(x, y):
            raise ValueError(
                f"The head-aware objective's label term "
                f"(label_weight={objective.label_weight}) needs labels: "
                "pass `y` (or `x` as `(x, y)` or a dataset of them), or "
                "label_weight=0. Received: y=None"
            )
        output_shape = self.teacher.outputs[0].shape[1:]
        ignore_class = teacher_lib.ignore_class(self.teacher)
        if use_labels:
            validation.check_label_term(x, y, output_shape, ignore_class)
        selected = validation.check_students(students, self.num_students)
        validation.check_fit_kwargs(
            {"epochs": epochs, "initial_epoch": initial_epoch, **fit_kwargs}
        )
        validation.check_int("steps_per_execution", steps_per_execution)
        batch_size = validation.check_int(
            "batch_size", batch_size, allow_none=True
        )
        batch_size = (
            batch_size
            or data.dataset_batch_size(x, self.teacher.inputs[0])
            or _DEFAULT_BATCH_SIZE
        )
        # The validation pipeline is built here: Keras' `fit` would ignore
        # `validation_batch_size` for it (a dataset).
        val_batch_size = (
            fit_kwargs.pop("validation_batch_size", None) or batch_size
        )
        validation.check_callable(
            "augment", augment, "a callable such as a Keras preprocessing layer"
        )
        if fit_kwargs.get("validation_split"):  # 0.0 and None: no split
            raise ValueError(
                "Students train on a pipeline of the teacher's features, "
                "which cannot be split: pass `validation_data` instead. "
                "Received: validation_split="
                f"{fit_kwargs['validation_split']!r}"
            )
        for name in _LABEL_WEIGHTS:
            if fit_kwargs.get(name) is not None:
                raise ValueError(
                    f"`{name}` weighs labels, and students learn no labels "
                    "(they regress the teacher's features). "
                    f"Received: {name}={fit_kwargs[name]!r}"
                )
            fit_kwargs.pop(name, None)
        if augment is not None and cache is not None:
            raise ValueError(
                "`augment` runs the teacher on every augmented batch, so "
                "there is no representation to cache: pass one of them. "
                f"Received: augment={augment!r}, cache={cache!r}"
            )
        # Any form `fit` takes: one callback, a list, a `CallbackList`.
        callbacks = training.callback_list(callbacks)
        if head_aware:
            self._sync_head()  # the head the students are scored through
        if views is not None:
            if keras.ops.is_tensor(x):
                x = keras.ops.convert_to_numpy(x)  # the images, as built
            batches = self._view_batches(
                views,
                x,
                y if use_labels else None,
                batch_size,
                epochs,
                initial_epoch,
                shuffle,
                head_aware,
                augment=augment,
                cache=cache,
                callbacks=callbacks,
                fit_kwargs=fit_kwargs,
            )
            steps = math.ceil(len(x) / batch_size)
            if steps % steps_per_execution:
                # Keras reads `steps_per_execution` batches per call from
                # the one iterator that spans the epochs: each epoch would
                # run into the next one's view.
                raise ValueError(
                    "With `views`, `steps_per_execution` must divide the "
                    f"steps of an epoch ({steps}: {len(x)} images in "
                    f"batches of {batch_size}). Received: "
                    f"steps_per_execution={steps_per_execution}"
                )
            fit_kwargs["steps_per_epoch"] = steps
            train = None
        else:
            teacher_logits = None
            if head_aware:
                teacher_logits = baselines.logits_model(self.head)
            train = features.representation(
                self.cut,
                self.chunks,
                x,
                batch_size,
                cache=cache,
                augment=augment,
                head=teacher_logits,
                y=y,
                labels=use_labels,
            )
            batches = train.batches(batch_size, shuffle=shuffle)
        val = None
        if validation_data is not None:
            val_x = validation.split_validation_data(validation_data)
            if use_labels:
                # The label term is scored on validation too, so `val_`
                # losses are the training objective's.
                if val_x is not validation_data:  # `(x, y[, sw])` or a list
                    val_x = tuple(validation_data[:2])
                elif not validation.has_labels(validation_data, None):
                    raise ValueError(
                        "The head-aware objective's label term "
                        f"(label_weight={objective.label_weight}) is part "
                        "of the loss, validation's too: pass "
                        "`validation_data` as `(x, y)` or a dataset of "
                        "them. Received: validation_data of type "
                        f"{type(validation_data).__name__} without labels"
                    )
                validation.check_label_term(
                    val_x,
                    None,
                    output_shape,
                    ignore_class,
                    name="validation_data[1]",
                )
            val = features.representation(
                self.cut,
                self.chunks,
                val_x,
                val_batch_size,
                name="validation_data",
                head=baselines.logits_model(self.head) if head_aware else None,
                labels=use_labels,
            ).batches(val_batch_size)
        if self.conditioning is not None and not self.conditioning_fitted:
            # Once the arguments and the validation data are known good: a
            # call refused on them leaves the class as it was.
            self._fit_conditioning(views, train, batch_size)
        towers = [self.students[i] for i in selected]
        with distribute.scope(self._strategy), training.trainable(towers, True):
            trainer = training.for_class(
                self, selected, loss=loss, augment=augment is not None
            )
            trainer.compile(
                optimizer=optimizer,
                loss=loss,
                steps_per_execution=steps_per_execution,
            )
            history = trainer.fit(
                batches,
                epochs=epochs,
                verbose=verbose,
                # First: a checkpoint the user's callbacks write at an
                # epoch's end records these students as trained.
                callbacks=[
                    training.MarkTrained(self, selected),
                    *callbacks,
                ],
                validation_data=val,
                initial_epoch=initial_epoch,
                shuffle=False,  # the batches are shuffled already
                **fit_kwargs,
            )
        self._mark_trained(selected)
        return history

    def _fit_conditioning(self, views, train, batch_size):
        """Fits the target statistics on the training targets: every view
        of `views`, else the representation `train`."""
        if views is not None:
            self._targets.fit_batches(
                (views.targets(v) for v in range(views.num_views + 1)),
                self.chunks,
            )
            return
        stats = train
        if not isinstance(train, features.Features):
            # Augmented inputs have no cache: the statistics come from one
            # pass of the trunk over augmented inputs, the distribution the
            # students regress. (Clean statistics make features that are
            # near zero on clean inputs but not on augmented ones thousands
            # of deviations wide.)
            stats = features.extract(
                self.cut.trunk(),
                train.batches(batch_size).map(lambda x, *_: x),
                self.chunks,
                name="x",
            )
        self._targets.fit(stats, self.chunks)

    def _view_batches(
        self,
        views,
        x,
        y,
        batch_size,
        epochs,
        initial_epoch,
        shuffle,
        head_aware,
        augment,
        cache,
        callbacks,
        fit_kwargs,
    ):
        """`fit_students(views=...)`'s checks and batches (see there)."""
        if not isinstance(views, views_lib.ViewCache):
            raise TypeError(
                "`views` must be a `teacherclass.views.ViewCache` (open one "
                "with ViewCache(directory) or make one with "
                f"ViewCache.build). Received: views={views!r}"
            )
        for name, value in (
            ("augment", augment),
            ("cache", cache),
            ("steps_per_epoch", fit_kwargs.get("steps_per_epoch")),
        ):
            if value is not None:
                raise ValueError(
                    f"`views` serves every epoch from the cached views: "
                    f"pass no `{name}`. Received: {name}={value!r}"
                )
        for callback in callbacks:
            if isinstance(callback, keras.callbacks.BackupAndRestore):
                raise ValueError(
                    "`views` draws each epoch's view before a "
                    "`BackupAndRestore` callback picks the epoch to "
                    "resume from: resume with `initial_epoch` and the "
                    "students' weights (e.g. from `ModelCheckpoint`). "
                    f"Received: callbacks containing {callback!r}"
                )
        if not views.complete:
            raise ValueError(
                f"The view cache in {views.directory} is not complete "
                f"({views.meta['views_done']} of {views.num_views + 1} "
                "views): finish it with ViewCache.build. Received: "
                f"views={views!r}"
            )
        views.check_teacher(self.teacher)
        if not isinstance(x, np.ndarray):
            raise ValueError(
                "With `views`, `x` must be the array of training inputs "
                "the cache was built on. Received: x of type "
                f"{type(x).__name__}"
            )
        # As without views (`features._scan`): one NaN image makes every
        # loss NaN.
        validation.check_finite("x", x)
        if head_aware and not views.meta.get("logits"):
            raise ValueError(
                "A head-aware objective scores students against the "
                "teacher's logits, and this view cache holds none: build "
                "it with `logits_layer`. Received: views without logits"
            )
        width = views.feature_shape
        layer = views.meta.get("feature_layer", self.cut.feature_layer)
        if (
            width != tuple(self.cut.feature_shape[1:])
            or layer != self.cut.feature_layer
        ):
            raise ValueError(
                f"The view cache holds the teacher's {layer!r} of shape "
                f"{width}; this class's students regress "
                f"{self.cut.feature_layer!r} of shape "
                f"{tuple(self.cut.feature_shape[1:])}. Received: "
                f"views={views!r}"
            )
        targets = ("features", "logits") if head_aware else ("features",)
        if y is not None:
            targets += ("labels",)
        return views.epochs(
            x,
            batch_size,
            epochs,
            initial_epoch=initial_epoch,
            seed=views.meta["seed"],
            targets=targets,
            labels=y,
            preprocessor=self.cut.preprocessor(),
            shuffle=shuffle,
        )

    def evaluate_students(self, x, batch_size=None, loss="mse", verbose=0):
        """Each student's regression error on `x` against the teacher.

        Args:
            x: inputs, in any form `fit_students` accepts.
            batch_size: int; default: a batched dataset's own, else 32.
            loss: the objective to report, see `objectives.get`.
            verbose: 0 or 1, a progress bar.

        Returns:
            A dict `{"student_{i}_loss": float, ..., "loss": sum}`.
        """
        objective = objectives.get(loss)
        if objectives.is_adversarial(objective) or objectives.is_head_aware(
            objective
        ):
            raise ValueError(
                "evaluate_students reports a regression error; pass a "
                f"regression loss such as 'mse'. Received: loss={loss!r}"
            )
        batch_size = validation.check_int(
            "batch_size", batch_size, allow_none=True
        )
        batch_size = (
            batch_size
            or data.dataset_batch_size(x, self.teacher.inputs[0])
            or _DEFAULT_BATCH_SIZE
        )
        feats = features.representation(self.cut, self.chunks, x, batch_size)
        with distribute.scope(self._strategy):
            trainer = training.for_class(self, loss=loss)
            trainer.compile(loss=loss)
            return trainer.evaluate(
                feats.batches(batch_size), verbose=verbose, return_dict=True
            )

    # ------------------------------------------------------------------
    # Composition
    # ------------------------------------------------------------------

    def representation(self):
        """A model from the input to the students' joint representation.

        The students' outputs, concatenated in chunk order and clipped like
        the composed model's, without the head: features to reuse for
        another task. They are in the students' target coordinates: under
        `conditioning`, the conditioned targets `(f - mean) @ A` (their
        order included), not the teacher's feature coordinates; map them
        back with `self.target_conditioning().inverse` (NumPy) where the
        teacher's features are needed. Without `conditioning` they are the
        teacher's features (as the students estimate them). Its output is
        float32 under a mixed-precision policy too, as the composed
        model's is.

        Returns:
            A functional `keras.Model` sharing the students' layers.
        """
        rep = self._representation()
        output = compose_lib.float32_output(rep.outputs[0])
        if output is rep.outputs[0]:
            return rep
        return keras.Model(rep.input, output, name=rep.name)

    def _representation(self):
        """`representation()` in the students' compute dtype: a head
        composed on it reads the students' outputs uncast, as the teacher's
        head does in `compose()` (fusion finds the students there)."""
        return compose_lib.representation_model(
            self.cut.inputs(),
            self.students,
            self._targets.target_clip(),
            preprocessor=self.cut.preprocessor(),
        )

    def compose(
        self,
        fine_tune=False,
        x=None,
        y=None,
        head=None,
        fuse="none",
        **fit_kwargs,
    ):
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
            fuse: "none", or how to run the towers as one computation (see
                `fusion.fuse`): "auto" times "concat" and "grouped" here and
                keeps the fastest (perhaps "none"); "concat", "grouped" or
                "einsum" force one. The choice is in `composed.fusion`.
            **fit_kwargs: passed to `fit` for fine-tuning (`epochs`, ...).
                With the teacher's head its `History` is `self.history`.

        Returns:
            A functional `keras.Model` named "composed", compiled, holding
            only the students and the head; its `fusion` attribute says
            whether and how its towers were fused.

        Raises:
            ValueError: if a student was never trained nor loaded,
                `fine_tune=True` comes without `x`, data or `fit`
                arguments come without `fine_tune=True`, `head` does not
                take the representation, or `fuse` is unknown.
        """
        fusion.check_mode(fuse, name="fuse")
        self._check_composable()
        if fine_tune and x is None:
            raise ValueError(
                "compose(fine_tune=True) trains the head on labelled data: "
                "pass `x` and `y`. Received: x=None"
            )
        unused = [
            name for name, value in (("x", x), ("y", y)) if value is not None
        ] + sorted(fit_kwargs)
        if not fine_tune and unused:
            raise ValueError(
                "compose() trains nothing unless fine_tune=True, so "
                f"{', '.join(unused)} would be ignored: pass "
                "fine_tune=True to train the head on them, or leave them "
                f"out. Received: fine_tune={fine_tune!r} with "
                f"{', '.join(unused)}"
            )
        if fine_tune:
            validation.check_labelled_fit(
                self.teacher,
                x,
                y,
                self.teacher if head is None else head,
                fit_kwargs,
            )
        with distribute.scope(self._strategy):
            if head is not None:
                composed = self._compose_new_head(
                    head, fine_tune, x, y, fit_kwargs
                )
            else:
                composed = self._compose_teacher_head(
                    fine_tune, x, y, fit_kwargs
                )
            return fusion.fuse(composed, mode=fuse)

    def _compose_teacher_head(self, fine_tune, x, y, fit_kwargs):
        self._sync_head()
        # An uncompiled teacher's default loss fits the labels' form (a
        # dataset `x` carries them), as `fit_teacher` chooses it.
        labels = y if y is not None else x
        compose_lib.compile_like(self, self.teacher, labels)
        if fine_tune:
            with training.trainable([self.teacher, *self.students], False):
                compose_lib.compile_like(self, self.teacher, labels)
                self.fit(x, y, **fit_kwargs)
        head, clip = self.target_head()
        composed = compose_lib.compose_model(
            self.cut.inputs(),
            self.students,
            head,
            clip,
            preprocessor=self.cut.preprocessor(),
        )
        compose_lib.compile_like(composed, self.teacher, labels)
        return composed

    def _check_composable(self):
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
        self._targets.check_fitted()

    def refine(
        self,
        x,
        y,
        epochs=1,
        temperature=4.0,
        alpha=0.5,
        optimizer=None,
        batch_size=None,
        **fit_kwargs,
    ):
        """Composes, then trains the whole composed model end to end.

        After the students learned their chunks, the composed model (the
        students unfrozen, and the head) is trained on labels plus logit
        distillation from the teacher with `keras.distillation.Distiller`
        and `LogitsDistillation`: the label cross-entropy weighs `alpha`,
        the distillation (KL at temperature `temperature`, times its
        square) weighs `1 - alpha`. Both models are read through their
        logits (`baselines.logits_model`); the teacher stays frozen.

        The refined model shares its students with the class: the class's
        students change too (and with the teacher's head, so does
        `self.head`; under target conditioning the head is a folded copy,
        refined in the returned model only). The students are no longer
        independent afterwards: `save_students` then saves refined ones.

        A dataset `x` of `(inputs, {"labels": y, "logits":
        teacher_logits})` brings the teacher's logits with the batches
        (e.g. `views.ViewCache.dataset(..., labels=y, with_logits=True)`):
        the same loss, without running the teacher
        (`refinement.CachedLogitsTrainer`).

        Args:
            x: inputs, as for `fit` (a dataset may carry the labels, or
                the labels and the teacher's logits, as above).
            y: labels (None only for a dataset `x`).
            epochs: int >= 1.
            temperature: float > 0, the distillation temperature.
            alpha: float in [0, 1], the weight of the label loss.
            optimizer: optimizer name or instance; default Adam with a
                learning rate of 1e-4 (a gentle update of trained parts).
            batch_size: int, as for `fit`.
            **fit_kwargs: passed to the distiller's `fit`
                (`validation_data`, `callbacks`, `verbose`, ...). The
                callbacks' model saves and loads as the composed model:
                `ModelCheckpoint` writes the composed model as refined so
                far (it loads like the returned one), `BackupAndRestore`
                restores its students and head.

        Returns:
            The refined composed `keras.Model`, compiled like the teacher;
            its `history` attribute is the training's `History`, as
            `fit` leaves it on a model.

        Raises:
            ValueError: on untrained students, missing labels, a
                generator or `PyDataset` `x`, `epochs` or `batch_size`
                below 1, `initial_epoch` not below `epochs`, a
                `temperature` that is not positive or an `alpha` outside
                [0, 1].
        """
        return refinement.refine(
            self,
            x,
            y,
            epochs=epochs,
            temperature=temperature,
            alpha=alpha,
            optimizer=optimizer,
            batch_size=batch_size,
            **fit_kwargs,
        )

    def _compose_new_head(self, head, fine_tune, x, y, fit_kwargs):
        # An uncompiled head's default loss fits the labels (a dataset `x`
        # carries them).
        composed = compose_lib.with_new_head(
            self._representation(), head, y if y is not None else x
        )
        if fine_tune:
            with training.trainable([self.teacher, *self.students], False):
                composed.compile_from_config(composed.get_compile_config())
                composed.fit(x, y, **fit_kwargs)
        return composed

    # ------------------------------------------------------------------
    # Students as files, report, export
    # ------------------------------------------------------------------

    def save_students(self, directory, students=None, overwrite=False):
        """Saves trained students, one `.keras` file each, for `compose`.

        Students trained in separate processes or machines
        (`fit_students(x, students=[i])`) each save theirs into a shared
        directory; `load_students` then gathers them. Each student is
        `student_{i}.keras` (a model from the input to its chunk, loadable
        on its own) and `student_{i}.json` (its chunk and the teacher it
        learned from). The files are written under temporary names and
        moved onto theirs once all are written: a save that fails (a full
        disk) leaves the files already in `directory` as they were.

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
        return student_files.save_students(self, directory, students, overwrite)

    def load_students(self, directory, students=None):
        """Loads students written by `save_students`, then marks them trained.

        Every listed student is checked first: nothing changes in the class
        unless all of them load. A class without target statistics yet
        adopts those saved in `directory`, which every student there must
        have regressed. Students saved under another dtype policy (e.g.
        `mixed_bfloat16`) load like the others.

        Args:
            directory: the directory `save_students` wrote to.
            students: indices to load; default all of this class's students.

        Returns:
            The list of loaded student indices.

        Raises:
            FileNotFoundError: if a student's files are missing (the message
                names the student).
            ValueError: if a saved student belongs to another split, tower
                (the message names what differs), teacher or target
                statistics.
        """
        loaded = student_files.load_students(self, directory, students)
        self._mark_trained(loaded)
        return loaded

    def report(self, x=None, y=None, **measure_kwargs):
        """What the class of students costs and keeps against the teacher.

        Without arguments: parameter counts of the teacher, the shared
        input (the teacher's layers up to `student_input`, held once by
        the composed model), each student, the head and the composed
        model, and the compression ratio. With data or options,
        `report.measure` adds FLOPs, CPU latency and
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
        shared = self.cut.preprocessor()
        return report_lib.CompressionReport.from_counts(
            teacher=self.teacher.count_params(),
            students=[s.count_params() for s in self.students],
            head=self.head.count_params(),
            shared_input=0 if shared is None else shared.count_params(),
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
        return export_lib.export(self.compose(), path, **export_kwargs)

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
                "conditioning": self.conditioning,
                "balance_chunks": self.balance_chunks,
                "chunk_order": self.chunk_order,
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
