"""teacherclass.views: the cached teacher targets of augmented views."""

import keras
import numpy as np
import pytest

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass import objectives
from teacherclass import training
from teacherclass import views


def _teacher():
    return architectures.cifar10_fast_teacher((4, 8, 8), input_shape=(8, 8, 3))


def _x(n=12):
    return np.random.default_rng(0).random((n, 8, 8, 3), dtype="float32")


def _reference(x, shifts, flips, m):
    padded = np.pad(x, ((0, 0), (m, m), (m, m), (0, 0)), mode="symmetric")
    out = []
    for img, (dy, dx), flip in zip(padded, shifts, flips):
        crop = img[m + dy : m + dy + x.shape[1], m + dx : m + dx + x.shape[2]]
        out.append(crop[:, ::-1] if flip else crop)
    return np.stack(out)


def test_shift_flip_is_a_reflect_padded_crop_and_flip():
    x = _x(6)
    shifts = np.array([[0, 0], [2, -2], [-2, 1], [1, 2], [-1, -1], [2, 2]])
    flips = np.array([False, True, False, True, True, False])
    got = views.shift_flip(x, shifts, flips, max_shift=2)
    np.testing.assert_array_equal(got, _reference(x, shifts, flips, 2))


def test_draw_keeps_view_zero_clean_and_shifts_bounded():
    shifts, flips = views.draw(100, 3, max_shift=4, seed=1)
    assert shifts.shape == (4, 100, 2) and flips.shape == (4, 100)
    assert not shifts[0].any() and not flips[0].any()
    assert np.abs(shifts).max() == 4
    assert 0.3 < flips[1:].mean() < 0.7


def test_targets_equal_the_teacher_on_the_augmented_images(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=2, seed=3)
    assert cache.complete and cache.num_views == 2
    rep = teacher.get_layer("representation").output
    logits = teacher.get_layer("logits").output
    both = keras.Model(teacher.inputs, [rep, logits])
    for view in range(3):
        images = cache.images(x, view)
        want_rep, want_logits = both(images, training=False)
        np.testing.assert_allclose(cache.targets(view), want_rep, rtol=1e-6)
        np.testing.assert_allclose(cache.logits(view), want_logits, rtol=1e-6)
    np.testing.assert_array_equal(cache.images(x, 0), x)  # view 0: clean
    assert not np.array_equal(cache.images(x, 1), x)


