"""CIFAR-10 on a CPU budget: fast teacher, sized students, resumable runs."""

import json
import shutil

import keras
import numpy as np
import pytest
from helpers import load_script

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass.flops import count_flops


def _benchmark(name):
    """The script `benchmarks/<name>.py`, imported as a module."""
    return load_script(f"benchmarks/{name}.py")


@pytest.fixture(scope="module")
def reproduce():
    return _benchmark("reproduce")


def _macs(model):
    return count_flops(model) // 2


def test_fast_teacher_shape_and_representation():
    teacher = architectures.cifar10_fast_teacher()
    assert teacher.count_params() == 1_973_930
    assert not teacher.get_layer("whitening").trainable
    tc = TeacherClass(teacher, num_students=4)
    assert tc.feature_layer == "representation"
    assert tc.cut.feature_shape == (None, 256)
    tiny = architectures.cifar10_fast_teacher((4, 8, 8))
    out = tiny(np.zeros((2, 32, 32, 3), "float32"))
    np.testing.assert_allclose(keras.ops.sum(out, -1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="widths=()"):
        architectures.cifar10_fast_teacher(())


def _correlated_images(n=256, size=8, seed=0):
    # Smooth, channel-correlated images: their 2x2 patches are far from
    # white, so whitening has work to do.
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, size // 2, size // 2, 1))
    x = np.repeat(np.repeat(base, 2, axis=1), 2, axis=2)
    x = x + 0.1 * rng.normal(size=(n, size, size, 3))
    return (x * 0.2 + 0.5).astype("float32")


def test_whitening_kernel_whitens_the_patches():
    x = _correlated_images()
    kernel = architectures.whitening_kernel(x)
    assert kernel.shape == (2, 2, 3, 24)
    out = keras.ops.convert_to_numpy(
        keras.ops.conv(x.astype("float64"), kernel.astype("float64"))
    ).reshape(-1, 24)
    covariance = out[:, :12].T @ out[:, :12] / len(out)
    # Unit variance where the eigenvalue dwarfs eps, decorrelated always.
    np.testing.assert_allclose(np.diag(covariance)[-4:], 1.0, rtol=0.05)
    off = covariance - np.diag(np.diag(covariance))
    assert np.abs(off).max() < 1e-3
    np.testing.assert_allclose(out[:, 12:], -out[:, :12], atol=1e-5)
    with pytest.raises(ValueError, match=r"shape \(4, 1, 1, 3\)"):
        architectures.whitening_kernel(np.zeros((4, 1, 1, 3)))


def test_fast_teacher_whitens_its_stem_on_the_images_given():
    x = _correlated_images(size=32)
    teacher = architectures.cifar10_fast_teacher((4, 8, 8), whitening_images=x)
    normalized = (x - np.array(architectures.CIFAR10_MEAN)) / np.array(
        architectures.CIFAR10_STD
    )
    np.testing.assert_allclose(
        teacher.get_layer("whitening").get_weights()[0],
        architectures.whitening_kernel(normalized),
        rtol=1e-3,
        atol=1e-3,
    )
    # Training leaves the frozen stem as it is.
    before = teacher.get_layer("whitening").get_weights()[0]
    teacher.compile(optimizer="sgd", loss="categorical_crossentropy")
    teacher.fit(x[:16], np.eye(10)[np.arange(16) % 10], verbose=0)
    np.testing.assert_array_equal(
        teacher.get_layer("whitening").get_weights()[0], before
    )


def test_fast_recipe_schedule_and_parts():
    recipe = architectures.cifar10_fast_recipe(epochs=10, steps_per_epoch=10)
    lr = recipe.learning_rate
    assert float(lr(0)) == pytest.approx(0.15)  # 20% of the peak
    assert float(lr(23)) == pytest.approx(0.75)  # peak after 23% warmup
    assert float(lr(100)) == pytest.approx(0.0525)  # 7% of the peak
    assert recipe.optimizer.nesterov and recipe.optimizer.momentum == 0.85
    assert recipe.optimizer.weight_decay == pytest.approx(0.0089)
    assert recipe.loss.get_config()["label_smoothing"] == 0.2
    assert recipe.batch_size == 512 and recipe.one_hot
    x = np.random.rand(4, 32, 32, 3).astype("float32")
    np.testing.assert_array_equal(recipe.augment(x, training=False), x)
    assert recipe.augment(x, training=True).shape == x.shape
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        architectures.cifar10_fast_recipe(epochs=1, steps_per_epoch=0)
    with pytest.raises(ValueError, match="pixels=-1"):
        architectures.cifar10_augmentation(pixels=-1)


def test_fast_recipe_linear_decay_is_airbench_schedule():
    # airbench's np.interp over (0, 23%, 100%) of the steps, at 20%, 100%
    # and 7% of the peak; straight lines between, constant after.
    recipe = architectures.cifar10_fast_recipe(
        epochs=10, steps_per_epoch=10, decay="linear"
    )
    lr = recipe.learning_rate
    steps = np.arange(120)
    expected = 0.75 * np.interp(steps, [0, 23, 100], [0.2, 1.0, 0.07])
    got = [float(lr(s)) for s in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(lr)
    )
    assert isinstance(restored, architectures.WarmupLinearDecay)
    assert float(restored(61)) == pytest.approx(float(lr(61)))
    with pytest.raises(ValueError, match="decay='step'"):
        architectures.cifar10_fast_recipe(1, 1, decay="step")
    with pytest.raises(ValueError, match="uniform_shifts=1"):
        architectures.cifar10_fast_recipe(1, 1, uniform_shifts=1)
    with pytest.raises(ValueError, match="decay_steps=3"):
        architectures.WarmupLinearDecay(0.1, 1.0, 0.0, 3, 3)


@pytest.mark.parametrize(
    "uniform, expected",
    [(False, [0.125, 0.25, 0.25, 0.25, 0.125]), (True, [0.2] * 5)],
)
def test_augmentation_shift_distribution(uniform, expected):
    # Whole-pixel shifts in [-2, 2]: rounded from a continuous draw (the
    # extremes half as likely) or uniform (a padded random crop's).
    aug = architectures.cifar10_augmentation(seed=1, pixels=2, uniform=uniform)
    shift = aug.layers[0]
    x = np.tile(
        np.arange(32, dtype="float32")[None, None, :, None], (4000, 32, 1, 1)
    )
    out = keras.ops.convert_to_numpy(shift(x, training=True))
    shifts = out[:, 16, 16, 0] - 16
    # Each image moved as a whole, by a whole number of pixels.
    np.testing.assert_array_equal(
        out[:, 16, 3:29, 0], x[:, 16, 3:29, 0] + shifts[:, None]
    )
    counts = [np.mean(shifts == s) for s in range(-2, 3)]
    np.testing.assert_allclose(counts, expected, atol=0.025)
    with pytest.raises(ValueError, match="uniform='yes'"):
        architectures.cifar10_augmentation(uniform="yes")


def test_bias_scaled_sgd_scales_only_the_bn_offsets_step():
    # One step from equal weights: the BN offsets ("beta") move 64x as
    # far as under plain SGD, every other variable exactly as far; weight
    # decay stays unscaled (airbench: "learning rate but not weight decay").
    def stepped(scale, weight_decay=None):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((3,))
        x = keras.layers.Dense(4, name="dense")(inputs)
        x = keras.layers.BatchNormalization(scale=False, name="bn")(x)
        model = keras.Model(inputs, keras.layers.Dense(1, name="out")(x))
        model.compile(
            optimizer=architectures.BiasScaledSGD(
                bias_lr_scale=scale,
                learning_rate=0.01,
                momentum=0.85,
                nesterov=True,
                weight_decay=weight_decay,
            ),
            loss="mse",
        )
        before = {v.path: v.numpy() for v in model.trainable_variables}
        x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
        model.train_on_batch(x, x[:, :1] * 2 + 1)
        return {
            v.path: v.numpy() - before[v.path]
            for v in model.trainable_variables
        }

    plain, scaled = stepped(1.0), stepped(64.0)
    assert set(plain) == set(scaled)
    for path in plain:
        ratio = 64.0 if path.endswith("bn/beta") else 1.0
        assert np.abs(plain[path]).max() > 0, path
        np.testing.assert_allclose(
            scaled[path], ratio * plain[path], rtol=1e-4, err_msg=path
        )
    # Zero offsets at the start: decay moves them by nothing, so a
    # decayed step differs from an undecayed one only by the decay.
    decayed = stepped(64.0, weight_decay=0.5)
    np.testing.assert_allclose(decayed["bn/beta"], scaled["bn/beta"])
    optimizer = architectures.cifar10_fast_recipe(
        epochs=1, steps_per_epoch=1, bias_lr_scale=64
    ).optimizer
    config = optimizer.get_config()
    assert config["bias_lr_scale"] == 64.0 and config["nesterov"]
    restored = keras.optimizers.deserialize(
        keras.optimizers.serialize(optimizer)
    )
    assert isinstance(restored, architectures.BiasScaledSGD)
    assert restored.bias_lr_scale == 64.0
    with pytest.raises(ValueError, match="Received: bias_lr_scale=0"):
        architectures.BiasScaledSGD(bias_lr_scale=0)


def test_identity_init_starts_the_blocks_second_convs_as_identity(tmp_path):
    keras.utils.set_random_seed(0)
    teacher = architectures.cifar10_fast_teacher((4, 8, 8))  # the default
    x = np.random.default_rng(0).random((2, 8, 8, 8)).astype("float32")
    square = teacher.get_layer("block2_2_conv")  # 8 -> 8 filters
    np.testing.assert_allclose(square(x), x, atol=1e-6)
    widening = teacher.get_layer("block2_1_conv").get_weights()[0]  # 4 -> 8
    np.testing.assert_array_equal(widening[1, 1, :, :4], np.eye(4))
    assert np.abs(widening[..., 4:]).min() > 0  # the rest: random
    plain = architectures.cifar10_fast_teacher((4, 8, 8), identity_init=False)
    assert not np.allclose(plain.get_layer("block2_2_conv")(x), x)
    # The initializer is part of the saved model's config.
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    config = keras.saving.load_model(path).get_layer("block2_2_conv")
    init = config.get_config()["kernel_initializer"]
    assert init["class_name"].endswith("IdentityPrefix")


def test_for_dataset_uses_the_fast_teacher_unless_paper():
    setup = architectures.for_dataset("cifar10")
    assert setup.teacher().name == "cifar10_fast_teacher"
    assert setup.student(4).filters == architectures.FAST_STUDENT_FILTERS[4]
    assert setup.defaults["batch_size"] == 512
    paper = architectures.for_dataset("cifar10", paper=True)
    assert "VGG-16" in paper.teacher_name
    assert paper.student(4).filters == (32, 32, 64, 64, 128, 128)
    assert paper.defaults["batch_size"] == 128 and "views" not in paper.defaults
    assert architectures.cifar10_teacher().name == "cifar10_teacher"


@pytest.mark.parametrize(
    "batch_norm, params", [(False, 156_554), (True, 158_666)]
)
def test_classes_are_10x_smaller_and_baselines_matched(batch_norm, params):
    teacher = architectures.cifar10_fast_teacher()
    t_params, t_macs = teacher.count_params(), _macs(teacher)
    sizes = {}
    for n in (1, 4, 8):
        student = architectures.cifar10_fast_student(n, batch_norm=batch_norm)
        assert student.batch_norm is batch_norm
        tc = TeacherClass(teacher, num_students=n, student=student)
        tc._mark_trained(range(n))  # sizes only: no training needed
        composed = tc.compose()
        sizes[n] = (composed.count_params(), _macs(composed))
    assert sizes[4][0] == params
    for n in (4, 8):
        assert t_params / sizes[n][0] >= 10
        assert sizes[n][1] < t_macs
    baseline = architectures.cifar10_fast_baseline(batch_norm=batch_norm)
    for size, macs in (sizes[1], (baseline.count_params(), _macs(baseline))):
        assert abs(size / sizes[4][0] - 1) <= 0.05
        assert abs(macs / sizes[4][1] - 1) <= 0.05
    with pytest.raises(ValueError, match="num_students=3"):
        architectures.cifar10_fast_student(3)


# ----------------------------------------------------------------------
# Resumable stages on tiny data
# ----------------------------------------------------------------------

TINY = [
    "--dataset", "cifar10", "--teacher-widths", "4", "8", "8",
    "--student-filters", '{"4": [4, 4], "1": [4, 4]}',
    "--students", "4", "--baselines", "scratch", "--seeds", "1",
    "--teacher-epochs", "2", "--epochs", "2", "--views", "1",
    "--batch-size", "16", "--precision", "float32",
]  # fmt: skip


def _data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 3)).astype("float32") / 255
    y = rng.integers(0, 10, 64)
    return x, y, x[:16], y[:16]


