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
>>> views = ViewCache.build(
...     tempfile.mkdtemp(), teacher, x, num_views=2, verbose=0
... )
>>> views.num_views, views.view_for_epoch(4), views.targets(1).shape
(2, 1, (6, 3))
"""

import hashlib
import json
import math
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from teacherclass import features
from teacherclass import teacher as teacher_lib
from teacherclass import validation

# 2: the teacher's and the images' digests are part of the settings.
_FORMAT = 2
_TARGETS = ("features", "logits", "labels")
_FILES = {"features": "targets", "logits": "logits"}


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


def _logits_tensor(teacher, logits_layer):
    """The tensor `ViewCache.build` stores as logits and its layer's name,
    or `(None, None)`.

    "auto": the teacher's output before its final softmax or sigmoid (its
    output itself when linear; none when it ends in another activation or
    in a nested model's), as `fit_students` computes logits without views.
    """
    from teacherclass import baselines

    if logits_layer is None:
        return None, None
    if logits_layer == "auto":
        try:
            tensor = baselines.logits_model(teacher).outputs[0]
        except ValueError:
            return None, None
    else:
        layer = teacher_lib.named_layer(
            teacher, "logits_layer", logits_layer, also='"auto", None or '
        )
        tensor = teacher_lib.output_of(teacher, layer)
    return tensor, teacher_lib.producer(tensor).name


def _outputs_model(teacher, feature_layer, logits):
    # In the teacher's graph: `layer.output` is the layer's first call,
    # another model's for shared layers or a deserialized Sequential.
    layer = teacher.get_layer(feature_layer)
    outputs = [teacher_lib.output_of(teacher, layer)]
    if logits is not None:
        outputs.append(logits)
    return keras.Model(teacher.inputs, outputs)


class ViewCache:
    """On-disk teacher targets of the clean and `num_views` augmented views.

    Open an existing cache with `ViewCache(directory)`; make (or finish)
    one with `ViewCache.build`.

    The cache knows the teacher and the images it was built with (digests
    of the teacher's weights and of a sample of the images): `build`
    refuses to finish or reuse it for others, and `check_teacher` and
    `epochs` refuse them.

    Files in `directory`: `views.json` (sizes, seed, digests, views done),
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
        if self.meta.get("format") != _FORMAT:
            raise ValueError(
                f"The view cache in {self.directory} was written by another "
                f"version of teacherclass (format {self.meta.get('format')}; "
                f"this version reads format {_FORMAT}): build it again in a "
                f"new directory. Received: directory={str(directory)!r}"
            )
        self.num_views = self.meta["num_views"]
        self.num_samples = self.meta["num_samples"]
        self.max_shift = self.meta["max_shift"]
        with np.load(self.directory / "draws.npz") as f:
            self.shifts = f["shifts"]
            self.flips = f["flips"]
        self._arrays = {}

    def __repr__(self):
        return (
            f"ViewCache({str(self.directory)!r}, num_views={self.num_views}, "
            f"num_samples={self.num_samples})"
        )

    def check_teacher(self, teacher):
        """Raises a ValueError unless `teacher` has the weights the cache
        was built with (a teacher trained further needs a new cache)."""
        if teacher_digest(teacher) != self.meta["teacher"]:
            raise ValueError(
                f"The view cache in {self.directory} holds the targets of "
                "another teacher (its weights differ from this one's): "
                "build a new cache with this teacher. Received: teacher="
                f"{teacher.name!r}"
            )

    @property
    def feature_shape(self):
        """The shape of one image's representation (no batch axis)."""
        return tuple(self._array("features", 0).shape[1:])

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
        feature_layer=None,
        logits_layer="auto",
        after_view=None,
        verbose="auto",
    ):
        """Runs the teacher on every view not yet cached; returns the cache.

        Args:
            directory: the cache's folder (made if missing). A cache there
                made with other sizes or seed is refused.
            teacher: the trained `keras.Model`.
            x: the training images, as the teacher takes them: an array
                (or tensor) of shape `(samples, height, width, channels)`.
            num_views: int >= 1, the augmented views (besides the clean).
            max_shift: int, the largest shift in pixels.
            seed: int >= 0, for the draws (stored: a resumed build draws
                the same views).
            batch_size: int, images per teacher call.
            feature_layer: the representation layer's name; None: the
                layer that feeds the teacher's classifier, as
                `TeacherClass` picks it (the library's architectures
                name it "representation").
            logits_layer: the logits layer's name; "auto": the teacher's
                output before its final softmax or sigmoid (none when
                it ends in another activation); None: store no logits.
                Head-aware students and logit-distillation baselines
                read the logits.
            after_view: None, or a callable `view -> None` run after each
                view is written (a budget check may raise from it).
            verbose: "auto", 0, 1 or 2, as in `Model.predict`: a line per
                view with a progress bar over its batches (1, "auto"), the
                line and the view's time (2), or nothing (0).

        Returns:
            A `ViewCache`.

        Raises:
            TypeError: if `teacher` is not a `keras.Model`.
            ValueError: on a bad `x` (NaN or Inf included), `num_views`,
                `max_shift` (at most 127, and less than the images' height
                and width), `seed`, `batch_size`, `verbose`,
                `feature_layer` or `logits_layer`, a teacher not built or
                with several inputs or outputs, a cache in `directory`
                made with other settings (the stored logits' layer among
                them), a `directory` holding other files than a view
                cache's, or a view whose representation or logits are not
                finite (nothing of that view is written).
        """
        num_views = validation.check_int("num_views", num_views)
        max_shift = validation.check_int("max_shift", max_shift, minimum=0)
        seed = validation.check_int("seed", seed, minimum=0)
        batch_size = validation.check_int("batch_size", batch_size)
        _check_images(x, max_shift)
        # As `fit_students` without views: a ReLU trunk maps NaN to 0, and
        # a NaN target makes every loss NaN.
        validation.check_finite("x", x)
        if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(
                '`verbose` must be "auto", 0, 1 or 2. '
                f"Received: verbose={verbose!r}"
            )
        verbose = 1 if verbose == "auto" else verbose
        teacher_lib.check_teacher(teacher)
        feature_layer = teacher_lib.get_feature_layer(
            teacher, feature_layer
        ).name
        logits, logits_name = _logits_tensor(teacher, logits_layer)
        directory = Path(directory)
        meta_path = directory / "views.json"
        if not meta_path.exists():
            _check_new_directory(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = {
            "format": _FORMAT,
            "num_views": num_views,
            "num_samples": int(len(x)),
            "max_shift": max_shift,
            "seed": seed,
            "logits": logits is not None,
            # The layer whose output is stored ("logits" in the library's
            # architectures; "<name>_logits" for a fused softmax's linear
            # copy): a resumed build must store the same.
            "logits_layer": logits_name,
            "feature_layer": feature_layer,
            "teacher": teacher_digest(teacher),
            "inputs": inputs_digest(x),
        }
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if _inputs_match(x, meta.get("inputs")):
                settings["inputs"] = meta["inputs"]  # an earlier digest
            differ = [k for k in settings if meta.get(k) != settings[k]]
            if differ:
                old = {k: meta.get(k) for k in differ}
                new = {k: settings[k] for k in differ}
                raise ValueError(
                    f"{directory} holds a view cache made with other "
                    f"{', '.join(differ)} ({old}); delete it or pass "
                    f"another directory. Received: {new}"
                )
        else:
            shifts, flips = draw(len(x), num_views, max_shift, seed)
            tmp = directory / "draws.partial.npz"
            np.savez(tmp, shifts=shifts, flips=flips)
            os.replace(tmp, directory / "draws.npz")
            meta = {**settings, "views_done": 0}
            _write_json(meta_path, meta)
        cache = cls(directory)
        model = _outputs_model(teacher, feature_layer, logits)
        steps = math.ceil(len(x) / batch_size)
        for view in range(cache.meta["views_done"], num_views + 1):
            outs = [[] for _ in model.outputs]
            if verbose:
                kind = "the clean images" if view == 0 else "shifted, flipped"
                print(f"View {view}/{num_views} ({kind})")
                bar = keras.utils.Progbar(steps, verbose=verbose)
            for step, start in enumerate(range(0, len(x), batch_size)):
                stop = min(start + batch_size, len(x))
                images = cache.images(x[start:stop], view, start)
                results = model(images, training=False)
                if not isinstance(results, (list, tuple)):
                    results = [results]
                for out, r in zip(outs, results):
                    out.append(np.asarray(r, dtype=np.float32))
                if verbose:
                    bar.update(step + 1)
            names = ("targets", "logits")[: len(outs)]
            arrays = [np.concatenate(out) for out in outs]
            for kind, array in zip(("representation", "logits"), arrays):
                _check_finite_targets(kind, array, view)
            for name, array in zip(names, arrays):
                _write_npy(directory / f"{name}_{view}.npy", array)
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

        One epoch of `epochs`, with its targets named the older way.

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
            preprocessor: see `epochs`.

        Returns:
            A batched, prefetched `tf.data.Dataset`.

        Raises:
            ValueError: on `with_logits` with `labels="logits"`, either
                of them on a cache without logits, or as `epochs`.
        """
        epoch = validation.check_int("epoch", epoch, minimum=0)
        logits_only = isinstance(labels, str) and labels == "logits"
        if with_logits and logits_only:
            raise ValueError(
                "`with_logits` adds the logits to another target; "
                "`labels='logits'` already serves them alone. Received: "
                "labels='logits', with_logits=True"
            )
        if (with_logits or logits_only) and not self.meta["logits"]:
            raise self._no_logits(
                "labels='logits'" if logits_only else "with_logits=True"
            )
        if logits_only:
            targets, labels = ("logits",), None
        else:
            targets = ("features",) if labels is None else ("labels",)
        if with_logits:
            targets += ("logits",)
        return self.epochs(
            x,
            batch_size,
            epoch + 1,
            initial_epoch=epoch,
            seed=seed,
            targets=targets,
            labels=labels,
            preprocessor=preprocessor,
        )

    def _no_logits(self, received):
        """The error for logits asked of a cache built without them."""
        return ValueError(
            f"The view cache in {self.directory} holds no logits (it was "
            "built with `logits_layer=None`, or its teacher has none): "
            f"build it with `logits_layer` to serve them. Received: "
            f"{received}"
        )

    def epochs(
        self,
        x,
        batch_size,
        epochs,
        initial_epoch=0,
        seed=0,
        targets="features",
        labels=None,
        preprocessor=None,
        shuffle=True,
    ):
        """The batches of epochs `initial_epoch .. epochs - 1`, in a row.

        Epoch `e` reads view `view_for_epoch(e)` in an order drawn from
        `(seed, e)` alone, so a fit resumed at `initial_epoch` sees what
        an uninterrupted one would. Feed it to `fit` with `epochs`,
        `initial_epoch` and `steps_per_epoch=ceil(len(x) / batch_size)`:
        one iterator then spans the epochs. Images, draws and targets are
        gathered per batch (the target files memory-mapped), so nothing
        beyond a batch is copied.

        Args:
            x: the training images the cache was built on (an array or
                a tensor).
            batch_size: int.
            epochs: int, the epoch to stop before, as `fit`'s.
            initial_epoch: int, the first epoch served.
            seed: int, with the epoch, the order's seed.
            targets: what each image is paired with: "features" (the
                teacher's representation), "logits" (its logits) or
                "labels" (`labels`), or a tuple of these names for a dict
                of them (e.g. `("features", "logits")` for head-aware
                students).
            labels: an array of labels, for "labels".
            preprocessor: None, or a model the view's images go through,
                per batch, before they are served: the students' input
                when they take a teacher layer's output
                (`TeacherClass(student_input=...)`; pass
                `tc.cut.preprocessor()`). The cache holds images either
                way.
            shuffle: bool; False serves every epoch in the images' order.

        Returns:
            A batched, prefetched `tf.data.Dataset` of `(images,
            targets)`, `ceil(len(x) / batch_size)` batches per epoch.

        Raises:
            ValueError: on `x` of another length than the cache's, an
                unknown target name, "logits" from a cache without
                logits, "labels" without `labels` (or of another length),
                a `batch_size`, `epochs` or `initial_epoch` that is not
                an integer (>= 1; `initial_epoch` >= 0), or no epoch to
                serve.
        """
        if keras.ops.is_tensor(x):
            # `gather` indexes the images in NumPy, as the build read them.
            x = keras.ops.convert_to_numpy(x)
        batch_size = validation.check_int("batch_size", batch_size)
        epochs = validation.check_int("epochs", epochs)
        initial_epoch = validation.check_int(
            "initial_epoch", initial_epoch, minimum=0
        )
        names = (targets,) if isinstance(targets, str) else tuple(targets)
        unknown = [t for t in names if t not in _TARGETS]
        if not names or unknown:
            raise ValueError(
                f"`targets` must name one or more of {_TARGETS}. "
                f"Received: targets={targets!r}"
            )
        if "logits" in names and not self.meta["logits"]:
            raise self._no_logits(f"targets={targets!r}")
        num = len(x)
        if num != self.num_samples:
            raise ValueError(
                f"The cache holds views of {self.num_samples} images; `x` "
                f"must be those images. Received: x of length {num}"
            )
        if not _inputs_match(x, self.meta["inputs"]):
            raise ValueError(
                f"The cache holds views of other images than `x` (of the "
                f"same length, {num}): pass the images it was built on. "
                f"Received: x with another digest"
            )
        if "labels" in names:
            if labels is None or len(labels) != num:
                got = None if labels is None else f"length {len(labels)}"
                raise ValueError(
                    f"targets={targets!r} pairs each image with its label: "
                    f"pass `labels`, one per image ({num}). Received: "
                    f"labels={got}"
                )
            labels = np.asarray(labels)
        if not 0 <= initial_epoch < epochs:
            raise ValueError(
                "There is no epoch to serve: `initial_epoch` must be >= 0 "
                f"and below `epochs`. Received: initial_epoch="
                f"{initial_epoch}, epochs={epochs}"
            )
        single = len(names) == 1

        def gather(epoch, index):
            view = self.view_for_epoch(int(epoch))
            out = [x[index], self.shifts[view, index], self.flips[view, index]]
            for name in names:
                if name == "labels":
                    out.append(labels[index])
                else:
                    out.append(self._array(name, view)[index])
            return out

        x_spec = tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype))
        specs = [
            x_spec,
            tf.TensorSpec((None, 2), tf.int8),
            tf.TensorSpec((None,), tf.bool),
        ]
        for name in names:
            if name == "labels":
                dtype, shape = labels.dtype, labels.shape[1:]
            else:
                dtype, shape = np.float32, self._array(name, 0).shape[1:]
            specs.append(tf.TensorSpec((None, *shape), tf.as_dtype(dtype)))
        max_shift = self.max_shift

        def load(epoch, index):
            out = tf.numpy_function(
                gather, [epoch, index], [s.dtype for s in specs]
            )
            for tensor, spec in zip(out, specs):
                tensor.set_shape(spec.shape)
            images = shift_flip(out[0], out[1], out[2], max_shift)
            if preprocessor is not None:
                images = preprocessor(images, training=False)
            found = out[3:]
            if single:
                return images, found[0]
            return images, dict(zip(names, found))

        def one_epoch(epoch):
            # A Python seed per epoch: the shuffle then draws the order a
            # single epoch's dataset would (a tensor seed would not).
            order = tf.data.Dataset.range(num)
            if shuffle:
                order = order.shuffle(
                    num,
                    seed=seed * 100_003 + epoch,
                    reshuffle_each_iteration=False,
                )
            return order.batch(batch_size).map(lambda i: (epoch, i))

        span = range(initial_epoch, epochs)
        steps = math.ceil(num / batch_size)
        ds = tf.data.Dataset.choose_from_datasets(
            [one_epoch(e) for e in span],
            tf.data.Dataset.range(len(span)).flat_map(
                lambda i: tf.data.Dataset.from_tensors(i).repeat(steps)
            ),
        )
        # Known, so Keras sizes epochs and progress bars.
        ds = ds.apply(
            tf.data.experimental.assert_cardinality(len(span) * steps)
        )
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def _array(self, name, view):
        """The memory-mapped targets (or logits) of view `view`."""
        key = (name, view)
        if key not in self._arrays:
            path = self.directory / f"{_FILES[name]}_{view}.npy"
            self._arrays[key] = np.load(path, mmap_mode="r")
        return self._arrays[key]


def _check_images(x, max_shift):
    """Raises a ValueError unless `x` is a batch of images that shifts of
    up to `max_shift` pixels (reflected borders, int8 draws) fit."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 4 or isinstance(x, tf.data.Dataset):
        shown = (
            f"x.shape={tuple(shape)}"
            if shape is not None and not isinstance(x, tf.data.Dataset)
            else f"x of type {type(x).__name__}"
        )
        raise ValueError(
            "`x` must be an array (or tensor) of images of shape (samples, "
            f"height, width, channels). Received: {shown}"
        )
    if len(x) == 0:
        raise ValueError(f"`x` is empty. Received: x.shape={tuple(shape)}")
    side = min(int(shape[1]), int(shape[2]))
    if max_shift >= side or max_shift > 127:
        raise ValueError(
            "`max_shift` must be less than the images' height and width "
            f"({tuple(shape[1:3])}: the borders are reflected) and at most "
            f"127. Received: max_shift={max_shift}"
        )


def _check_finite_targets(kind, array, view):
    """Raises a ValueError if the teacher's `kind` of view `view` holds
    NaN or Inf (finite images: the teacher's weights are at fault)."""
    bad_samples = validation.count_non_finite(array)
    if not bad_samples:
        return
    raise ValueError(
        f"The teacher's {kind} of view {view} holds non-finite values "
        f"(NaN or Inf) in {bad_samples} of {len(array)} samples. Check "
        "the teacher's weights and the input scaling."
    )


# What a build leaves in its directory before `views.json` is written.
_LEFTOVERS = ("draws.npz", "draws.partial.npz")


def _check_new_directory(directory):
    """Raises a ValueError if `directory` holds files that are not a
    stopped build's (a build never writes among the user's files)."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ValueError(
            "`directory` must be a directory for the view cache. "
            f"Received: directory={str(directory)!r} (a file)"
        )
    foreign = sorted(
        p.name
        for p in directory.iterdir()
        if p.name not in _LEFTOVERS and ".partial" not in p.name
    )
    if foreign:
        raise ValueError(
            f"{directory} holds no view cache (no views.json) but other "
            f"files ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}): pass a new or empty "
            f"directory. Received: directory={str(directory)!r}"
        )


def teacher_digest(teacher):
    """A short hash of a model's weights (`features`' head-cache key):
    freezing a layer does not change it; training does."""
    return features._weights_digest(teacher)[:16]


def inputs_digest(x, samples=64, _dtype_name=None):
    """A hash of the images' shape, dtype and `samples` evenly spaced
    images: cheap, and different for another set of images."""
    x = np.asarray(x) if not hasattr(x, "shape") else x
    # NumPy's dtype name for a tensor too ("float32", not "<dtype: ...>"):
    # the same images hash alike whichever form they come in.
    dtype = np.dtype(getattr(x.dtype, "as_numpy_dtype", x.dtype))
    name = dtype if _dtype_name is None else _dtype_name(dtype)
    h = hashlib.sha256(f"{tuple(x.shape)} {name}".encode())
    for i in np.linspace(0, len(x) - 1, min(samples, len(x))).astype(int):
        h.update(np.ascontiguousarray(x[i]).tobytes())
    return h.hexdigest()[:16]


def _inputs_match(x, stored):
    """Whether `x` are the images whose digest is `stored`: this version's
    digest, or the one a cache built from a tensor by an earlier version
    stored (it hashed TensorFlow's dtype name, "<dtype: 'float32'>")."""
    if inputs_digest(x) == stored:
        return True
    return inputs_digest(x, _dtype_name=lambda d: str(tf.as_dtype(d))) == stored


def _write_json(path, data):
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _write_npy(path, array):
    tmp = path.with_name(path.stem + ".partial.npy")
    np.save(tmp, array)
    os.replace(tmp, path)
