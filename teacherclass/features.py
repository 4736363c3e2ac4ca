"""The teacher's representation, computed once per sample and cached.

`extract` runs the teacher's trunk over the inputs inside a `tf.data`
pipeline and caches `(x, features)` pairs, in memory or on disk. One pass
fills the cache (and checks that every feature is finite); every epoch after
that reads the cache and never runs the teacher again.

A disk cache (`cache="path"` or `cache=DiskCache(...)`) is for data larger
than memory: it is written once with `tf.data.Dataset.save` in shards, read
back as a stream, and shuffled by reading the shards in a random order
through a bounded shuffle buffer, so memory stays flat as the data grows.

With random augmentation (`fit_students(augment=...)`) every epoch sees new
inputs, so there is nothing to cache: `augmented` serves augmented input
batches and the train step runs the trunk on each.
"""

import hashlib
import json
import os
import shutil

import numpy as np
import tensorflow as tf

from teacherclass import chunking
from teacherclass import data
from teacherclass import validation

_META = "teacherclass-cache.json"
# 3: targets may be a dict with the teacher's logits and the labels.
# 4: the fingerprint leaves the head out; the logits' head has its own
#    (`logits_fingerprint`), so a call without logits reads a cache with
#    them. Format 3 caches are still read, as they were written.
# 5: the inputs are hashed sample by sample, each with its shape
#    (`_sample_fingerprint`), so the same samples at another batch size
#    read the same cache; with `fingerprint_batches`, the number of
#    samples hashed is kept. Formats 3 and 4 are still read, hashed batch
#    by batch as they were written.
_FORMAT = 5
_READABLE = (3, 4, 5)
_SCAN_BATCH = 4096
# Input batches per shard block when the number of batches is unknown.
_BLOCK = 16
_DEFAULT_SHARDS = 8
# A disk cache's default shuffle buffer holds about this many bytes ...
_SHUFFLE_BYTES = 64 * 2**20
# ... but never fewer samples than this.
_MIN_SHUFFLE = 1024


class DiskCache:
    """A disk cache of the teacher's representation, with its options.

    `fit_students(cache="path")` is `fit_students(cache=DiskCache("path"))`.
    The first run writes `(x, features)` pairs to `path` in `shards` files
    with `tf.data.Dataset.save` and a `teacherclass-cache.json` holding a
    fingerprint of the teacher's trunk and of the inputs; a later run with
    the same teacher and data reads them back without running the teacher,
    and a changed teacher or dataset is refused. The inputs are hashed in
    the order they are read: a dataset that shuffles itself
    (`.shuffle(...)`) reads as another dataset on the next run and is
    refused; give the cache the data unshuffled (training shuffles the
    cached samples anyway). Training streams the
    shards in a new random order every epoch through a shuffle buffer of
    `shuffle_buffer` samples, so memory grows with the data only until
    that buffer is full (`benchmarks/cache_memory.py`, 28x28 images and
    32 features, a buffer of about 73,000 samples, 2026-12-05: the fit's
    anonymous memory grew 120 and 236 MiB at 20,000 and 200,000 samples
    in one run, 206 and 251 MiB at 200,000 and 600,000 in another; an
    in-memory cache's 99 and 334 MiB at 20,000 and 200,000).

    Args:
        path: the cache directory: new, empty, or written by teacherclass.
        shards: int, files the cache is written to. Shards are contiguous
            runs of the input (when its length is known), read
            interleaved in a random order: more shards mix a sorted input
            better and let more readers work in parallel.
        shuffle_buffer: int, samples held to shuffle a training epoch.
            Defaults to about 64 MiB of samples (at least 1024, at most
            all of them).
        fingerprint_batches: int or None. None hashes every input sample
            to tell datasets apart (one extra read of the inputs per run,
            without the teacher); an int hashes only the samples of the
            first that many batches and checks the number of samples
            (from the number of batches when it is known), for inputs too
            slow to read twice (e.g. JPEG decoding), at the risk of not
            noticing a change past them. Either way each sample is
            hashed with its shape (ragged rows and strings by their
            values), so the same samples batched otherwise read the same
            cache; batches that pad their samples to their longest
            (`padded_batch`) change them with the batch size, and read
            only at the batch size they were written with. It applies
            to a new cache: an existing one is checked with the setting
            it was written with (kept in its `teacherclass-cache.json`,
            with the number of samples it hashed), whatever is passed
            here.

    Raises:
        ValueError: if an option is not a positive integer, or `path` is
            empty.

    Example:

    >>> import tempfile
    >>> import keras
    >>> trunk = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    >>> x = np.random.rand(100, 4).astype("float32")
    >>> batches = tf.data.Dataset.from_tensor_slices(x).batch(10)
    >>> cache = DiskCache(tempfile.mkdtemp(), shards=4, shuffle_buffer=32)
    >>> feats = extract(trunk, batches, (3, 3), cache=cache)
    >>> feats.num_samples, feats.shuffle_buffer
    (100, 32)
    """

    def __init__(
        self,
        path,
        shards=_DEFAULT_SHARDS,
        shuffle_buffer=None,
        fingerprint_batches=None,
    ):
        validation.check_int("shards", shards)
        validation.check_int("shuffle_buffer", shuffle_buffer, allow_none=True)
        validation.check_int(
            "fingerprint_batches", fingerprint_batches, allow_none=True
        )
        self.path = os.fspath(path)
        if not self.path:
            # "" would write the cache into the working directory.
            raise ValueError(
                "`path` must name the cache directory. "
                f"Received: path={self.path!r}"
            )
        self.shards = int(shards)
        self.shuffle_buffer = shuffle_buffer
        self.fingerprint_batches = fingerprint_batches

    def __repr__(self):
        return (
            f"DiskCache({self.path!r}, shards={self.shards}, "
            f"shuffle_buffer={self.shuffle_buffer}, "
            f"fingerprint_batches={self.fingerprint_batches})"
        )


