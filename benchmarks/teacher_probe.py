"""A short CIFAR-10 teacher probe: the fast teacher and its recipe on a
subset, scored on a validation split carved from the training data.

Trains `architectures.cifar10_fast_teacher` with `cifar10_fast_recipe`
(its schedule spanning `--epochs`) on the first `--samples` training
images and reports, after every epoch, the accuracy on the last
`--validation` training images (never trained on; the test split is not
read). Written to decide the teacher's recipe on a machine too slow for
a full run: run it at two commits and compare the records it appends to
`results/cifar10_teacher_probe.json` (keyed by `--label`, with the
commit). A label already recorded is replaced only by a run of the same
settings (samples, validation, epochs, precision, seed, options): any
other run needs a label of its own.

    python benchmarks/teacher_probe.py --data-dir ../shared/data \
        --label airbench --epochs 5
"""

import argparse
import inspect
import json
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import EpochTimer  # noqa: E402
from _common import environment  # noqa: E402
from reproduce_state import _git_state  # noqa: E402

from teacherclass import architectures  # noqa: E402
from teacherclass import datasets  # noqa: E402

# What a record's label stands for: a rerun under the label must match.
SETTINGS = ("samples", "validation", "epochs", "precision", "seed")


def settings_of(record):
    """The settings of a run record (its `options` as `options.<name>`;
    older records have fewer options, or none)."""
    settings = {k: record[k] for k in SETTINGS if k in record}
    options = record.get("options") or {}
    settings.update({f"options.{k}": v for k, v in options.items()})
    return settings


def check_label(data, label, settings):
    """Raises ValueError if `label` is recorded in `data` with settings
    other than `settings` (only those both name are compared)."""
    recorded = data.get("runs", {}).get(label)
    if recorded is None:
        return
    old = settings_of(recorded)
    differ = [
        f"{k} {old[k]!r} recorded, {v!r} now"
        for k, v in settings.items()
        if k in old and old[k] != v
    ]
    if differ:
        raise ValueError(
            f"--label {label} is recorded with other settings "
            f"({'; '.join(differ)}): give this run a label of its own, so "
            f"both records stay. Received: --label {label}"
        )


