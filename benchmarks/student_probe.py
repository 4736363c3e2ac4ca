"""Which student tower for the fast CIFAR-10 teacher: a validation probe.

Trains a class of n students (n = 4 unless `--students`; plain MSE
students, or head-aware ones with `--loss head_aware`; Adam 1e-3 with
cosine decay, batch 512) on cached augmented views
(`teacherclass.views`) of the first `--samples` CIFAR-10 training
images, and scores it on the last 5,000 training images (the students
never see them; the test split is not read; the teachers `reproduce.py`
trains did see them, and each run records it, `teacher_saw_validation`):
the composed model's accuracy through the teacher's head as is (no
fine-tuning) and the students' MSE to the teacher's representation of
the clean images; with `--refine-epochs R`, also the accuracy after R
epochs of end-to-end refinement of the composed model (students and
head; a frozen trunk stays frozen) on the views' labels and cached
teacher logits, as in `reproduce.py`'s CIFAR-10 `best` class. The
student is `architectures.cifar10_fast_student(n)` with `--batch-norm`
(auto: the library's default) and `--filters` as given, taking the image
or, with `--student-input`, the output of the teacher's frozen stem (or,
with `--freeze-through`, of layers of the teacher frozen for the probe);
its parameters and multiply-adds (the composed class,
`flops.count_flops` / 2) are recorded beside the scores. With
`--filters-by-rank` (and `--conditioning`), each student's filters
follow the effective rank of its chunk's features, at no more parameters
than equal filters. With `--baseline distill|scratch`, it trains no
class but `reproduce.py`'s baseline (b) or (c) (`cifar10_fast_baseline`
with `--filters`, through the same frozen `--student-input`) on the same
views for `--epochs` plus `--refine-epochs` (their equal budget there)
and scores it on the same held-out images (`val_accuracy`). The class's
own flags (`--loss`, `--conditioning`, `--students`, `--chunk-order`)
are refused with it.

Each run is appended to `benchmarks/results/student_probe.json`, with
the teacher file, flags and timings; the views are cached once in
`--cache-dir` and reused by later runs on the same teacher and images.

Run: python benchmarks/student_probe.py --teacher T.keras \
         --data-dir ../shared/data [--epochs 10] [--views 4] \
         [--batch-norm auto|on|off] [--loss mse|head_aware] \
         [--students 4] [--filters '[16, 16, 24, 24, 24, 24, 24, 24]'] \
         [--student-input whitening_gelu] [--freeze-through LAYER] \
         [--refine-epochs 2] [--conditioning standardize \
         --chunk-order correlation [--filters-by-rank]] \
         [--baseline distill|scratch]
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import CIFAR10_VALIDATION  # noqa: E402
from _common import EpochTimer  # noqa: E402
from _common import cifar10_probe_split  # noqa: E402
from _common import cosine_adam  # noqa: E402
from _common import environment  # noqa: E402
from _common import student_scores  # noqa: E402
from _common import teacher_training_samples  # noqa: E402
from _common import validation_in_teacher_training  # noqa: E402
from chunk_order_share import chunk_ranks  # noqa: E402
from reproduce_cifar10 import baseline_epochs  # noqa: E402
from reproduce_cifar10 import train_baseline  # noqa: E402
from reproduce_cifar10 import view_conditioning  # noqa: E402
from reproduce_state import Budget  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import conditioning as conditioning_lib  # noqa: E402
from teacherclass import flops  # noqa: E402
from teacherclass import precision  # noqa: E402
from teacherclass import refinement  # noqa: E402
from teacherclass import teacher as teacher_lib  # noqa: E402
from teacherclass import training  # noqa: E402
from teacherclass import views as views_lib  # noqa: E402

BATCH = 512
BATCH_NORM = {"auto": None, "on": True, "off": False}
OUT = HERE / "results" / "student_probe.json"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="a trained .keras file")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--samples", type=int, default=45000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--batch-norm", choices=("auto", "on", "off"), default="auto"
    )
    p.add_argument(
        "--loss",
        choices=("mse", "head_aware"),
        default="mse",
        help="the students' objective (`fit_students(loss=...)`); "
        "head_aware reads the views' cached teacher logits",
    )
    p.add_argument(
        "--students",
        type=int,
        default=4,
        help="the class size n (filters sized in "
        "architectures.FAST_STUDENT_FILTERS, or give --filters)",
    )
    p.add_argument(
        "--filters",
        default=None,
        help="JSON list: each student's filters (default "
        "architectures.FAST_STUDENT_FILTERS[n])",
    )
    p.add_argument(
        "--student-input",
        default=None,
        help="a teacher layer without trainable weights before it "
        "(`TeacherClass(student_input=...)`), e.g. whitening_gelu: the "
        "students take its output (the teacher's frozen, data-computed "
        "whitening stem, shared by the composed model) instead of the "
        "image",
    )
    p.add_argument(
        "--freeze-through",
        default=None,
        help="a teacher layer: it and every layer before it are frozen "
        "(trainable=False) before the class is built, so --student-input "
        "may name a layer after trained ones (e.g. block1_1_gelu: the "
        "teacher's first convolution block becomes the students' shared, "
        "frozen trunk, counted in the composed model)",
    )
    p.add_argument(
        "--refine-epochs",
        type=int,
        default=0,
        help="epochs of end-to-end refinement after the students "
        "(`refinement.Refinement`, labels plus the views' cached teacher "
        "logits, Adam 1e-3 with cosine decay): refined_val_accuracy",
    )
    p.add_argument(
        "--conditioning",
        choices=("none", "standardize"),
        default="none",
        help="the students' target coordinates (`TeacherClass("
        "conditioning=...)`), fitted on the clean and augmented views "
        "as in reproduce.py's best class",
    )
    p.add_argument(
        "--chunk-order",
        choices=("contiguous", *conditioning_lib.ORDERS),
        default="contiguous",
        help="with --conditioning: how the coordinates are dealt to the "
        "chunks (`TeacherClass(chunk_order=...)`): contiguous, variance "
        "(an equal share of the variance per chunk, reproduce.py's best "
        "class) or correlation (correlated features in one chunk)",
    )
    p.add_argument(
        "--filters-by-rank",
        action="store_true",
        help="with --conditioning: student i's filters scaled by "
        "sqrt(r_i / mean r), r_i the effective rank of its chunk's "
        "features (`chunk_order_share.chunk_ranks`), then all by one "
        "factor, the largest that keeps the class's students within the "
        "parameters of equal filters: a student's parameters grow about "
        "as its filters squared, so each gets them about in proportion "
        "to the independent directions it must produce",
    )
    p.add_argument(
        "--baseline",
        choices=("distill", "scratch"),
        default=None,
        help="train reproduce.py's baseline instead of a class: (b) "
        "distill (the views' cached teacher logits as soft targets) or "
        "(c) scratch (the labels), a single cifar10_fast_baseline with "
        "--filters (default FAST_STUDENT_FILTERS[1]) for --epochs plus "
        "--refine-epochs",
    )
    p.add_argument("--precision", default="auto")
    p.add_argument("--cache-dir", default=str(HERE / "cache" / "probe"))
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    if args.filters_by_rank and args.conditioning == "none":
        p.error(
            "--filters-by-rank sizes the students by their chunks' "
            "features, which --conditioning standardize deals: pass it. "
            "Received: --conditioning none"
        )
    if args.baseline:
        for flag, value, default in (
            ("--loss", args.loss, "mse"),
            ("--conditioning", args.conditioning, "none"),
            ("--students", args.students, 4),
            ("--chunk-order", args.chunk_order, "contiguous"),
        ):
            if value != default:
                p.error(
                    f"--baseline trains no students, so {flag} does not "
                    f"apply. Received: {flag} {value}"
                )
    return args


def train_on_views(trainer, epochs, batches, timer, label="epoch"):
    """`epochs` one-epoch fits of `trainer` on `batches(epoch)` (a view's
    dataset); prints and returns each epoch's seconds."""
    seconds = []
    for epoch in range(epochs):
        trainer.fit(
            batches(epoch),
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=0,
            callbacks=[timer],
        )
        seconds += timer.times
        print(f"{label} {epoch + 1}/{epochs}: {timer.times[-1]:.0f} s")
    return seconds


