"""Export of the composed model: SavedModel and LiteRT (TFLite).

Only the composed model leaves: input -> students -> concatenate -> clip ->
head. `export` takes that `keras.Model` (`TeacherClass.export` composes,
then calls it), so the teacher's trunk is never written. SavedModel export
is Keras' own `Model.export(format="tf_saved_model")`; LiteRT export is Keras'
`Model.export(format="litert")`, which runs `tf.lite.TFLiteConverter` on a
SavedModel of the model's inference call, in float32 (a mixed-precision
model is rebuilt in float32 first, see `float32_copy`). Int8 post-training
quantization calibrates the converter on a sample of the training data (the
representative dataset): weights and activations become int8, input and
output stay float32, so an int8 artifact is a drop-in replacement.

`load` reads either artifact back as a callable returning NumPy arrays,
for checks and reports.
"""

import os
import shutil
import tempfile

import numpy as np

from teacherclass import validation

FORMATS = ("saved_model", "litert")
QUANTIZATIONS = (None, "int8")

_CALIBRATION_SAMPLES = 200


def _composed(model):
    import keras

    # Duck-typed, not an isinstance of TeacherClass: this module imports
    # nothing of the package's models (no import circle).
    compose = getattr(model, "compose", None)
    if isinstance(model, keras.Model) and callable(compose):
        return compose()
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model (the composed model, from "
            f"TeacherClass.compose). Received: model={model!r}"
        )
    return model


def _float32_policies(config):
    """`config` with every mixed-precision dtype policy set to float32."""
    if isinstance(config, dict):
        if str(config.get("class_name", "")).endswith("DTypePolicy"):
            name = (config.get("config") or {}).get("name", "")
            if name.startswith("mixed_"):
                return {
                    **config,
                    "config": {**config["config"], "name": "float32"},
                }
        return {k: _float32_policies(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_float32_policies(v) for v in config]
    return config


def float32_copy(model):
    """The model itself if it computes in float32, else a float32 copy.

    LiteRT runs float32 (or quantized) kernels only: bfloat16 or float16
    compute from a mixed-precision policy would become TensorFlow "select"
    ops the LiteRT interpreter cannot run. The weights of a mixed-precision
    model are float32 already, so the copy holds the same values.

    Args:
        model: a `keras.Model`.

    Returns:
        A `keras.Model` whose layers compute in float32.

    Example:

    >>> import keras
    >>> dense = keras.layers.Dense(2, dtype="mixed_bfloat16")
    >>> model = keras.Sequential([keras.Input((4,)), dense])
    >>> float32_copy(model).layers[0].compute_dtype
    'float32'
    """
    import keras

    original = keras.saving.serialize_keras_object(model)
    config = _float32_policies(original)
    if config == original:
        return model
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def calibration_samples(
    data, num_samples=_CALIBRATION_SAMPLES, seed=0, sample_rank=None
):
    """Draws calibration inputs for int8 quantization from training data.

    From an array, `num_samples` rows drawn at random (`seed`), kept in
    their order. From a dataset, its first `num_samples` samples: a
    dataset is read once and not to its end (an ImageNet-sized one would
    take hours), so shuffle one that is ordered, by class for instance,
    before passing it.

    Args:
        data: inputs: a NumPy array (or anything `np.asarray` accepts), a
            `(x, y)` tuple, or a `tf.data.Dataset` yielding `x` or
            `(x, y[, sample_weight])`, batched or not.
        num_samples: int, how many samples to draw at most.
        seed: int, the seed of the random draw (arrays).
        sample_rank: int or None, the rank of one input sample (the
            model's input rank less the batch axis): a dataset whose
            elements have one axis more yields batches, of any size
            (`drop_remainder=True` ones too). None, or elements of
            another rank: they are batches when their first axis has an
            unknown size.

    Returns:
        A float32 NumPy array of at most `num_samples` inputs.

    Raises:
        ValueError: if `data` holds no sample.

    Example:

    >>> calibration_samples(np.ones((500, 8)), num_samples=10).shape
    (10, 8)
    >>> import tensorflow as tf
    >>> batches = tf.data.Dataset.from_tensor_slices(np.ones((64, 4, 4)))
    >>> batches = batches.batch(16, drop_remainder=True)  # (16, 4, 4)
    >>> calibration_samples(batches, 10, sample_rank=2).shape
    (10, 4, 4)
    """
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, tuple):
            data = data.map(lambda *e: e[0])
            spec = data.element_spec
        rank = spec.shape.rank
        if sample_rank is not None and rank in (sample_rank, sample_rank + 1):
            # A batch of any size, `drop_remainder=True` ones too.
            batched = rank == sample_rank + 1
        else:  # a batch axis is one of unknown size
            batched = bool(rank) and spec.shape[0] is None
        if batched:
            data = data.unbatch()
        rows = list(data.take(num_samples).as_numpy_iterator())
        x = np.stack(rows) if rows else np.zeros((0,))
    else:
        if isinstance(data, tuple):
            data = data[0]
        x = np.asarray(data)
        if len(x) > num_samples:
            rng = np.random.default_rng(seed)
            x = x[np.sort(rng.choice(len(x), num_samples, replace=False))]
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            "`representative_data` must hold at least one sample. "
            f"Received: representative_data with shape {x.shape}"
        )
    return x.astype("float32") if x.dtype.kind == "f" else x


