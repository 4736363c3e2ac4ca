"""benchmarks/reproduce.py on CIFAR-10: resumable stages within a budget.

`reproduce.py --dataset cifar10` (without `--paper`) runs here. Every
stage saves its state after each epoch (`reproduce_state.Stage`) under
`<runs-dir>/cifar10/<id>/` (`--runs-dir`, else `$TEACHERCLASS_RUNS`,
else `~/.cache/teacherclass/reproduce`), so a rerun with the same flags
continues where the last one stopped. `--budget-minutes M` stops cleanly
after the epoch that crosses M minutes and prints what is left.

Per seed, in order (`--stages` picks a prefix of them):

1. teacher: `architectures.cifar10_fast_teacher` trained with
   `cifar10_fast_recipe` (SGD Nesterov, warmup + cosine, label smoothing,
   4-pixel shifts and flips), one epoch per checkpoint;
2. views: the teacher's representation and logits of the clean images
   and of `--views` augmented views, cached once (`teacherclass.views`);
3. classes: for each n, the students trained on the cached views (epoch
   e reads view e mod (views + 1)), then the head fine-tuned on labels;
4. baselines: (b) a single student classifier matched in parameters and
   multiply-adds to the n = 4 class, trained on the views' logits (soft
   targets), and (c) the same classifier on the labels, on the same
   views and epochs.

Each epoch's data comes from seeds of (seed, epoch): a resumed stage sees
the batches an uninterrupted one would, and ends on the same weights.
"""

import json
import math
import os
import time
from pathlib import Path

import keras
import tensorflow as tf
from reproduce_state import Budget
from reproduce_state import BudgetExhausted
from reproduce_state import Stage
from reproduce_state import atomic_write
from reproduce_state import unit_info

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass import report as report_lib
from teacherclass import training
from teacherclass import views as views_lib
from teacherclass.flops import count_flops

STAGES = ("teacher", "views", "classes", "baselines")


def log(line):
    print(line, flush=True)


def epoch_seed(seed, epoch):
    """The seed of one epoch's order and augmentation."""
    return seed * 100_003 + epoch


def labelled_batches(x, y, batch_size, seed, epoch):
    """One epoch of shuffled, augmented `(x, y)` batches, reproducibly.

    A fresh augmentation seeded by (seed, epoch), applied in order (not in
    parallel: its random state advances per call), so a resumed run draws
    what an uninterrupted one would.
    """
    s = epoch_seed(seed, epoch)
    augment = architectures.cifar10_augmentation(seed=s)

    def run(images, labels):
        return tf.cast(augment(images, training=True), images.dtype), labels

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=s, reshuffle_each_iteration=False)
    return ds.batch(batch_size).map(run).prefetch(tf.data.AUTOTUNE)


def one_epoch(model, ds, epoch):
    """Fits one epoch; returns its logs as floats."""
    h = model.fit(
        ds, epochs=epoch + 1, initial_epoch=epoch, verbose=0, shuffle=False
    )
    return {k: float(v[-1]) for k, v in h.history.items()}


def built_optimizer(model):
    """Builds the compiled model's optimizer, so a checkpoint fits it."""
    model.optimizer.build(model.trainable_variables)
    return model


def teacher_recipe(cfg, n_train):
    steps = math.ceil(n_train / cfg["batch_size"])
    return architectures.cifar10_fast_recipe(
        cfg["teacher_epochs"], steps, cfg["batch_size"]
    )


def train_teacher(cfg, seed, data, stage_dir, budget):
    """The teacher stage: resumable; returns the trained teacher."""
    x, y = data[0], data[1]
    keras.utils.set_random_seed(seed)
    teacher = architectures.cifar10_fast_teacher(tuple(cfg["teacher_widths"]))
    recipe = teacher_recipe(cfg, len(x))
    teacher.compile(
        optimizer=recipe.optimizer, loss=recipe.loss, metrics=recipe.metrics
    )
    built_optimizer(teacher)
    y1 = keras.utils.to_categorical(y, 10).astype("float32")
    stage = Stage(
        stage_dir,
        f"teacher seed {seed}",
        cfg["teacher_epochs"],
        lambda: teacher.weights + teacher.optimizer.variables,
    )
    stage.run(
        lambda e: one_epoch(
            teacher, labelled_batches(x, y1, cfg["batch_size"], seed, e), e
        ),
        budget,
        log,
    )
    return teacher, stage.progress


def teacher_record(teacher, progress, data, path):
    x_test, y_test = data[2], data[3]
    return {
        "file": str(path),
        "params": int(teacher.count_params()),
        "macs": count_flops(teacher) // 2,
        "test_accuracy": report_lib.accuracy(
            teacher.predict(x_test, batch_size=512, verbose=0), y_test
        ),
        "train_seconds": float(sum(progress["epoch_seconds"])),
        "epoch_seconds": progress["epoch_seconds"],
        "history": progress["logs"],
        **unit_info(),
    }


