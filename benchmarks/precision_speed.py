"""Training-step time in float32 and in mixed bfloat16 on this CPU.

What `precision.resolve_policy("auto")` chooses between on a CPU. Times
`train_on_batch` of two models, in rounds of both policies, each on a
freshly built and traced model, float32 first in even rounds and mixed
bfloat16 first in odd ones (each round records its order), so that the
load of a shared machine, and whatever the first run of a round pays,
falls on both alike: the CIFAR-10 fast teacher
(convolutions) and the MNIST paper teacher (mostly dense). Records the
CPU's model name, the bfloat16 flags `precision` looks for and what
"auto" resolved to, in `results/precision_speed.json`.

    python benchmarks/precision_speed.py [--rounds 3] [--steps 3]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import environment  # noqa: E402
from _common import write_result  # noqa: E402

from teacherclass import architectures  # noqa: E402
from teacherclass import precision  # noqa: E402

MODELS = {
    "cifar10_fast_teacher": (
        architectures.cifar10_fast_teacher,
        (32, 32, 3),
    ),
    "mnist_teacher": (architectures.mnist_teacher, (28, 28, 1)),
}
POLICIES = ("float32", "mixed_bfloat16")


def step_seconds(build, shape, policy, batch, steps):
    """Median seconds of `steps` training steps after one traced step."""
    keras.config.set_dtype_policy(policy)
    try:
        model = build()
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.random((batch, *shape), dtype="float32")
        y = keras.utils.to_categorical(rng.integers(0, 10, batch), 10)
        model.train_on_batch(x, y)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        keras.config.set_dtype_policy("float32")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default=str(HERE / "results/precision_speed.json"))
    args = p.parse_args(argv)
    models = {}
    for name, (build, shape) in MODELS.items():
        rounds = []
        for r in range(args.rounds):
            order = POLICIES if r % 2 == 0 else POLICIES[::-1]
            row = {
                policy: step_seconds(
                    build, shape, policy, args.batch_size, args.steps
                )
                for policy in order
            }
            rounds.append({**row, "order": list(order)})
            print(
                f"{name} round {r + 1}/{args.rounds}: float32 "
                f"{row['float32']:.3f} s, mixed_bfloat16 "
                f"{row['mixed_bfloat16']:.3f} s per step",
                flush=True,
            )
        models[name] = {
            "rounds": rounds,
            "bfloat16_over_float32": statistics.median(
                r["mixed_bfloat16"] / r["float32"] for r in rounds
            ),
        }
    flags = precision.cpu_flags()
    result = {
        "benchmark": "precision_speed",
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "cpu_model": cpu_model(),
        "cpu_flags": sorted(
            f
            for f in flags
            if f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16")
            or f in precision.BFLOAT16_FLAGS
            or f.startswith("amx")
        ),
        "cpu_has_bfloat16": precision.cpu_has_bfloat16(),
        "auto": precision.resolve_policy("auto"),
        "models": models,
        "note": "median seconds of a training step (train_on_batch), "
        "rounds in alternating order (float32 first in even rounds, "
        "mixed_bfloat16 first in odd ones; each round's order recorded); "
        "ratio: the median of the rounds' ratios (above 1: bfloat16 is "
        "slower)",
        "load_average": list(os.getloadavg()),
        **environment(),
    }
    write_result(args.out, result)
    for name, m in models.items():
        print(
            f"{name}: mixed_bfloat16 / float32 step time "
            f"{m['bfloat16_over_float32']:.2f}x; auto -> {result['auto']}"
        )
    return result


if __name__ == "__main__":
    main()
