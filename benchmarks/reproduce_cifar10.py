"""benchmarks/reproduce.py on CIFAR-10: resumable stages within a budget.

`reproduce.py --dataset cifar10` (without `--paper`) runs here. Every
stage saves its state after each epoch (`reproduce_state.Stage`) under
`<runs-dir>/cifar10/<id>/` (`--runs-dir`, else `$TEACHERCLASS_RUNS`,
else `~/.cache/teacherclass/reproduce`), so a rerun with the same flags
continues where the last one stopped. `--budget-minutes M` stops cleanly
after the epoch that crosses M minutes and prints what is left.

Per seed, in order (`--stages` picks a prefix of them):

1. teacher: `architectures.cifar10_fast_teacher` (airbench94's network,
   its stem whitened on 5,000 training images) trained with
   `cifar10_fast_recipe` (airbench94's: SGD Nesterov, warmup + decay,
   label smoothing, 2-pixel shifts and flips), one epoch per checkpoint;
2. views: the teacher's representation and logits of the clean images
   and of `--views` augmented views, cached once (`teacherclass.views`);
3. classes: for each n and `--variant` (plain, best), the students
   trained on the cached views (epoch e reads view e mod (views + 1)),
   then the head fine-tuned on labels; the best class (`BEST`) has
   head-aware students on conditioned targets and then refines the
   composed model for `--refine-epochs` on the views' labels and cached
   teacher logits (no teacher run);
4. baselines: (b) a single student classifier matched in parameters and
   multiply-adds to the n = 4 class, trained on the views' logits (soft
   targets), and (c) the same classifier on the labels, on the same
   views, for the students' epochs plus `--refine-epochs`.

Each epoch's data comes from seeds of (seed, epoch): a resumed stage sees
the batches an uninterrupted one would, and ends on the same weights.
"""

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import keras
import tensorflow as tf
from _common import cosine_adam
from reproduce_runs import relabel
from reproduce_runs import timed_beside_teacher
from reproduce_settings import seeds
from reproduce_state import Budget
from reproduce_state import BudgetExhausted
from reproduce_state import Stage
from reproduce_state import atomic_write
from reproduce_state import unit_info

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass import conditioning
from teacherclass import refinement
from teacherclass import report as report_lib
from teacherclass import teacher as teacher_lib
from teacherclass import training
from teacherclass import views as views_lib
from teacherclass.flops import count_flops
from teacherclass.latency import model_latency
from teacherclass.lookahead import Lookahead

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
    augment = architectures.cifar10_augmentation(
        seed=s, pixels=architectures.FAST_RECIPE["translate"]
    )

    def run(images, labels):
        return tf.cast(augment(images, training=True), images.dtype), labels

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=s, reshuffle_each_iteration=False)
    return ds.batch(batch_size).map(run).prefetch(tf.data.AUTOTUNE)


def one_epoch(model, ds, epoch, callbacks=()):
    """Fits one epoch; returns its logs as floats."""
    h = model.fit(
        ds,
        epochs=epoch + 1,
        initial_epoch=epoch,
        verbose=0,
        shuffle=False,
        callbacks=list(callbacks),
    )
    return {k: float(v[-1]) for k, v in h.history.items()}


def built_optimizer(model):
    """Builds the compiled model's optimizer, so a checkpoint fits it."""
    model.optimizer.build(model.trainable_variables)
    return model


def teacher_recipe(cfg, n_train):
    steps = math.ceil(n_train / cfg["batch_size"])
    options = architectures.TEACHER_RECIPES[
        cfg.get("teacher_recipe", "default")
    ]
    return architectures.cifar10_fast_recipe(
        cfg["teacher_epochs"], steps, cfg["batch_size"], **options
    )