# ----------------------------------------------------------------------
# Students and baselines
# ----------------------------------------------------------------------


def adam(cfg, n_train):
    steps = cfg["epochs"] * math.ceil(n_train / cfg["batch_size"])
    return keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps)
    )


def make_class(teacher, n, cfg):
    return TeacherClass(
        teacher,
        num_students=n,
        student=architectures.cifar10_fast_student(
            n, filters=tuple(cfg["student_filters"][str(n)])
        ),
    )


def train_class(cfg, n, seed, teacher, views, data, stage_dir, budget):
    """Students on the cached views, then head fine-tuning: resumable."""
    x, y, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    tc = make_class(teacher, n, cfg)
    trainer = training.for_class(tc)
    trainer.compile(optimizer=adam(cfg, len(x)), loss="mse")
    built_optimizer(trainer)
    students = Stage(
        Path(stage_dir) / "students",
        f"class n={n} seed {seed} students",
        cfg["epochs"],
        lambda: trainer.weights + trainer.optimizer.variables,
    )
    students.run(
        lambda e: one_epoch(
            trainer, views.dataset(x, e, cfg["batch_size"], seed), e
        ),
        budget,
        log,
    )
    tc._mark_trained(range(n))
    record = {
        "students_before_fine_tune_test_accuracy": report_lib.accuracy(
            tc.compose().predict(x_test, batch_size=512, verbose=0), y_test
        ),
        "student_epoch_seconds": students.progress["epoch_seconds"],
        "students_history": students.progress["logs"],
    }
    head_seconds = []
    if cfg["fine_tune_epochs"]:
        # The students are frozen; only the head learns, on the labels of
        # the same views.
        composed = tc.compose()
        for tower in tc.students:
            tower.trainable = False
        composed.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        built_optimizer(composed)
        head = Stage(
            Path(stage_dir) / "head",
            f"class n={n} seed {seed} head",
            cfg["fine_tune_epochs"],
            lambda: composed.weights + composed.optimizer.variables,
        )
        head.run(
            lambda e: one_epoch(
                composed,
                views.dataset(
                    x, e, cfg["batch_size"], seed, labels=y.astype("int32")
                ),
                e,
            ),
            budget,
            log,
        )
        head_seconds = head.progress["epoch_seconds"]
        record["fine_tune_history"] = head.progress["logs"]
    else:
        composed = tc.compose()
    params = int(composed.count_params())
    record.update(
        {
            "params": params,
            "macs": count_flops(composed) // 2,
            "compression_ratio": teacher.count_params() / params,
            "test_accuracy": report_lib.accuracy(
                composed.predict(x_test, batch_size=512, verbose=0), y_test
            ),
            "student_seconds": float(sum(record["student_epoch_seconds"])),
            "fine_tune_seconds": float(sum(head_seconds)),
        }
    )
    record["train_seconds"] = (
        record["student_seconds"] + record["fine_tune_seconds"]
    )
    return record


def baseline_model(cfg):
    """Baselines (b) and (c)'s classifier (`cifar10_fast_baseline`)."""
    return architectures.cifar10_fast_baseline(
        filters=tuple(cfg["baseline_filters"])
    )


def train_baseline(cfg, kind, seed, teacher, views, data, stage_dir, budget):
    """(b) `distill`: soft targets = the views' cached teacher logits
    (KL at temperature 1); (c) `scratch`: the views' labels. Resumable."""
    x, y, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = baseline_model(cfg)
    if kind == "distill":
        loss = keras.losses.KLDivergence()
        labels = "logits"
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        labels = y.astype("int32")
    model.compile(optimizer=adam(cfg, len(x)), loss=loss)
    built_optimizer(model)

    def batches(epoch):
        ds = views.dataset(x, epoch, cfg["batch_size"], seed, labels=labels)
        if kind == "distill":
            ds = ds.map(lambda a, z: (a, tf.nn.softmax(z)))
        return ds

    stage = Stage(
        stage_dir,
        f"baseline {kind} seed {seed}",
        cfg["epochs"],
        lambda: model.weights + model.optimizer.variables,
    )
    stage.run(lambda e: one_epoch(model, batches(e), e), budget, log)
    params = int(model.count_params())
    return {
        "params": params,
        "macs": count_flops(model) // 2,
        "compression_ratio": teacher.count_params() / params,
        "test_accuracy": report_lib.accuracy(
            model.predict(x_test, batch_size=512, verbose=0), y_test
        ),
        "train_seconds": float(sum(stage.progress["epoch_seconds"])),
        "epoch_seconds": stage.progress["epoch_seconds"],
        "history": stage.progress["logs"],
    }


# ----------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------


