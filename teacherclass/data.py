"""Input adaptation: whatever `Model.fit` accepts, as a batched `tf.data`.

Students never see labels, so this module's job is to turn NumPy arrays,
tensors, `(x, y)` tuples and batched or unbatched
`tf.data.Dataset`s into one batched dataset of inputs, checked against the
teacher's input shape.
"""

import numpy as np
import tensorflow as tf

from teacherclass import teacher as teacher_lib
from teacherclass import validation


def _shape_str(shape):
    return str(tuple(None if d is None else int(d) for d in shape))


def _compatible(sample_shape, expected):
    if len(sample_shape) != len(expected):
        return False
    return all(
        e is None or s is None or int(s) == int(e)
        for s, e in zip(sample_shape, expected)
    )


def _batched(shape, expected):
    """Whether a dataset element of `shape` is a batch of samples of
    shape `expected` (one more dimension: a sample of a string teacher,
    shape `()`, is not a batch)."""
    return len(shape) == len(expected) + 1 and _compatible(shape[1:], expected)


def _lacks_unit_axis(sample_shape, expected):
    """Whether samples of `sample_shape` are the teacher's `expected` ones
    less their trailing axis of 1, which Keras' Functional model adds
    (`(H, W)` for `Input((H, W, 1))`, `()` for `Input((1,))`)."""
    return (
        len(expected) >= 1
        and expected[-1] == 1
        and _compatible(sample_shape, expected[:-1])
    )


def element_layout(shape, expected):
    """How a dataset element of `shape` reads as the teacher's samples of
    shape `expected`.

    Returns:
        `(batched, add_axis)`: whether the element is a batch, and whether
        it lacks the teacher's trailing axis of 1 (added as Keras'
        Functional model adds it); None if it fits neither way.
    """
    shape, expected = tuple(shape), tuple(expected)
    if _batched(shape, expected):
        return True, False
    # An unknown leading dimension where the teacher has a known one is a
    # batch's, when a batch fits: `(None,)` for `Input((1,))` is a batch
    # of scalars (as Keras' `fit` reads it), not one sample.
    # Only a fully known rest says so: a generator's loose spec, e.g.
    # `(None, None)` for `Input((8, 1))`, is one sample.
    sample = _compatible(shape, expected) and not (
        shape
        and shape[0] is None
        and expected[0] is not None
        and None not in shape[1:]
    )
    if len(shape) == len(expected) and not sample:
        if _lacks_unit_axis(shape[1:], expected):
            return True, True
    if _compatible(shape, expected):
        return False, False
    if _lacks_unit_axis(shape, expected):
        return False, True
    return None


def _weights_refused(name, received):
    return ValueError(
        "Sample weights weigh labels, and students learn no labels (they "
        f"regress the teacher's features): pass `{name}` as `x` or "
        f"`(x, y)`. Received: {received}"
    )


def _first(element):
    """The inputs of an `(x, y)` element."""
    if isinstance(element, (tuple, list)):
        return element[0]
    return element


