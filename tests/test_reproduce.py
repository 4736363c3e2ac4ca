import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "reproduce.py"
RESULTS = BENCHMARKS / "results"


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts benchmarks/ on sys.path
    return module


@pytest.fixture(scope="module")
def settings(reproduce):
    return reproduce.settings


@pytest.fixture(scope="module")
def runs(reproduce):
    return reproduce.runs


@pytest.fixture(scope="module")
def tables(reproduce):
    return reproduce.tables


def _argv(tmp_path, *extra):
    return [
        "--dataset",
        "digits",
        "--students",
        "2",
        "--seeds",
        "1",
        "--teacher-epochs",
        "1",
        "--epochs",
        "1",
        "--samples",
        "256",
        "--baselines",
        "scratch",
        "--objective",
        "mse",
        "no_such_objective",
        "--out-dir",
        str(tmp_path / "results"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--plot-dir",
        str(tmp_path / "plots"),
        "--verbose",
        "0",
        *extra,
    ]


def test_writes_results_and_a_rerun_skips_finished_work(
    reproduce, tmp_path, monkeypatch
):
    state = reproduce.main(_argv(tmp_path, "--paper"))
    results = tmp_path / "results"
    saved = json.loads((results / "digits.json").read_text())
    assert saved == state
    kinds = sorted((r["kind"], r["n"]) for r in saved["runs"].values())
    assert kinds == [("class", 2), ("scratch", 0)]
    assert len(saved["teachers"]) == 1
    for key in ("machine", "versions", "settings", "invocations"):
        assert saved[key]
    # An objective that fit_students rejects is recorded, not fatal.
    (unavailable,) = saved["unavailable"].values()
    assert unavailable["objective"] == "no_such_objective"
    assert "ValueError" in unavailable["reason"]
    md = (results / "digits.md").read_text()
    assert "| teacher | 349,578 | 1.0x |" in md
    assert "class, n = 2 (mse)" in md
    assert "not available" in md
    assert "paper (`--paper`)" in md
    # The paper's last step: the head fine-tuned, students frozen.
    assert "the paper's last step" in md
    (class_run,) = [r for r in saved["runs"].values() if r["kind"] == "class"]
    assert class_run["fine_tune_history"]["loss"]
    assert "digits" not in (results / "summary.md").read_text()
    assert (tmp_path / "plots" / "digits_accuracy_vs_params.png").exists()

    def fail(*args, **kwargs):
        raise AssertionError("finished work was run again")

    monkeypatch.setattr(reproduce.runs, "train_teacher", fail)
    monkeypatch.setattr(reproduce.runs, "run_baseline", fail)
    calls = []
    monkeypatch.setattr(
        reproduce.runs,
        "run_class",
        lambda cfg, n, objective, *args, **kwargs: (
            calls.append(objective) or fail()
        ),
    )
    again = reproduce.main(_argv(tmp_path, "--paper"))
    # Only the unavailable objective is tried again; it fails the same way.
    assert calls == ["no_such_objective"]
    assert again["runs"] == saved["runs"]
    assert len(again["invocations"]) == 2


def test_bad_arguments(reproduce, tmp_path):
    with pytest.raises(ValueError, match="--epochs must be positive"):
        reproduce.main(_argv(tmp_path, "--epochs", "0"))


def test_shift_augmentation_and_cosine_teacher(reproduce, tmp_path):
    argv = _argv(
        tmp_path,
        "--augment",
        "shift",
        "--augment-students",
        "--teacher-schedule",
        "cosine",
    )
    argv[argv.index("no_such_objective")] = "mse"
    state = reproduce.main(argv)
    (settings,) = state["settings"].values()
    assert settings["augment"] == "shift"
    assert settings["teacher_lr_schedule"] == "cosine"
    assert settings["augment_students"] is True
    assert any("RandomTranslation" in c for c in settings["changes_from_paper"])
    (teacher,) = state["teachers"].values()
    assert teacher["config"]["augment"] == "shift"
    # Augmented batches: one per 128 samples, as for arrays.
    kinds = sorted(r["kind"] for r in state["runs"].values())
    assert kinds == ["class", "scratch"]
    md = (tmp_path / "results" / "digits.md").read_text()
    assert "augmentation: shift; students augmented" in md
    assert "teacher: Adam with cosine" in md


def test_settings_ids_are_stable_without_the_new_options(settings):
    """The committed MNIST default run of before these options keeps its id."""
    args = settings.parser().parse_args(
        [
            "--dataset",
            "mnist",
            "--teacher-epochs",
            "4",
            "--augment",
            "none",
            "--teacher-schedule",
            "constant",
            "--min-student-bottleneck",
            "0",
            "--precision",
            "mixed_bfloat16",
        ]
    )
    teacher_cfg, cfg = settings.configuration(args, 60000)
    assert settings.digest(teacher_cfg) == "a6f4cda68f"
    assert settings.digest(cfg) == "e2f7b29649"


def _committed():
    """`(file name, settings id, settings)` of every committed config."""
    found = []
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("benchmark") == "reproduce":
            found += [(path.name, k, v) for k, v in data["settings"].items()]
    return found


def test_every_committed_configuration_id_is_recomputed(settings):
    """Each recorded configuration gives its own id (and its teacher's)."""
    committed = _committed()
    assert {name for name, _, _ in committed} >= {"mnist.json", "digits.json"}
    for name, settings_id, recorded in committed:
        args = settings.parser().parse_args(settings.argv_for(recorded))
        settings.check(args)
        teacher_cfg, cfg = settings.configuration(args, recorded["samples"])
        assert settings.digest(cfg) == settings_id, name
        assert settings.digest(teacher_cfg) == recorded["teacher_id"], name
        extra = ("teacher_id", "data", "test_samples", "changes_from_paper")
        assert cfg == {k: v for k, v in recorded.items() if k not in extra}
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("benchmark") != "reproduce":
            continue
        for key, teacher in data["teachers"].items():
            assert settings.digest(teacher["config"]) == teacher["teacher_id"]
            assert key.startswith(teacher["teacher_id"])
        for key, run in data["runs"].items():
            assert key.startswith(run["settings_id"] + "|")
            assert run["settings_id"] in data["settings"]


def test_render_only_rewrites_outputs_from_the_json(
    reproduce, tmp_path, monkeypatch
):
    out = tmp_path / "results"
    out.mkdir()
    recorded = (RESULTS / "mnist.json").read_text()
    (out / "mnist.json").write_text(recorded)

    def fail(*args, **kwargs):
        raise AssertionError("--render-only trained or loaded data")

    monkeypatch.setattr(reproduce.runs, "load_data", fail)
    state = reproduce.main(
        [
            "--dataset",
            "mnist",
            "--render-only",
            "--out-dir",
            str(out),
            "--plot-dir",
            str(tmp_path / "plots"),
        ]
    )
    assert (out / "mnist.json").read_text() == recorded  # untouched
    assert state == json.loads(recorded)
    md = (out / "mnist.md").read_text()
    # The plot names configurations by letter; the Markdown maps them.
    assert "## Configuration `e8932e1beb` (C in the figure)" in md
    assert "C = configuration `e8932e1beb`" in md
    assert "| mnist | measured" in (out / "summary.md").read_text()
    assert (tmp_path / "plots" / "mnist_accuracy_vs_params.png").exists()
    with pytest.raises(ValueError, match="No results to render"):
        reproduce.main(
            ["--dataset", "digits", "--render-only", "--out-dir", str(out)]
        )


def test_plot_series_carry_no_hashes(tables):
    state = json.loads((RESULTS / "mnist.json").read_text())
    series, groups = tables.plot_series(state)
    assert list(groups) == ["A", "B", "C"]
    texts = [s["name"] for s in series] + list(groups.values())
    for settings_id in state["settings"]:
        assert not any(settings_id in t for t in texts)
    # One legend entry per model kind, not per kind and configuration.
    assert len({s["name"] for s in series}) == 5
    c = [s for s in series if s["group"] == "C" and s.get("labels")]
    assert c[0]["labels"] == ["n = 4", "n = 8"]


def test_improved_defaults_and_paper_profile(settings):
    improved = settings.parser().parse_args(["--dataset", "mnist"])
    _, cfg = settings.configuration(improved, 60000)
    assert cfg["augment"] == "shift"
    assert cfg["teacher_lr_schedule"] == "cosine"
    assert cfg["min_student_bottleneck"] == 16
    assert "augment_students" not in cfg
    paper = settings.parser().parse_args(["--dataset", "mnist", "--paper"])
    _, cfg = settings.configuration(paper, 60000)
    for key in ("augment", "teacher_lr_schedule", "min_student_bottleneck"):
        assert key not in cfg
    assert settings.changes(cfg) == ()


def test_shift_needs_an_image_dataset(reproduce, settings, tmp_path):
    with pytest.raises(ValueError, match="Received: --augment-students"):
        reproduce.main(
            _argv(tmp_path, "--augment", "none", "--augment-students")
        )
    # "auto" is none for the paper's profile: nothing to augment with.
    with pytest.raises(ValueError, match="--augment auto --dataset mnist"):
        settings.check(
            settings.parser().parse_args(
                ["--dataset", "mnist", "--paper", "--augment-students"]
            )
        )
    with pytest.raises(ValueError, match="Received: --augment shift"):
        reproduce.main(
            _argv(tmp_path, "--augment", "shift", "--dataset", "imdb_reviews")
        )


def test_wider_students_and_matching_baselines(settings, runs):
    from teacherclass import architectures

    args = settings.parser().parse_args(
        ["--dataset", "mnist", "--min-student-bottleneck", "16"]
    )
    _, cfg = settings.configuration(args, 60000)
    assert cfg["min_student_bottleneck"] == 16
    widths = {n: runs.student(cfg, n).bottleneck for n in (1, 2, 4, 8)}
    assert widths == {1: 16, 2: 56, 4: 16, 8: 16}
    teacher = architectures.mnist_teacher()
    bottleneck = runs.baseline_bottleneck(cfg, (28, 28, 1), teacher)
    smaller = runs.baseline_classifier(cfg, (28, 28, 1), bottleneck - 1)
    baseline = runs.baseline_classifier(cfg, (28, 28, 1), bottleneck)
    # The n = 4 class: 4 x 21,712 + the head's 2,570 = 89,418.
    assert smaller.count_params() < 89_418 <= baseline.count_params()
    # The committed MNIST baselines (configuration e8932e1beb) had 89,638.
    assert baseline.count_params() == 89_638
    assert any("bottleneck widened" in c for c in settings.changes(cfg))
    with pytest.raises(ValueError, match="--min-student-bottleneck 16"):
        settings.check(
            settings.parser().parse_args(
                ["--dataset", "imdb_reviews", "--min-student-bottleneck", "16"]
            )
        )


def test_labelled_batches_are_shifted_and_shuffled(runs):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    y = np.arange(32)
    cfg = {"augment": "shift", "batch_size": 8}
    ds, labels, batch_size = runs.labelled(cfg, x, y, seed=0)
    assert labels is None and batch_size is None
    batch_x, batch_y = next(iter(ds))
    assert batch_x.shape == (8, 8, 8, 1)
    assert list(batch_y.numpy()) != list(range(8))  # shuffled
    # Each image is a shifted copy of its own sample, not the sample.
    originals = x[batch_y.numpy()]
    assert np.abs(batch_x.numpy() - originals).max(axis=(1, 2, 3)).min() > 0
    assert runs.labelled({"batch_size": 8}, x, y, 0)[2] == 8


def test_dataset_setups_come_from_the_library(settings, runs):
    from teacherclass import architectures

    for name in settings.DATASETS:
        assert settings.DEFAULTS[name] == dict(
            architectures.for_dataset(name).defaults
        )
    # The values the committed default configurations were run with.
    assert {
        k: settings.DEFAULTS["mnist"][k]
        for k in ("teacher_epochs", "epochs", "batch_size")
    } == {"teacher_epochs": 8, "epochs": 12, "batch_size": 128}
    assert settings.DEFAULTS["digits"]["epochs"] == 40
    imdb = {"dataset": "imdb_reviews"}
    assert runs.student(imdb, 8).units == 32
    assert runs.baseline_classifier(imdb, (500,)).inputs[0].dtype == "int32"
    assert runs.baseline_bottleneck(imdb, (500,), None) is None


def test_baseline_sizing_is_the_library_budget_search(runs, monkeypatch):
    from teacherclass import architectures

    calls = []

    def search(build, budget, start=1):
        calls.append((budget, start))
        return start

    monkeypatch.setattr(architectures, "size_to_budget", search)
    cfg = {"dataset": "mnist", "min_student_bottleneck": 16}
    teacher = architectures.mnist_teacher()
    assert runs.baseline_bottleneck(cfg, (28, 28, 1), teacher) == 16
    # Budget: the n = 4 class's parameters; start: the paper's n = 1 width.
    assert calls == [(89_418, 16)]
