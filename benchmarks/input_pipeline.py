"""Where a `fit_students` epoch spends its time: input pipeline or step.

For the MNIST class (the paper's teacher, n = 4 `mnist_student` towers,
under the policy the CLI's `--precision auto` picks on this machine),
side by side in one process, in alternating rounds:

- `pipeline`: one epoch of the training batches `fit_students` feeds its
  trainer (`features.representation(...).batches(shuffle=True)`), iterated
  alone: what the input pipeline costs when nothing waits for it;
- `fit`: one training epoch of the students' trainer on those batches,
  as `fit_students` runs it;
- `ideal`: the same trainer epoch on batches cached as tensors
  beforehand (no shuffle, no per-element work): a floor for the step
  time.

`fit - ideal` is what the pipeline adds to an epoch; `pipeline / fit` the
share of an epoch the pipeline would take if it did not overlap the step.
The same for the disk cache, and for `fit_teacher` on NumPy arrays (Keras'
own adapter) against pre-batched tensors. Medians over rounds; writes
`benchmarks/results/input_pipeline.json`.

Also writes `input_pipeline.md`, the table the results page quotes
(`--markdown-only` rewrites it from the JSON without measuring).

Run: python benchmarks/input_pipeline.py [--samples N] [--rounds 3]
     [--batch-size 128] [--data-dir DIR]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import datasets  # noqa: E402
from teacherclass import features  # noqa: E402
from teacherclass import precision  # noqa: E402
from teacherclass import training  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import environment  # noqa: E402
from _common import write_result  # noqa: E402


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _iterate(dataset):
    for _ in dataset:
        pass


def _materialized(dataset):
    """The dataset's batches cached as tensors: no per-element work left."""
    cached = dataset.cache()
    _iterate(cached)  # fills the cache
    return cached


def _trainer(tc, steps_per_execution):
    trainer = training.for_class(tc)
    trainer.compile(
        optimizer="adam", loss="mse", steps_per_execution=steps_per_execution
    )
    return trainer


def students(tc, x, batch_size, rounds, steps_per_execution, cache=None):
    """Pipeline, fit and ideal epoch times of the students' training."""
    start = time.perf_counter()
    feats = features.representation(
        tc.cut, tc.chunks, x, batch_size, cache=cache
    )
    extract = time.perf_counter() - start
    train = feats.batches(batch_size, shuffle=True)
    ideal = _materialized(feats.batches(batch_size))
    trainer = _trainer(tc, steps_per_execution)
    # Traces the step (and fills tf.data's buffers) before timing.
    trainer.fit(train, epochs=1, verbose=0)
    trainer.fit(ideal, epochs=1, verbose=0)
    times = {"pipeline": [], "fit": [], "ideal": []}
    for r in range(rounds):
        order = ["pipeline", "fit", "ideal"]
        order = order if r % 2 == 0 else order[::-1]
        for way in order:
            if way == "pipeline":
                times[way].append(_seconds(lambda: _iterate(train)))
            else:
                data = train if way == "fit" else ideal
                times[way].append(
                    _seconds(lambda d=data: trainer.fit(d, epochs=1, verbose=0))
                )
    return _summary(times, extract_seconds=extract)


def teacher(x, y, batch_size, rounds):
    """`fit` of the teacher on NumPy arrays vs on pre-batched tensors."""
    model = architectures.mnist_teacher()
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    tensors = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(batch_size)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    model.fit(tensors, epochs=1, verbose=0)
    times = {"fit": [], "ideal": []}
    for r in range(rounds):
        order = ["fit", "ideal"] if r % 2 == 0 else ["ideal", "fit"]
        for way in order:
            if way == "fit":
                run = lambda: model.fit(  # noqa: E731
                    x, y, batch_size=batch_size, epochs=1, verbose=0
                )
            else:
                run = lambda: model.fit(tensors, epochs=1, verbose=0)  # noqa: E731
            times[way].append(_seconds(run))
    return _summary(times)


def _summary(times, **extra):
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 3) for k, v in medians.items()},
        "pipeline_adds_seconds": round(medians["fit"] - medians["ideal"], 3),
        "pipeline_adds_share": round(
            (medians["fit"] - medians["ideal"]) / medians["fit"], 3
        ),
        **{k: round(v, 3) for k, v in extra.items()},
    }
    if "pipeline" in medians:
        result["pipeline_alone_share"] = round(
            medians["pipeline"] / medians["fit"], 3
        )
    return result


