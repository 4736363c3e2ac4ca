"""Semantic segmentation: a U-Net teacher, its students, masked IoU.

A segmentation teacher's representation is a feature map: its last decoder
features, `(batch, H, W, C)`, which a 1x1 convolution turns into per-pixel
class scores. `TeacherClass` splits it along the channels; each student is
a small encoder-decoder (`towers.SegmentationTower`) regressing its
channels at every pixel, and the composed model is students -> concatenate
-> clip -> the teacher's own 1x1 convolution and softmax.

Labels may hold a void value (CamVid's 11) that no loss or score counts:
`compile_args` and `mean_iou` take it as `ignore_class`.
"""

import keras
import numpy as np

from teacherclass import towers
from teacherclass import validation

CAMVID_CLASSES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign_symbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
CAMVID_VOID = 11


def _conv_bn_relu(x, filters, name, relu_name=None):
    x = keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    relu_name = relu_name or f"{name}_relu"
    return keras.layers.Activation("relu", name=relu_name)(x)


def unet_teacher(
    input_shape=(96, 128, 3),
    num_classes=11,
    filters=(16, 32, 64, 128, 256),
    rescale=True,
):
    """A U-Net segmentation teacher.

    Per entry of `filters` (finest first) two 3x3 Conv-BatchNorm-ReLU, with
    2x2 max pooling between entries; the decoder upsamples with a 2x2
    transposed convolution, joins the encoder's features of the same
    resolution and applies two Conv-BatchNorm-ReLU. The last of them is
    the layer "representation" (`filters[0]` channels at full
    resolution; with one entry, no decoder: the encoder's last ReLU); a
    1x1 convolution "logits" and a softmax "probabilities" follow, so
    `TeacherClass(teacher)` finds it. The defaults (CamVid's 11 classes)
    have 1,945,691 parameters.

    Args:
        input_shape: `(H, W, C)`; `H` and `W` divisible by
            `2 ** (len(filters) - 1)`, or None: any size, which must
            then divide so when the model is called.
        num_classes: int, the classes scored (void excluded).
        filters: non-empty tuple of positive ints, filters per
            resolution.
        rescale: bool, start with `Rescaling(1 / 255)` (a layer named
            "rescale") so the model takes raw `uint8` pixels. Pass
            `student_input="rescale"` to `TeacherClass` so students learn
            on the rescaled pixels too.

    Returns:
        An uncompiled functional `keras.Model` named "unet_teacher".

    Raises:
        ValueError: if the input size does not divide, `filters` is
            empty or holds a non-positive integer, or `num_classes` is
            below 2.

    Example:

    >>> unet_teacher((32, 32, 3), num_classes=4, filters=(8, 16)).count_params()
    6788
    """
    received = filters
    filters = towers._check_positive_tuple("filters", filters)
    if not filters:
        # Without one, no layer is "representation".
        raise ValueError(
            "`filters` must hold at least one positive integer, one per "
            f"resolution. Received: filters={received!r}"
        )
    input_shape = _check_input_shape(input_shape, 2 ** (len(filters) - 1))
    num_classes = validation.check_int("num_classes", num_classes, minimum=2)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    if rescale:
        x = keras.layers.Rescaling(1.0 / 255, name="rescale")(x)
    skips = []
    # One resolution has no decoder: the encoder's last ReLU is the
    # representation (a model saved before kept "down_0_b_relu" in its
    # config, and loads as it was).
    last = "representation" if len(filters) == 1 else None
    for level, f in enumerate(filters):
        if level:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{level}")(x)
        x = _conv_bn_relu(x, f, f"down_{level}_a")
        x = _conv_bn_relu(x, f, f"down_{level}_b", last)
        skips.append(x)
    for level in reversed(range(len(filters) - 1)):
        f = filters[level]
        x = keras.layers.Conv2DTranspose(
            f, 2, strides=2, name=f"upsample_{level}"
        )(x)
        x = keras.layers.Concatenate(name=f"skip_{level}")([x, skips[level]])
        x = _conv_bn_relu(x, f, f"up_{level}_a")
        x = keras.layers.Conv2D(
            f, 3, padding="same", use_bias=False, name=f"up_{level}_b_conv"
        )(x)
        x = keras.layers.BatchNormalization(name=f"up_{level}_b_bn")(x)
        name = "representation" if level == 0 else f"up_{level}_b_relu"
        x = keras.layers.Activation("relu", name=name)(x)
    logits = keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name="unet_teacher")


