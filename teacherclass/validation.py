"""Argument checks, in one place, run before anything is traced.

Every public entry point checks what it is given here first, so a bad
argument fails with a Keras-style message that names the argument and
echoes the value (`Received: batch_size=0`) instead of a TensorFlow error
from deep inside a traced graph. The checks are pure functions of their
arguments (NumPy and `tf.data` specs only): none runs the teacher.
"""

import math
import numbers

import numpy as np

_INT = (int, np.integer)


def is_int(value):
    """Whether `value` is an integer, Python's or NumPy's (not a bool)."""
    return isinstance(value, _INT) and not isinstance(value, bool)


def check_int(name, value, minimum=1, allow_none=False):
    """Checks an integer argument such as `epochs` or `batch_size`.

    Args:
        name: the argument's name, for the message.
        value: the value received.
        minimum: the smallest value allowed.
        allow_none: whether None is allowed.

    Returns:
        `value` as a Python int, or None.

    Raises:
        ValueError: if `value` is not an integer >= `minimum` (bools are
            not integers here).

    Example:

    >>> check_int("epochs", 3)
    3
    >>> check_int("epochs", 0)
    Traceback (most recent call last):
    ...
    ValueError: `epochs` must be an integer >= 1. Received: epochs=0
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, _INT) and not isinstance(value, bool)
    if not ok or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}"
            f"{' or None' if allow_none else ''}. Received: {name}={value!r}"
        )
    return int(value)


def check_bool(name, value):
    """Checks a switch such as `uniform`: a Python or NumPy bool.

    Args:
        name: the argument's name, for the message.
        value: the value received.

    Returns:
        `value` as a Python bool.

    Raises:
        ValueError: if `value` is not a bool (0, 1 and "yes" are not).

    Example:

    >>> check_bool("uniform", True)
    True
    >>> check_bool("uniform", 1)
    Traceback (most recent call last):
    ...
    ValueError: `uniform` must be True or False. Received: uniform=1
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"`{name}` must be True or False. Received: {name}={value!r}"
        )
    return bool(value)


