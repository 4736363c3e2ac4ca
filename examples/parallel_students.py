"""Students as independent jobs: one process per student, then compose.

Students share no parameter and never see each other, so each can train in
its own process (or machine): every job builds the same `TeacherClass`
from the saved teacher, trains its students with
`fit_students(x, students=[...])` and writes them with `save_students` into
a shared directory; the last step loads them all and composes.

Run on one machine (the parent trains the teacher, starts the jobs, waits,
composes):

    python examples/parallel_students.py --workdir runs/digits --processes 4

Run one job by hand, e.g. from a scheduler on another machine that sees the
same `--workdir` (its index may also come from `TF_CONFIG`'s task index,
with `--student tf_config`), then compose once all are done:

    python examples/parallel_students.py --workdir runs/digits --student 2
    python examples/parallel_students.py --workdir runs/digits --compose

See docs/howto/parallel.md. TEACHERCLASS_QUICK=1 makes a smoke run.
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import datasets  # noqa: E402

QUICK = os.environ.get("TEACHERCLASS_QUICK") == "1"


def _class(teacher, num_students):
    # Every job must build the same class: same teacher, split and towers.
    return TeacherClass(
        teacher,
        num_students=num_students,
        student=architectures.digits_student(),
    )


def _paths(workdir):
    return (
        os.path.join(workdir, "teacher.keras"),
        os.path.join(workdir, "students"),
        os.path.join(workdir, "config.json"),
    )


def prepare(workdir, num_students, epochs):
    """Trains and saves the teacher, the one input every job shares."""
    teacher_path, _, config_path = _paths(workdir)
    os.makedirs(workdir, exist_ok=True)
    x, y = datasets.load("digits", "train")
    teacher = architectures.digits_teacher()
    tc = _class(teacher, num_students)
    tc.fit_teacher(x, y, epochs=epochs, batch_size=64, verbose=0)
    teacher.save(teacher_path)
    with open(config_path, "w") as f:
        json.dump({"num_students": num_students}, f)


def job_seed(students, seed=0):
    """The random seed of the job training `students`: its own per job,
    `1000 * (seed + 1)` plus the job's first student index (seed 0, the
    default: 1000 + the first index)."""
    return 1000 * (seed + 1) + min(students)


def train(workdir, students, epochs, threads=None, seed=0):
    """One job: trains `students` (a list of indices) and saves them,
    seeded by `job_seed(students, seed)`."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    teacher_path, students_dir, config_path = _paths(workdir)
    with open(config_path) as f:
        num_students = json.load(f)["num_students"]
    keras.utils.set_random_seed(job_seed(students, seed))
    teacher = keras.saving.load_model(teacher_path)
    tc = _class(teacher, num_students)
    x, _ = datasets.load("digits", "train")
    tc.fit_students(
        x, students=students, epochs=epochs, batch_size=64, verbose=0
    )
    tc.save_students(students_dir, students=students, overwrite=True)


def compose(workdir):
    """Loads every student, composes, and evaluates on the test split."""
    teacher_path, students_dir, config_path = _paths(workdir)
    with open(config_path) as f:
        num_students = json.load(f)["num_students"]
    teacher = keras.saving.load_model(teacher_path)
    tc = _class(teacher, num_students)
    tc.load_students(students_dir)
    composed = tc.compose()
    x_test, y_test = datasets.load("digits", "test")
    result = composed.evaluate(x_test, y_test, verbose=0, return_dict=True)
    print(f"composed accuracy: {result['accuracy']:.4f}")
    path = os.path.join(workdir, "composed.keras")
    composed.save(path)
    print(f"wrote {path}")
    return result


def split(num_students, processes):
    """Student indices per process, as even as possible."""
    return [list(range(num_students))[p::processes] for p in range(processes)]


def launch(workdir, num_students, processes, epochs, threads=None, seed=0):
    """Starts one process per group of students and waits for all; each
    job is seeded by `job_seed(group, seed)`.

    Returns:
        Wall seconds from the first start to the last exit.
    """
    start = time.perf_counter()
    procs = []
    for group in split(num_students, processes):
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--workdir",
            workdir,
            "--student",
            ",".join(map(str, group)),
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
        ]
        if threads:
            command += ["--threads", str(threads)]
        procs.append((group, subprocess.Popen(command)))
    failed = [group for group, p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError(f"The jobs for students {failed} failed.")
    return time.perf_counter() - start


def _students_from(value):
    if value == "tf_config":
        config = json.loads(os.environ.get("TF_CONFIG", "{}"))
        index = config.get("task", {}).get("index")
        if index is None:
            raise ValueError(
                "--student tf_config needs TF_CONFIG with a task index. "
                f"Received: TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
            )
        return [int(index)]
    return [int(i) for i in value.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument(
        "--student",
        default=None,
        help="run one job: student indices '0,2', or 'tf_config'",
    )
    parser.add_argument("--compose", action="store_true")
    parser.add_argument("--epochs", type=int, default=2 if QUICK else 60)
    parser.add_argument(
        "--teacher-epochs", type=int, default=2 if QUICK else 30
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the teacher's seed; each job's is job_seed(its students, seed)",
    )
    args = parser.parse_args()

    if args.student is not None:
        train(
            args.workdir,
            _students_from(args.student),
            args.epochs,
            args.threads,
            args.seed,
        )
        return
    if args.compose:
        compose(args.workdir)
        return
    keras.utils.set_random_seed(args.seed)
    prepare(args.workdir, args.students, args.teacher_epochs)
    seconds = launch(
        args.workdir,
        args.students,
        args.processes or args.students,
        args.epochs,
        args.threads,
        args.seed,
    )
    print(f"students trained in {seconds:.1f} s")
    compose(args.workdir)


if __name__ == "__main__":
    main()
