"""Compression reports: what the class of students costs against the teacher.

`measure(tc, x, y)` measures the teacher, each student, the head and the
composed model side by side on this machine: parameters, FLOPs, CPU
latency, accuracy, each student's regression error, and the size and
speed of exported artifacts. The result is a `CompressionReport`: a dict
(JSON-ready), a printed table, and figures (`save_figures`).

FLOPs are counted per sample from per-layer formulas, with a multiply-add
as 2 FLOPs (see `count_flops` for the layers covered).
"""

import json
import os
import platform
import statistics
import time
from datetime import datetime
from datetime import timezone

import numpy as np

_PLOTS_EXTRA = "pip install teacherclass[plots]"


class CompressionReport(dict):
    """Sizes, costs and accuracy of a teacher and its class of students.

    A dict that prints as a table. Keys always present:
    `teacher_params`, `student_params` (a list, one per student),
    `head_params`, `composed_params` (students + head) and
    `compression_ratio` (teacher / composed parameters). `measure` adds
    `models` (one entry per part: "teacher", "student_0", ..., "head",
    "composed", each with `params`, `flops`, `latency_ms` per batch size,
    and `accuracy` or `mse` when measured), `exports` (one entry per
    artifact: `path`, `format`, `size_bytes`, `latency_ms`, `accuracy`),
    `flops_ratio`, `batch_sizes`, `machine`, `versions` and `date`. Flat
    keys added by the caller, such as `teacher_accuracy`, print in the
    table's last column.

    Example:

    >>> r = CompressionReport.from_counts(teacher=1000, students=[40, 40],
    ...                                   head=20)
    >>> r["compression_ratio"]
    10.0
    >>> print(r)
    model      params
    teacher     1,000
    student 0      40
    student 1      40
    head           20
    composed      100
    compression ratio: 10.0x
    """

    @classmethod
    def from_counts(cls, teacher, students, head):
        """Builds a report from parameter counts.

        Args:
            teacher: int, the teacher's parameters.
            students: list of ints, each student's parameters.
            head: int, the head's parameters.

        Returns:
            A `CompressionReport`.
        """
        composed = sum(students) + head
        return cls(
            teacher_params=int(teacher),
            student_params=[int(s) for s in students],
            head_params=int(head),
            composed_params=int(composed),
            compression_ratio=float(teacher) / composed,
        )

    @classmethod
    def load(cls, path):
        """Reads a report written by `save`.

        Args:
            path: a JSON file.

        Returns:
            A `CompressionReport`.
        """
        with open(path) as f:
            return cls(json.load(f))

    def save(self, path):
        """Writes the report as JSON.

        Args:
            path: the JSON file to write.

        Returns:
            `path`.
        """
        with open(path, "w") as f:
            json.dump(self, f, indent=1)
        return path

    def _names(self):
        names = ["teacher"]
        names += [f"student_{i}" for i in range(len(self["student_params"]))]
        return names + ["head", "composed"]

    def _params(self, name):
        if name.startswith("student_"):
            return self["student_params"][int(name.split("_")[1])]
        return self[f"{name}_params"]

    def rows(self):
        """The table's rows as `(name, parameters, extra)` tuples."""
        return [
            (
                name.replace("_", " "),
                self._params(name),
                self._extra(name) if name != "head" else "",
            )
            for name in self._names()
        ]

    def _extra(self, prefix):
        parts = []
        for key, value in self.items():
            if key.startswith(prefix + "_") and not key.endswith("_params"):
                name = key[len(prefix) + 1 :]
                shown = f"{value:.4f}" if isinstance(value, float) else value
                parts.append(f"{name}={shown}")
        return ", ".join(parts)

    def _columns(self):
        """(title, function of a model's entry -> text) for present data."""
        models = self.get("models", {})
        batch_sizes = self.get("batch_sizes", [])
        columns = [("params", lambda m: f"{m['params']:,}")]

        def has(key):
            return any(m.get(key) is not None for m in models.values())

        if has("flops"):
            columns.append(("FLOPs", lambda m: _si(m.get("flops"))))
        for b in batch_sizes:
            columns.append(
                (f"ms@{b}", lambda m, b=b: _num(_latency(m, b), 1, 3))
            )
        if has("accuracy"):
            columns.append(("accuracy", lambda m: _num(m.get("accuracy"))))
        if has("mse"):
            columns.append(("mse", lambda m: _num(m.get("mse"))))
        return columns

    def __str__(self):
        models = self.get("models") or {
            name: {"params": self._params(name)} for name in self._names()
        }
        columns = self._columns()
        rows = [["model"] + [c[0] for c in columns] + ["measured"]]
        for name in self._names():
            extra = self._extra(name) if name != "head" else ""
            entry = models.get(name, {"params": self._params(name)})
            cells = [fn(entry) for _, fn in columns]
            rows.append([name.replace("_", " ")] + cells + [extra])
        if not any(r[-1] for r in rows[1:]):
            rows = [r[:-1] for r in rows]
        lines = _table(rows)
        lines.append(f"compression ratio: {self['compression_ratio']:.1f}x")
        if self.get("flops_ratio"):
            lines.append(f"FLOPs ratio: {self['flops_ratio']:.1f}x")
        exports = self.get("exports") or {}
        if exports:
            rows = [["export", "format", "size"]]
            rows[0] += [f"ms@{b}" for b in self.get("batch_sizes", [])]
            rows[0] += ["accuracy"]
            for name, e in exports.items():
                row = [name, e["format"], _bytes(e["size_bytes"])]
                row += [
                    _num(_latency(e, b), 1, 3)
                    for b in self.get("batch_sizes", [])
                ]
                rows.append(row + [_num(e.get("accuracy"))])
            lines += [""] + _table(rows)
        if self.get("machine"):
            m = self["machine"]
            lines.append(
                f"measured on {m.get('processor') or m.get('platform')} "
                f"({m.get('cpu_count')} CPUs), {self.get('date', '')}"
            )
        return "\n".join(lines)

    def save_figures(self, directory, histories=None):
        """Saves this report's figures as PNG files; see `save_figures`."""
        return save_figures(self, directory, histories=histories)


