"""Tests for `teacherclass.datasets`.

Fast tests build tiny official-layout fixtures in `tmp_path`; tests marked
`slow` read the real copies in `../shared/data`. Nothing here downloads.
"""

import gzip
import sys
import tarfile
import time
import zipfile
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from helpers import shared_data

from teacherclass import datasets

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """No test sees the developer's data, tfds folder or Keras cache."""
    monkeypatch.delenv("TEACHERCLASS_DATA", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds_empty"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


# ---------------------------------------------------------------- fixtures


def _write_idx(path, array, compress=True):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _make_idx_dir(folder, n_train=5, n_test=3, offset=0, compress=True):
    """Official MNIST file names; pixel [0, 0] = label + offset."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = labels + offset
        images[:, 27, 27] = 255
        suffix = ".gz" if compress else ""
        _write_idx(
            folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress
        )
        _write_idx(
            folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress
        )
        arrays[prefix] = (images, labels)
    return arrays


def _write_png(path, array):
    path.write_bytes(tf.io.encode_png(array).numpy())


def _make_cifar_tree(root, per_class=2, splits=("train", "test")):
    """Class folders; every pixel of an image = 20 * label."""
    for split in splits:
        # Created out of order: the label order must come from sorting.
        for label, cls in reversed(list(enumerate(CIFAR10_CLASSES))):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = np.full((32, 32, 3), 20 * label, np.uint8)
                _write_png(folder / f"{i:04d}.png", image)
            (folder / "notes.txt").write_text("not an image")
    return root


def _make_imdb_tree(root):
    base = root / "aclImdb"
    for split in ("train", "test"):
        for cls in ("neg", "pos"):
            folder = base / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                text = f"{cls} review {i} of {split}<br />caf\u00e9"
                (folder / f"{i}_{7 if cls == 'pos' else 2}.txt").write_text(
                    text, encoding="utf-8"
                )
            (base / split / f"urls_{cls}.txt").write_text("http://x\n")
    (base / "README").write_text("readme")
    return root


_CAMVID_SIZES = {"train": 3, "val": 2, "test": 1}


def _make_camvid_tree(root):
    """SegNet layout; 6x8 images, label map value = (image index + row)."""
    base = root / "CamVid"
    for split, n in _CAMVID_SIZES.items():
        (base / split).mkdir(parents=True)
        (base / f"{split}annot").mkdir()
        for i in range(n):
            name = f"0001TP_{i:06d}.png"
            image = np.full((6, 8, 3), 10 * i + 1, np.uint8)
            label = (np.arange(6)[:, None] + i + np.zeros(8, int)) % 12
            _write_png(base / split / name, image)
            _write_png(
                base / f"{split}annot" / name, label[..., None].astype("uint8")
            )
    return root


def _tar(source_root, archive, arcname=None, mode="w"):
    with tarfile.open(archive, mode) as tar:
        for child in sorted(source_root.iterdir()):
            name = child.name if arcname is None else f"{arcname}/{child.name}"
            tar.add(child, arcname=name)
    return archive


def _snapshot(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------- mnist


def test_mnist_idx_in_named_subfolder(tmp_path):
    arrays = _make_idx_dir(tmp_path / "data" / "mnist")
    x, y = datasets.load("mnist", data_dir=tmp_path / "data")
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.uint8
    assert y.shape == (5,) and y.dtype == np.int64
    np.testing.assert_array_equal(x[..., 0], arrays["train"][0])
    np.testing.assert_array_equal(y, arrays["train"][1])
    x, y = datasets.load("mnist", split="test", data_dir=tmp_path / "data")
    assert x.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(y, [0, 1, 2])


def test_fashion_mnist_in_data_dir_itself_and_uncompressed(tmp_path):
    _make_idx_dir(tmp_path, offset=100, compress=False)
    x, y = datasets.load("fashion_mnist", split="test", data_dir=tmp_path)
    assert x.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(x[:, 0, 0, 0], y + 100)


def test_named_subfolder_wins_over_data_dir(tmp_path):
    _make_idx_dir(tmp_path, offset=100)
    _make_idx_dir(tmp_path / "fashion-mnist", offset=200)
    x, y = datasets.load("fashion_mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(x[:, 0, 0, 0], y + 200)


def test_env_var_data_dir(tmp_path, monkeypatch):
    _make_idx_dir(tmp_path / "mnist", n_train=7)
    monkeypatch.setenv("TEACHERCLASS_DATA", str(tmp_path))
    x, _ = datasets.load("mnist")
    assert x.shape == (7, 28, 28, 1)


def test_data_dir_argument_wins_over_env_var(tmp_path, monkeypatch):
    _make_idx_dir(tmp_path / "a" / "mnist", n_train=4)
    _make_idx_dir(tmp_path / "b" / "mnist", n_train=6)
    monkeypatch.setenv("TEACHERCLASS_DATA", str(tmp_path / "b"))
    x, _ = datasets.load("mnist", data_dir=tmp_path / "a")
    assert len(x) == 4


def test_idx_bad_magic(tmp_path):
    _make_idx_dir(tmp_path)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="is not an unsigned-byte IDX file"):
        datasets.load("mnist", data_dir=tmp_path)


def test_idx_truncated(tmp_path):
    _make_idx_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = gzip.open(path).read()
    with gzip.open(path, "wb") as f:
        f.write(data[:-10])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.load("mnist", data_dir=tmp_path)


def test_idx_gzip_cut_short(tmp_path):
    _make_idx_dir(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError) as info:
        datasets.load("mnist", data_dir=tmp_path)
    assert str(info.value).startswith(f"{str(path)!r} is truncated or corrupt")


# ---------------------------------------------------------------- cifar10


def test_cifar10_class_folders(tmp_path):
    _make_cifar_tree(tmp_path / "cifar10")
    x, y = datasets.load("cifar10", data_dir=tmp_path)
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (20,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [2] * 10)
    # Label = index of the sorted class name; images stay with labels.
    np.testing.assert_array_equal(x[:, 5, 7, 1], 20 * y)
    # Classes are mixed, in the same order on every call.
    assert not np.all(np.diff(y) >= 0)
    x2, y2 = datasets.load("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(x, x2)


def test_cifar10_jpeg(tmp_path):
    folder = tmp_path / "test"
    for label, cls in enumerate(CIFAR10_CLASSES):
        (folder / cls).mkdir(parents=True)
        image = np.full((32, 32, 3), 20 * label, np.uint8)
        (folder / cls / "0000.jpg").write_bytes(
            tf.io.encode_jpeg(image, quality=95).numpy()
        )
    x, y = datasets.load("cifar10", split="test", data_dir=tmp_path)
    assert x.shape == (10, 32, 32, 3)
    np.testing.assert_allclose(x[:, 16, 16, 0], 20 * y, atol=3)


def test_cifar10_wrong_class_count(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="10 classes.*holds 1 class folders"):
        datasets.load("cifar10", data_dir=tmp_path)


def test_cifar10_names_an_image_that_does_not_decode(tmp_path):
    _make_cifar_tree(tmp_path / "cifar10", per_class=1, splits=("test",))
    bad = tmp_path / "cifar10" / "test" / "cat" / "0000.png"
    bad.write_bytes(bad.read_bytes()[:40])  # cut short
    with pytest.raises(ValueError) as info:
        datasets.load("cifar10", "test", data_dir=tmp_path)
    assert str(info.value) == (
        f"{str(bad)!r} is not an image that decodes (a truncated or corrupt "
        "file?). Received: Invalid PNG. Failed to initialize decoder."
    )


def test_cifar10_images_of_two_sizes_are_named(tmp_path):
    _make_cifar_tree(tmp_path / "cifar10", per_class=1, splits=("test",))
    folder = tmp_path / "cifar10" / "test"
    _write_png(folder / "cat" / "0000.png", np.zeros((30, 32, 3), np.uint8))
    with pytest.raises(ValueError) as info:
        datasets.load("cifar10", "test", data_dir=tmp_path)
    # The first file in reading order, then the first of another size.
    assert str(info.value) == (
        f"The images under {str(folder)!r} do not all have the same size. "
        f"Received: {str(folder / 'airplane' / '0000.png')!r} of shape "
        f"(32, 32, 3) and {str(folder / 'cat' / '0000.png')!r} of shape "
        "(30, 32, 3)"
    )


# ---------------------------------------------------------------- imdb


def test_imdb_tree(tmp_path):
    _make_imdb_tree(tmp_path / "imdb")
    x, y = datasets.load("imdb_reviews", split="test", data_dir=tmp_path)
    assert x.shape == (6,) and x.dtype == object
    assert all(type(t) is str for t in x)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [3, 3])
    for text, label in zip(x, y, strict=True):
        assert text.startswith(("neg", "pos")[label])
        assert text.endswith("of test<br />caf\u00e9")


def test_imdb_acl_folder_given_directly(tmp_path):
    _make_imdb_tree(tmp_path)
    x, _ = datasets.load("imdb_reviews", data_dir=tmp_path / "aclImdb")
    assert len(x) == 6


# ---------------------------------------------------------------- camvid


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_camvid_tree(tmp_path, split):
    _make_camvid_tree(tmp_path / "camvid")
    x, y = datasets.load("camvid", split=split, data_dir=tmp_path)
    n = _CAMVID_SIZES[split]
    assert x.shape == (n, 6, 8, 3) and x.dtype == np.uint8
    assert y.shape == (n, 6, 8) and y.dtype == np.uint8
    for i in range(n):  # sorted by file name, images paired with maps
        assert np.all(x[i] == 10 * i + 1)
        np.testing.assert_array_equal(y[i][:, 0], (np.arange(6) + i) % 12)


def test_camvid_label_values_up_to_void(tmp_path):
    base = tmp_path / "CamVid"
    for folder in ("train", "trainannot"):
        (base / folder).mkdir(parents=True)
    _write_png(base / "train" / "a.png", np.zeros((3, 4, 3), np.uint8))
    label = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    _write_png(base / "trainannot" / "a.png", label)
    _, y = datasets.load("camvid", data_dir=tmp_path)
    np.testing.assert_array_equal(y[0], label[..., 0])


def test_camvid_unmatched_file_names(tmp_path):
    _make_camvid_tree(tmp_path)
    (tmp_path / "CamVid" / "valannot" / "0001TP_000001.png").unlink()
    with pytest.raises(ValueError, match="must share file names"):
        datasets.load("camvid", split="val", data_dir=tmp_path)


# ---------------------------------------------------------------- archives


def test_cifar10_tar_read_in_place(tmp_path):
    tree = _make_cifar_tree(tmp_path / "build", per_class=1)
    data_dir = tmp_path / "data"
    (data_dir / "cifar10").mkdir(parents=True)
    # Wrapped in one top-level folder, as many archives are.
    _tar(tree, data_dir / "cifar10" / "CIFAR-10-jpeg.tar", "cifar-10-images")
    before = _snapshot(tmp_path)
    x, y = datasets.load("cifar10", split="test", data_dir=data_dir)
    assert x.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(x[:, 0, 0, 0], 20 * y)
    # Nothing is extracted or cached: not in data_dir, not in KERAS_HOME.
    assert _snapshot(tmp_path) == before
    folder_x, folder_y = datasets.load("cifar10", "test", data_dir=tree)
    np.testing.assert_array_equal(x, folder_x)
    np.testing.assert_array_equal(y, folder_y)


def test_compressed_tar_in_any_member_order_reads_like_the_folder(tmp_path):
    """Members are read in archive order and returned in the layout's."""
    tree = _make_imdb_tree(tmp_path / "build")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with tarfile.open(data_dir / "aclImdb.tar.gz", "w:gz") as tar:
        for path in sorted(tree.rglob("*"), reverse=True):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(tree)))
    for split in ("train", "test"):
        x, y = datasets.load("imdb_reviews", split, data_dir=data_dir)
        folder_x, folder_y = datasets.load("imdb_reviews", split, data_dir=tree)
        assert len(x) == 6 and set(y) == {0, 1}
        assert list(x) == list(folder_x)
        np.testing.assert_array_equal(y, folder_y)


