"""teacherclass.views: the cached teacher targets of augmented views."""

import keras
import numpy as np
import pytest

from teacherclass import architectures
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


def test_build_resumes_after_a_stop_to_the_same_cache(tmp_path):
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
    resumed = views.ViewCache.build(tmp_path / "a", teacher, x, 3)
    whole = views.ViewCache.build(tmp_path / "b", teacher, x, 3)
    for view in range(4):
        np.testing.assert_array_equal(
            resumed.targets(view), whole.targets(view)
        )


def test_bad_arguments_and_mismatched_caches_are_refused(tmp_path):
    teacher, x = _teacher(), _x()
    with pytest.raises(ValueError, match="num_views=0"):
        views.ViewCache.build(tmp_path, teacher, x, 0)
    with pytest.raises(ValueError, match="No view cache"):
        views.ViewCache(tmp_path / "none")
    views.ViewCache.build(tmp_path, teacher, x, 1)
    with pytest.raises(ValueError, match="made with"):
        views.ViewCache.build(tmp_path, teacher, x, 2)


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
