"""Search the students' width and number under a parameter budget.

A `StudentHyperModel` (teacherclass.tuning) with Keras Tuner: each trial
trains a class of students in one pass, composes it with the teacher's head
and reports the composed model's validation accuracy, parameters and
latency. The Pareto front of accuracy against parameters is printed at the
end. MNIST when `--data-dir` (or TEACHERCLASS_DATA) holds it, else
scikit-learn's digits.

Run: python examples/tuning.py [--data-dir DIR] [--trials 10]
(`pip install ".[tuner]"` in the repository's root folder; TEACHERCLASS_QUICK=1
for a smoke run.)
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner  # noqa: E402

from teacherclass import architectures  # noqa: E402
from teacherclass import datasets  # noqa: E402
from teacherclass import tuning  # noqa: E402

QUICK = os.environ.get("TEACHERCLASS_QUICK") == "1"


def _data(data_dir):
    try:
        (x, y), (x_test, y_test) = (
            datasets.load("mnist", split, data_dir=data_dir)
            for split in ("train", "test")
        )
        x, x_test = x.astype("float32") / 255, x_test.astype("float32") / 255
        return "mnist", architectures.mnist_teacher(), x, y, x_test, y_test
    except FileNotFoundError:
        (x, y), (x_test, y_test) = (
            datasets.load("digits", split) for split in ("train", "test")
        )
        return "digits", architectures.digits_teacher(), x, y, x_test, y_test


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--trials", type=int, default=2 if QUICK else 10)
    parser.add_argument("--epochs", type=int, default=1 if QUICK else 10)
    parser.add_argument(
        "--teacher-epochs", type=int, default=1 if QUICK else 10
    )
    parser.add_argument("--max-params", type=int, default=100_000)
    parser.add_argument("--directory", default="tuning_runs")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    name, teacher, x, y, x_test, y_test = _data(args.data_dir)
    if QUICK:
        x, y, x_test, y_test = x[:512], y[:512], x_test[:256], y_test[:256]
    teacher.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    teacher.fit(x, y, epochs=args.teacher_epochs, batch_size=128, verbose=2)

    hypermodel = tuning.StudentHyperModel(
        teacher,
        num_students=(1, 2, 4, 8),
        filters=(4, 8, 16, 32),
        units=(8, 16, 32, 64),
        max_params=args.max_params,
        batch_size=128,
    )
    tuner = keras_tuner.BayesianOptimization(
        hypermodel,
        objective=keras_tuner.Objective("val_accuracy", "max"),
        max_trials=args.trials,
        max_consecutive_failed_trials=args.trials,
        seed=0,
        directory=args.directory,
        project_name=f"students_{name}",
        overwrite=True,
    )
    tuner.search(
        x, validation_data=(x_test, y_test), epochs=args.epochs, verbose=0
    )

    print(f"{name}: {len(tuning.trial_results(tuner))} trials")
    print(f"{'params':>8} {'accuracy':>9} {'latency ms':>11}  hyperparameters")
    for row in tuning.pareto_front(tuner):
        print(
            f"{row['params']:>8} {row['val_accuracy']:>9.4f} "
            f"{row['latency_ms']:>11.2f}  {row['hyperparameters']}"
        )


if __name__ == "__main__":
    main()