def _setup(reproduce, tmp_path, *extra):
    settings = reproduce.settings
    args = settings.parser().parse_args([*TINY, *extra])
    teacher_cfg, cfg = settings.configuration(args, 64)
    state = reproduce.State(tmp_path / "out" / "cifar10.json", "cifar10")
    return args, cfg, settings.digest(teacher_cfg), settings.digest(cfg), state


def _run(reproduce, tmp_path, *extra):
    import reproduce_cifar10

    args, cfg, tid, sid, state = _setup(reproduce, tmp_path, *extra)
    done = reproduce_cifar10.run(
        args, state, cfg, tid, sid, _data(), tmp_path / "cache",
        tmp_path / "runs",
    )  # fmt: skip
    return done, state


def _weights(path):
    with np.load(path) as f:
        names = [k for k in f.files if k.startswith("v")]
        return [f[k] for k in sorted(names, key=lambda k: int(k[1:]))]


def test_stage_stops_after_the_epoch_crossing_the_budget(reproduce, tmp_path):
    from reproduce_state import Budget
    from reproduce_state import BudgetExhausted
    from reproduce_state import Stage

    def run(directory, budget):
        var = keras.Variable(np.zeros(3, "float32"))
        stage = Stage(directory, "toy", 3, lambda: [var])

        def epoch(e):
            var.assign(var * 2 + e + 1)
            return {"sum": float(keras.ops.sum(var))}

        stage.run(epoch, budget, log=lambda line: None)
        return var.numpy(), stage.progress

    whole, _ = run(tmp_path / "whole", None)
    for done in (1, 2):  # a spent budget still lets one epoch run
        with pytest.raises(BudgetExhausted, match=f"toy epoch {done}/3"):
            run(tmp_path / "split", Budget(1e-9))
    resumed, progress = run(tmp_path / "split", Budget(1e-9))
    np.testing.assert_array_equal(resumed, whole)
    assert progress["epochs_done"] == 3 and len(progress["logs"]) == 3
    assert progress["logs"][-1]["sum"] == float(whole.sum())


