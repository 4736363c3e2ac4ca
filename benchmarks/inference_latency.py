"""Inference latency: teacher, composed (unfused and fused) and int8 LiteRT.

For each model: the teacher, the composed model unfused, the composed model
fused in each mode of `teacherclass.fusion` (and the mode `fuse("auto")`
picks on this machine), and int8 LiteRT files of the teacher, the unfused
and the fused ("grouped") composed model; at batch 1 and 64. All variants
of one model are timed side by side in this one process, in rounds that
rotate and reverse their order, each call timed on its own after warm-up;
the median over every call of every round is reported with its
interquartile range. Fusion's own gain (unfused / fused latency) is
reported for every model and mode, including where it loses (< 1).

Models: the digits demo (`teacherclass run`'s default: trained here for a
few epochs, or loaded from a run directory with `--digits-run`), and the
paper's MNIST and Fashion-MNIST teachers and students for n = 4 and 8, and
the compact MNIST students (`mnist_student(n, compact=True)`, a class below
the teacher's multiply-adds) for n = 4 and 8, with untrained weights
(latency does not depend on the values of the weights; MNIST and
Fashion-MNIST share one architecture, so their rows differ by noise
only).

`cifar10_n4`: the CIFAR-10 configuration `--cifar10-config` of
`results/cifar10.json` (default: the latest, `f7628e2217`): the fast
teacher, its n = 4 class on the teacher's frozen first block, and the
single classifier of baselines (b) and (c) at the class's size
(`baseline`), untrained, timed side by side with the others. Write it to
its own file (`--out`), as the other models' file is written whole.

A file is written whole: at the default `--out`, a run that would drop a
model the file holds (or measure another CIFAR-10 configuration) is
refused before it starts; give `--out` to write elsewhere, or to replace
that file.

Run: python benchmarks/inference_latency.py [--digits-run DIR]
     [--rounds 5] [--calls 20] [--models digits,mnist_n4,...]
     [--out FILE]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import datasets  # noqa: E402
from teacherclass import export as export_lib  # noqa: E402
from teacherclass import fusion  # noqa: E402
from teacherclass import latency  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import environment  # noqa: E402
from _common import write_result  # noqa: E402

BATCH_SIZES = (1, 64)
MODELS = (
    "digits",
    "mnist_n4",
    "mnist_n8",
    "fashion_mnist_n4",
    "mnist_compact_n4",
    "mnist_compact_n8",
    "cifar10_n4",
)
CIFAR10_CONFIG = "f7628e2217"
OUT = HERE / "results" / "inference_latency.json"


def _configuration(record, name):
    """The CIFAR-10 configuration a recorded model was built from (None
    for the others): in the config, or (older files) its weights' note."""
    if name != "cifar10_n4":
        return None
    found = record.get("config", {}).get("cifar10_config")
    if found is None:
        weights = record["models"][name].get("weights", "")
        found = weights.rpartition("configuration ")[2] or None
    return found


def check_out(path, names, cifar10_config):
    """Raises ValueError if the file at `path` (the default `--out`)
    holds a model this run would not measure again, as it was measured:
    writing the file whole would lose it."""
    path = Path(path)
    if not path.is_file():
        return
    record = json.loads(path.read_text())
    now = {n: cifar10_config if n == "cifar10_n4" else None for n in names}
    lost = [
        name
        for name in record.get("models", {})
        if name not in now or _configuration(record, name) != now[name]
    ]
    if lost:
        raise ValueError(
            f"{path} holds models this run would not measure again, as "
            f"recorded: {', '.join(lost)}. Give --out to write elsewhere "
            "(or to replace that file). Received: --models "
            f"{','.join(names)} --cifar10-config {cifar10_config}"
        )


def _images(name, n=256, seed=0, shape=(28, 28, 1)):
    """Real training images in [0, 1] when on disk, else uniform noise."""
    try:
        x, _ = datasets.load(name, "train")
        return x[:n].astype("float32") / (255.0 if x.dtype == np.uint8 else 1)
    except (FileNotFoundError, ValueError, OSError):
        rng = np.random.default_rng(seed)
        return rng.random((n, *shape)).astype("float32")


def _digits(run_dir, epochs):
    """The digits demo's teacher and composed model, and images."""
    (x, y), _ = (datasets.load("digits", s) for s in ("train", "test"))
    if run_dir:
        teacher = keras.saving.load_model(
            os.path.join(run_dir, "teacher.keras")
        )
        composed = keras.saving.load_model(
            os.path.join(run_dir, "composed.keras")
        )
        return teacher, composed, x, f"loaded from {run_dir}"
    tc = TeacherClass(
        architectures.digits_teacher(),
        num_students=4,
        student=architectures.digits_student(),
    )
    tc.fit_teacher(x, y, epochs=epochs, batch_size=64, verbose=0)
    tc.fit_students(x, epochs=epochs, batch_size=64, verbose=0)
    return tc.teacher, tc.compose(), x, f"trained here, {epochs} epochs each"