class Features:
    """A cached dataset of `(x, features)` pairs.

    With the teacher's logits or labels cached too (the head-aware
    objective, `extract(head=...)`), the targets are a dict
    `{"features": ..., "logits": ..., "labels": ...}` instead of the
    features alone.

    Attributes:
        pairs: unbatched `tf.data.Dataset` of `(x, features)`, features in
            float32, served from the cache in a fixed order.
        num_samples: int, the number of samples.
        shuffle_buffer: int, the samples `batches(shuffle=True)` holds to
            shuffle: all of them for a memory cache, a bounded number for a
            disk cache.
    """

    def __init__(self, pairs, num_samples, shuffle_buffer=None, sources=None):
        self.pairs = pairs
        self.num_samples = num_samples
        self.shuffle_buffer = min(shuffle_buffer or num_samples, num_samples)
        # Called with a seed: the pairs read in a random order of sources
        # (a disk cache's shards), before the shuffle buffer.
        self._sources = sources

    def batches(self, batch_size, shuffle=False, seed=None):
        """Batches for training or evaluation, reshuffled every epoch.

        Args:
            batch_size: int, samples per batch.
            shuffle: bool, a new order every epoch (every iterator).
            seed: int or None, for a reproducible sequence of orders.

        Returns:
            A batched, prefetched `tf.data.Dataset` of `(x, features)`.
        """
        ds = self.pairs
        if shuffle:
            if self._sources is not None:
                ds = self._sources(seed)
            ds = ds.shuffle(
                self.shuffle_buffer, seed=seed, reshuffle_each_iteration=True
            )
        # The cardinality lets Keras size epochs and progress bars.
        ds = ds.apply(tf.data.experimental.assert_cardinality(self.num_samples))
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _teacher_batches(trunk, batches, head=None):
    """`(x, features)`, or `(x, {"features", "logits", "labels"})`.

    The logits come from `head` applied to the features: one teacher pass.
    Batches of `(x, labels)` keep their labels in the dict.
    """

    def run(x, labels=None):
        features = tf.cast(trunk(x, training=False), "float32")
        if head is None and labels is None:
            return x, features
        targets = {"features": features}
        if head is not None:
            targets["logits"] = tf.cast(head(features), "float32")
        if labels is not None:
            targets["labels"] = labels
        return x, targets

    return batches.map(run)


def _teacher_pairs(trunk, batches, head=None):
    return _teacher_batches(trunk, batches, head).unbatch()


def _features_of(targets):
    return targets["features"] if isinstance(targets, dict) else targets


def _inputs_of(element):
    return element[0] if isinstance(element, tuple) else element


def _non_finite_inputs(x):
    """Samples of a batch whose (floating) inputs hold NaN or Inf."""
    if not x.dtype.is_floating:
        return 0
    finite = tf.math.is_finite(tf.reshape(x, (tf.shape(x)[0], -1)))
    return int(tf.reduce_sum(tf.cast(~tf.reduce_all(finite, 1), "int32")))