def parse_widths(text):
    """`--widths` ("128,384,384") as a tuple of positive ints."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise ValueError(
            "--widths must be positive integers separated by commas. "
            f"Received: --widths {text}"
        )
    return widths


def alternating_flip_batches(x, y, batch, epochs, augment, seed):
    """`epochs` epochs of shuffled batches, one dataset after another,
    flipped as airbench flips: image `i` is mirrored in epoch `e` when
    its own coin (drawn once from `seed` and `i`) differs from `e`'s
    parity, so each image alternates between its two orientations. The
    recipe's `augment` (a Sequential ending in a `RandomFlip`) gives its
    shifts only."""
    shift = keras.Sequential(
        [
            layer
            for layer in augment.layers
            if not isinstance(layer, keras.layers.RandomFlip)
        ]
    )
    coin = tf.random.stateless_uniform([len(x)], seed=[seed, 7]) < 0.5
    base = tf.data.Dataset.from_tensor_slices((x, y, coin))

    def epoch(e):
        def flip(images, labels, coins):
            mirror = tf.not_equal(coins, e % 2 == 1)
            images = tf.where(
                mirror[:, None, None, None], images[:, :, ::-1], images
            )
            return tf.cast(shift(images, training=True), images.dtype), labels

        # A new order each epoch: a seed of its own.
        order = base.shuffle(len(x), seed=seed * 100_003 + e)
        return order.batch(batch).map(flip)

    ds = epoch(0)
    for e in range(1, epochs):
        ds = ds.concatenate(epoch(e))
    return ds.prefetch(tf.data.AUTOTUNE)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--validation", type=int, default=5_000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--precision", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--bias-lr-scale",
        type=float,
        default=None,
        help="the BN offsets' learning-rate multiplier (default: the recipe's)",
    )
    p.add_argument(
        "--identity-init",
        choices=("on", "off"),
        default=None,
        help="the teacher's convolutions start with identity filters "
        "(airbench's; default: the builder's)",
    )
    p.add_argument(
        "--lookahead",
        action="store_true",
        help="airbench's Lookahead (teacherclass.lookahead) during "
        "training (default: the recipe's)",
    )
    p.add_argument(
        "--decay",
        choices=architectures.DECAYS,
        default=None,
        help="the learning rate's fall after the warmup (airbench: "
        "linear; default: the recipe's)",
    )
    p.add_argument(
        "--uniform-shifts",
        action="store_true",
        help="every whole shift equally likely (airbench's crops; "
        "default: the recipe's)",
    )
    p.add_argument(
        "--alternating-flip",
        action="store_true",
        help="airbench's flips: each image mirrored at random in the "
        "first epoch, then in every other epoch the opposite way "
        "(default: a random flip each epoch)",
    )
    p.add_argument(
        "--widths",
        default=None,
        help="the teacher's block widths, comma-separated, e.g. 128,384,384 "
        "(airbench95's; default: the builder's)",
    )
    p.add_argument(
        "--out", default=str(HERE / "results/cifar10_teacher_probe.json")
    )
    args = p.parse_args(argv)
    # The code this run trains with: read now, not when it ends (a long
    # run's tree may have moved on by then).
    git_state = _git_state() or {}
    for flag in ("samples", "validation", "epochs"):
        if getattr(args, flag) < 1:
            raise ValueError(
                f"--{flag} must be at least 1. "
                f"Received: --{flag} {getattr(args, flag)}"
            )
    keras.config.set_dtype_policy(args.precision)
    keras.utils.set_random_seed(args.seed)
    x, y = datasets.load("cifar10", "train", data_dir=args.data_dir)
    if args.samples + args.validation > len(x):
        # The first `samples` train, the last `validation` score: more
        # than the split holds would score images trained on.
        raise ValueError(
            f"--samples and --validation must add up to at most the "
            f"{len(x)} training images (the validation images are the "
            f"last ones, never trained on). Received: --samples "
            f"{args.samples} --validation {args.validation}"
        )
    x = x.astype("float32") / 255
    x_val, y_val = x[-args.validation :], y[-args.validation :]
    x, y = x[: args.samples], y[: args.samples]
    batch = architectures.FAST_RECIPE["batch_size"]
    # Options are passed only when given, so the probe still runs at
    # commits whose builders lack them.
    options = {}
    if args.bias_lr_scale is not None:
        options["bias_lr_scale"] = args.bias_lr_scale
    if args.lookahead:
        options["lookahead"] = True
    if args.decay:
        options["decay"] = args.decay
    if args.uniform_shifts:
        options["uniform_shifts"] = True
    recipe = architectures.cifar10_fast_recipe(
        args.epochs, math.ceil(len(x) / batch), seed=args.seed, **options
    )
    build = architectures.cifar10_fast_teacher
    extra = {}
    if "whitening_images" in inspect.signature(build).parameters:
        extra["whitening_images"] = x[:5000]
    parameters = inspect.signature(build).parameters
    identity_init = False
    if "identity_init" in parameters:
        identity_init = parameters["identity_init"].default
        if args.identity_init:
            identity_init = extra["identity_init"] = args.identity_init == "on"
    recorded_options = {
        "bias_lr_scale": recipe.optimizer.get_config().get(
            "bias_lr_scale", 1.0
        ),
        "lookahead": getattr(recipe, "lookahead", False),
        "identity_init": identity_init,
    }
    # Recorded only when given, so older records keep their settings.
    for name in ("decay", "uniform_shifts"):
        if name in options:
            recorded_options[name] = options[name]
    if args.alternating_flip:
        recorded_options["alternating_flip"] = True
    if args.widths is not None:
        extra["widths"] = parse_widths(args.widths)
        recorded_options["widths"] = list(extra["widths"])
    settings = {
        "samples": len(x),
        "validation": f"the last {args.validation} training images",
        "epochs": args.epochs,
        "precision": args.precision,
        "seed": args.seed,
        "options": recorded_options,
    }
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    # Refused before training, not after.
    check_label(data, args.label, settings_of(settings))
    teacher = build(**extra)
    teacher.compile(
        optimizer=recipe.optimizer, loss=recipe.loss, metrics=recipe.metrics
    )
    y1 = keras.utils.to_categorical(y, 10).astype("float32")
    if args.alternating_flip:
        ds = alternating_flip_batches(
            x, y1, batch, args.epochs, recipe.augment, args.seed
        )
        steps_per_epoch = math.ceil(len(x) / batch)
    else:
        ds = (
            tf.data.Dataset.from_tensor_slices((x, y1))
            .shuffle(len(x), seed=args.seed)
            .batch(batch)
            .map(lambda a, b: (recipe.augment(a, training=True), b))
            .prefetch(tf.data.AUTOTUNE)
        )
        steps_per_epoch = None
    timer = EpochTimer()
    callbacks = [timer]
    if getattr(recipe, "lookahead", False):
        from teacherclass.lookahead import Lookahead

        steps = args.epochs * math.ceil(len(x) / batch)
        # airbench's every=5, at most the steps a tiny run has.
        callbacks.append(
            Lookahead(teacher, total_steps=steps, every=min(5, steps))
        )
    y_val1 = keras.utils.to_categorical(y_val, 10).astype("float32")
    h = teacher.fit(
        ds,
        epochs=args.epochs,
        validation_data=(x_val, y_val1),
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=2,
    ).history
    epochs = [
        {
            "epoch": e + 1,
            "seconds": timer.times[e],
            "train_accuracy": float(h["categorical_accuracy"][e]),
            "val_accuracy": float(h["val_categorical_accuracy"][e]),
        }
        for e in range(args.epochs)
    ]
    # Test-time augmentation (airbench's level 1): the mean of the
    # logits of each image and of its mirror image.
    logits = keras.Model(teacher.input, teacher.get_layer("logits").output)
    mirrored = logits.predict(x_val[:, :, ::-1], verbose=0)
    both = logits.predict(x_val, verbose=0) + mirrored
    flip_accuracy = float((both.argmax(-1) == y_val.ravel()).mean())
    record = {
        "label": args.label,
        **git_state,
        **{k: settings[k] for k in SETTINGS},
        "params": int(teacher.count_params()),
        "recipe": dict(architectures.FAST_RECIPE),
        "history": epochs,
        "final_val_accuracy": epochs[-1]["val_accuracy"],
        "final_val_accuracy_flip_tta": flip_accuracy,
        "options": recorded_options,
        "load_average": list(os.getloadavg()),
        **environment(),
    }
    data = json.loads(out.read_text()) if out.exists() else {}
    check_label(data, args.label, settings_of(settings))
    data.setdefault("benchmark", "teacher_probe")
    data.setdefault("script", "benchmarks/teacher_probe.py")
    # The machine, versions and date of the latest run, for the page.
    data.update({k: record[k] for k in ("date", "machine", "versions")})
    data.setdefault("runs", {})[args.label] = record
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
