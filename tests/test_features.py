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


@pytest.mark.parametrize("made_by_user", [True, False])
def test_a_failed_disk_cache_write_keeps_the_users_empty_directory(
    tmp_path, made_by_user
):
    trunk = _trunk(width=6)
    bias = trunk.layers[0].bias.numpy()
    bias[4] = np.inf
    trunk.layers[0].bias.assign(bias)
    _, batches = _batches(n=10)
    path = tmp_path / "cache"
    if made_by_user:
        path.mkdir()
    with pytest.raises(ValueError, match="non-finite"):
        features.extract(trunk, batches, (3, 3), cache=path)
    # Only what the call wrote is gone: the directory stays if it was
    # the user's, empty.
    assert path.exists() == made_by_user
    if made_by_user:
        assert list(path.iterdir()) == []


def test_disk_cache_never_touches_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    _, batches = _batches()
    with pytest.raises(ValueError, match="left untouched"):
        features.extract(_trunk(), batches, (6,), cache=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _counting_teacher(calls):
    """An MLP teacher whose trunk records every batch it runs on."""

    class Counting(keras.layers.Layer):
        def call(self, x):
            n = tf.py_function(lambda: calls.append(1) or 0.0, [], tf.float32)
            n.set_shape(())
            return x + 0.0 * n

        def compute_output_shape(self, shape):
            return shape

    return keras.Sequential(
        [
            keras.Input((4,)),
            Counting(name="counting"),
            keras.layers.Dense(6, activation="relu", name="rep"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )


def test_second_fit_students_reads_the_disk_cache_only(tmp_path):
    from teacherclass import DenseTower
    from teacherclass import TeacherClass

    calls = []
    teacher = _counting_teacher(calls)
    x, _ = _batches(n=40)
    cache = str(tmp_path / "cache")

    def fit():
        tc = TeacherClass(
            teacher, num_students=2, student=DenseTower(1, hidden=(4,))
        )
        return tc.fit_students(
            x, batch_size=8, epochs=2, verbose=0, cache=cache
        )

    calls.clear()
    first = fit()
    assert len(calls) == 5  # one pass over 40 samples in batches of 8
    calls.clear()
    second = fit()
    assert calls == []  # the second run never runs the teacher
    assert len(second.history["loss"]) == len(first.history["loss"]) == 2


def test_disk_cache_shards_and_streams_with_a_bounded_buffer(tmp_path):
    trunk = _trunk()
    x = np.arange(400 * 4, dtype="float32").reshape(400, 4) / 1600
    batches = tf.data.Dataset.from_tensor_slices(x).batch(10)
    cache = features.DiskCache(tmp_path / "c", shards=4, shuffle_buffer=16)
    feats = features.extract(trunk, batches, (6,), cache=cache)
    assert feats.num_samples == 400
    assert feats.shuffle_buffer == 16
    meta = json.loads((tmp_path / "c" / "teacherclass-cache.json").read_text())
    assert meta["shards"] == 4
    shard_files = list((tmp_path / "c" / "features").rglob("*.shard"))
    assert len(shard_files) == 4

    # Unshuffled: every sample once, in the input's order.
    ordered = np.concatenate([a for a, _ in feats.batches(64)])
    np.testing.assert_array_equal(ordered, x)

    # Shuffled: every sample once, a new order each epoch, and samples far
    # apart in the input meet early (shards are read side by side), though
    # the buffer holds only 16.
    ds = feats.batches(400, shuffle=True, seed=0)
    first = next(iter(ds))[0].numpy()
    second = next(iter(ds))[0].numpy()
    np.testing.assert_array_equal(np.sort(first[:, 0]), x[:, 0])
    assert not np.array_equal(first, second)
    index = (first[:, 0] * 1600 / 4).astype(int)
    assert index[:32].max() - index[:32].min() > 200
    # A seed gives the same orders again.
    again = feats.batches(400, shuffle=True, seed=0)
    np.testing.assert_array_equal(next(iter(again))[0].numpy(), first)


def test_memory_cache_shuffles_over_every_sample():
    _, batches = _batches(n=20)
    feats = features.extract(_trunk(), batches, (6,))
    assert feats.shuffle_buffer == 20


def test_default_disk_shuffle_buffer_is_bounded(tmp_path):
    _, batches = _batches(n=20)
    feats = features.extract(_trunk(), batches, (6,), cache=tmp_path / "c")
    assert feats.shuffle_buffer == 20  # 64 MiB of samples, at most all
    big = features.Features(feats.pairs, 10**9, shuffle_buffer=None)
    assert big.shuffle_buffer == 10**9  # memory: all of them
    assert features._MIN_SHUFFLE <= features._SHUFFLE_BYTES // 40


def test_partial_fingerprint_still_detects_a_new_teacher(tmp_path):
    _, batches = _batches(n=40)
    cache = features.DiskCache(tmp_path / "c", fingerprint_batches=1)
    trunk = _trunk()
    features.extract(trunk, batches, (6,), cache=cache)
    features.extract(trunk, batches, (6,), cache=cache)  # reused
    with pytest.raises(ValueError, match="different teacher or dataset"):
        features.extract(_trunk(seed=2), batches, (6,), cache=cache)
    shorter = batches.take(2)  # same first batch, fewer batches
    with pytest.raises(ValueError, match="different teacher or dataset"):
        features.extract(trunk, shorter, (6,), cache=cache)


def test_a_partial_fingerprint_reads_only_its_batches_when_writing(tmp_path):
    # A dataset of unknown length (a generator): writing a new cache
    # fingerprints its first batch and then runs the trunk over every
    # batch once, without an extra pass to count them.
    x = np.random.default_rng(0).random((40, 4)).astype("float32")
    read = []

    def batches():
        for i in range(0, 40, 8):
            read.append(i)
            yield x[i : i + 8]

    ds = tf.data.Dataset.from_generator(
        batches, output_signature=tf.TensorSpec((None, 4), "float32")
    )
    cache = features.DiskCache(tmp_path / "c", fingerprint_batches=1)
    features.extract(_trunk(), ds, (6,), cache=cache)
    assert len(read) <= 5 + 2  # one pass, and the fingerprint's batch(es)


def test_a_cache_is_checked_with_the_fingerprint_batches_it_was_written_with(
    tmp_path,
):
    """Reopened by path (hashing every batch) or with another setting, a
    cache of the same teacher and data is reused, not blamed on them."""
    _, batches = _batches(n=40)
    trunk = _trunk()
    written = features.DiskCache(tmp_path / "c", fingerprint_batches=2)
    features.extract(trunk, batches, (6,), cache=written)
    for cache in (
        tmp_path / "c",
        features.DiskCache(tmp_path / "c", fingerprint_batches=1),
    ):
        feats = features.extract(trunk, batches, (6,), cache=cache)
        assert feats.num_samples == 40
    with pytest.raises(ValueError, match="different teacher or dataset"):
        features.extract(_trunk(seed=2), batches, (6,), cache=tmp_path / "c")


def test_old_format_cache_is_refused(tmp_path):
    _, batches = _batches()
    features.extract(_trunk(), batches, (6,), cache=tmp_path)
    meta_path = tmp_path / "teacherclass-cache.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, format=1)))
    with pytest.raises(ValueError, match="another version of teacherclass"):
        features.extract(_trunk(), batches, (6,), cache=tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shards": 0}, "Received: shards=0"),
        ({"shuffle_buffer": -1}, "Received: shuffle_buffer=-1"),
        ({"fingerprint_batches": 1.5}, "Received: fingerprint_batches=1.5"),
    ],
)
def test_disk_cache_options_are_checked(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        features.DiskCache(tmp_path, **kwargs)


def test_cache_of_the_wrong_type():
    _, batches = _batches()
    with pytest.raises(TypeError, match="Received: cache=3"):
        features.extract(_trunk(), batches, (6,), cache=3)


@pytest.mark.parametrize("fingerprint_batches", [None, 2])
@pytest.mark.parametrize("labels", [False, True])
def test_the_same_data_at_another_batch_size_reads_the_cache(
    tmp_path, fingerprint_batches, labels
):
    # The inputs are hashed sample by sample: 40 samples in batches of 8
    # are the same data in batches of 10 or 3 (labels too).
    x = np.random.default_rng(0).random((40, 4)).astype("float32")
    y = np.arange(40)

    def batches(size, n=40):
        data = (x[:n], y[:n]) if labels else x[:n]
        return tf.data.Dataset.from_tensor_slices(data).batch(size)

    trunk = _trunk()
    cache = features.DiskCache(
        tmp_path / "c", fingerprint_batches=fingerprint_batches
    )
    features.extract(trunk, batches(8), (6,), cache=cache)
    for size in (10, 3, 40):
        feats = features.extract(trunk, batches(size), (6,), cache=cache)
        assert feats.num_samples == 40
    # Still refused: other samples, fewer of them, another teacher.
    other = x.copy()
    other[0, 0] += 1.0
    data = (other, y) if labels else other
    for trunk_, batches_ in [
        (trunk, tf.data.Dataset.from_tensor_slices(data).batch(10)),
        (trunk, batches(10, n=20)),
        (_trunk(seed=2), batches(10)),
    ]:
        with pytest.raises(ValueError, match="different teacher or dataset"):
            features.extract(trunk_, batches_, (6,), cache=cache)


@pytest.mark.parametrize(
    "fingerprint_batches, labels, how",
    [
        (2, False, "written with fingerprint_batches"),
        (None, True, "holding labels or several inputs"),
        (None, False, None),
    ],
)
def test_a_format_4_cache_is_still_read_at_its_batch_size(
    tmp_path, fingerprint_batches, labels, how
):
    # Format 4 hashed the batches' bytes in turn: at another batch size,
    # the same data reads as other data when only some batches were
    # hashed, or when several components (inputs, labels) interleave;
    # the error says so. One input hashed in full reads at any size.
    x, _ = _batches(n=40)
    data = (x, np.arange(40)) if labels else x

    def batches(size):
        return tf.data.Dataset.from_tensor_slices(data).batch(size)

    trunk = _trunk()
    path = tmp_path / "c"
    cache = features.DiskCache(path, fingerprint_batches=fingerprint_batches)
    features.extract(trunk, batches(8), (6,), cache=cache)
    meta_path = path / "teacherclass-cache.json"
    meta = json.loads(meta_path.read_text())
    del meta["fingerprint_samples"]
    meta["format"] = 4  # hashed batch by batch
    meta["fingerprint"] = features.fingerprint(
        trunk, batches(8), fingerprint_batches
    )
    meta_path.write_text(json.dumps(meta))
    feats = features.extract(trunk, batches(8), (6,), cache=path)
    assert feats.num_samples == 40
    if how is None:
        feats = features.extract(trunk, batches(10), (6,), cache=path)
        assert feats.num_samples == 40
        return
    with pytest.raises(
        ValueError,
        match=rf"different teacher or dataset \(a cache of format 4 or older "
        rf"{how} hashed whole batches: it reads only at the batch size it "
        r"was written with\)",
    ):
        features.extract(trunk, batches(10), (6,), cache=path)


class _RowMean(keras.layers.Layer):
    """The mean of each (ragged) row, as one feature."""

    def call(self, x):
        return tf.reduce_mean(tf.cast(x, "float32"), axis=1)[:, None]


def test_a_ragged_input_writes_and_reads_its_disk_cache(tmp_path):
    # Ragged samples are hashed row by row: the same rows at another
    # batch size read the cache, the same values split otherwise do not.
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", ragged=True)
    trunk = keras.Model(tokens, keras.layers.Dense(4)(_RowMean()(tokens)))

    def batches(rows, size):
        rows = tf.ragged.constant(rows)
        return tf.data.Dataset.from_tensor_slices(rows).batch(size)

    rows = [[1, 2], [3], [4, 5, 6], [7]] * 3
    path = tmp_path / "c"
    feats = features.extract(trunk, batches(rows, 4), (2, 2), cache=path)
    assert feats.num_samples == 12
    for size in (4, 5):
        feats = features.extract(trunk, batches(rows, size), (2, 2), cache=path)
        assert feats.num_samples == 12
    resplit = [[1], [2, 3], [4, 5, 6], [7]] + rows[4:]
    with pytest.raises(ValueError, match="different teacher or dataset"):
        features.extract(trunk, batches(resplit, 4), (2, 2), cache=path)


def test_a_string_input_reads_its_disk_cache(tmp_path):
    # Strings are hashed by their bytes (NumPy holds them as objects,
    # whose raw bytes are pointers that change from run to run).
    vectorize = keras.layers.TextVectorization(
        max_tokens=8, output_mode="count"
    )
    vectorize.adapt(["a b c", "d e f"])
    keras.utils.set_random_seed(0)
    text = keras.Input((), dtype="string")
    trunk = keras.Model(text, keras.layers.Dense(4)(vectorize(text)))
    lines = np.array(["a b", "c d", "e f", "a f"] * 3)

    def batches(lines, size):
        return tf.data.Dataset.from_tensor_slices(lines).batch(size)

    path = tmp_path / "c"
    features.extract(trunk, batches(lines, 4), (2, 2), cache=path)
    for size in (4, 5):
        feats = features.extract(
            trunk, batches(lines, size), (2, 2), cache=path
        )
        assert feats.num_samples == 12
    # The same characters, cut otherwise: other samples.
    other = lines.copy()
    other[:2] = ["a bc", " d"]
    with pytest.raises(ValueError, match="different teacher or dataset"):
        features.extract(trunk, batches(other, 4), (2, 2), cache=path)


def test_the_fingerprint_tells_samples_apart_by_their_shapes():
    # Variable-length samples with the same values in the same order:
    # [[1, 2], [3, 4]], [[5, 6]] against [[1, 2]], [[3, 4], [5, 6]].
    inputs = keras.Input((None, 2))
    trunk = keras.Model(inputs, keras.layers.Dense(3)(inputs))

    def batches(*lengths):
        values = np.arange(6, dtype="float32").reshape(3, 2)
        ends = np.cumsum(lengths)
        samples = [values[e - n : e][None] for n, e in zip(lengths, ends)]
        return tf.data.Dataset.from_generator(
            lambda: iter(samples),
            output_signature=tf.TensorSpec((None, None, 2), tf.float32),
        )

    digest = features._sample_fingerprint(trunk, batches(2, 1))[0]
    assert features._sample_fingerprint(trunk, batches(2, 1))[0] == digest
    assert features._sample_fingerprint(trunk, batches(1, 2))[0] != digest


def test_a_sparse_input_is_refused_by_a_disk_cache(tmp_path):
    sparse = tf.sparse.SparseTensor([[0, 1], [2, 3]], [1.0, 2.0], [4, 4])
    batches = tf.data.Dataset.from_tensor_slices(sparse).batch(2)
    with pytest.raises(
        ValueError, match=r"dense or ragged .*SparseTensor.*Received: cache="
    ):
        features.extract(_trunk(), batches, (6,), cache=tmp_path / "c")


def test_an_empty_cache_path_is_refused(tmp_path, monkeypatch):
    # "" wrote into the working directory, and deleted its
    # `features.partial` first.
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "features.partial" / "mine.txt"
    mine.parent.mkdir()
    mine.write_text("the user's")
    _, batches = _batches()
    with pytest.raises(ValueError, match=r"^`path` .* Received: path=''$"):
        features.DiskCache("")
    with pytest.raises(ValueError, match=r"^`cache` .* Received: cache=''$"):
        features.extract(_trunk(), batches, (6,), cache="")
    assert mine.read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.partial"]


def test_only_an_interrupted_write_of_the_cache_is_deleted(tmp_path):
    _, batches = _batches()
    # A `features.partial` of the user's, alone in the directory: kept.
    mine = tmp_path / "c" / "features.partial" / "mine.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("the user's")
    with pytest.raises(ValueError, match="something else and is left"):
        features.extract(_trunk(), batches, (6,), cache=tmp_path / "c")
    assert mine.read_text() == "the user's"
    # What `Dataset.save` wrote before an interruption: written over.
    partial = tmp_path / "d" / "features.partial"
    tf.data.Dataset.range(3).save(str(partial))
    feats = features.extract(_trunk(), batches, (6,), cache=tmp_path / "d")
    assert feats.num_samples == 20
    assert not partial.exists()
