import json
import sys

import keras
import numpy as np
import pytest
from helpers import blobs
from helpers import mlp_teacher

from teacherclass import CompressionReport
from teacherclass import DenseTower
from teacherclass import TeacherClass
from teacherclass import export as export_lib
from teacherclass import flops
from teacherclass import report as report_lib
from teacherclass import teacher as teacher_lib


def test_flops_of_conv_pool_dense_by_hand():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", name="conv"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(5, name="dense"),
        ]
    )
    conv = 8 * 8 * 4 * (2 * 3 * 3 * 1) + 8 * 8 * 4  # MACs x 2 + biases
    pool = 4 * 4 * 4 * (2 * 2)  # one op per window element per output
    dense = 2 * 64 * 5 + 5
    total, per_layer = flops.count_flops(model, per_layer=True)
    assert per_layer == [
        ("conv", "Conv2D", conv),
        ("pool", "MaxPooling2D", pool),
        ("dense", "Dense", dense),
    ]
    assert total == conv + pool + dense == 5765


def test_flops_of_text_layers_by_hand():
    model = keras.Sequential(
        [
            keras.Input((10,), dtype="int32"),
            keras.layers.Embedding(50, 4),  # a lookup: 0 FLOPs
            keras.layers.Conv1D(6, 3, use_bias=False),  # 8 outputs
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2),
        ]
    )
    conv = 8 * 6 * (2 * 3 * 4)
    pool = 8 * 6
    dense = 2 * 6 * 2 + 2
    assert flops.count_flops(model) == conv + pool + dense


def test_flops_count_the_layers_inside_a_tower():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, DenseTower(3, hidden=(7,))(inputs))
    assert flops.count_flops(model) == (2 * 5 * 7 + 7) + (2 * 7 * 3 + 3)


@pytest.fixture
def trained():
    x, y = blobs(n=96)
    tc = TeacherClass(mlp_teacher(), num_students=2)
    tc.fit_teacher(x, y, epochs=2, verbose=0)
    tc.fit_students(x, epochs=2, verbose=0)
    return tc, x, y


def test_measure_fills_every_part(trained, tmp_path):
    tc, x, y = trained
    composed = tc.compose()
    path = export_lib.export(composed, tmp_path / "c.tflite", "litert")
    report = report_lib.measure(
        tc, x, y, batch_sizes=(1, 8), exports=[path], repeats=2
    )
    models = report["models"]
    assert list(models) == [
        "teacher",
        "student_0",
        "student_1",
        "head",
        "composed",
    ]
    counts = tc.report()
    for key in ("teacher_params", "student_params", "head_params"):
        assert report[key] == counts[key]
    assert models["composed"]["params"] == composed.count_params()
    assert models["composed"]["flops"] == sum(
        models[name]["flops"] for name in ("student_0", "student_1", "head")
    )
    for entry in models.values():
        assert set(entry["latency_ms"]) == {"1", "8"}
        assert all(v > 0 for v in entry["latency_ms"].values())
    for name in ("teacher", "composed"):
        assert 0 <= models[name]["accuracy"] <= 1
    for i in (0, 1):
        assert models[f"student_{i}"]["mse"] >= 0
    artifact = report["exports"]["c.tflite"]
    assert artifact["format"] == "litert"
    assert artifact["size_bytes"] == (tmp_path / "c.tflite").stat().st_size
    assert artifact["accuracy"] == pytest.approx(
        models["composed"]["accuracy"], abs=0.02
    )
    assert report["machine"]["cpu_count"] and report["versions"]["keras"]

    text = str(report)
    for column in ("params", "FLOPs", "ms@1", "ms@8", "accuracy", "mse"):
        assert column in text.splitlines()[0]
    assert "student 1" in text and "c.tflite" in text
    assert "compression ratio:" in text

    report.save(tmp_path / "report.json")
    loaded = CompressionReport.load(tmp_path / "report.json")
    assert loaded == json.loads(json.dumps(report)) and str(loaded) == text


def test_measure_without_data_has_no_accuracy(trained):
    tc, _, _ = trained
    report = report_lib.measure(tc, batch_sizes=(2,), repeats=1, warmup=1)
    assert "accuracy" not in report["models"]["composed"]
    assert "accuracy" not in str(report).splitlines()[0]


