"""CamVid segmentation: a U-Net teacher vs its composed students.

Teacher: `segmentation.unet_teacher` (a U-Net, 1.9M parameters at the
defaults), trained on CamVid's train split with void (label 11) ignored.
Students: `--students` `SegmentationTower`s regressing channel chunks of
the teacher's last decoder feature map; composed: students -> concatenate
-> clip -> the teacher's 1x1 convolution and softmax. Scores the teacher
and the composed model on the test split with Keras' `MeanIoU` (void
ignored): mean IoU, per-class IoU, parameters and their ratio.

The target (composed within 3 mIoU points of the teacher at >= 10x fewer
parameters) needs full resolution and many epochs; the defaults here
(`--size 96x128`, few epochs) fit about ten CPU minutes and say so in the
output. Writes results/camvid.json and .md.

Run: python benchmarks/camvid.py [--data-dir DIR] [--size 96x128]
    [--teacher-epochs N] [--student-epochs N]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import datasets  # noqa: E402
from teacherclass import precision  # noqa: E402
from teacherclass import segmentation  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import environment  # noqa: E402

DEFAULT_DATA = HERE.parent.parent / "shared" / "data"


def _ints(text):
    return tuple(int(v) for v in text.split(","))


def load(split, size, data_dir, limit=None):
    """CamVid `split` resized to `size`: uint8 images, nearest labels."""
    x, y = datasets.load("camvid", split, data_dir=data_dir)
    if limit:
        x, y = x[:limit], y[:limit]
    if tuple(x.shape[1:3]) != tuple(size):
        x = tf.image.resize(x, size, antialias=True).numpy()
        x = np.clip(np.round(x), 0, 255).astype("uint8")
        y = tf.image.resize(y[..., None], size, method="nearest").numpy()
        y = y[..., 0]
    return x.astype("float32"), y.astype("int32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--size", default="96x128", help="HxW, /16")
    parser.add_argument("--train-samples", type=int, default=None)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--student-epochs", type=int, default=8)
    parser.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=0,
        help="train the composed model's 1x1 head on the labels, students "
        "frozen (compose(fine_tune=True))",
    )
    parser.add_argument("--filters", default="16,32,64,128,256")
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--student-filters", default="12,24,48")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument(
        "--name",
        default="camvid",
        help="results file stem: OUT/NAME.json and OUT/NAME.md",
    )
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    args.precision = precision.set_policy(args.precision)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    start = time.perf_counter()
    x, y = load("train", size, args.data_dir, args.train_samples)
    x_test, y_test = load("test", size, args.data_dir)
    classes = len(segmentation.CAMVID_CLASSES)
    void = segmentation.CAMVID_VOID

    teacher = segmentation.unet_teacher(
        size + (3,), num_classes=classes, filters=_ints(args.filters)
    )
    teacher.compile(
        **segmentation.compile_args(classes, void, args.learning_rate)
    )
    # Students learn on the rescaled pixels: the Rescaling layer stays in
    # front of them in the composed model.
    tc = TeacherClass(
        teacher,
        num_students=args.students,
        student=segmentation.segmentation_student(_ints(args.student_filters)),
        student_input="rescale",
    )
    t0 = time.perf_counter()
    tc.fit_teacher(
        x,
        y,
        epochs=args.teacher_epochs,
        batch_size=args.batch_size,
        verbose=2,
    )
    teacher_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    tc.fit_students(
        x,
        epochs=args.student_epochs,
        batch_size=args.batch_size,
        verbose=2,
        loss="mse",  # as before (a comparison of MSE fits)
    )
    student_seconds = time.perf_counter() - t0
    composed = tc.compose()
    before = None
    t0 = time.perf_counter()
    if args.fine_tune_epochs:
        before = segmentation.masked_mean_iou(
            composed, x_test, y_test, classes, void, args.batch_size
        )["mean_iou"]
        composed = tc.compose(
            fine_tune=True,
            x=x,
            y=y,
            epochs=args.fine_tune_epochs,
            batch_size=args.batch_size,
            verbose=2,
        )
    fine_tune_seconds = time.perf_counter() - t0
    scores = {
        name: segmentation.masked_mean_iou(
            model, x_test, y_test, classes, void, args.batch_size
        )
        for name, model in (("teacher", teacher), ("composed", composed))
    }
    params = {
        "teacher": teacher.count_params(),
        "composed": composed.count_params(),
        "students": [s.count_params() for s in tc.students],
    }
    ratio = params["teacher"] / params["composed"]
    gap = 100 * (scores["teacher"]["mean_iou"] - scores["composed"]["mean_iou"])
    result = {
        "benchmark": "camvid",
        **environment(),
        "config": {
            "data": "camvid (SegNet CamVid, 180x240 copy), train -> test",
            "size": list(size),
            "train_samples": len(x),
            "test_samples": len(x_test),
            "teacher_filters": list(_ints(args.filters)),
            "students": args.students,
            "student_filters": list(_ints(args.student_filters)),
            "chunks": list(tc.chunks),
            "teacher_epochs": args.teacher_epochs,
            "student_epochs": args.student_epochs,
            "fine_tune_epochs": args.fine_tune_epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "precision": args.precision,
            "seed": args.seed,
            "note": "reduced resolution and few epochs to fit a CPU "
            "budget: far from a converged CamVid teacher",
        },
        "classes": list(segmentation.CAMVID_CLASSES),
        "teacher": scores["teacher"],
        "composed": scores["composed"],
        "composed_before_fine_tune_mean_iou": before,
        "params": params,
        "compression_ratio": ratio,
        "miou_gap_points": gap,
        "target_met": bool(gap <= 3.0 and ratio >= 10.0),
        "teacher_train_seconds": round(teacher_seconds, 1),
        "student_train_seconds": round(student_seconds, 1),
        "fine_tune_seconds": round(fine_tune_seconds, 1),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1))

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    lines = [
        "# CamVid: U-Net teacher vs composed students",
        "",
        f"{result['date']}, {result['machine']['platform']}, "
        f"{args.precision}; {size[0]}x{size[1]}, {len(x)} train / "
        f"{len(x_test)} test images; teacher {args.teacher_epochs} epochs, "
        f"students {args.student_epochs} epochs, head fine-tuning "
        f"{args.fine_tune_epochs} epochs; {result['wall_seconds'] / 60:.0f} "
        "minutes on the CPU below (a reduced setting, not the paper's).",
        "",
        "| model | params | mIoU |",
        "| --- | --- | --- |",
        f"| teacher | {params['teacher']:,} | "
        f"{scores['teacher']['mean_iou']:.4f} |",
        f"| composed ({args.students} students) | {params['composed']:,} | "
        f"{scores['composed']['mean_iou']:.4f} |",
        "",
        f"Compression {ratio:.1f}x, mIoU gap {gap:.1f} points "
        f"(target: <= 3 points at >= 10x: "
        f"{'met' if result['target_met'] else 'not met'} on 1 seed, "
        f"seed {args.seed}, on the test split; the settings were not "
        "chosen on a validation split)."
        + (
            f" Composed mIoU before head fine-tuning: {before:.4f}."
            if before is not None
            else ""
        ),
        "",
        "| class | teacher IoU | composed IoU |",
        "| --- | --- | --- |",
    ]
    for i, name in enumerate(segmentation.CAMVID_CLASSES):
        lines.append(
            f"| {name} | {fmt(scores['teacher']['per_class_iou'][i])} | "
            f"{fmt(scores['composed']['per_class_iou'][i])} |"
        )
    table = "\n".join(lines) + "\n"
    (out / f"{args.name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
