"""Packs datasets as compact uint8 `.npz` files, outside git.

A GPU machine may receive only a copy of the working tree of at most
64 MiB, and not `../shared/data`. This script reads the shared datasets
through `teacherclass.datasets.load` (offline) and writes
`benchmarks/cache/<name>.npz` (ignored by git) with `x_train`,
`y_train`, `x_test`, `y_test` as uint8, compressed. The sizes measured
here: MNIST 11.0 MiB; CIFAR-10 cut to its first 10,000 training and
2,000 test images 32.6 MiB. Pass `benchmarks/cache` in the
device tool's `carry` list.

Usage:
    python benchmarks/pack_data.py --data-dir ../shared/data \
        --datasets mnist cifar10 --max-train cifar10=10000 \
        --max-test cifar10=2000
"""

import argparse
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / "cache"


def pack(name, data_dir, max_train=None, max_test=None, out_dir=CACHE):
    """Writes `out_dir/<name>.npz` from the offline dataset; returns path.

    Args:
        name: a `teacherclass.datasets` image dataset ("mnist",
            "fashion_mnist", "cifar10").
        data_dir: the folder holding the dataset in its official layout.
        max_train: int or None, keep the first `max_train` training
            samples (the loader's order is already class-mixed).
        max_test: int or None, the same for the test split.
        out_dir: where to write.

    Returns:
        The `Path` written.
    """
    from teacherclass import datasets

    arrays = {}
    for split, limit in (("train", max_train), ("test", max_test)):
        x, y = datasets.load(name, split, data_dir=data_dir)
        arrays[f"x_{split}"] = np.asarray(x[:limit], dtype=np.uint8)
        arrays[f"y_{split}"] = np.asarray(y[:limit], dtype=np.uint8)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.npz"
    np.savez_compressed(path, **arrays)
    return path


def load(name, cache_dir=CACHE):
    """Reads a packed dataset: `((x_train, y_train), (x_test, y_test))`.

    Returns None when `cache_dir/<name>.npz` does not exist.
    """
    path = Path(cache_dir) / f"{name}.npz"
    if not path.exists():
        return None
    with np.load(path) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _limits(pairs):
    """`["cifar10=10000"]` -> `{"cifar10": 10000}`."""
    limits = {}
    for pair in pairs:
        name, _, number = pair.partition("=")
        if not number.isdigit() or int(number) < 1:
            raise SystemExit(
                f"limits are NAME=N with N >= 1. Received: {pair!r}"
            )
        limits[name] = int(number)
    return limits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument(
        "--max-train",
        nargs="*",
        default=[],
        metavar="NAME=N",
        help="keep the first N training samples of dataset NAME",
    )
    parser.add_argument("--max-test", nargs="*", default=[], metavar="NAME=N")
    parser.add_argument("--out-dir", default=str(CACHE))
    args = parser.parse_args(argv)
    max_train, max_test = _limits(args.max_train), _limits(args.max_test)
    for name in args.datasets:
        path = pack(
            name,
            args.data_dir,
            max_train.get(name),
            max_test.get(name),
            args.out_dir,
        )
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