def _scan(pairs, chunks, name="x"):
    """Counts samples and non-finite inputs and features, in one pass.

    The inputs are checked first: a ReLU trunk maps NaN to 0, so bad
    inputs can give finite features.
    """
    bounds = chunking.bounds(chunks)
    num_samples = 0
    bad = np.zeros(len(chunks), dtype=np.int64)
    bad_samples = 0
    bad_inputs = 0
    for x, f in pairs.batch(_SCAN_BATCH):
        f = _features_of(f)
        bad_inputs += _non_finite_inputs(x)
        finite = tf.math.is_finite(f).numpy()
        num_samples += finite.shape[0]
        if finite.all():
            continue
        flat = (~finite).reshape(-1, finite.shape[-1])
        for i, (start, stop) in enumerate(bounds):
            bad[i] += int(flat[:, start:stop].sum())
        bad_samples += int((~finite).reshape(finite.shape[0], -1).any(1).sum())
    if num_samples == 0:
        raise ValueError(
            f"`{name}` holds no sample: nothing to train on. "
            f"Received: {name} with 0 samples"
        )
    if bad_inputs:
        raise validation.non_finite_error(name, bad_inputs, num_samples)
    if bad.any():
        where = ", ".join(
            f"chunk {i} (student {i}): {n}" for i, n in enumerate(bad) if n
        )
        raise ValueError(
            f"The teacher's features hold {int(bad.sum())} non-finite values "
            f"(NaN or Inf) in {bad_samples} of {num_samples} samples: "
            f"{where}. Check the teacher's weights and the input scaling."
        )
    return num_samples


def fingerprint(trunk, batches, max_batches=None, head=None):
    """A hash of the trunk (architecture and weights) and of the inputs.

    It identified a disk cache of formats 3 and 4, which are still read:
    the same teacher on the same data, in the same batches, gives the same
    fingerprint. Hashing the inputs reads them once, without running the
    teacher. New caches use `_sample_fingerprint`, which hashes sample by
    sample.

    Args:
        trunk: the `keras.Model` that computes the representation.
        batches: batched `tf.data.Dataset` of inputs.
        max_batches: int or None: hash only the first `max_batches` input
            batches, plus the number of batches and the element spec.
        head: None, or the model whose logits were cached too: its
            weights are hashed as well (how format 3 caches were keyed;
            format 4 keys the head apart, with `_weights_digest`).

    Returns:
        A hex string.
    """
    h = hashlib.sha256()
    h.update(
        json.dumps(trunk.get_config(), sort_keys=True, default=str).encode()
    )
    _hash_weights(h, trunk)
    if head is not None:
        h.update(b"logits")
        _hash_weights(h, head)
    h.update(repr(batches.element_spec).encode())
    count = 0
    for x in batches:
        if max_batches is None or count < max_batches:
            for t in tf.nest.flatten(x):
                h.update(np.ascontiguousarray(t.numpy()).tobytes())
        elif batches.cardinality() >= 0:
            break  # the count is known without reading on
        count += 1
    if max_batches is not None:
        known = int(batches.cardinality())
        h.update(str(known if known >= 0 else count).encode())
    return h.hexdigest()


class _Component:
    """The running hash of one input component, sample by sample.

    Two streams, both the same however the samples are batched: the
    samples' values in order (a string as its length and its bytes), and
    their shapes, run-length coded (a run of equal shapes counts as one
    entry, whatever the batches it spans). The shapes tell `[[1, 2], [3,
    4]], [[5, 6]]` from `[[1, 2]], [[3, 4], [5, 6]]`, whose values are
    the same.
    """

    def __init__(self):
        self.values = hashlib.sha256()
        self.shapes = hashlib.sha256()
        self._run = None  # [shape, count]

    def add_shape(self, shape, count):
        if self._run is not None and self._run[0] == shape:
            self._run[1] += count
            return
        self._flush()
        self._run = [shape, count]

    def _flush(self):
        if self._run is not None:
            self.shapes.update(repr(self._run).encode())

    def add_values(self, array):
        if array.dtype == object:  # strings: their bytes, not pointers
            for item in array.reshape(-1):
                item = item if isinstance(item, bytes) else str(item).encode()
                self.values.update(len(item).to_bytes(8, "little") + item)
        else:
            self.values.update(np.ascontiguousarray(array).tobytes())

    def digest(self):
        self._flush()
        self._run = None
        return self.values.digest() + self.shapes.digest()


def _num_rows(t, path):
    """The number of samples in batch component `t`."""
    if isinstance(t, tf.RaggedTensor):
        return int(t.nrows())
    if isinstance(t, tf.Tensor) and t.shape.rank:
        rows = t.shape[0]  # static in an eager batch: no op to run
        return int(rows) if rows is not None else int(tf.shape(t)[0])
    raise ValueError(
        "A disk cache hashes dense or ragged batched tensors; the inputs "
        f"hold a {type(t).__name__} of shape {getattr(t, 'shape', None)}. "
        f"Pass cache=None to cache in memory. Received: cache={path!r}"
    )