def _representative_dataset(samples):
    def generate():
        for sample in samples:
            yield [sample[None, ...]]

    return generate


def _litert_kwargs(model, quantize, representative_data, num_samples):
    if quantize is None:
        return {}
    import tensorflow as tf

    try:
        sample_rank = len(model.inputs[0].shape) - 1
    except (AttributeError, IndexError, ValueError):  # no known input
        sample_rank = None
    samples = calibration_samples(
        representative_data, num_samples, sample_rank=sample_rank
    )
    return {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "representative_dataset": _representative_dataset(samples),
    }


def export(
    model,
    path,
    format="saved_model",
    quantize=None,
    representative_data=None,
    overwrite=False,
    num_calibration_samples=_CALIBRATION_SAMPLES,
    verbose=False,
):
    """Exports a composed model as a SavedModel or a LiteRT file.

    Args:
        model: the composed `keras.Model` (from `TeacherClass.compose`).
            A `TeacherClass` given here is composed first (as
            `TeacherClass.export` does): the teacher is never exported.
        path: where to write: a directory for "saved_model", a file ending
            with ".tflite" for "litert".
        format: "saved_model" (TensorFlow SavedModel with a `serve`
            endpoint) or "litert" (a TFLite flatbuffer).
        quantize: None for float32, or "int8" for post-training int8
            quantization of weights and activations (LiteRT only; input and
            output stay float32).
        representative_data: training inputs for int8 calibration (array,
            `(x, y)` tuple or `tf.data.Dataset`); required with "int8".
        overwrite: bool, replace an existing `path`; otherwise an existing
            `path` is an error.
        num_calibration_samples: int, samples drawn from
            `representative_data` to calibrate int8 ranges (at random
            from an array, the first ones of a dataset: see
            `calibration_samples`).
        verbose: bool, let Keras print what it writes.

    Returns:
        The path written, as a string.

    Raises:
        ValueError: on an unknown `format` or `quantize`, quantization
            without LiteRT or without `representative_data`, or a LiteRT
            `path` without the ".tflite" suffix.
        FileExistsError: if `path` exists and `overwrite` is False, or
            it is not an artifact of `format` (`check_replaceable`): a
            folder of other files is never deleted.
        TypeError: if `model` is not a keras.Model.

    Example:

    >>> import keras, tempfile, os
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> out = os.path.join(tempfile.mkdtemp(), "model.tflite")
    >>> export(model, out, format="litert") == out
    True
    >>> load(out)(np.ones((3, 4), "float32")).shape
    (3, 2)
    """
    path = given = os.fspath(path)
    validation.check_export_args(path, format, quantize, FORMATS, QUANTIZATIONS)
    validation.check_int("num_calibration_samples", num_calibration_samples)
    if quantize is not None and representative_data is None:
        raise ValueError(
            "Int8 quantization calibrates on a sample of the training "
            "data: pass `representative_data` (e.g. x_train). "
            "Received: representative_data=None"
        )
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"{path} exists; pass overwrite=True to replace it. "
            f"Received: path={path!r}"
        )
    check_replaceable(path, format)
    model = _composed(model)
    kwargs = {}
    if format == "litert":
        model = float32_copy(model)
        kwargs = _litert_kwargs(
            model, quantize, representative_data, num_calibration_samples
        )
    path = os.path.abspath(path)  # "." or "out/" name a folder too
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    # Written beside its destination, then moved: a failed export never
    # leaves a half-written artifact, nor destroys the one it replaces.
    staging = tempfile.mkdtemp(dir=parent, prefix=".export-")
    staged = os.path.join(staging, os.path.basename(path))
    backup = staged + ".old"
    try:
        keras_format = "tf_saved_model" if format == "saved_model" else format
        model.export(staged, format=keras_format, verbose=verbose, **kwargs)
        _replace(staged, path, backup)
    finally:
        # Kept only if it still holds the old export (`_replace` failed).
        if not os.path.lexists(backup):
            shutil.rmtree(staging, ignore_errors=True)
    return given