def test_a_checkpoint_is_trusted_over_a_progress_file_left_behind(
    reproduce, tmp_path
):
    from reproduce_state import Stage

    var = keras.Variable(np.zeros(3, "float32"))
    stage = Stage(tmp_path, "toy", 3, lambda: [var])
    var.assign(np.ones(3, "float32"))
    stage.save(1.0, {})
    behind = stage.progress_path.read_text()
    var.assign(np.full(3, 2.0, "float32"))
    stage.save(1.0, {})
    # Killed between the checkpoint's write and progress.json's: the
    # rerun must not train epoch 2 again on epoch 2's weights.
    stage.progress_path.write_text(behind)
    other = keras.Variable(np.zeros(3, "float32"))
    assert Stage(tmp_path, "toy", 3, lambda: [other]).restore() == 2
    np.testing.assert_array_equal(other.numpy(), [2.0, 2.0, 2.0])
    # Epochs recorded done whose checkpoint is gone: refused, not run as
    # trained with fresh weights.
    stage.state_path.unlink()
    with pytest.raises(ValueError, match="state.npz is missing"):
        Stage(tmp_path, "toy", 3, lambda: [other]).restore()


def test_views_of_another_teacher_are_refused_not_read(reproduce, tmp_path):
    _, state = _run(reproduce, tmp_path, "--stages", "views")
    (key,) = state.data["teachers"]
    path = tmp_path / "cache" / f"teacher-{key}.keras"
    # Another teacher under the same file and record (a teacher trained
    # again): its views are stale.
    teacher = keras.saving.load_model(path)
    kernel = teacher.get_layer("classifier").kernel
    kernel.assign(kernel + 1.0)
    teacher.save(path)
    with pytest.raises(ValueError, match="another teacher"):
        _run(reproduce, tmp_path, "--stages", "classes")


def test_teacher_with_lookahead_resumes_to_the_same_weights(
    reproduce, tmp_path, monkeypatch
):
    # A recipe with Lookahead (--teacher-recipe lookahead): the teacher
    # stage saves its slow copy with the weights, so a stopped teacher
    # resumes to the same weights.
    import reproduce_cifar10
    from reproduce_state import Budget
    from reproduce_state import BudgetExhausted

    rng = np.random.default_rng(0)
    # 4 steps in all, fewer than airbench's every=5: the stage passes
    # every=4 (it passed none, and Lookahead refused every=5).
    x = rng.random((32, 32, 32, 3)).astype("float32")
    data = (x, rng.integers(0, 10, 32))
    cfg = {"teacher_widths": [4, 8, 8], "teacher_epochs": 2, "batch_size": 16}
    cfg["teacher_recipe"] = "lookahead"
    recipe = reproduce_cifar10.teacher_recipe(cfg, len(x))
    assert recipe.lookahead and recipe.optimizer.bias_lr_scale == 64.0

    def train(directory, budget):
        teacher, _ = reproduce_cifar10.train_teacher(
            cfg, 0, data, directory, budget
        )
        return [w.numpy() for w in teacher.weights]

    whole = train(tmp_path / "whole", None)
    with pytest.raises(BudgetExhausted, match="teacher seed 0 epoch 1/2"):
        train(tmp_path / "split", Budget(1e-9))
    resumed = train(tmp_path / "split", None)
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a, b)
    # The slow copy is part of the checkpoint: weights, optimizer, copy.
    with np.load(tmp_path / "split/state.npz") as f:
        saved = len(f.files)
    assert saved > 2 * len(whole)


