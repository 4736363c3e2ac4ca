"""Student epoch time: cached augmented views vs the teacher in the step.

Side by side on the same data, machine and students: the n = 4 class of
the fast CIFAR-10 teacher (`architectures.cifar10_fast_teacher`), one
student epoch over `--samples` random 32x32 images, bf16, batch 512:

- `augment`: `fit_students(x, augment=cifar10_augmentation())`: the
  teacher's trunk runs on every augmented batch in the train step;
- `views`: `teacherclass.views.ViewCache`: the teacher ran once per view
  beforehand (timed too: `views_build_seconds_per_view`), and each epoch
  reads one cached view (`ViewCache.dataset`).

Only speed is measured (untrained weights). Writes
`benchmarks/results/views_speed.json`.

Run: python benchmarks/views_speed.py [--samples 2048] [--epochs 2]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import environment  # noqa: E402

from teacherclass import TeacherClass  # noqa: E402
from teacherclass import architectures  # noqa: E402
from teacherclass import training  # noqa: E402
from teacherclass import views as views_lib  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=2, help="timed: the last")
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results/views_speed.json"))
    args = p.parse_args(argv)
    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.samples, 32, 32, 3)).astype("float32")
    x /= 255
    teacher = architectures.cifar10_fast_teacher()
    batch = 512

    def new_class():
        return TeacherClass(
            teacher,
            num_students=4,
            student=architectures.cifar10_fast_student(4),
        )

    times = {}
    tc = new_class()
    epoch_times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        tc.fit_students(
            x,
            batch_size=batch,
            epochs=1,
            verbose=0,
            augment=architectures.cifar10_augmentation(),
        )
        epoch_times.append(time.perf_counter() - start)
    times["augment_epoch_seconds"] = epoch_times

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cache = views_lib.ViewCache.build(tmp, teacher, x, args.views)
        build = time.perf_counter() - start
        tc = new_class()
        trainer = training.for_class(tc)
        trainer.compile(optimizer="adam", loss="mse")
        epoch_times = []
        for epoch in range(args.epochs):
            start = time.perf_counter()
            trainer.fit(
                cache.dataset(x, epoch + 1, batch),  # augmented views
                epochs=epoch + 1,
                initial_epoch=epoch,
                verbose=0,
            )
            epoch_times.append(time.perf_counter() - start)
    times["views_epoch_seconds"] = epoch_times
    times["views_build_seconds_per_view"] = build / (args.views + 1)
    times["augment_last_epoch_seconds"] = times["augment_epoch_seconds"][-1]
    times["views_last_epoch_seconds"] = times["views_epoch_seconds"][-1]
    ratio = (
        times["augment_epoch_seconds"][-1] / times["views_epoch_seconds"][-1]
    )
    result = {
        "benchmark": "views_speed",
        "samples": args.samples,
        "batch_size": batch,
        "precision": "mixed_bfloat16",
        "class": "n = 4, cifar10_fast_student",
        "teacher": "cifar10_fast_teacher() (64, 256, 256), untrained",
        **times,
        "augment_over_views": ratio,
        "note": "last epoch of each timed (the first includes tracing); "
        "the machine is shared: see load_average",
        "load_average": list(__import__("os").getloadavg()),
        **environment(),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"student epoch over {args.samples} images: augment= "
        f"{times['augment_epoch_seconds'][-1]:.1f} s, views "
        f"{times['views_epoch_seconds'][-1]:.1f} s ({ratio:.1f}x); a view "
        f"costs {times['views_build_seconds_per_view']:.1f} s once"
    )
    return result


if __name__ == "__main__":
    main()