def test_bad_batch_sizes():
    tc = TeacherClass(mlp_teacher(), num_students=2)
    with pytest.raises(ValueError, match="Received: batch_sizes=\\(0,\\)"):
        report_lib.measure(tc, batch_sizes=(0,))
    # Echoed as received, not as its characters ('6', '4').
    with pytest.raises(ValueError, match="Received: batch_sizes='64'$"):
        report_lib.measure(tc, batch_sizes="64")


def test_count_report_prints_as_before():
    report = CompressionReport.from_counts(1000, [40, 40], 20)
    report["composed_accuracy"] = 0.5
    lines = str(report).splitlines()
    assert lines[0].split() == ["model", "params", "measured"]
    assert lines[-2].split() == ["composed", "100", "accuracy=0.5000"]
    assert lines[-1] == "compression ratio: 10.0x"
    assert report.rows()[1] == ("student 0", 40, "")


def test_a_shared_input_is_counted_in_the_composed_model():
    # Students on the output of a trained teacher layer, frozen: the
    # composed model holds that layer once, and the report counts it.
    keras.utils.set_random_seed(0)
    x, y = blobs(n=64, classes=3, shape=(8,))
    teacher = mlp_teacher()
    teacher_lib.freeze_through(teacher, "hidden")
    tc = TeacherClass(
        teacher,
        num_students=2,
        student=DenseTower(1, hidden=(4,)),
        student_input="hidden",
    )
    tc.fit_students(x, epochs=1, verbose=0)
    composed = tc.compose()
    shared = 8 * 32 + 32
    counted = tc.report()
    assert counted["shared_input_params"] == shared
    assert counted["composed_params"] == composed.count_params()
    assert counted["compression_ratio"] == pytest.approx(
        teacher.count_params() / composed.count_params()
    )
    assert str(counted).splitlines()[2].split() == ["shared", "input", "288"]
    measured = report_lib.measure(tc, x, y, batch_sizes=(2,), repeats=1)
    assert measured["shared_input_params"] == shared
    assert measured["models"]["shared_input"]["params"] == shared
    assert measured["composed_params"] == composed.count_params()
    assert measured["models"]["composed"]["macs"] == (
        measured["models"]["shared_input"]["macs"]
        + sum(measured["models"][f"student_{i}"]["macs"] for i in (0, 1))
        + measured["models"]["head"]["macs"]
    )
    # Without a shared input the report has no such row.
    assert "shared_input_params" not in CompressionReport.from_counts(
        1000, [40, 40], 20
    )


@pytest.mark.parametrize(
    "y_pred, y, expected",
    [
        ([[0.9, 0.1], [0.2, 0.8]], [0, 1], 1.0),
        ([[0.9, 0.1], [0.2, 0.8]], [[1, 0], [1, 0]], 0.5),
        ([[0.7], [0.2]], [[1], [1]], 0.5),
    ],
)
def test_accuracy(y_pred, y, expected):
    assert report_lib.accuracy(np.array(y_pred), np.array(y)) == expected


def _measured_report():
    report = CompressionReport.from_counts(1000, [40, 40], 20)
    report["models"] = {
        "teacher": {"params": 1000, "accuracy": 0.97},
        "student_0": {"params": 40, "mse": 0.1},
        "student_1": {"params": 40, "mse": 0.2},
        "head": {"params": 20},
        "composed": {"params": 100, "accuracy": 0.95},
    }
    report["exports"] = {
        "int8.tflite": {"format": "litert", "size_bytes": 10, "accuracy": 0.94}
    }
    return report


def test_figures_are_pngs(tmp_path):
    histories = {
        "teacher": {"loss": [1.0, 0.5], "accuracy": [0.5, 0.9]},
        "students": {"loss": [0.4, 0.2], "student_0_loss": [0.2, 0.1]},
    }
    paths = _measured_report().save_figures(tmp_path, histories=histories)
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == [
        "accuracy_vs_params.png",
        "student_errors.png",
        "training_curves.png",
    ]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_figures_need_the_plots_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        _measured_report().save_figures(tmp_path)