def test_budget_stops_cleanly_and_a_rerun_finishes_the_same(
    reproduce, tmp_path, capsys, monkeypatch, quick_latency
):
    import reproduce_state

    # A class of two: five runs of the configuration, each tower traced.
    two = ["--students", "2", "--student-filters", '{"2": [4, 4], "1": [4, 4]}']

    original = reproduce_state.Budget.check

    def check_mid_stage_only(self, where):
        # Stops mid-way in the teacher, then mid-way in the students.
        if where.endswith(("teacher seed 0 epoch 1/2", "students epoch 1/2")):
            original(self, where)

    with monkeypatch.context() as m:
        m.setattr(reproduce_state.Budget, "check", check_mid_stage_only)
        for _ in range(2):
            done, _ = _run(
                reproduce, tmp_path / "a", *two, "--budget-minutes", "1e-9"
            )
            assert not done
    out = capsys.readouterr().out
    assert (
        "stopped: budget of 1e-09 minutes spent after teacher seed 0 epoch "
        "1/2. Left: teacher seed 0, views seed 0, class seed 0 2, baseline "
        "seed 0 scratch"
    ) in out
    assert (
        "stopped: budget of 1e-09 minutes spent after class n=2 seed 0 "
        "students epoch 1/2. Left: class seed 0 2, baseline seed 0 scratch"
    ) in out
    assert "[teacher seed 0] resuming after epoch 1/2" in out
    done, state = _run(reproduce, tmp_path / "a", *two)
    assert done
    assert "students] resuming after epoch 1/2" in capsys.readouterr().out
    # Uninterrupted, and timed (measurement only: the same configuration).
    done, whole = _run(reproduce, tmp_path / "b", *two, "--measure-compute")
    assert done and len(whole.data["runs"]) == 2
    for record in whole.data["runs"].values():
        assert set(record["latency_ms"]) == {"1", "64"}
        if record["kind"] == "class":  # the teacher timed beside it
            assert set(record["teacher_compute"]["latency_ms"]) == {"1", "64"}
    assert not any("latency_ms" in r for r in state.data["runs"].values())
    for key, record in whole.data["runs"].items():
        assert (
            state.data["runs"][key]["test_accuracy"] == record["test_accuracy"]
        )
        if record["kind"] != "class":  # as the other datasets' baselines
            assert record["variant"] == ""
    a = sorted((tmp_path / "a/runs").rglob("state.npz"))
    b = sorted((tmp_path / "b/runs").rglob("state.npz"))
    assert [p.relative_to(tmp_path / "a") for p in a] == [
        p.relative_to(tmp_path / "b") for p in b
    ]
    assert len(a) == 4  # teacher, students, head, baseline
    for pa, pb in zip(a, b):
        for wa, wb in zip(_weights(pa), _weights(pb)):
            np.testing.assert_array_equal(wa, wb)
    # Another machine: the teacher's file, views and checkpoints are gone.
    # A seed whose runs are all recorded needs none of them.
    import shutil

    shutil.rmtree(tmp_path / "b" / "cache")
    shutil.rmtree(tmp_path / "b" / "runs")
    capsys.readouterr()
    done, again = _run(reproduce, tmp_path / "b", *two)
    assert done and again.data["runs"] == whole.data["runs"]
    assert "[seed 0] every run recorded, skipped" in capsys.readouterr().out
    assert not (tmp_path / "b" / "cache").exists()


def test_configuration_records_the_recipe_and_paper_keeps_batch_128(
    reproduce,
):
    settings = reproduce.settings
    args = settings.parser().parse_args(["--dataset", "cifar10"])
    teacher_cfg, cfg = settings.configuration(args, 50_000)
    assert teacher_cfg["teacher_widths"] == [64, 256, 256]
    assert teacher_cfg["recipe"]["label_smoothing"] == 0.2
    assert cfg["batch_size"] == 512 and cfg["views"] == 8
    assert args.students == [4, 8, 1]
    paper = settings.parser().parse_args(["--dataset", "cifar10", "--paper"])
    _, paper_cfg = settings.configuration(paper, 50_000)
    assert paper_cfg["batch_size"] == 128 and "views" not in paper_cfg
    bad = settings.parser().parse_args(
        ["--dataset", "cifar10", "--students", "3"]
    )
    with pytest.raises(ValueError, match="--students 3"):
        settings.configuration(bad, 64)


def test_student_batch_norm_is_a_configuration_setting(reproduce):
    settings = reproduce.settings

    def configuration(*flags):
        argv = ["--dataset", "cifar10", "--precision", "float32", *flags]
        args = settings.parser().parse_args(argv)
        return settings.configuration(args, 50_000)

    teacher_off, off = configuration("--student-batch-norm", "off")
    teacher_on, on = configuration("--student-batch-norm", "on")
    # Recorded only when on, so the configurations measured before the
    # option keep their ids; the teacher is the same either way.
    assert "student_batch_norm" not in off and on["student_batch_norm"]
    assert settings.digest(off) != settings.digest(on)
    assert teacher_off == teacher_on
    # Named among the configuration's changes and in its description.
    assert not any("batch-normalized" in c for c in settings.changes(off))
    assert any("batch-normalized" in c for c in settings.changes(on))
    assert "batch-normalized students" in settings.describe(on)
    assert "batch-normalized" not in settings.describe(off)
    for cfg in (off, on):
        argv = settings.argv_for(cfg)
        again = settings.configuration(
            settings.parser().parse_args(argv), 50_000
        )
        assert again[1] == cfg
    import reproduce_cifar10

    assert reproduce_cifar10.baseline_model(on).get_layer(index=1).batch_norm
    with pytest.raises(SystemExit):
        configuration("--student-batch-norm", "yes")


