"""How much each chunk order groups a teacher's correlated features.

For a trained teacher of any dataset `reproduce.py` knows, computes its
representation (the output of its feature layer, `teacher.trunk`) on the
training part of the first `--samples` training samples (the last
`reproduce_settings.VALIDATION_SHARE` held out, as `reproduce.py
--split validation` holds them out; the test split is not read), deals
the standardized features to n chunks by each chunk order
(`TeacherClass(chunk_order=...)`: in order, by variance, by correlation)
and reports, per order, the share of the features' squared correlations
that lies within chunks (`conditioning.within_chunk_share`: about 1 / n
for unrelated features) and each chunk's effective rank (the exponential
of the entropy of its correlation matrix's normalized eigenvalues: how
many independent directions a student must learn), and how many of
the teacher's features are constant on these samples. Written to ask
whether the share predicts where chunks by correlation pay (CIFAR-10)
and where not (IMDB); the accuracies themselves are in the datasets'
results files.

    python benchmarks/chunk_order_share.py --dataset fashion_mnist \
        --teacher \
        benchmarks/cache/fashion_mnist/teacher-1eaaacfe13-seed1.keras \
        --data-dir ../shared/data --samples 30000
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
import reproduce_runs as runs  # noqa: E402
import reproduce_settings as settings  # noqa: E402
from _common import environment  # noqa: E402

from teacherclass import chunking  # noqa: E402
from teacherclass import conditioning  # noqa: E402
from teacherclass import teacher as teacher_lib  # noqa: E402

OUT = HERE / "results" / "chunk_order_share.json"
BATCH = 512
# Below it a feature is constant: the library's own threshold, which the
# constant-chunk warning of `Conditioning.fit` uses.
CONSTANT_STD = conditioning._MIN_STD


def effective_rank(covariance):
    """`exp(entropy)` of the normalized eigenvalues of the correlation
    matrix of `covariance`: 1 for one direction, d for d unrelated
    coordinates; constant coordinates count for nothing."""
    covariance = np.asarray(covariance, dtype=np.float64)
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    live = std >= CONSTANT_STD
    if not live.any():
        return 0.0
    correlation = covariance[np.ix_(live, live)] / np.outer(
        std[live], std[live]
    )
    eigenvalues = np.clip(np.linalg.eigvalsh(correlation), 0.0, None)
    p = eigenvalues / eigenvalues.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def chunk_ranks(covariance, order, chunks):
    """Each chunk's `effective_rank`: chunk i holds the features
    `order[start_i:stop_i]` of `covariance`."""
    return [
        effective_rank(covariance[np.ix_(order[a:b], order[a:b])])
        for a, b in chunking.bounds(chunks)
    ]


def order_report(features, covariance, chunks):
    """Per order (contiguous and `conditioning.ORDERS`): the within-chunk
    share of squared correlations and each chunk's effective rank."""
    report = {}
    for name in ("contiguous", *conditioning.ORDERS):
        if name == "contiguous":
            order = np.arange(covariance.shape[0])
        else:
            fitted = conditioning.Conditioning.fit(
                features, "standardize", chunks=chunks, order=name
            )
            # Target j is feature `order[j]` (a scaled permutation).
            order = np.argmax(np.abs(fitted.matrix), axis=0)
        report[name] = {
            "within_chunk_share": conditioning.within_chunk_share(
                covariance, order, chunks
            ),
            "chunk_effective_ranks": [
                round(r, 2) for r in chunk_ranks(covariance, order, chunks)
            ],
        }
    return report


# What makes a row: a row measured again with all of these equal
# replaces the earlier one.
ROW_KEY = ("dataset", "teacher", "feature_layer", "samples", "students")


def row_key(row):
    """The settings that a row measures, and its chunk order."""
    return (*(row.get(k) for k in ROW_KEY), row["order"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=settings.DATASETS)
    p.add_argument("--teacher", required=True, help="a trained .keras file")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--students", type=int, nargs="+", default=[4])
    p.add_argument("--feature-layer", default=None)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    teacher = keras.saving.load_model(args.teacher)
    cache = Path(args.teacher).resolve().parent
    x, y, _, _, _ = runs.load_data(
        args.dataset, args.data_dir, args.samples, cache, test=False
    )
    x, _, _, _ = runs.carve_validation(x, y, settings.VALIDATION_SHARE)
    layer = teacher_lib.get_feature_layer(teacher, args.feature_layer)
    trunk = teacher_lib.trunk(teacher, layer)
    features = np.asarray(trunk.predict(x, batch_size=BATCH, verbose=0))
    features = features.reshape(-1, features.shape[-1]).astype(np.float64)
    _, covariance = conditioning.mean_and_covariance(features)
    width = covariance.shape[0]
    teacher_row = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "dataset": args.dataset,
        "teacher": args.teacher,
        "feature_layer": layer.name,
        "samples": int(len(x)),
        "width": int(width),
        "effective_rank": round(effective_rank(covariance), 2),
        # Features constant on these samples (dead ReLUs): they
        # correlate with nothing.
        "constant_features": int(np.sum(np.diag(covariance) < CONSTANT_STD**2)),
    }
    rows = []
    for n in args.students:
        chunks = chunking.contiguous(width, n)
        for name, row in order_report(features, covariance, chunks).items():
            print(
                f"n={n} {name}: within-chunk share "
                f"{row['within_chunk_share']:.3f}, effective ranks "
                f"{row['chunk_effective_ranks']}"
            )
            rows.append({**teacher_row, "students": n, "order": name, **row})
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {}
    record.update(
        {
            "benchmark": "chunk_order_share",
            "script": "benchmarks/chunk_order_share.py",
            "note": __doc__.split("\n\n")[1].replace("\n", " "),
            **environment(),
        }
    )
    # One row per setting and order; a setting measured again replaces
    # its rows, and rows of other settings stay.
    measured = {row_key(r) for r in rows}
    record["runs"] = [
        r for r in record.get("runs", []) if row_key(r) not in measured
    ] + rows
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