def refine(tc, cache, x, y, epochs, seed, timer):
    """The composed class refined end to end; returns it and epoch times.

    As `reproduce_cifar10`'s refinement stage: the students and the head
    (`Refinement.parts`) train on the labels and the cached teacher logits
    of view e in epoch e; layers frozen before (a shared trunk) stay so.
    """
    refined = refinement.Refinement(tc)
    with training.trainable(refined.parts, True):
        trainer = refined.trainer()
        trainer.compile(
            optimizer=cosine_adam(epochs, len(x), BATCH),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        seconds = train_on_views(
            trainer,
            epochs,
            lambda e: cache.dataset(
                x, e, BATCH, seed, labels=y.astype("int32"), with_logits=True
            ),
            timer,
            "refine epoch",
        )
    return refined.finish(), seconds


def fit_conditioning(cache, tc):
    """`tc`'s standardized targets fitted on every cached view as
    `reproduce.py`'s best class fits them, and a record of the share of
    the features' squared correlations that its chunks hold and of each
    chunk's effective rank."""
    fitted = view_conditioning(cache, tc.chunks, tc.chunk_order)
    _, covariance = conditioning_lib.mean_and_covariance(
        cache.targets(v) for v in range(cache.num_views + 1)
    )
    # Target j is feature `features[j]` ("standardize": a scaled
    # permutation).
    features = np.argmax(np.abs(fitted.matrix), axis=0)
    share = conditioning_lib.within_chunk_share
    return fitted, {
        "conditioning": tc.conditioning,
        "chunk_order": tc.chunk_order or "contiguous",
        "within_chunk_share": share(covariance, features, tc.chunks),
        "contiguous_within_chunk_share": share(
            covariance, np.arange(len(features)), tc.chunks
        ),
        "chunk_effective_ranks": chunk_ranks(covariance, features, tc.chunks),
    }


def rank_sized_filters(filters, ranks, parameters):
    """Per-student filters: `filters` scaled by `sqrt(r_i / mean r)` and
    one common factor, the largest (to 1e-3) for which
    `parameters(list_of_filters)` stays within that of equal filters."""
    scale = np.sqrt(np.asarray(ranks) / np.mean(ranks))

    def sized(factor):
        return [
            [max(1, int(round(f * factor * s))) for f in filters] for s in scale
        ]

    budget = parameters([list(filters)] * len(ranks))
    low, high = 0.25, 2.0
    while high - low > 1e-3:
        middle = (low + high) / 2
        if parameters(sized(middle)) <= budget:
            low = middle
        else:
            high = middle
    return sized(low)


def rank_sized_class(teacher, args, tc, ranks):
    """A class like `tc` whose students' filters follow their chunks'
    effective ranks (`rank_sized_filters`), at no more parameters."""
    template = tc.students[0]

    def students(filters):
        return [
            architectures.cifar10_fast_student(
                args.students, f, batch_norm=template.batch_norm
            )
            for f in filters
        ]

    def build(filters):
        return TeacherClass(
            teacher,
            num_students=args.students,
            student=students(filters),
            student_input=args.student_input,
            conditioning=args.conditioning,
            chunk_order=args.chunk_order,
        )

    def parameters(filters):
        return sum(s.count_params() for s in build(filters).students)

    filters = rank_sized_filters(template.filters, ranks, parameters)
    keras.utils.set_random_seed(args.seed)  # as the equal class was built
    return build(filters)


def _from_root(path):
    """`path` relative to the repository's root when inside it, else as
    given."""
    resolved = Path(path).resolve()
    if resolved.is_relative_to(HERE.parent):
        return str(resolved.relative_to(HERE.parent))
    return str(path)


def probe_class(args, teacher, cache, split, filters):
    """Trains and scores the class; returns its part of the record."""
    x, y, x_val, y_val, clean = split
    keras.utils.set_random_seed(args.seed)
    student = architectures.cifar10_fast_student(
        args.students,
        filters,
        batch_norm=BATCH_NORM[args.batch_norm],
    )
    conditioned = args.conditioning != "none"
    tc = TeacherClass(
        teacher,
        num_students=args.students,
        student=student,
        student_input=args.student_input,
        **(
            {"conditioning": args.conditioning, "chunk_order": args.chunk_order}
            if conditioned
            else {}
        ),
    )
    ordering = {}
    if conditioned:
        fitted, ordering = fit_conditioning(cache, tc)
        if args.filters_by_rank:
            tc = rank_sized_class(
                teacher, args, tc, ordering["chunk_effective_ranks"]
            )
        tc.set_target_conditioning(fitted)
    # The views hold images: under --student-input the students' input is
    # computed per batch (a 2x2 convolution, cheap beside the students).
    preprocessor = tc.cut.preprocessor()
    head_aware = args.loss == "head_aware"
    trainer = training.for_class(tc, loss=args.loss)
    trainer.compile(
        optimizer=cosine_adam(args.epochs, len(x), BATCH), loss="mse"
    )
    timer = EpochTimer()
    start = time.perf_counter()
    epoch_seconds = train_on_views(
        trainer,
        args.epochs,
        lambda e: cache.dataset(
            x,
            e,
            BATCH,
            args.seed,
            with_logits=head_aware,
            preprocessor=preprocessor,
        ),
        timer,
    )
    train_seconds = time.perf_counter() - start
    tc._mark_trained(range(tc.num_students))
    scores = student_scores(tc, x_val, y_val, clean, BATCH)
    composed = tc.compose()
    refined = {}
    if args.refine_epochs:
        model, seconds = refine(
            tc, cache, x, y, args.refine_epochs, args.seed, timer
        )
        predicted = model.predict(x_val, batch_size=BATCH, verbose=0)
        refined = {
            "refine_epochs": args.refine_epochs,
            "refined_val_accuracy": float(
                np.mean(predicted.argmax(-1) == y_val)
            ),
            "refine_epoch_seconds": seconds,
        }
    return {
        "batch_norm": tc.students[0].batch_norm,
        "loss": args.loss,
        "students": tc.num_students,
        "student_input": tc.student_input,
        "frozen_through": args.freeze_through,
        "filters": list(tc.students[0].filters),
        **(
            {"student_filters": [list(s.filters) for s in tc.students]}
            if args.filters_by_rank
            else {}
        ),
        "params": composed.count_params(),
        "macs": flops.count_flops(composed) // 2,
        **ordering,
        **scores,
        **refined,
        "target_variance": float(np.var(clean, axis=0).mean()),
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
    }


def probe_baseline(args, teacher, cache, split, filters):
    """Trains `reproduce.py`'s baseline `args.baseline` on the views and
    scores it on the held-out images; returns its part of the record."""
    x, y, x_val, y_val, _ = split
    cfg = {
        "student_input": args.student_input,
        "baseline_filters": filters or architectures.FAST_STUDENT_FILTERS[1],
        "student_batch_norm": BATCH_NORM[args.batch_norm],
        "epochs": args.epochs,
        "refine_epochs": args.refine_epochs,
        "batch_size": BATCH,
    }
    # The stage's per-epoch checkpoints: a probe does not resume.
    with tempfile.TemporaryDirectory() as stage_dir:
        result = train_baseline(
            cfg,
            args.baseline,
            args.seed,
            teacher,
            cache,
            (x, y, x_val, y_val),
            stage_dir,
            Budget(),
        )
    return {
        "baseline": args.baseline,
        "baseline_epochs": baseline_epochs(cfg),
        "batch_norm": (
            architectures.FAST_STUDENT_BATCH_NORM
            if cfg["student_batch_norm"] is None
            else cfg["student_batch_norm"]
        ),
        "student_input": args.student_input,
        "frozen_through": args.freeze_through,
        "filters": list(cfg["baseline_filters"]),
        "params": result["params"],
        "macs": result["macs"],
        "val_accuracy": result["test_accuracy"],
        "train_seconds": result["train_seconds"],
        "epoch_seconds": result["epoch_seconds"],
    }


def main(argv=None):
    args = parse(argv)
    policy = precision.set_policy(args.precision)
    filters = json.loads(args.filters) if args.filters else None
    teacher = keras.saving.load_model(args.teacher)
    if args.freeze_through:
        teacher_lib.freeze_through(teacher, args.freeze_through)
    x, y, x_val, y_val, clean = cifar10_probe_split(
        teacher, args.data_dir, args.samples, BATCH
    )
    cache_dir = Path(args.cache_dir) / f"{Path(args.teacher).stem}-{len(x)}"
    start = time.perf_counter()
    cache = views_lib.ViewCache.build(
        cache_dir, teacher, x, args.views, verbose=2
    )
    build_seconds = time.perf_counter() - start

    split = (x, y, x_val, y_val, clean)
    probe = probe_baseline if args.baseline else probe_class
    measured = probe(args, teacher, cache, split, filters)
    run = {  # dated when measured
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        # As a path from the repository's root, wherever the run started.
        "teacher": _from_root(args.teacher),
        "samples": len(x),
        "validation_samples": CIFAR10_VALIDATION,
        # The held-out images are the students' and baselines'; a teacher
        # trained on all 50,000 images saw them (None: not recorded).
        "teacher_training_samples": teacher_training_samples(args.teacher),
        "teacher_saw_validation": validation_in_teacher_training(args.teacher),
        "epochs": args.epochs,
        "views": args.views,
        "seed": args.seed,
        **measured,
        "views_build_seconds": build_seconds,
        "precision": policy,
        "load_average": list(os.getloadavg()),
        # This run's machine and versions (the file's top level is the
        # last writer's).
        **{k: v for k, v in environment().items() if k != "date"},
    }
    out = Path(args.out)
    record = (
        json.loads(out.read_text())
        if out.exists()
        else {
            "benchmark": "student_probe",
            "script": "benchmarks/student_probe.py",
            "runs": [],
        }
    )
    # The script's current description (older runs record their flags).
    record["note"] = __doc__.split("\n\n")[1].replace("\n", " ")
    record["runs"].append(run)
    record.update(environment())
    out.write_text(json.dumps(record, indent=1) + "\n")
    shown = (
        "baseline",
        "students",
        "student_input",
        "frozen_through",
        "batch_norm",
        "loss",
        "filters",
        "params",
        "macs",
        "val_accuracy",
    )
    shown += ("val_mse", "refined_val_accuracy")
    print(json.dumps({k: run[k] for k in shown if k in run}))
    return run


if __name__ == "__main__":
    main()