def test_students_filters_other_than_the_sized_ones_are_named(reproduce):
    settings = reproduce.settings

    def configuration(*flags):
        argv = ["--dataset", "cifar10", "--precision", "float32", *flags]
        args = settings.parser().parse_args(argv)
        return settings.configuration(args, 50_000)[1]

    sized = architectures.FAST_STUDENT_FILTERS
    assert not any(
        "--student-filters" in c
        for c in settings.changes(
            configuration("--student-filters", json.dumps({"4": sized[4]}))
        )
    )
    cfg = configuration(
        "--students",
        "2",
        "4",
        "--student-filters",
        json.dumps({"2": [8] * 8, "4": [12, 16, 24, 24, 24, 24, 24, 24]}),
    )
    (named,) = [c for c in settings.changes(cfg) if "--student-filters" in c]
    assert named.endswith(
        "n = 2: [8, 8, 8, 8, 8, 8, 8, 8] (no sized filters); "
        "n = 4: [12, 16, 24, 24, 24, 24, 24, 24] "
        f"(sized: {list(sized[4])})"
    )


def test_students_and_baselines_can_take_the_teachers_stem(reproduce, tmp_path):
    import reproduce_cifar10

    settings = reproduce.settings
    stem = ("--student-input", architectures.FAST_STUDENT_STEM)
    args, cfg, tid, sid, _ = _setup(reproduce, tmp_path / "c", *stem)
    _, plain, plain_tid, plain_sid, _ = _setup(reproduce, tmp_path / "c")
    # Recorded only when set: the teacher and older ids are unchanged.
    assert cfg["student_input"] == "whitening_gelu"
    assert "student_input" not in plain
    assert tid == plain_tid and sid != plain_sid
    assert any("frozen `whitening_gelu`" in c for c in settings.changes(cfg))
    assert "students on the teacher's whitening_gelu" in settings.describe(cfg)
    again = settings.parser().parse_args(settings.argv_for(cfg))
    assert settings.configuration(again, 64)[1] == cfg
    with pytest.raises(SystemExit):
        settings.parser().parse_args([*TINY, "--student-input", "block1_1"])
    for other in (["--dataset", "mnist"], ["--dataset", "cifar10", "--paper"]):
        args = settings.parser().parse_args([*other, *stem])
        with pytest.raises(ValueError, match="Received: --student-input"):
            settings.check(args)

    # The students' batches go through the stem (their first convolution
    # takes its 24 channels, the image has 3): the run would fail without.
    done, state = _run(reproduce, tmp_path / "a", *stem)
    assert done
    records = {r["kind"]: r for r in state.data["runs"].values()}
    teacher = architectures.cifar10_fast_teacher((4, 8, 8))
    tc = reproduce_cifar10.make_class(teacher, 4, cfg)
    assert tc.students[0].input.shape[-1] == 24
    tc._mark_trained(range(4))
    composed = tc.compose()
    assert composed.get_layer("preprocessor").get_layer("whitening")
    assert records["class"]["params"] == composed.count_params()
    baseline = reproduce_cifar10.baseline_model(cfg, teacher)
    assert records["scratch"]["params"] == baseline.count_params()
    # The stem is the teacher's, frozen: the baseline trains none of it.
    whitening = teacher.get_layer("whitening").kernel
    assert any(w is whitening for w in baseline.weights)
    assert not any(w is whitening for w in baseline.trainable_weights)
    with pytest.raises(ValueError, match="no trainable weights"):
        architectures.cifar10_fast_baseline(stem=keras.Sequential([
            keras.Input((32, 32, 3)), keras.layers.Dense(3)
        ]))  # fmt: skip


@pytest.mark.parametrize(
    "trunk, phrase, frozen, trainable",
    [
        (
            architectures.FAST_STUDENT_TRUNK,
            "first convolution block, trained with the teacher on labels, "
            "then frozen",
            ("block1_1_conv",),
            "block1_2_conv",
        ),
        (
            architectures.FAST_STUDENT_BLOCK1,
            "whole first block (both its convolutions)",
            ("block1_1_conv", "block1_2_conv"),
            "block2_1_conv",
        ),
    ],
)
def test_a_trained_block_is_the_students_input_once_frozen(
    reproduce, tmp_path, trunk, phrase, frozen, trainable
):
    import reproduce_cifar10

    settings = reproduce.settings
    _, cfg, _, sid, _ = _setup(reproduce, tmp_path, "--student-input", trunk)
    *_, stem_sid, _ = _setup(
        reproduce, tmp_path, "--student-input", architectures.FAST_STUDENT_STEM
    )
    assert cfg["student_input"] == trunk and sid != stem_sid
    (change,) = [c for c in settings.changes(cfg) if f"`{trunk}`" in c]
    assert phrase in change
    again = settings.parser().parse_args(settings.argv_for(cfg))
    assert settings.configuration(again, 64)[1] == cfg

    teacher = architectures.cifar10_fast_teacher((4, 8, 8))
    tc = reproduce_cifar10.make_class(teacher, 4, cfg)
    # The students take the block's 4 channels at half the resolution.
    assert tuple(tc.students[0].input.shape[1:]) == (16, 16, 4)
    assert teacher.get_layer(trainable).trainable
    tc._mark_trained(range(4))
    composed = tc.compose()
    baseline = reproduce_cifar10.baseline_model(cfg, teacher)
    # The composed model and the baseline hold the frozen block once,
    # and count it.
    for name in frozen:
        conv = teacher.get_layer(name)
        assert not conv.trainable
        for model in (composed, baseline):
            assert any(w is conv.kernel for w in model.weights)
            assert not any(w is conv.kernel for w in model.trainable_weights)


def test_a_trained_block_must_be_frozen_to_be_the_students_input():
    from teacherclass import teacher as teacher_lib

    teacher = architectures.cifar10_fast_teacher((4, 8, 8))
    with pytest.raises(ValueError, match="freeze_through"):
        TeacherClass(
            teacher,
            num_students=4,
            student_input=architectures.FAST_STUDENT_TRUNK,
        )
    with pytest.raises(ValueError, match="Received: layer_name='nope'"):
        teacher_lib.freeze_through(teacher, "nope")


def test_the_default_teacher_id_is_stable(reproduce):
    # The checkpoints of a run in progress are keyed by this id: a change
    # to the recipe, widths or teacher name starts the teacher again.
    settings = reproduce.settings
    argv = ["--dataset", "cifar10", "--precision", "mixed_bfloat16"]
    teacher_cfg, _ = settings.configuration(
        settings.parser().parse_args(argv), 50_000
    )
    # 36e8359d4c until the teacher became airbench94's (2026-12-02),
    # 57f6fb6f60 until its convolutions were identity-initialized.
    assert settings.digest(teacher_cfg) == "f30c7e28d9"


