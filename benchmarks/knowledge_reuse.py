"""Knowledge reuse: students of an MNIST 0-4 teacher, a new head for 5-9.

A teacher learns digits 0-4; a class of 4 students learns to mimic its
representation on the same (unlabelled) 0-4 images (trained as
`--variant` says: by default the ingredients `reproduce.py --variant
best` chose for MNIST, or plain MSE, or an issue-13 variant, see
`reproduce_variants.py`) and is frozen. A new
task, digits 5-9, then gets a few labelled samples, drawn from the seed
(the first N of a permutation of the 5-9 training images by
`numpy.random.default_rng(seed)`, so a smaller set lies within a larger
one; results before this rule, without `"subset": "seeded"` in their
config, took the first N images whatever the seed). The same new head (a
linear softmax over the 256-wide representation) is trained three ways,
on the same labelled samples, for the same epochs (at least
`--head-epochs` epochs and `--head-steps` steps, so tiny label sets still
get enough updates), and scored on every 5-9 image of the MNIST test set:

(a) reused: on the frozen students (`TeacherClass.compose(head=...,
    fine_tune=True)`, which trains the new head with the students
    frozen);
(b) teacher: on the teacher's frozen trunk (`teacher.trunk`, its own
    representation);
(c) scratch: on the students' tower architecture, freshly initialised and
    trained end to end with the head (no knowledge reused).

Defaults use subsets and few epochs so the run takes a few CPU minutes;
the JSON records them, with every seed's numbers (`--seeds N`: seeds 0 ..
N-1; the tables show the mean and sample std). Writes
results/knowledge_reuse.json and .md; where they hold another
`--variant`, a run is refused before it starts unless `--out DIR` names
where to write (that folder's files are replaced).

Run: python benchmarks/knowledge_reuse.py [--data-dir DIR]
    [--new-labels 100,1000] [--seeds 3] [--variant best|plain|head_aware|
    conditioned|augmented|refined|A+B...]
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
from teacherclass import precision  # noqa: E402
from teacherclass import report as report_lib  # noqa: E402
from teacherclass import teacher as teacher_lib  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import reproduce_variants as variants  # noqa: E402
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


def _epochs(args, samples):
    """At least `head_epochs`, and enough epochs for `head_steps` steps."""
    steps_per_epoch = -(-samples // args.batch_size)
    return max(args.head_epochs, -(-args.head_steps // steps_per_epoch))


def _score(model, trainable, epochs, seconds, x_test, y_test):
    """A trained model's record: test accuracy, sizes, epochs, time."""
    pred = model.predict(x_test, batch_size=512, verbose=0)
    return {
        "accuracy": report_lib.accuracy(pred, y_test),
        "trainable_params": int(trainable),
        "params": int(model.count_params()),
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
    }


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def variant_ingredients(variant, results=HERE / "results" / "mnist.json"):
    """The ingredients of `--variant`, and where "best" took them from.

    A variant of `reproduce.py` other than "best", a "+"-joined
    combination of them, or "best": the ingredients of the last "best"
    MNIST run recorded in `results` (chosen there on the validation
    split).
    """
    if variant == "best":
        data = json.loads(Path(results).read_text())
        chosen = [
            r["best_choice"]
            for r in data.get("runs", {}).values()
            if "best_choice" in r
        ]
        if not chosen:
            raise ValueError(
                "--variant best reads the ingredients chosen by "
                "reproduce.py --variant best on MNIST; none is recorded in "
                f"{results}. Received: --variant best"
            )
        on = set(chosen[-1]["ingredients"])
        return {k: k in on for k in variants.INGREDIENTS}, chosen[-1]
    names = variant.split("+")
    unknown = [n for n in names if n not in (*variants.SINGLE, "plain")]
    if unknown:
        raise ValueError(
            "--variant must be best, or variants from "
            f"{('plain', *variants.SINGLE)} joined by '+'. "
            f"Received: --variant {variant}"
        )
    on = {i for n in names for i, v in variants.ingredients(n).items() if v}
    return {k: k in on for k in variants.INGREDIENTS}, None


def check_out(folder, variant):
    """Raises ValueError if `folder` (the default `--out`) holds a
    result of a variant other than `variant`, which a run would
    replace."""
    path = Path(folder) / "knowledge_reuse.json"
    if not path.is_file():
        return
    recorded = json.loads(path.read_text())["config"].get("variant", "plain")
    if recorded != variant:
        raise ValueError(
            f"{path} holds --variant {recorded}, which this run would "
            "replace: give --out DIR to write elsewhere (or --out "
            f"{folder} to replace it). Received: --variant {variant}"
        )