def batched_inputs(x, input_spec, batch_size, name="x"):
    """A batched `tf.data.Dataset` of inputs only.

    Args:
        x: NumPy array, tensor, list, an `(x, y)` tuple of those, or a
            `tf.data.Dataset` (batched or not) yielding `x` or `(x, y)`.
            Sample weights (a third element) are refused: they weigh
            labels, which students do not learn.
        input_spec: the teacher's input `KerasTensor` (shape and dtype).
            Inputs lacking its trailing axis of 1 (`(N,)` for
            `Input((1,))`, `(N, H, W)` for `Input((H, W, 1))`) get it, as
            Keras' Functional model adds it.
        batch_size: int, used unless `x` is an already batched dataset
            (an element with the teacher's rank whose leading dimension
            is unknown where the teacher's is known, such as `(None,)`
            for `Input((1,))`, is a batch lacking that axis).
        name: the argument's name, for error messages.

    Returns:
        A `tf.data.Dataset` yielding input batches.

    Raises:
        ValueError: if the samples' shape does not match the teacher's
            input, `x` holds no sample or sample weights, or an array
            holds NaN or Inf (a dataset's samples are checked when they
            are read).
        TypeError: if `x` holds strings for a numeric teacher, or numbers
            for a teacher that takes strings.
    """
    expected = tuple(input_spec.shape[1:])
    validation.check_int("batch_size", batch_size)
    if isinstance(x, tf.data.Dataset):
        spec = _first(x.element_spec)
        if not isinstance(spec, tf.TensorSpec):
            raise TypeError(
                f"`{name}` must yield one input tensor (or `(x, y)` "
                f"with one input). Received: {name}.element_spec="
                f"{x.element_spec}"
            )
        validation.check_dtype(name, spec.dtype.name, input_spec.dtype)
        if validation.carries_weights(x):
            raise _weights_refused(
                name, f"{name}.element_spec={x.element_spec}"
            )
        if isinstance(x.element_spec, (tuple, list)):
            x = x.map(lambda *e: e[0])
        shape = tuple(spec.shape)
        layout = element_layout(shape, expected)
        if layout is None:
            raise ValueError(
                f"`{name}` yields samples of shape {_shape_str(shape)} but "
                f"the teacher expects {_shape_str(expected)} per sample "
                f"(batched or not). Received: {name}.element_spec={spec}"
            )
        batched, add_axis = layout
        ds = x if batched else x.batch(batch_size)
        if add_axis:
            ds = ds.map(lambda inputs: inputs[..., None])
        if ds.cardinality() == 0:
            raise ValueError(
                f"`{name}` is empty. Received: {name}={x} with no element"
            )
        if ds.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                f"`{name}` repeats forever: the teacher's targets are "
                "computed once per sample and cached, so it must end. Pass "
                "it without `.repeat()` (each epoch is one pass over it; "
                "`steps_per_epoch` may shorten epochs). "
                f"Received: {name}={x} with infinite cardinality"
            )
        return ds

    if isinstance(x, tuple) and validation.carries_weights(x):
        raise _weights_refused(name, f"{name} as a tuple of 3")
    if isinstance(x, tuple) and len(x) in (2, 3):
        x = x[0]
    if isinstance(x, (list, tuple)) or hasattr(x, "__array__"):
        try:
            x = np.asarray(x)
        except ValueError as e:
            raise ValueError(
                f"`{name}` must be one array of samples: {e}. "
                f"Received: {name} of type {type(x).__name__}"
            ) from e
    else:
        raise TypeError(
            f"`{name}` must be an array, a tensor or a tf.data.Dataset. "
            f"Received: {name} of type {type(x).__name__}"
        )
    if x.ndim and _lacks_unit_axis(x.shape[1:], expected):
        x = x[..., None]  # as Keras' Functional model adds the axis
    if x.ndim == 0 or not _compatible(x.shape[1:], expected):
        raise ValueError(
            f"`{name}` has samples of shape {_shape_str(x.shape[1:])} but "
            f"the teacher expects {_shape_str(expected)}. "
            f"Received: {name}.shape={_shape_str(x.shape)}"
        )
    if len(x) == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={x.shape}")
    validation.check_dtype(
        name, x.dtype, input_spec.dtype, kind=validation.array_dtype_kind(x)
    )
    validation.check_finite(name, x)
    if x.dtype == np.float64:
        x = x.astype(np.float32)  # halves the cached copy; teachers are f32
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size)


def dataset_batch_size(x, input_spec):
    """The batch size of `x` if it is a batched dataset, else None.

    The static batch dimension when the dataset has one, else the size of
    its first batch, read once, when its length is known (a finite
    pipeline, read again from its start; not a one-shot generator, which
    gives None).
    """
    if not isinstance(x, tf.data.Dataset):
        return None
    spec = _first(x.element_spec)
    if not isinstance(spec, tf.TensorSpec):
        return None
    layout = element_layout(spec.shape, input_spec.shape[1:])
    if layout is None or not layout[0]:
        return None  # unbatched (or not fitting; `batched_inputs` says so)
    if spec.shape[0] is not None:
        return int(spec.shape[0])
    if x.cardinality() < 0:  # unknown or infinite: maybe read only once
        return None
    for element in x.take(1):
        return int(_first(element).shape[0])
    return None


