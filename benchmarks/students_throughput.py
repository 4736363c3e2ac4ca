"""Students trained in one pass vs one `fit` per student.

(a) the reference way: one default-compiled `keras.Model.fit` per student on
precomputed targets (its chunk of the teacher's representation); (b)
`TeacherClass.fit_students`, all students in one pass. Same towers, same
initial weights, same data, batch size, precision and epochs, measured in
one run on this machine, in rounds that alternate which way goes first.
Prints samples per second (student-samples: one
student seeing one sample) for each and `ratio: X` = (b) / (a), and writes
JSON next to this script.

Run: python benchmarks/students_throughput.py [--data-dir DIR]
     [--steps-per-execution N]  (default 16 for (b); (a) keeps Keras' 1)
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import chunking  # noqa: E402
from teacherclass import datasets  # noqa: E402
from teacherclass import teacher as teacher_lib  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import EpochTimer  # noqa: E402
from _common import environment  # noqa: E402
from _common import write_result  # noqa: E402


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


def _rate(samples, times, skip_first):
    times = times[1:] if skip_first and len(times) > 1 else times
    return samples * len(times) / sum(times)


def _reference(tc, initial, x, features, args):
    """(a): one default-compiled fit per student; per-epoch seconds."""
    per_student = []
    for i, (start, stop) in enumerate(chunking.bounds(tc.chunks)):
        inputs = keras.Input(x.shape[1:])
        tower = tc.students[i].__class__.from_config(
            tc.students[i].get_config()
        )
        model = keras.Model(inputs, tower(inputs))
        tower.set_weights(initial[i])
        model.compile(optimizer="adam", loss="mse")
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


def _one_pass(tc, initial, x, args):
    """(b): fit_students, one pipeline and one step for all students."""
    for tower, weights in zip(tc.students, initial):
        tower.set_weights(weights)
    kwargs = {}
    if args.steps_per_execution:
        kwargs["steps_per_execution"] = args.steps_per_execution
    timer = EpochTimer()
    tc.fit_students(
        x,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[timer],
        **kwargs,
    )
    return timer.times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--precision", default="float32")
    # Small towers on CPU are dominated by per-step overhead: 16 steps per
    # graph call is what reached the target (see results/*.json); 1 is
    # Keras' default and fit_students'.
    parser.add_argument("--steps-per-execution", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=str(HERE / "results" / "students_throughput.json")
    )
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(args.precision)
    x, source = _data(args)
    n = len(x)
    teacher = architectures.mnist_teacher()
    tc = TeacherClass(
        teacher,
        num_students=args.students,
        student=architectures.mnist_student(args.students),
    )
    initial = [s.get_weights() for s in tc.students]
    trunk = teacher_lib.trunk(teacher, teacher.get_layer(tc.feature_layer))
    features = trunk.predict(x, batch_size=1024, verbose=0).astype("float32")

    # Rounds alternate the order (a, b), (b, a), ... so that load from
    # other processes on the machine falls on both ways alike.
    rounds = []
    for r in range(args.rounds):
        times = {}
        for way in ("a", "b") if r % 2 == 0 else ("b", "a"):
            if way == "a":
                times[way] = _reference(tc, initial, x, features, args)
            else:
                times[way] = _one_pass(tc, initial, x, args)
        rounds.append(times)
    per_epoch_a = [t for r in rounds for t in r["a"][1:]]
    per_epoch_b = [t for r in rounds for t in r["b"][1:]]
    first_a = [r["a"][0] for r in rounds]
    first_b = [r["b"][0] for r in rounds]

    samples = n * args.students
    result = {
        "benchmark": "students_throughput",
        **environment(),
        "config": {
            "data": source,
            "samples": n,
            "students": args.students,
            "student_params": [s.count_params() for s in tc.students],
            "epochs": args.epochs,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "precision": args.precision,
            "steps_per_execution": args.steps_per_execution or "default",
            "seed": args.seed,
        },
        "rounds": rounds,
        "reference_samples_per_second": _rate(samples, per_epoch_a, False),
        "one_pass_samples_per_second": _rate(samples, per_epoch_b, False),
        "reference_samples_per_second_all_epochs": _rate(
            samples, per_epoch_a + first_a, False
        ),
        "one_pass_samples_per_second_all_epochs": _rate(
            samples, per_epoch_b + first_b, False
        ),
        "round_ratios": [
            _rate(samples, r["b"], True) / _rate(samples, r["a"], True)
            for r in rounds
        ],
    }
    result["ratio"] = (
        result["one_pass_samples_per_second"]
        / result["reference_samples_per_second"]
    )
    result["ratio_all_epochs"] = (
        result["one_pass_samples_per_second_all_epochs"]
        / result["reference_samples_per_second_all_epochs"]
    )
    print(
        f"data: {source}; {n} samples, {args.students} students, "
        f"batch {args.batch_size}, {args.precision}, {args.epochs} epochs"
    )
    print(f"{'way':<34} {'samples/s':>12} {'all epochs':>12}")
    print(
        f"{'(a) one fit per student':<34} "
        f"{result['reference_samples_per_second']:>12,.0f} "
        f"{result['reference_samples_per_second_all_epochs']:>12,.0f}"
    )
    print(
        f"{'(b) fit_students, one pass':<34} "
        f"{result['one_pass_samples_per_second']:>12,.0f} "
        f"{result['one_pass_samples_per_second_all_epochs']:>12,.0f}"
    )
    print("(samples/s excludes each fit's first epoch, which traces graphs)")
    print(
        "per-round ratios: "
        + ", ".join(f"{v:.2f}" for v in result["round_ratios"])
    )
    print(f"ratio: {result['ratio']:.2f}")
    print(f"ratio (all epochs): {result['ratio_all_epochs']:.2f}")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
