"""How long `conditioning.correlated_order` takes as the width d grows.

`TeacherClass(chunk_order="correlation")` partitions a teacher's d
standardized features once per class (`conditioning.correlated_order`).
Its first version scored every pair of coordinates for every swap (the
full `d x d` gain matrix) and started from a full eigendecomposition,
a cost growing about as d^3: fine at CIFAR-10's d = 256, slow for a
ResNet-50's 2,048 features or a VGG's 4,096. The library now starts
from a power iteration and scores, per swap, only the pairs that can be
the best (`conditioning._best_swap`): the same swaps, so the same
partition (checked here, and in tests/test_conditioning.py).

This times both on the same covariances, in rounds of alternating order
(the library first in even rounds, the reference first in odd ones; each
row records which ran first per round; the first version is
`reference_order` below, kept as the reference), checks
that they return the same partition, and times the library alone at
widths where the reference would take too long. The covariances are of
synthetic features: 10 latent factors, each feature loading on ~30% of
them, plus noise (structure like a teacher's: groups of correlated
features, 8,000 samples).

Run: python benchmarks/correlated_order_speed.py [--widths 256 512 1024]
         [--library-only 2048 4096] [--chunks 4] [--rounds 2]
Writes benchmarks/results/correlated_order_speed.json.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import environment  # noqa: E402

from teacherclass import conditioning  # noqa: E402

OUT = HERE / "results" / "correlated_order_speed.json"


def reference_order(covariance, chunks):
    """The first `correlated_order`: every pair scored for every swap.

    A start from the leading eigenvector (`np.linalg.eigh`), then the
    swap that gains the most over all `d x d` pairs, until none gains.
    """
    affinity = conditioning._squared_correlation(covariance)
    d = affinity.shape[0]
    leading = np.linalg.eigh(affinity)[1][:, -1]
    start = np.argsort(-np.abs(leading), kind="stable")
    group = np.repeat(np.arange(len(chunks)), chunks)[np.argsort(start)]
    sums = affinity @ np.eye(len(chunks))[group]
    rows = np.arange(d)
    for _ in range(10 * d):
        to = (sums - sums[rows, group][:, None])[:, group]
        gain = to + to.T - 2 * affinity
        gain[group[:, None] == group[None, :]] = -np.inf
        i, j = np.unravel_index(np.argmax(gain), gain.shape)
        if not gain[i, j] > 1e-12:
            break
        a, b = group[i], group[j]
        sums[:, a] += affinity[:, j] - affinity[:, i]
        sums[:, b] += affinity[:, i] - affinity[:, j]
        group[i], group[j] = b, a
    return np.concatenate(
        [np.flatnonzero(group == g) for g in range(len(chunks))]
    )


def synthetic_covariance(d, seed=0, samples=8000, factors=10):
    """Covariance of d features built from shared latent factors."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(samples, factors))
    loadings = rng.normal(size=(factors, d)) * (rng.random((factors, d)) < 0.3)
    features = z @ loadings + 0.5 * rng.normal(size=(samples, d))
    return np.cov(features.T)


def partition(order, chunks):
    """The chunks as sets of coordinates (the order within one is free)."""
    bounds = np.cumsum(chunks)[:-1]
    return sorted(sorted(c.tolist()) for c in np.split(order, bounds))


def _timed(function, covariance, chunks):
    start = time.perf_counter()
    order = function(covariance, chunks)
    return order, time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="*", default=[256, 512, 1024])
    p.add_argument("--library-only", type=int, nargs="*", default=[2048, 4096])
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    rows = []
    for d in [*args.widths, *args.library_only]:
        covariance = synthetic_covariance(d)
        chunks = (d // args.chunks,) * args.chunks
        chunks = (d - sum(chunks[1:]),) + chunks[1:]
        both = d in args.widths
        times = {"library": [], "reference": [] if both else None}
        first = [] if both else None
        functions = {
            "library": conditioning.correlated_order,
            "reference": reference_order,
        }
        for r in range(args.rounds if both else 1):
            arms = ["library", "reference"] if both else ["library"]
            if r % 2:
                arms.reverse()
            for arm in arms:
                found, seconds = _timed(functions[arm], covariance, chunks)
                times[arm].append(seconds)
                if arm == "library":
                    order = found
                else:
                    reference = found
            if both:
                first.append(arms[0])
        row = {
            "d": d,
            "chunks": list(chunks),
            "library_seconds": times["library"],
            "reference_seconds": times["reference"],
            "first": first,
            "within_chunk_share": conditioning.within_chunk_share(
                covariance, order, chunks
            ),
            "same_partition": (
                partition(order, chunks) == partition(reference, chunks)
                if both
                else None
            ),
        }
        if both:
            row["speedup"] = float(
                np.median(times["reference"]) / np.median(times["library"])
            )
        rows.append(row)
        print(
            f"d = {d}: library {np.median(times['library']):.2f} s"
            + (
                f", reference {np.median(times['reference']):.2f} s "
                f"({row['speedup']:.1f}x), same partition: "
                f"{row['same_partition']}"
                if both
                else " (reference not run)"
            )
            + f"; within-chunk share {row['within_chunk_share']:.3f}",
            flush=True,
        )
    result = {
        "benchmark": "correlated_order_speed",
        "argv": sys.argv[1:] if argv is None else list(argv),
        "note": (
            "wall seconds of one call, median over the rounds (library and "
            "reference alternating, the one run first alternating too: "
            "`first`); reference: every pair scored for "
            "every swap, eigh start (the first version); synthetic "
            "covariances, 8,000 samples of 10 latent factors"
        ),
        "rows": rows,
        **environment(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
