"""Keras Tuner search over the students' width and number.

`StudentHyperModel` is a `keras_tuner.HyperModel`: `build(hp)` makes a
`TeacherClass` whose students' width (convolution filters, dense units) and
number come from `hp`, and `fit(hp, model, x, ...)` trains the students in
one pass, composes them with the teacher's head and returns the composed
model's validation accuracy together with its parameter count and latency.
Keras Tuner keeps every trial's numbers in its oracle; `pareto_front` picks
the trials that no other trial beats on both accuracy and parameters
(Keras Tuner's multi-objective mode only sums objectives).

Needs keras-tuner (and tensorboard): `pip install keras-tuner tensorboard`,
or `pip install ".[tuner]"` in a clone of the repository.
"""

import hashlib
import os
import random
import shutil
import time
import uuid
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from teacherclass import features
from teacherclass import teacher as teacher_lib
from teacherclass import towers as towers_lib
from teacherclass import validation
from teacherclass.model import TeacherClass

try:
    import keras_tuner
except ImportError as e:  # an optional extra, imported only by its users
    raise ImportError(
        "teacherclass.tuning needs keras-tuner: `pip install keras-tuner "
        "tensorboard` (or, in a clone of the repository, `pip install "
        '".[tuner]"`).'
    ) from e


# Batches of the validation data without a `batch_size` (Keras' default).
_VALIDATION_BATCH_SIZE = 32


def _choices(name, values):
    values = tuple(values)
    if not values or not all(validation.is_int(v) and v > 0 for v in values):
        raise ValueError(
            f"`{name}` must be a non-empty sequence of positive integers. "
            f"Received: {name}={values!r}"
        )
    # Python ints: Keras Tuner's `Choice` takes no NumPy integers.
    return sorted({int(v) for v in values})


def _latency_ms(model, x, runs=10):
    """Median milliseconds of one `predict_on_batch` call on `x`."""
    model.predict_on_batch(x)  # traces
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def _is_accuracy(name):
    """Whether a metric's name is an accuracy's ("acc" is Keras' alias)."""
    return name == "acc" or name.endswith(("accuracy", "_acc"))


def _accuracy(results):
    for key in ("accuracy", "acc", "sparse_categorical_accuracy"):
        if key in results:
            return float(results[key])
    for key, value in results.items():
        if _is_accuracy(key):
            return float(value)
    raise ValueError(
        "The composed model reports no accuracy: compile the teacher with "
        "an accuracy metric. Received: metrics="
        f"{sorted(results)}"
    )


def _metric_names(metrics):
    """The names of the metrics of a compile config, or None if unsure.

    None for a metric of one's own (not Keras'): the composed model then
    may not compile like the teacher (see `compose.compile_like`).
    """
    if metrics is None:
        return []
    if isinstance(metrics, str):
        return [metrics]
    if isinstance(metrics, dict) and "class_name" in metrics:
        if metrics.get("registered_name") or not str(
            metrics.get("module", "")
        ).startswith("keras"):
            return None
        return [metrics.get("config", {}).get("name", "")]
    if isinstance(metrics, dict):  # per output
        metrics = list(metrics.values())
    if isinstance(metrics, (list, tuple)):
        names = []
        for entry in metrics:
            found = _metric_names(entry)
            if found is None:
                return None
            names.extend(found)
        return names
    return None


def _check_accuracy_metric(teacher):
    """Refuses a teacher compiled without an accuracy metric.

    The composed model is compiled like the teacher and each trial is
    scored by its accuracy: without one, every trial would fail only
    after training (and Keras Tuner would retry it). An uncompiled
    teacher gets defaults with an accuracy.
    """
    if not getattr(teacher, "compiled", False):
        return
    try:
        config = teacher.get_compile_config()
        # What `compose.compile_like` does: a config that does not compile
        # (objects of one's own, not registered) gives the defaults.
        keras.Sequential([keras.Input((1,))]).compile_from_config(config)
    except Exception:
        return
    # A weighted accuracy is reported under the same name ("accuracy").
    names = _metric_names(config.get("metrics"))
    weighted = _metric_names(config.get("weighted_metrics"))
    if names is None or weighted is None:
        return
    if any(_is_accuracy(n) for n in names + weighted):
        return
    raise ValueError(
        "StudentHyperModel scores each trial by the composed model's "
        "accuracy, and the composed model is compiled like the teacher, "
        "whose metrics and weighted_metrics hold none: compile the teacher "
        'with an accuracy metric (e.g. metrics=["accuracy"]). Received: '
        f"teacher compiled with metrics={names}, weighted_metrics={weighted}"
    )


