import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from teacherclass import features


def _trunk(width=6, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(width, activation="relu")]
    )


def _batches(n=20, seed=0):
    x = np.random.default_rng(seed).random((n, 4)).astype("float32")
    return x, tf.data.Dataset.from_tensor_slices(x).batch(8)


def test_memory_cache_matches_the_trunk():
    trunk = _trunk()
    x, batches = _batches()
    feats = features.extract(trunk, batches, (3, 3))
    assert feats.num_samples == 20
    xs, fs = zip(*[(a.numpy(), b.numpy()) for a, b in feats.batches(32)])
    np.testing.assert_allclose(fs[0], trunk.predict(x, verbose=0), atol=1e-6)
    assert fs[0].dtype == np.float32


def test_teacher_runs_once_per_sample(monkeypatch):
    calls = []
    trunk = _trunk()

    class Counting(keras.layers.Layer):
        def call(self, x):
            n = tf.py_function(lambda: calls.append(1) or 0.0, [], tf.float32)
            n.set_shape(())
            return trunk(x) + 0.0 * n

        def compute_output_shape(self, shape):
            return (shape[0], 6)

    counting = keras.Sequential([keras.Input((4,)), Counting()])
    _, batches = _batches(n=24)
    feats = features.extract(counting, batches, (6,))
    assert len(calls) == 3  # one call per input batch of 8
    calls.clear()
    for _ in range(3):  # three epochs read the cache only
        for _ in feats.batches(5, shuffle=True):
            pass
    assert calls == []


def test_shuffle_changes_order_each_epoch():
    _, batches = _batches(n=64)
    feats = features.extract(_trunk(), batches, (6,))
    ds = feats.batches(64, shuffle=True, seed=1)
    first = next(iter(ds))[0].numpy()
    second = next(iter(ds))[0].numpy()
    assert not np.array_equal(first, second)
    np.testing.assert_allclose(np.sort(first, 0), np.sort(second, 0))


def test_non_finite_features_are_reported_per_chunk():
    trunk = _trunk(width=6)
    bias = trunk.layers[0].bias.numpy()
    bias[4] = np.inf  # only chunk 1 (features 3..5); relu(nan) may be 0
    trunk.layers[0].bias.assign(bias)
    _, batches = _batches(n=10)
    with pytest.raises(ValueError) as info:
        features.extract(trunk, batches, (3, 3))
    message = str(info.value)
    assert "10 non-finite values" in message
    assert "in 10 of 10 samples" in message
    assert "chunk 1 (student 1): 10" in message
    assert "chunk 0" not in message


def test_disk_cache_is_reused_then_protected(tmp_path):
    path = tmp_path / "cache"
    trunk = _trunk()
    _, batches = _batches()
    first = features.extract(trunk, batches, (6,), cache=path)
    meta = json.loads((path / "teacherclass-cache.json").read_text())
    assert meta["num_samples"] == 20
    f1 = np.concatenate([f for _, f in first.batches(8)])

    # Same teacher, same data: read back without running the teacher.
    second = features.extract(trunk, batches, (6,), cache=path)
    np.testing.assert_array_equal(
        np.concatenate([f for _, f in second.batches(8)]), f1
    )

    # Changed teacher: refused, and the cache is left as it was.
    before = sorted(p.name for p in path.rglob("*"))
    with pytest.raises(ValueError, match="different teacher or dataset"):
        features.extract(_trunk(seed=1), batches, (6,), cache=path)
    assert sorted(p.name for p in path.rglob("*")) == before

    # Changed data: refused too.
    _, other = _batches(seed=3)
    with pytest.raises(ValueError, match="different teacher or dataset"):
        features.extract(trunk, other, (6,), cache=path)


def test_disk_cache_never_touches_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    _, batches = _batches()
    with pytest.raises(ValueError, match="left untouched"):
        features.extract(_trunk(), batches, (6,), cache=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
