"""Reproduces the paper's tables: teacher, classes of n students, baselines.

For one dataset and several seeds this trains (or reuses from the cache) a
teacher per seed, then each class configuration (n students from the paper's
architectures, via `TeacherClass`, composed with the teacher's head) and the
baselines:

(a) the paper's single student: the class with n = 1;
(b) logit distillation (`baselines.distill_logits`) into one student
    classifier (the n = 1 student tower + Dense(classes)), which on MNIST
    has about the parameters of the n = 4 class (80,410 vs 79,146);
(c) that same classifier trained from scratch on the labels.

Every finished unit (a teacher for a seed, a (configuration, seed) run) is
written at once, atomically, to `<out-dir>/<dataset>.json` (teachers also
to `<cache-dir>/<dataset>/*.keras`): a rerun, or a run after a kill, skips
what is done. From all recorded runs it writes `<out-dir>/<dataset>.md` (a
table per configuration with targets met or not), `<out-dir>/summary.md`
(one line per dataset, "not measured" where nothing was run) and
`<plot-dir>/<dataset>_accuracy_vs_params.png`.

Two configurations, labelled in every output:

- `--paper`: the paper's setup as far as it is known: students trained
  with MSE and Adam at its defaults, then the teacher's head fine-tuned on
  the labels with the students frozen (the paper's last step,
  `--fine-tune-epochs`); the same epochs and batch size as given (the
  paper's own are not known here). CIFAR-10 uses the paper's VGG-16
  teacher.
- default ("improved"): the paper's setup plus the changes listed in
  `IMPROVEMENTS` (cosine learning-rate decay for students and baselines)
  and, on MNIST and Fashion-MNIST, the dataset defaults in `DEFAULTS`: a
  teacher trained with random shifts and cosine decay, students with a
  dense bottleneck of at least 16 units (still >= 25x smaller than the
  teacher). CIFAR-10 uses the compact ResNet teacher. Baselines (b) and
  (c) get the same schedule and augmentation, and at least the n = 4
  class's parameters. Every change a configuration makes is written
  beside its results (`_changes`).

Class variants (`--variant`, see `reproduce_variants.py`): `plain` (the
class above, the default), `head_aware`, `conditioned`, `augmented`,
`refined` (`--refine-epochs N` of end-to-end refinement after composing;
baselines (b), (c) then train N more epochs, equal budgets) and `best`
(the ingredients that beat `plain` on the validation split, by a rule
recorded with the run). `--match params_macs` sizes the baselines'
bottleneck to the n = 4 class's parameters from width 1 and records how
close they come in parameters and multiply-adds; `--compact-students`
(MNIST, Fashion-MNIST) uses students whose class costs less compute than
the teacher. Every run records both, and `--measure-compute` adds latency
at batch 1 and 64 (teacher and composed side by side) and LiteRT sizes
where the library measures them.

Protocol: with `--split validation` the last 10% of the training samples
are held out and every model (teacher included) is scored on them
(`val_accuracy`); the test split is not read. Every such probe stays in
the JSON, and `<dataset>.md` gains an ablation table from them. `--split
test` (the default) trains on all the training samples and measures on
the test split after the last epoch (`test_accuracy`); no split is used
to select epochs. Each run records `settings_id`, `kind`, `n`,
`objective`, `variant`, `split`, the accuracy, `params` and `macs`. The
new options at their defaults are not part of a configuration, so the
committed ids hold. Times are wall seconds on the machine recorded in the
JSON and are inflated when it is shared.

The code: `reproduce_settings.py` (flags, configurations and their
ids), `reproduce_state.py` (the resumable results JSON),
`reproduce_runs.py` (teacher, class and baseline runs) and
`reproduce_tables.py` (tables, summary and plot); the architectures
come from `teacherclass.architectures.for_dataset`.

Run: python benchmarks/reproduce.py --dataset mnist --students 4 8 1 2
    --seeds 3 [--data-dir DIR] [--paper] [--objective mse [adversarial]]
    [--teacher-epochs N] [--epochs N] [--samples N] [--out-dir DIR]
    [--augment none|shift] [--augment-students] [--teacher-schedule
    constant|cosine] [--min-student-bottleneck N] [--variant V [V ...]]
    [--split test|validation] [--refine-epochs N] [--match
    params|params_macs] [--measure-compute] [--render-only]

CIFAR-10 without `--paper` is the resumable run (`reproduce_cifar10.py`,
`docs/howto/cifar10.md`): it has its own augmentation, schedules and
sizes, so `--augment`, `--teacher-schedule`, `--augment-students`,
`--match` and `--steps-per-execution` are refused there (at their
neutral values they pass, as recorded configurations give them).
"""

