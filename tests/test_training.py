"""The students' trainer (training.py) and the callbacks of fit_students."""

import keras
import numpy as np
import pytest
from helpers import PreemptedAfterFirstEpoch
from helpers import mlp_teacher

from teacherclass import DenseTower
from teacherclass import TeacherClass
from teacherclass import objectives
from teacherclass import training


def _tc(teacher, **kwargs):
    kwargs.setdefault("student", DenseTower(1, hidden=(8,)))
    kwargs.setdefault("num_students", 2)
    return TeacherClass(teacher, **kwargs)


# --- the trainer ----------------------------------------------------------


def test_trainer_returns_a_dict_and_slices_the_targets():
    towers = [keras.layers.Dense(2), keras.layers.Dense(3)]
    trainer = training.StudentTrainer(towers, indices=(0, 1), chunks=(2, 3))
    x = np.ones((4, 6), "float32")
    out = trainer(x)
    assert sorted(out) == ["student_0", "student_1"]
    target = np.arange(20, dtype="float32").reshape(4, 5)
    chunks = trainer.targets(x, target)
    np.testing.assert_array_equal(chunks["student_0"], target[:, :2])
    np.testing.assert_array_equal(chunks["student_1"], target[:, 2:])


def test_trainer_loss_is_the_sum_of_the_students_keras_losses():
    keras.utils.set_random_seed(0)
    towers = [keras.layers.Dense(2), keras.layers.Dense(3)]
    chunks = (1, 1, 1, 2, 1, 3)  # student 3: features 3-4, student 5: 6-8
    trainer = training.StudentTrainer(towers, indices=(3, 5), chunks=chunks)
    trainer.compile(optimizer="sgd", loss="mae")
    x = np.random.default_rng(0).random((16, 6), "float32")
    y = np.random.default_rng(1).random((16, 9), "float32")
    logs = trainer.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "student_3_loss", "student_5_loss"}
    pred = trainer.predict(x, verbose=0)
    mae3 = np.mean(np.abs(pred["student_3"] - y[:, 3:5]))
    mae5 = np.mean(np.abs(pred["student_5"] - y[:, 6:9]))
    assert logs["student_3_loss"] == pytest.approx(mae3, rel=1e-5)
    assert logs["loss"] == pytest.approx(mae3 + mae5, rel=1e-5)


def test_one_student_still_reports_its_loss(teacher, data):
    history = _tc(teacher).fit_students(
        data[0], students=[1], validation_data=data[2], verbose=0
    )
    assert set(history.history) == {
        "loss",
        "student_1_loss",
        "val_loss",
        "val_student_1_loss",
    }
    np.testing.assert_allclose(
        history.history["student_1_loss"], history.history["loss"], rtol=1e-5
    )


@pytest.mark.parametrize(
    "loss, students",
    [("mse", [1]), ("head_aware", None), ("adversarial", None)],
)
def test_epoch_losses_do_not_depend_on_a_short_last_batch(
    teacher, data, loss, students
):
    # Keras weighs a batch's `loss` by its size; the trainers' own
    # trackers must too, or 5 samples in batches of 4 give the last one
    # a weight of 1/2 instead of 1/5.
    x = data[0][:5]
    tc = _tc(teacher)
    trainer = training.for_class(tc, students=students, loss=loss, augment=1)
    trainer.compile(loss=loss)
    whole, short = (
        trainer.evaluate(x, batch_size=b, verbose=0, return_dict=True)
        for b in (5, 4)
    )
    assert len(whole) >= 2
    for name in whole:
        assert short[name] == pytest.approx(whole[name], rel=1e-5), name


