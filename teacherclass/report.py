"""Compression reports: what the class of students costs against the teacher.

`measure(tc, x, y)` measures the teacher, each student, the head and the
composed model side by side on this machine: parameters, FLOPs, CPU
latency, accuracy, each student's regression error, and the size and
speed of exported artifacts. The result is a `CompressionReport`: a dict
(JSON-ready), a printed table, and figures (`save_figures`).

FLOPs are counted per sample from per-layer formulas, with a multiply-add
as 2 FLOPs (see `count_flops` for the layers covered); `macs` are the
multiply-adds alone (`count_macs`: the weight uses of Dense and
convolution layers, without biases, pooling or normalization).
The teacher's and the composed model's latencies are measured side by
side, in alternating rounds (`paired_latency`), so a load that comes and
goes on the machine weighs on both alike.
"""

import json
import os
import platform
from datetime import datetime
from datetime import timezone

import numpy as np

from teacherclass import latency as latency_lib
from teacherclass import validation
from teacherclass.figures import save_figures
from teacherclass.flops import count_flops
from teacherclass.flops import count_macs
from teacherclass.latency import model_latency
from teacherclass.latency import sample_inputs
from teacherclass.latency import time_call


class CompressionReport(dict):
    """Sizes, costs and accuracy of a teacher and its class of students.

    A dict that prints as a table. Keys always present:
    `teacher_params`, `student_params` (a list, one per student),
    `head_params`, `composed_params` (students + head, plus the shared
    input) and `compression_ratio` (teacher / composed parameters). When
    the students take a teacher layer's output
    (`TeacherClass(student_input=...)`), the composed model holds the
    teacher's layers up to it once, in front of the students:
    `shared_input_params` counts them. `measure` adds `models` (one
    entry per part: "teacher", "shared_input" (when there is one),
    "student_0", ..., "head", "composed", each with `params`, `flops`,
    `macs` (multiply-adds per sample), `latency_ms` per batch size,
    `litert_bytes` (`{"float": n, "int8": n}`, teacher and composed,
    with `measure(litert=True)`), and
    `accuracy` or `mse` when measured), `exports` (one entry per
    artifact: `path`, `format`, `size_bytes`, `latency_ms`, `accuracy`),
    `flops_ratio`, `macs_ratio`, `latency_ratio` (teacher / composed per
    batch size), `batch_sizes`, `machine`, `versions` and `date`. Flat
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
    def from_counts(cls, teacher, students, head, shared_input=0):
        """Builds a report from parameter counts.

        Args:
            teacher: int, the teacher's parameters.
            students: list of ints, each student's parameters.
            head: int, the head's parameters.
            shared_input: int, the parameters of the teacher's layers the
                composed model holds in front of its students (under
                `student_input`; frozen, but part of the model). 0: none,
                and no `shared_input_params` key.

        Returns:
            A `CompressionReport`.
        """
        composed = sum(students) + head + shared_input
        report = cls(
            teacher_params=int(teacher),
            student_params=[int(s) for s in students],
            head_params=int(head),
            composed_params=int(composed),
            compression_ratio=float(teacher) / composed,
        )
        if shared_input:
            report["shared_input_params"] = int(shared_input)
        return report

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
        if "shared_input_params" in self:
            names.append("shared_input")
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
        if has("macs"):
            columns.append(("MACs", lambda m: _si(m.get("macs"))))
        for b in batch_sizes:
            columns.append(
                (f"ms@{b}", lambda m, b=b: _num(_latency(m, b), 1, 3))
            )
        if has("litert_bytes"):
            for kind in ("float", "int8"):
                columns.append(
                    (
                        f"LiteRT {kind}",
                        lambda m, k=kind: _size(m.get("litert_bytes"), k),
                    )
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
        if self.get("macs_ratio"):
            lines.append(f"MACs ratio: {self['macs_ratio']:.2f}x")
        for b, ratio in (self.get("latency_ratio") or {}).items():
            word = "faster" if ratio >= 1 else "slower"
            lines.append(
                f"latency at batch {b}: composed {word} "
                f"({ratio:.2f}x the teacher's speed)"
            )
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


def _size(sizes, kind):
    if not sizes or sizes.get(kind) is None:
        return "-"
    return _bytes(sizes[kind])


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
# Measuring a TeacherClass
# ----------------------------------------------------------------------


def accuracy(y_pred, y, ignore_class=None, threshold=0.5, multi_label=False):
    """Classification accuracy of predictions against labels.

    Args:
        y_pred: scores `(..., classes)`: the argmax is the prediction; with
            one output, a score above `threshold`.
        y: integer labels `(...)` or `(..., 1)`, or one-hot `(..., classes)`.
        ignore_class: int or None, a label value left out of the score
            (a segmentation's void, as the teacher's loss ignores it).
        threshold: float, the decision threshold of one output: 0.5 for a
            probability, 0.0 for a logit (see `decision_threshold`).
        multi_label: bool, the outputs are independent units (a
            multi-label sigmoid, `teacher.sigmoid_output`) and `y` their
            0/1 labels `(..., classes)`: each unit is a decision at
            `threshold`, and the score is the fraction of units right
            (Keras' `binary_accuracy`), not an argmax.

    Returns:
        A float in [0, 1] (NaN when every label is `ignore_class`).

    Raises:
        ValueError: if `multi_label` and `y` is not shaped as `y_pred`.

    Example:

    >>> accuracy(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 0]))
    0.5
    >>> accuracy(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 5]), 5)
    1.0
    >>> accuracy(np.array([[0.9, 0.7], [0.2, 0.1]]),
    ...          np.array([[1, 1], [0, 1]]), multi_label=True)
    0.75
    """
    y_pred, y = np.asarray(y_pred), np.asarray(y)
    if multi_label:
        if y.shape != y_pred.shape:
            raise ValueError(
                "Multi-label accuracy needs one 0/1 label per output unit, "
                f"shaped as the predictions {y_pred.shape}. Received: y "
                f"with shape {y.shape}"
            )
        return float(np.mean((y_pred > threshold) == (y > 0.5)))
    if y_pred.shape[-1] == 1:
        pred = (y_pred[..., 0] > threshold).astype("int64")
    else:
        pred = y_pred.argmax(-1)
    if y.shape == y_pred.shape and y_pred.shape[-1] > 1:
        y = y.argmax(-1)
    y = y.reshape(pred.shape)
    if ignore_class is not None:
        keep = y != ignore_class
        pred, y = pred[keep], y[keep]
        if not y.size:
            return float("nan")
    return float(np.mean(pred == y))


def _parts(tc):
    """The measured parts: teacher, the shared input (if any), each
    student, head (the composed model is added by `measure`)."""
    import keras

    parts = {"teacher": tc.teacher}
    shared = tc.cut.preprocessor()
    if shared is not None:
        parts["shared_input"] = shared
    for i, tower in enumerate(tc.students):
        inputs = tc.cut.student_inputs()
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

    from teacherclass.version import __version__

    return {
        "teacherclass": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def decision_threshold(model):
    """The decision threshold of a one-output model: 0.5 when it ends in
    a sigmoid (a probability), else 0.0 (a logit, as
    `teacher.default_compile_args` trains it)."""
    from teacherclass import teacher as teacher_lib

    ending = teacher_lib.activation_name(teacher_lib.final_layer(model))
    return 0.5 if ending == "sigmoid" else 0.0


def measure_export(
    path,
    x=None,
    y=None,
    batch_sizes=(1, 64),
    repeats=20,
    ignore_class=None,
    threshold=0.5,
    multi_label=False,
):
    """Size, latency and accuracy of one exported artifact.

    Args:
        path: a SavedModel directory, a ".tflite" file or a ".keras" file.
        x: optional inputs for accuracy (with `y`) and for latency.
        y: optional labels.
        batch_sizes: batch sizes to time.
        repeats: int, timed calls per batch size.
        ignore_class: int or None, a label value left out of the accuracy
            (see `accuracy`).
        threshold: float, the decision threshold of a one-output model
            (`decision_threshold` of the model exported; see `accuracy`),
            or of each unit with `multi_label`.
        multi_label: bool, score the outputs per unit, for a multi-label
            model's 0/1 labels shaped as its outputs (see `accuracy`).

    Returns:
        A dict with `path`, `format`, `size_bytes`, `latency_ms`,
        `accuracy` (None without `x` and `y`) and `num_threads` (a LiteRT
        artifact runs on as many threads as TensorFlow runs the Keras
        model on, `export.tensorflow_threads()`, so that their latencies
        compare; None for the other formats).
    """
    from teacherclass import export as export_lib

    artifact = export_lib.load(
        path, num_threads=export_lib.tensorflow_threads()
    )
    entry = {
        "path": os.fspath(path),
        "format": artifact.format,
        "size_bytes": export_lib.size_on_disk(path),
        "latency_ms": {},
        "accuracy": None,
        "num_threads": artifact.num_threads,
    }
    specs = artifact.input_specs()
    for b in validation.check_batch_sizes(batch_sizes):
        batch = sample_inputs(specs, b)
        entry["latency_ms"][str(b)] = time_call(artifact, batch, repeats)
    if x is not None and y is not None:
        entry["accuracy"] = accuracy(
            artifact.predict(x),
            y,
            ignore_class,
            threshold,
            multi_label=multi_label,
        )
    return entry


def paired_latency(
    models,
    batch_sizes=(1, 64),
    repeats=20,
    warmup=3,
    sequence_length=latency_lib.SEQUENCE_LENGTH,
):
    """CPU latency of several models measured side by side.

    For each batch size every model's inference call is traced and warmed
    up, then the models are timed in alternating rounds (one call of
    each per round, `repeats` rounds): a load that comes and goes on the
    machine weighs on all of them alike. The median per model is kept.
    Each model is called on random inputs in the structure of its inputs
    (a dict for a dict-input model), as `latency.model_latency` does.

    Args:
        models: a dict `{name: built keras.Model}`.
        batch_sizes: the batch sizes to time.
        repeats: int, rounds (timed calls per model and batch size).
        warmup: int, untimed calls of each model first (at least one
            runs: it traces the call).
        sequence_length: int, the length a variable-length input is
            timed at (see `latency.model_latency`).

    Returns:
        A dict `{name: {str(batch_size): milliseconds}}`.

    Raises:
        ValueError: if `batch_sizes` holds a non-positive or non-integer
            size, `repeats` is below 1 or `warmup` below 0.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> t = paired_latency({"a": m, "b": m}, batch_sizes=(1,), repeats=2)
    >>> sorted(t), sorted(t["a"])
    (['a', 'b'], ['1'])
    """
    import statistics
    import time

    import tensorflow as tf

    batch_sizes = validation.check_batch_sizes(batch_sizes)
    repeats = validation.check_int("repeats", repeats)
    warmup = validation.check_int("warmup", warmup, minimum=0)
    result = {name: {} for name in models}
    calls = {
        name: tf.function(lambda x, m=model: m(x, training=False))
        for name, model in models.items()
    }
    with tf.device("/CPU:0"):
        for b in batch_sizes:
            batches = {
                name: latency_lib.pack_inputs(
                    model,
                    sample_inputs(
                        latency_lib.input_specs(model, sequence_length), b
                    ),
                )
                for name, model in models.items()
            }
            for name, call in calls.items():
                for _ in range(max(1, warmup)):
                    latency_lib.to_numpy(call(batches[name]))
            times = {name: [] for name in models}
            for _ in range(repeats):
                for name, call in calls.items():
                    start = time.perf_counter()
                    latency_lib.to_numpy(call(batches[name]))
                    times[name].append(time.perf_counter() - start)
            for name in models:
                result[name][str(b)] = 1000 * statistics.median(times[name])
    return result


def litert_sizes(model, representative_data=None, sequence_length=None):
    """Sizes in bytes of a model's LiteRT files, float32 and int8.

    Exports `model` twice into a temporary directory (seconds each), with
    `export.export(format="litert")` and `quantize="int8"`, and removes
    the files.

    Args:
        model: a built `keras.Model`.
        representative_data: inputs to calibrate the int8 ranges; default
            64 random samples shaped like the model's input.
        sequence_length: None, or an int: the length of the default
            calibration samples on a variable-length input
            (`keras.Input((None,))`); with None, such an input raises a
            `ValueError` when `representative_data` is not given.

    Returns:
        `{"float": bytes, "int8": bytes}`.
    """
    import tempfile

    from teacherclass import export as export_lib
    from teacherclass.latency import input_specs

    if representative_data is None:
        representative_data = sample_inputs(
            input_specs(model, sequence_length), 64
        )
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, quantize in (("float", None), ("int8", "int8")):
            path = os.path.join(tmp, f"{kind}.tflite")
            export_lib.export(
                model,
                path,
                format="litert",
                quantize=quantize,
                representative_data=(representative_data if quantize else None),
            )
            sizes[kind] = int(os.path.getsize(path))
    return sizes


def measure(
    tc,
    x=None,
    y=None,
    batch_sizes=(1, 64),
    exports=None,
    repeats=20,
    warmup=3,
    composed=None,
    litert=False,
    sequence_length=latency_lib.SEQUENCE_LENGTH,
):
    """Measures the teacher, each student, the head and the composed model.

    Everything is measured in this process, side by side, on the CPU:
    parameters, FLOPs per sample (`count_flops`), multiply-adds per
    sample (`macs`, `count_macs`: the multiply-add part of the FLOPs),
    the median latency of the inference call at each batch size
    (`model_latency`; the teacher and the composed model in alternating
    rounds, `paired_latency`), optionally the LiteRT file sizes of the
    teacher and the composed model (`litert_bytes`), accuracy on
    `(x, y)` for the teacher and the composed model, each student's mean
    squared error against its chunk of the teacher's representation on `x`,
    and, for each export, its size on disk, latency and accuracy.

    Args:
        tc: a `TeacherClass` whose students are trained.
        x: optional inputs (a NumPy array) for accuracy and student errors.
        y: optional labels for accuracy. Labels equal to the teacher's
            loss `ignore_class` (a segmentation's void) are left out. A
            multi-label teacher's (`teacher.sigmoid_output`, 0/1 labels
            shaped as its outputs) are scored per unit (`accuracy`'s
            `multi_label`).
        batch_sizes: batch sizes to time.
        exports: optional exported artifacts: a dict `{name: path}` or a
            list of paths (named by file name). SavedModel directories,
            ".tflite" and ".keras" files of the teacher or the composed
            model, scored as the composed model is (its decision
            threshold; per unit for a multi-label teacher).
        repeats: int, timed calls per model and batch size.
        warmup: int, untimed calls first.
        composed: the composed model if already built (else
            `tc.compose()` builds it).
        litert: bool, also export the teacher and the composed model to
            LiteRT, float and int8, and record the files' sizes as
            `litert_bytes` (seconds per model; `x` calibrates int8).
        sequence_length: int, the length a variable-length input
            (`keras.Input((None,))`) is timed and counted (FLOPs, MACs,
            LiteRT calibration without `x`) at; recorded as the
            report's `sequence_length` when the teacher has one.

    Returns:
        A `CompressionReport` with `models` and `exports` filled in.

    Raises:
        ValueError: on non-positive `batch_sizes`, `repeats` below 1 or
            `warmup` below 0, or `y` without `x`, of another length or
            shape, or with classes the teacher does not output
            (`validation.check_scoring_labels`).

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
    batch_sizes = validation.check_batch_sizes(batch_sizes)
    repeats = validation.check_int("repeats", repeats)
    warmup = validation.check_int("warmup", warmup, minimum=0)
    from teacherclass import teacher as teacher_lib  # Keras: on first use

    ignore_class = teacher_lib.ignore_class(tc.teacher)
    validation.check_scoring_labels(
        x, y, tc.teacher.outputs[0].shape[1:], ignore_class
    )
    # A multi-label sigmoid teacher's 0/1 labels, one per unit: scored
    # per unit, as Keras' binary accuracy (an argmax would be wrong).
    output_shape = tuple(tc.teacher.outputs[0].shape[1:])
    multi_label = (
        y is not None
        and output_shape[-1] not in (None, 1)
        and np.shape(y)[1:] == output_shape
        and teacher_lib.sigmoid_output(tc.teacher)
    )
    composed = composed if composed is not None else tc.compose()
    parts = _parts(tc)
    parts["composed"] = composed
    models = {}
    paired = paired_latency(
        {"teacher": parts["teacher"], "composed": composed},
        batch_sizes,
        repeats,
        warmup,
        sequence_length,
    )
    for name, model in parts.items():
        models[name] = {
            "params": int(model.count_params()),
            "flops": count_flops(model, sequence_length=sequence_length),
            "macs": count_macs(model, sequence_length=sequence_length),
            "latency_ms": paired.get(name)
            or model_latency(
                model, batch_sizes, repeats, warmup, sequence_length
            ),
        }
    if litert:
        for name in ("teacher", "composed"):
            models[name]["litert_bytes"] = litert_sizes(
                parts[name],
                None if x is None else np.asarray(x)[:64],
                sequence_length,
            )
    if x is not None:
        errors = tc.evaluate_students(x)
        for i in range(tc.num_students):
            models[f"student_{i}"]["mse"] = float(errors[f"student_{i}_loss"])
        if y is not None:
            for name in ("teacher", "composed"):
                pred = parts[name].predict(x, verbose=0, batch_size=256)
                models[name]["accuracy"] = accuracy(
                    pred,
                    y,
                    ignore_class,
                    decision_threshold(parts[name]),
                    multi_label=multi_label,
                )
    report = CompressionReport.from_counts(
        teacher=models["teacher"]["params"],
        students=[
            models[f"student_{i}"]["params"] for i in range(len(tc.chunks))
        ],
        head=models["head"]["params"],
        shared_input=models.get("shared_input", {}).get("params", 0),
    )
    report["models"] = models
    report["flops_ratio"] = models["teacher"]["flops"] / max(
        1, models["composed"]["flops"]
    )
    report["macs_ratio"] = models["teacher"]["macs"] / max(
        1, models["composed"]["macs"]
    )
    report["latency_ratio"] = {
        str(b): models["teacher"]["latency_ms"][str(b)]
        / max(1e-9, models["composed"]["latency_ms"][str(b)])
        for b in batch_sizes
    }
    report["batch_sizes"] = list(batch_sizes)
    if any(None in t.shape[1:] for t in tc.teacher.inputs):
        report["sequence_length"] = sequence_length
    if exports:
        if not isinstance(exports, dict):
            exports = {os.path.basename(os.fspath(p)): p for p in exports}
        # Scored as the composed model is: the exports are of this
        # class's models, which end in the teacher's head.
        report["exports"] = {
            name: measure_export(
                path,
                x,
                y,
                batch_sizes,
                repeats,
                ignore_class,
                threshold=decision_threshold(composed),
                multi_label=multi_label,
            )
            for name, path in exports.items()
        }
    report["machine"] = _machine()
    report["versions"] = _versions()
    report["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return report