import json
import os
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import reproduce_runs as runs  # noqa: E402
import reproduce_settings as settings  # noqa: E402
import reproduce_tables as tables  # noqa: E402
import reproduce_variants as variants  # noqa: E402
from reproduce_state import State  # noqa: E402
from reproduce_state import now  # noqa: E402
from reproduce_state import unit_info  # noqa: E402

ROOT = HERE.parent


def render(out_dir, plot_dir, dataset):
    """Writes the tables, the summary and the plots from the JSON.

    The accuracy-vs-multiply-adds plot only where some are recorded.
    """
    state = State(out_dir / f"{dataset}.json", dataset, False)
    if not state.path.exists():
        raise ValueError(
            f"No results to render: {state.path} does not exist. "
            f"Received: --dataset {dataset} --out-dir {out_dir}"
        )
    md = tables.write_markdown(state.data, out_dir / f"{dataset}.md")
    tables.write_summary(out_dir)
    plot = tables.write_plot(state.data, plot_dir / tables.plot_name(dataset))
    tables.write_plot(
        state.data, plot_dir / tables.plot_name(dataset, "macs"), x="macs"
    )
    return state, md, plot


def unit_key(settings_id, kind, n, objective, variant, seed):
    """A run's key in the results JSON.

    The plain class and the baselines keep the keys of the results
    recorded before variants existed; other variants add their name.
    """
    parts = [settings_id, kind, f"n={n}", objective]
    if kind == "class" and variant != "plain":
        parts.append(variant)
    return "|".join(parts + [f"seed={seed}"])


def ingredients_for(data, cfg, variant, n, objective):
    """A variant's ingredients and what to record about the choice.

    "best" reads the validation probes of this configuration (itself on
    the validation split, else its twin there): see
    `reproduce_variants.choose_best`.
    """
    if variant != "best":
        return variants.ingredients(variant), {}
    twin = settings.digest({**cfg, "split": "validation"})
    chosen, choice = variants.choose_best(
        data, twin, n, objective, cfg.get("refine_epochs", 0)
    )
    return chosen, {"best_choice": choice}


def unavailable(state, key, info, reason, error):
    """Records a class run the library cannot run (yet), and goes on."""
    state.data["unavailable"][key] = {
        **info,
        "reason": reason,
        "traceback": traceback.format_exc(limit=3) if error else None,
        **unit_info(),
    }
    state.save()
    print(f"[{key}] not available: {reason}", flush=True)


def run_cifar10(args, state, cfg, teacher_cfg, settings_id, data):
    """The fast CIFAR-10 run (`reproduce_cifar10`); renders when done."""
    import reproduce_cifar10
    from reproduce_state import runs_dir

    runs = runs_dir(args.runs_dir) / "cifar10"
    cache = Path(args.cache_dir) / args.dataset
    done = reproduce_cifar10.run(
        args,
        state,
        cfg,
        settings.digest(teacher_cfg),
        settings_id,
        data,
        cache,
        runs,
        teacher_cfg=teacher_cfg,
    )
    if done and state.data["runs"]:
        plot_dir = (
            Path(args.plot_dir) if args.plot_dir else ROOT / "docs/results"
        )
        render(Path(args.out_dir), plot_dir, args.dataset)
    return state.data