def test_teacher_recipe_enters_the_id_only_when_set(reproduce):
    settings = reproduce.settings
    argv = ["--dataset", "cifar10", "--precision", "mixed_bfloat16"]
    default_cfg, _ = settings.configuration(
        settings.parser().parse_args([*argv, "--teacher-recipe", "default"]),
        50_000,
    )
    assert settings.digest(default_cfg) == "f30c7e28d9"
    args = settings.parser().parse_args(
        [*argv, "--teacher-recipe", "lookahead"]
    )
    teacher_cfg, cfg = settings.configuration(args, 50_000)
    assert teacher_cfg["teacher_recipe"] == "lookahead"
    assert settings.digest(teacher_cfg) != "f30c7e28d9"
    # A recorded configuration gives its flags back, and says what differs.
    again = settings.parser().parse_args(settings.argv_for(cfg))
    assert settings.configuration(again, 50_000)[1] == cfg
    assert any("Lookahead" in c for c in settings.changes(cfg))
    with pytest.raises(
        ValueError, match="Received: --teacher-recipe lookahead --dataset mnist"
    ):
        settings.check(
            settings.parser().parse_args(
                ["--dataset", "mnist", "--teacher-recipe", "lookahead"]
            )
        )


def test_best_class_refines_on_cached_logits_and_resumes(
    reproduce, tmp_path, monkeypatch, capsys
):
    import reproduce_state

    best = ("--variant", "best", "--refine-epochs", "2", "--baselines")
    original = reproduce_state.Budget.check

    def check_in_refine_only(self, where):
        if where.endswith("refine epoch 1/2"):
            original(self, where)

    with monkeypatch.context() as m:
        m.setattr(reproduce_state.Budget, "check", check_in_refine_only)
        done, _ = _run(
            reproduce, tmp_path / "a", *best, "--budget-minutes", "1e-9"
        )
        assert not done
    # The uninterrupted twin starts from the same teacher, views and
    # students (the budget test above checks that those stages resume to
    # the same weights): a copy taken at the stop, without the refinement
    # checkpoint, refines from its first epoch to its last in one go.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (partial,) = (tmp_path / "b/runs").rglob("refine")
    shutil.rmtree(partial)
    capsys.readouterr()
    done, split = _run(reproduce, tmp_path / "a", *best)
    assert "refine] resuming after epoch 1/2" in capsys.readouterr().out
    done_whole, whole = _run(reproduce, tmp_path / "b", *best)
    out = capsys.readouterr().out
    assert "refine] epoch 1/2" in out and "refine] resuming" not in out
    assert done and done_whole
    key = next(k for k in whole.data["runs"] if "|class|" in k)
    assert key.endswith("|class|n=4|mse|best|seed=0")
    record = whole.data["runs"][key]
    assert record["ingredients"] == ["head_aware", "conditioning", "refine"]
    assert record["objective"] == "head_aware" and record["variant"] == "best"
    assert len(record["refine"]["history"]) == 2
    assert "before_refine_test_accuracy" in record
    assert split.data["runs"][key]["test_accuracy"] == record["test_accuracy"]
    assert len(whole.data["runs"]) == 1  # no baseline asked for
    import reproduce_cifar10

    # Equal budgets: the baselines train the refinement's epochs too.
    _, cfg, _, _, _ = _setup(reproduce, tmp_path / "c", *best)
    assert reproduce_cifar10.baseline_epochs(cfg) == 2 + 2
    refine = sorted((tmp_path / "a/runs").rglob("refine/state.npz"))
    assert len(refine) == 1
    twin = tmp_path / "b" / refine[0].relative_to(tmp_path / "a")
    for wa, wb in zip(_weights(refine[0]), _weights(twin)):
        np.testing.assert_array_equal(wa, wb)


def test_best_class_can_deal_its_chunks_by_correlation(reproduce, tmp_path):
    settings = reproduce.settings
    best = ("--variant", "best", "--refine-epochs", "1", "--baselines")
    order = ("--chunk-order", "correlation")
    _, cfg, tid, sid, _ = _setup(reproduce, tmp_path / "c", *best, *order)
    _, plain, plain_tid, plain_sid, _ = _setup(reproduce, tmp_path / "c", *best)
    # Recorded only when not the default: older ids are unchanged.
    assert cfg["chunk_order"] == "correlation" and "chunk_order" not in plain
    assert tid == plain_tid and sid != plain_sid
    assert any("by correlation" in c for c in settings.changes(cfg))
    assert "; chunks by correlation" in settings.describe(cfg)
    again = settings.parser().parse_args(settings.argv_for(cfg))
    assert settings.configuration(again, 64)[1] == cfg

    done, state = _run(reproduce, tmp_path / "a", *best, *order)
    assert done
    (record,) = state.data["runs"].values()
    assert record["conditioning"]["chunk_order"] == "correlation"
    assert not record["conditioning"]["balance_chunks"]


def test_validation_runs_are_recorded_as_validation(reproduce, tmp_path):
    # --split validation scores on the held-out end of the training data:
    # its records say so (they said "test" before).
    done, state = _run(reproduce, tmp_path, "--split", "validation")
    assert done
    (teacher,) = state.data["teachers"].values()
    assert "val_accuracy" in teacher and "test_accuracy" not in teacher
    assert len(state.data["runs"]) == 2  # the class and the baseline
    for record in state.data["runs"].values():
        assert record["split"] == "validation"
        assert 0 <= record["val_accuracy"] <= 1
        assert not [k for k in record if k.startswith("test_")]


def test_cifar10_runs_the_plain_and_best_classes_only(reproduce):
    settings = reproduce.settings
    args = settings.parser().parse_args(
        ["--dataset", "cifar10", "--variant", "head_aware"]
    )
    with pytest.raises(ValueError, match="Received: --variant head_aware"):
        settings.check(args)