def _renderer(fig):
    # A closed figure lost its canvas: give it one to measure text.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_figures_name_test_mse_and_keep_legends_off_the_curves(
    tmp_path, monkeypatch
):
    from teacherclass import figures

    saved = {}
    original = figures._save

    def capture(fig, plt, directory, name):
        saved[name] = fig
        return original(fig, plt, directory, name)

    monkeypatch.setattr(figures, "_save", capture)
    histories = {
        "students": {
            "loss": [0.4, 0.2, 0.1],
            "student_0_loss": [0.2, 0.1, 0.05],
            "student_1_loss": [0.2, 0.1, 0.05],
        }
    }
    _measured_report().save_figures(tmp_path, histories=histories)
    (errors,) = saved["student_errors.png"].axes
    assert "test MSE" in errors.get_ylabel()
    assert "test MSE" in errors.get_title()
    fig = saved["training_curves.png"]
    renderer = _renderer(fig)
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    assert not _overlaps(legend, ax.get_window_extent(renderer))


def test_accuracy_vs_params_is_compact_and_its_labels_do_not_overlap(
    tmp_path,
):
    from teacherclass import figures

    series = []
    for group, shift in (("A", 0.0), ("B", 0.3), ("C", 0.5)):
        series.append(
            {
                "name": "class of n students",
                "group": group,
                "params": [80_000, 81_000, 79_000, 87_000],
                "accuracy": [97.7 + shift, 98.0 + shift, 97.2, 97.6],
                "std": [0.1, 0.1, 0.2, 0.2],
                "line": True,
                "labels": ["n = 1", "n = 2", "n = 4", "n = 8"],
            }
        )
        series.append(
            {
                "name": "teacher",
                "group": group,
                "params": [2_446_730],
                "accuracy": [98.8 + shift],
                "marker": "*",
            }
        )
    path = tmp_path / "plot.png"
    fig = figures.plot_accuracy_vs_params(
        series,
        str(path),
        title="t",
        groups={"A": "A: one", "B": "B: two", "C": "C: three"},
        target=(98.9, "target"),
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    renderer = _renderer(fig)
    axes = [a for a in fig.axes]
    assert len(axes) == 2  # the empty decade between is skipped
    legends = [c for a in axes for c in a.get_children()]
    legends = [c for c in legends if type(c).__name__ == "Legend"]
    legends += fig.legends
    texts = sorted(t.get_text() for lg in legends for t in lg.get_texts())
    # One entry per model kind and per group, not per pair.
    assert texts == ["A: one", "B: two", "C: three", "class of n students"] + [
        "target",
        "teacher",
    ]
    boxes = [a.get_window_extent(renderer) for a in axes]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(_overlaps(box, b) for b in boxes)
    from matplotlib.text import Text

    # The text's own box (an Annotation's box includes its leader line).
    labels = [
        Text.get_window_extent(t, renderer)
        for a in axes
        for t in a.texts
        if t.get_text().startswith("n = ")
    ]
    assert len(labels) == 12
    for i, a in enumerate(labels):
        assert not any(_overlaps(a, b) for b in labels[i + 1 :])


def test_measure_records_macs_paired_latency_and_litert():
    import keras
    import numpy as np

    from teacherclass import TeacherClass
    from teacherclass import report as report_lib

    teacher = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    tc = TeacherClass(teacher, num_students=2)
    x = np.random.rand(32, 8).astype("float32")
    tc.fit_students(x, epochs=1, verbose=0)
    r = report_lib.measure(tc, batch_sizes=(1,), repeats=2, litert=True)
    models = r["models"]
    assert models["teacher"]["macs"] == 8 * 16 + 16 * 3
    assert (
        models["composed"]["macs"]
        == sum(models[f"student_{i}"]["macs"] for i in range(2))
        + models["head"]["macs"]
    )
    assert set(models["teacher"]["litert_bytes"]) == {"float", "int8"}
    assert all(v > 0 for v in models["composed"]["litert_bytes"].values())
    assert set(r["latency_ratio"]) == {"1"}
    text = str(r)
    assert "MACs" in text and "LiteRT int8" in text and "latency" in text


def test_scoring_labels_may_hold_the_teachers_void():
    from teacherclass import validation

    x = np.zeros((2, 4, 4, 3))
    y = np.full((2, 4, 4), 11)  # CamVid's void beside 11 classes
    y[0, 0, 0] = 3
    validation.check_scoring_labels(x, y, (4, 4, 11), ignore_class=11)
    with pytest.raises(ValueError, match="max=11"):
        validation.check_scoring_labels(x, y, (4, 4, 11))
    # Only void: nothing to range-check.
    validation.check_scoring_labels(x, np.full((2, 4, 4), 11), (4, 4, 11), 11)


def test_accuracy_leaves_out_the_ignored_class():
    scores = np.zeros((1, 2, 2, 3))
    scores[..., 1] = 1.0  # predicts class 1 everywhere
    y = np.array([[[1, 3], [3, 0]]])  # 3: void
    assert report_lib.accuracy(scores, y) == 0.25
    assert report_lib.accuracy(scores, y, ignore_class=3) == 0.5
    assert np.isnan(report_lib.accuracy(scores, np.full((1, 2, 2), 3), 3))


def test_a_binary_teacher_of_logits_is_scored_at_threshold_zero(tmp_path):
    # `teacher.default_compile_args` trains one linear output as a logit
    # (BinaryAccuracy at 0); `measure` scored it (and exports of it) as a
    # probability at 0.5.
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    teacher = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    teacher.compile(**teacher_lib.default_compile_args(teacher))
    teacher.fit(x, y, epochs=20, verbose=0)
    expected = teacher.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    teacher.save(tmp_path / "teacher.keras")
    r = report_lib.measure(
        tc,
        x,
        y,
        batch_sizes=(1,),
        repeats=1,
        exports=[tmp_path / "teacher.keras"],
    )
    assert r["models"]["teacher"]["accuracy"] == pytest.approx(expected)
    exported = r["exports"]["teacher.keras"]["accuracy"]
    assert exported == pytest.approx(expected)
    assert report_lib.decision_threshold(teacher) == 0.0
    sigmoid = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(1, "sigmoid")]
    )
    assert report_lib.decision_threshold(sigmoid) == 0.5
    logits = np.array([[-0.2], [0.3]])
    assert report_lib.accuracy(logits, np.array([0, 1]), threshold=0.0) == 1.0