@pytest.mark.parametrize("loss", ["mse", "head_aware", "adversarial"])
def test_every_trainer_adds_the_students_regularization(teacher, data, loss):
    """The students' weight regularizers are in every objective's loss,
    as Keras adds them to a regression loss (head-aware and adversarial
    dropped them)."""
    x = data[0][:16]

    def tower(regularizer):
        return keras.Sequential(
            [keras.layers.Dense(8, kernel_regularizer=regularizer)]
        )

    def evaluate(regularizer):
        keras.utils.set_random_seed(1)
        tc = _tc(teacher, student=[tower(regularizer), tower(regularizer)])
        trainer = training.for_class(tc, loss=loss, augment=1)
        trainer.compile(loss=loss)
        logs = trainer.evaluate(x, batch_size=16, verbose=0, return_dict=True)
        kernels = [s.layers[0].kernel.numpy() for s in tc.students]
        return logs["loss"], sum(float(np.sum(k**2)) for k in kernels)

    plain, _ = evaluate(None)
    regularized, norm = evaluate(keras.regularizers.L2(100.0))
    assert 100.0 * norm > 1.0
    np.testing.assert_allclose(regularized - plain, 100.0 * norm, rtol=1e-4)


def test_the_class_switches_no_modes(teacher, data):
    tc = _tc(teacher)
    tc.fit_students(data[0], verbose=0)
    for name in ("_fitting", "_objective", "_adversary", "_step_targets"):
        assert not hasattr(tc, name)
    assert not tc.compiled  # fitting students does not compile the class
    assert not any("student_" in m.name for m in tc.metrics)
    # The call is the composed path, always a tensor.
    assert tc(data[0][:2]).shape == (2, 3)


def test_adversarial_trainer_keeps_discriminators_out_of_the_class(
    teacher, data
):
    tc = _tc(teacher)
    before = len(tc.weights)
    history = tc.fit_students(data[0], loss="adversarial", epochs=1, verbose=0)
    assert {"loss", "student_0_d_loss", "student_1_mse"} <= set(history.history)
    assert len(tc.weights) == before
    trainer = training.for_class(tc, loss="adversarial")
    assert isinstance(trainer, training.AdversarialTrainer)
    assert len(trainer.discriminators) == 2
    assert not any("discriminator" in w.path for w in tc.weights)


def test_fit_kwargs_pass_through(teacher, data):
    history = _tc(teacher).fit_students(
        data[0],
        epochs=4,
        validation_data=data[2],
        validation_freq=2,
        verbose=0,
    )
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2  # epochs 2 and 4
    with pytest.raises(ValueError, match="Received: class_weight=\\{0: 1\\}"):
        _tc(teacher).fit_students(data[0], class_weight={0: 1}, verbose=0)
    with pytest.raises(ValueError, match="Received: validation_freq=0"):
        _tc(teacher).fit_students(data[0], validation_freq=0, verbose=0)


def test_regression_loss_refuses_adversarial():
    with pytest.raises(ValueError, match="Received: loss='adversarial'"):
        objectives.regression_loss("adversarial")


# --- callbacks see the trainer, save the class -------------------------------


def test_model_checkpoint_writes_the_class(teacher, data, tmp_path):
    tc = _tc(teacher)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.model)

    path = tmp_path / "tc.keras"
    tc.fit_students(
        data[0],
        epochs=1,
        verbose=0,
        callbacks=[keras.callbacks.ModelCheckpoint(path), Spy()],
    )
    assert isinstance(seen[0], training.StudentTrainer)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, TeacherClass)
    for a, b in zip(loaded.students[0].get_weights(), tc.students[0].weights):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_weights_load_into_the_class(teacher, data, tmp_path):
    tc = _tc(teacher)
    path = tmp_path / "best.weights.h5"
    tc.fit_students(
        data[0],
        epochs=2,
        verbose=0,
        callbacks=[
            keras.callbacks.ModelCheckpoint(path, save_weights_only=True)
        ],
    )
    other = _tc(teacher)
    other.load_weights(path)
    for i in range(2):
        for a, b in zip(
            other.students[i].get_weights(), tc.students[i].get_weights()
        ):
            np.testing.assert_array_equal(a, b)
    # Written at an epoch's end, with the students marked trained
    # (`training.MarkTrained`): the class composes.
    assert other.trained_students == [0, 1]
    np.testing.assert_allclose(
        other.compose().predict(data[0][:8], verbose=0),
        tc.compose().predict(data[0][:8], verbose=0),
        rtol=1e-6,
    )