def markdown(result):
    """The result as a Markdown table (from the JSON, never by hand)."""
    c = result["config"]
    old = result["old_task"]
    lines = [
        "# Knowledge reuse: MNIST 0-4 students, new head for 5-9",
        "",
        f"{result['date']}, {result['machine']['platform']}, "
        f"{c['precision']}; students: variant "
        f"{c.get('variant', 'plain')}; seeds: "
        f"{', '.join(str(s) for s in c.get('seeds', [c.get('seed', 0)]))}"
        "; labelled 5-9 samples: "
        f"{c['new_labelled_samples']} "
        f"({c.get('subset', 'first')}); head: {c['head']}, "
        f"{c['head_epochs']}; old task: {c['old_train_samples']} samples, "
        f"teacher {c['teacher_epochs']} / students {c['student_epochs']} "
        f"epochs; {c['new_test_samples']} 5-9 test images. {c['note']}.",
        "",
        f"Old task (0-4) test accuracy: teacher "
        f"{old['teacher_accuracy']:.4f}, composed "
        f"{old['composed_accuracy']:.4f}"
        + (" (means over seeds)." if "per_seed" in result else "."),
        "",
        "| labels | new task (5-9), same head | test accuracy "
        "| trainable params |",
        "| --- | --- | --- | --- |",
    ]
    for labels, ways in result["new_task"].items():
        for name, way in ways.items():
            spread = (
                f" +/- {way['accuracy_std']:.4f}"
                if "accuracy_std" in way
                else ""
            )
            lines.append(
                f"| {labels} | {name} | {way['accuracy']:.4f}{spread} "
                f"| {way['trainable_params']:,} |"
            )
    return "\n".join(lines) + "\n"


