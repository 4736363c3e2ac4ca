"""CPU latency of a model: the median of repeated calls after warm-up."""

import statistics
import time

import numpy as np

from teacherclass import validation

# The length a variable-length input (`keras.Input((None,))`) is timed
# at: a sentence of tokens, or a short sequence.
SEQUENCE_LENGTH = 128


def input_specs(model, sequence_length=None):
    """`[(shape without batch, dtype), ...]` of a model's inputs.

    Args:
        model: a built model with known inputs.
        sequence_length: None, or an int that replaces each unknown
            (None) dimension, so that a batch of that shape can be made.
    """
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            "The model must be built with known inputs (a functional or "
            f"Sequential model). Received: model={model!r}"
        )
    specs = [(tuple(t.shape[1:]), t.dtype) for t in inputs]
    if sequence_length is None:
        return specs
    return [
        (tuple(sequence_length if d is None else d for d in shape), dtype)
        for shape, dtype in specs
    ]


def _check_known(specs):
    unknown = [shape for shape, _ in specs if None in shape]
    if unknown:
        raise ValueError(
            "A sample batch needs every input dimension known: give a "
            "variable-length input a length (`sequence_length`). "
            f"Received: input shapes {[s for s, _ in specs]}"
        )


def to_numpy(outputs):
    """`outputs` (a tensor, or a structure of tensors of any shapes) as
    NumPy: the call's asynchronous work finishes."""
    import keras

    return keras.tree.map_structure(np.asarray, outputs)


def _is_string(dtype):
    # Keras names a string input's dtype "string", which NumPy does not
    # know; TensorFlow takes NumPy object arrays of str for it.
    return str(dtype) in ("string", "str", "object")


def zero_inputs(specs, batch_size):
    """A zero batch for `input_specs`; one array for a single input.

    A string input gets empty strings.
    """
    _check_known(specs)
    arrays = [
        np.full((batch_size, *shape), "", dtype=object)
        if _is_string(dt)
        else np.zeros((batch_size, *shape), dtype=dt)
        for shape, dt in specs
    ]
    return arrays[0] if len(arrays) == 1 else arrays


def pack_inputs(model, arrays):
    """`arrays` (from `zero_inputs` or `sample_inputs` of the model's
    `input_specs`) in the structure the model is called on.

    `input_specs` lists the inputs flat, as `model.inputs` does; a model
    built on a dict (or a nest) of inputs takes them back in that
    structure (a dict's entries match by sorted key, as Keras flattens
    them). A single input stays one array.

    Example:

    >>> import keras
    >>> a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    >>> joined = keras.layers.Concatenate()([a, b])
    >>> model = keras.Model({"b": b, "a": a}, joined)
    >>> batch = pack_inputs(model, zero_inputs(input_specs(model), 1))
    >>> {name: x.shape for name, x in sorted(batch.items())}
    {'a': (1, 2), 'b': (1, 3)}
    """
    import keras

    try:
        structure = model.input
    except (AttributeError, ValueError):
        return arrays  # a Sequential model not called yet: one input
    if not keras.tree.is_nested(structure):
        return arrays
    flat = arrays if isinstance(arrays, list) else [arrays]
    return keras.tree.pack_sequence_as(structure, flat)


# Words common to English vocabularies, for a text model's sample input.
_WORDS = ("the", "movie", "was", "good", "and", "not", "a", "bad", "film")


def sample_inputs(specs, batch_size, seed=0):
    """A batch to time a model on: uniform floats, token id 1 for ints,
    and short sentences of common words for strings.

    Example:

    >>> sample_inputs([((), "string")], 2).dtype
    dtype('O')
    """
    _check_known(specs)
    rng = np.random.default_rng(seed)
    arrays = []
    for shape, dtype in specs:
        if _is_string(dtype):
            words = rng.choice(_WORDS, (batch_size, *shape, 6))
            arrays.append(
                np.array(
                    [" ".join(w) for w in words.reshape(-1, 6)], dtype=object
                ).reshape((batch_size, *shape))
            )
        elif np.dtype(dtype).kind in "iu":
            # Token ids: 1 is in every vocabulary and is not padding.
            arrays.append(np.ones((batch_size, *shape), dtype=dtype))
        else:
            arrays.append(rng.random((batch_size, *shape)).astype(dtype))
    return arrays[0] if len(arrays) == 1 else arrays


def time_call(fn, x, repeats=20, warmup=3):
    """Median wall time of `fn(x)` in milliseconds, after `warmup` calls.

    Args:
        fn: a callable; its result (a tensor or a structure of them,
            e.g. a model's several outputs) is converted to NumPy, so
            asynchronous work is finished inside the timing.
        x: its argument.
        repeats: int, timed calls.
        warmup: int, untimed calls first (tracing, allocation).

    Returns:
        A float, milliseconds.

    Raises:
        ValueError: if `repeats` is not an integer >= 1 or `warmup` not
            one >= 0.

    Example:

    >>> time_call(np.sum, np.ones(10), repeats=3) >= 0
    True
    """
    repeats = validation.check_int("repeats", repeats)
    warmup = validation.check_int("warmup", warmup, minimum=0)
    for _ in range(warmup):
        to_numpy(fn(x))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        to_numpy(fn(x))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def model_latency(
    model,
    batch_sizes=(1, 64),
    repeats=20,
    warmup=3,
    sequence_length=SEQUENCE_LENGTH,
):
    """CPU latency of a Keras model's compiled inference call per batch.

    The model's call runs in a `tf.function` (as `predict` does, without
    its per-call overhead) on random inputs of each batch size, in the
    structure of its inputs (a dict for a dict-input model). A model with
    several outputs is timed until all are computed.

    Args:
        model: a built functional or Sequential `keras.Model`.
        batch_sizes: positive ints, the batch sizes to time (one int:
            that one).
        repeats: int, timed calls per batch size (the median is kept).
        warmup: int, untimed calls first.
        sequence_length: int, the length a variable-length input
            (an unknown dimension, `keras.Input((None,))`) is timed at.

    Returns:
        A dict `{str(batch_size): milliseconds}`.

    Raises:
        ValueError: if `batch_sizes` holds a non-positive or non-integer
            size, `repeats` is below 1, `warmup` below 0, or the model
            has no known inputs.

    Example:

    >>> import keras
    >>> tokens = keras.Input((None,), dtype="int32")
    >>> pooled = keras.layers.GlobalAveragePooling1D()(
    ...     keras.layers.Embedding(10, 4)(tokens))
    >>> heads = [keras.layers.Dense(2)(pooled), keras.layers.Dense(3)(pooled)]
    >>> model = keras.Model(tokens, heads)
    >>> sorted(model_latency(model, batch_sizes=(1,), repeats=2))
    ['1']
    """
    import tensorflow as tf

    batch_sizes = validation.check_batch_sizes(batch_sizes)
    repeats = validation.check_int("repeats", repeats)
    warmup = validation.check_int("warmup", warmup, minimum=0)
    specs = input_specs(model, sequence_length)
    call = tf.function(lambda x: model(x, training=False))
    with tf.device("/CPU:0"):
        return {
            str(b): time_call(
                call,
                pack_inputs(model, sample_inputs(specs, b)),
                repeats,
                warmup,
            )
            for b in batch_sizes
        }