def check_real(name, value, minimum=0.0, strict=False, maximum=None):
    """Checks a finite real number such as a weight or a temperature.

    Python and NumPy numbers pass (`numbers.Real`: `np.float32` too);
    bools, NaN and infinities do not.

    Args:
        name: the argument's name, for the message.
        value: the value received.
        minimum: the smallest value allowed (None: no bound).
        strict: whether `value` must exceed `minimum` (> rather than >=).
        maximum: the largest value allowed (None: no bound).

    Returns:
        `value` as a Python float.

    Raises:
        ValueError: naming the argument, its bounds and the value.

    Example:

    >>> check_real("temperature", 2, strict=True)
    2.0
    >>> try:
    ...     check_real("temperature", float("nan"), strict=True)
    ... except ValueError as e:
    ...     print(e)
    `temperature` must be a finite number > 0. Received: temperature=nan
    """
    ok = isinstance(value, numbers.Real) and not isinstance(
        value, (bool, np.bool_)
    )
    ok = ok and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        if minimum is not None and maximum is not None:
            left = "(" if strict else "["
            bound = f" in {left}{minimum:g}, {maximum:g}]"
        elif minimum is not None:
            bound = f" {'>' if strict else '>='} {minimum:g}"
        elif maximum is not None:
            bound = f" <= {maximum:g}"
        else:
            bound = ""
        raise ValueError(
            f"`{name}` must be a finite number{bound}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_positive_ints(name, values):
    """Checks a sequence of positive integers; returns it as a tuple.

    A single integer counts as a sequence of one. The message echoes the
    value received (a string is no sequence of integers and is not shown
    as its characters; a one-shot iterator: the values it gave).

    Example:

    >>> check_positive_ints("batch_sizes", 8)
    (8,)
    >>> try:
    ...     check_positive_ints("batch_sizes", [1, 0])
    ... except ValueError as e:
    ...     print(e)
    `batch_sizes` must hold positive integers. Received: batch_sizes=[1, 0]
    >>> try:
    ...     check_positive_ints("sizes", "64")
    ... except ValueError as e:
    ...     print(e)
    `sizes` must hold positive integers. Received: sizes='64'
    """
    received = values
    if isinstance(values, (str, bytes)):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        values = (values,)
    if not values or not all(
        isinstance(v, _INT) and not isinstance(v, bool) and v > 0
        for v in values
    ):
        if hasattr(received, "__iter__") and not hasattr(received, "__len__"):
            received = values  # an iterator, now spent
        raise ValueError(
            f"`{name}` must hold positive integers. "
            f"Received: {name}={received!r}"
        )
    return tuple(int(v) for v in values)


def check_students(students, num_students):
    """Checks a selection of students; returns sorted distinct indices.

    Args:
        students: None (all), an int, or a sequence of ints.
        num_students: the number of students of the class.

    Returns:
        A sorted tuple of indices.

    Raises:
        ValueError: on an index outside `[0, num_students)`, a repeated
            index, or an empty selection.
    """
    n = num_students
    if students is None:
        return tuple(range(n))
    if isinstance(students, _INT) and not isinstance(students, bool):
        students = [students]
    try:
        students = list(students)
    except TypeError:
        students = [students]
    if (
        not students
        or len(set(students)) != len(students)
        or not all(
            isinstance(i, _INT) and not isinstance(i, bool) and 0 <= i < n
            for i in students
        )
    ):
        raise ValueError(
            f"`students` must list distinct student indices in [0, {n}). "
            f"Received: students={students!r}"
        )
    return tuple(sorted(int(i) for i in students))


def check_callable(name, value, what="a callable", allow_none=True):
    """Checks that `value` is callable (or None)."""
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError(f"`{name}` must be {what}. Received: {name}={value!r}")
    return value


def check_clip(clip):
    """Checks a `(low, high)` clip pair (floats or None); returns it."""
    try:
        low, high = clip
    except (TypeError, ValueError):
        low = high = object()
    number = (int, float, np.floating, np.integer)
    if not all(
        v is None or (isinstance(v, number) and not isinstance(v, bool))
        for v in (low, high)
    ):
        raise ValueError(
            "`clip` must be 'auto', None or a (low, high) pair of floats or "
            f"None. Received: clip={clip!r}"
        )
    if low is not None and high is not None and low > high:
        raise ValueError(
            f"`clip`'s low end must not exceed its high end. "
            f"Received: clip={clip!r}"
        )
    return (low, high)


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def dtype_kind(dtype):
    """'string', 'bool' or 'number' for a NumPy, TensorFlow or Keras dtype."""
    if isinstance(dtype, np.dtype):
        kind = dtype.kind
        if kind in ("U", "S", "O"):
            return "string"
        return "bool" if kind == "b" else "number"
    name = getattr(dtype, "name", None) or str(dtype)
    if name in ("string", "str", "object") or name.startswith(("<U", "|S")):
        return "string"
    try:
        kind = np.dtype(name).kind
    except TypeError:
        return "number"
    if kind in ("U", "S", "O"):
        return "string"
    return "bool" if kind == "b" else "number"


def array_dtype_kind(x):
    """The kind of an array's elements; object arrays are looked into."""
    x = np.asarray(x)
    if x.dtype.kind == "O":
        first = x.flat[0] if x.size else None
        if isinstance(first, (str, bytes)):
            return "string"
        return "number" if isinstance(first, (int, float)) else "object"
    return dtype_kind(x.dtype)


def check_dtype(name, received, expected, kind=None):
    """Checks that data of dtype `received` can feed an input of `expected`.

    Numbers feed numeric inputs (ints, floats and bools convert into each
    other as Keras converts them); strings feed string inputs only.

    Args:
        name: the argument's name.
        received: the data's dtype.
        expected: the teacher input's dtype.
        kind: the data's kind when known better than its dtype says
            (`array_dtype_kind` of an object array).

    Raises:
        TypeError: with both dtypes, when strings meet numbers.
    """
    got = kind or dtype_kind(received)
    want = dtype_kind(expected)
    if got == "object":
        raise TypeError(
            f"`{name}` holds Python objects that are neither numbers nor "
            f"strings; the teacher takes {expected} inputs. "
            f"Received: {name} of dtype object"
        )
    if (got == "string") != (want == "string"):
        raise TypeError(
            f"`{name}` holds {'strings' if got == 'string' else 'numbers'} "
            f"but the teacher takes {expected} inputs. Convert the data "
            f"first (or wrap a teacher that starts with the conversion, e.g. "
            f"TextVectorization). Received: {name} of dtype {received}"
        )


def count_non_finite(x):
    """The number of samples of a floating array holding NaN or Inf."""
    x = np.asarray(x)
    if x.dtype.kind not in ("f", "c") or x.size == 0:
        return 0
    bad = ~np.isfinite(x.reshape(len(x), -1))
    return int(bad.any(axis=1).sum())


def non_finite_error(name, bad, total):
    """The error for `bad` of `total` samples of `name` holding NaN/Inf."""
    return ValueError(
        f"`{name}` holds non-finite values (NaN or Inf) in {bad} of "
        f"{total} samples. A ReLU teacher would silently map them to 0: "
        f"clean or drop those samples first. Received: {name} with {bad} "
        "non-finite samples"
    )


def check_finite(name, x):
    """Raises `non_finite_error` if a floating array holds NaN or Inf."""
    bad = count_non_finite(x)
    if bad:
        raise non_finite_error(name, bad, len(x))


def split_validation_data(validation_data):
    """The inputs of `validation_data`, in the forms Keras' `fit` accepts
    less sample weights (students learn no labels: weights are refused,
    as `fit_students` refuses `sample_weight`).

    Args:
        validation_data: `x`, `(x, y)`, a list `[x, y]`, or a
            `tf.data.Dataset`.

    Returns:
        The inputs (or the dataset, as it is).

    Raises:
        ValueError: on a tuple or list of another length, e.g. `(x,)`,
            or of three (`(x, y, sample_weight)`).
    """
    if isinstance(validation_data, (tuple, list)):
        # As in Keras' `fit`, a list of two or three is `[x, y[, sw]]`.
        if len(validation_data) in (2, 3) and not carries_weights(
            validation_data
        ):
            return validation_data[0]
        if len(validation_data) == 3:
            raise ValueError(
                "Sample weights weigh labels, and students learn no labels "
                "(they regress the teacher's features): pass "
                "`validation_data` as `x` or `(x, y)`. Received: "
                f"validation_data={_describe(validation_data)}"
            )
        if isinstance(validation_data, tuple):
            raise ValueError(
                "`validation_data` must be inputs, `(x, y)` or a "
                "tf.data.Dataset; a tuple holds two arrays. "
                f"Received: validation_data={_describe(validation_data)}"
            )
    return validation_data


def _describe(value):
    if isinstance(value, (tuple, list)):
        kind = type(value).__name__
        parts = ", ".join(
            f"{type(v).__name__}{tuple(np.shape(v))}" for v in value
        )
        return f"{kind} of {len(value)} ({parts})"
    return repr(value)


def check_sparse_labels(name, y, width):
    """Checks integer class labels against the head's number of classes.

    Labels of shape `(n,)` or `(n, 1)` for a head of `width > 1` outputs
    are class indices (a sparse cross-entropy): each must lie in
    `[0, width)`. Other shapes (one-hot, regression targets) pass.

    Raises:
        ValueError: naming the labels' smallest or largest value and the
            head's width.
    """
    if y is None or width is None or width < 2:
        return
    if not hasattr(y, "__array__") and not isinstance(y, (list, tuple)):
        return
    y = np.asarray(y)
    if y.dtype.kind not in ("i", "u", "f") or y.size == 0:
        return
    if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        return
    low, high = y.min().item(), y.max().item()
    if low < 0 or high >= width:
        raise ValueError(
            f"`{name}` holds class labels outside [0, {width}), the head's "
            f"{width} outputs. Received: {name} with min={low!r}, "
            f"max={high!r}"
        )


def check_fit_kwargs(fit_kwargs):
    """Checks the counts among `fit`'s keyword arguments.

    `epochs` (default 1) and `validation_freq` must be >= 1, `batch_size`,
    `steps_per_epoch`, `validation_steps` and `validation_batch_size`
    None or >= 1, `initial_epoch` >= 0 and below
    `epochs`. Keras' `fit` would train nothing on `epochs=0` or
    `initial_epoch >= epochs` and replace `batch_size=0` by its default;
    here all are errors.

    Args:
        fit_kwargs: dict of keyword arguments for `fit`.

    Raises:
        ValueError: naming the argument and its value.
    """
    if "epochs" in fit_kwargs:
        check_int("epochs", fit_kwargs["epochs"])
    for name in (
        "batch_size",
        "steps_per_epoch",
        "validation_steps",
        "validation_batch_size",
    ):
        if name in fit_kwargs:
            check_int(name, fit_kwargs[name], allow_none=True)
    if "initial_epoch" in fit_kwargs:
        initial = check_int(
            "initial_epoch", fit_kwargs["initial_epoch"], minimum=0
        )
        epochs = fit_kwargs.get("epochs", 1)
        if initial >= epochs:
            raise ValueError(
                "`initial_epoch` must be below `epochs`: `fit` trains "
                "epochs initial_epoch + 1 to epochs, so this trains "
                f"nothing. Received: initial_epoch={initial}, "
                f"epochs={epochs}"
            )
    if "validation_freq" in fit_kwargs:
        check_int("validation_freq", fit_kwargs["validation_freq"])


def _is_dataset(x):
    try:
        import tensorflow as tf
    except ImportError:  # another backend: no tf.data to look into
        return False
    return isinstance(x, tf.data.Dataset)


def is_stream(x):
    """Whether `x` is data Keras' `fit` reads batch by batch, labels and
    all: a `keras.utils.PyDataset` or a Python generator."""
    import inspect

    import keras

    return isinstance(x, keras.utils.PyDataset) or inspect.isgenerator(x)


def _check_inputs(name, x, input_dtype):
    """Dtype and finiteness of array inputs (datasets: dtype only)."""
    if _is_dataset(x):
        spec = x.element_spec
        if isinstance(spec, (tuple, list)):
            spec = spec[0]
        dtype = getattr(spec, "dtype", None)
        if dtype is not None:
            check_dtype(name, dtype.name, input_dtype)
        return
    if not (hasattr(x, "__array__") or isinstance(x, list)):
        return  # a generator or PyDataset: Keras checks it while reading
    try:
        array = np.asarray(x)
    except ValueError:
        return  # ragged: Keras' own error names it
    if array.size == 0:
        return
    check_dtype(name, array.dtype, input_dtype, kind=array_dtype_kind(array))
    check_finite(name, array)


def check_scoring_labels(x, y, output_shape, ignore_class=None, name="y"):
    """Checks labels against a model's output (`report.measure`, and the
    head-aware label term of `fit_students`).

    Args:
        x: the inputs (an array), or None.
        y: the labels, or None: for a model output `(n, ..., width)`,
            class indices `(n, ...)` or `(n, ..., 1)`, or one-hot
            `(n, ..., width)`, one per sample of `x`.
        output_shape: the model output's shape without the batch axis.
        ignore_class: int or None, a label value that marks no class
            (a segmentation's void, the teacher's loss `ignore_class`).
        name: the labels' argument name, for messages.

    Raises:
        ValueError: on `y` without `x`, a label count other than the
            samples', another shape, or class labels outside
            `[0, width)`, naming `y` and what it holds.

    Example:

    >>> check_scoring_labels(np.zeros((4, 2)), [0, 1, 1, 0], (3,))
    >>> try:
    ...     check_scoring_labels(np.zeros((4, 2)), [0, 1], (3,))
    ... except ValueError as e:
    ...     print(str(e).split(". ")[-1])
    Received: y with shape (2,)
    """
    if y is None:
        return
    if x is None:
        raise ValueError(
            "`y` labels the inputs `x`, which are missing: pass both to "
            "score accuracy. Received: x=None"
        )
    y = np.asarray(y)
    *inner, width = (len(x), *tuple(output_shape))
    shapes = [tuple(inner), (*inner, 1)]
    if width > 1:
        shapes.append((*inner, width))
    if y.shape not in shapes:
        raise ValueError(
            f"`{name}` must hold one label per sample of `x` ({len(x)}): "
            "class "
            f"indices {shapes[0]} or {shapes[1]}"
            + (f", or one-hot {shapes[2]}" if len(shapes) > 2 else "")
            + f". Received: {name} with shape {y.shape}"
        )
    indices = y.shape != shapes[-1] or width == 1
    if indices and ignore_class is not None:
        y = y[y != ignore_class]
    if indices and y.size:
        low, high = y.min().item(), y.max().item()
        if low < 0 or high >= max(width, 2):
            raise ValueError(
                f"`{name}` holds class labels outside [0, {max(width, 2)}), "
                f"the model's {width} output(s). Received: {name} with "
                f"min={low!r}, max={high!r}"
            )


def check_label_term(x, y, output_shape, ignore_class=None, name="y"):
    """Checks the labels of a head-aware label term (`fit_students`).

    Args:
        x: inputs: an array, `(x, y[, sample_weight])`, or a dataset
            (whose labels are checked by the loss as they are read).
        y: labels for array inputs, or None when `x` carries them.
        output_shape: the head's output shape without the batch axis.
        ignore_class: int or None, a label value left out (void).
        name: the labels' argument name, for messages.

    Raises:
        ValueError: on labels that hold NaN or Inf, do not match the
            samples or the head's outputs, naming `name`.
    """
    if _is_dataset(x):
        return
    if y is None:
        x, y = x[0], x[1]
    elif isinstance(x, tuple) and len(x) in (2, 3):
        x = x[0]  # `x=(x, y)` and `y` both given
    y = np.asarray(y)
    bad = count_non_finite(y)  # one-hot or soft labels
    if bad:
        raise ValueError(
            f"`{name}` holds non-finite values (NaN or Inf) in {bad} of "
            f"{len(y)} samples: the label term would be NaN. "
            f"Received: {name} with {bad} non-finite samples"
        )
    check_scoring_labels(np.asarray(x), y, output_shape, ignore_class, name)


def check_labelled_data(x, y, input_dtype, width, x_name="x", y_name="y"):
    """Checks labelled training data before `fit` traces anything.

    Args:
        x: inputs: an array, a tensor, or a `tf.data.Dataset` yielding
            `(x, y[, sample_weight])`.
        y: labels (None when `x` is a dataset).
        input_dtype: the model input's dtype.
        width: the model output's last-axis width, for class labels.
        x_name: the inputs' argument name.
        y_name: the labels' argument name.

    Raises:
        ValueError: on missing labels, non-finite inputs, or class labels
            outside `[0, width)`.
        TypeError: on strings for a numeric model, or the reverse.
    """
    if x is None:
        raise ValueError(
            f"`{x_name}` is required: the inputs to train on. "
            f"Received: {x_name}=None"
        )
    if is_stream(x):
        return  # Keras reads the labels from it, and checks them
    if _is_dataset(x):
        spec = x.element_spec
        if not isinstance(spec, (tuple, list)) or len(spec) < 2:
            raise ValueError(
                f"`{y_name}` is missing: training needs labels, and "
                f"`{x_name}` yields inputs only. Make it yield `(x, y)`. "
                f"Received: {y_name}=None, {x_name}.element_spec={spec}"
            )
        _check_inputs(x_name, x, input_dtype)
        return
    if y is None:
        raise ValueError(
            f"`{y_name}` is required: training needs labels for "
            f"`{x_name}`. Received: {y_name}=None"
        )
    _check_inputs(x_name, x, input_dtype)
    check_sparse_labels(y_name, y, width)


def check_validation_data(validation_data, input_dtype, width):
    """Checks `validation_data` of a labelled `fit` (see `fit_teacher`)."""
    if (
        validation_data is None
        or _is_dataset(validation_data)
        or is_stream(validation_data)
    ):
        return
    if not isinstance(validation_data, (tuple, list)) or len(
        validation_data
    ) not in (2, 3):
        raise ValueError(
            "`validation_data` must be `(x, y)`, `(x, y, sample_weight)`, "
            "a tf.data.Dataset yielding `(x, y)`, a keras.utils.PyDataset "
            "or a generator. "
            f"Received: validation_data={_describe(validation_data)}"
        )
    _check_inputs("validation_data", validation_data[0], input_dtype)
    check_sparse_labels("validation_data", validation_data[1], width)


def check_labelled_fit(model, x, y, head, fit_kwargs):
    """Checks labelled data and `fit` arguments before training.

    Args:
        model: the model whose input `x` feeds (its dtype is checked).
        x: inputs, as for `check_labelled_data`.
        y: labels, as for `check_labelled_data`.
        head: the model or layer the outputs come from; with `outputs`,
            class labels are checked against its width.
        fit_kwargs: dict of `fit`'s other arguments (`validation_data`,
            counts).

    Raises:
        ValueError, TypeError: as `check_labelled_data`,
            `check_validation_data` and `check_fit_kwargs`.
    """
    input_dtype = model.inputs[0].dtype
    outputs = getattr(head, "outputs", None)
    width = outputs[0].shape[-1] if outputs else None
    check_labelled_data(x, y, input_dtype, width)
    check_validation_data(fit_kwargs.get("validation_data"), input_dtype, width)
    check_fit_kwargs(fit_kwargs)


def check_unweighted(fit_kwargs, who, x=None):
    """Refuses sample weights for a trainer that would ignore them
    (`keras.distillation.Distiller` drops them): `sample_weight`,
    `class_weight`, or a third element in `x` or `validation_data` (a
    tuple's not None, or a dataset's).

    Args:
        fit_kwargs: dict of `fit`'s other arguments.
        who: the trainer, for the message.
        x: the training data, or None.

    Raises:
        ValueError: if weights are given.
    """
    for name, data in (
        ("x", x),
        ("validation_data", fit_kwargs.get("validation_data")),
    ):
        if carries_weights(data):
            raise ValueError(
                f"{who} ignores sample weights, so those in `{name}` would "
                f"change nothing: pass `{name}` as `(x, y)`. Received: "
                f"{name} with a third element (sample weights)"
            )
    for name in ("sample_weight", "class_weight"):
        if fit_kwargs.get(name) is not None:
            raise ValueError(
                f"{who} ignores sample weights, so `{name}` would change "
                "nothing: leave it out. Received: "
                f"{name}={_describe_weights(fit_kwargs[name])}"
            )


def _describe_weights(value):
    if hasattr(value, "shape"):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return repr(value)


def carries_weights(data):
    """Whether `fit`-style data holds sample weights: a tuple or list of
    three whose third is not None, or a dataset of three-element
    tuples."""
    if isinstance(data, (tuple, list)) and len(data) == 3:
        return data[2] is not None
    spec = data.element_spec if _is_dataset(data) else None
    return isinstance(spec, tuple) and len(spec) > 2


def has_labels(x, y):
    """Whether labels come with `fit`-style data `x` (and `y`)."""
    if y is not None:
        return True
    if isinstance(x, tuple) and len(x) in (2, 3):
        return True
    spec = x.element_spec if _is_dataset(x) else None
    return isinstance(spec, tuple) and len(spec) >= 2


def check_export_args(path, format, quantize, formats, quantizations):
    """Checks `export.export`'s format, quantization and path."""
    import os

    if format not in formats:
        raise ValueError(
            f"`format` must be one of {formats}. Received: format={format!r}"
        )
    if quantize not in quantizations:
        raise ValueError(
            f"`quantize` must be one of {quantizations}. "
            f"Received: quantize={quantize!r}"
        )
    if quantize is not None and format != "litert":
        raise ValueError(
            "Quantization needs format='litert': a SavedModel keeps the "
            f"float weights. Received: format={format!r}, "
            f"quantize={quantize!r}"
        )
    if format == "litert" and not os.fspath(path).endswith(".tflite"):
        raise ValueError(
            "A LiteRT artifact is one file whose name ends with '.tflite'. "
            f"Received: path={os.fspath(path)!r}"
        )


def check_batch_sizes(batch_sizes):
    """Checks a sequence of positive batch sizes; returns it as a tuple."""
    return check_positive_ints("batch_sizes", batch_sizes)
