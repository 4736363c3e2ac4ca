"""The head-aware objective, target conditioning in the class, refine."""

import keras
import numpy as np
import pytest
from helpers import blobs
from helpers import trained_mlp_teacher

from teacherclass import TeacherClass
from teacherclass import objectives
from teacherclass import training


@pytest.fixture(scope="module")
def data():
    return blobs(n=192, classes=3)


@pytest.fixture(scope="module")
def teacher(data):
    keras.utils.set_random_seed(0)
    return trained_mlp_teacher(*data, epochs=30, width=12)


def _students_weights(tc):
    return [s.get_weights() for s in tc.students]


def test_objective_by_name_and_config():
    objective = objectives.get("head_aware")
    assert isinstance(objective, objectives.HeadAware)
    copy = objectives.HeadAware.from_config(
        objectives.HeadAware(temperature=2.0, label_weight=0.3).get_config()
    )
    assert (copy.temperature, copy.label_weight) == (2.0, 0.3)
    with pytest.raises(ValueError, match="temperature=0"):
        objectives.HeadAware(temperature=0)
    with pytest.raises(ValueError, match="label_weight=-1"):
        objectives.HeadAware(label_weight=-1)
    with pytest.raises(ValueError, match="own step"):
        objectives.regression_loss("head_aware")


def test_distillation_is_zero_for_equal_logits_and_binary():
    objective = objectives.HeadAware(temperature=2.0)
    t = np.array([[1.0, -2.0, 0.5]], "float32")
    assert float(objective.distillation(t, t)) == pytest.approx(0, abs=1e-6)
    assert float(objective.distillation(t, t[:, ::-1])) > 0
    b = np.array([[0.3], [-1.0]], "float32")
    assert float(objective.distillation(b, b)) == pytest.approx(0, abs=1e-6)
    assert float(objective.distillation(b, -b)) > 0


def test_gradient_of_a_students_loss_reaches_only_that_student(teacher, data):
    import tensorflow as tf

    x = data[0][:16]
    tc = TeacherClass(teacher, num_students=3)
    trainer = training.for_class(tc, loss="head_aware")
    trainer.compile()
    from teacherclass import baselines

    feats = tc.cut.trunk()(x)
    y = {"features": feats, "logits": baselines.logits_model(tc.head)(feats)}
    # Student 1's term alone, as compute_loss forms it.
    with tf.GradientTape(persistent=True) as tape:
        preds = trainer(x, training=True)
        rep, t_logits, _ = trainer.unpack(x, y)
        start, stop = trainer.bounds[1]
        s_logits = trainer.student_logits(rep, start, stop, preds["student_1"])
        loss_1 = trainer.objective.loss(
            rep[..., start:stop], preds["student_1"], t_logits, s_logits, None
        )
    for i, student in enumerate(tc.students):
        grads = tape.gradient(loss_1, student.trainable_weights)
        norm = sum(
            float(tf.reduce_sum(tf.abs(g))) for g in grads if g is not None
        )
        assert (norm > 0) == (i == 1)


def test_one_pass_equals_separate_training(teacher, data):
    x, y = data
    tc = TeacherClass(teacher, num_students=2)
    initial = _students_weights(tc)
    objective = objectives.HeadAware(label_weight=0.5)
    sgd = dict(shuffle=False, batch_size=32, epochs=1, verbose=0)
    tc.fit_students(
        x, y, loss=objective, optimizer=keras.optimizers.SGD(0.05), **sgd
    )
    together = _students_weights(tc)
    for s, w in zip(tc.students, initial):
        s.set_weights(w)
    for i in range(2):
        tc.fit_students(
            x,
            y,
            students=[i],
            loss=objective,
            optimizer=keras.optimizers.SGD(0.05),
            **sgd,
        )
    for i in range(2):
        assert not np.allclose(together[i][0], initial[i][0])
        for a, b in zip(together[i], tc.students[i].get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_head_aware_students_compose_to_an_accurate_model(teacher, data):
    x, y = data
    keras.utils.set_random_seed(1)
    tc = TeacherClass(teacher, num_students=2)
    history = tc.fit_students(x, loss="head_aware", epochs=15, verbose=0)
    assert set(history.history) == {"loss", "student_0_loss", "student_1_loss"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    composed = tc.compose()
    accuracy = np.mean(composed.predict(x, verbose=0).argmax(-1) == y)
    assert accuracy > 0.9


def test_label_term_needs_labels(teacher, data):
    tc = TeacherClass(teacher, num_students=2)
    with pytest.raises(ValueError, match="Received: y=None"):
        tc.fit_students(
            data[0], loss=objectives.HeadAware(label_weight=1.0), verbose=0
        )


def test_augment_disk_cache_and_bfloat16(teacher, data, tmp_path):
    x, y = data
    tc = TeacherClass(teacher, num_students=2)
    history = tc.fit_students(
        x,
        y,
        loss=objectives.HeadAware(label_weight=0.5),
        augment=keras.layers.GaussianNoise(0.05),
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])
    for _ in range(2):  # writes the cache, then reads it back
        history = tc.fit_students(
            x, loss="head_aware", cache=str(tmp_path), epochs=1, verbose=0
        )  # (the cache stores the logits: format 3)
        assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ValueError, match="with the teacher's logits"):
        tc.fit_students(x, cache=str(tmp_path), verbose=0)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        student = keras.layers.Dense(6)
        bf16 = TeacherClass(teacher, num_students=2, student=student)
        history = bf16.fit_students(x, loss="head_aware", verbose=0)
    finally:
        keras.config.set_dtype_policy(policy)
    assert np.isfinite(history.history["loss"][0])