def _check_input_shape(input_shape, factor):
    """`(H, W, C)` with `H` and `W` None or divisible by `factor`."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    sizes_ok = shape is not None and len(shape) == 3
    sizes_ok = sizes_ok and all(
        (n is None and axis < 2) or (validation.is_int(n) and n > 0)
        for axis, n in enumerate(shape)
    )
    if not sizes_ok:
        raise ValueError(
            "`input_shape` must be (height, width, channels): positive "
            "integers, height and width may be None (any size). "
            f"Received: input_shape={input_shape!r}"
        )
    if any(n is not None and n % factor for n in shape[:2]):
        resolutions = factor.bit_length()
        raise ValueError(
            f"`input_shape`'s height and width must be divisible by {factor} "
            f"for {resolutions} resolutions. Received: "
            f"input_shape={shape}"
        )
    return tuple(None if n is None else int(n) for n in shape)


def segmentation_student(filters=(16, 32, 64), convs_per_block=1, units=1):
    """A student template for segmentation teachers.

    Args:
        filters: tuple of ints, the tower's filters per resolution.
        convs_per_block: int, convolutions per resolution and side.
        units: int, channels; `TeacherClass` replaces it per chunk.

    Returns:
        A `towers.SegmentationTower`, usable as `TeacherClass`'s `student=`.

    Example:

    >>> segmentation_student((8, 16)).filters
    (8, 16)
    """
    return towers.SegmentationTower(
        units, filters=filters, convs_per_block=convs_per_block
    )


def mean_iou(num_classes, ignore_class=CAMVID_VOID, name="mean_iou"):
    """Keras' `MeanIoU` over softmax outputs, a void label left out.

    Args:
        num_classes: int, the classes scored.
        ignore_class: int or None, the label value no score counts.
        name: the metric's name.

    Returns:
        A `keras.metrics.MeanIoU` taking `(labels, probabilities)`.

    Example:

    >>> metric = mean_iou(2, ignore_class=2)
    >>> _ = metric.update_state([[0, 1, 2]], [[[1., 0.], [0., 1.], [1., 0.]]])
    >>> round(float(metric.result()), 4)
    1.0
    """
    return keras.metrics.MeanIoU(
        num_classes=num_classes,
        ignore_class=ignore_class,
        sparse_y_pred=False,
        name=name,
    )


def compile_args(num_classes, ignore_class=CAMVID_VOID, learning_rate=1e-3):
    """Compile arguments for a segmentation model with a void label.

    Adam, a sparse cross-entropy ignoring `ignore_class`, and `mean_iou`.

    Args:
        num_classes: int, the classes scored.
        ignore_class: int or None, the void label value.
        learning_rate: float, Adam's learning rate.

    Returns:
        A dict of `compile` keyword arguments.

    Example:

    >>> sorted(compile_args(11))
    ['loss', 'metrics', 'optimizer']
    """
    return {
        "optimizer": keras.optimizers.Adam(learning_rate),
        "loss": keras.losses.SparseCategoricalCrossentropy(
            ignore_class=ignore_class
        ),
        "metrics": [mean_iou(num_classes, ignore_class)],
    }


def masked_mean_iou(
    model, x, y, num_classes, ignore_class=CAMVID_VOID, batch_size=8
):
    """A model's mean and per-class IoU on `(x, y)`, void pixels left out.

    Args:
        model: a model from images to per-pixel class probabilities.
        x: images, `(N, H, W, C)`.
        y: label maps, `(N, H, W)`.
        num_classes: int, the classes scored.
        ignore_class: int or None, the void label value.
        batch_size: int, images per prediction batch.

    Returns:
        A dict: "mean_iou" (Keras' `MeanIoU`: the mean over classes that
        occur in the labels or predictions) and "per_class_iou" (a list,
        None for a class absent from both).

    Example:

    >>> inputs = keras.Input((4, 4, 1))
    >>> model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    >>> result = masked_mean_iou(
    ...     model, np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4)), 2)
    >>> sorted(result)
    ['mean_iou', 'per_class_iou']
    """
    batch_size = validation.check_int("batch_size", batch_size)
    metric = mean_iou(num_classes, ignore_class)
    for start in range(0, len(x), batch_size):
        stop = start + batch_size
        probabilities = model(x[start:stop], training=False)
        metric.update_state(y[start:stop], probabilities)
    cm = keras.ops.convert_to_numpy(metric.total_cm).astype("float64")
    true_positives = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - true_positives
    per_class = [
        float(tp / u) if u > 0 else None for tp, u in zip(true_positives, union)
    ]
    return {"mean_iou": float(metric.result()), "per_class_iou": per_class}
