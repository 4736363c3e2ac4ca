"""Cached teacher targets for augmented views of the training images.

`fit_students(augment=...)` runs the teacher's trunk on every augmented
batch: each student epoch costs a teacher forward pass over the whole
training set. A `ViewCache` runs the teacher once per view instead: it
draws `num_views` augmented views of the training images (a whole-pixel
shift of up to `max_shift` pixels with reflected borders, and a random
horizontal flip, per image and view), stores only the draws (three small
integers per image and view) and the teacher's representation and logits
of each view on disk, and serves epoch `e` as view `e mod (num_views +
1)`, view 0 being the clean images. The images of a view are rebuilt
from the draws (`shift_flip`), so nothing image-sized is stored.

The cache is built view by view; a build that stops (a kill, a budget)
continues with the first view not yet written.

Example:

>>> import tempfile
>>> import numpy as np
>>> import keras
>>> teacher = keras.Sequential([
...     keras.Input((8, 8, 3)),
...     keras.layers.GlobalMaxPooling2D(name="representation"),
...     keras.layers.Dense(2, name="logits"),
... ])
>>> x = np.random.rand(6, 8, 8, 3).astype("float32")
>>> views = ViewCache.build(tempfile.mkdtemp(), teacher, x, num_views=2)
>>> views.num_views, views.view_for_epoch(4), views.targets(1).shape
(2, 1, (6, 3))
"""

import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

_FORMAT = 1


def shift_flip(x, shifts, flips, max_shift):
    """Images shifted by whole pixels (reflected borders), then flipped.

    The same as padding each image by `max_shift` pixels with its mirror
    image (`"SYMMETRIC"`, Keras' `fill_mode="reflect"`) and cropping the
    original size at offset `max_shift + shift`.

    Args:
        x: a batch of images `(N, H, W, C)`.
        shifts: int array `(N, 2)`, the (row, column) shift of each image,
            in `[-max_shift, max_shift]`.
        flips: bool array `(N,)`, flip horizontally after shifting.
        max_shift: int, the padding.

    Returns:
        A float tensor of `x`'s shape and dtype.
    """
    x = tf.convert_to_tensor(x)
    height, width = x.shape[1], x.shape[2]
    pad = [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]]
    padded = tf.pad(x, pad, mode="SYMMETRIC")
    offsets = tf.cast(shifts, tf.int32) + max_shift
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    flips = tf.reshape(tf.cast(flips, tf.bool), (-1, 1, 1, 1))
    return tf.where(flips, tf.reverse(out, axis=[2]), out)


def draw(num_samples, num_views, max_shift=4, seed=0):
    """The random shifts and flips of every view (view 0: clean).

    Returns:
        `(shifts, flips)`: int8 `(num_views + 1, num_samples, 2)` and bool
        `(num_views + 1, num_samples)`; row 0 is all zeros and False.
    """
    rng = np.random.default_rng(seed)
    shifts = rng.integers(
        -max_shift, max_shift + 1, size=(num_views + 1, num_samples, 2)
    ).astype(np.int8)
    flips = rng.random((num_views + 1, num_samples)) < 0.5
    shifts[0] = 0
    flips[0] = False
    return shifts, flips


def _outputs_model(teacher, feature_layer, logits_layer):
    import keras

    outputs = [teacher.get_layer(feature_layer).output]
    if logits_layer is not None:
        outputs.append(teacher.get_layer(logits_layer).output)
    return keras.Model(teacher.inputs, outputs)