def run(args, state, cfg, teacher_id, settings_id, data, cache, runs):
    """Runs every stage not yet done, within `args.budget_minutes`.

    Returns:
        True when everything asked for is done, False when the budget
        stopped it (a line says what is left).
    """
    budget = Budget(args.budget_minutes)
    stages = STAGES[: STAGES.index(args.stages) + 1]
    units = []
    for seed in range(args.seeds):
        units.append(("teacher", seed, None))
        if "views" in stages:
            units.append(("views", seed, None))
        if "classes" in stages:
            units += [("class", seed, n) for n in args.students]
        if "baselines" in stages:
            units += [("baseline", seed, k) for k in args.baselines]
    index = 0
    try:
        for index, (kind, seed, what) in enumerate(units):  # noqa: B007
            _run_unit(
                kind,
                seed,
                what,
                args,
                state,
                cfg,
                teacher_id,
                settings_id,
                data,
                cache,
                runs,
                budget,
            )
    except BudgetExhausted as e:
        left = [
            f"{k} seed {s}" + (f" {w}" if w is not None else "")
            for k, s, w in units[index:]
        ]
        log(
            f"stopped: {e}. Left: {', '.join(left)}. Rerun the same "
            f"command to continue (checkpoints in {runs})."
        )
        return False
    return True


_TEACHERS = {}


def _teacher(seed, teacher_id, cfg, data, cache, runs, state, budget):
    key = f"{teacher_id}-seed{seed}"
    path = cache / f"teacher-{key}.keras"
    if key in _TEACHERS:
        return _TEACHERS[key]
    if path.exists() and key in state.data["teachers"]:
        teacher = keras.saving.load_model(path)
    else:
        log(f"[teacher seed {seed}] training ({cfg['teacher_epochs']} epochs)")
        teacher, progress = train_teacher(
            cfg, seed, data, runs / f"teacher-{key}", budget
        )
        tmp = path.with_name(path.stem + ".partial.keras")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        teacher.save(tmp)
        os.replace(tmp, path)
        record = teacher_record(teacher, progress, data, path)
        record.update({"seed": seed, "teacher_id": teacher_id})
        atomic_write(path.with_suffix(".json"), json.dumps(record, indent=1))
        state.data["teachers"][key] = record
        state.save()
        log(
            f"[teacher seed {seed}] test accuracy "
            f"{record['test_accuracy']:.4f}, {record['params']:,} params, "
            f"{record['macs'] / 1e6:.0f}M MACs, "
            f"{record['train_seconds'] / 60:.0f} min"
        )
    _TEACHERS[key] = teacher
    return teacher


def _views(seed, teacher_id, cfg, teacher, data, runs, budget):
    directory = runs / f"views-{teacher_id}-seed{seed}-k{cfg['views']}"
    try:
        cache = views_lib.ViewCache(directory)
        if cache.complete:
            return cache
    except ValueError:
        pass
    budget.check(f"views seed {seed}: before building")
    log(f"[views seed {seed}] caching the teacher on {cfg['views']} views")

    def after(view):
        budget.worked()
        log(f"[views seed {seed}] view {view}/{cfg['views']} cached")
        if view < cfg["views"]:
            budget.check(f"views seed {seed} view {view}")

    return views_lib.ViewCache.build(
        directory, teacher, data[0], cfg["views"], seed=seed, after_view=after
    )


def _run_unit(
    kind,
    seed,
    what,
    args,
    state,
    cfg,
    teacher_id,
    settings_id,
    data,
    cache,
    runs,
    budget,
):
    teacher = _teacher(seed, teacher_id, cfg, data, cache, runs, state, budget)
    if kind == "teacher":
        return
    views = _views(seed, teacher_id, cfg, teacher, data, runs, budget)
    if kind == "views":
        return
    n = what if kind == "class" else 0
    name = "class" if kind == "class" else what
    key = f"{settings_id}|{name}|n={n}|{'mse' if n else ''}|seed={seed}"
    if key in state.data["runs"]:
        log(f"[{key}] done, skipped")
        return
    stage_dir = runs / settings_id / f"{name}-n{n}-seed{seed}"
    start = time.perf_counter()
    if kind == "class":
        record = train_class(
            cfg, n, seed, teacher, views, data, stage_dir, budget
        )
    else:
        record = train_baseline(
            cfg, what, seed, teacher, views, data, stage_dir, budget
        )
    record.update(
        {
            "settings_id": settings_id,
            "teacher_id": teacher_id,
            "kind": name,
            "n": n,
            "objective": "mse" if n else "",
            "seed": seed,
            "wall_seconds_this_sitting": time.perf_counter() - start,
            **unit_info(),
        }
    )
    state.data["runs"][key] = record
    state.save()
    log(
        f"[{key}] test accuracy {record['test_accuracy']:.4f}, "
        f"{record['params']:,} params, {record['macs'] / 1e6:.1f}M MACs"
    )
