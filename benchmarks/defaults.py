"""What a user gets from `fit_students` and `compose` with their defaults.

The setting of issue 13's "Defaults" target: the paper's MNIST teacher
trained briefly on 12,000 training images, then `TeacherClass(teacher)`
(4 students, the default tower), `fit_students(x, epochs=4)` and
`compose()` with every other argument left at its default. Candidates
differ only in `fit_students(loss=...)`:

- `mse`: the paper's chunk regression;
- `head_aware`: `objectives.HeadAware()` (chunk MSE + T^2 KL through the
  teacher's frozen head, no labels);
- `head_aware_labels`: `HeadAware(label_weight=1.0)`, also given `y`.

`--split validation` carves the last 10% of the training images and
scores each candidate there (the decision of the library's default);
`--split test` trains on all of them and reads the test split (once per
final configuration). Every run is appended to
`benchmarks/results/defaults.json` with its setting (`--samples`,
`--teacher-epochs`, `--epochs`); nothing recorded is overwritten (a
rerun of the same split, candidate, seed and setting is skipped), and
the table summarizes each setting apart.

Run: python benchmarks/defaults.py --data-dir ../shared/data --split validation
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment  # noqa: E402

CANDIDATES = ("mse", "head_aware", "head_aware_labels")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--split", choices=("validation", "test"), default="validation"
    )
    parser.add_argument(
        "--candidates", nargs="+", choices=CANDIDATES, default=list(CANDIDATES)
    )
    parser.add_argument("--samples", type=int, default=12000)
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/defaults.json")
    return parser.parse_args(argv)


def settings_of(args):
    """The flags that change a run's numbers beyond split, candidate and
    seed."""
    return {
        "samples": args.samples,
        "teacher_epochs": args.teacher_epochs,
        "epochs": args.epochs,
    }


def setting_text(settings):
    """The sentence the table prints above a setting's rows."""
    return (
        f"MNIST, first {settings['samples']} training images, the paper's "
        f"teacher {settings['teacher_epochs']} epochs (Adam, batch 32), then "
        "TeacherClass(teacher) (4 students, default tower), "
        f"fit_students(x, epochs={settings['epochs']}, loss=<candidate>) and "
        "compose(), every other argument at its default"
    )


_SETTING = re.compile(
    r"first (\d+) training images.* teacher (\d+) epochs.*"
    r"fit_students\(x, epochs=(\d+)"
)


def run_settings(run, record):
    """A recorded run's settings, or None where none is known.

    Runs recorded before the settings were part of each run (keys
    `split|candidate|seed=N`) share the record's top-level `setting`.
    """
    if "settings" in run:
        return run["settings"]
    found = _SETTING.search(record.get("setting", ""))
    if found is None:
        return None
    samples, teacher_epochs, epochs = map(int, found.groups())
    return {
        "samples": samples,
        "teacher_epochs": teacher_epochs,
        "epochs": epochs,
    }


def run_setting_text(run, record):
    """The sentence naming a recorded run's setting."""
    return run.get("setting") or record.get("setting") or "Setting unrecorded"


def is_recorded(record, split, candidate, seed, settings):
    """Whether `record` holds this run at these settings."""
    return any(
        (r["split"], r["candidate"], r["seed"]) == (split, candidate, seed)
        and run_settings(r, record) == settings
        for r in record["runs"].values()
    )


def run_key(split, candidate, seed, settings):
    """A run's key in `record["runs"]`."""
    return f"{split}|{candidate}|seed={seed}|" + "|".join(
        f"{k}={v}" for k, v in settings.items()
    )


def loss_of(candidate):
    from teacherclass import objectives

    if candidate == "mse":
        return "mse"
    if candidate == "head_aware":
        return objectives.HeadAware()
    return objectives.HeadAware(label_weight=1.0)


def data(args):
    from teacherclass import datasets

    x, y = datasets.load("mnist", "train", data_dir=args.data_dir)
    x = x[: args.samples].astype("float32") / 255.0
    y = y[: args.samples]
    if args.split == "validation":
        cut = int(round(len(x) * 0.9))
        return (x[:cut], y[:cut]), (x[cut:], y[cut:])
    x_test, y_test = datasets.load("mnist", "test", data_dir=args.data_dir)
    return (x, y), (x_test.astype("float32") / 255.0, y_test)


def accuracy(model, x, y):
    probabilities = model.predict(x, batch_size=512, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=-1) == y))