_ROWS = (
    ("students_memory_cache", "fit_students epoch, memory cache"),
    ("students_disk_cache", "fit_students epoch, disk cache"),
    ("teacher_numpy", "fit_teacher epoch, NumPy arrays"),
)


def markdown(result):
    """The result as the Markdown table the results page quotes."""
    s = result["settings"]
    lines = [
        "### Input pipeline or step: where an epoch's time goes",
        "",
        f"{s['class']}; {s['samples']:,} samples, batch {s['batch_size']}, "
        f"steps_per_execution {s['steps_per_execution']}, {s['precision']};"
        f" medians of {s['rounds']} alternating rounds (seconds per epoch).",
        "",
        "| what | pipeline alone | fit | fit on cached batches | "
        "pipeline alone / fit |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    shares, overlap = [], []
    for key, label in _ROWS:
        r = result[key]
        m = r["median_seconds"]
        alone = r.get("pipeline_alone_share")
        fit, ideal = r["seconds"]["fit"], r["seconds"]["ideal"]
        overlap.append(min(fit) <= max(ideal) and min(ideal) <= max(fit))
        if alone is not None:
            shares.append(alone)
        pipeline = f"{m['pipeline']:.3f}" if "pipeline" in m else "-"
        share = "-" if alone is None else f"{100 * alone:.1f}%"
        lines.append(
            f"| {label} | {pipeline} | {m['fit']:.2f} | {m['ideal']:.2f} | "
            f"{share} |"
        )
    lines += [
        "",
        "'pipeline alone' iterates the training batches with no step; "
        "'fit on cached batches' trains on batches held as tensors (no "
        "shuffle, no per-element work). The rounds of 'fit' and 'fit on "
        "cached batches' "
        + ("overlap in every row" if all(overlap) else "do not all overlap")
        + f"; the pipeline alone takes {100 * min(shares):.1f}-"
        f"{100 * max(shares):.1f}% of a students' epoch.",
    ]
    return "\n".join(lines) + "\n"


def _write(result, output):
    write_result(output, result)
    table = Path(output).with_suffix(".md")
    table.write_text(markdown(result))
    print(f"wrote {table}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps-per-execution", type=int, default=16)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--output", default=str(HERE / "results" / "input_pipeline.json")
    )
    parser.add_argument("--markdown-only", action="store_true")
    args = parser.parse_args(argv)
    if args.markdown_only:
        import json

        result = json.loads(Path(args.output).read_text())
        # Older files kept machine and versions under "environment".
        result.update(result.pop("environment", {}))
        _write(result, args.output)
        return
    policy = precision.set_policy("auto")
    keras.utils.set_random_seed(0)
    x, y = datasets.load("mnist", "train", data_dir=args.data_dir)
    x = architectures.for_dataset("mnist").prepare(x[: args.samples])
    y = y[: args.samples]
    tc = TeacherClass(
        architectures.mnist_teacher(),
        num_students=4,
        student=architectures.mnist_student(4),
    )
    result = {
        "benchmark": "input_pipeline",
        "settings": {
            "samples": int(len(x)),
            "batch_size": args.batch_size,
            "steps_per_execution": args.steps_per_execution,
            "rounds": args.rounds,
            "precision": policy,
            "class": "MNIST paper teacher (untrained), n = 4 mnist_student",
        },
        **environment(),
    }
    result["students_memory_cache"] = students(
        tc, x, args.batch_size, args.rounds, args.steps_per_execution
    )
    with tempfile.TemporaryDirectory() as tmp:
        result["students_disk_cache"] = students(
            tc,
            x,
            args.batch_size,
            args.rounds,
            args.steps_per_execution,
            cache=os.path.join(tmp, "cache"),
        )
    result["teacher_numpy"] = teacher(x, y, args.batch_size, args.rounds)
    for name in (
        "students_memory_cache",
        "students_disk_cache",
        "teacher_numpy",
    ):
        r = result[name]
        print(
            f"{name}: median epoch seconds {r['median_seconds']}, the "
            f"pipeline adds {r['pipeline_adds_seconds']} s "
            f"({100 * r['pipeline_adds_share']:.1f}% of an epoch)"
        )
    _write(result, args.output)


if __name__ == "__main__":
    main()