def _hash_rows(part, t, take):
    """Adds the first `take` samples of batch component `t` to `part`."""
    if not isinstance(t, tf.RaggedTensor):
        array = np.asarray(t)  # a view of the eager tensor, not a copy
        part.add_shape(array.shape[1:], take)
        part.add_values(array[:take])
        return
    # A ragged sample's shape is its row lengths at every ragged level
    # (and the uniform tail); its values are contiguous in `flat_values`.
    splits = [s.numpy() for s in t.nested_row_splits]
    values = t.flat_values.numpy()
    tail = values.shape[1:]
    for i in range(take):
        lo, hi = i, i + 1
        lengths = []
        for s in splits:
            lengths.append(tuple(np.diff(s[lo : hi + 1]).tolist()))
            lo, hi = int(s[lo]), int(s[hi])
        part.add_shape((tuple(lengths), tail), 1)
    end = take
    for s in splits:
        end = int(s[end])
    part.add_values(values[:end])


def _sample_fingerprint(
    trunk,
    batches,
    max_batches=None,
    max_samples=None,
    path=None,
    need_length=True,
):
    """A hash of the trunk and of the inputs, sample by sample.

    Each input component (inputs, labels) has its own running hash of its
    samples (`_Component`: their values and their shapes), so the hash is
    the same whatever the batch size, as long as batching does not change
    the samples: `padded_batch` pads each to its batch's longest, so its
    batches hash the padded samples, which change with the batch size.
    Ragged components are hashed by sample too; strings by their bytes.

    Args:
        trunk: the `keras.Model` that computes the representation.
        batches: batched `tf.data.Dataset` of inputs.
        max_batches: int or None: hash only the samples of the first
            `max_batches` batches (a new cache's `fingerprint_batches`).
        max_samples: int or None: hash only the first `max_samples`
            samples (what an existing cache hashed).
        path: the cache's path, for the error.
        need_length: bool, count the inputs' length (reading every batch
            of a dataset of unknown length, after the samples hashed);
            False stops at the last sample hashed (a new cache's
            fingerprint needs no length), and `length` is None.

    Returns:
        `(digest, hashed, length)`: the hex digest, the number of samples
        hashed, and the inputs' length for `_length_matches`: `("samples",
        n)` when every sample was read, else `("batches", number of
        batches, samples in the first)`.

    Raises:
        ValueError: if a component is neither a batched dense tensor nor a
            ragged one (e.g. a `tf.SparseTensor`).
    """
    h = hashlib.sha256()
    h.update(
        json.dumps(trunk.get_config(), sort_keys=True, default=str).encode()
    )
    _hash_weights(h, trunk)
    # One sample's structure, shapes and dtypes: without the batch axis.
    sample_spec = tf.nest.map_structure(
        lambda spec: (
            None if spec.shape.rank is None else spec.shape[1:].as_list(),
            spec.dtype.name,
        ),
        batches.element_spec,
    )
    h.update(repr(sample_spec).encode())
    parts = None
    hashed = count = num_batches = first = 0
    known = int(batches.cardinality())
    partial = max_batches is not None or max_samples is not None
    for element in batches:
        flat = tf.nest.flatten(element)
        sizes = [_num_rows(t, path) for t in flat]  # each one checked
        size = sizes[0]
        if parts is None:
            parts = [_Component() for _ in flat]
            first = size
        take = size
        if max_batches is not None and num_batches >= max_batches:
            take = 0
        if max_samples is not None:
            take = min(take, max_samples - hashed)
        if take:
            for part, t in zip(parts, flat):
                _hash_rows(part, t, take)
            hashed += take
        count += size
        num_batches += 1
        done = (max_batches is not None and num_batches >= max_batches) or (
            max_samples is not None and hashed >= max_samples
        )
        if done and (known >= 0 or not need_length):
            break  # the length follows from the number of batches
    for part in parts or ():
        h.update(part.digest())
    if partial:
        h.update(f"first {hashed} samples".encode())
    if not need_length:
        length = None
    elif partial and known >= 0 and count:
        length = ("batches", known, first)
    else:
        length = ("samples", count)
    return h.hexdigest(), hashed, length


def _length_matches(length, num_samples):
    """Whether inputs of `length` (from `_sample_fingerprint`) can hold
    `num_samples` samples: exactly, or in as many batches of the first
    batch's size (the last one possibly short)."""
    kind, *value = length
    if kind == "samples":
        return value[0] == num_samples
    num_batches, first = value
    return num_batches == -(-num_samples // first)  # ceil


def _hash_weights(h, model):
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())


def _weights_digest(model):
    """A hash of a model's weights (the head whose logits are cached)."""
    h = hashlib.sha256()
    _hash_weights(h, model)
    return h.hexdigest()