def _latency(entry, batch_size):
    return (entry.get("latency_ms") or {}).get(str(batch_size))


def _si(value):
    if value is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}"
    return str(int(value))


def _num(value, scale=1.0, digits=4):
    if value is None:
        return "-"
    return f"{value * scale:.{digits}f}"


def _bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [f"{row[0]:<{widths[0]}}"]
        cells += [f"{c:>{w}}" for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return lines


# ----------------------------------------------------------------------
# FLOPs
# ----------------------------------------------------------------------


def _prod(values):
    return int(np.prod([int(v) for v in values])) if len(values) else 1


def _layer_flops(layer, in_shapes, out_shape):
    """FLOPs of one call of a leaf layer on one sample (batch axis = 1)."""
    import keras

    layers = keras.layers
    in_shape = in_shapes[0]
    out_elems = _prod(out_shape[1:])
    bias = out_elems if getattr(layer, "use_bias", False) else 0
    if isinstance(layer, layers.Dense):
        return 2 * in_shape[-1] * out_elems + bias
    if isinstance(layer, layers.EinsumDense):
        # Every output element reads the kernel's contracted axes.
        contracted = layer.kernel.size // max(
            1, _prod(out_shape[1:]) // max(1, _prod(in_shape[1:-1]))
        )
        return 2 * out_elems * contracted + bias
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        k = _prod(layer.kernel_size)
        mid = _prod(out_shape[1:-1]) * in_shape[-1] * layer.depth_multiplier
        return 2 * mid * k + 2 * mid * out_shape[-1] + bias
    if isinstance(layer, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        return 2 * out_elems * _prod(layer.kernel_size) + bias
    transposed = (
        layers.Conv1DTranspose,
        layers.Conv2DTranspose,
        layers.Conv3DTranspose,
    )
    if isinstance(layer, transposed):
        k = _prod(layer.kernel_size)
        return 2 * _prod(in_shape[1:]) * k * out_shape[-1] + bias
    if isinstance(layer, layers.Conv1D | layers.Conv2D | layers.Conv3D):
        groups = getattr(layer, "groups", 1)
        per_output = _prod(layer.kernel_size) * in_shape[-1] // groups
        return 2 * out_elems * per_output + bias
    pooling = (
        layers.MaxPooling1D,
        layers.MaxPooling2D,
        layers.MaxPooling3D,
        layers.AveragePooling1D,
        layers.AveragePooling2D,
        layers.AveragePooling3D,
    )
    if isinstance(layer, pooling):
        return out_elems * _prod(layer.pool_size)
    global_pooling = (
        layers.GlobalMaxPooling1D,
        layers.GlobalMaxPooling2D,
        layers.GlobalMaxPooling3D,
        layers.GlobalAveragePooling1D,
        layers.GlobalAveragePooling2D,
        layers.GlobalAveragePooling3D,
    )
    if isinstance(layer, global_pooling):
        return _prod(in_shape[1:])
    if isinstance(layer, layers.BatchNormalization):
        return 2 * out_elems  # a scale and a shift at inference
    merging = (layers.Add, layers.Subtract, layers.Multiply, layers.Average)
    if isinstance(layer, merging):
        return (len(in_shapes) - 1) * out_elems
    return 0  # lookups (Embedding), reshapes, dropout, activations


def _shapes(value):
    import keras

    flat = keras.tree.flatten(value)
    return [tuple(keras.ops.shape(t)) for t in flat if hasattr(t, "shape")]


def count_flops(model, per_layer=False):
    """FLOPs of one forward pass on one sample, from per-layer formulas.

    The model runs once on a batch of one zero sample while every layer
    call is recorded (nested layers included, e.g. inside towers), then
    each call is costed. A multiply-add counts 2 FLOPs:

    - `Dense`, `EinsumDense`: 2 x inputs x outputs per position, plus one
      per output for the bias.
    - `Conv1D/2D/3D`: 2 x kernel size x input channels / groups per output
      element, plus the bias; depthwise, separable and transposed
      convolutions by their own formulas.
    - pooling: one per window element per output; global pooling: one per
      input element.
    - `BatchNormalization`: 2 per element; `Add`, `Multiply`, ...: one per
      element per extra input.
    - not counted: activations, `Embedding` (a lookup), reshaping, dropout,
      clipping, and layers outside these families (their own arithmetic;
      their sublayers are counted).

    Args:
        model: a built `keras.Model` or layer with a known input shape.
        per_layer: bool, also return each counted call.

    Returns:
        An int, or `(total, [(layer_name, class_name, flops), ...])` with
        `per_layer=True`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> count_flops(model)  # 2 * 8 * 4 multiply-adds + 4 biases
    68
    """
    import keras

    records = []
    original = keras.layers.Layer.__call__

    def recording(self, *args, **kwargs):
        outputs = original(self, *args, **kwargs)
        inputs = args[0] if args else next(iter(kwargs.values()), None)
        records.append((self, _shapes(inputs), _shapes(outputs)))
        return outputs

    sample = _zeros(_input_specs(model), batch_size=1)
    keras.layers.Layer.__call__ = recording
    try:
        model(sample, training=False)
    finally:
        keras.layers.Layer.__call__ = original
    counted = []
    for layer, in_shapes, out_shapes in records:
        if not in_shapes or not out_shapes:
            continue
        flops = _layer_flops(layer, in_shapes, out_shapes[0])
        if flops:
            counted.append((layer.name, type(layer).__name__, int(flops)))
    total = sum(f for _, _, f in counted)
    return (total, counted) if per_layer else total


# ----------------------------------------------------------------------
# Latency
# ----------------------------------------------------------------------


def _input_specs(model):
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            "The model must be built with known inputs (a functional or "
            f"Sequential model). Received: model={model!r}"
        )
    return [(tuple(t.shape[1:]), t.dtype) for t in inputs]