def main(argv=None):
    args = parse_args(argv)
    import keras

    from teacherclass import TeacherClass
    from teacherclass import architectures

    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    # The top-level `setting`, where a record has one, is that of its
    # runs without their own (recorded before runs kept theirs): it is
    # never rewritten.
    record.update(benchmark="defaults", **environment())
    settings = settings_of(args)
    (x, y), (x_eval, y_eval) = data(args)
    print(f"{len(x)} training / {len(x_eval)} {args.split} images")
    for seed in range(args.seeds):
        todo = [
            c
            for c in args.candidates
            if not is_recorded(record, args.split, c, seed, settings)
        ]
        if not todo:
            continue
        keras.utils.set_random_seed(seed)
        teacher = architectures.mnist_teacher()
        start = time.perf_counter()
        TeacherClass(teacher).fit_teacher(
            x, y, epochs=args.teacher_epochs, verbose=2
        )
        teacher_seconds = time.perf_counter() - start
        teacher_accuracy = accuracy(teacher, x_eval, y_eval)
        print(
            f"[seed {seed}] teacher {args.split} accuracy "
            f"{teacher_accuracy:.4f}"
        )
        teacher_weights = teacher.get_weights()
        for candidate in todo:
            keras.utils.set_random_seed(seed)
            teacher.set_weights(teacher_weights)
            tc = TeacherClass(teacher)
            start = time.perf_counter()
            labels = y if candidate == "head_aware_labels" else None
            tc.fit_students(
                x,
                labels,
                epochs=args.epochs,
                loss=loss_of(candidate),
                verbose=2,
            )
            seconds = time.perf_counter() - start
            composed = tc.compose()
            score = accuracy(composed, x_eval, y_eval)
            key = run_key(args.split, candidate, seed, settings)
            record["runs"][key] = {
                "split": args.split,
                "candidate": candidate,
                "seed": seed,
                "settings": settings,
                "setting": setting_text(settings),
                "samples": len(x),
                "teacher_epochs": args.teacher_epochs,
                "epochs": args.epochs,
                "teacher_accuracy": teacher_accuracy,
                "composed_accuracy": score,
                "loss_to_teacher_points": 100 * (teacher_accuracy - score),
                "teacher_seconds": teacher_seconds,
                "students_seconds": seconds,
            }
            print(
                f"[seed {seed}] {candidate}: composed {score:.4f} "
                f"(teacher {teacher_accuracy:.4f}, "
                f"{100 * (teacher_accuracy - score):.1f} points lost)"
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(record, indent=2) + "\n")
    summary = summarize(record, args.split)
    record.setdefault("summary", {})[args.split] = summary
    out.write_text(json.dumps(record, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    for candidate, row in summary.get(setting_text(settings), {}).items():
        print(
            f"{args.split} {candidate}: composed {row['composed_mean']:.4f} "
            f"teacher {row['teacher_mean']:.4f} lost "
            f"{row['points_lost_mean']:.2f} points over seeds {row['seeds']}"
        )
    print(f"wrote {out}")


def markdown(record):
    """The Markdown table `render_results.py` shows beside the JSON: one
    table per setting, summarized from the runs."""
    lines = ["### fit_students and compose at their defaults"]
    tables = {}
    for split in ("validation", "test"):
        for text, rows in summarize(record, split).items():
            table = tables.setdefault(text, [])
            for candidate, row in rows.items():
                table.append(
                    f"| {split} | {candidate} | "
                    f"{', '.join(map(str, row['seeds']))} | "
                    f"{100 * row['teacher_mean']:.2f}% | "
                    f"{100 * row['composed_mean']:.2f}% | "
                    f"{row['points_lost_mean']:.2f} |"
                )
    for text, table in tables.items():
        lines += [
            "",
            text + ". Points lost = teacher accuracy minus the "
            "composed model's, on the split named (validation: the last 10% "
            "of the training images; test: the official test split, the "
            "students trained on all the images). Means over the seeds.",
            "",
            "| split | loss= | seeds | teacher | composed | points lost |",
            "| --- | --- | --- | ---: | ---: | ---: |",
            *table,
        ]
    return "\n".join(lines) + "\n"


def summarize(record, split):
    """Mean accuracies and points lost per setting (its sentence) and
    candidate on one split; runs of different settings never mix."""
    groups = {}
    for run in record["runs"].values():
        if run["split"] == split:
            text = run_setting_text(run, record)
            group = groups.setdefault(text, {})
            group.setdefault(run["candidate"], []).append(run)
    return {
        text: {
            candidate: {
                "seeds": sorted(r["seed"] for r in runs),
                "composed_mean": float(
                    np.mean([r["composed_accuracy"] for r in runs])
                ),
                "teacher_mean": float(
                    np.mean([r["teacher_accuracy"] for r in runs])
                ),
                "points_lost_mean": float(
                    np.mean([r["loss_to_teacher_points"] for r in runs])
                ),
            }
            for candidate, runs in sorted(group.items())
        }
        for text, group in groups.items()
    }


if __name__ == "__main__":
    main()