def test_resumable_run_flags_are_refused_where_they_would_be_ignored(
    reproduce,
):
    settings = reproduce.settings

    def check(*argv):
        settings.check(settings.parser().parse_args(list(argv)))

    for flags in (
        ["--budget-minutes", "5"],
        ["--stages", "teacher"],
        ["--views", "2"],
        ["--student-filters", '{"4": [4]}'],
    ):
        with pytest.raises(ValueError, match=f"Received: {flags[0]} "):
            check("--dataset", "digits", *flags)
        with pytest.raises(ValueError, match="--paper"):
            check("--dataset", "cifar10", "--paper", *flags)
    with pytest.raises(ValueError, match="Received: nan"):
        check("--dataset", "cifar10", "--budget-minutes", "nan")
    # And the other way: flags the resumable run would ignore (they
    # changed its id, not what it trained). Their neutral values, which
    # `argv_for` writes for every recorded configuration, pass.
    for flags, received in (
        (["--augment", "shift"], "--augment shift"),
        (["--teacher-schedule", "cosine"], "--teacher-schedule cosine"),
        (["--augment-students"], "--augment-students"),
        (["--match", "params_macs"], "--match params_macs"),
        (["--steps-per-execution", "1"], "--steps-per-execution 1"),
    ):
        with pytest.raises(ValueError, match=f"Received: {received} "):
            check("--dataset", "cifar10", *flags)
    check(
        "--dataset",
        "cifar10",
        "--augment",
        "none",
        "--teacher-schedule",
        "constant",
        "--match",
        "params",
        "--steps-per-execution",
        "16",
    )
    # The paper's path uses them.
    check("--dataset", "cifar10", "--paper", "--augment", "shift")
    check("--dataset", "cifar10", "--paper", "--teacher-schedule", "cosine")
    for bad in ("[16, 16]", '{"4": 16}', "{4: [16]}"):
        args = settings.parser().parse_args(
            ["--dataset", "cifar10", "--student-filters", bad]
        )
        with pytest.raises(ValueError, match="--student-filters must be"):
            settings.configuration(args, 64)
    args = settings.parser().parse_args(
        ["--dataset", "cifar10", "--views", "0"]
    )
    with pytest.raises(ValueError, match="--views must be positive"):
        settings.configuration(args, 64)


def test_first_seed_trains_only_the_seeds_asked_for(reproduce, tmp_path):
    # --first-seed 2 --seeds 1: seed 2 alone (another machine holds the
    # teachers of seeds 0 and 1).
    _, state = _run(
        reproduce, tmp_path, "--stages", "teacher", "--first-seed", "2"
    )
    (key,) = state.data["teachers"]
    assert key.endswith("-seed2")
    assert state.data["teachers"][key]["seed"] == 2


def test_a_recorded_teacher_is_not_trained_again_silently(reproduce, tmp_path):
    # A new machine: the recorded teacher's file is gone. Its finished
    # checkpoints restore it; without them, a run stops rather than train
    # another teacher under the record the runs were trained with.
    import shutil

    _, state = _run(reproduce, tmp_path, "--stages", "teacher")
    (key,) = state.data["teachers"]
    first = dict(state.data["teachers"][key])
    teacher_file = tmp_path / "cache" / f"teacher-{key}.keras"
    teacher_file.unlink()
    _, state = _run(reproduce, tmp_path, "--stages", "teacher")
    restored = state.data["teachers"][key]
    assert "replaces" not in restored
    assert restored["test_accuracy"] == first["test_accuracy"]
    teacher_file.unlink()
    shutil.rmtree(tmp_path / "runs" / f"teacher-{key}")
    with pytest.raises(SystemExit, match="pass --retrain-teacher"):
        _run(reproduce, tmp_path, "--stages", "teacher")
    assert not teacher_file.exists()
    _, state = _run(
        reproduce, tmp_path, "--stages", "teacher", "--retrain-teacher"
    )
    replaced = state.data["teachers"][key]["replaces"]
    assert replaced["test_accuracy"] == first["test_accuracy"]
    assert replaced["train_seconds"] == first["train_seconds"]
    assert teacher_file.exists()


@pytest.fixture(scope="module")
def teacher_tta():
    return _benchmark("teacher_tta")


def test_tta_levels_average_mirrors_and_reflected_shifts(teacher_tta):
    x = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4, 1)

    def first_row(images):  # "logits": the first row's 4 pixels
        return images[:, 0, :, 0]

    row, below = x[:, 0, :, 0], x[:, 1, :, 0]
    alone, mirror, shifts = teacher_tta.tta_levels(first_row, x)
    np.testing.assert_array_equal(alone, row)
    mirrored = 0.5 * (row + row[:, ::-1])
    np.testing.assert_allclose(mirror, mirrored)
    # Shifted down-right, the first row is the reflected second row,
    # columns (1, 0, 1, 2); shifted up-left, columns (1, 2, 3, 2).
    down_right = below[:, [1, 0, 1, 2]]
    up_left = below[:, [1, 2, 3, 2]]
    expected = 0.5 * mirrored + 0.25 * sum(
        0.5 * (s + s[:, ::-1]) for s in (down_right, up_left)
    )
    np.testing.assert_allclose(shifts, expected)


def test_tta_scores_a_saved_teacher_and_reads_its_record(teacher_tta, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    logits = keras.layers.Dense(3, name="logits")(
        keras.layers.Flatten()(inputs)
    )
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    head = keras.Model(inputs, logits)
    x = np.random.default_rng(0).random((64, 8, 8, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 64)
    z = head.predict(x, verbose=0)
    z_mirror = head.predict(x[:, :, ::-1], verbose=0)
    path = tmp_path / "teacher-x-seed0.keras"
    model.save(path)
    path.with_suffix(".json").write_text(json.dumps({"test_accuracy": 0.5}))
    record = teacher_tta.score(path, x, y)
    assert record["recorded_test_accuracy"] == 0.5
    for level, scores in ((0, z), (1, z + z_mirror)):
        expected = float((scores.argmax(-1) == y).mean())
        assert record[f"test_accuracy_tta{level}"] == pytest.approx(expected)


@pytest.fixture(scope="module")
def chunk_classes():
    return _benchmark("chunk_classes")


def test_chunk_classes_shares_each_class_evidence(chunk_classes):
    # Features 0, 1 vote for class "a", 2 for "b", 3 for "c"; feature 1
    # varies twice as much as feature 0.
    covariance = np.diag([1.0, 4.0, 1.0, 1.0])
    kernel = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 2.0, -1.0], [0, 0, 3.0]])
    shares = chunk_classes.chunk_classes(
        covariance, kernel, np.array([1, 3, 0, 2]), (2, 2), ("a", "b", "c")
    )
    # Chunk 0 (features 1, 3): 2/3 of a's evidence (1 * 2 of 1 + 2), all
    # of c's; chunk 1 (0, 2): the rest of a's and all of b's.
    assert shares == [
        {"c": 1.0, "a": 0.667, "b": 0.0},
        {"b": 1.0, "a": 0.333, "c": 0.0},
    ]


