"""airbench's Lookahead callback: schedule, end state and resume."""

import keras
import numpy as np
import pytest
from helpers import PreemptedAfterFirstEpoch

from teacherclass.lookahead import Lookahead

X = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
Y = X @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse"
    )
    model.optimizer.build(model.trainable_variables)
    return model


def _fit(model, epochs, callbacks=(), initial_epoch=0):
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        callbacks=list(callbacks),
        verbose=0,
    )


def _values(variables):
    return [v.numpy() for v in variables]


def test_alpha_rises_as_the_cube_of_progress():
    look = Lookahead(_model(), total_steps=100)
    assert look.alpha(0) == 0
    assert look.alpha(50) == pytest.approx(0.95**5 / 8)
    assert look.alpha(100) == pytest.approx(0.95**5)


def test_zero_peak_leaves_training_unchanged():
    plain, looked = _model(), _model()
    _fit(plain, 2)
    _fit(looked, 2, [Lookahead(looked, total_steps=8, every=2, peak=0.0)])
    for a, b in zip(_values(plain.weights), _values(looked.weights)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_averages_and_ends_on_the_slow_copy():
    plain, looked = _model(), _model()
    look = Lookahead(looked, total_steps=8, every=2, peak=0.9)
    _fit(plain, 2)
    _fit(looked, 2, [look])
    # The weights end on the slow copy, which differs from plain training.
    for slow, w in zip(_values(look.variables), _values(looked.weights)):
        np.testing.assert_array_equal(slow, w)
    assert not np.allclose(plain.weights[0].numpy(), looked.weights[0].numpy())


def test_resumes_to_the_same_weights(tmp_path):
    whole = _model()
    _fit(whole, 2, [Lookahead(whole, total_steps=8, every=3, peak=0.9)])

    first = _model()
    look = Lookahead(first, total_steps=8, every=3, peak=0.9)
    _fit(first, 1, [look])
    saved = _values(first.weights + first.optimizer.variables + look.variables)

    second = _model()
    look = Lookahead(second, total_steps=8, every=3, peak=0.9)
    for v, value in zip(
        second.weights + second.optimizer.variables + look.variables, saved
    ):
        v.assign(value)
    _fit(second, 2, [look], initial_epoch=1)
    for a, b in zip(_values(whole.weights), _values(second.weights)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("lookahead_first", [False, True])
def test_a_keras_checkpoint_restarts_the_slow_copy_from_its_weights(
    tmp_path, lookahead_first
):
    # BackupAndRestore holds the weights and the optimizer, not the slow
    # copy: a resumed fit restarts it from the restored weights (it was
    # the random start, pulling the trained weights back to it).
    model = _model()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    look = Lookahead(model, total_steps=12, every=3, peak=0.9)
    with pytest.raises(RuntimeError):
        _fit(model, 3, [backup, look, PreemptedAfterFirstEpoch()])
    saved = _values(model.weights)

    resumed = _model()
    fresh = _values(resumed.weights)
    look = Lookahead(resumed, total_steps=12, every=3, peak=0.9)
    seen = []

    class Peek(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if not seen:
                seen.append(_values(look.variables))

    # Either order: BackupAndRestore restores in its on_train_begin.
    order = [look, backup] if lookahead_first else [backup, look]
    with pytest.warns(UserWarning, match="stands at optimizer step 0"):
        _fit(resumed, 3, [*order, Peek()])
    for slow, restored, start in zip(seen[0], saved, fresh):
        np.testing.assert_array_equal(slow, restored)
        assert not np.array_equal(slow, start) or np.array_equal(
            restored, start
        )


def test_a_repeated_step_count_is_acted_on_once():
    # A LossScaleOptimizer that skips a step leaves `iterations` as it
    # was: the update of that step must not run twice.
    model = _model()
    look = Lookahead(model, total_steps=8, every=2, peak=0.9)
    look.set_model(model)
    look.on_train_begin()
    model.optimizer.iterations.assign(2)
    model.weights[0].assign(model.weights[0] + 1.0)
    look.on_train_batch_end(0)
    once = _values(look.variables)
    model.weights[0].assign(model.weights[0] + 1.0)
    look.on_train_batch_end(1)  # the same step: skipped
    for a, b in zip(once, _values(look.variables)):
        np.testing.assert_array_equal(a, b)


def test_rejects_bad_arguments():
    model = _model()
    with pytest.raises(ValueError, match="Received: total_steps=0"):
        Lookahead(model, total_steps=0)
    with pytest.raises(ValueError, match="Received: every=1.5"):
        Lookahead(model, total_steps=10, every=1.5)
    with pytest.raises(ValueError, match="Received: peak=1"):
        Lookahead(model, total_steps=10, peak=1)
    unbuilt = keras.Sequential([keras.layers.Dense(1)], name="unbuilt")
    with pytest.raises(ValueError, match="Received: model='unbuilt'"):
        Lookahead(unbuilt, total_steps=10)


def test_rejects_every_beyond_total_steps():
    # No update would run and the last step would set the weights back
    # to the starting ones.
    with pytest.raises(ValueError, match="Received: every=5, total_steps=4"):
        Lookahead(_model(), total_steps=4, every=5)


def test_peak_takes_any_real_number_but_a_bool():
    look = Lookahead(_model(), total_steps=8, peak=np.float32(0.5))
    assert look.peak == 0.5 and type(look.peak) is float
    with pytest.raises(ValueError, match="Received: peak=False"):
        Lookahead(_model(), total_steps=8, peak=False)


def test_refuses_an_optimizer_already_at_total_steps():
    # `total_steps` is the optimizer's step at which training ends,
    # counted from 0: on a model trained 4 steps, total_steps=4 would
    # never end on the slow copy.
    model = _model()
    _fit(model, 1)
    before = _values(model.weights)
    look = Lookahead(model, total_steps=4, every=2)
    with pytest.raises(
        ValueError, match=r"stands at step 4.*Received: total_steps=4"
    ):
        _fit(model, 1, [look])
    assert int(model.optimizer.iterations.numpy()) == 4
    for a, b in zip(before, _values(model.weights)):
        np.testing.assert_array_equal(a, b)


def test_a_fit_with_no_batch_left_is_let_be_at_total_steps():
    # A resumed script whose stage is done calls fit(initial_epoch=E,
    # epochs=E): no batch runs, so nothing is refused or changed.
    model = _model()
    look = Lookahead(model, total_steps=8, every=2)
    _fit(model, 2, [look])
    before = _values(model.weights)
    _fit(model, 2, [look], initial_epoch=2)
    assert int(model.optimizer.iterations.numpy()) == 8
    for a, b in zip(before, _values(model.weights)):
        np.testing.assert_array_equal(a, b)


def test_fine_tunes_with_total_steps_past_the_optimizers_step():
    # Fine-tuning 8 steps: total_steps = iterations + 8 ends on the slow
    # copy, with alpha on the optimizer's schedule.
    model = _model()
    _fit(model, 1)
    look = Lookahead(model, total_steps=4 + 8, every=3, peak=0.9)
    assert look.alpha(6) == pytest.approx(0.9 * (6 / 12) ** 3)
    _fit(model, 2, [look])
    assert int(model.optimizer.iterations.numpy()) == 12
    for slow, w in zip(_values(look.variables), _values(model.weights)):
        np.testing.assert_array_equal(slow, w)


def test_warns_once_when_training_runs_past_total_steps():
    # 2 epochs of 4 steps with total_steps=4: the second epoch moves the
    # weights off the slow copy the first one ended on.
    model = _model()
    look = Lookahead(model, total_steps=4, every=2)
    with pytest.warns(UserWarning, match="past Lookahead's `total_steps`") as w:
        _fit(model, 2, [look])
    past = [m for m in w if "past Lookahead" in str(m.message)]
    assert len(past) == 1
    assert "step 5" in str(past[0].message)
    assert "Received: total_steps=4" in str(past[0].message)


def test_no_warning_when_training_ends_at_total_steps(recwarn):
    model = _model()
    _fit(model, 2, [Lookahead(model, total_steps=8, every=2)])
    assert not [m for m in recwarn if "past Lookahead" in str(m.message)]