def test_epoch_reads_view_epoch_mod_views_plus_one(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=2)
    assert [cache.view_for_epoch(e) for e in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    images, targets = zip(*cache.dataset(x, epoch=4, batch_size=5, seed=0))
    images, targets = np.concatenate(images), np.concatenate(targets)
    # Shuffled, but every row pairs view 1's image with its own target.
    order = [
        int(np.argmin(np.abs(cache.targets(1) - t).sum(-1))) for t in targets
    ]
    assert sorted(order) == list(range(len(x)))
    np.testing.assert_array_equal(images, cache.images(x, 1).numpy()[order])
    again = np.concatenate([a for a, _ in cache.dataset(x, 4, 5, seed=0)])
    np.testing.assert_array_equal(images, again)  # the same order again


def test_build_resumes_after_a_stop_to_the_same_cache(tmp_path, capsys):
    teacher, x = _teacher(), _x()

    def stop_after_view_1(view):
        if view == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        views.ViewCache.build(
            tmp_path / "a", teacher, x, 3, after_view=stop_after_view_1
        )
    partial = views.ViewCache(tmp_path / "a")
    assert partial.meta["views_done"] == 2 and not partial.complete
    capsys.readouterr()
    # The progress names the views still to run, each with its bar.
    resumed = views.ViewCache.build(
        tmp_path / "a", teacher, x, 3, batch_size=5, verbose=1
    )
    out = capsys.readouterr().out
    assert "View 0/3" not in out and "View 1/3" not in out
    assert "View 2/3 (shifted, flipped)" in out and "View 3/3" in out
    assert "3/3" in out.split("View 3/3")[1]  # 12 images: 3 batches of 5
    whole = views.ViewCache.build(tmp_path / "b", teacher, x, 3, verbose=0)
    assert capsys.readouterr().out == ""
    for view in range(4):
        np.testing.assert_array_equal(
            resumed.targets(view), whole.targets(view)
        )


def test_bad_arguments_and_mismatched_caches_are_refused(tmp_path):
    teacher, x = _teacher(), _x()
    with pytest.raises(ValueError, match="num_views=0"):
        views.ViewCache.build(tmp_path, teacher, x, 0)
    with pytest.raises(ValueError, match="Received: verbose=True"):
        views.ViewCache.build(tmp_path, teacher, x, 1, verbose=True)
    with pytest.raises(ValueError, match="No view cache"):
        views.ViewCache(tmp_path / "none")
    views.ViewCache.build(tmp_path, teacher, x, 1, logits_layer="logits")
    views.ViewCache.build(tmp_path, teacher, x, 1)  # "auto" finds "logits"
    with pytest.raises(ValueError, match="other num_views"):
        views.ViewCache.build(tmp_path, teacher, x, 2)
    with pytest.raises(ValueError, match="other teacher"):
        views.ViewCache.build(tmp_path, _teacher(), x, 1)
    with pytest.raises(ValueError, match="other inputs"):
        views.ViewCache.build(tmp_path, teacher, x[::-1], 1)


def test_build_checks_its_arguments_before_writing_anything(tmp_path):
    import tensorflow as tf

    teacher, x = _teacher(), _x()
    target = tmp_path / "views"
    for kwargs, shown in (
        (dict(seed=None), "Received: seed=None"),
        (dict(seed=-1), "Received: seed=-1"),
        (dict(batch_size=0), "Received: batch_size=0"),
        (dict(max_shift=8), "Received: max_shift=8"),
        (dict(x=x[..., 0]), r"Received: x.shape=\(12, 8, 8\)"),
        (
            dict(x=tf.data.Dataset.from_tensor_slices(x).batch(4)),
            "Received: x of type",
        ),
    ):
        args = dict(x=x, num_views=1, verbose=0)
        args.update(kwargs)
        with pytest.raises(ValueError, match=shown):
            views.ViewCache.build(target, teacher, **args)
    assert not target.exists()
    # A NumPy integer seed is an integer (stored as one).
    cache = views.ViewCache.build(
        target, teacher, x, 1, seed=np.int64(3), verbose=0
    )
    assert cache.meta["seed"] == 3


def test_build_never_writes_among_the_users_files(tmp_path):
    teacher, x = _teacher(), _x()
    (tmp_path / "targets_0.npy").write_text("mine")
    with pytest.raises(ValueError, match="holds no view cache"):
        views.ViewCache.build(tmp_path, teacher, x, 1, verbose=0)
    assert [p.name for p in tmp_path.iterdir()] == ["targets_0.npy"]
    assert (tmp_path / "targets_0.npy").read_text() == "mine"


def test_a_cache_of_images_given_as_a_tensor_trains(tmp_path):
    import tensorflow as tf

    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(
        tmp_path, teacher, tf.constant(x), 1, verbose=0
    )
    assert cache.meta["inputs"] == views.inputs_digest(x)
    tc = _class(teacher)
    for images in (x, tf.constant(x)):
        history = tc.fit_students(images, views=cache, verbose=0)
        assert np.isfinite(history.history["loss"][0])


def test_a_tensor_built_cache_of_the_previous_version_still_matches(
    tmp_path,
):
    import hashlib

    import tensorflow as tf

    x = _x()
    # The previous version's digest of a tensor: TensorFlow's dtype name.
    h = hashlib.sha256(f"{x.shape} {tf.constant(x).dtype}".encode())
    for i in np.linspace(0, len(x) - 1, len(x)).astype(int):
        h.update(np.ascontiguousarray(x[i]).tobytes())
    old = h.hexdigest()[:16]
    assert old != views.inputs_digest(x)
    assert views._inputs_match(x, old)
    assert views._inputs_match(tf.constant(x), old)
    assert not views._inputs_match(x[::-1], old)


def test_a_cache_of_another_format_is_refused_by_name(tmp_path):
    import json

    teacher, x = _teacher(), _x()
    views.ViewCache.build(tmp_path, teacher, x, 1, verbose=0)
    meta = json.loads((tmp_path / "views.json").read_text())
    meta["format"] = 1
    (tmp_path / "views.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="another version of teacherclass"):
        views.ViewCache(tmp_path)


def test_dataset_with_logits_pairs_each_image_with_its_view(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=2)
    labels = np.arange(len(x), dtype="int32")
    batches = list(
        cache.dataset(x, 1, 5, seed=0, labels=labels, with_logits=True)
    )
    got = {k: np.concatenate([t[k] for _, t in batches]) for k in batches[0][1]}
    assert sorted(got) == ["labels", "logits"]
    # Shuffled; row i holds image labels[i]'s view-1 logits.
    np.testing.assert_array_equal(got["logits"], cache.logits(1)[got["labels"]])
    images = np.concatenate([a for a, _ in batches])
    np.testing.assert_array_equal(
        images, cache.images(x, 1).numpy()[got["labels"]]
    )
    features = list(cache.dataset(x, 2, 5, seed=0, with_logits=True))
    assert sorted(features[0][1]) == ["features", "logits"]
    with pytest.raises(ValueError, match="labels='logits', with_logits=True"):
        cache.dataset(x, 0, 5, labels="logits", with_logits=True)


def test_dataset_serves_the_students_input_through_a_preprocessor(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=1)
    stem = keras.Model(
        teacher.inputs, teacher.get_layer("whitening_gelu").output
    )
    plain = list(cache.dataset(x, 1, 5, seed=0))
    through = list(cache.dataset(x, 1, 5, seed=0, preprocessor=stem))
    assert len(plain) == len(through) == 3
    for (images, targets), (inputs, same) in zip(plain, through):
        assert inputs.shape == images.shape[:-1] + (24,)
        np.testing.assert_allclose(
            inputs, stem(images, training=False), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(same, targets)


# ----------------------------------------------------------------------
# ViewCache.epochs and fit_students(views=...)
# ----------------------------------------------------------------------


def _class(teacher, **kwargs):
    keras.utils.set_random_seed(1)
    return TeacherClass(teacher, num_students=2, **kwargs)


def _weights(tc):
    return [np.array(w) for s in tc.students for w in s.weights]


def test_epochs_serve_in_a_row_what_each_epoch_alone_would(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=2)
    span = list(cache.epochs(x, 5, epochs=5, initial_epoch=2, seed=3))
    alone = [b for e in range(2, 5) for b in cache.dataset(x, e, 5, seed=3)]
    assert len(span) == len(alone) == 9  # ceil(12 / 5) batches per epoch
    for (a, t), (b, u) in zip(span, alone):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(t, u)
    labels = np.arange(len(x))
    (_, first), *_ = cache.epochs(
        x, 12, 1, targets=("features", "logits", "labels"), labels=labels
    )
    assert sorted(first) == ["features", "labels", "logits"]
    in_order = next(
        iter(
            cache.epochs(
                x, 12, 1, targets="labels", labels=labels, shuffle=False
            )
        )
    )
    np.testing.assert_array_equal(in_order[1], labels)
    with pytest.raises(ValueError, match="targets='teacher'"):
        cache.epochs(x, 5, 1, targets="teacher")
    with pytest.raises(ValueError, match="labels=None"):
        cache.epochs(x, 5, 1, targets="labels")
    with pytest.raises(ValueError, match="x of length 11"):
        cache.epochs(x[:11], 5, 1)
    with pytest.raises(ValueError, match="other images than `x`"):
        cache.epochs(x + 1, 5, 1)
    with pytest.raises(ValueError, match="initial_epoch=3, epochs=3"):
        cache.epochs(x, 5, 3, initial_epoch=3)


def test_fit_students_on_views_is_the_per_epoch_loop(tmp_path):
    """One call equals training epoch by epoch on `dataset(x, e)` (what
    reproduce.py's resumable stages do), and the teacher never runs."""
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=2, seed=4)
    tc = _class(teacher)
    history = tc.fit_students(
        x,
        views=cache,
        epochs=4,
        batch_size=5,
        loss="mse",
        optimizer="adam",
        verbose=0,
    )
    assert len(history.history["loss"]) == 4
    assert tc.trained_students == [0, 1]

    reference = _class(teacher)
    trainer = training.for_class(reference)
    trainer.compile(optimizer="adam", loss="mse")
    for epoch in range(4):
        trainer.fit(
            cache.dataset(x, epoch, 5, seed=4),
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            verbose=0,
        )
    for got, want in zip(_weights(tc), _weights(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fit_students_on_views_resumes_at_initial_epoch(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=2)
    whole, resumed = _class(teacher), _class(teacher)
    whole.fit_students(
        x,
        views=cache,
        epochs=5,
        batch_size=4,
        loss="mse",
        optimizer="sgd",
        verbose=0,
    )
    for start, stop in ((0, 2), (2, 5)):
        resumed.fit_students(
            x,
            views=cache,
            epochs=stop,
            initial_epoch=start,
            batch_size=4,
            loss="mse",
            optimizer="sgd",
            verbose=0,
        )
    for got, want in zip(_weights(resumed), _weights(whole)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fit_students_on_views_conditions_on_every_view(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=2)
    tc = _class(teacher, conditioning="standardize")
    y = np.arange(len(x)) % 10
    history = tc.fit_students(
        x,
        y,
        views=cache,
        epochs=1,
        batch_size=6,
        loss=objectives.HeadAware(label_weight=0.5),
        verbose=0,
    )
    assert "student_0_loss" in history.history
    every_view = np.concatenate([cache.targets(v) for v in range(3)])
    np.testing.assert_allclose(
        tc.target_conditioning().mean, every_view.mean(0), rtol=1e-4
    )


def test_a_refused_fit_on_views_leaves_the_statistics_unfitted(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path, teacher, x, num_views=1)
    tc = _class(teacher, conditioning="standardize")
    fit = dict(views=cache, batch_size=6, loss="mse", verbose=0)
    with pytest.raises(ValueError, match="steps_per_execution=3"):
        tc.fit_students(x, steps_per_execution=3, **fit)
    assert not tc.conditioning_fitted
    with pytest.raises(ValueError, match="validation_data=tuple of 1"):
        tc.fit_students(x, validation_data=(x,), **fit)
    assert not tc.conditioning_fitted


def test_fit_students_refuses_views_that_do_not_fit(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(tmp_path / "a", teacher, x, num_views=1)
    tc = _class(teacher)
    cases = [
        (dict(views="cache"), TypeError, "views='cache'"),
        (dict(views=cache, cache=str(tmp_path)), ValueError, "cache="),
        (
            dict(views=cache, augment=keras.layers.RandomFlip()),
            ValueError,
            "augment=",
        ),
        (dict(views=cache, steps_per_epoch=2), ValueError, "steps_per_epoch=2"),
        # 12 images in batches of 4: 3 steps an epoch, not a multiple of 2.
        (
            dict(views=cache, batch_size=4, steps_per_execution=2),
            ValueError,
            "steps of an epoch .3: 12 images",
        ),
        (
            dict(
                views=cache,
                callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path))],
            ),
            ValueError,
            "BackupAndRestore",
        ),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            tc.fit_students(x, verbose=0, **kwargs)
    with pytest.raises(ValueError, match="x of length 11"):
        tc.fit_students(x[:11], views=cache, verbose=0)
    no_logits = views.ViewCache.build(
        tmp_path / "b", teacher, x, num_views=1, logits_layer=None
    )
    with pytest.raises(ValueError, match="holds none"):
        tc.fit_students(x, views=no_logits, loss="head_aware", verbose=0)

    def stop(view):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        views.ViewCache.build(tmp_path / "c", teacher, x, 2, after_view=stop)
    with pytest.raises(ValueError, match="not complete"):
        tc.fit_students(x, views=views.ViewCache(tmp_path / "c"), verbose=0)
    other_layer = views.ViewCache.build(
        tmp_path / "d",
        teacher,
        x,
        1,
        feature_layer="block3_2_gelu",
        logits_layer=None,
    )
    with pytest.raises(ValueError, match="'block3_2_gelu' of shape"):
        tc.fit_students(x, views=other_layer, loss="mse", verbose=0)
    # The teacher trained on after the cache was built: stale targets.
    teacher.get_layer("classifier").kernel.assign(
        teacher.get_layer("classifier").kernel + 1
    )
    with pytest.raises(ValueError, match="another teacher"):
        tc.fit_students(x, views=cache, loss="mse", verbose=0)


def test_a_teacher_with_its_own_layer_names_needs_no_layer_arguments(
    tmp_path,
):
    """The cache finds the representation as `TeacherClass` does and the
    logits before a fused softmax; bad names are refused by name."""
    teacher = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(6, activation="relu", name="features"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )
    x = _x()
    cache = views.ViewCache.build(tmp_path / "a", teacher, x, 1, verbose=0)
    assert cache.meta["feature_layer"] == "features" and cache.meta["logits"]
    # The fused softmax's linear copy is what is stored; a resumed build
    # storing another layer's output is refused.
    assert cache.meta["logits_layer"] == "out_logits"
    with pytest.raises(ValueError, match="other logits_layer"):
        views.ViewCache.build(
            tmp_path / "a", teacher, x, 1, logits_layer="features"
        )
    head = teacher.get_layer("out")
    images = cache.images(x, 1)
    features = keras.Model(teacher.inputs, head.input)(images)
    np.testing.assert_allclose(cache.targets(1), features, rtol=1e-6)
    logits = features @ head.kernel + head.bias
    np.testing.assert_allclose(cache.logits(1), logits, rtol=1e-5, atol=1e-6)
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, views=cache, epochs=1, batch_size=6, verbose=0)
    assert tc.trained_students == [0, 1]
    for kwargs, received in (
        (
            dict(feature_layer="representation"),
            "feature_layer='representation'",
        ),
        (dict(logits_layer="logits"), "logits_layer='logits'"),
    ):
        with pytest.raises(ValueError, match=f"Received: {received}"):
            views.ViewCache.build(tmp_path / "b", teacher, x, 1, **kwargs)
    # A teacher whose output is no probability and not linear: no logits.
    layers = [*teacher.layers[:-1], keras.layers.Dense(2, activation="relu")]
    with pytest.raises(ValueError, match="not built"):
        views.ViewCache.build(tmp_path / "c", keras.Sequential(layers), x, 1)
    relu_out = keras.Sequential([keras.Input((8, 8, 3)), *layers])
    cache = views.ViewCache.build(tmp_path / "c", relu_out, x, 1, verbose=0)
    assert not cache.meta["logits"] and cache.meta["logits_layer"] is None
    input_name = relu_out.inputs[0]._keras_history.operation.name
    with pytest.raises(ValueError, match=f"logits_layer='{input_name}'"):
        views.ViewCache.build(
            tmp_path / "d", relu_out, x, 1, logits_layer=input_name
        )


def test_non_finite_images_and_targets_are_refused(tmp_path):
    """As `fit_students` without views: one NaN pixel would make every
    loss NaN and the students' weights non-finite."""
    teacher, x = _teacher(), _x()
    bad = x.copy()
    bad[5, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`x` holds non-finite values"):
        views.ViewCache.build(tmp_path / "a", teacher, bad, 1, verbose=0)
    assert not (tmp_path / "a").exists()
    # A teacher whose logits are NaN: the view is not written.
    broken = _teacher()
    kernel = broken.get_layer("classifier").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(
        ValueError, match="logits of view 0 holds non-finite .* 12 of 12"
    ):
        views.ViewCache.build(tmp_path / "b", broken, x, 1, verbose=0)
    assert views.ViewCache(tmp_path / "b").meta["views_done"] == 0
    assert not list((tmp_path / "b").glob("*_0.npy"))
    # Images changed in place after the build, off the digest's sample.
    x = np.random.default_rng(0).random((100, 8, 8, 3), dtype="float32")
    cache = views.ViewCache.build(tmp_path / "c", teacher, x, 1, verbose=0)
    x[2, 0, 0, 0] = np.inf  # image 2: not among the 64 hashed
    assert views._inputs_match(x, cache.meta["inputs"])
    tc = _class(teacher)
    with pytest.raises(ValueError, match="in 1 of 100 samples"):
        tc.fit_students(x, views=cache, batch_size=50, verbose=0)


def test_dataset_and_epochs_take_the_tensor_the_cache_was_built_on(
    tmp_path,
):
    import tensorflow as tf

    teacher, x = _teacher(), _x()
    images = tf.constant(x)
    cache = views.ViewCache.build(tmp_path, teacher, images, 1, verbose=0)
    labels = np.arange(len(x), dtype="int32")
    want = list(cache.dataset(x, 1, 5, labels=labels, with_logits=True))
    got = list(cache.dataset(images, 1, 5, labels=labels, with_logits=True))
    for (a, t), (b, u) in zip(got, want):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(t["logits"], u["logits"])
    assert len(list(cache.epochs(images, 4, 2))) == 6


def test_dataset_and_epochs_refuse_what_the_cache_cannot_serve(tmp_path):
    teacher, x = _teacher(), _x()
    cache = views.ViewCache.build(
        tmp_path, teacher, x, 1, logits_layer=None, verbose=0
    )
    labels = np.zeros(len(x), "int32")
    for kwargs, received in (
        (dict(labels="logits"), "labels='logits'"),
        (dict(labels=labels, with_logits=True), "with_logits=True"),
    ):
        with pytest.raises(ValueError, match=f"holds no logits.*{received}"):
            cache.dataset(x, 0, 4, **kwargs)
    with pytest.raises(ValueError, match=r"Received: targets=\('features',"):
        cache.epochs(x, 4, 1, targets=("features", "logits"))
    for kwargs, received in (
        (dict(batch_size=0), "batch_size=0"),
        (dict(batch_size=2.5), "batch_size=2.5"),
        (dict(epochs=1.0), "epochs=1.0"),
        (dict(initial_epoch=-1), "initial_epoch=-1"),
    ):
        args = {"batch_size": 4, "epochs": 2, **kwargs}
        with pytest.raises(ValueError, match=f"Received: {received}"):
            cache.epochs(x, **args)
    with pytest.raises(ValueError, match="Received: epoch=0.5"):
        cache.dataset(x, 0.5, 4)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        cache.dataset(x, 0, 0)