def _paper(dataset, n, compact=False):
    """The paper's teacher and n students (or the compact ones,
    `mnist_student(n, compact=True)`), untrained: one student step."""
    x = _images(dataset)
    tc = TeacherClass(
        architectures.mnist_teacher(),
        num_students=n,
        student=architectures.mnist_student(n, compact=compact),
    )
    # compose() wants trained students: one step on 32 images.
    tc.fit_students(x[:32], epochs=1, batch_size=32, verbose=0)
    return tc.teacher, tc.compose(), x, "untrained (latency only)"


def _cifar10(settings_id, n=4):
    """The CIFAR-10 configuration's teacher, n = 4 class and baseline
    classifier, untrained: one student step."""
    import reproduce_cifar10

    state = json.loads((HERE / "results" / "cifar10.json").read_text())
    cfg = state["settings"][settings_id]
    x = _images("cifar10", shape=(32, 32, 3))
    teacher = architectures.cifar10_fast_teacher(tuple(cfg["teacher_widths"]))
    tc = reproduce_cifar10.make_class(teacher, n, cfg)
    tc.fit_students(x[:32], epochs=1, batch_size=32, verbose=0)
    extra = {"baseline": reproduce_cifar10.baseline_model(cfg, teacher)}
    note = f"untrained (latency only), configuration {settings_id}"
    return tc.teacher, tc.compose(), x, note, extra


class _Keras:
    def __init__(self, model):
        self.model = model
        self._call = tf.function(lambda x: model(x, training=False))

    def __call__(self, x):
        return np.asarray(self._call(x))


def _litert(model, path, calibration):
    export_lib.export(
        model,
        path,
        format="litert",
        quantize="int8",
        representative_data=calibration,
        overwrite=True,
    )
    # As many threads as TensorFlow gives the Keras variants (LiteRT's
    # default is one): equal settings.
    return export_lib.load(path, num_threads=export_lib.tensorflow_threads())


def _time(variants, inputs, rounds, calls):
    """`{variant: {batch: [ms per call]}}`, in rotating, reversing order."""
    names = list(variants)
    times = {name: {b: [] for b in inputs} for name in names}
    for x in inputs.values():
        for fn in variants.values():  # warm-up: tracing, allocation
            for _ in range(3):
                fn(x)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        if r % 2:
            order.reverse()
        for b, x in inputs.items():
            for name in order:
                fn = variants[name]
                fn(x)
                for _ in range(calls):
                    start = time.perf_counter()
                    fn(x)
                    times[name][b].append(1000 * (time.perf_counter() - start))
    return times


def _summary(samples):
    q = np.percentile(samples, [25, 50, 75])
    return {
        "median_ms": float(q[1]),
        "p25_ms": float(q[0]),
        "p75_ms": float(q[2]),
        "calls": len(samples),
    }


def _measure(name, teacher, composed, x, note, args, workdir, extra=None):
    """`extra`: `{name: model}` timed beside the others (the baseline)."""
    print(f"\n== {name}: {note}", flush=True)
    extra = extra or {}
    variants = {"teacher": _Keras(teacher), "composed": _Keras(composed)}
    params = {
        "teacher": teacher.count_params(),
        "composed": composed.count_params(),
    }
    for key, model in extra.items():
        variants[key] = _Keras(model)
        params[key] = model.count_params()
    for mode in fusion.FUSED_MODES:
        fused = fusion.fuse(composed, mode=mode)
        variants[f"fused_{mode}"] = _Keras(fused)
        params[f"fused_{mode}"] = fused.count_params()
    auto = fusion.fuse(composed, mode="auto")
    calibration = x[:200]
    variants["teacher_int8"] = _litert(
        teacher, os.path.join(workdir, f"{name}_teacher.tflite"), calibration
    )
    variants["composed_int8"] = _litert(
        composed, os.path.join(workdir, f"{name}_composed.tflite"), calibration
    )
    for key, model in extra.items():
        variants[f"{key}_int8"] = _litert(
            model, os.path.join(workdir, f"{name}_{key}.tflite"), calibration
        )
    variants["fused_grouped_int8"] = _litert(
        fusion.fuse(composed, mode="grouped"),
        os.path.join(workdir, f"{name}_fused.tflite"),
        calibration,
    )
    specs = latency.input_specs(composed)
    inputs = {b: latency.sample_inputs(specs, b) for b in BATCH_SIZES}
    raw = _time(variants, inputs, args.rounds, args.calls)
    results = {
        v: {str(b): _summary(t) for b, t in per.items()}
        for v, per in raw.items()
    }
    med = {
        v: {b: r["median_ms"] for b, r in per.items()}
        for v, per in results.items()
    }
    gains = {}
    for b in med["composed"]:
        gains[b] = {
            mode: med["composed"][b] / med[f"fused_{mode}"][b]
            for mode in fusion.FUSED_MODES
        }
        gains[b]["int8_grouped_vs_int8_unfused"] = (
            med["composed_int8"][b] / med["fused_grouped_int8"][b]
        )
    best = {
        b: min(fusion.FUSED_MODES, key=lambda m, b=b: med[f"fused_{m}"][b])
        for b in med["composed"]
    }
    return {
        "weights": note,
        "params": params,
        "latency": results,
        "composed_over_teacher": {
            b: med["composed"][b] / med["teacher"][b] for b in med["composed"]
        },
        **{
            f"{key}_over_teacher": {
                b: med[key][b] / med["teacher"][b] for b in med[key]
            }
            for key in extra
        },
        "best_fused_over_teacher": {
            b: med[f"fused_{best[b]}"][b] / med["teacher"][b]
            for b in med["composed"]
        },
        "fusion_gain": gains,
        "fastest_mode": best,
        "auto": auto.fusion.as_dict(),
    }