def run_seed(args, seed, data, ingredients):
    """One seed: the old task's teacher and students, then the new task."""
    (x_old, y_old), (x_old_t, y_old_t), (x_new_all, y_new_all), test = data
    x_new_t, y_new_t = test
    classes = len(np.unique(y_old))
    keras.utils.clear_session()
    args.precision = precision.set_policy(args.precision)
    keras.utils.set_random_seed(seed)

    # The old task: teacher, then students that mimic it (no labels).
    teacher = architectures.mnist_teacher(num_classes=classes)
    extra = (
        {"conditioning": "standardize", "balance_chunks": True}
        if ingredients["conditioning"]
        else {}
    )
    tc = TeacherClass(
        teacher,
        num_students=4,
        student=architectures.mnist_student(4),
        **extra,
    )
    tc.fit_teacher(
        x_old, y_old, epochs=args.teacher_epochs, batch_size=128, verbose=2
    )
    fit = {}
    if ingredients["head_aware"]:
        fit = {"y": y_old, "loss": "head_aware"}
    if ingredients["augment_students"]:
        fit["augment"] = keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="constant", dtype="float32"
        )
    tc.fit_students(
        x_old, epochs=args.student_epochs, batch_size=128, verbose=2, **fit
    )
    composed_old = tc.compose()
    if ingredients["refine"]:
        composed_old = tc.refine(
            x_old,
            y_old,
            epochs=args.refine_epochs,
            batch_size=args.batch_size,
            verbose=2,
        )

    def old_accuracy(model):
        pred = model.predict(x_old_t, batch_size=512, verbose=0)
        return report_lib.accuracy(pred, y_old_t)

    old_task = {
        "teacher_accuracy": old_accuracy(teacher),
        "composed_accuracy": old_accuracy(composed_old),
    }
    width = tc.representation().outputs[0].shape[-1]
    classes_new = len(np.unique(y_new_all))
    new_task = {}
    drawn = np.random.default_rng(seed).permutation(len(x_new_all))
    for labels in [int(n) for n in args.new_labels.split(",")]:
        x_new, y_new = x_new_all[drawn[:labels]], y_new_all[drawn[:labels]]
        epochs = _epochs(args, len(x_new))
        fit = {"epochs": epochs, "batch_size": args.batch_size, "verbose": 0}
        ways = {}

        # (a) Reused students, frozen; compose trains only the new head.
        head = _head(width, classes_new, args.head_lr)
        start = time.perf_counter()
        reused = tc.compose(head=head, fine_tune=True, x=x_new, y=y_new, **fit)
        ways["reused_students"] = _score(
            reused,
            _count(head.trainable_weights),
            epochs,
            time.perf_counter() - start,
            x_new_t,
            y_new_t,
        )

        # (b) The teacher's own representation, trunk frozen.
        trunk = teacher_lib.trunk(teacher, tc.feature_layer)
        trunk.trainable = False
        inputs = keras.Input(teacher.inputs[0].shape[1:])
        head = _head(width, classes_new, args.head_lr)
        on_teacher = keras.Model(inputs, head(trunk(inputs)))
        on_teacher.compile(
            optimizer=keras.optimizers.Adam(args.head_lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        start = time.perf_counter()
        on_teacher.fit(x_new, y_new, **fit)
        ways["teacher_representation"] = _score(
            on_teacher,
            _count(on_teacher.trainable_weights),
            epochs,
            time.perf_counter() - start,
            x_new_t,
            y_new_t,
        )

        # (c) The same towers, fresh, trained end to end on the new labels.
        fresh = TeacherClass(
            teacher, num_students=4, student=architectures.mnist_student(4)
        )
        rep = fresh.representation()
        scratch = keras.Model(
            rep.inputs,
            _head(width, classes_new, args.head_lr)(rep.outputs[0]),
        )
        scratch.compile(
            optimizer=keras.optimizers.Adam(args.head_lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        start = time.perf_counter()
        scratch.fit(x_new, y_new, **fit)
        ways["scratch_same_towers"] = _score(
            scratch,
            _count(scratch.trainable_weights),
            epochs,
            time.perf_counter() - start,
            x_new_t,
            y_new_t,
        )
        new_task[str(labels)] = ways
    sizes = {
        "student_params": [s.count_params() for s in tc.students],
        "teacher_params": teacher.count_params(),
    }
    return old_task, new_task, sizes


def _mean(seeds, path):
    values = []
    for seed in seeds:
        value = seed
        for key in path:
            value = value[key]
        values.append(value)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), std


def main(argv=None):
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
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--seed", type=int, default=0, help="the first seed (default 0)"
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds --seed .. --seed+N-1"
    )
    parser.add_argument(
        "--variant",
        # The recorded results/knowledge_reuse.json's: a run of the
        # documented command may replace it.
        default="best",
        help="how the old task's students are trained: best (default: "
        "the ingredients reproduce.py --variant best chose for MNIST), "
        "or a reproduce.py variant (plain, head_aware, conditioned, "
        "augmented, refined), several joined by '+'",
    )
    parser.add_argument(
        "--refine-epochs",
        type=int,
        default=1,
        help="end-to-end refinement epochs on the old task (refined)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="the folder of knowledge_reuse.json and .md (default: "
        "benchmarks/results, where a run may not replace another variant)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be positive. Received: {args.seeds}")
    ingredients, best_choice = variant_ingredients(args.variant)
    reason = variants.missing(ingredients)
    if reason is not None:
        raise ValueError(f"{reason}. Received: --variant {args.variant}")
    if args.out is None:
        check_out(HERE / "results", args.variant)
        args.out = str(HERE / "results")

    start = time.perf_counter()
    (x, y), (x_t, y_t) = (
        datasets.load("mnist", split, data_dir=args.data_dir)
        for split in ("train", "test")
    )
    x, x_t = x.astype("float32") / 255.0, x_t.astype("float32") / 255.0
    old, new = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
    x_old, y_old = _split(x, y, old)
    x_old, y_old = x_old[: args.old_samples], y_old[: args.old_samples]
    data = (
        (x_old, y_old),
        _split(x_t, y_t, old),
        _split(x, y, new),
        _split(x_t, y_t, new),
    )
    seeds = list(range(args.seed, args.seed + args.seeds))
    per_seed = []
    for seed in seeds:
        old_task, new_task, sizes = run_seed(args, seed, data, ingredients)
        per_seed.append(
            {"seed": seed, "old_task": old_task, "new_task": new_task}
        )
    first = per_seed[0]
    old_task = {}
    for key in first["old_task"]:
        old_task[key], old_task[f"{key}_std"] = _mean(
            per_seed, ("old_task", key)
        )
    new_task = {}
    for labels, ways in first["new_task"].items():
        new_task[labels] = {}
        for name, way in ways.items():
            mean, std = _mean(per_seed, ("new_task", labels, name, "accuracy"))
            new_task[labels][name] = {
                **way,
                "accuracy": mean,
                "accuracy_std": std,
                "accuracy_per_seed": [
                    s["new_task"][labels][name]["accuracy"] for s in per_seed
                ],
            }
    width = 256  # the teacher's representation (mnist_teacher)
    result = {
        "benchmark": "knowledge_reuse",
        **environment(),
        "config": {
            "data": "mnist (real, official IDX files)",
            "old_task": "digits 0-4",
            "new_task": "digits 5-9 (labels 0-4)",
            "old_train_samples": len(x_old),
            "new_labelled_samples": args.new_labels,
            # Which rule drew them: each seed's own permutation.
            "subset": "seeded",
            "new_test_samples": len(data[3][0]),
            "teacher_epochs": args.teacher_epochs,
            "student_epochs": args.student_epochs,
            "head_epochs": f"max({args.head_epochs}, enough for "
            f"{args.head_steps} steps)",
            "head": f"Dense({len(new)}, softmax) on the {width}-wide "
            "representation",
            "head_lr": args.head_lr,
            "batch_size": args.batch_size,
            "precision": args.precision,
            "seeds": seeds,
            "variant": args.variant,
            "ingredients": [k for k, v in ingredients.items() if v],
            "best_choice": best_choice,
            "refine_epochs": (
                args.refine_epochs if ingredients["refine"] else None
            ),
            "students": 4,
            **sizes,
            "note": "subsets and few epochs to fit a few CPU minutes; "
            "not the paper's full-data setting",
        },
        "old_task": old_task,
        "new_task": new_task,
        "per_seed": per_seed,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "knowledge_reuse.json").write_text(json.dumps(result, indent=1))
    table = markdown(result)
    (out / "knowledge_reuse.md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
