"""Wall time of 4 students trained as 1, 2 and 4 processes on one machine.

Uses examples/parallel_students.py: the teacher (digits) is trained and
saved once, then for each process count the 4 students are split evenly
among that many processes, each loading the teacher, computing its own
representation cache, training its students with `fit_students(x,
students=[...])` and saving them. The time is from the first process start
to the last exit, process start-up and TensorFlow import included. Every
configuration runs in the same invocation, on the same machine and data,
once per round (`--rounds`), in an order rotated each round, so that a
shared machine's load falls on all alike; the speedup over the first
process count is the median of the rounds' ratios. `--seed` seeds the
teacher and each job (`job_seed` in the example). Prints a table and
writes JSON next to this script.

Run: python benchmarks/parallel_students.py [--epochs 20] [--rounds 3]
"""

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import environment  # noqa: E402
from _common import write_result  # noqa: E402

EXAMPLE = HERE.parent / "examples" / "parallel_students.py"


def _example():
    spec = importlib.util.spec_from_file_location("parallel", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--out", default=str(HERE / "results" / "parallel_students.json")
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        raise ValueError(
            f"--rounds must be at least 1. Received: --rounds {args.rounds}"
        )
    example = _example()
    keras.utils.set_random_seed(args.seed)
    counts = [int(p) for p in args.processes.split(",")]
    rounds = []
    with tempfile.TemporaryDirectory() as workdir:
        example.prepare(workdir, args.students, args.teacher_epochs)
        for r in range(args.rounds):
            order = counts[r % len(counts) :] + counts[: r % len(counts)]
            seconds, accuracy = {}, {}
            for processes in order:
                seconds[processes] = example.launch(
                    workdir,
                    args.students,
                    processes,
                    args.epochs,
                    seed=args.seed,
                )
                accuracy[processes] = example.compose(workdir)["accuracy"]
            rounds.append(
                {"order": order, "seconds": seconds, "accuracy": accuracy}
            )
    rows = []
    for processes in counts:
        walls = [r["seconds"][processes] for r in rounds]
        # Each round's own ratio: the rounds' loads never mix.
        ratios = [r["seconds"][counts[0]] / w for r, w in zip(rounds, walls)]
        accuracies = [r["accuracy"][processes] for r in rounds]
        rows.append(
            {
                "processes": processes,
                "students_per_process": [
                    len(g) for g in example.split(args.students, processes)
                ],
                "wall_seconds": statistics.median(walls),
                "wall_seconds_per_round": walls,
                "composed_accuracy": statistics.median(accuracies),
                "composed_accuracy_per_round": accuracies,
                "speedup_vs_first": statistics.median(ratios),
                "speedup_vs_first_per_round": ratios,
            }
        )
    result = {
        "benchmark": "parallel_students",
        **environment(),
        "note": (
            "cpu_count is what the OS reports; the cores may be shared "
            "with other work while this runs; wall seconds and accuracy: "
            "medians over the rounds; speedup_vs_first: the median of the "
            "rounds' ratios (first process count's wall / this one's)"
        ),
        "config": {
            "data": "scikit-learn digits, train split (1,438 samples)",
            "students": args.students,
            "epochs": args.epochs,
            "teacher_epochs": args.teacher_epochs,
            "seed": args.seed,
            "rounds": args.rounds,
            "orders": [r["order"] for r in rounds],
        },
        "runs": rows,
    }
    print(
        f"{args.students} students, {args.epochs} epochs, digits; "
        f"{os.cpu_count()} CPUs reported"
    )
    print(f"{'processes':>9} {'wall s':>8} {'speedup':>8} {'accuracy':>9}")
    for row in rows:
        print(
            f"{row['processes']:>9} {row['wall_seconds']:>8.1f} "
            f"{row['speedup_vs_first']:>8.2f} "
            f"{row['composed_accuracy']:>9.4f}"
        )
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