def check_replaceable(path, format, argument="path"):
    """Refuses an existing `path` that an export of `format` may not
    replace.

    `overwrite=True` replaces an earlier artifact of the same format: a
    SavedModel folder (it holds "saved_model.pb") or an empty folder for
    "saved_model", a TFLite file (its identifier "TFL3") for "litert".
    Anything else at `path`, such as a folder of the user's files, is an
    error, not a deletion.

    Args:
        path: the export's destination.
        format: "saved_model" or "litert".
        argument: str, how the error names `path` (the command line's
            "--output").

    Raises:
        FileExistsError: if `path` exists and is not such an artifact.

    Example:

    >>> import tempfile
    >>> check_replaceable(tempfile.mkdtemp(), "saved_model")  # empty: fine
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        return
    if format == "saved_model":
        replaceable = os.path.isdir(path) and (
            not os.listdir(path)
            or os.path.isfile(os.path.join(path, "saved_model.pb"))
        )
        what = "a SavedModel folder (with saved_model.pb) or an empty folder"
    else:
        replaceable = os.path.isfile(path) and _is_tflite(path)
        what = "a TFLite file"
    if os.path.islink(path) or not replaceable:
        raise FileExistsError(
            f"{path} exists and is not {what}: an export replaces only an "
            "earlier export, never other files. Choose another path. "
            # A command-line flag shows the path as typed.
            f"Received: {argument}="
            + (path if argument.startswith("--") else repr(path))
        )


def _is_tflite(path):
    with open(path, "rb") as f:
        return f.read(8)[4:8] == b"TFL3"


def _replace(staged, path, backup):
    """Moves `staged` to `path`; an existing `path` is moved to `backup`
    first, put back if the move fails, and deleted once it succeeded.
    Were the put-back to fail too, the error names `backup`, which the
    caller keeps."""
    if not os.path.lexists(path):
        os.replace(staged, path)
        return
    os.replace(path, backup)
    try:
        os.replace(staged, path)
    except BaseException as error:
        try:
            os.replace(backup, path)
        except OSError as restore:
            raise OSError(
                f"The export could not replace {path} ({error}), nor be "
                f"undone ({restore}): the old export is kept at {backup}."
            ) from error
        raise
    _remove(backup)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


class Artifact:
    """An exported model loaded back for inference, returning NumPy arrays.

    Use `load` to build one. Calling it runs a batch; `predict` runs any
    number of samples in batches.

    Attributes:
        path: the artifact's path.
        format: "saved_model" or "litert".
        num_threads: the LiteRT interpreter's threads (None: LiteRT's
            default, one; always None for the other formats, which run on
            TensorFlow's thread pools).
    """

    def __init__(self, path, num_threads=None):
        self.path = os.fspath(path)
        self.num_threads = None
        if os.path.isdir(self.path):
            import tensorflow as tf

            self.format = "saved_model"
            self._loaded = tf.saved_model.load(self.path)
            self._serve = self._loaded.serve
        elif self.path.endswith(".tflite"):
            self.format = "litert"
            self._interpreter = _interpreter(self.path, num_threads)
            self.num_threads = num_threads
            self._batch = None
        elif self.path.endswith(".keras"):
            import tensorflow as tf

            self.format = "keras"
            from teacherclass import saving

            self._model = saving.load_model(self.path, compile=False)
            model = self._model
            self._serve = tf.function(lambda x: model(x, training=False))
        else:
            raise ValueError(
                "Expected a SavedModel directory, a '.tflite' or a '.keras' "
                f"file. Received: path={self.path!r}"
            )

    def input_specs(self):
        """`[(shape without batch axis, dtype)]` of the inputs."""
        if self.format == "litert":
            return [
                (tuple(int(d) for d in i["shape"][1:]), i["dtype"])
                for i in self._interpreter.get_input_details()
            ]
        if self.format == "keras":
            return [(tuple(t.shape[1:]), t.dtype) for t in self._model.inputs]
        function = self._serve.concrete_functions[0]
        specs = function.structured_input_signature[0]
        return [(tuple(s.shape[1:]), s.dtype.as_numpy_dtype) for s in specs]

    @property
    def num_params(self):
        """Float values in the artifact's variables (None for LiteRT files).

        Counts the weights a SavedModel or `.keras` file holds, leaving out
        integer state such as the dropout layers' seeds.
        """
        if self.format == "litert":
            return None
        variables = (
            self._loaded.variables
            if self.format == "saved_model"
            else self._model.weights
        )
        return int(
            sum(
                np.prod(v.shape)
                for v in variables
                if np.dtype(_numpy_dtype(v.dtype)).kind == "f"
            )
        )

    def __call__(self, x):
        if self.format != "litert":
            return np.asarray(self._serve(x))
        x = np.asarray(x)
        interpreter = self._interpreter
        inp = interpreter.get_input_details()[0]
        if self._batch != x.shape:
            interpreter.resize_tensor_input(inp["index"], x.shape)
            interpreter.allocate_tensors()
            self._batch = x.shape
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        out = interpreter.get_output_details()[0]
        return interpreter.get_tensor(out["index"]).copy()

    def predict(self, x, batch_size=64):
        """Runs `x` through the artifact in batches of `batch_size`."""
        x = np.asarray(x)
        outputs = [
            self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outputs, axis=0)


def _numpy_dtype(dtype):
    return getattr(dtype, "as_numpy_dtype", dtype)


def tensorflow_threads():
    """The threads TensorFlow runs one op on (its intra-op pool): the
    configured number, else one per CPU. Pass it as `load(num_threads=)`
    to time a LiteRT artifact at the settings of the Keras model beside
    it."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or (
        os.cpu_count() or 1
    )


