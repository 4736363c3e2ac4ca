import json
import re
import warnings

import keras
import numpy as np
import pytest
from helpers import load_script

from teacherclass import architectures
from teacherclass import conditioning
from teacherclass.conditioning import Conditioning


def _features(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    scales = np.array([10.0, 5.0, 1.0, 0.5, 0.1, 0.01])[:d]
    f = (rng.normal(size=(n, d)) * scales) @ mix + 3.0
    return np.maximum(f, 0.0).astype("float32")  # ReLU-like


def _head(d=6, classes=3, dropout=True):
    inputs = keras.Input((d,))
    x = keras.layers.Dropout(0.5)(inputs) if dropout else inputs
    x = keras.layers.Dense(5, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


@pytest.mark.parametrize("kind", conditioning.KINDS)
@pytest.mark.parametrize("balance", [False, True])
def test_round_trip_and_statistics(kind, balance):
    f = _features()
    c = Conditioning.fit(f, kind, chunks=(3, 3), balance=balance)
    t = c.transform(f)
    np.testing.assert_allclose(c.inverse(t), f, atol=1e-3)
    np.testing.assert_allclose(t.mean(0), 0.0, atol=1e-3)
    if kind in ("standardize", "whiten"):
        np.testing.assert_allclose(t.std(0), 1.0, atol=1e-2)
    if kind != "standardize":  # decorrelated
        cov = np.cov(t, rowvar=False)
        off = cov - np.diag(np.diag(cov))
        assert np.abs(off).max() < 1e-2 * np.abs(np.diag(cov)).max()


def test_batches_give_the_same_statistics_as_the_array():
    f = _features()
    whole = Conditioning.fit(f, "pca")
    batched = Conditioning.fit(
        (f[i : i + 64] for i in range(0, 400, 64)), "pca"
    )
    np.testing.assert_allclose(whole.mean, batched.mean, atol=1e-9)
    np.testing.assert_allclose(
        np.abs(whole.matrix), np.abs(batched.matrix), atol=1e-6
    )


def test_balanced_chunks_share_the_variance():
    f = _features()
    plain = Conditioning.fit(f, "pca").transform(f).var(0)
    balanced = Conditioning.fit(f, "pca", (3, 3), balance=True)
    var = balanced.transform(f).var(0)
    share = [var[:3].sum(), var[3:].sum()]
    assert plain[:3].sum() > 10 * plain[3:].sum()  # unbalanced before
    assert max(share) < 1.5 * min(share)


@pytest.mark.parametrize("kind", conditioning.KINDS)
@pytest.mark.parametrize("dropout", [False, True])
def test_folded_head_on_targets_equals_head_on_features(kind, dropout):
    keras.utils.set_random_seed(0)
    f = _features()
    head = _head(dropout=dropout)
    c = Conditioning.fit(f, kind, chunks=(3, 3), balance=True)
    folded = c.fold(head)
    np.testing.assert_allclose(
        folded.predict(c.transform(f), verbose=0),
        head.predict(f, verbose=0),
        rtol=1e-4,
        atol=1e-4,
    )
    # The head itself is untouched.
    assert folded.layers[-1] is not head.layers[-1]


def test_fold_into_a_1x1_conv_on_feature_maps():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    f = np.maximum(rng.normal(1.0, 2.0, (8, 4, 4, 6)), 0).astype("float32")
    inputs = keras.Input((4, 4, 6))
    head = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    c = Conditioning.fit(f, "whiten")
    np.testing.assert_allclose(
        c.fold(head).predict(c.transform(f), verbose=0),
        head.predict(f, verbose=0),
        atol=1e-4,
    )


def test_target_bounds_clip_like_the_features():
    f = _features()
    c = Conditioning.fit(f, "standardize", (3, 3), balance=True)
    low, high = c.target_bounds((0.0, None))
    assert high is None
    t = c.transform(f)
    np.testing.assert_allclose(t.min(0), low, atol=1e-5)  # ReLU zeros
    clipped = np.maximum(t - 1.0, low)  # a clip in target space ...
    np.testing.assert_allclose(  # ... is the clip in feature space
        c.inverse(clipped),
        np.maximum(c.inverse(t - 1.0), 0.0),
        atol=1e-4,
    )


def test_errors():
    f = _features()
    with pytest.raises(ValueError, match="Received: kind='zca'"):
        Conditioning.fit(f, "zca")
    with pytest.raises(ValueError, match="Received: chunks=None"):
        Conditioning.fit(f, "pca", balance=True)
    with pytest.raises(ValueError, match="mix"):
        Conditioning.fit(f, "pca").target_bounds((0.0, None))
    inputs = keras.Input((6,))
    bad = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    with pytest.raises(ValueError, match="first layer"):
        Conditioning.fit(f, "pca").fold(bad)


def _skip_teacher():
    """rep -> Add([rep, Dense(rep)]) -> softmax: `rep` feeds two layers."""
    inputs = keras.Input((6,))
    rep = keras.layers.Dense(8, activation="relu", name="rep")(inputs)
    skip = keras.layers.Add(name="skip")(
        [rep, keras.layers.Dense(8, name="branch")(rep)]
    )
    outputs = keras.layers.Dense(3, activation="softmax")(skip)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("kind", ["standardize", "pca"])
def test_a_representation_with_two_readers_is_refused(kind):
    # Folding rewrites "branch" only: "skip" would add targets to it.
    from teacherclass import TeacherClass
    from teacherclass import towers

    with pytest.raises(
        ValueError,
        match=r"the representation \(the head's input\) feeds the layers "
        r"\['(skip|branch)', '(skip|branch)'\].*Use conditioning=None "
        rf"with this head. Received: conditioning='{kind}'",
    ):
        TeacherClass(
            _skip_teacher(),
            feature_layer="rep",
            num_students=2,
            student=towers.DenseTower(1, hidden=(8,)),
            conditioning=kind,
            clip=None,
        )
    # Without conditioning the head is used as it is.
    TeacherClass(
        _skip_teacher(),
        feature_layer="rep",
        num_students=2,
        student=towers.DenseTower(1, hidden=(8,)),
        clip=None,
    )


def test_a_reader_behind_dropout_must_be_the_only_one():
    inputs = keras.Input((6,))
    dropped = keras.layers.Dropout(0.5, name="drop")(inputs)
    x = keras.layers.Dense(6, name="dense")(dropped)
    x = keras.layers.Add(name="skip")([dropped, x])
    head = keras.Model(inputs, keras.layers.Dense(3)(x))
    with pytest.raises(
        ValueError, match=r"the output of 'drop' feeds the layers"
    ):
        conditioning.check_foldable(head, "standardize")
    with pytest.raises(ValueError, match="Received: conditioning='pca'"):
        Conditioning.fit(_features(), "pca").fold(head)


def test_a_folded_layer_called_twice_is_refused():
    inputs = keras.Input((6,))
    shared = keras.layers.Dense(6, name="shared")
    head = keras.Model(inputs, shared(shared(inputs)))
    with pytest.raises(
        ValueError, match="'shared', which the head calls 2 times"
    ):
        conditioning.check_foldable(head, "standardize")


def test_the_library_heads_stay_foldable():
    from teacherclass import segmentation
    from teacherclass import teacher as teacher_lib

    for teacher in (
        architectures.mnist_teacher(),
        architectures.digits_teacher(),
        architectures.cifar10_teacher(),
        architectures.cifar10_fast_teacher(),
        segmentation.unet_teacher(),
    ):
        layer = teacher_lib.get_feature_layer(teacher)
        head = teacher_lib.clone_head(teacher, layer)
        conditioning.check_foldable(head, "standardize")


@pytest.mark.parametrize("balance", ["no", 1, None, "False"])
def test_balance_must_be_a_bool(balance):
    with pytest.raises(
        ValueError,
        match=r"`balance_chunks` must be True or False. "
        rf"Received: balance_chunks={re.escape(repr(balance))}$",
    ):
        conditioning.resolve_order(
            balance, None, "balance_chunks", "chunk_order"
        )
    with pytest.raises(ValueError, match="Received: balance="):
        Conditioning.fit(_features(), "standardize", (3, 3), balance=balance)


def test_numpy_bools_are_bools():
    assert conditioning.resolve_order(np.bool_(True), None, "b", "o") == (
        "variance"
    )
    assert conditioning.resolve_order(np.bool_(False), None, "b", "o") is None


def test_teacher_class_refuses_a_string_balance_chunks():
    from teacherclass import TeacherClass
    from teacherclass import towers

    with pytest.raises(
        ValueError,
        match="`balance_chunks` must be True or False. "
        "Received: balance_chunks='no'",
    ):
        TeacherClass(
            _skip_teacher(),
            feature_layer="skip",
            num_students=2,
            student=towers.DenseTower(1, hidden=(4,)),
            conditioning="standardize",
            balance_chunks="no",
        )


def test_config_round_trip():
    c = Conditioning.fit(_features(), "whiten", (3, 3), balance=True)
    again = Conditioning(**c.get_config())
    np.testing.assert_array_equal(again.matrix, c.matrix)
    assert again.kind == "whiten" and again.balance


def _grouped_features(n=2000, groups=3, size=4, seed=0):
    """Features in `groups` planted groups of `size` (each a noisy copy of
    one factor), shuffled; returns them and each feature's group."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, groups))
    f = np.repeat(z, size, axis=1) + 0.3 * rng.normal(size=(n, groups * size))
    scales = rng.uniform(0.1, 10.0, size=groups * size)
    perm = rng.permutation(groups * size)
    truth = np.repeat(np.arange(groups), size)[perm]
    return (f * scales)[:, perm].astype("float32"), truth


def test_correlated_order_recovers_planted_groups():
    f, truth = _grouped_features()
    covariance = np.cov(f, rowvar=False)
    order = conditioning.correlated_order(covariance, (4, 4, 4))
    assert sorted(order.tolist()) == list(range(12))
    found = [set(truth[order[i : i + 4]].tolist()) for i in (0, 4, 8)]
    assert all(len(groups) == 1 for groups in found)
    assert conditioning.within_chunk_share(covariance, order, (4, 4, 4)) > 0.95
    in_place = conditioning.within_chunk_share(
        covariance, np.arange(12), (4, 4, 4)
    )
    assert in_place < 0.6


def _benchmark(name):
    """The script `benchmarks/<name>.py`, imported as a module."""
    return load_script(f"benchmarks/{name}.py")


def _speed_benchmark():
    """benchmarks/correlated_order_speed.py, which keeps the first
    (exhaustive) `correlated_order` as `reference_order`."""
    return _benchmark("correlated_order_speed")


@pytest.mark.parametrize(
    "d, chunks, seed",
    [(96, (24,) * 4, 0), (120, (50, 40, 30), 1), (160, (20,) * 8, 2)],
)
def test_correlated_order_makes_the_exhaustive_search_swaps(d, chunks, seed):
    # The pruned search finds the best swap of all d * d pairs at every
    # step: the same partition as scoring them all.
    bench = _speed_benchmark()
    covariance = bench.synthetic_covariance(d, seed=seed, samples=500)
    order = conditioning.correlated_order(covariance, chunks)
    reference = bench.reference_order(covariance, chunks)
    assert bench.partition(order, chunks) == bench.partition(reference, chunks)
    share = conditioning.within_chunk_share(covariance, order, chunks)
    assert share > conditioning.within_chunk_share(
        covariance, np.arange(d), chunks
    )


def test_correlated_order_speed_alternates_which_runs_first(
    tmp_path, monkeypatch
):
    bench = _speed_benchmark()
    calls = []

    def logged(name, function):
        def call(covariance, chunks):
            calls.append(name)
            return function(covariance, chunks)

        return call

    library = logged("library", conditioning.correlated_order)
    monkeypatch.setattr(bench.conditioning, "correlated_order", library)
    monkeypatch.setattr(
        bench, "reference_order", logged("reference", bench.reference_order)
    )
    out = tmp_path / "speed.json"
    argv = ["--widths", "16", "--library-only", "--rounds", "3"]
    (row,) = bench.main([*argv, "--out", str(out)])["rows"]
    assert calls == [
        "library",
        "reference",
        "reference",
        "library",
        "library",
        "reference",
    ]
    assert row["first"] == ["library", "reference", "library"]
    assert row["same_partition"]


def test_correlated_order_of_one_chunk_keeps_every_coordinate():
    covariance = np.cov(_grouped_features()[0], rowvar=False)
    order = conditioning.correlated_order(covariance, (12,))
    assert sorted(order.tolist()) == list(range(12))


@pytest.mark.parametrize("seed", range(5))
def test_best_swap_is_the_best_of_all_pairs(seed):
    # Large affinities make the best movers poor partners: the best pair
    # lies beyond the first `top` movers scored.
    rng = np.random.default_rng(seed)
    d = 100
    affinity = rng.uniform(0.0, 0.5, size=(d, d))
    affinity = (affinity + affinity.T) / 2
    move = rng.normal(size=(d, 2))
    group = rng.permutation(np.repeat([0, 1], d // 2))
    a, b = np.flatnonzero(group == 0), np.flatnonzero(group == 1)
    leaders = (a[np.argsort(-move[a, 1])[:20]], b[np.argsort(-move[b, 0])[:20]])
    affinity[np.ix_(*leaders)] = affinity[np.ix_(*leaders[::-1])] = 5.0
    gain, i, j = conditioning._best_swap(affinity, move, group, 0, 1)
    every = move[a, 1][:, None] + move[b, 0][None, :]
    every -= 2 * affinity[np.ix_(a, b)]
    assert gain == pytest.approx(every.max())
    assert group[i] == 0 and group[j] == 1
    assert move[i, 1] + move[j, 0] - 2 * affinity[i, j] == pytest.approx(gain)


def test_effective_rank_counts_independent_directions():
    effective_rank = _benchmark("chunk_order_share").effective_rank
    assert effective_rank(np.eye(4)) == pytest.approx(4.0)
    # Two copies of one direction and a constant coordinate: one.
    one = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    assert effective_rank(one) == pytest.approx(1.0)
    assert effective_rank(np.zeros((3, 3))) == 0.0


def test_chunk_order_share_reports_each_order():
    bench = _benchmark("chunk_order_share")
    f, _ = _grouped_features()
    covariance = np.cov(f, rowvar=False)
    report = bench.order_report(f, covariance, (4, 4, 4))
    assert set(report) == {"contiguous", *conditioning.ORDERS}
    by_correlation = report["correlation"]
    # Each chunk holds one planted group: one noisy direction each (1.35
    # at this noise), where chunks mixing 3 groups need about 3.
    assert by_correlation["within_chunk_share"] > 0.95
    assert all(r < 1.5 for r in by_correlation["chunk_effective_ranks"])
    assert report["contiguous"]["within_chunk_share"] < 0.6
    assert all(r > 2.5 for r in report["contiguous"]["chunk_effective_ranks"])


def test_correlation_order_standardizes_and_groups(tmp_path):
    f, truth = _grouped_features()
    c = Conditioning.fit(f, "standardize", (4, 4, 4), order="correlation")
    assert c.order == "correlation" and not c.balance and c.diagonal
    t = c.transform(f)
    np.testing.assert_allclose(t.std(0), 1.0, atol=1e-2)
    np.testing.assert_allclose(c.inverse(t), f, rtol=1e-4, atol=1e-3)
    # Target j is feature `features[j]`; every chunk holds one group.
    features = np.argmax(np.abs(c.matrix), axis=0)
    assert all(len(set(truth[features[i : i + 4]])) == 1 for i in (0, 4, 8))
    again = Conditioning(**c.get_config())
    assert again.order == "correlation"
    np.testing.assert_array_equal(again.matrix, c.matrix)


def test_chunk_order_errors():
    f, _ = _grouped_features()
    with pytest.raises(ValueError, match="Received: kind='pca'"):
        Conditioning.fit(f, "pca", (4, 4, 4), order="correlation")
    with pytest.raises(ValueError, match="Received: order='size'"):
        Conditioning.fit(f, "standardize", (4, 4, 4), order="size")
    with pytest.raises(ValueError, match="Received: chunks=None"):
        Conditioning.fit(f, "standardize", order="correlation")
    with pytest.raises(
        ValueError, match="Received: balance=True, order='correlation'"
    ):
        Conditioning.fit(f, "standardize", (4, 4, 4), True, "correlation")
    with pytest.raises(ValueError, match="must sum to the covariance's"):
        conditioning.correlated_order(np.eye(12), (4, 4))


def test_student_files_of_the_balance_flag_still_load(tmp_path):
    # conditioning.npz before chunk orders: a `balance` flag.
    from teacherclass import student_files

    c = Conditioning.fit(_features(), "standardize", (3, 3), balance=True)
    path = tmp_path / "conditioning.npz"
    np.savez(path, mean=c.mean, matrix=c.matrix, kind=c.kind, balance=True)
    loaded = student_files._load_conditioning(path)
    assert loaded.order == "variance" and loaded.balance
    assert loaded.digest() == c.digest()


def test_chunk_order_share_writes_a_row_per_order(tmp_path):
    # An untrained digits teacher: its features correlate all the same.
    bench = _benchmark("chunk_order_share")
    teacher = architectures.for_dataset("digits").teacher()
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    out = tmp_path / "share.json"
    argv = ["--dataset", "digits", "--teacher", str(path), "--out", str(out)]
    rows = bench.main([*argv, "--samples", "300", "--students", "2", "4"])
    assert [(r["students"], r["order"]) for r in rows] == [
        (n, order)
        for n in (2, 4)
        for order in ("contiguous", "variance", "correlation")
    ]
    assert {r["samples"] for r in rows} == {270}  # 10% held out
    by = {(r["students"], r["order"]): r for r in rows}
    for n in (2, 4):
        assert len(by[n, "correlation"]["chunk_effective_ranks"]) == n
        assert (
            by[n, "correlation"]["within_chunk_share"]
            >= by[n, "contiguous"]["within_chunk_share"]
        )
    # Measured again: its rows replace the first ones.
    bench.main([*argv, "--samples", "300", "--students", "4"])
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "chunk_order_share"
    assert [r["students"] for r in saved["runs"]] == [2, 2, 2, 4, 4, 4]
    # Other settings of the same teacher add rows; none is lost.
    bench.main([*argv, "--samples", "200", "--students", "4"])
    saved = json.loads(out.read_text())
    assert [(r["students"], r["samples"]) for r in saved["runs"]] == [
        *[(2, 270)] * 3,
        *[(4, 270)] * 3,
        *[(4, 180)] * 3,
    ]


def test_chunk_order_share_counts_the_constant_features(tmp_path):
    # A representation of 8 ReLUs, 3 of them dead (no weights, a
    # negative bias): constant on every sample.
    inputs = keras.Input((8, 8, 1))
    rep = keras.layers.Dense(8, activation="relu", name="representation")
    outputs = keras.layers.Dense(10, activation="softmax")(
        rep(keras.layers.Flatten()(inputs))
    )
    teacher = keras.Model(inputs, outputs)
    kernel, bias = rep.get_weights()
    kernel[:, :3], bias[:3] = 0.0, -1.0
    rep.set_weights([kernel, bias])
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    argv = ["--dataset", "digits", "--teacher", str(path), "--samples", "300"]
    rows = _benchmark("chunk_order_share").main(
        [*argv, "--students", "2", "--out", str(tmp_path / "share.json")]
    )
    assert {r["constant_features"] for r in rows} == {3}
    assert {r["width"] for r in rows} == {8}


def test_a_chunk_of_constant_features_is_warned_about():
    # Three groups fill three chunks; the search leaves the 4 constant
    # features (dead ReLUs) to the fourth, whose student learns nothing.
    f, _ = _grouped_features()
    f = np.concatenate([np.zeros((len(f), 4), "float32"), f], axis=1)
    chunks = (4, 4, 4, 4)
    with pytest.warns(UserWarning, match=r"Chunk 3 of 4 \(targets 12-15\)"):
        c = Conditioning.fit(f, "standardize", chunks, order="correlation")
    assert sorted(np.argmax(np.abs(c.matrix[:, 12:]), axis=0)) == [0, 1, 2, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Conditioning.fit(f, "standardize", chunks, order="variance")


def _teacher_with_head(head_layer, rep_width=6, rep_layer=None):
    """inputs (4,) -> "rep" -> `head_layer` -> softmax."""
    inputs = keras.Input((4,))
    rep = rep_layer or keras.layers.Dense(
        rep_width, activation="relu", name="rep"
    )
    x = head_layer(rep(inputs))
    return keras.Model(inputs, keras.layers.Activation("softmax")(x))


def test_a_head_without_bias_is_refused_when_the_class_is_built():
    # Its bias absorbs the features' mean: refused before any training,
    # not when fit_students or compose() first folds it.
    from teacherclass import TeacherClass

    teacher = _teacher_with_head(
        keras.layers.Dense(3, use_bias=False, name="logits")
    )
    message = (
        r"first layer 'logits', which has none \(use_bias=False\). Use "
        r"conditioning=None with this head. Received: conditioning='{}'"
    )
    for kind in conditioning.KINDS:
        with pytest.raises(ValueError, match=message.format(kind)):
            TeacherClass(teacher, num_students=2, conditioning=kind)
    TeacherClass(teacher, num_students=2)  # used as it is
    inputs = keras.Input((6,))
    head = keras.Model(
        inputs, keras.layers.Dense(3, use_bias=False, name="logits")(inputs)
    )
    with pytest.raises(ValueError, match=message.format("pca")):
        Conditioning.fit(_features(), "pca").fold(head)


def test_a_channels_first_1x1_conv_is_refused():
    # It mixes axis 1, not the last axis the conditioning works along.
    inputs = keras.Input((6, 3, 3))
    conv = keras.layers.Conv2D(4, 1, data_format="channels_first", name="c1")
    head = keras.Model(inputs, conv(inputs))
    with pytest.raises(
        ValueError,
        match=r"a 1x1 Conv2D with data_format='channels_last' .*Use "
        r"conditioning=None with this head. Received: 'c1' with "
        r"data_format='channels_first'$",
    ):
        conditioning.check_foldable(head, "standardize")


@pytest.mark.parametrize("change", ["lora", "int8"])
def test_a_lora_or_quantized_first_layer_is_refused(change):
    # Their kernel is several weights: folding rewrote one and crashed.
    inputs = keras.Input((6,))
    dense = keras.layers.Dense(3, name="out")
    head = keras.Model(inputs, dense(inputs))
    if change == "lora":
        dense.enable_lora(2)
        what = "has LoRA enabled"
    else:
        dense.quantize("int8")
        what = r"is quantized \('int8'\)"
    with pytest.raises(
        ValueError,
        match=rf"layer 'out', which {what}.*Use conditioning=None with "
        r"this head.* Received: conditioning='standardize'$",
    ):
        Conditioning.fit(_features(), "standardize").fold(head)


def test_a_diagonal_pca_does_not_clip_in_the_composed_model():
    # A 1-wide representation: the "pca" matrix is [[1.0]], diagonal. The
    # class does not clip a rotation's targets; the composed model must
    # not either.
    from teacherclass import TeacherClass

    keras.utils.set_random_seed(0)
    rep = keras.layers.Dense(1, activation="relu", name="rep")
    teacher = _teacher_with_head(keras.layers.Dense(3), rep_layer=rep)
    rep.set_weights([np.ones((4, 1)), np.zeros(1)])
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    tc = TeacherClass(teacher, num_students=1, conditioning="pca")
    assert tc.clip == (0.0, None)
    tc.fit_students(x, epochs=1, verbose=0)
    assert tc.target_conditioning().diagonal
    assert tc.target_head()[1] is None
    # Students far below the representation's range (features < 0).
    weights = tc.students[0].get_weights()
    weights[-1] = weights[-1] - 100.0
    tc.students[0].set_weights(weights)
    np.testing.assert_allclose(
        tc.compose().predict(x[:4], verbose=0),
        tc.predict(x[:4], verbose=0),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"chunk_order": "variance"}, "chunk_order='variance'"),
        ({"balance_chunks": True}, "balance_chunks=True"),
        ({"chunk_order": "correlation"}, "chunk_order='correlation'"),
    ],
)
def test_an_order_without_conditioning_names_the_arguments_passed(
    kwargs, received
):
    from teacherclass import TeacherClass

    with pytest.raises(
        ValueError,
        match=rf"^`{received}` orders the conditioned coordinates: pass a "
        rf"`conditioning` too.*Received: {received}, conditioning=None$",
    ):
        TeacherClass(_skip_teacher(), num_students=2, **kwargs)


def test_too_few_varying_features_for_the_chunks_is_warned_about():
    # One varying feature of 4, two chunks: order="variance" is set, so
    # the warning must not advise it.
    rng = np.random.default_rng(0)
    f = np.c_[rng.random((50, 1)), np.zeros((50, 3))].astype("float32")
    with pytest.warns(UserWarning) as record:
        Conditioning.fit(f, "standardize", (2, 2), order="variance")
    (message,) = [str(w.message) for w in record]
    assert "Only 1 of the 4 features vary, fewer than the 2 chunks" in (message)
    assert "use fewer students, or another feature_layer" in message
    assert "gives every chunk an equal share" not in message


def test_statistics_set_on_a_class_without_conditioning_are_refused():
    from teacherclass import TeacherClass

    tc = TeacherClass(_skip_teacher(), feature_layer="skip", num_students=2)
    with pytest.raises(
        ValueError,
        match=r"^This class has no target conditioning "
        r"\(conditioning=None\).*Received: a 'standardize' conditioning$",
    ):
        tc.set_target_conditioning(
            Conditioning.fit(np.random.rand(50, 8), "standardize")
        )
