"""How long a CIFAR-10 fast teacher's training step takes at each width.

Builds `architectures.cifar10_fast_teacher` at the default widths and at
the widths given, compiles each with `cifar10_fast_recipe`'s optimizer and
loss, and times `train_on_batch` on one batch of `--batch-size` random
images, side by side: after two untimed steps each (tracing), every round
times `--steps` steps of each model in turn, the order reversed every
other round, so a load that comes and goes weighs on all alike. Prints
and records the median step time of each, its ratio to the default's and
the epochs of the 50,000 training images that fit in `--minutes`
(issue 14's teacher budget: 90 minutes) at that speed, the input
pipeline not counted. Answers whether a wider teacher fits the budget
before a long run is spent on it.

    python benchmarks/teacher_width_speed.py --widths 128,384,384
"""

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import CIFAR10_TRAIN  # noqa: E402
from _common import environment  # noqa: E402
from _common import write_result  # noqa: E402
from reproduce_state import _git_state  # noqa: E402
from teacher_probe import parse_widths  # noqa: E402

from teacherclass import architectures  # noqa: E402


def _label(widths):
    return "/".join(str(w) for w in widths)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--widths",
        nargs="+",
        default=["128,384,384"],
        help="the widths to time beside the default, each comma-separated",
    )
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--minutes", type=float, default=90.0)
    p.add_argument("--precision", default="mixed_bfloat16")
    p.add_argument(
        "--out", default=str(HERE / "results/teacher_width_speed.json")
    )
    args = p.parse_args(argv)
    for flag in ("batch_size", "rounds", "steps"):
        if getattr(args, flag) < 1:
            raise ValueError(
                f"--{flag.replace('_', '-')} must be at least 1. "
                f"Received: --{flag.replace('_', '-')} {getattr(args, flag)}"
            )
    if not args.minutes > 0:
        raise ValueError(
            f"--minutes must be positive. Received: --minutes {args.minutes:g}"
        )
    configs = [architectures.FAST_TEACHER_WIDTHS]
    configs += [parse_widths(w) for w in args.widths]
    git_state = _git_state() or {}
    keras.config.set_dtype_policy(args.precision)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 32, 32, 3), dtype="float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, args.batch_size), 10)
    steps_per_epoch = math.ceil(CIFAR10_TRAIN / args.batch_size)
    models = {}
    for widths in configs:
        # The recipe's 12 epochs set its schedule only, not a step's cost.
        recipe = architectures.cifar10_fast_recipe(12, steps_per_epoch)
        model = architectures.cifar10_fast_teacher(widths, whitening_images=x)
        model.compile(optimizer=recipe.optimizer, loss=recipe.loss)
        for _ in range(2):
            model.train_on_batch(x, y)
        models[_label(widths)] = model
    times = {name: [] for name in models}
    names = list(models)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for _ in range(args.steps):
                start = time.perf_counter()
                models[name].train_on_batch(x, y)
                times[name].append(time.perf_counter() - start)
    default = _label(architectures.FAST_TEACHER_WIDTHS)
    base = statistics.median(times[default])
    rows = []
    for name, model in models.items():
        step = statistics.median(times[name])
        epoch = step * steps_per_epoch
        row = {
            "widths": name,
            "params": int(model.count_params()),
            "step_ms": round(1000 * step, 1),
            "ratio_to_default": round(step / base, 2),
            "epoch_seconds_estimate": round(epoch, 1),
            "epochs_in_budget": round(60 * args.minutes / epoch, 1),
        }
        rows.append(row)
        print(
            f"{name:>12}: {row['params']:>10,} parameters, "
            f"{row['step_ms']:8.1f} ms/step "
            f"({row['ratio_to_default']:.2f}x the default), "
            f"~{epoch:.0f} s per {CIFAR10_TRAIN:,}-image epoch, "
            f"{row['epochs_in_budget']} epochs in {args.minutes:g} min"
        )
    result = {
        "benchmark": "teacher_width_speed",
        "script": "benchmarks/teacher_width_speed.py",
        **git_state,
        "config": {
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "steps_per_round": args.steps,
            "precision": args.precision,
            "budget_minutes": args.minutes,
            "timed": "train_on_batch on one batch of random images, the "
            "models in alternating rounds; the input pipeline is not "
            "counted, so real epochs take longer",
        },
        "teachers": rows,
        **environment(),
    }
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