def test_latency_of_a_variable_length_input_and_several_outputs():
    """A token input of unknown length is timed at `sequence_length`;
    a model with outputs of different shapes is timed whole."""
    from teacherclass import latency

    tokens = keras.Input((None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(10, 4)(tokens)
    )
    text = keras.Model(tokens, keras.layers.Dense(2)(pooled))
    inputs = keras.Input((4,))
    two = keras.Model(
        inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(3)(inputs)]
    )
    for model in (text, two):
        timed = latency.model_latency(model, batch_sizes=(2,), repeats=2)
        assert list(timed) == ["2"] and timed["2"] > 0
    timed = report_lib.paired_latency({"text": text, "two": two}, (1,), 2)
    assert sorted(timed) == ["text", "two"]
    assert latency.input_specs(text, 7)[0][0] == (7,)
    with pytest.raises(ValueError, match=r"Received: input shapes \[\(None,"):
        latency.sample_inputs(latency.input_specs(text), 1)


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_flops_and_latency_of_a_dict_input_model(order):
    """A model built on a dict of inputs is counted and timed on a dict
    (the flat list of its inputs failed when the keys were not sorted)."""
    import warnings

    from teacherclass import latency

    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    inputs = {"a": a, "b": b} if order == "ab" else {"b": b, "a": a}
    joined = keras.layers.Concatenate()(
        [keras.layers.Dense(2)(a), keras.layers.Dense(2)(b)]
    )
    model = keras.Model(inputs, joined)
    with warnings.catch_warnings():
        # Keras warns of a structure that does not match its inputs'.
        warnings.simplefilter("error", UserWarning)
        assert flops.count_macs(model) == 4 * 2 + 3 * 2
        assert flops.count_flops(model) == 2 * (4 * 2 + 3 * 2) + 2 + 2
        timed = latency.model_latency(model, batch_sizes=(2,), repeats=1)
        paired = report_lib.paired_latency({"m": model}, (2,), repeats=1)
    assert list(timed) == ["2"] and timed["2"] > 0
    assert list(paired["m"]) == ["2"] and paired["m"]["2"] > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"repeats": 0}, "Received: repeats=0"),
        ({"warmup": -1}, "Received: warmup=-1"),
        ({"batch_sizes": (0,)}, r"Received: batch_sizes=\(0,\)"),
        ({"batch_sizes": "8"}, "Received: batch_sizes='8'"),
        ({"batch_sizes": (2, 1.5)}, r"Received: batch_sizes=\(2, 1.5\)"),
    ],
)
def test_latency_rejects_bad_arguments(kwargs, message):
    from teacherclass import latency

    model = _variable_length_text_teacher()
    with pytest.raises(ValueError, match=message):
        latency.model_latency(model, **{"batch_sizes": (1,), **kwargs})
    with pytest.raises(ValueError, match=message):  # measure's timing
        report_lib.paired_latency(
            {"m": model}, **{"batch_sizes": (1,), **kwargs}
        )
    if "batch_sizes" not in kwargs:
        with pytest.raises(ValueError, match=message):
            latency.time_call(np.sum, np.ones(3), **kwargs)