class StudentHyperModel(keras_tuner.HyperModel):
    """A Keras Tuner `HyperModel` over the students' width and number.

    Each trial builds a `TeacherClass` for a copy of `teacher` with
    `num_students` students (hyperparameter "num_students"). Image
    teachers (inputs of rank 3 or 4, float or integer pixels, read as
    `towers.input_kind` reads them) get a `ConvTower` with two
    `same`-padded convolution blocks of "filters" filters and a dense
    bottleneck of "units": one block on images under 4 pixels, one
    convolution and no pooling under 2, a global average pooling on
    images of unknown size; a representation that is a feature map of
    the image's size gets a `SegmentationTower` of two levels of
    "filters" filters (no "units"). Other teachers get a `DenseTower`
    with one hidden layer of "units". `fit` trains the students in one
    pass (`fit_students`, with the tuner's callbacks), composes them with
    the teacher's head and reports the composed model's `val_accuracy`,
    its parameters and its latency. Use it with any tuner and
    `objective=keras_tuner.Objective("val_accuracy", "max")`, then
    `pareto_front(tuner)` for accuracy against size.

    The trials wrap a copy of `teacher` with its weights of the search
    (made again when they change), never `teacher` itself: Keras Tuner
    saves every trial's weights and loads them back into the model it
    builds (`tuner.get_best_models()`), which would otherwise put the
    search's weights back into a teacher trained on since. A teacher
    that cannot be copied, or whose copy answers a probe batch otherwise
    (state kept outside its weights and layer configs), is wrapped
    itself, with a warning.

    Every completed `fit`'s numbers are also kept in `trials` (a list of
    dicts) in this process: one row per execution, so a tuner with
    `executions_per_trial=2` adds two rows per trial (`trial` counts the
    rows, not Keras Tuner's trials; `trial_results(tuner)` gives one row
    per trial).

    Args:
        teacher: the trained teacher `keras.Model`.
        num_students: choices for the number of students.
        filters: choices for the convolution filters (image teachers).
        units: choices for the bottleneck / hidden width.
        max_params: int or None, the budget for all students' parameters
            together. A trial over it fails (Keras Tuner's
            `FailedTrialError`, raised by `build`) without training, so it
            is never the best; Keras Tuner stops the search after
            `max_consecutive_failed_trials` (default 3) failures in a row,
            so raise that when much of the space is over the budget.
        feature_layer: the teacher's representation layer (default: the
            one that feeds its classifier).
        batch_size: int, default batch size for `fit_students`, or None:
            a batched dataset's own batches (else 32, as
            `fit_students`); the validation data is then evaluated in
            batches of 32.
        cache: a disk cache path for `fit_students`, shared by every trial
            (the teacher and data do not change), so the teacher runs once
            per sample for the whole search. None: a folder per teacher
            and training set in a temporary directory made on the first
            trial (`cache_dir`): a NumPy training set is known by its
            content, any other (a dataset, a tuple) by the object, so a
            new dataset object gets a new folder. That directory is
            removed with the hypermodel (once nothing refers to it) or
            when the process exits; pass a path to keep the cache.
        latency_batch: int, samples per call when timing the composed
            model.
        name: the hypermodel's name.
        tunable: bool, as in `keras_tuner.HyperModel`.

    Raises:
        ImportError: if keras-tuner is not installed (`pip install
            keras-tuner tensorboard`).
        ValueError: on empty or non-positive choices, budget,
            `batch_size` or `latency_batch`, an unknown `feature_layer`,
            a teacher compiled without an accuracy metric (each trial is
            scored by it), and, when the tuner is made, if the smallest
            students are over the budget.

    Example:

    >>> import tempfile
    >>> import keras, keras_tuner, numpy as np
    >>> teacher = keras.Sequential([
    ...     keras.Input((8,)),
    ...     keras.layers.Dense(16, activation="relu"),
    ...     keras.layers.Dense(3, activation="softmax"),
    ... ])
    >>> hypermodel = StudentHyperModel(teacher, num_students=(1, 2))
    >>> tuner = keras_tuner.RandomSearch(
    ...     hypermodel,
    ...     objective=keras_tuner.Objective("val_accuracy", "max"),
    ...     max_trials=2,
    ...     directory=tempfile.mkdtemp(),
    ... )
    >>> x = np.random.rand(64, 8).astype("float32")
    >>> y = np.random.randint(0, 3, 64)
    >>> tuner.search(x, validation_data=(x, y), epochs=1, verbose=0)
    >>> front = pareto_front(tuner)
    >>> 1 <= len(front) <= 2
    True
    """

    def __init__(
        self,
        teacher,
        num_students=(1, 2, 4),
        filters=(4, 8, 16),
        units=(8, 16, 32),
        max_params=None,
        feature_layer=None,
        batch_size=32,
        cache=None,
        latency_batch=1,
        name="teacherclass_students",
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        self.teacher = teacher
        self.num_students = _choices("num_students", num_students)
        self.filters = _choices("filters", filters)
        self.units = _choices("units", units)
        if max_params is not None and (
            not validation.is_int(max_params) or max_params < 1
        ):
            raise ValueError(
                "`max_params` must be a positive integer or None. "
                f"Received: max_params={max_params!r}"
            )
        self.max_params = None if max_params is None else int(max_params)
        self.feature_layer = feature_layer
        self.batch_size = validation.check_int(
            "batch_size", batch_size, allow_none=True
        )
        self.cache = cache
        self._cache_dir = None
        # (the teacher's copy, its cache token, the teacher's digest then)
        self._copy = None
        self._last_trial_cache = None  # (x, token, folder)
        self.latency_batch = validation.check_int(
            "latency_batch", latency_batch
        )
        # The students' input and target, as `TeacherClass` resolves them.
        cut = teacher_lib.cut(teacher, feature_layer)
        student_inputs = cut.student_inputs()
        self._student_shape = tuple(student_inputs.shape)
        self._kind = towers_lib.input_kind(student_inputs, cut.feature_shape)
        if self._kind == "text":  # token ids: a dense tower, as before
            self._kind = "dense"
        _check_accuracy_metric(teacher)
        self.trials = []

    def _tower(self, hp):
        if self._kind == "segmentation":
            f = hp.Choice("filters", self.filters)
            return towers_lib.SegmentationTower(1, filters=(f, f))
        units = hp.Choice("units", self.units)
        if self._kind == "image":
            f = hp.Choice("filters", self.filters)
            return _conv_tower(f, units, self._student_shape)
        return towers_lib.DenseTower(1, hidden=(units,))

    @property
    def cache_dir(self):
        """The representation cache every trial reads (made on first use).

        `cache` if given; else a temporary directory, removed with this
        hypermodel or when the process exits.
        """
        if self.cache is not None:
            return self.cache
        if self._cache_dir is None:
            import tempfile

            self._cache_dir = tempfile.mkdtemp(prefix="teacherclass-tuning-")
            # A training set's representation can take gigabytes: not
            # left behind in the temporary folder after every search.
            weakref.finalize(self, shutil.rmtree, self._cache_dir, True)
        return self._cache_dir

    def _trial_cache(self, x, model):
        """`cache`, or a folder of `cache_dir` for this teacher and data.

        Without a `cache`, each copy of the teacher (a new one whenever
        its weights change) and training set gets its own folder of the
        temporary directory: a later search on other data, or after the
        teacher trained on, makes a new cache rather than failing every
        trial on the old one. A NumPy training set is known by its
        content; any other by the object, the last one held so that the
        trials of one search share a folder.
        """
        if self.cache is not None:
            return self.cache
        if self._copy is not None and model.teacher is self._copy[0]:
            token = self._copy[1]
        else:  # a model this hypermodel did not build: a folder of its own
            token = uuid.uuid4().hex
        if self._last_trial_cache is not None:
            last_x, last_token, folder = self._last_trial_cache
            # The trials of one search: the same data, the same teacher.
            if last_x is x and last_token == token:
                return folder
        key = hashlib.sha256(token.encode())
        if isinstance(x, np.ndarray):
            _hash_array(key, x)
        else:
            # Another object may take a freed object's id: a new folder
            # for every new object.
            key.update(uuid.uuid4().bytes)
        folder = os.path.join(self.cache_dir, key.hexdigest()[:16])
        self._last_trial_cache = (x, token, folder)
        return folder

    def _teacher_copy(self):
        """The copy of `teacher` the trials wrap, with its current weights.

        Made again when the teacher's weights changed (it trained on) or
        the copy's did (Keras Tuner loaded a trial's weights into it), and
        shared by the trials in between: their representation caches
        agree.
        """
        digest = features._weights_digest(self.teacher)
        if (
            self._copy is None
            or self._copy[2] != digest
            or features._weights_digest(self._copy[0]) != digest
        ):
            copy = _copy_teacher(self.teacher)
            self._copy = (copy, uuid.uuid4().hex, digest)
        return self._copy[0]

    def build(self, hp):
        """A `TeacherClass` with the students `hp` describes.

        Returns:
            The `TeacherClass` (a `keras.Model`); Keras Tuner saves and
            reloads its weights.

        Raises:
            keras_tuner.errors.FailedTrialError: if the students are over
                `max_params`: Keras Tuner marks the trial failed and goes
                on (it is never trained, best, or continued by Hyperband),
                and `tuner.get_best_models` raises this error again when
                asked for more models than trials completed.
            ValueError: if the smallest students of the choices, which
                Keras Tuner builds when the tuner is made, are over
                `max_params`: every trial would be.
        """
        model = TeacherClass(
            self._teacher_copy(),
            feature_layer=self.feature_layer,
            num_students=hp.Choice("num_students", self.num_students),
            student=self._tower(hp),
        )
        student_params = _student_params(model)
        if self.max_params is None or student_params <= self.max_params:
            return model
        smallest = {"num_students": self.num_students[0]}
        if self._kind != "segmentation":
            smallest["units"] = self.units[0]
        if self._kind in ("image", "segmentation"):
            smallest["filters"] = self.filters[0]
        # The parameters grow with every choice: none is within the budget.
        if all(hp.values.get(k) == v for k, v in smallest.items()):
            raise ValueError(
                f"The smallest students of the choices have {student_params} "
                "parameters, over the budget `max_params`, so every trial "
                "would be: raise `max_params` or offer smaller choices. "
                f"Received: max_params={self.max_params}"
            )
        raise keras_tuner.errors.FailedTrialError(
            f"The students have {student_params} parameters, over the budget "
            "`max_params`: the trial is skipped (not trained, no model "
            f"saved). Received: student_params={student_params}, "
            f"max_params={self.max_params}"
        )

    def fit(self, hp, model, x, *args, validation_data=None, **kwargs):
        """Trains the students, composes them and scores the composition.

        Args:
            hp: the trial's `HyperParameters`.
            model: the `TeacherClass` from `build(hp)`.
            x: the students' training inputs (labels, if given as `y`,
                are not used).
            *args: `y`, ignored (students never see labels).
            validation_data: labelled data the composed model is scored
                on, required: `(x_val, y_val)` (optionally with a third
                element, sample weights), or a `tf.data.Dataset` yielding
                those (batched or not; the latency is timed on its first
                batch, of at most `latency_batch` samples).
            **kwargs: `fit_students` arguments: `epochs`, `callbacks` (the
                tuner's, passed through), `verbose`, `batch_size`, ...

        Returns:
            A dict with `val_accuracy` (the objective), `params` (the
            composed model's parameters), `student_params`,
            `latency_ms` (median `predict_on_batch` time for
            `latency_batch` samples).

        Raises:
            ValueError: without `validation_data`, or with one of another
                kind (the message names its type), a dataset that yields
                no labels, no sample, or never ends.
        """
        del args
        if validation_data is None:
            raise ValueError(
                "StudentHyperModel scores the composed model on labelled "
                "data: pass `validation_data=(x_val, y_val)` to "
                "`tuner.search`. Received: validation_data=None"
            )
        student_params = _student_params(model)
        params = student_params + model.head.count_params()
        kwargs.setdefault("batch_size", self.batch_size)
        val, inputs = _validation_data(
            validation_data,
            self.teacher.inputs[0],
            kwargs["batch_size"] or _VALIDATION_BATCH_SIZE,
        )
        if "cache" not in kwargs:
            kwargs["cache"] = self._trial_cache(x, model)
        model.fit_students(x, **kwargs)
        composed = model.compose()
        results = composed.evaluate(**val, verbose=0, return_dict=True)
        accuracy = _accuracy(results)
        sample = np.asarray(inputs[: self.latency_batch])
        latency = _latency_ms(composed, sample)
        self.trials.append(
            {
                "trial": len(self.trials),
                "hyperparameters": dict(hp.values),
                "params": params,
                "student_params": student_params,
                "val_accuracy": accuracy,
                "latency_ms": latency,
            }
        )
        return {
            "val_accuracy": accuracy,
            "params": float(params),
            "student_params": float(student_params),
            "latency_ms": latency,
        }


def _hash_array(key, x):
    """Adds NumPy array `x`'s content to hashlib `key`: for an object array
    (strings, arrays), its elements' values, not pointers, whole (`repr`
    elides the middle of a long array)."""
    key.update(f"{x.dtype}{x.shape}".encode())
    if not x.dtype.hasobject:
        key.update(memoryview(np.ascontiguousarray(x)).cast("B"))
        return
    for value in x.ravel():
        if isinstance(value, np.ndarray):
            key.update(b"array")
            _hash_array(key, value)
        else:
            key.update(f"{type(value).__name__}:{value!r}".encode())


def _student_params(model):
    return sum(s.count_params() for s in model.students)


def _conv_tower(filters, units, input_shape):
    """Two `same`-padded blocks of `filters`, fewer where they do not fit.

    As `towers.default_tower` fits its `ConvTower`: an image under 4
    pixels takes one block (one pooling), under 2 one convolution and no
    pooling; one of unknown height or width a global average pooling.
    """
    common = {"padding": "same", "bottleneck": units, "dropout": 0.0}
    if None in tuple(input_shape[1:3]):
        return towers_lib.ConvTower(
            1,
            filters=(filters, filters),
            convs_per_block=1,
            pooling="global_average",
            **common,
        )
    for count in (2, 1):
        tower = towers_lib.ConvTower(
            1, filters=(filters,) * count, convs_per_block=1, **common
        )
        if tower._misfit(input_shape) is None:
            return tower
    # One convolution, short of a block: no pooling, any size fits.
    return towers_lib.ConvTower(
        1, filters=(filters,), convs_per_block=2, **common
    )


def _copy_teacher(teacher):
    """A copy of `teacher` with its weights, sharing no variable with it.

    Layers without weights (`TextVectorization`, `Rescaling`, ...) are
    shared rather than rebuilt: some keep state outside weights (a
    vocabulary) that a rebuilt layer would lose, and sharing them shares
    no weight. The input keeps its name (the key of dict inputs). The
    weights go through Keras' saving path (a `.weights.h5` file), whose
    `load_own_variables` also refreshes state computed from them
    (`Normalization`'s mean and variance), which `set_weights` leaves
    stale. A teacher that cannot be copied (a layer without a working
    `get_config`), or whose copy answers a probe batch otherwise than
    it, is wrapped itself, with a warning.
    """

    def copy_layer(layer):
        if not layer.weights:
            return layer
        if isinstance(layer, keras.Model):  # a nested model: the same way
            try:
                return keras.models.clone_model(
                    layer, clone_function=copy_layer
                )
            except ValueError:  # subclassed: no graph to clone
                pass
        return layer.__class__.from_config(layer.get_config())

    kwargs = {}
    if not isinstance(teacher, keras.Sequential):
        spec = teacher.inputs[0]
        kwargs["input_tensors"] = keras.Input(
            batch_shape=spec.shape,
            dtype=spec.dtype,
            name=teacher_lib.input_name(spec),
        )
    compiled = teacher.compiled
    # The copy's new layers draw initial weights (overwritten below) from
    # the global seed: put its state back, so that a trial's students are
    # the same under one seed whether or not a copy was made first.
    state = random.getstate(), np.random.get_state()
    try:
        # `clone_model` compiles the copy like the teacher, and fails where
        # that does not round-trip: compiled below, where it may fail.
        teacher.compiled = False
        copy = keras.models.clone_model(
            teacher, clone_function=copy_layer, **kwargs
        )
        _copy_weights(teacher, copy)
        problem = _answers_otherwise(teacher, copy)
    except Exception as e:  # a layer's config that does not rebuild it
        problem = f"{type(e).__name__}: {e}"
    finally:
        teacher.compiled = compiled
        random.setstate(state[0])
        np.random.set_state(state[1])
    if problem is not None:
        warnings.warn(
            f"StudentHyperModel could not copy the teacher ({problem}), so "
            "the trials wrap the teacher itself: `tuner.get_best_models()` "
            "loads the weights the teacher had during the search back into "
            f"it. Received: teacher={teacher.name!r}",
            stacklevel=3,
        )
        return teacher
    if compiled:
        try:  # the composed model is compiled like this copy
            copy.compile_from_config(teacher.get_compile_config())
        except Exception:  # as `compose.compile_like`: the defaults
            pass
    return copy


def _copy_weights(teacher, copy):
    """`teacher`'s weights into `copy`, its clone, as `load_weights` sets
    them: each layer's `load_own_variables` runs (and with it, state
    computed from the weights). By position where the files' layouts
    differ (`set_weights`), which the probe then checks."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="teacherclass-copy-") as folder:
        path = os.path.join(folder, "teacher.weights.h5")
        teacher.save_weights(path)
        try:
            copy.load_weights(path)
        except ValueError:  # a layout of its own (a subclass's attributes)
            copy.set_weights(teacher.get_weights())


def _answers_otherwise(teacher, copy):
    """Why `copy` is not `teacher`'s equal on a probe batch, or None.

    The probe is two samples of the teacher's input (random floats, or
    integers 0 and 1; unknown sizes 8), drawn from a generator of its own
    (the global seeds are not drawn from). A teacher the probe does not
    fit (it raises) is not checked.
    """
    spec = teacher.inputs[0]
    shape = (2, *(8 if d is None else d for d in spec.shape[1:]))
    dtype = keras.backend.standardize_dtype(spec.dtype)
    rng = np.random.default_rng(0)
    if dtype == "string":
        probe = np.full(shape, "a", dtype=object)
    elif dtype == "bool" or "int" in dtype:
        probe = rng.integers(0, 2, shape).astype(dtype)
    else:
        probe = rng.standard_normal(shape).astype(dtype)
    try:
        expected = tf.nest.flatten(teacher(probe, training=False))
    except Exception:
        return None
    got = tf.nest.flatten(copy(probe, training=False))
    for a, b in zip(expected, got):
        a = np.asarray(keras.ops.convert_to_numpy(a), "float64")
        b = np.asarray(keras.ops.convert_to_numpy(b), "float64")
        if a.shape != b.shape:
            return (
                f"its copy's output of shape {b.shape} differs from the "
                f"teacher's {a.shape} on a probe batch"
            )
        # Loose: float16 outputs, and kernels of unfixed order on a GPU.
        if not np.allclose(a, b, rtol=1e-3, atol=1e-3):
            return (
                "its copy's outputs differ from the teacher's on a probe "
                f"batch, by up to {np.max(np.abs(a - b)):.3g}: state kept "
                "outside the weights or the layers' configs"
            )
    return None


def _validation_data(validation_data, input_spec, batch_size):
    """`evaluate` arguments for `validation_data`, and inputs to time.

    `validation_data` is `(x, y)`, `(x, y, sample_weight)` or a
    `tf.data.Dataset` yielding those (batched or not); the inputs to time
    the composed model on are `x`, or a dataset's first batch.
    """
    if isinstance(validation_data, tf.data.Dataset):
        spec = validation_data.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                "`validation_data` must yield `(x, y)` (or `(x, y, "
                "sample_weight)`): the composed model is scored on labels. "
                f"Received: validation_data.element_spec={spec!r}"
            )
        if validation_data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "`validation_data` is an infinite (repeated) dataset, which "
                "evaluating would never finish: pass it without `.repeat()`."
                f" Received: validation_data={validation_data!r}"
            )
        expected = tuple(input_spec.shape[1:])
        if len(spec[0].shape) == len(expected):  # samples, not batches
            validation_data = validation_data.batch(batch_size)
        first = next(iter(validation_data.take(1)), None)
        if first is None:
            raise ValueError(
                "`validation_data` holds no sample. Received: "
                f"validation_data={validation_data!r}"
            )
        return {"x": validation_data}, np.asarray(first[0])
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (
        2,
        3,
    ):
        x, y, *weights = validation_data
        first = tf.nest.flatten(x)[0] if x is not None else None
        if first is not None and hasattr(first, "__len__") and not len(first):
            # Keras would evaluate it to no metric at all.
            raise ValueError(
                "`validation_data` holds no sample. Received: validation_data"
                f" with x_val of shape {np.shape(first)}"
            )
        val = {"x": x, "y": y, "batch_size": batch_size}
        if weights:
            val["sample_weight"] = weights[0]
        return val, x
    raise ValueError(
        "`validation_data` must be `(x_val, y_val)` (or `(x_val, y_val, "
        "sample_weight)`) or a tf.data.Dataset yielding those. Received: "
        f"validation_data of type {type(validation_data).__name__}"
    )


def trial_results(tuner):
    """Every completed trial's hyperparameters and numbers, from the oracle.

    Args:
        tuner: a Keras Tuner tuner that ran `StudentHyperModel` trials.

    Returns:
        A list of dicts with `trial_id`, `hyperparameters`, `val_accuracy`,
        `params`, `student_params` and `latency_ms`, in trial order.
        Failed trials (over the budget `max_params`) have no numbers and
        are not listed.
    """
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        metrics = trial.metrics
        if not metrics.exists("val_accuracy"):
            continue

        def get(name, metrics=metrics):
            if not metrics.exists(name):
                return None
            return float(metrics.get_last_value(name))

        rows.append(
            {
                "trial_id": trial_id,
                "hyperparameters": dict(trial.hyperparameters.values),
                "val_accuracy": get("val_accuracy"),
                "params": int(get("params")),
                "student_params": int(get("student_params")),
                "latency_ms": get("latency_ms"),
            }
        )
    return rows


def pareto_front(results, accuracy="val_accuracy", size="params"):
    """The trials no other trial beats on both accuracy and size.

    A trial is on the front unless another has at least its accuracy with
    at most its parameters, and is strictly better on one of them. Trials
    over the parameter budget failed, so they are not among the results.

    Args:
        results: a tuner (its trials are read with `trial_results`), or a
            list of dicts such as `trial_results` or
            `StudentHyperModel.trials` returns.
        accuracy: key of the accuracy to maximize.
        size: key of the size to minimize ("params", "student_params" or
            "latency_ms").

    Returns:
        The front's dicts, smallest first.

    Example:

    >>> rows = [
    ...     {"params": 10, "val_accuracy": 0.8},
    ...     {"params": 20, "val_accuracy": 0.7},
    ...     {"params": 30, "val_accuracy": 0.9},
    ... ]
    >>> [r["params"] for r in pareto_front(rows)]
    [10, 30]
    """
    if not isinstance(results, (list, tuple)):
        results = trial_results(results)
    rows = [
        r
        for r in results
        if r.get(accuracy) is not None and r.get(size) is not None
    ]
    front = []
    for r in rows:
        dominated = any(
            o[accuracy] >= r[accuracy]
            and o[size] <= r[size]
            and (o[accuracy] > r[accuracy] or o[size] < r[size])
            for o in rows
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: (r[size], -r[accuracy]))


__all__ = ["StudentHyperModel", "pareto_front", "trial_results"]
