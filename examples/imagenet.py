"""A large pretrained teacher on ImageNet-scale data, streamed from disk.

Teacher: `keras.applications.MobileNetV2` (or any `keras.applications`
classifier); its representation is the global average pooling output
(1280 features) that feeds the classifier, split among `--students`
students. Data: tensorflow-datasets `imagenette` (10 ImageNet classes,
~9.5k training images) or `imagenet2012` (1.28M images), streamed with
`tfds`, never loaded into memory: the teacher's representation is written
once to a disk cache (`--cache`) and every epoch streams it back through a
bounded shuffle buffer; a second run reuses the cache.

Getting the data (nothing here downloads unless you pass --download):

- imagenette: `python -c "import tensorflow_datasets as tfds;
  tfds.builder('imagenette/160px-v2').download_and_prepare()"` (about
  100 MB; `--download` does the same).
- imagenet2012 needs a manual download: accept the terms at
  https://image-net.org, download `ILSVRC2012_img_train.tar` and
  `ILSVRC2012_img_val.tar` into `<data_dir>/downloads/manual/`
  (default `~/tensorflow_datasets/downloads/manual/`), then run
  `tfds build imagenet2012 --data_dir <data_dir>` once (hours; the
  prepared data takes ~150 GB).

With `--weights imagenet` Keras fetches the pretrained MobileNetV2 weights
on first use (to `~/.keras/models`); pass a local `.weights.h5` path
instead on a machine without network. ImageNet weights fit imagenet2012's
1000 classes; for imagenette the example fine-tunes the teacher's new
10-class head first (`--teacher-epochs`).

The disk cache holds the uint8 images plus 1280 float32 features per
image: ~80 KB per 160x160 image, ~0.8 GB for imagenette and ~100 GB for
imagenet2012 at `--image-size 160`.

Run:
    python examples/imagenet.py --dataset imagenette --cache /data/tc_cache

tests/test_examples.py runs it on tfds' mock data (random images from the
real builder's features) at 32x32 with `--weights none`.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from teacherclass import ConvTower  # noqa: E402
from teacherclass import TeacherClass  # noqa: E402
from teacherclass import features  # noqa: E402

_TFDS = {
    "imagenette": ("imagenette/160px-v2", "train", "validation", 10),
    "imagenet2012": ("imagenet2012", "train", "validation", 1000),
}


def stream(name, split, image_size, data_dir=None, download=False):
    """An unbatched `(uint8 image, label)` dataset streamed by tfds."""
    import tensorflow_datasets as tfds

    tfds_name = _TFDS[name][0]
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    ds = builder.as_dataset(
        split=split, as_supervised=True, shuffle_files=False
    )

    def resize(image, label):
        image = tf.image.resize_with_pad(image, image_size, image_size)
        return tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8), label

    return ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE)


def teacher_model(image_size, num_classes, weights):
    """MobileNetV2 taking raw uint8 pixels: preprocessing is in the model.

    Keeping pixels uint8 up to the model keeps the disk cache 4x smaller
    than float32 inputs would.

    Returns:
        `(teacher, base)`: the classifier and its MobileNetV2 trunk.
    """
    inputs = keras.Input((image_size, image_size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    base = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3),
        include_top=False,
        weights=weights,
    )
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="representation")(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="classifier"
    )(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2_teacher"), base


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", choices=sorted(_TFDS), default="imagenette"
    )
    parser.add_argument("--data-dir", default=None, help="tfds data_dir")
    parser.add_argument("--download", action="store_true")
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="'imagenet', a .weights.h5 path, or 'none' (random init)",
    )
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cache", required=True, help="disk cache folder")
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--fingerprint-batches", type=int, default=16)
    parser.add_argument("--out", default="imagenet_composed.keras")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    _, train_split, val_split, classes = _TFDS[args.dataset]
    train = stream(
        args.dataset, train_split, args.image_size, args.data_dir, args.download
    )
    val = stream(args.dataset, val_split, args.image_size, args.data_dir)
    batch = args.batch_size

    weights = None if args.weights.lower() == "none" else args.weights
    teacher, base = teacher_model(args.image_size, classes, weights)
    if args.teacher_epochs:
        # A new head for these classes on the frozen pretrained trunk,
        # trained before the class copies the head.
        base.trainable = False
        teacher.compile(
            optimizer="adam",
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        teacher.fit(
            train.shuffle(10_000).batch(batch),
            validation_data=val.batch(batch),
            epochs=args.teacher_epochs,
        )
    tc = TeacherClass(
        teacher,
        num_students=args.students,
        student=ConvTower(
            1,
            filters=(16, 32, 32, 64),
            convs_per_block=1,
            padding="same",
            bottleneck=128,
        ),
    )
    print(f"representation: {tc.feature_layer}, chunks {tc.chunks}")
    # The teacher runs once over the training set; later runs reuse the
    # cache (hashing only the first batches: decoding twice is the cost).
    cache = features.DiskCache(
        args.cache,
        shards=args.shards,
        fingerprint_batches=args.fingerprint_batches,
    )
    tc.fit_students(
        train.batch(batch), batch_size=batch, epochs=args.epochs, cache=cache
    )
    composed = tc.compose(
        fine_tune=True, x=train.batch(batch).take(200), epochs=1
    )
    print(composed.evaluate(val.batch(batch), return_dict=True))
    print(tc.report())
    composed.save(args.out)


if __name__ == "__main__":
    main()