def test_camvid_zip(tmp_path):
    tree = _make_camvid_tree(tmp_path / "build")
    data_dir = tmp_path / "data" / "camvid"
    data_dir.mkdir(parents=True)
    with zipfile.ZipFile(data_dir / "camvid-small.zip", "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree))
    x, y = datasets.load("camvid", split="val", data_dir=data_dir)
    assert x.shape == (2, 6, 8, 3) and y.shape == (2, 6, 8)


def test_archive_of_another_dataset_is_not_opened(tmp_path):
    tree = _make_imdb_tree(tmp_path / "build")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _tar(tree, data_dir / "reviews.tar")  # right content, wrong name
    _tar(tree, data_dir / "camvid.tar")  # right name, wrong content
    _tar(tree, data_dir / "cifar10.tar")
    with (
        mock.patch.object(tarfile, "open", side_effect=AssertionError),
        pytest.raises(FileNotFoundError) as info,
    ):
        datasets.load("imdb_reviews", data_dir=data_dir)
    assert "contains, in any case, 'imdb'" in str(info.value)
    with pytest.raises(FileNotFoundError, match="no camvid layout"):
        datasets.load("camvid", data_dir=data_dir)
    # aclImdb/train/{neg,pos} looks like class folders, but not ten.
    with pytest.raises(ValueError, match="10 classes.*holds 2 class"):
        datasets.load("cifar10", data_dir=data_dir)


def test_tar_links_and_zip_dot_dot_names_read_as_extraction_placed_them(
    tmp_path,
):
    tree = _make_cifar_tree(tmp_path / "build", per_class=1, splits=["test"])
    tar_dir, zip_dir = tmp_path / "tar", tmp_path / "zip"
    tar_dir.mkdir(), zip_dir.mkdir()
    with tarfile.open(tar_dir / "cifar10.tar", "w") as tar:
        tar.add(tree / "test", arcname="test")
        hard = tar.gettarinfo(tree / "test/cat/0000.png", "test/cat/0001.png")
        hard.type, hard.linkname = tarfile.LNKTYPE, "test/cat/0000.png"
        soft = tarfile.TarInfo("test/dog/0001.png")
        soft.type, soft.linkname = tarfile.SYMTYPE, "0000.png"
        tar.addfile(hard), tar.addfile(soft)
    x, y = datasets.load("cifar10", "test", data_dir=tar_dir)
    counts = [1] * 10
    for cls in ("cat", "dog"):
        counts[CIFAR10_CLASSES.index(cls)] = 2
    assert len(x) == 12 and np.bincount(y).tolist() == counts
    np.testing.assert_array_equal(x[:, 0, 0, 0], 20 * y)
    with zipfile.ZipFile(zip_dir / "cifar10.zip", "w") as zf:
        for path in sorted(tree.rglob("*.png")):
            zf.write(path, "../" + str(path.relative_to(tree)))
    x, _ = datasets.load("cifar10", "test", data_dir=zip_dir)
    assert len(x) == 10


def test_imdb_text_has_universal_newlines_and_must_be_utf8(tmp_path):
    tree = _make_imdb_tree(tmp_path)
    review = tree / "aclImdb" / "test" / "neg" / "0_2.txt"
    review.write_bytes(b"one\r\ntwo\rthree")
    x, _ = datasets.load("imdb_reviews", "test", data_dir=tree)
    assert "one\ntwo\nthree" in list(x)
    review.write_bytes(b"caf\xe9")
    with pytest.raises(ValueError) as info:
        datasets.load("imdb_reviews", "test", data_dir=tree)
    assert str(info.value).startswith(f"{str(review)!r} is not UTF-8 text")


def test_corrupt_archive(tmp_path):
    archive = tmp_path / "camvid.tar"
    archive.write_bytes(b"not a tar file" * 100)
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError) as info:
        datasets.load("camvid", data_dir=tmp_path)
    assert str(info.value).startswith(
        f"Cannot read the archive {str(archive)!r}: "
    )
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------- failures