def test_early_stopping_stops_the_students(teacher, data):
    history = _tc(teacher).fit_students(
        data[0],
        epochs=20,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(
                "student_1_loss", mode="min", patience=0, min_delta=10.0
            )
        ],
    )
    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize("form", ["one", "callback_list", "nested"])
def test_callbacks_in_any_form_fit_takes(teacher, data, form):
    stop = keras.callbacks.EarlyStopping(
        "student_1_loss", mode="min", patience=0, min_delta=10.0
    )
    callbacks = {
        "one": stop,
        "callback_list": keras.callbacks.CallbackList([stop]),
        "nested": [[stop]],
    }[form]
    history = _tc(teacher).fit_students(
        data[0][:64], epochs=20, verbose=0, callbacks=callbacks
    )
    assert len(history.history["loss"]) == 2


def test_backup_and_restore_restores_the_students(teacher, data, tmp_path):
    x = data[0]

    tc = _tc(teacher)
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(RuntimeError):
        tc.fit_students(
            x,
            epochs=3,
            verbose=0,
            callbacks=[backup, PreemptedAfterFirstEpoch()],
        )
    after_first = [w.copy() for w in tc.students[0].get_weights()]
    # Another class, same teacher: the backup restores the students' state.
    fresh = _tc(teacher)
    loaded = []

    class Peek(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if not loaded:
                loaded.append(fresh.students[0].get_weights())

    history = fresh.fit_students(
        x, epochs=3, verbose=0, callbacks=[backup, Peek()]
    )
    assert len(history.history["loss"]) == 2
    for a, b in zip(loaded[0], after_first):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loss", ["mse", "adversarial"])
def test_backup_and_restore_resumes_the_students_optimizer(
    teacher, data, tmp_path, loss
):
    # Keras' `save_weights` of a compiled model keeps its optimizer; the
    # trainer saves the class's weights instead, and its optimizer's
    # state beside them: the step count (a schedule's position) and
    # moments go on where the backup left them.
    x = data[0]  # 256 samples: 8 steps of 32 per epoch

    tc = _tc(teacher)
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup")
    first = keras.optimizers.Adam(1e-3)
    with pytest.raises(RuntimeError):
        tc.fit_students(
            x,
            loss=loss,
            epochs=3,
            optimizer=first,
            verbose=0,
            callbacks=[backup, PreemptedAfterFirstEpoch()],
        )
    assert int(first.iterations.numpy()) == 8
    resumed = keras.optimizers.Adam(1e-3)
    history = tc.fit_students(
        x, loss=loss, epochs=3, optimizer=resumed, verbose=0, callbacks=[backup]
    )
    assert len(history.history["loss"]) == 2
    assert int(resumed.iterations.numpy()) == 24


def test_tensorboard_logs_per_student_losses(teacher, data, tmp_path):
    _tc(teacher).fit_students(
        data[0],
        epochs=1,
        validation_data=data[2],
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(tmp_path / "logs")],
    )
    events = list((tmp_path / "logs").rglob("events.out.tfevents*"))
    assert {p.parent.name for p in events} >= {"train", "validation"}


def test_fit_teacher_augment(data):
    """A deterministic 'augmentation' equals training on shifted inputs."""
    x, y = data[0], data[1]

    class Shift(keras.layers.Layer):
        def call(self, inputs, training=False):
            return inputs + 1.0 if training else inputs

    fit = dict(epochs=2, batch_size=32, shuffle=False, verbose=0)
    keras.utils.set_random_seed(0)
    a = _tc(mlp_teacher())
    ha = a.fit_teacher(x, y, augment=Shift(), **fit)
    keras.utils.set_random_seed(0)
    b = _tc(mlp_teacher())
    hb = b.fit_teacher(x + 1.0, y, **fit)
    np.testing.assert_allclose(
        ha.history["loss"], hb.history["loss"], rtol=1e-4
    )
    with pytest.raises(TypeError, match="Received: augment='flip'"):
        a.fit_teacher(x, y, augment="flip")
    with pytest.raises(ValueError, match="Received: validation_split=0.2"):
        a.fit_teacher(x, y, augment=Shift(), validation_split=0.2)