def augmented_labelled(
    x,
    y,
    augment,
    batch_size,
    shuffle=True,
    seed=None,
    sample_weight=None,
    input_spec=None,
):
    """Labelled training batches whose inputs are augmented anew each epoch.

    For `fit_teacher(augment=...)`: `augment(x_batch, training=True)` runs
    in the `tf.data` pipeline on every training batch; the labels pass
    through unchanged.

    Args:
        x: inputs (array or tensor), or a `tf.data.Dataset` yielding
            batched `(x, y[, sample_weight])` (used as it is, then
            augmented).
        y: labels for array inputs; None with a dataset.
        augment: callable `(x, training=True) -> x`, e.g. a Keras
            preprocessing layer.
        batch_size: int, samples per batch for arrays.
        shuffle: bool, a new order every epoch for arrays.
        seed: int or None, for the shuffle.
        sample_weight: None, or per-sample weights for array inputs,
            served with their samples (a dataset carries its own).
        input_spec: optional, the teacher's input `KerasTensor` (as
            `fit_teacher` passes it): the inputs are checked against its
            rank, and get the trailing axis of 1 it has and they lack, as
            Keras' Functional model adds it (`(N, H, W)` for
            `Input((H, W, 1))`), before `augment` reads them; a dict
            holding only the input (by its name) is read as the input.
            Without it the inputs are augmented as given.

    Returns:
        A batched, prefetched `tf.data.Dataset`.

    Raises:
        ValueError: on inputs of another rank than the teacher's, or a
            dict or a dataset's element of other inputs than the
            teacher's one.
    """
    if isinstance(x, tf.data.Dataset):
        if sample_weight is not None:
            raise ValueError(
                "`sample_weight` goes inside the dataset `x`, as "
                "`(x, y, sample_weight)`, as for `fit`. Received: "
                f"sample_weight of type {type(sample_weight).__name__}"
            )
        ds = x
        spec = _first(x.element_spec)
        if isinstance(spec, dict):
            name = _input_name(spec, input_spec, "x.element_spec")
            ds = ds.map(lambda inputs, *rest: (inputs[name], *rest))
            spec = spec[name]
        if not isinstance(spec, tf.TensorSpec):
            raise ValueError(
                "`augment` reads one batch of inputs: `x` must yield "
                "`(inputs, y[, sample_weight])` with one input tensor. "
                f"Received: x.element_spec={x.element_spec}"
            )
        received = f"x.element_spec={x.element_spec}"
        unit_axis = _adds_unit_axis(spec.shape, input_spec, received)
    else:
        if isinstance(x, dict):
            x = x[_input_name(x, input_spec, "x")]
        x = np.asarray(x)
        if x.dtype == np.float64:
            x = x.astype(np.float32)
        received = f"x.shape={_shape_str(x.shape)}"
        unit_axis = _adds_unit_axis(x.shape, input_spec, received)
        columns = (x, np.asarray(y))
        if sample_weight is not None:
            columns += (np.asarray(sample_weight),)
        ds = tf.data.Dataset.from_tensor_slices(columns)
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)

    def run(inputs, *rest):
        # The teacher's axis of 1 only for `augment` (images read as
        # images): the batches keep the rank the user gave, so the
        # teacher is traced alike with and without `augment`.
        if unit_axis:
            out = augment(inputs[..., None], training=True)[..., 0]
        else:
            out = augment(inputs, training=True)
        if out.dtype.is_floating and inputs.dtype.is_floating:
            out = tf.cast(out, inputs.dtype)
        return (out, *rest)

    return ds.map(run, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


def _input_name(structure, input_spec, name):
    """The key of a dict of inputs that holds the teacher's one input
    (its `Input` layer's name, as `fit` reads dicts)."""
    if input_spec is None:
        raise ValueError(
            "`augment` reads one batch of inputs: pass the tensor, or "
            "`input_spec=` (the teacher's input) to read it from a dict. "
            f"Received: {name} with keys {sorted(structure)}"
        )
    key = teacher_lib.input_name(input_spec)
    if list(structure) != [key]:
        raise ValueError(
            "`augment` reads one batch of inputs: a dict of inputs must "
            f"hold only the teacher's input, {key!r}. Received: {name} "
            f"with keys {sorted(structure)}"
        )
    return key


def _adds_unit_axis(shape, input_spec, received):
    """Whether batches of `shape` need the teacher's trailing axis of 1
    (`(B, H, W)` for `Input((H, W, 1))`), as Keras' Functional model adds
    it; raises a ValueError on another rank. False without a spec."""
    if input_spec is None:
        return False
    expected = tuple(input_spec.shape)
    if len(shape) == len(expected):
        return False
    if len(shape) == len(expected) - 1 and expected[-1] == 1:
        return True
    if len(shape) == len(expected) + 1 and shape[-1] == 1:
        return False  # Keras' Functional model squeezes it: as given
    raise ValueError(
        f"`x` has inputs of shape {_shape_str(shape)} and the teacher takes "
        f"{_shape_str(expected)}: `augment` reads batches of the teacher's "
        f"rank ({len(expected)}, or {len(expected) - 1} when its last axis "
        f"is 1). Received: {received}"
    )
