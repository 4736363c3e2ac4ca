"""benchmarks/reproduce.py's units of work: teacher, class, baselines.

Each function trains one unit under a configuration (see
`reproduce_settings.configuration`) and returns its record for the
results JSON. The architectures, input preprocessing and the parameter
budget search come from the library (`architectures.for_dataset`,
`architectures.size_to_budget`); accuracy is `report.accuracy`.
"""

import inspect
import json
import math
import os
import time

import keras
import tensorflow as tf
from _common import EpochTimer
from reproduce_state import atomic_write
from reproduce_state import unit_info

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass import baselines
from teacherclass import datasets
from teacherclass import flops as flops_lib
from teacherclass import latency as latency_lib
from teacherclass import report as report_lib
from teacherclass import teacher as teacher_lib

# ----------------------------------------------------------------------
# Data, teachers and students
# ----------------------------------------------------------------------


def student(cfg, n, bottleneck=None):
    """The student template for a class of `n` in a configuration.

    The paper's, with its dense bottleneck widened to at least
    `cfg["min_student_bottleneck"]` where that is set (MNIST and
    Fashion-MNIST), or to exactly `bottleneck` when given; the compact
    students (`mnist_student(n, compact=True)`) with `compact_students`.
    """
    if cfg.get("compact_students"):
        return architectures.mnist_student(
            n, bottleneck=bottleneck, compact=True
        )
    setup = architectures.for_dataset(cfg["dataset"])
    return setup.student(
        n,
        bottleneck=bottleneck,
        min_bottleneck=cfg.get("min_student_bottleneck", 0),
    )


def load_data(dataset, data_dir, samples, cache, test=True):
    """Train and test arrays ready for the teacher, and a source note.

    Args:
        dataset: a name from `reproduce_settings.DATASETS`.
        data_dir: folder for `datasets.load`, or None.
        samples: int or None, keep the first `samples` training samples.
        cache: `Path`, the dataset's cache folder (IMDB vocabulary).
        test: bool, read the test split; False (`--split validation`):
            `x_test` and `y_test` are empty slices of the training data.

    Returns:
        `(x, y, x_test, y_test, note)`: images float32 in [0, 1], IMDB
        int32 token ids, labels int (float32 for IMDB).
    """
    setup = architectures.for_dataset(dataset)
    x, y = datasets.load(dataset, "train", data_dir=data_dir)
    if test:
        x_test, y_test = datasets.load(dataset, "test", data_dir=data_dir)
    else:
        x_test, y_test = x[:0], y[:0]
    if samples:
        x, y = x[:samples], y[:samples]
    vectorizer = None
    if setup.vocab_size:
        # The vocabulary is adapted on the training texts once and kept,
        # so a cached teacher always meets the ids it was trained on.
        vocab_file = cache / "imdb_vocabulary.json"
        if vocab_file.exists():
            vocabulary = json.loads(vocab_file.read_text())
            vectorizer = setup.text_vectorizer(vocabulary=vocabulary)
        else:
            vectorizer = setup.text_vectorizer(texts=x)
            # The first two entries ("" and "[UNK]") are added back on load.
            vocabulary = vectorizer.get_vocabulary()[2:]
            atomic_write(vocab_file, json.dumps(vocabulary))
        y, y_test = y.astype("float32"), y_test.astype("float32")
    note = setup.preprocessing
    if not setup.vocab_size and x.dtype != "uint8":
        note = "as loaded (float32 in [0, 1])"
    x = setup.prepare(x, vectorizer)
    x_test = setup.prepare(x_test, vectorizer)
    return x, y, x_test, y_test, note


def carve_validation(x, y, share):
    """`(x, y, x_val, y_val)`: the last `share` of the samples held out.

    At least one sample is held out and one kept.
    """
    held = min(len(x) - 1, max(1, int(round(share * len(x)))))
    cut = len(x) - held
    return x[:cut], y[:cut], x[cut:], y[cut:]


def relabel(record, split):
    """A record's test-split keys renamed for the split it was scored on.

    Runs score on `data[2:]`, named test; under `--split validation` that
    is the validation split, so "test_accuracy" becomes "val_accuracy"
    (and "test_mse" "val_mse") at any depth.
    """
    if split == "test":
        return record
    if isinstance(record, dict):
        return {
            k.replace("test_", "val_"): relabel(v, split)
            for k, v in record.items()
        }
    return record


