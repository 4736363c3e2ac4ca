"""Students trained three ways: per-student fits, multi-output, one pass.

(a) one default-compiled `keras.Model.fit` per student on the cached
targets (its chunk of the teacher's representation); (b) the strongest
peer a Keras user would write: one functional model with the n towers as
outputs and a dict of MSE losses, fit once on the cached targets; (c)
`TeacherClass.fit_students`. Same towers, initial weights, cached targets,
batch size, precision, epochs and `steps_per_execution` (measured at Keras'
default of 1 and at 16), side by side in one process, in rounds that rotate
and reverse the order of the three ways. Throughput is student-samples per
second (one student seeing one sample), excluding each fit's first epoch
(it traces the graphs). Prints the median over rounds with the spread, the
teacher's passes per sample, the peak RSS, then `peer_ratio: Y` = (c) / (b)
and last `ratio: X` = (c) / (a), at the last `steps_per_execution` given.

Run: python benchmarks/students_throughput.py [--samples N] [--rounds 5]
     [--epochs 3] [--steps-per-execution 1,16] [--data-dir DIR]
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import chunking  # noqa: E402
from teacherclass import datasets  # noqa: E402
from teacherclass import precision  # noqa: E402
from teacherclass import teacher as teacher_lib  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import EpochTimer  # noqa: E402
from _common import environment  # noqa: E402
from _common import write_result  # noqa: E402

WAYS = {
    "a": "(a) one fit per student",
    "b": "(b) multi-output Keras model",
    "c": "(c) fit_students, one pass",
}


def _data(args):
    try:
        x, _ = datasets.load("mnist", "train", data_dir=args.data_dir)
        source = "mnist (real, official IDX files)"
    except (FileNotFoundError, ValueError):
        rng = np.random.default_rng(args.seed)
        x = rng.integers(0, 256, (args.samples, 28, 28, 1), dtype=np.uint8)
        source = "synthetic uint8 noise, MNIST-shaped"
    x = x[: args.samples].astype("float32") / 255.0
    return x, source


def _peak_rss_mb():
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _copy(tower):
    """A fresh tower of the same configuration (and name)."""
    return tower.__class__.from_config(tower.get_config())


def _per_student(tc, initial, x, features, args, spe):
    """(a): one default-compiled fit per student; per-epoch seconds."""
    per_student = []
    for i, (start, stop) in enumerate(chunking.bounds(tc.chunks)):
        inputs = keras.Input(x.shape[1:])
        tower = _copy(tc.students[i])
        model = keras.Model(inputs, tower(inputs))
        tower.set_weights(initial[i])
        model.compile(optimizer="adam", loss="mse", steps_per_execution=spe)
        timer = EpochTimer()
        model.fit(
            x,
            features[:, start:stop],
            batch_size=args.batch_size,
            epochs=args.epochs,
            verbose=0,
            callbacks=[timer],
        )
        per_student.append(timer.times)
    return [sum(t) for t in zip(*per_student)]


def _multi_output(tc, initial, x, features, args, spe):
    """(b): one functional model, n outputs, a dict of MSE losses."""
    inputs = keras.Input(x.shape[1:])
    outputs, targets, losses = {}, {}, {}
    for i, (start, stop) in enumerate(chunking.bounds(tc.chunks)):
        tower = _copy(tc.students[i])
        name = f"student_{i}"
        outputs[name] = tower(inputs)
        tower.set_weights(initial[i])
        targets[name] = features[:, start:stop]
        losses[name] = "mse"
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=losses, steps_per_execution=spe)
    timer = EpochTimer()
    model.fit(
        x,
        targets,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[timer],
    )
    return timer.times


def _one_pass(tc, initial, x, args, spe):
    """(c): fit_students; its own cache of the teacher's features."""
    for tower, weights in zip(tc.students, initial):
        tower.set_weights(weights)
    timer = EpochTimer()
    start = time.perf_counter()
    tc.fit_students(
        x,
        loss="mse",  # as before (a comparison of MSE fits)
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[timer],
        steps_per_execution=spe,
    )
    # What fit_students spends outside its epochs: reading the teacher
    # once per sample into the cache.
    timer.extraction = time.perf_counter() - start - sum(timer.times)
    return timer


def _rate(samples, epoch_times):
    """Student-samples per second over the epochs after the first."""
    timed = epoch_times[1:] if len(epoch_times) > 1 else epoch_times
    return samples * len(timed) / sum(timed)


def _spread(values):
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {
        "median": float(q[2]),
        "p25": float(q[1]),
        "p75": float(q[3]),
        "min": float(q[0]),
        "max": float(q[4]),
    }


