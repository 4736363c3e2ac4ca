import zipfile

import keras
import numpy as np
import pytest

from teacherclass import DenseTower
from teacherclass import TeacherClass
from teacherclass import objectives


def _tc(teacher):
    return TeacherClass(
        teacher, num_students=2, student=DenseTower(1, hidden=(16,))
    )


def _weight_paths(model):
    return [w.path for w in model.weights]


def test_get_resolves_names():
    assert objectives.get("adversarial").direct_weight == 1.0
    paper = objectives.get("adversarial_paper")
    assert paper.direct_weight == 0.0 and paper.name == "adversarial_paper"
    custom = objectives.Adversarial(hidden=(8,))
    assert objectives.get(custom) is custom
    assert not objectives.is_adversarial(objectives.get("mse"))


@pytest.mark.parametrize(
    "loss", [keras.losses.MeanSquaredError, "mean_squared_error"]
)
def test_a_loss_class_or_keras_name_is_a_loss(loss):
    """A `keras.losses.Loss` class is made with its defaults, as
    `keras.Model.compile` makes it: not called on the targets."""
    target = np.ones((4, 3), "float32")
    prediction = np.zeros((4, 3), "float32")
    assert float(objectives.get(loss)(target, prediction)) == 1.0
    resolved = objectives.regression_loss(loss)
    assert float(keras.ops.mean(resolved(target, prediction))) == 1.0


def test_one_student_trains_with_a_loss_class(teacher, data):
    tc = _tc(teacher)
    history = tc.fit_students(
        data[0][:32],
        loss=keras.losses.MeanSquaredError,
        students=[0],
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["student_0_loss"]).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"direct_weight": -1}, "Received: direct_weight=-1"),
        ({"adversarial_weight": "x"}, "Received: adversarial_weight='x'"),
        ({"hidden": ()}, r"Received: hidden=\(\)"),
        (
            {"direct_weight": float("nan")},
            "`direct_weight` must be a finite number >= 0. "
            "Received: direct_weight=nan",
        ),
        ({"adversarial_weight": float("inf")}, "adversarial_weight=inf"),
        ({"adversarial_weight": True}, "Received: adversarial_weight=True"),
        (
            {"hidden": 5},
            r"`hidden` must be a sequence of at least one positive "
            r"integer, e.g. \(64, 64\). Received: hidden=5",
        ),
        (
            {"hidden": (8, True)},
            r"`hidden` must be a sequence .* Received: hidden=\(8, True\)",
        ),
    ],
)
def test_adversarial_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        objectives.Adversarial(**kwargs)


def test_adversarial_takes_numpy_numbers():
    objective = objectives.Adversarial(
        direct_weight=np.float32(0.5),
        adversarial_weight=np.float64(0.25),
        hidden=[np.int64(8)],
    )
    assert (objective.direct_weight, objective.adversarial_weight) == (
        0.5,
        0.25,
    )
    assert type(objective.direct_weight) is float
    assert objective.hidden == (8,) and type(objective.hidden[0]) is int


def test_discriminator_on_feature_maps():
    d = objectives.Adversarial(hidden=(4,)).discriminator((5, 6, 3))
    logit, regression = d(np.zeros((2, 5, 6, 3), "float32"))
    assert logit.shape == (2, 5, 6, 1) and regression.shape == (2, 5, 6, 3)


def test_adversarial_students_learn_and_leave_no_discriminator(
    teacher, data, tmp_path
):
    x, _, x_test, y_test = data
    tc = _tc(teacher)
    paths = _weight_paths(tc)
    history = tc.fit_students(
        x, epochs=25, validation_data=x_test, loss="adversarial", verbose=0
    )
    per_student = ("loss", "d_loss", "mse")
    keys = {"loss", *(f"student_{i}_{k}" for i in (0, 1) for k in per_student)}
    assert set(history.history) == keys | {f"val_{k}" for k in keys}
    for i in (0, 1):
        mse = history.history[f"val_student_{i}_mse"]
        assert mse[-1] < mse[0] / 2
    composed = tc.compose()
    assert composed.evaluate(x_test, y_test, verbose=0)[1] > 0.8
    # The discriminators lived for the fit only.
    assert _weight_paths(tc) == paths
    assert not hasattr(tc, "_adversary")  # no training mode on the class
    assert not any("discriminator" in p for p in _weight_paths(composed))
    tc.save(tmp_path / "tc.keras")
    tc.save_students(tmp_path / "students")
    for path in [tmp_path / "tc.keras", tmp_path / "students/student_0.keras"]:
        with zipfile.ZipFile(path) as f:
            assert not any(
                b"discriminator" in f.read(name) for name in f.namelist()
            )
    loaded = keras.saving.load_model(tmp_path / "tc.keras")
    assert [w.shape for w in loaded.weights] == [w.shape for w in tc.weights]
    with pytest.raises(ValueError, match="Received: loss='adversarial'"):
        tc.evaluate_students(x_test, loss="adversarial")


def test_adversarial_paper_regresses_through_the_discriminator(teacher, data):
    x = data[0]
    tc = _tc(teacher)
    history = tc.fit_students(
        x, epochs=12, loss="adversarial_paper", students=[1], verbose=0
    )
    assert set(history.history) == {
        "loss",
        "student_1_loss",
        "student_1_d_loss",
        "student_1_mse",
    }
    mse = history.history["student_1_mse"]
    assert mse[-1] < mse[0] * 0.75
    assert tc.trained_students == [1]
