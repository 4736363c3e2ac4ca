"""Which classes each chunk of a teacher's representation speaks for.

For a trained CIFAR-10 teacher and a cache of its representation over
augmented views (`teacherclass.views.ViewCache`, e.g. the one
`student_probe.py` builds), deals the standardized features to n chunks
by each chunk order (`TeacherClass(chunk_order=...)`: in order, by
variance, by correlation) and reports, per order, the share of the
features' squared correlations that lies within chunks
(`conditioning.within_chunk_share`) and, per chunk, the classes whose
evidence it holds: for class c, the chunk's share of the positive
evidence `sum_j max(W[j, c], 0) * std_j` over all features j (`W` the
teacher's classifier kernel, `std_j` feature j's spread), the classes
with the largest shares first. Written to decide and explain the chunk
order; the teacher does not run (the cache holds its features).

    python benchmarks/chunk_classes.py \
        --teacher benchmarks/cache/cifar10/teacher-f30c7e28d9-seed2.keras \
        --views benchmarks/cache/probe/teacher-f30c7e28d9-seed2-45000
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import environment  # noqa: E402

from teacherclass import chunking  # noqa: E402
from teacherclass import conditioning  # noqa: E402
from teacherclass import views as views_lib  # noqa: E402

CIFAR10_CLASSES = (
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
)
OUT = HERE / "results" / "chunk_classes.json"


def chunk_classes(covariance, kernel, order, chunks, names, top=4):
    """Per chunk, the `top` classes by the chunk's share of their evidence.

    Args:
        covariance: array `(d, d)`, the features' covariance.
        kernel: array `(d, classes)`, the classifier's kernel.
        order: int array, chunk i holds features `order[start_i:stop_i]`.
        chunks: tuple of chunk widths.
        names: the class names.
        top: int, classes listed per chunk.

    Returns:
        A list, per chunk, of `{class name: share}` (largest first).
    """
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    evidence = np.clip(kernel, 0.0, None) * std[:, None]
    total = evidence.sum(0)
    out = []
    for start, stop in chunking.bounds(chunks):
        share = evidence[order[start:stop]].sum(0) / total
        best = np.argsort(-share, kind="stable")[:top]
        out.append({names[c]: round(float(share[c]), 3) for c in best})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="a trained .keras file")
    p.add_argument("--views", required=True, help="a ViewCache directory")
    p.add_argument("--students", type=int, default=4)
    p.add_argument("--classifier", default="classifier")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    cache = views_lib.ViewCache(args.views)
    teacher = keras.saving.load_model(args.teacher)
    cache.check_teacher(teacher)
    kernel = np.asarray(teacher.get_layer(args.classifier).kernel.numpy())
    views = range(cache.num_views + 1)
    _, covariance = conditioning.mean_and_covariance(
        cache.targets(v) for v in views
    )
    width = covariance.shape[0]
    chunks = chunking.contiguous(width, args.students)
    orders = {}
    for name in ("contiguous", *conditioning.ORDERS):
        fitted = conditioning.Conditioning.fit(
            (cache.targets(v) for v in views),
            "standardize",
            chunks=chunks,
            order=name,
        )
        # Target j is feature `order[j]` (a scaled permutation).
        order = np.argmax(np.abs(fitted.matrix), axis=0)
        orders[name] = {
            "within_chunk_share": conditioning.within_chunk_share(
                covariance, order, chunks
            ),
            "chunks": chunk_classes(
                covariance, kernel, order, chunks, CIFAR10_CLASSES
            ),
        }
        print(name, json.dumps(orders[name]))
    record = {
        "benchmark": "chunk_classes",
        "script": "benchmarks/chunk_classes.py",
        "note": __doc__.split("\n\n")[1].replace("\n", " "),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "teacher": args.teacher,
        "views": args.views,
        "samples_per_view": int(cache.targets(0).shape[0]),
        "num_views": cache.num_views,
        "chunks": list(chunks),
        "orders": orders,
        **environment(),
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