def _setting(tc, initial, x, features, args, spe):
    """Every round of the three ways at one steps_per_execution."""
    samples = len(x) * len(tc.chunks)
    ways = list(WAYS)
    # No memory per way: ru_maxrss is the process's peak so far, which
    # the ways share (the whole run's peak is in `peak_rss_mb`).
    rounds, extraction = [], []
    for r in range(args.rounds):
        order = ways[r % 3 :] + ways[: r % 3]
        if r % 2:
            order.reverse()
        times = {}
        for way in order:
            if way == "a":
                times[way] = _per_student(tc, initial, x, features, args, spe)
            elif way == "b":
                times[way] = _multi_output(tc, initial, x, features, args, spe)
            else:
                timer = _one_pass(tc, initial, x, args, spe)
                times[way] = timer.times
                extraction.append(timer.extraction)
        rate = {w: _rate(samples, times[w]) for w in ways}
        rounds.append(
            {
                "order": "".join(order),
                "epoch_seconds": times,
                "samples_per_second": rate,
                "ratio": rate["c"] / rate["a"],
                "peer_ratio": rate["c"] / rate["b"],
            }
        )
        print(
            f"  spe={spe} round {r + 1}/{args.rounds} ({''.join(order)}): "
            + ", ".join(f"{w} {rate[w]:,.0f}/s" for w in ways)
            + f"; c/a {rate['c'] / rate['a']:.2f}, "
            f"c/b {rate['c'] / rate['b']:.2f}",
            flush=True,
        )
    return {
        "steps_per_execution": spe,
        "rounds": rounds,
        "samples_per_second": {
            w: _spread([r["samples_per_second"][w] for r in rounds])
            for w in ways
        },
        "ratio": _spread([r["ratio"] for r in rounds]),
        "peer_ratio": _spread([r["peer_ratio"] for r in rounds]),
        "fit_students_extraction_seconds": _spread(extraction),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--precision", default="float32")
    parser.add_argument(
        "--steps-per-execution",
        default="1,16",
        help="comma-separated; every way runs at each (Keras' default: 1)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=str(HERE / "results" / "students_throughput.json")
    )
    args = parser.parse_args()
    settings = [int(s) for s in args.steps_per_execution.split(",") if s]
    if args.rounds < 1 or args.epochs < 2 or not settings:
        parser.error(
            "--rounds >= 1, --epochs >= 2 (the first epoch traces) and at "
            "least one --steps-per-execution are needed"
        )

    keras.utils.set_random_seed(args.seed)
    args.precision = precision.set_policy(args.precision)
    x, source = _data(args)
    teacher = architectures.mnist_teacher()
    tc = TeacherClass(
        teacher,
        num_students=args.students,
        student=architectures.mnist_student(args.students),
    )
    initial = [s.get_weights() for s in tc.students]
    trunk = teacher_lib.trunk(teacher, teacher.get_layer(tc.feature_layer))
    start = time.perf_counter()
    # The cached targets of (a) and (b): the trunk once per sample, as
    # fit_students' own cache.
    features = trunk.predict(x, batch_size=1024, verbose=0).astype("float32")
    extraction = time.perf_counter() - start

    results = [
        _setting(tc, initial, x, features, args, spe) for spe in settings
    ]
    result = {
        "benchmark": "students_throughput",
        **environment(),
        "config": {
            "data": source,
            "samples": len(x),
            "students": args.students,
            "student_params": [s.count_params() for s in tc.students],
            "epochs": args.epochs,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "precision": args.precision,
            "steps_per_execution": settings,
            "seed": args.seed,
        },
        "note": (
            "student-samples per second, epochs after the first; ratio = "
            "(c) fit_students / (a) one fit per student, peer_ratio = (c) / "
            "(b) a multi-output Keras model, both with the same "
            "steps_per_execution; medians over rounds of per-round ratios"
        ),
        "teacher_passes_per_sample": {
            "a": 1,
            "b": 1,
            "c": 1,
            "how": "the trunk runs once per sample into a cache: "
            "trunk.predict before (a) and (b), fit_students' cache in (c)",
            "cache_seconds_a_b": extraction,
        },
        "peak_rss_mb": _peak_rss_mb(),
        "settings": results,
        "ratio": results[-1]["ratio"]["median"],
        "peer_ratio": results[-1]["peer_ratio"]["median"],
    }

    print(
        f"\ndata: {source}; {len(x)} samples, {args.students} students, "
        f"batch {args.batch_size}, {args.precision}, {args.epochs} epochs, "
        f"{args.rounds} rounds"
    )
    print(f"{'way':<32} {'spe':>4} {'median /s':>11} {'min-max':>19}")
    for s in results:
        for w, label in WAYS.items():
            r = s["samples_per_second"][w]
            print(
                f"{label:<32} {s['steps_per_execution']:>4} "
                f"{r['median']:>11,.0f} "
                f"{r['min']:>9,.0f}-{r['max']:<9,.0f}"
            )
    for s in results:
        spe = s["steps_per_execution"]
        for key in ("ratio", "peer_ratio"):
            r = s[key]
            print(
                f"spe={spe} {key}: median {r['median']:.2f} "
                f"(IQR {r['p25']:.2f}-{r['p75']:.2f}, "
                f"min-max {r['min']:.2f}-{r['max']:.2f})"
            )
    print(
        "teacher passes per sample: 1 in every way (cache: "
        f"{extraction:.1f} s for (a)/(b), median "
        f"{results[-1]['fit_students_extraction_seconds']['median']:.1f} s "
        "inside (c))"
    )
    print(f"peak RSS: {result['peak_rss_mb']:,.0f} MB")
    write_result(args.out, result)
    print(f"(ratios at steps_per_execution={settings[-1]})")
    print(f"peer_ratio: {result['peer_ratio']:.2f}")
    print(f"ratio: {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