def train_teacher(cfg, seed, data, stage_dir, budget):
    """The teacher stage: resumable; returns the trained teacher."""
    x, y = data[0], data[1]
    keras.utils.set_random_seed(seed)
    # The frozen stem whitens 2x2 patches of 5,000 training images.
    teacher = architectures.cifar10_fast_teacher(
        tuple(cfg["teacher_widths"]), whitening_images=x[:5000]
    )
    recipe = teacher_recipe(cfg, len(x))
    teacher.compile(
        optimizer=recipe.optimizer, loss=recipe.loss, metrics=recipe.metrics
    )
    built_optimizer(teacher)
    # airbench's Lookahead, if the recipe has it: its slow copy is saved
    # with the weights, so a resumed teacher ends on the same weights.
    callbacks = []
    if recipe.lookahead:
        steps = math.ceil(len(x) / cfg["batch_size"]) * cfg["teacher_epochs"]
        # airbench's every=5, at most the steps a tiny run has.
        callbacks.append(
            Lookahead(teacher, total_steps=steps, every=min(5, steps))
        )
    y1 = keras.utils.to_categorical(y, 10).astype("float32")
    stage = Stage(
        stage_dir,
        f"teacher seed {seed}",
        cfg["teacher_epochs"],
        lambda: (
            teacher.weights
            + teacher.optimizer.variables
            + [v for c in callbacks for v in c.variables]
        ),
    )
    stage.run(
        lambda e: one_epoch(
            teacher,
            labelled_batches(x, y1, cfg["batch_size"], seed, e),
            e,
            callbacks,
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


def adam(cfg, n_train, epochs=None):
    """Adam at 1e-3 with cosine decay to 0 over `epochs` (default the
    configuration's student epochs)."""
    epochs = cfg["epochs"] if epochs is None else epochs
    return cosine_adam(epochs, n_train, cfg["batch_size"])


# CIFAR-10's "best" class: the ingredients every validation ablation of
# the other datasets chose (reproduce_variants.choose_best on MNIST
# beb6d4f25f, Fashion-MNIST 889eeeb1fc and e6d3f31f10, IMDB ff0413136e).
# CIFAR-10 is not probed (a probe is a class run, ~45 min here); its
# students always see augmented views, so "augment_students" is moot.
BEST = ("head_aware", "conditioning", "refine")
BEST_RULE = (
    "carried over, not probed on CIFAR-10: head-aware students, "
    "standardized and variance-balanced targets, and --refine-epochs of "
    "end-to-end refinement (on the views' cached teacher logits), the "
    "ingredients the validation ablations of MNIST (beb6d4f25f), "
    "Fashion-MNIST (889eeeb1fc, e6d3f31f10) and IMDB (ff0413136e) all "
    "chose; the students train on augmented views in every CIFAR-10 class"
)


def shared_input(teacher, cfg):
    """Freezes the teacher up to `cfg["student_input"]`, if any.

    The students (and baselines) take that layer's output; the layers
    before it must not train with them. A no-op for the stem (frozen
    already); for a trained block, call it after the teacher's stage.
    """
    if cfg.get("student_input"):
        teacher_lib.freeze_through(teacher, cfg["student_input"])


def make_class(teacher, n, cfg, conditioned=False):
    shared_input(teacher, cfg)
    extra = {}
    if conditioned:
        extra = {
            "conditioning": "standardize",
            "chunk_order": cfg.get("chunk_order", "variance"),
        }
    return TeacherClass(
        teacher,
        num_students=n,
        student=architectures.cifar10_fast_student(
            n,
            filters=tuple(cfg["student_filters"][str(n)]),
            batch_norm=cfg.get("student_batch_norm", False),
        ),
        student_input=cfg.get("student_input"),
        **extra,
    )


def view_conditioning(views, chunks, order="variance"):
    """Standardizing statistics of the representation over every view,
    the coordinates dealt to `chunks` by `order`."""
    return conditioning.Conditioning.fit(
        (views.targets(v) for v in range(views.num_views + 1)),
        "standardize",
        chunks=chunks,
        order=order,
    )


def train_class(
    cfg,
    n,
    seed,
    teacher,
    views,
    data,
    stage_dir,
    budget,
    variant="plain",
    measure_compute=False,
):
    """Students on the cached views, then head fine-tuning: resumable.

    `variant="best"` (`BEST`): head-aware students on conditioned targets,
    the head fine-tuned, then `cfg["refine_epochs"]` epochs of refinement
    on the views' labels and cached teacher logits. `measure_compute`:
    the composed model is timed beside the teacher (`latency_ms`,
    `litert_bytes`, `teacher_compute`), as `reproduce.py` times the
    other datasets' classes.
    """
    x, y, x_test, y_test = data
    best = variant == "best"
    keras.utils.set_random_seed(seed)
    tc = make_class(teacher, n, cfg, conditioned=best)
    if best:
        tc.set_target_conditioning(
            view_conditioning(views, tc.chunks, tc.chunk_order)
        )
    trainer = training.for_class(tc, loss="head_aware" if best else "mse")
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
            trainer,
            views.dataset(
                x,
                e,
                cfg["batch_size"],
                seed,
                with_logits=best,
                # The students' input: the teacher's stem under
                # `student_input`, else the images (None).
                preprocessor=tc.cut.preprocessor(),
            ),
            e,
        ),
        budget,
        log,
    )
    tc._mark_trained(range(n))
    # One composed model (and, under conditioning, one folded head) for
    # the head's tuning and the refinement.
    refined = refinement.Refinement(tc)
    composed = refined.composed
    ingredients = []
    if best:
        ingredients = [i for i in BEST if i != "refine"]
        ingredients += ["refine"] if cfg.get("refine_epochs") else []
    record = {
        "ingredients": ingredients,
        "students_before_fine_tune_test_accuracy": _accuracy(
            composed, x_test, y_test
        ),
        "student_epoch_seconds": students.progress["epoch_seconds"],
        "students_history": students.progress["logs"],
    }
    if best:
        record["best_choice"] = {"rule": BEST_RULE, "ingredients": ingredients}
        record["conditioning"] = {
            "conditioning": "standardize",
            "balance_chunks": tc.balance_chunks,
            "chunk_order": tc.chunk_order,
            "statistics": f"the clean and {views.num_views} augmented views",
        }
    head_seconds = []
    if cfg["fine_tune_epochs"]:
        # The students are frozen; only the head learns, on the labels of
        # the same views.
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
    refine_seconds = []
    if best and cfg.get("refine_epochs"):
        record["before_refine_test_accuracy"] = _accuracy(
            composed, x_test, y_test
        )
        refine_seconds = _refine(
            cfg, n, seed, refined, views, data, stage_dir, budget, record
        )
    composed = refined.finish()
    params = int(composed.count_params())
    record.update(
        {
            "params": params,
            "macs": count_flops(composed) // 2,
            "compression_ratio": teacher.count_params() / params,
            "test_accuracy": _accuracy(composed, x_test, y_test),
            "student_seconds": float(sum(record["student_epoch_seconds"])),
            "fine_tune_seconds": float(sum(head_seconds)),
            "refine_seconds": float(sum(refine_seconds)),
        }
    )
    record["train_seconds"] = (
        record["student_seconds"]
        + record["fine_tune_seconds"]
        + record["refine_seconds"]
    )
    if measure_compute:
        record.update(timed_beside_teacher(tc, composed))
    return record