_RATIOS = ("composed_over_teacher", "best_fused_over_teacher")


def _table(results):
    lines = []
    for name, r in results.items():
        lines.append(
            f"\n{name} ({r['weights']}); auto chose {r['auto']['mode']}"
        )
        lines.append(
            f"{'variant':<22} {'params':>10} "
            + " ".join(f"{'b=' + b + ' ms (IQR)':>26}" for b in ("1", "64"))
        )
        for v, per in r["latency"].items():
            cells = []
            for b in ("1", "64"):
                s = per[b]
                cells.append(
                    f"{s['median_ms']:>10.3f} "
                    f"({s['p25_ms']:.3f}-{s['p75_ms']:.3f})".rjust(26)
                )
            p = r["params"].get(v, "")
            p = f"{p:,}" if p != "" else "-"
            lines.append(f"{v:<22} {p:>10} " + " ".join(cells))
        for b in ("1", "64"):
            g = r["fusion_gain"][b]
            gains = ", ".join(f"{k} {v:.2f}x" for k, v in g.items())
            lines.append(f"fusion gain b={b}: {gains}")
            lines.append(
                f"composed / teacher b={b}: "
                f"unfused {r['composed_over_teacher'][b]:.2f}, "
                f"best fused ({r['fastest_mode'][b]}) "
                f"{r['best_fused_over_teacher'][b]:.2f}"
                + "".join(
                    f", {key[: -len('_over_teacher')]} {v[b]:.2f}"
                    for key, v in r.items()
                    if key.endswith("_over_teacher") and key not in _RATIOS
                )
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits-run", default=None)
    parser.add_argument("--digits-epochs", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cifar10-config", default=CIFAR10_CONFIG)
    parser.add_argument(
        "--out",
        default=None,
        help=f"default: {OUT.relative_to(HERE.parent)}, where a run may "
        "not drop the models it holds",
    )
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    names = [m for m in args.models.split(",") if m]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown --models {unknown}; choose from {MODELS}")
    if args.out is None:
        check_out(OUT, names, args.cifar10_config)
        args.out = str(OUT)
    results = {}
    with tf.device("/CPU:0"), tempfile.TemporaryDirectory() as workdir:
        for name in names:
            extra = None
            if name == "digits":
                built = _digits(args.digits_run, args.digits_epochs)
            elif name == "cifar10_n4":
                *built, extra = _cifar10(args.cifar10_config)
            else:
                dataset, n = name.rsplit("_n", 1)
                compact = dataset.endswith("_compact")
                dataset = dataset.removesuffix("_compact")
                built = _paper(dataset, int(n), compact=compact)
            results[name] = _measure(name, *built, args, workdir, extra)
            print(_table({name: results[name]}), flush=True)
    result = {
        "benchmark": "inference_latency",
        **environment(),
        "config": {
            "batch_sizes": list(BATCH_SIZES),
            "rounds": args.rounds,
            "calls_per_round": args.calls,
            "seed": args.seed,
            **(
                {"cifar10_config": args.cifar10_config}
                if "cifar10_n4" in names
                else {}
            ),
            "device": "CPU",
            "keras_call": "tf.function(model(x, training=False))",
            "litert": "tf.lite.Interpreter, num_threads = TensorFlow's "
            "intra-op threads (results before 2026-12-05: LiteRT's "
            "default, one thread)",
            "litert_threads": export_lib.tensorflow_threads(),
        },
        "note": (
            "medians over every timed call after warm-up; a model whose "
            "weights say 'untrained' was not trained (latency only: it "
            "does not depend on the weights' values); fusion_gain = "
            "unfused / fused latency (< 1 means fusion loses)"
        ),
        "models": results,
    }
    print("\n" + _table(results))
    write_result(args.out, result)


if __name__ == "__main__":
    main()