def test_not_found_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as info:
        datasets.load("cifar10", split="test")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "Dataset 'cifar10' (split='test') was not found" in message
    assert "TEACHERCLASS_DATA is not set" in message
    assert str(tmp_path / "tfds_empty") in message
    assert "train/<class>/*.jpg|png" in message
    assert "download=True" in message


def test_not_found_names_data_dir_candidates(tmp_path):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as info:
        datasets.load(
            "fashion_mnist", data_dir=tmp_path, tfds_data_dir=tmp_path / "t"
        )
    assert time.monotonic() - start < 5
    message = str(info.value)
    for folder in ("fashion_mnist", "fashion-mnist"):
        assert repr(str(tmp_path / folder)) in message
    assert "train-images-idx3-ubyte.gz" in message
    assert repr(str(tmp_path / "t")) in message


def test_not_found_missing_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="(not a folder)"):
        datasets.load("mnist", data_dir=tmp_path / "missing")


def test_camvid_not_found_mentions_no_tfds(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        datasets.load("camvid", data_dir=tmp_path, download=True)
    assert "has no 'camvid' dataset" in str(info.value)
    assert "SegNet" in str(info.value)


def test_unprepared_tfds_folder_is_not_downloaded(tmp_path):
    (tmp_path / "tfds_empty" / "mnist").mkdir(parents=True)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="not prepared"):
        datasets.load("mnist")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("name", ["foo", "MNIST", "cifar100", 3, None])