def test_latency_of_one_batch_size_given_as_an_int():
    from teacherclass import latency

    model = _variable_length_text_teacher()
    timed = latency.model_latency(model, batch_sizes=2, repeats=1, warmup=0)
    assert list(timed) == ["2"]


def _variable_length_text_teacher():
    tokens = keras.Input((None,), dtype="int32")
    h = keras.layers.Conv1D(6, 3, use_bias=False)(
        keras.layers.Embedding(50, 4)(tokens)
    )
    h = keras.layers.GlobalAveragePooling1D()(h)
    h = keras.layers.Dense(8, activation="relu", name="rep")(h)
    return keras.Model(tokens, keras.layers.Dense(3, "softmax")(h))


def test_flops_of_a_variable_length_input_at_sequence_length():
    model = _variable_length_text_teacher()
    conv = 8 * 6 * (2 * 3 * 4)  # 10 tokens, kernel 3: 8 outputs
    pool = 8 * 6
    dense = (2 * 6 * 8 + 8) + (2 * 8 * 3 + 3)
    assert flops.count_flops(model, sequence_length=10) == conv + pool + dense
    assert flops.count_macs(model, sequence_length=10) == 8 * 6 * 3 * 4 + 72
    for count in (flops.count_flops, flops.count_macs):
        with pytest.raises(ValueError, match="sequence_length"):
            count(model)


def test_measure_and_litert_sizes_of_a_variable_length_teacher(monkeypatch):
    """`measure` counts FLOPs (and calibrates LiteRT without `x`) at its
    `sequence_length`; it crashed on an unknown dimension."""
    teacher = _variable_length_text_teacher()
    tc = TeacherClass(teacher, feature_layer="rep", num_students=2)
    x = np.random.default_rng(0).integers(0, 50, (16, 10)).astype("int32")
    tc.fit_students(x, epochs=1, verbose=0)
    r = report_lib.measure(
        tc, batch_sizes=(1,), repeats=1, warmup=1, sequence_length=10
    )
    assert r["sequence_length"] == 10
    assert r["models"]["teacher"]["flops"] == flops.count_flops(
        teacher, sequence_length=10
    )
    calibration = []

    def export(model, path, representative_data=None, **kwargs):
        calibration.append(representative_data)
        open(path, "wb").close()

    monkeypatch.setattr(export_lib, "export", export)
    report_lib.litert_sizes(teacher, sequence_length=7)
    assert calibration[1].shape == (64, 7)


def test_measure_scores_a_multi_label_teacher_per_unit(tmp_path):
    # Four independent tags: the report's accuracy is the fraction of
    # tags right (Keras' binary accuracy), not an argmax over the tags;
    # the composed model's export is scored so too.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, :4] > 0).astype("float32")
    teacher = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(4, activation="sigmoid"),
        ]
    )
    teacher.compile("adam", "binary_crossentropy")
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    composed = tc.compose()
    composed.save(tmp_path / "composed.keras")
    r = report_lib.measure(
        tc,
        x,
        y,
        batch_sizes=(1,),
        repeats=1,
        warmup=0,
        composed=composed,
        exports=[tmp_path / "composed.keras"],
    )
    exported = r["exports"]["composed.keras"]["accuracy"]
    assert exported == pytest.approx(r["models"]["composed"]["accuracy"])
    for name, model in (("teacher", teacher), ("composed", composed)):
        pred = model.predict(x, verbose=0)
        expected = float(keras.metrics.BinaryAccuracy()(y, pred).numpy())
        got = r["models"][name]["accuracy"]
        assert got == pytest.approx(expected, abs=1e-6), name
        assert got != report_lib.accuracy(pred, y)  # the argmax score
    with pytest.raises(ValueError, match=r"Received: y with shape \(64,\)"):
        report_lib.accuracy(pred, y[:, 0], multi_label=True)
