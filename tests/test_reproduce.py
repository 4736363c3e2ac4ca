import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce.py"


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

    monkeypatch.setattr(reproduce, "train_teacher", fail)
    monkeypatch.setattr(reproduce, "run_baseline", fail)
    calls = []
    monkeypatch.setattr(
        reproduce,
        "run_class",
        lambda cfg, n, objective, *args: calls.append(objective) or fail(),
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


def test_settings_ids_are_stable_without_the_new_options(reproduce):
    """The committed MNIST default run of before these options keeps its id."""
    args = reproduce._parser().parse_args(
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
    teacher_cfg, cfg = reproduce._settings(args, 60000)
    assert reproduce._digest(teacher_cfg) == "a6f4cda68f"
    assert reproduce._digest(cfg) == "e2f7b29649"


def test_improved_defaults_and_paper_profile(reproduce):
    improved = reproduce._parser().parse_args(["--dataset", "mnist"])
    _, cfg = reproduce._settings(improved, 60000)
    assert cfg["augment"] == "shift"
    assert cfg["teacher_lr_schedule"] == "cosine"
    assert cfg["min_student_bottleneck"] == 16
    assert "augment_students" not in cfg
    paper = reproduce._parser().parse_args(["--dataset", "mnist", "--paper"])
    _, cfg = reproduce._settings(paper, 60000)
    for key in ("augment", "teacher_lr_schedule", "min_student_bottleneck"):
        assert key not in cfg
    assert reproduce._changes(cfg) == ()


def test_shift_needs_an_image_dataset(reproduce, tmp_path):
    with pytest.raises(ValueError, match="Received: --augment-students"):
        reproduce.main(
            _argv(tmp_path, "--augment", "none", "--augment-students")
        )
    # "auto" is none for the paper's profile: nothing to augment with.
    with pytest.raises(ValueError, match="--augment auto --dataset mnist"):
        reproduce._check(
            reproduce._parser().parse_args(
                ["--dataset", "mnist", "--paper", "--augment-students"]
            )
        )
    with pytest.raises(ValueError, match="Received: --augment shift"):
        reproduce.main(
            _argv(tmp_path, "--augment", "shift", "--dataset", "imdb_reviews")
        )


def test_wider_students_and_matching_baselines(reproduce):
    from teacherclass import architectures

    args = reproduce._parser().parse_args(
        ["--dataset", "mnist", "--min-student-bottleneck", "16"]
    )
    _, cfg = reproduce._settings(args, 60000)
    assert cfg["min_student_bottleneck"] == 16
    widths = {n: reproduce._student(cfg, n).bottleneck for n in (1, 2, 4, 8)}
    assert widths == {1: 16, 2: 56, 4: 16, 8: 16}
    teacher = architectures.mnist_teacher()
    bottleneck = reproduce._baseline_bottleneck(cfg, (28, 28, 1), teacher)
    smaller = reproduce._baseline_classifier(cfg, (28, 28, 1), bottleneck - 1)
    baseline = reproduce._baseline_classifier(cfg, (28, 28, 1), bottleneck)
    # The n = 4 class: 4 x 21,712 + the head's 2,570 = 89,418.
    assert smaller.count_params() < 89_418 <= baseline.count_params()
    assert any("bottleneck widened" in c for c in reproduce._changes(cfg))
    with pytest.raises(ValueError, match="--min-student-bottleneck 16"):
        reproduce._check(
            reproduce._parser().parse_args(
                ["--dataset", "imdb_reviews", "--min-student-bottleneck", "16"]
            )
        )


def test_labelled_batches_are_shifted_and_shuffled(reproduce):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    y = np.arange(32)
    cfg = {"augment": "shift", "batch_size": 8}
    ds, labels, batch_size = reproduce._labelled(cfg, x, y, seed=0)
    assert labels is None and batch_size is None
    batch_x, batch_y = next(iter(ds))
    assert batch_x.shape == (8, 8, 8, 1)
    assert list(batch_y.numpy()) != list(range(8))  # shuffled
    # Each image is a shifted copy of its own sample, not the sample.
    originals = x[batch_y.numpy()]
    assert np.abs(batch_x.numpy() - originals).max(axis=(1, 2, 3)).min() > 0
    assert reproduce._labelled({"batch_size": 8}, x, y, 0)[2] == 8