def test_bad_name(name):
    with pytest.raises(ValueError) as info:
        datasets.load(name)
    assert str(info.value) == (
        "Unknown dataset. Expected one of ['mnist', 'fashion_mnist', "
        "'cifar10', 'imdb_reviews', 'camvid', 'digits']. "
        f"Received: name={name!r}"
    )


@pytest.mark.parametrize(
    "name, split, expected",
    [
        ("mnist", "val", "['train', 'test']"),
        ("cifar10", "validation", "['train', 'test']"),
        ("imdb_reviews", "unsupervised", "['train', 'test']"),
        ("camvid", "TRAIN", "['train', 'val', 'test']"),
        ("digits", None, "['train', 'test']"),
    ],
)
def test_bad_split(name, split, expected):
    with pytest.raises(ValueError) as info:
        datasets.load(name, split=split)
    assert str(info.value) == (
        f"Unknown split for dataset {name!r}. Expected one of {expected}. "
        f"Received: split={split!r}"
    )


# ---------------------------------------------------------------- tfds


def test_prepared_tfds_dataset(tmp_path):
    import tensorflow_datasets as tfds

    root = tmp_path / "tfds_empty"
    for name in ("mnist", "imdb_reviews"):
        (root / name).mkdir(parents=True)
    with (
        tfds.testing.mock_data(num_examples=4),
        mock.patch.object(
            tfds.core.DatasetBuilder, "is_prepared", return_value=True
        ),
    ):
        x, y = datasets.load("mnist", split="test")
        assert x.shape == (4, 28, 28, 1) and x.dtype == np.uint8
        assert y.shape == (4,) and y.dtype == np.int64
        x, y = datasets.load("imdb_reviews")
        assert x.shape == (4,) and x.dtype == object
        assert all(type(t) is str for t in x)
        assert set(y) <= {0, 1}


