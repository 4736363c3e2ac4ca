"""Cached augmented views vs the teacher in the step: speed and accuracy.

Two ways to give the students of the fast CIFAR-10 teacher
(`architectures.cifar10_fast_teacher`, n = 4 class,
`architectures.cifar10_fast_student`, bf16) augmented inputs:

- `augment`: `fit_students(x, augment=cifar10_augmentation())`: the
  teacher's trunk runs on every augmented batch in the train step;
- `views`: `teacherclass.views.ViewCache`: the teacher ran once per view
  beforehand (timed too: `views_build_seconds_per_view`), and each epoch
  reads one cached view (`fit_students(x, views=cache)`).

Speed (default): one student epoch over `--samples` random 32x32 images,
batch 512, side by side in rounds of both ways, augment first in even
rounds and views first in odd ones (each round records its order). Each
round is one `fit` of 2 epochs per way, through the same mechanism as
training uses (`fit_students` with `augment=` or `views=`), and the
second epoch is timed (the first traces); the ratio is the median
of the rounds' ratios. Untrained weights: speed only. Writes
`benchmarks/results/views_speed.json`.

Accuracy (`--accuracy --teacher T.keras --data-dir D`): both ways train an
n = 4 class from the same initial weights for `--epochs` epochs (Adam 1e-3,
cosine decay) on the first `--samples` CIFAR-10 training images, and are
scored on the last 5,000 training images (a validation split carved from
the training data; the test split is not read): the composed model's
accuracy (the teacher's head as is, no fine-tuning) and the students' MSE
to the teacher's clean representation. Writes
`benchmarks/results/views_accuracy.json`.

At the default paths, a run at settings other than the file's (speed:
`--samples`, `--views`; accuracy: also the teacher, `--epochs`,
`--batch-size`, `--seeds`) is refused before it starts: give `--out` to
write elsewhere, or to replace that file.

The defaults are the recorded runs' settings, so these commands (from
the repository root) redo them; the teacher is compared as a resolved
path.

Run: python benchmarks/views_speed.py [--samples 4096] [--rounds 3]
     python benchmarks/views_speed.py --accuracy \
         --teacher benchmarks/cache/cifar10/teacher-36e8359d4c-seed0.keras \
         --data-dir ../shared/data [--samples 10000] [--epochs 8] [--seeds 2]
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import CIFAR10_VALIDATION  # noqa: E402
from _common import EpochTimer  # noqa: E402
from _common import cifar10_probe_split  # noqa: E402
from _common import environment  # noqa: E402
from _common import student_scores  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import precision  # noqa: E402
from teacherclass import views as views_lib  # noqa: E402

BATCH = 512
SPEED_OUT = HERE / "results" / "views_speed.json"
ACCURACY_OUT = HERE / "results" / "views_accuracy.json"
# What a file's numbers measure: a run at the default path must match.
SPEED_SETTINGS = ("samples", "views")
ACCURACY_SETTINGS = (
    "teacher",
    "samples",
    "epochs",
    "views",
    "batch_size",
    "seeds",
)


def teacher_path(path):
    """`path` resolved (a relative one from the repository root), and
    relative to the root when inside it: how a teacher is recorded and
    compared, whichever way it was spelt."""
    resolved = (REPO / path).resolve()
    try:
        return str(resolved.relative_to(REPO))
    except ValueError:
        return str(resolved)


def _same(key, recorded, value):
    if key == "teacher":
        return teacher_path(recorded) == teacher_path(value)
    return recorded == value


def check_out(path, settings):
    """Raises ValueError if the file at `path` (a default `--out`) holds
    a result of other `settings` (only those both name are compared; the
    teacher as a resolved path), which a run would replace."""
    path = Path(path)
    if not path.is_file():
        return
    recorded = json.loads(path.read_text())
    differ = [
        f"{k} {recorded[k]!r} recorded, {v!r} now"
        for k, v in settings.items()
        if k in recorded and not _same(k, recorded[k], v)
    ]
    if differ:
        raise ValueError(
            f"{path} holds a result of other settings "
            f"({'; '.join(differ)}), which this run would replace: give "
            "--out to write elsewhere (or to replace that file). "
            "Received: "
            + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in settings.items()
            )
        )


def new_class(teacher, seed=0):
    keras.utils.set_random_seed(seed)
    return TeacherClass(
        teacher,
        num_students=4,
        student=architectures.cifar10_fast_student(4),
    )


def adam(num_samples, epochs, batch_size):
    steps = epochs * math.ceil(num_samples / batch_size)
    return keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps)
    )


def fit_augment(tc, x, epochs, batch_size, callbacks=()):
    return tc.fit_students(
        x,
        batch_size=batch_size,
        epochs=epochs,
        verbose=0,
        loss="mse",
        optimizer=adam(len(x), epochs, batch_size),
        augment=architectures.cifar10_augmentation(),
        callbacks=list(callbacks),
    )


def fit_views(tc, x, cache, epochs, batch_size, callbacks=(), initial=0):
    return tc.fit_students(
        x,
        views=cache,
        batch_size=batch_size,
        epochs=epochs,
        initial_epoch=initial,
        verbose=0,
        loss="mse",
        optimizer=adam(len(x), epochs - initial, batch_size),
        callbacks=list(callbacks),
    )


def speed(args):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.samples, 32, 32, 3)).astype("float32")
    x /= 255
    teacher = architectures.cifar10_fast_teacher()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cache = views_lib.ViewCache.build(
            tmp, teacher, x, args.views, verbose=2
        )
        build = time.perf_counter() - start

        def augment_epoch(r):
            timer = EpochTimer()
            fit_augment(new_class(teacher), x, 2, BATCH, [timer])
            return timer.times[-1]

        def views_epoch(r):
            timer = EpochTimer()
            # Epochs r + 1 and r + 2: each round reads other views.
            fit_views(
                new_class(teacher), x, cache, r + 3, BATCH, [timer], r + 1
            )
            return timer.times[-1]

        ways = {"augment": augment_epoch, "views": views_epoch}
        for r in range(args.rounds):
            order = ["augment", "views"] if r % 2 == 0 else ["views", "augment"]
            seconds = {way: ways[way](r) for way in order}
            augment, views = seconds["augment"], seconds["views"]
            rounds.append(
                {
                    "augment_seconds": augment,
                    "views_seconds": views,
                    "order": order,
                }
            )
            print(
                f"round {r + 1}/{args.rounds}: augment {augment:.1f} s, "
                f"views {views:.1f} s ({augment / views:.2f}x)",
                flush=True,
            )
    ratio = statistics.median(
        r["augment_seconds"] / r["views_seconds"] for r in rounds
    )
    result = {
        "benchmark": "views_speed",
        "samples": args.samples,
        "batch_size": BATCH,
        "precision": keras.config.dtype_policy().name,
        "views": args.views,
        "class": "n = 4, cifar10_fast_student",
        "teacher": "cifar10_fast_teacher() (64, 256, 256), untrained",
        "rounds": rounds,
        "views_build_seconds_per_view": build / (args.views + 1),
        "augment_epoch_seconds_median": statistics.median(
            r["augment_seconds"] for r in rounds
        ),
        "views_epoch_seconds_median": statistics.median(
            r["views_seconds"] for r in rounds
        ),
        "augment_over_views": ratio,
        "note": "rounds in alternating order (augment first in even rounds, "
        "views first in odd ones: `order`); each round one fit of 2 epochs "
        "per way, the second timed; ratio: the median of the rounds' "
        "ratios",
        "load_average": list(os.getloadavg()),
        **environment(),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"student epoch over {args.samples} images: augment= "
        f"{result['augment_epoch_seconds_median']:.1f} s, views "
        f"{result['views_epoch_seconds_median']:.1f} s ({ratio:.2f}x, "
        f"median of {args.rounds} rounds); a view costs "
        f"{result['views_build_seconds_per_view']:.1f} s once"
    )
    return result


def accuracy(args):
    if not args.teacher:
        raise SystemExit("--accuracy needs --teacher, a trained teacher")
    teacher = keras.saving.load_model(args.teacher)
    x, _, x_val, y_val, clean = cifar10_probe_split(
        teacher, args.data_dir, args.samples, BATCH
    )
    batch = args.batch_size
    result = {
        "benchmark": "views_accuracy",
        "script": "benchmarks/views_speed.py --accuracy",
        "samples": len(x),
        "validation_samples": CIFAR10_VALIDATION,
        "epochs": args.epochs,
        "views": args.views,
        "batch_size": batch,
        "precision": keras.config.dtype_policy().name,
        "class": "n = 4, cifar10_fast_student, plain MSE, no fine-tuning",
        "teacher": teacher_path(args.teacher),
        "teacher_val_accuracy": float(
            np.mean(
                teacher.predict(x_val, batch_size=BATCH, verbose=0).argmax(-1)
                == y_val
            )
        ),
        "seeds": args.seeds,
        "runs": [],
    }
    for seed in range(args.seeds):
        timer = EpochTimer()
        tc = new_class(teacher, seed)
        start = time.perf_counter()
        fit_augment(tc, x, args.epochs, batch, [timer])
        augment = {
            "seed": seed,
            "way": "augment",
            "train_seconds": time.perf_counter() - start,
            "epoch_seconds": timer.times,
            **student_scores(tc, x_val, y_val, clean, BATCH),
        }
        print(augment, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            cache = views_lib.ViewCache.build(
                tmp, teacher, x, args.views, seed=seed, verbose=2
            )
            build = time.perf_counter() - start
            tc = new_class(teacher, seed)
            timer = EpochTimer()
            start = time.perf_counter()
            fit_views(tc, x, cache, args.epochs, batch, [timer])
            epoch_seconds = timer.times
            views = {
                "seed": seed,
                "way": "views",
                "build_seconds": build,
                "train_seconds": time.perf_counter() - start,
                "epoch_seconds": epoch_seconds,
                **student_scores(tc, x_val, y_val, clean, BATCH),
            }
        print(views, flush=True)
        result["runs"] += [augment, views]
    for way in ("augment", "views"):
        runs = [r for r in result["runs"] if r["way"] == way]
        result[f"{way}_val_accuracy_mean"] = statistics.mean(
            r["val_accuracy"] for r in runs
        )
        result[f"{way}_val_mse_mean"] = statistics.mean(
            r["val_mse"] for r in runs
        )
    result.update({"load_average": list(os.getloadavg()), **environment()})
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"n = 4 class after {args.epochs} epochs on {len(x)} images, "
        f"validation accuracy (mean of {args.seeds} seeds): augment= "
        f"{result['augment_val_accuracy_mean']:.4f}, views "
        f"{result['views_val_accuracy_mean']:.4f}; students' MSE "
        f"{result['augment_val_mse_mean']:.4f} vs "
        f"{result['views_val_mse_mean']:.4f}"
    )
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accuracy", action="store_true")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3, help="speed rounds")
    p.add_argument("--epochs", type=int, default=8, help="accuracy epochs")
    p.add_argument("--batch-size", type=int, default=256, help="accuracy")
    p.add_argument("--seeds", type=int, default=2, help="accuracy seeds")
    p.add_argument("--views", type=int, default=None)
    p.add_argument("--teacher", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    # bfloat16 where the CPU has it, else float32 (precision_speed.py).
    precision.set_policy("auto")
    if args.accuracy:
        if not args.teacher:
            raise SystemExit("--accuracy needs --teacher, a trained teacher")
        # From the working directory, as `load_model` reads it.
        args.teacher = str(Path(args.teacher).resolve())
        args.samples = args.samples or 10_000
        args.views = 4 if args.views is None else args.views
        if args.out is None:
            # The recorded `samples` is what trained: at most all but
            # the held-out images.
            samples = min(args.samples, 50_000 - CIFAR10_VALIDATION)
            check_out(
                ACCURACY_OUT,
                {
                    "teacher": teacher_path(args.teacher),
                    "samples": samples,
                    "epochs": args.epochs,
                    "views": args.views,
                    "batch_size": args.batch_size,
                    "seeds": args.seeds,
                },
            )
            args.out = ACCURACY_OUT
        return accuracy(args)
    args.samples = args.samples or 4096
    args.views = 2 if args.views is None else args.views
    if args.out is None:
        check_out(SPEED_OUT, {"samples": args.samples, "views": args.views})
        args.out = SPEED_OUT
    return speed(args)


if __name__ == "__main__":
    main()
