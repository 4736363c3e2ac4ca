"""Wall time of 4 students trained as 1, 2 and 4 processes on one machine.

Uses examples/parallel_students.py: the teacher (digits) is trained and
saved once, then for each process count the 4 students are split evenly
among that many processes, each loading the teacher, computing its own
representation cache, training its students with `fit_students(x,
students=[...])` and saving them. The time is from the first process start
to the last exit, process start-up and TensorFlow import included. Every
configuration runs in the same invocation, on the same machine and data.
Prints a table and writes JSON next to this script.

Run: python benchmarks/parallel_students.py [--epochs 20]
"""

import argparse
import importlib.util
import os
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=str(HERE / "results" / "parallel_students.json")
    )
    args = parser.parse_args()
    example = _example()
    keras.utils.set_random_seed(args.seed)
    counts = [int(p) for p in args.processes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        example.prepare(workdir, args.students, args.teacher_epochs)
        for processes in counts:
            seconds = example.launch(
                workdir, args.students, processes, args.epochs
            )
            accuracy = example.compose(workdir)["accuracy"]
            rows.append(
                {
                    "processes": processes,
                    "students_per_process": [
                        len(g) for g in example.split(args.students, processes)
                    ],
                    "wall_seconds": seconds,
                    "composed_accuracy": accuracy,
                }
            )
    base = rows[0]["wall_seconds"]
    for row in rows:
        row["speedup_vs_first"] = base / row["wall_seconds"]
    result = {
        "benchmark": "parallel_students",
        **environment(),
        "note": (
            "cpu_count is what the OS reports; the cores may be shared "
            "with other work while this runs"
        ),
        "config": {
            "data": "scikit-learn digits, train split (1,438 samples)",
            "students": args.students,
            "epochs": args.epochs,
            "teacher_epochs": args.teacher_epochs,
            "seed": args.seed,
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


if __name__ == "__main__":
    main()