def test_offline_files_win_over_tfds(tmp_path):
    import tensorflow_datasets as tfds

    _make_idx_dir(tmp_path / "data" / "mnist")
    with mock.patch.object(tfds, "load", side_effect=AssertionError):
        x, _ = datasets.load("mnist", data_dir=tmp_path / "data", download=True)
    assert len(x) == 5


def test_download_true_calls_tfds_load(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        x, y = datasets.load("cifar10", download=True)
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (3,) and y.dtype == np.int64


# ---------------------------------------------------------------- digits


def test_digits_split():
    x_train, y_train = datasets.load("digits", data_dir="/ignored")
    x_test, y_test = datasets.load("digits", split="test")
    assert x_train.shape == (1438, 8, 8, 1) and x_test.shape == (359, 8, 8, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    # Stratified: every class has 20% (rounded) of its samples in test.
    totals = np.bincount(np.concatenate([y_train, y_test]))
    np.testing.assert_array_equal(
        np.bincount(y_test), np.round(totals * 0.2).astype(int)
    )
    # Disjoint, and the same on every call.
    train_rows = {row.tobytes() for row in x_train}
    assert sum(row.tobytes() in train_rows for row in x_test) < 5
    x_again, _ = datasets.load("digits", split="test")
    np.testing.assert_array_equal(x_test, x_again)


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        datasets.load("digits")


# ---------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, split, count, per_class",
    [
        ("mnist", "train", 60000, None),
        ("mnist", "test", 10000, None),
        ("fashion_mnist", "train", 60000, 6000),
        ("fashion_mnist", "test", 10000, 1000),
        ("cifar10", "train", 50000, 5000),
        ("cifar10", "test", 10000, 1000),
        ("imdb_reviews", "train", 25000, 12500),
        ("imdb_reviews", "test", 25000, 12500),
    ],
)
def test_real_classification_data(name, split, count, per_class):
    x, y = datasets.load(name, split=split, data_dir=shared_data())
    assert len(x) == len(y) == count
    assert y.dtype == np.int64
    n_classes = 2 if name == "imdb_reviews" else 10
    counts = np.bincount(y, minlength=n_classes)
    assert len(counts) == n_classes
    if per_class:
        np.testing.assert_array_equal(counts, per_class)
    if name == "imdb_reviews":
        assert x.dtype == object and all(type(t) is str for t in x[:100])
    else:
        shape = (32, 32, 3) if name == "cifar10" else (28, 28, 1)
        assert x.shape[1:] == shape and x.dtype == np.uint8
    if name == "mnist" and split == "test":
        np.testing.assert_array_equal(
            counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        )


@pytest.mark.slow
def test_real_cifar10_from_its_own_folder_and_env_var(monkeypatch):
    shared = shared_data()
    x, y = datasets.load("cifar10", "test", data_dir=shared / "cifar10")
    assert x.shape == (10000, 32, 32, 3)
    assert 118 < x.mean() < 125  # README: mean pixel 121.5 on test
    monkeypatch.setenv("TEACHERCLASS_DATA", str(shared))
    x, _ = datasets.load("mnist", "test")
    assert x.shape == (10000, 28, 28, 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, other", [("fashion_mnist", "mnist"), ("mnist", "fashion_mnist")]
)
def test_real_mnist_files_read_under_the_other_name_are_refused(name, other):
    folder = shared_data() / other
    with pytest.raises(ValueError) as info:
        datasets.load(name, "test", data_dir=folder)
    assert str(info.value) == (
        f"The IDX files in {str(folder)!r} are the official {other!r} files "
        f"(their labels match), not {name!r} ones: both datasets use the "
        f"same file names. Give each dataset its own sub-folder ({other}/ "
        f"and {name}/) or pass name={other!r}. Received: name={name!r}"
    )
    x, _ = datasets.load(other, "test", data_dir=folder)
    assert x.shape == (10000, 28, 28, 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "split, count", [("train", 367), ("val", 101), ("test", 233)]
)
def test_real_camvid(split, count):
    x, y = datasets.load("camvid", split=split, data_dir=shared_data())
    assert x.shape == (count, 180, 240, 3) and x.dtype == np.uint8
    assert y.shape == (count, 180, 240) and y.dtype == np.uint8
    assert set(np.unique(y)) <= set(range(12))