# ----------------------------------------------------------------------
# Compute: multiply-adds, latency and LiteRT sizes
# ----------------------------------------------------------------------


def macs(model):
    """Multiply-adds per sample of a model.

    `flops.count_macs` where the library has it; else `count_flops // 2`
    (a multiply-add counts 2 FLOPs; the bias additions, one FLOP per
    output, are then counted as half a multiply-add each).
    """
    count = getattr(flops_lib, "count_macs", None)
    if count is not None:
        return int(count(model))
    return int(flops_lib.count_flops(model) // 2)


def compute(model, measure_compute):
    """`{params, macs}` and, with `measure_compute`, `latency_ms`."""
    out = {"params": int(model.count_params()), "macs": macs(model)}
    if measure_compute:
        out["latency_ms"] = latency_lib.model_latency(model, (1, 64))
    return out


def timed_beside_teacher(tc, composed):
    """A class record's compute fields: the composed model's `latency_ms`
    and `litert_bytes`, and `teacher_compute` (`measure_side_by_side`)."""
    side = measure_side_by_side(tc, composed)
    return {
        "latency_ms": side["composed"]["latency_ms"],
        "litert_bytes": side["composed"]["litert_bytes"],
        "teacher_compute": side["teacher"],
    }


def measure_side_by_side(tc, composed):
    """Teacher and composed model measured in one `report.measure` call.

    Returns:
        `{"teacher": {...}, "composed": {...}}`, each with `params`,
        `macs`, `latency_ms` (`{"1": ms, "64": ms}`) and `litert_bytes`
        (`{"float": bytes, "int8": bytes}`) where the library's `measure`
        takes `litert=True`, else None.
    """
    kwargs = {"batch_sizes": (1, 64), "composed": composed}
    litert = "litert" in inspect.signature(report_lib.measure).parameters
    if litert:
        kwargs["litert"] = True
    report = report_lib.measure(tc, **kwargs)
    out = {}
    for name in ("teacher", "composed"):
        model = report["models"][name]
        out[name] = {
            "params": int(model["params"]),
            "macs": int(model.get("macs", model["flops"] // 2)),
            "latency_ms": dict(model["latency_ms"]),
            "litert_bytes": model.get("litert_bytes") if litert else None,
        }
    return out


# ----------------------------------------------------------------------
# Training helpers
# ----------------------------------------------------------------------


def history(h):
    """A History's per-epoch logs as plain floats."""
    if h is None:
        return {}
    return {k: [float(v) for v in vals] for k, vals in h.history.items()}


def accuracy(model, x, y):
    """Test accuracy of a classifier (`report.accuracy` of its outputs)."""
    return report_lib.accuracy(model.predict(x, batch_size=512, verbose=0), y)


def adam(schedule, epochs, n_train, batch_size):
    """Adam at 1e-3: constant, or with cosine decay to 0 over all steps."""
    if schedule == "constant":
        return keras.optimizers.Adam()
    steps = epochs * math.ceil(n_train / batch_size)
    return keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps)
    )


def optimizer(cfg, n_train):
    """Students' and baselines' Adam (cosine in the improved setup)."""
    return adam(cfg["lr_schedule"], cfg["epochs"], n_train, cfg["batch_size"])


def teacher_optimizer(cfg, n_train):
    """The teacher's Adam (constant unless `teacher_lr_schedule`)."""
    return adam(
        cfg.get("teacher_lr_schedule", "constant"),
        cfg["teacher_epochs"],
        n_train,
        cfg["batch_size"],
    )


def augmentation(cfg):
    """A fresh augmentation layer for the configuration, or None."""
    if cfg.get("augment", "none") == "none":
        return None
    # float32: the random transform's interpolation stays exact under a
    # mixed precision policy; the models cast their inputs themselves.
    return keras.layers.RandomTranslation(
        0.1, 0.1, fill_mode="constant", dtype="float32"
    )


# ======================================================================
# AUGMENTED TRAINING ON LABELS: the one input pipeline of the teacher and
# baselines (b), (c) under --augment. Library logic waiting for the
# library: `TeacherClass.fit_teacher` has no `augment=` yet (issue 12,
# item 5). Once it has, train_teacher should call
# `fit_teacher(x, y, augment=augmentation(cfg), ...)` and this function
# go. Keep its batching and shuffling as they are until then: the
# committed augmented results (MNIST configuration e8932e1beb) used it.
# ======================================================================
def labelled(cfg, x, y, seed):
    """`(x, y)` as fit takes them: arrays, or augmented batches.

    Returns:
        `(x, y, batch_size)`: with augmentation, a shuffled, augmented
        `tf.data.Dataset` of `(x, y)` batches, None and None (the dataset
        is batched); without, the arrays and the configured batch size.
    """
    augment = augmentation(cfg)
    if augment is None:
        return x, y, cfg["batch_size"]
    ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(cfg["batch_size"])
        .map(
            lambda a, b: (augment(a, training=True), b),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    return ds, None, None


def fresh_session(cfg):
    """A new Keras session under the configuration's precision."""
    # clear_session() also resets the dtype policy to float32.
    keras.backend.clear_session()
    keras.config.set_dtype_policy(cfg["precision"])


# ----------------------------------------------------------------------
# Units of work
# ----------------------------------------------------------------------


def train_teacher(cfg, seed, data, path, verbose):
    """Trains and saves one teacher; returns its record."""
    x, y, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    setup = architectures.for_dataset(
        cfg["dataset"], paper=cfg["paper_teacher"]
    )
    teacher = setup.teacher()
    teacher.compile(
        **{
            **teacher_lib.default_compile_args(teacher, y),
            "optimizer": teacher_optimizer(cfg, len(x)),
        }
    )
    timer = EpochTimer()
    train_x, train_y, batch_size = labelled(cfg, x, y, seed)
    start = time.perf_counter()
    h = teacher.fit(
        train_x,
        train_y,
        epochs=cfg["teacher_epochs"],
        batch_size=batch_size,
        verbose=verbose,
        callbacks=[timer],
        shuffle=batch_size is not None,  # an augmented dataset is shuffled
    )
    seconds = time.perf_counter() - start
    tmp = path.with_name(path.stem + ".partial.keras")
    teacher.save(tmp)
    os.replace(tmp, path)
    record = {
        "seed": seed,
        "file": str(path),
        "params": int(teacher.count_params()),
        "macs": macs(teacher),
        "test_accuracy": accuracy(teacher, x_test, y_test),
        "train_seconds": seconds,
        "epoch_seconds": timer.times,
        "history": history(h),
        **unit_info(),
    }
    atomic_write(path.with_suffix(".json"), json.dumps(record, indent=1))
    return record


def run_class(
    cfg,
    n,
    objective,
    seed,
    teacher,
    data,
    verbose,
    steps_per_execution=1,
    ingredients=None,
    measure_compute=False,
):
    """Trains one class of n students, composes it and measures it.

    `steps_per_execution` changes speed only (the same updates are made),
    so it is recorded but not part of the configuration.

    Args:
        ingredients: the variant's ingredients
            (`reproduce_variants.ingredients`); None: the plain class.
        measure_compute: time the teacher and the composed model side by
            side (`report.measure`) and record LiteRT sizes where the
            library measures them.
    """
    x, y, x_test, y_test = data
    ingredients = ingredients or {}
    keras.utils.set_random_seed(seed)
    extra = {}
    if ingredients.get("conditioning"):
        # Variance-balanced chunks unless the configuration says otherwise.
        extra = {
            "conditioning": "standardize",
            "chunk_order": cfg.get("chunk_order", "variance"),
        }
    tc = TeacherClass(teacher, num_students=n, student=student(cfg, n), **extra)
    augment_students = cfg.get("augment_students") or ingredients.get(
        "augment_students"
    )
    fit = {}
    if ingredients.get("head_aware"):
        # Labels reach the head-aware objective where it weighs them.
        fit["y"] = y
    timer = EpochTimer()
    start = time.perf_counter()
    h = tc.fit_students(
        x,
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        verbose=verbose,
        callbacks=[timer],
        loss=objective,
        optimizer=optimizer(cfg, len(x)),
        steps_per_execution=steps_per_execution,
        augment=augmentation(cfg) if augment_students else None,
        **fit,
    )
    student_seconds = time.perf_counter() - start
    record = {
        "steps_per_execution": steps_per_execution,
        "ingredients": sorted(k for k, v in ingredients.items() if v),
        "students_before_fine_tune_test_accuracy": None,
        "student_epoch_seconds": timer.times,
        "students_history": history(h),
    }
    if extra:
        record["conditioning"] = extra
    start = time.perf_counter()
    if cfg["fine_tune_epochs"]:
        record["students_before_fine_tune_test_accuracy"] = accuracy(
            tc.compose(), x_test, y_test
        )
        start = time.perf_counter()
        composed = tc.compose(
            fine_tune=True,
            x=x,
            y=y,
            epochs=cfg["fine_tune_epochs"],
            batch_size=cfg["batch_size"],
            verbose=verbose,
        )
        record["fine_tune_history"] = history(tc.history)
    else:
        composed = tc.compose()
    fine_tune_seconds = time.perf_counter() - start
    refine_seconds = 0.0
    if ingredients.get("refine"):
        epochs = cfg["refine_epochs"]
        record["before_refine_test_accuracy"] = accuracy(
            composed, x_test, y_test
        )
        start = time.perf_counter()
        # Labels plus logit distillation from the teacher, every student
        # unfrozen; the same (unaugmented) samples as the head's tuning.
        composed = tc.refine(
            x,
            y,
            epochs=epochs,
            optimizer=adam(
                cfg["lr_schedule"], epochs, len(x), cfg["batch_size"]
            ),
            batch_size=cfg["batch_size"],
            verbose=verbose,
        )
        refine_seconds = time.perf_counter() - start
        record["refine"] = {"epochs": epochs, "data": "unaugmented"}
    report = tc.report()
    test_mse = tc.evaluate_students(x_test, batch_size=512)
    record.update(
        {
            **compute(composed, False),
            "student_params": report["student_params"],
            "head_params": report["head_params"],
            "compression_ratio": report["compression_ratio"],
            "test_accuracy": accuracy(composed, x_test, y_test),
            "students_test_mse": {k: float(v) for k, v in test_mse.items()},
            "student_seconds": student_seconds,
            "fine_tune_seconds": fine_tune_seconds,
            "refine_seconds": refine_seconds,
            "train_seconds": student_seconds
            + fine_tune_seconds
            + refine_seconds,
        }
    )
    record["teacher_macs"] = macs(teacher)
    if measure_compute:
        record.update(timed_beside_teacher(tc, composed))
    return record


def baseline_classifier(cfg, input_shape, bottleneck=None):
    """The single student classifier of baselines (b) and (c).

    The n = 1 student + Dense(classes), its bottleneck `bottleneck` (None:
    the n = 1 student's). With the paper's students its size is about the
    n = 4 class's (80,410 vs 79,146 on MNIST).
    """
    setup = architectures.for_dataset(cfg["dataset"])
    return baselines.single_student_classifier(
        student(cfg, 1, bottleneck),
        num_classes=setup.num_classes,
        input_shape=input_shape,
        activation=setup.activation,
        input_dtype=setup.input_dtype,
    )


def class_compute(cfg, teacher, n=4):
    """`{params, macs}` of the composed class of `n` in a configuration.

    Counted on the untrained class (students + the teacher's head): the
    sizes do not depend on training, and conditioning folds into the
    head without adding a layer.
    """
    tc = TeacherClass(teacher, num_students=n, student=student(cfg, n))
    return {
        "params": int(tc.report()["composed_params"]),
        "macs": macs(tc.representation()) + macs(tc.head),
    }


def match_record(model, target):
    """How a baseline's size compares to the class it is matched to."""
    size = compute(model, False)
    ratios = {k: size[k] / target[k] for k in ("params", "macs")}
    return {
        "class_n": 4,
        "class_params": target["params"],
        "class_macs": target["macs"],
        "params_ratio": ratios["params"],
        "macs_ratio": ratios["macs"],
        "within_5_percent": all(abs(r - 1) <= 0.05 for r in ratios.values()),
    }


def baseline_bottleneck(cfg, input_shape, teacher):
    """The baselines' bottleneck where `min_student_bottleneck` is set.

    The class's students are wider then, so the classifier's bottleneck is
    widened too, to the first width at which it has at least the n = 4
    class's parameters. None otherwise (the n = 1 student's own). With
    `baseline_match: params_macs` (`--match params_macs`), the width
    `baselines.matched_student` gives for the n = 4 class's parameters
    and multiply-adds within 5% instead.
    """
    if cfg.get("baseline_match") == "params_macs" or cfg.get(
        "compact_students"
    ):
        # The bottleneck moves the parameters and barely the multiply-adds
        # (the convolutions carry those): sized to the parameters from
        # width 1; `match_record` records how close both come.
        target = class_compute(cfg, teacher)
        return architectures.size_to_budget(
            lambda width: baseline_classifier(cfg, input_shape, width),
            target["params"],
        )
    if "min_student_bottleneck" not in cfg:
        return None
    tc = TeacherClass(teacher, num_students=4, student=student(cfg, 4))
    paper = architectures.for_dataset(cfg["dataset"]).student(
        1, min_bottleneck=0
    )
    return architectures.size_to_budget(
        lambda width: baseline_classifier(cfg, input_shape, width),
        tc.report()["composed_params"],
        start=paper.bottleneck,
    )


def run_baseline(
    cfg, kind, seed, teacher, data, verbose, measure_compute=False
):
    """Trains baseline (b) `distill` or (c) `scratch` and measures it.

    It trains `epochs + refine_epochs` epochs: the refined classes'
    budget (equal budgets).
    """
    x, y, x_test, y_test = data
    # Sized first: the models built to size it draw no weights of the run.
    bottleneck = baseline_bottleneck(cfg, x.shape[1:], teacher)
    keras.utils.set_random_seed(seed)
    model = baseline_classifier(cfg, x.shape[1:], bottleneck)
    epochs = cfg["epochs"] + cfg.get("refine_epochs", 0)
    h = keras.callbacks.History()
    timer = EpochTimer()
    train_x, train_y, batch_size = labelled(cfg, x, y, seed)
    fit = {
        "epochs": epochs,
        "batch_size": batch_size,
        "verbose": verbose,
        "callbacks": [h, timer],
        "shuffle": batch_size is not None,  # an augmented dataset is shuffled
    }
    opt = adam(cfg["lr_schedule"], epochs, len(x), cfg["batch_size"])
    start = time.perf_counter()
    if kind == "distill":
        baselines.distill_logits(
            teacher,
            model,
            train_x,
            train_y,
            optimizer=opt,
            **fit,
        )
    else:
        model.compile(
            **{
                **teacher_lib.default_compile_args(model, y),
                "optimizer": opt,
            }
        )
        baselines.train_from_scratch(model, train_x, train_y, **fit)
    seconds = time.perf_counter() - start
    teacher_params = teacher.count_params()
    return {
        **compute(model, measure_compute),
        "epochs_trained": epochs,
        "match": match_record(model, class_compute(cfg, teacher)),
        "compression_ratio": teacher_params / model.count_params(),
        "test_accuracy": accuracy(model, x_test, y_test),
        "train_seconds": seconds,
        "epoch_seconds": timer.times,
        "history": history(h),
    }


def backfill_compute(state):
    """Adds `macs` to recorded runs and teachers that lack them.

    Multiply-adds depend on the architecture only, so they are counted on
    freshly built models of each recorded configuration (nothing is
    trained); a run is filled only where the rebuilt model has the
    recorded parameter count, and marked `macs_backfilled`.

    Returns:
        The number of records filled.
    """
    filled = 0
    teachers = {}
    for settings_id, cfg in state.get("settings", {}).items():
        setup = architectures.for_dataset(
            cfg["dataset"], paper=cfg.get("paper_teacher", False)
        )
        teacher = teachers.setdefault(cfg["teacher_id"], setup.teacher())
        shape = teacher.inputs[0].shape[1:]
        for run in state["runs"].values():
            if run["settings_id"] != settings_id or "macs" in run:
                continue
            if run["kind"] == "class":
                size = class_compute(cfg, teacher, run["n"])
            else:
                model = baseline_classifier(
                    cfg, shape, baseline_bottleneck(cfg, shape, teacher)
                )
                size = compute(model, False)
            if size["params"] == run["params"]:
                run["macs"] = size["macs"]
                run["macs_backfilled"] = True
                filled += 1
    for record in state.get("teachers", {}).values():
        teacher = teachers.get(record["teacher_id"])
        if "macs" in record or teacher is None:
            continue
        if teacher.count_params() == record["params"]:
            record["macs"] = macs(teacher)
            record["macs_backfilled"] = True
            filled += 1
    return filled