def _interpreter(path, num_threads=None):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        # tf.lite.Interpreter announces its move to ai_edge_litert.
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_path=path, num_threads=num_threads
        )
    interpreter.allocate_tensors()
    return interpreter


def load(path, num_threads=None):
    """Loads an exported artifact for inference.

    Args:
        path: a SavedModel directory or a ".tflite" file written by
            `export`, or a ".keras" file.
        num_threads: a LiteRT (".tflite") artifact's interpreter threads:
            None for LiteRT's default (one thread), or a positive int
            (`tensorflow_threads()` matches the Keras and SavedModel
            formats, which use TensorFlow's pools). Ignored by the other
            formats.

    Returns:
        An `Artifact`: call it on a batch, or `predict(x, batch_size)`.

    Raises:
        ValueError: if `path` is none of these, or `num_threads` is not
            None or a positive int.
        FileNotFoundError: if `path` does not exist.

    Example:

    >>> import keras, tempfile, os
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> out = export(model, os.path.join(tempfile.mkdtemp(), "m"))
    >>> load(out).format
    'saved_model'
    """
    if num_threads is not None and not (
        validation.is_int(num_threads) and num_threads > 0
    ):
        raise ValueError(
            "`num_threads` must be None or a positive integer. "
            f"Received: num_threads={num_threads!r}"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No exported model at {os.fspath(path)}. "
            f"Received: path={os.fspath(path)!r}"
        )
    return Artifact(path, num_threads)


def size_on_disk(path):
    """Bytes taken by a file, or by every file under a directory.

    Example:

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "a"), "wb").write(b"1234")
    >>> size_on_disk(d)
    4
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total
