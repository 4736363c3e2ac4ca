"""CamVid segmentation: a U-Net teacher, 4 encoder-decoder students.

The teacher's representation is its last decoder feature map; the students
each regress a quarter of its channels at every pixel, and the composed
model reuses the teacher's 1x1 classifier. Scores use Keras' `MeanIoU` with
void (label 11) ignored. benchmarks/camvid.py is the measured version.

Run: python examples/camvid.py [DATA_DIR]  (TEACHERCLASS_QUICK=1 for a smoke
run: 16 images at 32x48, one epoch each)
DATA_DIR defaults to the TEACHERCLASS_DATA environment variable, else
to shared/data beside the repository (../shared/data from its root);
runs from any folder.
"""

import os
import sys
from pathlib import Path

import keras
import tensorflow as tf

from teacherclass import TeacherClass
from teacherclass import datasets
from teacherclass import segmentation

quick = os.environ.get("TEACHERCLASS_QUICK") == "1"
# DATA_DIR if given; else None when TEACHERCLASS_DATA is set (datasets.load
# reads the variable); else the shared folder beside this repository.
if len(sys.argv) > 1:
    data_dir = sys.argv[1]
elif os.environ.get("TEACHERCLASS_DATA"):
    data_dir = None
else:
    data_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
size = (32, 48) if quick else (96, 128)
keras.utils.set_random_seed(0)


def load(split, limit):
    x, y = datasets.load("camvid", split, data_dir=data_dir)
    x, y = x[:limit], y[:limit]
    x = tf.image.resize(x, size, antialias=True).numpy()
    y = tf.image.resize(y[..., None], size, method="nearest").numpy()[..., 0]
    return x.astype("float32"), y.astype("int32")


(x, y), (x_test, y_test) = (
    load("train", 16 if quick else None),
    load("test", 16 if quick else None),
)
teacher = segmentation.unet_teacher(size + (3,))  # raw pixels, rescaled inside
teacher.compile(**segmentation.compile_args(num_classes=11, ignore_class=11))
tc = TeacherClass(
    teacher,
    num_students=4,
    student=segmentation.segmentation_student((12, 24, 48)),
    student_input="rescale",  # students see the rescaled pixels too
)
tc.fit_teacher(x, y, epochs=1 if quick else 8, batch_size=8, verbose=2)
tc.fit_students(x, epochs=1 if quick else 8, batch_size=8, verbose=2)
composed = tc.compose()
for name, model in (("teacher", teacher), ("composed", composed)):
    scores = segmentation.masked_mean_iou(model, x_test, y_test, 11)
    print(
        f"{name}: {model.count_params():,} params, "
        f"mIoU {scores['mean_iou']:.3f}"
    )
print(tc.report())
composed.save(os.environ.get("TEACHERCLASS_OUT", "camvid_composed.keras"))