def test_rank_sized_filters_follow_ranks_within_the_same_parameters():
    probe = _benchmark("student_probe")

    def parameters(filters):  # a stand-in: quadratic in the widths
        return sum(f * f for student in filters for f in student)

    sized = probe.rank_sized_filters([10, 20], [1.0, 4.0, 4.0], parameters)
    equal = parameters([[10, 20]] * 3)
    assert parameters(sized) <= equal
    assert parameters(sized) > 0.97 * equal
    # sqrt(4 / 1) = 2: the rank-4 students get twice the filters.
    assert sized[1] == sized[2]
    assert sized[1][1] == pytest.approx(2 * sized[0][1], abs=1)
    assert sized[0][1] < 20 < sized[1][1]


def test_filters_by_rank_without_conditioning_is_refused(capsys):
    probe = _benchmark("student_probe")
    required = ["--teacher", "t.keras", "--data-dir", "data"]
    with pytest.raises(SystemExit):
        probe.parse([*required, "--filters-by-rank"])
    assert "Received: --conditioning none" in capsys.readouterr().err
    args = probe.parse(
        [*required, "--filters-by-rank", "--conditioning", "standardize"]
    )
    assert args.filters_by_rank


def test_student_probe_trains_a_baseline_on_the_views(tmp_path, capsys):
    from teacherclass import views

    probe = _benchmark("student_probe")  # puts benchmarks/ on the path
    import reproduce_cifar10

    required = ["--teacher", "t.keras", "--data-dir", "data"]
    flags = [
        *required, "--baseline", "distill", "--epochs", "2",
        "--refine-epochs", "1", "--filters", json.dumps([4] * 8),
        "--student-input", "whitening_gelu", "--batch-norm", "on",
    ]  # fmt: skip
    args = probe.parse(flags)
    teacher = architectures.cifar10_fast_teacher((4, 8, 8))
    x, y, x_val, y_val = _data()
    cache = views.ViewCache.build(tmp_path / "views", teacher, x, 1)
    record = probe.probe_baseline(
        args, teacher, cache, (x, y, x_val, y_val, None), [4] * 8
    )
    # reproduce.py's baseline, through the same frozen stem, for the
    # students' epochs plus the refinement's.
    cfg = {
        "student_input": "whitening_gelu",
        "baseline_filters": [4] * 8,
        "student_batch_norm": True,
    }
    expected = reproduce_cifar10.baseline_model(cfg, teacher)
    assert record["params"] == expected.count_params()
    assert record["baseline"] == "distill"
    assert record["baseline_epochs"] == 3
    assert len(record["epoch_seconds"]) == 3
    assert 0 <= record["val_accuracy"] <= 1
    # No students train: their flags are refused.
    for flag, value in (
        ("--loss", "head_aware"),
        ("--conditioning", "standardize"),
        ("--students", "8"),
        ("--chunk-order", "variance"),
    ):
        with pytest.raises(SystemExit):
            probe.parse([*flags, flag, value])
        assert f"Received: {flag} {value}" in capsys.readouterr().err


def test_student_probes_record_whether_the_teacher_saw_their_validation(
    tmp_path,
):
    _benchmark("student_probe")  # puts benchmarks/ on the path
    import _common

    results = tmp_path / "cifar10.json"
    results.write_text(
        json.dumps(
            {
                "teachers": {
                    "aaa-seed0": {"config": {"samples": 50000}},
                    "bbb-seed1": {"config": {"samples": 45000}},
                }
            }
        )
    )

    def saw(path):
        return _common.validation_in_teacher_training(path, results)

    # reproduce.py's teachers train on all 50,000 training images, the
    # probes' last 5,000 among them.
    assert (
        _common.teacher_training_samples("x/teacher-aaa-seed0.keras", results)
        == 50000
    )
    assert saw("x/teacher-aaa-seed0.keras") is True
    assert saw("teacher-bbb-seed1.keras") is False
    assert saw("teacher-ccc-seed0.keras") is None
    assert saw("my_teacher.keras") is None
    # The committed record says so for the probes' teacher.
    assert _common.validation_in_teacher_training(
        "benchmarks/cache/cifar10/teacher-f30c7e28d9-seed0.keras"
    )


def test_student_scores_give_the_error_in_feature_coordinates_too():
    _benchmark("student_probe")
    import _common

    class Fitted:  # standardizing: targets = features / 2
        def transform(self, features):
            return features / 2

        def inverse(self, targets):
            return targets * 2

    class Model:
        def __init__(self, fn):
            self.fn = fn

        def predict(self, x, **kwargs):
            return self.fn(x)

    class Class:
        def __init__(self, fitted):
            self.fitted = fitted

        def representation(self):
            return Model(lambda x: x)

        def target_conditioning(self):
            return self.fitted

        def target_head(self):
            return Model(lambda s: s), None

    x = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    clean = np.array([[3.0, 0.0], [0.0, 1.0]], "float32")
    y = np.array([0, 1])
    plain = _common.student_scores(Class(None), x, y, clean)
    assert plain["val_mse"] == plain["val_mse_features"] == 1.0
    conditioned = _common.student_scores(Class(Fitted()), x, y, clean)
    # Targets (1.5, 0), (0, 0.5): error 0.0625 a unit there; the students'
    # output in features (2, 0), (0, 2): error 0.5.
    assert conditioned["val_mse"] == pytest.approx(0.125)
    assert conditioned["val_mse_features"] == pytest.approx(0.5)
    assert conditioned["val_accuracy"] == 1.0