class ViewCache:
    """On-disk teacher targets of the clean and `num_views` augmented views.

    Open an existing cache with `ViewCache(directory)`; make (or finish)
    one with `ViewCache.build`.

    Files in `directory`: `views.json` (sizes, seed, views done),
    `draws.npz` (shifts and flips), `targets_{v}.npy` and `logits_{v}.npy`
    (float32, one row per image) for every view `v` done.

    Args:
        directory: the cache's folder.

    Raises:
        ValueError: if `directory` holds no view cache.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        meta_path = self.directory / "views.json"
        if not meta_path.exists():
            raise ValueError(
                f"No view cache in {self.directory}: build one with "
                f"ViewCache.build. Received: directory={str(directory)!r}"
            )
        self.meta = json.loads(meta_path.read_text())
        self.num_views = self.meta["num_views"]
        self.num_samples = self.meta["num_samples"]
        self.max_shift = self.meta["max_shift"]
        with np.load(self.directory / "draws.npz") as f:
            self.shifts = f["shifts"]
            self.flips = f["flips"]

    @property
    def complete(self):
        """Whether every view (clean included) is written."""
        return self.meta["views_done"] == self.num_views + 1

    @classmethod
    def build(
        cls,
        directory,
        teacher,
        x,
        num_views,
        max_shift=4,
        seed=0,
        batch_size=512,
        feature_layer="representation",
        logits_layer="logits",
        after_view=None,
    ):
        """Runs the teacher on every view not yet cached; returns the cache.

        Args:
            directory: the cache's folder (made if missing). A cache there
                made with other sizes or seed is refused.
            teacher: the trained `keras.Model`.
            x: the training images, as the teacher takes them.
            num_views: int >= 1, the augmented views (besides the clean).
            max_shift: int, the largest shift in pixels.
            seed: int, for the draws.
            batch_size: int, images per teacher call.
            feature_layer: the representation layer's name.
            logits_layer: the logits layer's name, or None to store none.
            after_view: None, or a callable `view -> None` run after each
                view is written (a budget check may raise from it).

        Returns:
            A `ViewCache`.

        Raises:
            ValueError: on a bad `num_views` or `max_shift`, or a cache in
                `directory` made with other settings.
        """
        for name, value, low in (
            ("num_views", num_views, 1),
            ("max_shift", max_shift, 0),
        ):
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or (value < low)
            ):
                raise ValueError(
                    f"`{name}` must be an integer >= {low}. "
                    f"Received: {name}={value!r}"
                )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = {
            "format": _FORMAT,
            "num_views": num_views,
            "num_samples": int(len(x)),
            "max_shift": max_shift,
            "seed": seed,
            "logits": logits_layer is not None,
        }
        meta_path = directory / "views.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            old = {k: meta.get(k) for k in settings}
            if old != settings:
                raise ValueError(
                    f"{directory} holds a view cache made with {old}; "
                    f"delete it or pass another directory. Received: "
                    f"{settings}"
                )
        else:
            shifts, flips = draw(len(x), num_views, max_shift, seed)
            tmp = directory / "draws.partial.npz"
            np.savez(tmp, shifts=shifts, flips=flips)
            os.replace(tmp, directory / "draws.npz")
            meta = {**settings, "views_done": 0}
            _write_json(meta_path, meta)
        cache = cls(directory)
        model = _outputs_model(teacher, feature_layer, logits_layer)
        for view in range(cache.meta["views_done"], num_views + 1):
            outs = [[] for _ in model.outputs]
            for start in range(0, len(x), batch_size):
                stop = min(start + batch_size, len(x))
                images = cache.images(x[start:stop], view, start)
                results = model(images, training=False)
                if not isinstance(results, (list, tuple)):
                    results = [results]
                for out, r in zip(outs, results):
                    out.append(np.asarray(r, dtype=np.float32))
            names = ("targets", "logits")[: len(outs)]
            for name, out in zip(names, outs):
                _write_npy(
                    directory / f"{name}_{view}.npy", np.concatenate(out)
                )
            cache.meta["views_done"] = view + 1
            _write_json(meta_path, cache.meta)
            if after_view is not None:
                after_view(view)
        return cache

    def view_for_epoch(self, epoch):
        """The view epoch `epoch` reads: `epoch mod (num_views + 1)`."""
        return epoch % (self.num_views + 1)

    def images(self, x, view, start=0):
        """The images of view `view` of `x = train[start:start + len(x)]`."""
        stop = start + len(x)
        return shift_flip(
            x,
            self.shifts[view, start:stop],
            self.flips[view, start:stop],
            self.max_shift,
        )

    def targets(self, view):
        """The teacher's representation of view `view`, `(N, width)`."""
        return np.load(self.directory / f"targets_{view}.npy")

    def logits(self, view):
        """The teacher's logits of view `view`, `(N, classes)`."""
        return np.load(self.directory / f"logits_{view}.npy")

    def dataset(
        self,
        x,
        epoch,
        batch_size,
        seed=0,
        labels=None,
        with_logits=False,
        preprocessor=None,
    ):
        """Epoch `epoch`'s shuffled batches of `(images, targets)`.

        Args:
            x: the training images the cache was built on.
            epoch: int, picks the view (`view_for_epoch`) and the order.
            batch_size: int.
            seed: int, with `epoch`, the order's seed.
            labels: None for the representation as target; "logits" for
                the teacher's logits; or an array of labels to pair the
                view's images with (training on labels, e.g. a baseline,
                on the same views).
            with_logits: bool, the view's teacher logits ride along: the
                targets become a dict, `{"features": representation,
                "logits": ...}` (the head-aware students' batches) or,
                with an array of `labels`, `{"labels": ..., "logits":
                ...}` (`TeacherClass.refine` without running the
                teacher).
            preprocessor: None, or a model the view's images go through,
                per batch, before they are served: the students' input
                when they take a teacher layer's output
                (`TeacherClass(student_input=...)`; pass
                `tc.cut.preprocessor()`). The cache holds images either
                way.

        Returns:
            A batched, prefetched `tf.data.Dataset`.

        Raises:
            ValueError: on `with_logits` with `labels="logits"`.
        """
        view = self.view_for_epoch(epoch)
        logits_only = isinstance(labels, str) and labels == "logits"
        if with_logits and logits_only:
            raise ValueError(
                "`with_logits` adds the logits to another target; "
                "`labels='logits'` already serves them alone. Received: "
                "labels='logits', with_logits=True"
            )
        if labels is None:
            target = self.targets(view)
        elif logits_only:
            target = self.logits(view)
        else:
            target = np.asarray(labels)
        if with_logits:
            key = "features" if labels is None else "labels"
            target = {key: target, "logits": self.logits(view)}
        max_shift = self.max_shift

        def apply(images, shifts, flips, y):
            images = shift_flip(images, shifts, flips, max_shift)
            if preprocessor is not None:
                images = preprocessor(images, training=False)
            return images, y

        ds = tf.data.Dataset.from_tensor_slices(
            (x, self.shifts[view], self.flips[view], target)
        )
        ds = ds.shuffle(
            len(x), seed=seed * 100_003 + epoch, reshuffle_each_iteration=False
        )
        ds = ds.batch(batch_size).map(
            apply, num_parallel_calls=tf.data.AUTOTUNE
        )
        return ds.prefetch(tf.data.AUTOTUNE)


def _write_json(path, data):
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _write_npy(path, array):
    tmp = path.with_name(path.stem + ".partial.npy")
    np.save(tmp, array)
    os.replace(tmp, path)