def main(argv=None):
    """Runs every unit not yet recorded, then writes tables and the plot.

    Args:
        argv: command-line arguments (default `sys.argv[1:]`).

    Returns:
        The results dict, as written to `<out-dir>/<dataset>.json`.
    """
    args = settings.parser().parse_args(argv)
    settings.check(args)
    settings.check_variants(args)
    out_dir = Path(args.out_dir)
    plot_dir = Path(args.plot_dir) if args.plot_dir else ROOT / "docs/results"
    if args.backfill_compute:
        state = State(out_dir / f"{args.dataset}.json", args.dataset, False)
        filled = runs.backfill_compute(state.data)
        state.save()
        print(f"{state.path}: multiply-adds added to {filled} record(s)")
    if args.render_only:
        state, md, plot = render(out_dir, plot_dir, args.dataset)
        print("\n".join(md))
        print(f"wrote {out_dir / (args.dataset + '.md')}", end="")
        print(f", {plot}" if plot else "")
        return state.data
    cache = Path(args.cache_dir) / args.dataset
    cache.mkdir(parents=True, exist_ok=True)
    validation = args.split == "validation"
    x, y, x_test, y_test, note = runs.load_data(
        args.dataset, args.data_dir, args.samples, cache, test=not validation
    )
    # `samples` counts the training samples before the validation carve,
    # so a configuration and its validation twin differ in `split` only.
    teacher_cfg, cfg = settings.configuration(args, len(x))
    if validation:
        x, y, x_test, y_test = runs.carve_validation(
            x, y, settings.VALIDATION_SHARE
        )
    data = (x, y, x_test, y_test)
    metric = "val_accuracy" if validation else "test_accuracy"
    keras.config.set_dtype_policy(cfg["precision"])
    teacher_id = settings.digest(teacher_cfg)
    settings_id = settings.digest(cfg)
    state = State(out_dir / f"{args.dataset}.json", args.dataset)
    state.data.setdefault("settings", {})[settings_id] = {
        **cfg,
        "teacher_id": teacher_id,
        "data": note,
        "test_samples": len(x_test),
        "changes_from_paper": list(settings.changes(cfg)),
    }
    if validation:
        recorded = state.data["settings"][settings_id]
        recorded["test_samples"] = None
        recorded["validation_samples"] = len(x_test)
        recorded["train_samples_after_carve"] = len(x)
    # The library may change between invocations: keep each one's state.
    state.data["invocations"].append(
        {
            "date": now(),
            "argv": sys.argv[1:] if argv is None else list(argv),
            "versions": state.data["versions"],
        }
    )
    state.save()
    print(
        f"{args.dataset}: {len(x)} train / {len(x_test)} "
        f"{'validation' if validation else 'test'} samples; "
        f"configuration {settings_id}: {settings.describe(cfg)}",
        flush=True,
    )
    if settings.cifar10_fast(args):  # resumable stages, --budget-minutes
        return run_cifar10(args, state, cfg, teacher_cfg, settings_id, data)

    def teacher_for(seed):
        key = f"{teacher_id}-seed{seed}"
        path = cache / f"teacher-{key}.keras"
        if key not in state.data["teachers"]:
            sidecar = path.with_suffix(".json")
            if path.exists() and sidecar.exists():
                # The sidecar keeps `train_teacher`'s names ("test_" for
                # the held-out part, whichever split that was).
                record = runs.relabel(
                    json.loads(sidecar.read_text()), args.split
                )
                print(f"[teacher seed {seed}] reusing {path}", flush=True)
            else:
                print(f"[teacher seed {seed}] training", flush=True)
                record = runs.train_teacher(cfg, seed, data, path, args.verbose)
                record = runs.relabel(record, args.split)
            record["teacher_id"] = teacher_id
            record["config"] = teacher_cfg
            state.data["teachers"][key] = record
            state.save()
            print(
                f"[teacher seed {seed}] {metric} {record[metric]:.4f}, "
                f"{record['train_seconds']:.0f} s",
                flush=True,
            )
        elif not path.exists():
            # Recorded, but its file is gone (a fresh clone: the cache is
            # not in git). Trained again with the same seed and settings;
            # the recorded numbers stay, the new ones are added beside.
            print(
                f"[teacher seed {seed}] recorded, but {path} is missing: "
                "training it again",
                flush=True,
            )
            again = runs.train_teacher(cfg, seed, data, path, args.verbose)
            again = runs.relabel(again, args.split)
            recorded = state.data["teachers"][key]
            recorded.setdefault("retrained", []).append(
                {k: v for k, v in again.items() if k != "history"}
            )
            state.save()
            print(
                f"[teacher seed {seed}] retrained: {metric} "
                f"{again.get(metric, float('nan')):.4f} (recorded "
                f"{recorded.get(metric, float('nan')):.4f})",
                flush=True,
            )
        return keras.saving.load_model(path)

    units = []
    for variant in args.variant:
        for objective in args.objective:
            for n in args.students:
                units.append(("class", n, objective, variant))
    units += [(kind, 0, "", "") for kind in args.baselines]
    done = set()
    for kind, n, base_objective, variant in units:
        unit_objective = base_objective
        if kind == "class" and variant != "best":
            unit_objective = variants.objective_of(
                variants.ingredients(variant), base_objective
            )
        for seed in settings.seeds(args):
            # "best" is keyed by the objective asked for; the one it
            # trains with (chosen below) is recorded in the run.
            objective = unit_objective
            key = unit_key(settings_id, kind, n, objective, variant, seed)
            if key in done:  # head_aware of each --objective: one unit
                continue
            done.add(key)
            if key in state.data["runs"]:
                print(f"[{key}] done, skipped", flush=True)
                continue
            info = {
                "settings_id": settings_id,
                "kind": kind,
                "n": n,
                "objective": objective,
                "variant": variant,
                "split": args.split,
                "seed": seed,
            }
            extra = {}
            if kind == "class":
                try:
                    ingredients, extra = ingredients_for(
                        state.data, cfg, variant, n, base_objective
                    )
                    reason = variants.missing(ingredients)
                except ValueError as e:  # "best" without its probes
                    reason = str(e)
                if reason is None and variant == "best":
                    objective = variants.objective_of(
                        ingredients, base_objective
                    )
                    info["objective"] = objective
                if reason is not None:
                    unavailable(state, key, info, reason, None)
                    continue
            teacher = teacher_for(seed)
            print(f"[{key}] running", flush=True)
            try:
                if kind == "class":
                    record = runs.run_class(
                        cfg,
                        n,
                        objective,
                        seed,
                        teacher,
                        data,
                        args.verbose,
                        args.steps_per_execution,
                        ingredients=ingredients,
                        measure_compute=args.measure_compute,
                    )
                else:
                    record = runs.run_baseline(
                        cfg,
                        kind,
                        seed,
                        teacher,
                        data,
                        args.verbose,
                        measure_compute=args.measure_compute,
                    )
            except Exception as e:
                if kind != "class" or (
                    objective == "mse" and variant == "plain"
                ):
                    raise
                # An objective or variant may not work with this library
                # yet: record, go on, and try again on the next run.
                unavailable(state, key, info, f"{type(e).__name__}: {e}", e)
                runs.fresh_session(cfg)
                continue
            state.data["unavailable"].pop(key, None)
            record = runs.relabel(record, args.split)
            record.update(
                {**info, **extra, "teacher_id": teacher_id, **unit_info()}
            )
            state.data["runs"][key] = record
            state.save()
            print(
                f"[{key}] {metric} {record[metric]:.4f}, "
                f"{record['params']:,} params, "
                f"{record['macs']:,} multiply-adds, "
                f"{record['train_seconds']:.0f} s",
                flush=True,
            )
            runs.fresh_session(cfg)

    _, md, plot = render(out_dir, plot_dir, args.dataset)
    print("\n".join(md))
    print(f"wrote {state.path}, {out_dir / (args.dataset + '.md')}", end="")
    print(f", {plot}" if plot else "")
    return state.data


if __name__ == "__main__":
    main()