def _zeros(specs, batch_size):
    arrays = [np.zeros((batch_size, *shape), dtype=dt) for shape, dt in specs]
    return arrays[0] if len(arrays) == 1 else arrays


def _sample(specs, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    arrays = []
    for shape, dtype in specs:
        if np.dtype(dtype).kind in "iu":
            # Token ids: 1 is in every vocabulary and is not padding.
            arrays.append(np.ones((batch_size, *shape), dtype=dtype))
        else:
            arrays.append(rng.random((batch_size, *shape)).astype(dtype))
    return arrays[0] if len(arrays) == 1 else arrays


def time_call(fn, x, repeats=20, warmup=3):
    """Median wall time of `fn(x)` in milliseconds, after `warmup` calls.

    Args:
        fn: a callable; its result is converted to NumPy, so asynchronous
            work is finished inside the timing.
        x: its argument.
        repeats: int, timed calls.
        warmup: int, untimed calls first (tracing, allocation).

    Returns:
        A float, milliseconds.

    Example:

    >>> time_call(np.sum, np.ones(10), repeats=3) >= 0
    True
    """
    for _ in range(warmup):
        np.asarray(fn(x))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(fn(x))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def model_latency(model, batch_sizes=(1, 64), repeats=20, warmup=3):
    """CPU latency of a Keras model's compiled inference call per batch.

    The model's call runs in a `tf.function` (as `predict` does, without
    its per-call overhead) on random inputs of each batch size.

    Args:
        model: a built `keras.Model` with known inputs.
        batch_sizes: the batch sizes to time.
        repeats: int, timed calls per batch size (the median is kept).
        warmup: int, untimed calls first.

    Returns:
        A dict `{str(batch_size): milliseconds}`.
    """
    import tensorflow as tf

    specs = _input_specs(model)
    call = tf.function(lambda x: model(x, training=False))
    with tf.device("/CPU:0"):
        return {
            str(b): time_call(call, _sample(specs, b), repeats, warmup)
            for b in batch_sizes
        }


# ----------------------------------------------------------------------
# Measuring a TeacherClass
# ----------------------------------------------------------------------


def accuracy(y_pred, y):
    """Classification accuracy of predictions against labels.

    Args:
        y_pred: scores `(..., classes)`: the argmax is the prediction; with
            one output, a probability thresholded at 0.5.
        y: integer labels `(...)` or `(..., 1)`, or one-hot `(..., classes)`.

    Returns:
        A float in [0, 1].

    Example:

    >>> accuracy(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 0]))
    0.5
    """
    y_pred, y = np.asarray(y_pred), np.asarray(y)
    if y_pred.shape[-1] == 1:
        pred = (y_pred[..., 0] > 0.5).astype("int64")
    else:
        pred = y_pred.argmax(-1)
    if y.shape == y_pred.shape and y_pred.shape[-1] > 1:
        y = y.argmax(-1)
    y = y.reshape(pred.shape)
    return float(np.mean(pred == y))


def _parts(tc):
    """The measured parts: teacher, each student, head, composed."""
    import keras

    parts = {"teacher": tc.teacher}
    for i, tower in enumerate(tc.students):
        inputs = tc._input()
        parts[f"student_{i}"] = keras.Model(
            inputs, tower(inputs), name=f"student_{i}"
        )
    rep = tc.representation()
    rep_input = keras.Input(
        shape=tuple(rep.outputs[0].shape[1:]), name="representation"
    )
    parts["head"] = keras.Model(rep_input, tc.head(rep_input), name="head")
    return parts


def _machine():
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "devices": [d.name for d in tf.config.list_physical_devices()],
    }


