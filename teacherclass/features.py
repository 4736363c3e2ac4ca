"""The teacher's representation, computed once per sample and cached.

`extract` runs the teacher's trunk over the inputs inside a `tf.data`
pipeline and caches `(x, features)` pairs, in memory or on disk. One pass
fills the cache (and checks that every feature is finite); every epoch after
that reads the cache and never runs the teacher again.
"""

import hashlib
import json
import os
import shutil

import numpy as np
import tensorflow as tf

from teacherclass import chunking

_META = "teacherclass-cache.json"
_FORMAT = 1
_SCAN_BATCH = 4096


class Features:
    """A cached dataset of `(x, features)` pairs.

    Attributes:
        pairs: unbatched `tf.data.Dataset` of `(x, features)`, features in
            float32, served from the cache.
        num_samples: int, the number of samples.
    """

    def __init__(self, pairs, num_samples):
        self.pairs = pairs
        self.num_samples = num_samples

    def batches(self, batch_size, shuffle=False, seed=None):
        """Batches for training or evaluation, reshuffled every epoch."""
        # The cardinality lets Keras size epochs and progress bars.
        ds = self.pairs.apply(
            tf.data.experimental.assert_cardinality(self.num_samples)
        )
        if shuffle:
            ds = ds.shuffle(
                self.num_samples, seed=seed, reshuffle_each_iteration=True
            )
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _teacher_pairs(trunk, batches):
    def run(x):
        return x, tf.cast(trunk(x, training=False), "float32")

    return batches.map(run).unbatch()


def _scan(pairs, chunks):
    """Counts samples and non-finite features per chunk, in one pass."""
    bounds = chunking.bounds(chunks)
    num_samples = 0
    bad = np.zeros(len(chunks), dtype=np.int64)
    bad_samples = 0
    for _, f in pairs.batch(_SCAN_BATCH):
        finite = tf.math.is_finite(f).numpy()
        num_samples += finite.shape[0]
        if finite.all():
            continue
        flat = (~finite).reshape(-1, finite.shape[-1])
        for i, (start, stop) in enumerate(bounds):
            bad[i] += int(flat[:, start:stop].sum())
        bad_samples += int((~finite).reshape(finite.shape[0], -1).any(1).sum())
    if num_samples == 0:
        raise ValueError("The data holds no sample: nothing to train on.")
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


def fingerprint(trunk, batches):
    """A hash of the trunk (architecture and weights) and of the inputs.

    It identifies a disk cache: the same teacher on the same data gives the
    same fingerprint. Hashing the inputs reads them once, without running
    the teacher.
    """
    h = hashlib.sha256()
    h.update(
        json.dumps(trunk.get_config(), sort_keys=True, default=str).encode()
    )
    for w in trunk.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    for x in batches:
        h.update(np.ascontiguousarray(x.numpy()).tobytes())
    return h.hexdigest()


def _disk(trunk, batches, chunks, path):
    path = os.fspath(path)
    meta_path = os.path.join(path, _META)
    data_path = os.path.join(path, "features")
    digest = fingerprint(trunk, batches)
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("fingerprint") != digest or meta.get("format") != _FORMAT:
            raise ValueError(
                "`cache` holds the features of a different teacher or "
                "dataset. It is left untouched: delete it, or pass another "
                f"path. Received: cache={path!r}"
            )
        pairs = tf.data.Dataset.load(data_path)
        return Features(pairs, meta["num_samples"])
    leftovers = set(os.listdir(path)) if os.path.isdir(path) else set()
    # A `features.partial` alone is an interrupted write of this function.
    if os.path.exists(path) and (
        not os.path.isdir(path) or leftovers - {"features.partial"}
    ):
        raise ValueError(
            "`cache` must be a new or empty directory, or one written by "
            "teacherclass; it is something else and is left untouched. "
            f"Received: cache={path!r}"
        )
    tmp = data_path + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    _teacher_pairs(trunk, batches).save(tmp)
    try:
        num_samples = _scan(tf.data.Dataset.load(tmp), chunks)
    except ValueError:
        shutil.rmtree(path)  # only what this call wrote
        raise
    os.replace(tmp, data_path)
    with open(meta_path, "w") as f:
        json.dump(
            {
                "format": _FORMAT,
                "fingerprint": digest,
                "num_samples": num_samples,
                "chunks": list(chunks),
            },
            f,
        )
    return Features(tf.data.Dataset.load(data_path), num_samples)


def extract(trunk, batches, chunks, cache=None):
    """Runs the trunk once per sample and caches the representation.

    Args:
        trunk: `keras.Model` from the teacher's input to the representation.
        batches: batched `tf.data.Dataset` of inputs.
        chunks: tuple of chunk widths, to report non-finite features.
        cache: None to cache in memory, or a directory path to cache on disk
            (reused when the same teacher meets the same data).

    Returns:
        A `Features`.

    Raises:
        ValueError: if the data is empty, a feature is NaN or infinite, or
            `cache` holds something else.
    """
    if cache is not None:
        return _disk(trunk, batches, chunks, cache)
    pairs = _teacher_pairs(trunk, batches).cache()
    # The scan is the one pass that runs the teacher and fills the cache.
    return Features(pairs, _scan(pairs, chunks))