def _refine(cfg, n, seed, refined, views, data, stage_dir, budget, record):
    """The best class's refinement stage; returns its epoch seconds.

    The composed model, students unfrozen, on each view's labels plus
    distillation from the view's cached teacher logits
    (`refinement.CachedLogitsTrainer`, `TeacherClass.refine`'s loss at its
    defaults), Adam from 1e-3 with cosine decay over the stage.
    """
    x, y = data[0], data[1]
    epochs = cfg["refine_epochs"]
    with training.trainable(refined.parts, True):
        trainer = refined.trainer()
        trainer.compile(
            optimizer=adam(cfg, len(x), epochs),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        built_optimizer(trainer)
        stage = Stage(
            Path(stage_dir) / "refine",
            f"class n={n} seed {seed} refine",
            epochs,
            lambda: trainer.weights + trainer.optimizer.variables,
        )
        stage.run(
            lambda e: one_epoch(
                trainer,
                views.dataset(
                    x,
                    e,
                    cfg["batch_size"],
                    seed,
                    labels=y.astype("int32"),
                    with_logits=True,
                ),
                e,
            ),
            budget,
            log,
        )
    record["refine"] = {
        "epochs": epochs,
        "data": "views (epoch e reads view e mod (views + 1))",
        "history": stage.progress["logs"],
    }
    return stage.progress["epoch_seconds"]


def _accuracy(model, x, y):
    return report_lib.accuracy(model.predict(x, batch_size=512, verbose=0), y)


def baseline_epochs(cfg):
    """Equal budgets: the students' epochs, plus the best class's
    refinement epochs."""
    return cfg["epochs"] + cfg.get("refine_epochs", 0)


def baseline_model(cfg, teacher=None):
    """Baselines (b) and (c)'s classifier (`cifar10_fast_baseline`).

    With `cfg["student_input"]`, it takes the image through the same
    frozen teacher stem as the students (the teacher's own layers, not
    trained here), as the class's composed model does.
    """
    stem = None
    if cfg.get("student_input"):
        shared_input(teacher, cfg)
        stem = teacher_lib.cut(
            teacher, student_input=cfg["student_input"]
        ).preprocessor()
    return architectures.cifar10_fast_baseline(
        filters=tuple(cfg["baseline_filters"]),
        batch_norm=cfg.get("student_batch_norm", False),
        stem=stem,
    )


def train_baseline(
    cfg,
    kind,
    seed,
    teacher,
    views,
    data,
    stage_dir,
    budget,
    measure_compute=False,
):
    """(b) `distill`: soft targets = the views' cached teacher logits
    (KL at temperature 1); (c) `scratch`: the views' labels. Resumable."""
    x, y, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = baseline_model(cfg, teacher)
    if kind == "distill":
        loss = keras.losses.KLDivergence()
        labels = "logits"
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        labels = y.astype("int32")
    epochs = baseline_epochs(cfg)
    model.compile(optimizer=adam(cfg, len(x), epochs), loss=loss)
    built_optimizer(model)

    def batches(epoch):
        ds = views.dataset(x, epoch, cfg["batch_size"], seed, labels=labels)
        if kind == "distill":
            ds = ds.map(lambda a, z: (a, tf.nn.softmax(z)))
        return ds

    stage = Stage(
        stage_dir,
        f"baseline {kind} seed {seed}",
        epochs,
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
        **(
            {"latency_ms": model_latency(model, (1, 64))}
            if measure_compute
            else {}
        ),
    }


# ----------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------


@dataclasses.dataclass
class Sitting:
    """What every unit of one `run` call shares: the flags, the state
    file, the configuration (digest `settings_id`), the teacher's
    configuration (digest `teacher_id`, recorded with the trained
    teacher when given), the data, the teacher cache (`cache`), the
    checkpoints (`runs`), the budget and the teachers loaded so far."""

    args: object
    state: object
    cfg: dict
    teacher_id: str
    settings_id: str
    data: tuple
    cache: Path
    runs: Path
    budget: Budget
    teacher_cfg: dict | None = None
    teachers: dict = dataclasses.field(default_factory=dict)

    @property
    def split(self):
        """What the runs score on: "validation" (the held-out end of the
        training data) under `--split validation`, else "test"."""
        return self.cfg.get("split", "test")

    @property
    def metric(self):
        """The accuracy's key in the records of this split."""
        return "val_accuracy" if self.split == "validation" else "test_accuracy"


def run(
    args,
    state,
    cfg,
    teacher_id,
    settings_id,
    data,
    cache,
    runs,
    teacher_cfg=None,
):
    """Runs every stage not yet done, within `args.budget_minutes`.

    `teacher_cfg` (the teacher's configuration, whose digest is
    `teacher_id`) is recorded with the trained teacher.

    Returns:
        True when everything asked for is done, False when the budget
        stopped it (a line says what is left).
    """
    sitting = Sitting(
        args=args,
        state=state,
        cfg=cfg,
        teacher_id=teacher_id,
        settings_id=settings_id,
        data=data,
        cache=Path(cache),
        runs=Path(runs),
        budget=Budget(args.budget_minutes),
        teacher_cfg=teacher_cfg,
    )
    stages = STAGES[: STAGES.index(args.stages) + 1]
    units = []
    for seed in seeds(args):
        runs_of_seed = []
        if "classes" in stages:
            runs_of_seed += [
                ("class", seed, (n, variant))
                for n in args.students
                for variant in args.variant
            ]
        if "baselines" in stages:
            runs_of_seed += [("baseline", seed, k) for k in args.baselines]
        if runs_of_seed and all(
            _run_key(sitting, *unit) in state.data["runs"]
            for unit in runs_of_seed
        ):
            # Neither its teacher nor its views are needed (their files
            # may be gone: another machine).
            log(f"[seed {seed}] every run recorded, skipped")
            continue
        units.append(("teacher", seed, None))
        if "views" in stages:
            units.append(("views", seed, None))
        units += runs_of_seed
    index = 0
    try:
        for index, (kind, seed, what) in enumerate(units):  # noqa: B007
            _run_unit(sitting, kind, seed, what)
    except BudgetExhausted as e:
        left = [
            f"{k} seed {s}" + (f" {_what(w)}" if w is not None else "")
            for k, s, w in units[index:]
        ]
        log(
            f"stopped: {e}. Left: {', '.join(left)}. Rerun the same "
            f"command to continue (checkpoints in {runs})."
        )
        return False
    return True


def _what(what):
    """A unit's class (n, variant) or baseline kind, as progress shows it."""
    if isinstance(what, tuple):
        n, variant = what
        return str(n) if variant == "plain" else f"{n} {variant}"
    return what


def _run_key(sitting, kind, seed, what):
    """The state key of a class or baseline unit."""
    if kind == "class":
        n, variant = what
        return unit_key(sitting.settings_id, "class", n, variant, seed)
    return unit_key(sitting.settings_id, what, 0, "", seed)


def unit_key(settings_id, kind, n, variant, seed):
    """A run's key: `reproduce.unit_key`'s form (plain classes and
    baselines without a variant part)."""
    parts = [settings_id, kind, f"n={n}", "mse" if n else ""]
    if kind == "class" and variant != "plain":
        parts.append(variant)
    return "|".join(parts + [f"seed={seed}"])


def _teacher(sitting, seed):
    """The seed's teacher: loaded, or trained (and recorded) first."""
    cfg, state = sitting.cfg, sitting.state
    key = f"{sitting.teacher_id}-seed{seed}"
    path = sitting.cache / f"teacher-{key}.keras"
    if key in sitting.teachers:
        return sitting.teachers[key]
    recorded = state.data["teachers"].get(key)
    stage_dir = sitting.runs / f"teacher-{key}"
    if path.exists() and recorded is not None:
        teacher = keras.saving.load_model(path)
    else:
        retrained = recorded is not None and _retraining(
            sitting, key, recorded, path, stage_dir
        )
        log(f"[teacher seed {seed}] training ({cfg['teacher_epochs']} epochs)")
        teacher, progress = train_teacher(
            cfg, seed, sitting.data, stage_dir, sitting.budget
        )
        tmp = path.with_name(path.stem + ".partial.keras")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        teacher.save(tmp)
        os.replace(tmp, path)
        record = teacher_record(teacher, progress, sitting.data, path)
        record.update({"seed": seed, "teacher_id": sitting.teacher_id})
        if sitting.teacher_cfg is not None:
            record["config"] = sitting.teacher_cfg
        record = relabel(record, sitting.split)
        if retrained:
            # The runs recorded before were trained with the teacher this
            # record replaces.
            record["replaces"] = recorded
        atomic_write(path.with_suffix(".json"), json.dumps(record, indent=1))
        state.data["teachers"][key] = record
        state.save()
        log(
            f"[teacher seed {seed}] {sitting.metric.replace('_', ' ')} "
            f"{record[sitting.metric]:.4f}, {record['params']:,} params, "
            f"{record['macs'] / 1e6:.0f}M MACs, "
            f"{record['train_seconds'] / 60:.0f} min"
        )
    sitting.teachers[key] = teacher
    return teacher


def _retraining(sitting, key, recorded, path, stage_dir):
    """Whether a recorded teacher whose file is gone is trained again:
    False when its finished checkpoints restore it; True with
    `--retrain-teacher`; otherwise the run stops and says why.

    Its file is gone (a new machine, a cleared cache) and its checkpoints
    do not hold the finished teacher: training it again gives another
    teacher (the same configuration and seed, not the same weights on
    every machine), while the runs recorded with the first one stay
    recorded and are skipped.
    """
    # The stage's own reading of its checkpoint (its progress inside).
    stage = Stage(stage_dir, key, sitting.cfg["teacher_epochs"], list)
    if stage.state_path.exists() and stage.done:
        return False  # the checkpoint restores the recorded teacher
    if not sitting.args.retrain_teacher:
        raise SystemExit(
            f"The teacher {key} is recorded in {sitting.state.path} "
            f"({sitting.metric.replace('_', ' ')} "
            f"{recorded[sitting.metric]:.4f}) but its file {path} "
            f"is missing, and so are its finished checkpoints in "
            f"{stage_dir}. The runs recorded with it were trained with that "
            "teacher. Put the file back, or pass --retrain-teacher to train "
            "it again (its new record keeps the old one under 'replaces')."
        )
    log(
        f"[teacher {key}] recorded, but its file is missing: training it "
        "again (--retrain-teacher); the runs recorded before keep theirs"
    )
    return True


def _views(sitting, seed, teacher):
    """The seed's cached views: loaded, or built (resumably) first."""
    cfg, budget = sitting.cfg, sitting.budget
    directory = (
        sitting.runs / f"views-{sitting.teacher_id}-seed{seed}-k{cfg['views']}"
    )
    try:
        cache = views_lib.ViewCache(directory)
    except ValueError:
        cache = None
    if cache is not None and cache.complete:
        # Another teacher's views (a teacher trained again) are refused,
        # not read: the run stops and names the directory.
        cache.check_teacher(teacher)
        return cache
    budget.check(f"views seed {seed}: before building")
    log(f"[views seed {seed}] caching the teacher on {cfg['views']} views")

    def after(view):
        budget.worked()
        log(f"[views seed {seed}] view {view}/{cfg['views']} cached")
        if view < cfg["views"]:
            budget.check(f"views seed {seed} view {view}")

    return views_lib.ViewCache.build(
        directory,
        teacher,
        sitting.data[0],
        cfg["views"],
        seed=seed,
        after_view=after,
        verbose=0,  # `after` logs each view
    )


def _run_unit(sitting, kind, seed, what):
    """Runs one unit (teacher, views, a class or a baseline) unless its
    record is in the state file, and records it."""
    teacher = _teacher(sitting, seed)
    if kind == "teacher":
        return
    views = _views(sitting, seed, teacher)
    if kind == "views":
        return
    cfg, state, data, budget = (
        sitting.cfg,
        sitting.state,
        sitting.data,
        sitting.budget,
    )
    settings_id = sitting.settings_id
    n, variant = what if kind == "class" else (0, "")
    name = "class" if kind == "class" else what
    key = _run_key(sitting, kind, seed, what)
    if key in state.data["runs"]:
        log(f"[{key}] done, skipped")
        return
    folder = f"{name}-n{n}" + (
        f"-{variant}" if variant not in ("plain", "") else ""
    )
    stage_dir = sitting.runs / settings_id / f"{folder}-seed{seed}"
    start = time.perf_counter()
    measure = sitting.args.measure_compute
    if kind == "class":
        record = train_class(
            cfg, n, seed, teacher, views, data, stage_dir, budget, variant,
            measure,
        )  # fmt: skip
    else:
        record = train_baseline(
            cfg, what, seed, teacher, views, data, stage_dir, budget, measure
        )
    record.update(
        {
            "settings_id": settings_id,
            "teacher_id": sitting.teacher_id,
            "kind": name,
            "n": n,
            # "best" is keyed by the objective asked for (mse), as
            # reproduce.py keys it, and records the one it trains with.
            "objective": ("head_aware" if variant == "best" else "mse")
            if n
            else "",
            "variant": variant if n else "",
            "split": sitting.split,
            "seed": seed,
            "wall_seconds_this_sitting": time.perf_counter() - start,
            **unit_info(),
        }
    )
    record = relabel(record, sitting.split)
    state.data["runs"][key] = record
    state.save()
    log(
        f"[{key}] {sitting.metric.replace('_', ' ')} "
        f"{record[sitting.metric]:.4f}, "
        f"{record['params']:,} params, {record['macs'] / 1e6:.1f}M MACs"
    )