def _shard_func(num_batches, shards):
    """Maps an input batch's index to its shard.

    With a known number of batches every shard is one contiguous run of
    the input, so reading shards side by side mixes distant samples;
    otherwise blocks of `_BLOCK` batches go to shards in turn.
    """
    if num_batches > 0:
        per_shard = max(1, -(-num_batches // shards))  # ceil

        def shard(index, _):
            return tf.minimum(index // per_shard, shards - 1)

    else:

        def shard(index, _):
            return (index // _BLOCK) % shards

    return shard


def _reader(shuffle_seed=None, shards=_DEFAULT_SHARDS):
    """A `Dataset.load` reader: shards in turn, or side by side at random."""

    def read(datasets):
        if shuffle_seed is False:
            # One shard after the other: the input's order when the
            # shards are contiguous runs of it.
            return datasets.flat_map(lambda d: d)
        datasets = datasets.shuffle(
            shards, seed=shuffle_seed, reshuffle_each_iteration=True
        )
        # Deterministic: read in parallel but served in turn, one block
        # from each shard, so shards mix from the first batch and a seed
        # gives the same orders again (out of order, the shards read
        # first filled the first batches under load).
        return datasets.interleave(
            lambda d: d,
            cycle_length=shards,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    return read


def _load_pairs(data_path, shards, shuffle_seed=False):
    """The stored `(x, features)` pairs, unbatched.

    `shuffle_seed=False` reads in a fixed order; None or an int reads the
    shards in a random order, new every epoch.
    """
    ds = tf.data.Dataset.load(
        data_path, reader_func=_reader(shuffle_seed, shards)
    )
    return ds.map(lambda _, pair: pair).unbatch()


def _sample_bytes(pairs):
    size = 0
    for spec in tf.nest.flatten(pairs.element_spec):
        n = int(np.prod([d or 1 for d in spec.shape.as_list()]))
        size += n * spec.dtype.size
    return max(size, 1)


def _without_logits(pairs):
    """The pairs with the cached logits left out of their targets."""

    def drop(x, targets):
        kept = {k: v for k, v in targets.items() if k != "logits"}
        return x, (kept if "labels" in kept else kept["features"])

    return pairs.map(drop)


def _with_logits(pairs, head):
    """The pairs with `head`'s logits of their cached features added.

    The head runs on blocks of `_SCAN_BATCH` pairs (one call a sample
    would cost more than the head itself), which are then unbatched: the
    pairs keep their order, and `Features.batches` shuffles them as any.
    """

    def add(x, targets):
        full = dict(targets) if isinstance(targets, dict) else {}
        features = _features_of(targets)
        full["features"] = features
        full["logits"] = tf.cast(head(features), "float32")
        return x, full

    return pairs.batch(_SCAN_BATCH).map(add).unbatch()


def _disk_features(cache, data_path, num_samples, drop_logits=False, head=None):
    shards = cache.shards

    def load(seed=False):
        pairs = _load_pairs(data_path, shards, shuffle_seed=seed)
        if head is not None:
            return _with_logits(pairs, head)
        return _without_logits(pairs) if drop_logits else pairs

    pairs = load()
    buffer = cache.shuffle_buffer
    if buffer is None:
        buffer = max(_MIN_SHUFFLE, _SHUFFLE_BYTES // _sample_bytes(pairs))
    return Features(pairs, num_samples, shuffle_buffer=buffer, sources=load)


def _is_partial_save(path):
    """Whether `path` is a directory holding only what an interrupted
    `tf.data.Dataset.save` leaves: its spec and metadata files (or their
    temporary copies) and numbered run directories."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if entry.isdigit() and os.path.isdir(full):
            continue
        if entry.startswith(("dataset_spec.pb", "snapshot.metadata")):
            continue
        return False
    return True


def _disk(trunk, batches, chunks, cache, name, head=None):
    path = cache.path
    meta_path = os.path.join(path, _META)
    data_path = os.path.join(path, "features")
    logits = head is not None
    labels = isinstance(batches.element_spec, tuple)
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        version = meta.get("format")
        if version not in _READABLE:
            raise ValueError(
                "`cache` was written by another version of teacherclass "
                f"(format {version}, this one reads {_READABLE}). "
                f"It is left untouched: delete it, or pass another path. "
                f"Received: cache={path!r}"
            )
        # A cache with logits serves a call without them (format 4); one
        # without serves a call with them: the head runs on the cached
        # features (the head's own weights, nothing to check).
        extra_logits = version >= 4 and meta.get("logits") and not logits
        missing_logits = logits and not meta.get("logits")
        if version == 3 and meta.get("logits") and not logits:
            # Format 3 hashed the head into the fingerprint: only a call
            # with the head can check it.
            raise ValueError(
                "`cache` was written with the teacher's logits (format 3), "
                "which this call does not use. It is left untouched: "
                f"delete it, or pass another path. Received: cache={path!r}"
            )
        if bool(meta.get("labels")) != labels:
            raise ValueError(
                f"`cache` was written {'without' if labels else 'with'} "
                f"labels, which this call "
                f"{'needs' if labels else 'does not use'}. It is left "
                "untouched: delete it, or pass another path. "
                f"Received: cache={path!r}"
            )
        # The setting the cache was written with: hashed another way, the
        # same teacher and data would read as others.
        stored = meta.get("fingerprint_batches", cache.fingerprint_batches)
        if version >= 5:
            digest, _, length = _sample_fingerprint(
                trunk,
                batches,
                max_samples=meta.get("fingerprint_samples"),
                path=path,
            )
            same = meta.get("fingerprint") == digest and _length_matches(
                length, meta["num_samples"]
            )
        else:
            digest = fingerprint(
                trunk,
                batches,
                stored,
                head if version == 3 and meta.get("logits") else None,
            )
            same = meta.get("fingerprint") == digest
        if not same:
            hint = ""
            # Formats 3 and 4 hashed the batches' bytes in turn: the same
            # at any batch size only for one component hashed in full.
            several = len(tf.nest.flatten(batches.element_spec)) > 1
            if version < 5 and (stored is not None or several):
                how = (
                    "written with fingerprint_batches"
                    if stored is not None
                    else "holding labels or several inputs"
                )
                hint = (
                    f" (a cache of format 4 or older {how} hashed whole "
                    "batches: it reads only at the batch size it was "
                    "written with)"
                )
            raise ValueError(
                "`cache` holds the features of a different teacher or "
                f"dataset{hint}. It is left untouched: delete it, or pass "
                f"another path. Received: cache={path!r}"
            )
        if version >= 4 and logits and not missing_logits:
            if meta.get("logits_fingerprint") != _weights_digest(head):
                raise ValueError(
                    "`cache` holds the logits of a different head than "
                    "this teacher's. It is left untouched: delete it, or "
                    f"pass another path. Received: cache={path!r}"
                )
        # The shards were fixed when the cache was written.
        cache = DiskCache(
            path,
            shards=meta["shards"],
            shuffle_buffer=cache.shuffle_buffer,
            fingerprint_batches=stored,
        )
        return _disk_features(
            cache,
            data_path,
            meta["num_samples"],
            drop_logits=extra_logits,
            head=head if missing_logits else None,
        )
    tmp = data_path + ".partial"
    leftovers = set(os.listdir(path)) if os.path.isdir(path) else set()
    # A `features.partial` alone is an interrupted write of this function,
    # if it holds what `Dataset.save` writes: it is deleted below.
    if os.path.exists(path) and (
        not os.path.isdir(path)
        or leftovers - {"features.partial"}
        or (leftovers and not _is_partial_save(tmp))
    ):
        raise ValueError(
            "`cache` must be a new or empty directory, or one written by "
            "teacherclass; it is something else and is left untouched. "
            f"Received: cache={path!r}"
        )
    digest, hashed, _ = _sample_fingerprint(
        trunk,
        batches,
        max_batches=cache.fingerprint_batches,
        path=path,
        need_length=False,  # stops after the batches hashed
    )
    shutil.rmtree(tmp, ignore_errors=True)
    created = not os.path.exists(path)
    os.makedirs(path, exist_ok=True)
    # Whole input batches are stored, numbered so they can be sharded.
    _teacher_batches(trunk, batches, head).enumerate().save(
        tmp,
        shard_func=_shard_func(int(batches.cardinality()), cache.shards),
    )
    try:
        num_samples = _scan(_load_pairs(tmp, cache.shards), chunks, name)
    except ValueError:
        # Only what this call wrote: the directory too if it made it (an
        # empty one the user made stays).
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    os.replace(tmp, data_path)
    with open(meta_path, "w") as f:
        json.dump(
            {
                "format": _FORMAT,
                "fingerprint": digest,
                "fingerprint_batches": cache.fingerprint_batches,
                # What a later run hashes, whatever its batch size.
                "fingerprint_samples": (
                    None if cache.fingerprint_batches is None else hashed
                ),
                "num_samples": num_samples,
                "shards": cache.shards,
                "chunks": list(chunks),
                "logits": logits,
                "logits_fingerprint": (
                    _weights_digest(head) if logits else None
                ),
                "labels": labels,
            },
            f,
        )
    return _disk_features(cache, data_path, num_samples)


class Augmented:
    """Training batches of inputs, augmented anew every epoch.

    For inputs that change every epoch (random augmentation) there is
    nothing to cache: the inputs are held in memory, and each training
    batch is drawn, augmented inside the `tf.data` pipeline and handed to
    the train step, which runs the teacher's trunk on it (on the training
    device, under the distribution strategy). Teacher and students see the
    same augmented batch ("consistent teaching").

    Attributes:
        num_samples: int, the number of samples.
    """

    def __init__(self, inputs, num_samples, augment):
        # The inputs' order and batches are a `Features` of inputs alone.
        self._inputs = Features(inputs, num_samples)
        self._augment = augment
        self.num_samples = num_samples

    def batches(self, batch_size, shuffle=False, seed=None):
        """Augmented input batches, as 1-tuples `(x,)`, or `(x, labels)`.

        Takes the arguments of `Features.batches`: the inputs are drawn,
        shuffled and batched as the cached pairs are.

        Returns:
            A batched, prefetched `tf.data.Dataset` of `(x,)`. Floating
            outputs are cast back to the inputs' dtype, so the trunk and
            the students get the dtype they were given; their values are
            what `augment` computed, though: a layer under a mixed
            precision policy (e.g. "mixed_bfloat16") computes, and so
            rounds, in its compute dtype. Build the augmentation layers
            with `dtype="float32"` to keep the inputs' precision.
        """
        augment = self._augment

        def run(x, *labels):
            out = augment(x, training=True)
            if out.dtype.is_floating and x.dtype.is_floating:
                out = tf.cast(out, x.dtype)
            if labels:
                return out, {"labels": labels[0]}
            return (out,)

        ds = self._inputs.batches(batch_size, shuffle=shuffle, seed=seed)
        ds = ds.map(run, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)


def augmented(batches, augment, name="x"):
    """Inputs to augment on the fly, for a trunk run in the train step.

    Args:
        batches: batched `tf.data.Dataset` of inputs; they are held in
            memory, unbatched, and re-batched every epoch.
        augment: callable taking `(x, training=True)` and returning a
            batch of the same shape, e.g. a Keras preprocessing layer or a
            `keras.Sequential` of them.

    Returns:
        An `Augmented`.

    Raises:
        ValueError: if the data is empty.

    Example:

    >>> import keras
    >>> x = np.random.rand(10, 4).astype("float32")
    >>> batches = tf.data.Dataset.from_tensor_slices(x).batch(4)
    >>> inputs = augmented(batches, keras.layers.GaussianNoise(0.1))
    >>> (x_aug,) = next(iter(inputs.batches(4, shuffle=True)))
    >>> inputs.num_samples, tuple(x_aug.shape)
    (10, (4, 4))
    """
    inputs = batches.unbatch().cache()
    num_samples = bad = 0
    for x in inputs.batch(_SCAN_BATCH):
        x = _inputs_of(x)
        num_samples += int(x.shape[0])
        bad += _non_finite_inputs(x)
    if num_samples == 0:
        raise ValueError(
            f"`{name}` holds no sample: nothing to train on. "
            f"Received: {name} with 0 samples"
        )
    if bad:
        raise validation.non_finite_error(name, bad, num_samples)
    return Augmented(inputs, num_samples, augment)


def extract(trunk, batches, chunks, cache=None, name="x", head=None):
    """Runs the trunk once per sample and caches the representation.

    Args:
        trunk: `keras.Model` from the teacher's input to the representation.
        batches: batched `tf.data.Dataset` of inputs, or of
            `(inputs, labels)` to cache the labels too.
        chunks: tuple of chunk widths, to report non-finite features.
        cache: None to cache in memory, a directory path to cache on disk
            (reused when the same teacher meets the same data), or a
            `DiskCache` for a disk cache with options.
        name: the data's argument name, for error messages.
        head: None, or a model from the representation to the teacher's
            logits: they are cached beside the features (computed from
            them, so the teacher still runs once per sample), and the
            targets become a dict (see `Features`). A disk cache written
            without logits serves such a call: the head runs on its
            cached features as they are read.

    Returns:
        A `Features`.

    Raises:
        ValueError: if the data is empty, an input or a feature is NaN or
            infinite, `cache` is an empty path, or `cache` holds
            something else.
        TypeError: if `cache` is neither None, a path nor a `DiskCache`.

    Example:

    >>> import keras
    >>> trunk = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    >>> x = np.random.rand(10, 4).astype("float32")
    >>> batches = tf.data.Dataset.from_tensor_slices(x).batch(4)
    >>> feats = extract(trunk, batches, (3, 3))
    >>> feats.num_samples
    10
    """
    if cache is not None:
        if isinstance(cache, (str, os.PathLike)):
            if not os.fspath(cache):
                # "" would write the cache into the working directory.
                raise ValueError(
                    "`cache` must be None (memory) or name a directory. "
                    f"Received: cache={cache!r}"
                )
            cache = DiskCache(cache)
        if not isinstance(cache, DiskCache):
            raise TypeError(
                "`cache` must be None (memory), a directory path or a "
                f"teacherclass.features.DiskCache. Received: cache={cache!r}"
            )
        return _disk(trunk, batches, chunks, cache, name, head)
    pairs = _teacher_pairs(trunk, batches, head).cache()
    # The scan is the one pass that runs the teacher and fills the cache.
    return Features(pairs, _scan(pairs, chunks, name))


def _preprocessed(batches, preprocessor):
    if preprocessor is None:
        return batches
    if isinstance(batches.element_spec, tuple):
        return batches.map(lambda b, y: (preprocessor(b, training=False), y))
    return batches.map(lambda b: preprocessor(b, training=False))


def _label_batches(x, y, batches, batch_size, name, input_spec):
    """Input batches with their labels: `y` zipped onto `batches`, or a
    dataset `x`'s own `(x, y)` pairs, read in one pass (`batches`, made
    from `x`, is then only its checked shape)."""
    if y is None:
        if isinstance(x, tuple) and len(x) in (2, 3):
            y = x[1]
        elif isinstance(x, tf.data.Dataset) and validation.has_labels(x, None):
            # One pass over `x`, inputs and labels together: two passes
            # over a shuffled dataset would pair them in different orders.
            pairs = x.map(lambda *e: (e[0], e[1]))
            # As `batched_inputs` reads the inputs (it checked they fit).
            batched, add_axis = data.element_layout(
                x.element_spec[0].shape, input_spec.shape[1:]
            )
            if not batched:
                pairs = pairs.batch(batch_size)
            if add_axis:
                pairs = pairs.map(lambda inputs, y: (inputs[..., None], y))
            return pairs
        else:
            raise ValueError(
                "The objective's label term needs labels: pass `y` (or "
                f"`{name}` as `(x, y)`). Received: y=None"
            )
    y = np.asarray(y)
    if isinstance(x, tf.data.Dataset):
        raise ValueError(
            f"Pass the labels inside the dataset `{name}` (as `(x, y)`), "
            "not as `y`. Received: y with shape "
            f"{y.shape}"
        )
    labels = tf.data.Dataset.from_tensor_slices(y).batch(batch_size)
    return tf.data.Dataset.zip((batches, labels))


def representation(
    cut,
    chunks,
    x,
    batch_size,
    cache=None,
    augment=None,
    name="x",
    head=None,
    y=None,
    labels=False,
):
    """The students' training data, from the user's inputs: one entry point.

    The whole input-to-representation pipeline: `x` in any form `fit`
    accepts becomes batches of inputs (`data.batched_inputs`), the
    teacher's preprocessing (`cut.student_input`) runs on them, and the
    trunk's representation is cached (`extract`). With `augment`, the
    inputs are served augmented instead (`augmented`), the preprocessing
    running after the augmentation, and the train step runs the trunk.

    Args:
        cut: the teacher's `teacher.Cut`.
        chunks: tuple of chunk widths, to report non-finite features.
        x: inputs: array, tensor, `(x, y)` tuple, or dataset.
        batch_size: int, used unless `x` is a batched dataset.
        cache: None (memory), a directory path or a `DiskCache`.
        augment: None, or a callable `(x, training=True) -> x`.
        name: the argument's name, for error messages.
        head: None, or the teacher's logits model (representation ->
            logits), cached with the features (see `extract`).
        y: labels for array inputs (used with `labels=True`).
        labels: bool, keep the labels (from `y`, or from `x` given as
            `(x, y)` or a dataset of them) with the targets.

    Returns:
        A `Features` of `(x, features)` pairs (`(x, dict)` with `head` or
        `labels`), or an `Augmented` of inputs when `augment` is given.

    Raises:
        ValueError: if the data does not fit the teacher, is empty, or
            holds NaN or Inf (inputs or features).
        TypeError: if the data's dtype does not fit the teacher's.
    """
    batches = data.batched_inputs(
        x, cut.teacher.inputs[0], batch_size, name=name
    )
    if labels:
        batches = _label_batches(
            x, y, batches, batch_size, name, cut.teacher.inputs[0]
        )
    preprocessor = cut.preprocessor()
    if augment is None:
        batches = _preprocessed(batches, preprocessor)
        return extract(cut.trunk(), batches, chunks, cache, name, head)
    if preprocessor is not None:
        raw_augment = augment

        def augment(b, training=True):
            # Augment the raw inputs, then preprocess them, per batch.
            return preprocessor(
                raw_augment(b, training=training), training=False
            )

    return augmented(batches, augment, name=name)
