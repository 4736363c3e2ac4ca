"""Knowledge reuse: students of an MNIST 0-4 teacher, a new head for 5-9.

A teacher learns digits 0-4; a class of 4 students learns to mimic its
representation on the same (unlabelled) 0-4 images and is frozen. A new
task, digits 5-9, then gets a few labelled samples. The same new head (a
linear softmax over the 256-wide representation) is trained three ways,
on the same labelled samples, for the same epochs (at least
`--head-epochs` epochs and `--head-steps` steps, so tiny label sets still
get enough updates), and scored on every 5-9 image of the MNIST test set:

(a) reused: on the frozen students (`TeacherClass.compose(head=...)`);
(b) teacher: on the teacher's frozen trunk (its own representation);
(c) scratch: on the students' tower architecture, freshly initialised and
    trained end to end with the head (no knowledge reused).

Defaults use subsets and few epochs so the run takes a few CPU minutes;
the JSON records them. Writes results/knowledge_reuse.json and .md.

Run: python benchmarks/knowledge_reuse.py [--data-dir DIR]
    [--new-labels 100,1000]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import datasets  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import environment  # noqa: E402

DEFAULT_DATA = HERE.parent.parent / "shared" / "data"


def _split(x, y, digits):
    keep = np.isin(y, digits)
    return x[keep], (y[keep] - min(digits)).astype("int32")


def _head(width, classes, lr):
    head = keras.Sequential(
        [keras.Input((width,)), keras.layers.Dense(classes, "softmax")],
        name="new_head",
    )
    head.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return head


def _fit_and_score(model, args, x_new, y_new, x_test, y_test):
    # Few labels make short epochs: train for at least `head_steps` steps.
    steps_per_epoch = -(-len(x_new) // args.batch_size)
    epochs = max(args.head_epochs, -(-args.head_steps // steps_per_epoch))
    start = time.perf_counter()
    model.fit(
        x_new,
        y_new,
        epochs=epochs,
        batch_size=args.batch_size,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    return {
        "accuracy": float(accuracy["accuracy"]),
        "trainable_params": int(
            sum(np.prod(w.shape) for w in model.trainable_weights)
        ),
        "params": int(model.count_params()),
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
    }


def markdown(result):
    """The result as a Markdown table (from the JSON, never by hand)."""
    c = result["config"]
    old = result["old_task"]
    lines = [
        "# Knowledge reuse: MNIST 0-4 students, new head for 5-9",
        "",
        f"{result['date']}, {result['machine']['platform']}, "
        f"{c['precision']}; labelled 5-9 samples: "
        f"{c['new_labelled_samples']}; head: {c['head']}, "
        f"{c['head_epochs']}; old task: {c['old_train_samples']} samples, "
        f"teacher {c['teacher_epochs']} / students {c['student_epochs']} "
        f"epochs; {c['new_test_samples']} 5-9 test images. {c['note']}.",
        "",
        f"Old task (0-4) test accuracy: teacher "
        f"{old['teacher_accuracy']:.4f}, composed "
        f"{old['composed_accuracy']:.4f}.",
        "",
        "| labels | new task (5-9), same head | test accuracy "
        "| trainable params |",
        "| --- | --- | --- | --- |",
    ]
    for labels, ways in result["new_task"].items():
        for name, way in ways.items():
            lines.append(
                f"| {labels} | {name} | {way['accuracy']:.4f} "
                f"| {way['trainable_params']:,} |"
            )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--old-samples", type=int, default=10_000)
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--student-epochs", type=int, default=6)
    parser.add_argument(
        "--new-labels",
        default="100,1000",
        help="comma-separated numbers of labelled 5-9 samples, one run each",
    )
    parser.add_argument("--head-epochs", type=int, default=20)
    parser.add_argument("--head-steps", type=int, default=300)
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(args.precision)
    start = time.perf_counter()
    (x, y), (x_t, y_t) = (
        datasets.load("mnist", split, data_dir=args.data_dir)
        for split in ("train", "test")
    )
    x, x_t = x.astype("float32") / 255.0, x_t.astype("float32") / 255.0
    old, new = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
    x_old, y_old = _split(x, y, old)
    x_old, y_old = x_old[: args.old_samples], y_old[: args.old_samples]
    x_old_t, y_old_t = _split(x_t, y_t, old)
    x_new_all, y_new_all = _split(x, y, new)
    x_new_t, y_new_t = _split(x_t, y_t, new)

    # The old task: teacher, then students that mimic it (no labels).
    teacher = architectures.mnist_teacher(num_classes=len(old))
    tc = TeacherClass(
        teacher, num_students=4, student=architectures.mnist_student(4)
    )
    tc.fit_teacher(
        x_old, y_old, epochs=args.teacher_epochs, batch_size=128, verbose=2
    )
    tc.fit_students(
        x_old, epochs=args.student_epochs, batch_size=128, verbose=2
    )
    composed_old = tc.compose()
    old_task = {
        "teacher_accuracy": float(
            teacher.evaluate(x_old_t, y_old_t, verbose=0)[1]
        ),
        "composed_accuracy": float(
            composed_old.evaluate(x_old_t, y_old_t, verbose=0)[1]
        ),
    }
    width = tc.representation().outputs[0].shape[-1]
    new_task = {}
    for labels in [int(n) for n in args.new_labels.split(",")]:
        x_new, y_new = x_new_all[:labels], y_new_all[:labels]
        ways = {}

        # (a) Reused students, frozen; only the new head trains.
        head = _head(width, len(new), args.head_lr)
        reused = tc.compose(head=head)
        tc_students_trainable = [s.trainable for s in tc.students]
        for s in tc.students:
            s.trainable = False
        reused.compile(
            optimizer=keras.optimizers.Adam(args.head_lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        ways["reused_students"] = _fit_and_score(
            reused, args, x_new, y_new, x_new_t, y_new_t
        )
        for s, t in zip(tc.students, tc_students_trainable):
            s.trainable = t

        # (b) The teacher's own representation, trunk frozen.
        trunk = keras.Model(
            teacher.inputs, teacher.get_layer(tc.feature_layer).output
        )
        trunk.trainable = False
        inputs = keras.Input(teacher.inputs[0].shape[1:])
        on_teacher = keras.Model(
            inputs, _head(width, len(new), args.head_lr)(trunk(inputs))
        )
        on_teacher.compile(
            optimizer=keras.optimizers.Adam(args.head_lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        ways["teacher_representation"] = _fit_and_score(
            on_teacher, args, x_new, y_new, x_new_t, y_new_t
        )

        # (c) The same towers, fresh, trained end to end on the new labels.
        fresh = TeacherClass(
            teacher, num_students=4, student=architectures.mnist_student(4)
        )
        rep = fresh.representation()
        scratch = keras.Model(
            rep.inputs, _head(width, len(new), args.head_lr)(rep.outputs[0])
        )
        scratch.compile(
            optimizer=keras.optimizers.Adam(args.head_lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        ways["scratch_same_towers"] = _fit_and_score(
            scratch, args, x_new, y_new, x_new_t, y_new_t
        )

        new_task[str(labels)] = ways

    result = {
        "benchmark": "knowledge_reuse",
        **environment(),
        "config": {
            "data": "mnist (real, official IDX files)",
            "old_task": "digits 0-4",
            "new_task": "digits 5-9 (labels 0-4)",
            "old_train_samples": len(x_old),
            "new_labelled_samples": args.new_labels,
            "new_test_samples": len(x_new_t),
            "teacher_epochs": args.teacher_epochs,
            "student_epochs": args.student_epochs,
            "head_epochs": f"max({args.head_epochs}, enough for "
            f"{args.head_steps} steps)",
            "head": f"Dense({len(new)}, softmax) on the {width}-wide "
            "representation",
            "head_lr": args.head_lr,
            "batch_size": args.batch_size,
            "precision": args.precision,
            "seed": args.seed,
            "students": 4,
            "student_params": [s.count_params() for s in tc.students],
            "teacher_params": teacher.count_params(),
            "note": "subsets and few epochs to fit a few CPU minutes; "
            "not the paper's full-data setting",
        },
        "old_task": old_task,
        "new_task": new_task,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "knowledge_reuse.json").write_text(json.dumps(result, indent=1))
    table = markdown(result)
    (out / "knowledge_reuse.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