def _versions():
    import keras
    import tensorflow as tf

    import teacherclass

    return {
        "teacherclass": teacherclass.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _check_batch_sizes(batch_sizes):
    batch_sizes = tuple(batch_sizes)
    if not all(
        isinstance(b, int) and not isinstance(b, bool) and b > 0
        for b in batch_sizes
    ):
        raise ValueError(
            "`batch_sizes` must hold positive integers. "
            f"Received: batch_sizes={batch_sizes!r}"
        )
    return batch_sizes


def measure_export(path, x=None, y=None, batch_sizes=(1, 64), repeats=20):
    """Size, latency and accuracy of one exported artifact.

    Args:
        path: a SavedModel directory, a ".tflite" file or a ".keras" file.
        x: optional inputs for accuracy (with `y`) and for latency.
        y: optional labels.
        batch_sizes: batch sizes to time.
        repeats: int, timed calls per batch size.

    Returns:
        A dict with `path`, `format`, `size_bytes`, `latency_ms` and
        `accuracy` (None without `x` and `y`).
    """
    from teacherclass import export as export_lib

    artifact = export_lib.load(path)
    entry = {
        "path": os.fspath(path),
        "format": artifact.format,
        "size_bytes": export_lib.size_on_disk(path),
        "latency_ms": {},
        "accuracy": None,
    }
    specs = artifact.input_specs()
    for b in _check_batch_sizes(batch_sizes):
        sample = _sample(specs, b)
        entry["latency_ms"][str(b)] = time_call(artifact, sample, repeats)
    if x is not None and y is not None:
        entry["accuracy"] = accuracy(artifact.predict(x), y)
    return entry


def measure(
    tc,
    x=None,
    y=None,
    batch_sizes=(1, 64),
    exports=None,
    repeats=20,
    warmup=3,
    composed=None,
):
    """Measures the teacher, each student, the head and the composed model.

    Everything is measured in this process, side by side, on the CPU:
    parameters, FLOPs per sample (`count_flops`), the median latency of
    the inference call at each batch size (`model_latency`), accuracy on
    `(x, y)` for the teacher and the composed model, each student's mean
    squared error against its chunk of the teacher's representation on `x`,
    and, for each export, its size on disk, latency and accuracy.

    Args:
        tc: a `TeacherClass` whose students are trained.
        x: optional inputs (a NumPy array) for accuracy and student errors.
        y: optional labels for accuracy.
        batch_sizes: batch sizes to time.
        exports: optional exported artifacts: a dict `{name: path}` or a
            list of paths (named by file name). SavedModel directories,
            ".tflite" and ".keras" files.
        repeats: int, timed calls per model and batch size.
        warmup: int, untimed calls first.
        composed: the composed model if already built (else
            `tc.compose()` builds it).

    Returns:
        A `CompressionReport` with `models` and `exports` filled in.

    Raises:
        ValueError: on non-positive `batch_sizes`.

    Example:

    >>> import keras
    >>> from teacherclass import TeacherClass
    >>> teacher = keras.Sequential([
    ...     keras.Input((8,)),
    ...     keras.layers.Dense(16, activation="relu"),
    ...     keras.layers.Dense(3, activation="softmax"),
    ... ])
    >>> tc = TeacherClass(teacher, num_students=2)
    >>> x = np.random.rand(32, 8).astype("float32")
    >>> _ = tc.fit_students(x, epochs=1, verbose=0)
    >>> r = measure(tc, x, np.zeros(32, "int32"), batch_sizes=(1,),
    ...             repeats=2)
    >>> sorted(r["models"])
    ['composed', 'head', 'student_0', 'student_1', 'teacher']
    """
    batch_sizes = _check_batch_sizes(batch_sizes)
    composed = composed if composed is not None else tc.compose()
    parts = _parts(tc)
    parts["composed"] = composed
    models = {}
    for name, model in parts.items():
        models[name] = {
            "params": int(model.count_params()),
            "flops": count_flops(model),
            "latency_ms": model_latency(model, batch_sizes, repeats, warmup),
        }
    if x is not None:
        errors = tc.evaluate_students(x)
        for i in range(tc.num_students):
            models[f"student_{i}"]["mse"] = float(errors[f"student_{i}_loss"])
        if y is not None:
            for name in ("teacher", "composed"):
                pred = parts[name].predict(x, verbose=0, batch_size=256)
                models[name]["accuracy"] = accuracy(pred, y)
    report = CompressionReport.from_counts(
        teacher=models["teacher"]["params"],
        students=[
            models[f"student_{i}"]["params"] for i in range(len(tc.chunks))
        ],
        head=models["head"]["params"],
    )
    report["models"] = models
    report["flops_ratio"] = models["teacher"]["flops"] / max(
        1, models["composed"]["flops"]
    )
    report["batch_sizes"] = list(batch_sizes)
    if exports:
        if not isinstance(exports, dict):
            exports = {os.path.basename(os.fspath(p)): p for p in exports}
        report["exports"] = {
            name: measure_export(path, x, y, batch_sizes, repeats)
            for name, path in exports.items()
        }
    report["machine"] = _machine()
    report["versions"] = _versions()
    report["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return report


# ----------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            f"Figures need matplotlib: {_PLOTS_EXTRA}. ({e})"
        ) from e
    return plt


def _history_dict(history):
    return getattr(history, "history", history) or {}


def save_figures(report, directory, histories=None):
    """Saves a report's figures as PNG files in `directory`.

    - `accuracy_vs_params.png`: test accuracy against parameters (log
      scale) of the teacher, the composed model and each export (plotted
      at the composed model's parameters), when accuracy was measured.
    - `student_errors.png`: each student's regression error (MSE against
      its chunk), when measured.
    - `training_curves.png`: each metric of each `History`, one panel per
      history, when `histories` is given.

    Args:
        report: a `CompressionReport` (from `measure`).
        directory: where to write (created if missing).
        histories: optional dict `{title: History or history dict}`, e.g.
            `{"teacher": tc.fit_teacher(...), "students":
            tc.fit_students(...)}`.

    Returns:
        The list of written paths.

    Raises:
        ImportError: without matplotlib (`pip install
            teacherclass[plots]`).
    """
    plt = _pyplot()
    os.makedirs(directory, exist_ok=True)
    written = []
    models = report.get("models", {})

    points = [
        (name, m["params"], m["accuracy"])
        for name, m in models.items()
        if m.get("accuracy") is not None
    ]
    num_models = len(points)
    # Exported artifacts of the composed model (not .keras copies of the
    # models already plotted) sit at the composed model's parameters.
    points += [
        (name, report["composed_params"], e["accuracy"])
        for name, e in (report.get("exports") or {}).items()
        if e.get("accuracy") is not None and e.get("format") != "keras"
    ]
    if points:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        # Exports sit on the composed model's point: distinct hollow
        # markers of decreasing size keep every one of them visible.
        markers = "os^Dv<>ph"
        for k, (name, params, acc) in enumerate(points):
            hollow = k >= num_models
            ax.scatter(
                params,
                acc,
                s=max(25, 140 - 25 * k) if hollow else 45,
                marker=markers[k % len(markers)],
                facecolors="none" if hollow else f"C{k}",
                edgecolors=f"C{k}",
                linewidths=1.5,
                label=name,
            )
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("accuracy")
        accs = [p[2] for p in points]
        span = max(0.02, max(accs) - min(accs))
        ax.set_ylim(
            max(0.0, min(accs) - 0.3 * span),
            min(1.02, max(accs) + 0.3 * span),
        )
        params = [p[1] for p in points]
        ax.set_xlim(min(params) / 3, max(params) * 3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(
            f"accuracy vs parameters ({report['compression_ratio']:.1f}x "
            "smaller)"
        )
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, plt, directory, "accuracy_vs_params.png"))

    errors = [
        (name.replace("_", " "), m["mse"])
        for name, m in models.items()
        if m.get("mse") is not None
    ]
    if errors:
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        ax.bar([e[0] for e in errors], [e[1] for e in errors])
        ax.set_ylabel("MSE against its chunk")
        ax.set_title("each student's regression error")
        ax.grid(True, axis="y", alpha=0.3)
        written.append(_save(fig, plt, directory, "student_errors.png"))

    histories = {
        k: _history_dict(v)
        for k, v in (histories or {}).items()
        if _history_dict(v)
    }
    if histories:
        fig, axes = plt.subplots(
            1, len(histories), figsize=(5 * len(histories), 3.5), squeeze=False
        )
        for ax, (title, hist) in zip(axes[0], histories.items()):
            _plot_history(ax, title, hist)
        written.append(_save(fig, plt, directory, "training_curves.png"))
    return written


def _plot_history(ax, title, hist):
    """Losses on a log scale; other metrics on a second, linear axis."""
    losses = {k: v for k, v in hist.items() if k.endswith("loss")}
    others = {k: v for k, v in hist.items() if not k.endswith("loss")}
    lines = []
    twin = ax.twinx() if others else None
    series = [(ax, k, v) for k, v in losses.items()]
    series += [(twin, k, v) for k, v in others.items()]
    for color, (axis, key, values) in enumerate(series):
        style = "--" if key.startswith("val_") else "-"
        epochs = range(1, len(values) + 1)
        lines += axis.plot(epochs, values, style, color=f"C{color}", label=key)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if losses and all(v > 0 for vs in losses.values() for v in vs):
        ax.set_yscale("log")
    ax.set_ylabel("loss" if losses else "")
    if twin is not None:
        twin.set_ylabel(", ".join(others) if len(others) < 3 else "metrics")
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7)


def _save(fig, plt, directory, name):
    path = os.path.join(directory, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
