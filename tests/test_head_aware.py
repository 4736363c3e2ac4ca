"""The head-aware objective, target conditioning in the class, refine."""

import keras
import numpy as np
import pytest
from helpers import PreemptedAfterFirstEpoch
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


# Temperatures every distillation setting refuses, with the message.
_BAD_TEMPERATURES = [
    (
        {"temperature": float("nan")},
        "`temperature` must be a finite number > 0. Received: temperature=nan",
    ),
    ({"temperature": float("inf")}, "Received: temperature=inf"),
    (
        {"temperature": True},
        "`temperature` must be a finite number > 0. Received: temperature=True",
    ),
]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        *_BAD_TEMPERATURES,
        (
            {"distill_weight": float("inf")},
            "`distill_weight` must be a finite number >= 0. "
            "Received: distill_weight=inf",
        ),
        ({"feature_weight": float("nan")}, "Received: feature_weight=nan"),
        (
            {"label_weight": False},
            "`label_weight` must be a finite number >= 0. "
            "Received: label_weight=False",
        ),
    ],
)
def test_head_aware_refuses_non_finite_and_bool_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        objectives.HeadAware(**kwargs)


def test_head_aware_needs_a_positive_weight():
    # Positional: temperature, feature_weight, distill_weight, label_weight.
    with pytest.raises(
        ValueError,
        match="At least one of `feature_weight`, `distill_weight` and "
        "`label_weight` must be positive.*Received: feature_weight=0, "
        "distill_weight=0, label_weight=0$",
    ):
        objectives.HeadAware(4.0, 0, 0, 0)
    # One positive weight is enough.
    assert objectives.HeadAware(4.0, 0, 0, 0.5).label_weight == 0.5


def test_head_aware_takes_numpy_numbers():
    objective = objectives.HeadAware(
        temperature=np.float32(2.0), feature_weight=np.float32(0.5)
    )
    assert (objective.temperature, objective.feature_weight) == (2.0, 0.5)
    assert type(objective.feature_weight) is float
    config = objectives.HeadAware.from_config(objective.get_config())
    assert config.get_config() == objective.get_config()


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
        )  # (the cache stores the logits)
        assert np.isfinite(history.history["loss"][0])
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        student = keras.layers.Dense(6)
        bf16 = TeacherClass(teacher, num_students=2, student=student)
        history = bf16.fit_students(x, loss="head_aware", verbose=0)
    finally:
        keras.config.set_dtype_policy(policy)
    assert np.isfinite(history.history["loss"][0])


def test_a_cache_serves_mse_and_head_aware_fits_both_ways(
    teacher, data, tmp_path
):
    """Written by a head-aware fit, read by an MSE fit: not rewritten,
    and its targets are the features alone, as the trunk gives them. The
    other way round, the head's logits of the cached features are added."""
    import tensorflow as tf

    from teacherclass import features
    from teacherclass import teacher as teacher_lib

    x = data[0][:96]
    path = tmp_path / "head_aware"
    TeacherClass(teacher, num_students=2).fit_students(
        x, loss="head_aware", cache=str(path), verbose=0
    )
    written = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    tc = TeacherClass(teacher, num_students=2)
    history = tc.fit_students(
        x, loss="mse", cache=str(path), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["student_0_loss"][0])
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == written
    trunk = teacher_lib.trunk(teacher, teacher.get_layer(tc.feature_layer))
    batches = tf.data.Dataset.from_tensor_slices(x).batch(32)
    cached = features.extract(trunk, batches, tc.chunks, cache=str(path))
    targets = np.concatenate([f for _, f in cached.pairs.batch(96)])
    np.testing.assert_allclose(
        targets, trunk.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    # The other way round, the logits are computed from the cache.
    from teacherclass import baselines

    mse = tmp_path / "mse"
    TeacherClass(teacher, num_students=2).fit_students(
        x, loss="mse", cache=str(mse), verbose=0
    )
    written = {p.name: p.stat().st_mtime_ns for p in mse.iterdir()}
    history = TeacherClass(teacher, num_students=2).fit_students(
        x, loss="head_aware", cache=str(mse), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert {p.name: p.stat().st_mtime_ns for p in mse.iterdir()} == written
    head = baselines.logits_model(tc.head)
    cached = features.extract(
        trunk, batches, tc.chunks, cache=str(mse), head=head
    )
    targets = [t for _, t in cached.pairs.batch(96)]
    assert sorted(targets[0]) == ["features", "logits"]
    rep = np.concatenate([t["features"] for t in targets])
    np.testing.assert_allclose(
        np.concatenate([t["logits"] for t in targets]),
        head.predict(rep, verbose=0),
        rtol=1e-5,
        atol=1e-5,
    )


def test_a_cache_with_another_heads_logits_is_refused(teacher, data, tmp_path):
    x = data[0][:64]
    path = str(tmp_path / "cache")
    TeacherClass(teacher, num_students=2).fit_students(
        x, loss="head_aware", cache=path, verbose=0
    )
    other = keras.models.clone_model(teacher)
    other.set_weights(teacher.get_weights())
    out = other.get_layer("out")
    kernel, bias = out.get_weights()
    out.set_weights([kernel * 2.0, bias])
    with pytest.raises(ValueError, match="logits of a different head"):
        TeacherClass(other, num_students=2).fit_students(
            x, loss="head_aware", cache=path, verbose=0
        )
    # Without logits, only the trunk and the data matter: same trunk.
    TeacherClass(other, num_students=2).fit_students(
        x, loss="mse", cache=path, verbose=0
    )


def test_a_format_3_cache_is_still_read(teacher, data, tmp_path):
    """Format 3 hashed the head into the fingerprint; it reads as written."""
    import json

    import tensorflow as tf

    from teacherclass import baselines
    from teacherclass import features
    from teacherclass import teacher as teacher_lib

    x = data[0][:64]
    path = tmp_path / "cache"
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, loss="head_aware", cache=str(path), verbose=0)
    meta_path = path / "teacherclass-cache.json"
    meta = json.loads(meta_path.read_text())
    trunk = teacher_lib.trunk(teacher, teacher.get_layer(tc.feature_layer))
    batches = tf.data.Dataset.from_tensor_slices(x).batch(32)
    meta["format"] = 3
    meta["fingerprint"] = features.fingerprint(
        trunk, batches, head=baselines.logits_model(tc.head)
    )
    del meta["logits_fingerprint"]
    meta_path.write_text(json.dumps(meta))
    history = tc.fit_students(
        x, loss="head_aware", cache=str(path), batch_size=32, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ValueError, match="with the teacher's logits"):
        tc.fit_students(x, loss="mse", cache=str(path), verbose=0)


@pytest.mark.parametrize("kind", ["standardize", "pca"])
def test_conditioned_class_folds_exactly_and_saves(
    teacher, data, kind, tmp_path
):
    x, y = data
    tc = TeacherClass(
        teacher, num_students=2, conditioning=kind, balance_chunks=True
    )
    tc.fit_students(x, y, loss="head_aware", epochs=2, verbose=0)
    assert tc.conditioning_fitted
    composed = tc.compose()
    assert len(composed.layers) == len(tc.compose().layers)
    assert not any(
        "conditioning" in layer.name.lower() for layer in composed.layers
    )
    # The folded model equals students -> inverse change -> clip -> head.
    fitted = tc.target_conditioning()
    rep = tc.representation().predict(x[:32], verbose=0)
    features = fitted.inverse(rep)
    if kind == "standardize":
        features = np.maximum(features, 0.0)  # the ReLU clip, in features
    expected = tc.head.predict(features, verbose=0)
    got = composed.predict(x[:32], verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(tc.predict(x[:32], verbose=0), got, atol=1e-5)
    path = str(tmp_path / "composed.keras")
    composed.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        loaded.predict(x[:32], verbose=0), got, atol=1e-6
    )
    # The class keeps its statistics, and students saved separately too.
    tc.save(str(tmp_path / "tc.keras"))
    again = keras.saving.load_model(str(tmp_path / "tc.keras"))
    assert again.conditioning_digest() == tc.conditioning_digest()
    tc.save_students(str(tmp_path / "students"))
    gathered = TeacherClass(
        teacher, num_students=2, conditioning=kind, balance_chunks=True
    )
    gathered.load_students(str(tmp_path / "students"))
    assert gathered.conditioning_digest() == tc.conditioning_digest()
    np.testing.assert_allclose(
        gathered.compose().predict(x[:32], verbose=0), got, atol=1e-5
    )


def test_conditioning_arguments_are_checked(teacher):
    with pytest.raises(ValueError, match="conditioning='zca'"):
        TeacherClass(teacher, conditioning="zca")
    with pytest.raises(ValueError, match="conditioning=None"):
        TeacherClass(teacher, balance_chunks=True)
    with pytest.raises(ValueError, match="chunk_order='correlation'"):
        TeacherClass(teacher, chunk_order="correlation")
    with pytest.raises(ValueError, match="Received: conditioning='pca'"):
        TeacherClass(teacher, conditioning="pca", chunk_order="correlation")
    with pytest.raises(ValueError, match="Received: chunk_order='random'"):
        TeacherClass(teacher, conditioning="pca", chunk_order="random")


def test_correlation_chunks_fold_exactly_and_load_back(teacher, data, tmp_path):
    """A class on correlation-ordered chunks composes to students ->
    inverse change -> head, and its order survives `.keras` and student
    files."""
    x, y = data
    tc = TeacherClass(
        teacher,
        num_students=2,
        conditioning="standardize",
        chunk_order="correlation",
    )
    tc.fit_students(x, epochs=1, verbose=0)
    fitted = tc.target_conditioning()
    assert fitted.order == "correlation"
    rep = tc.representation().predict(x[:32], verbose=0)
    expected = tc.head.predict(np.maximum(fitted.inverse(rep), 0.0), verbose=0)
    got = tc.compose().predict(x[:32], verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    tc.save(str(tmp_path / "tc.keras"))
    again = keras.saving.load_model(str(tmp_path / "tc.keras"))
    assert again.chunk_order == "correlation" and not again.balance_chunks
    assert again.conditioning_digest() == tc.conditioning_digest()
    tc.save_students(str(tmp_path / "students"))
    gathered = TeacherClass(
        teacher,
        num_students=2,
        conditioning="standardize",
        chunk_order="correlation",
    )
    gathered.load_students(str(tmp_path / "students"))
    assert gathered.target_conditioning().order == "correlation"
    np.testing.assert_allclose(
        gathered.compose().predict(x[:32], verbose=0), got, atol=1e-5
    )
    # Students of one order do not load into a class of another.
    other = TeacherClass(
        teacher, num_students=2, conditioning="standardize", balance_chunks=True
    )
    with pytest.raises(ValueError, match="Received: a conditioning with "):
        other.load_students(str(tmp_path / "students"))
    assert not other.conditioning_fitted


def test_refine_keeps_accuracy_and_saves(teacher, data, tmp_path):
    x, y = data
    keras.utils.set_random_seed(2)
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)  # deliberately undertrained
    before = np.mean(tc.compose().predict(x, verbose=0).argmax(-1) == y)
    refined = tc.refine(
        x,
        y,
        epochs=5,
        optimizer=keras.optimizers.Adam(1e-2),
        batch_size=32,
        verbose=0,
    )
    after = np.mean(refined.predict(x, verbose=0).argmax(-1) == y)
    assert after >= before
    assert after > 0.8
    assert refined.compiled
    np.testing.assert_allclose(  # the class's students are the refined ones
        tc.predict(x[:16], verbose=0),
        refined.predict(x[:16], verbose=0),
        atol=1e-5,
    )
    path = str(tmp_path / "refined.keras")
    refined.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x[:16], verbose=0),
        refined.predict(x[:16], verbose=0),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="alpha=2"):
        tc.refine(x, y, alpha=2)
    with pytest.raises(ValueError, match="temperature=0"):
        tc.refine(x, y, temperature=0)
    with pytest.raises(ValueError, match="y=None"):
        tc.refine(x, None)
    with pytest.raises(ValueError, match="epochs"):
        tc.refine(x, y, epochs=0)


def test_conditioning_with_augment_keeps_the_augmentation():
    """Conditioned targets + augment + head-aware: trains on augmented
    batches (the statistics' own pass does not replace them)."""
    from helpers import blobs
    from helpers import mlp_teacher

    x, _ = blobs(n=64)
    weights = []
    for augment in (None, keras.layers.Rescaling(0.5)):
        keras.utils.set_random_seed(0)
        tc = TeacherClass(
            mlp_teacher(),
            num_students=2,
            conditioning="standardize",
            balance_chunks=True,
        )
        history = tc.fit_students(
            x, loss="head_aware", augment=augment, epochs=1, verbose=0
        )
        assert np.isfinite(history.history["loss"][-1])
        weights.append(tc.students[0].get_weights()[0])
    assert not np.allclose(weights[0], weights[1])


def test_conditioning_statistics_come_from_the_augmented_inputs():
    """With `augment`, the statistics are those of what the students
    regress: the trunk on augmented inputs, not on the clean ones."""
    from helpers import mlp_teacher

    from teacherclass import teacher as teacher_lib

    x, _ = blobs(n=64)
    keras.utils.set_random_seed(0)
    teacher = mlp_teacher()
    tc = TeacherClass(teacher, num_students=2, conditioning="standardize")
    tc.fit_students(
        x, loss="mse", augment=keras.layers.Rescaling(3.0), verbose=0
    )
    trunk = teacher_lib.trunk(teacher, teacher.get_layer(tc.feature_layer))
    augmented = trunk.predict(3.0 * x, verbose=0).astype("float64")
    clean = trunk.predict(x, verbose=0).astype("float64")
    fitted = tc.target_conditioning()
    np.testing.assert_allclose(fitted.mean, augmented.mean(0), atol=1e-4)
    assert not np.allclose(fitted.mean, clean.mean(0), atol=1e-2)
    std = augmented.std(0)
    live = std > 1e-3
    np.testing.assert_allclose(
        np.diag(fitted.matrix)[live], 1 / std[live], rtol=1e-3
    )


def _fit_weights(teacher, x, **kwargs):
    keras.utils.set_random_seed(3)
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, batch_size=32, verbose=0, **kwargs)
    return _students_weights(tc)


def _same(a, b):
    return all(
        np.array_equal(u, v)
        for left, right in zip(a, b)
        for u, v in zip(left, right)
    )


def test_default_objective_is_head_aware_for_a_classifier(teacher, data):
    x = data[0][:64]
    default = _fit_weights(teacher, x)
    assert _same(default, _fit_weights(teacher, x, loss="head_aware"))
    assert not _same(default, _fit_weights(teacher, x, loss="mse"))


def test_default_objective_is_mse_for_a_linear_head(data):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(12, activation="relu")(inputs)
    regressor = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    assert objectives.default_for(regressor) == "mse"
    x = data[0][:64]
    default = _fit_weights(regressor, x)
    assert _same(default, _fit_weights(regressor, x, loss="mse"))


def _refined_predictions(teacher, x, y, cached):
    """One refinement run (SGD, fixed batches), by the Distiller or on
    cached teacher logits; returns the refined model's predictions."""
    import tensorflow as tf

    from teacherclass import baselines

    keras.utils.set_random_seed(5)
    tc = TeacherClass(
        teacher, num_students=2, conditioning="standardize", balance_chunks=True
    )
    tc.fit_students(x, epochs=1, verbose=0)
    if cached:
        logits = baselines.logits_model(teacher).predict(x, verbose=0)
        targets = {"labels": y.astype("int32"), "logits": logits}
        ds = tf.data.Dataset.from_tensor_slices((x, targets)).batch(32)
        refined = tc.refine(ds, None, epochs=2, optimizer="sgd", verbose=0)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y.astype("int32")))
        refined = tc.refine(
            ds.batch(32), None, epochs=2, optimizer="sgd", verbose=0
        )
    return tc.compose().predict(x, verbose=0), refined.predict(x, verbose=0)


def test_refine_on_cached_logits_equals_the_distiller(data):
    """The teacher's logits read from the batches give the Distiller's
    updates (same loss, same batches): one refined model either way."""
    x, y = data
    # No dropout in the head: its masks would differ between the runs.
    keras.utils.set_random_seed(1)
    teacher = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(12, activation="relu", name="rep"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=10, verbose=0)
    before, by_distiller = _refined_predictions(teacher, x, y, cached=False)
    _, by_cache = _refined_predictions(teacher, x, y, cached=True)
    assert np.abs(by_distiller - before).max() > 1e-3  # it did train
    np.testing.assert_allclose(by_cache, by_distiller, atol=2e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_refinement_adds_regularization_once(alpha):
    """Both refinement paths log the student's regularization losses
    once on top of their labels-plus-distillation loss, whatever `alpha`
    (a step of SGD(0) changes nothing, so `loss` is the loss at the
    start)."""
    import tensorflow as tf

    from teacherclass import baselines
    from teacherclass import refinement

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, 16).astype("int32")
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Softmax()]
    )
    logits = baselines.logits_model(teacher).predict(x, verbose=0)
    cached = tf.data.Dataset.from_tensor_slices(
        (x, {"labels": y, "logits": logits})
    ).batch(16)
    labelled = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    def losses(regularizer):
        keras.utils.set_random_seed(1)
        student = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(3, kernel_regularizer=regularizer),
            ]
        )
        trainer = refinement.CachedLogitsTrainer(student, 2.0, alpha)
        trainer.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        by_cache = trainer.fit(cached, verbose=0).history["loss"][0]
        by_distiller = baselines.distill_into(
            teacher,
            student,
            labelled,
            temperature=2.0,
            alpha=alpha,
            optimizer=keras.optimizers.SGD(0.0),
            verbose=0,
        ).history["loss"][0]
        return by_cache, by_distiller, float(sum(student.losses))

    plain = losses(None)
    regularized = losses(keras.regularizers.L2(10.0))
    assert regularized[2] > 1.0
    np.testing.assert_allclose(plain[0], plain[1], rtol=1e-5)
    np.testing.assert_allclose(regularized[0] - plain[0], regularized[2], 1e-5)
    np.testing.assert_allclose(regularized[1] - plain[1], regularized[2], 1e-5)


def test_cached_logits_trainer_takes_a_loss_function():
    """A loss given by name (a function) is reduced like Keras' own."""
    from teacherclass import refinement

    x = np.ones((8, 4), "float32")
    targets = {"labels": np.zeros(8, "int32"), "logits": np.ones((8, 3))}
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    losses = []
    for loss in (
        "sparse_categorical_crossentropy",
        keras.losses.SparseCategoricalCrossentropy(),
    ):
        trainer = refinement.CachedLogitsTrainer(student, alpha=1.0)
        trainer.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss)
        losses.append(trainer.fit(x, targets, verbose=0).history["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    with pytest.raises(ValueError, match="Received: loss=None"):
        refinement.CachedLogitsTrainer(student).compile(optimizer="sgd")


def _bernoulli(t, s):
    """The Bernoulli KL per unit from logits `t` to `s`, averaged."""
    p = 1 / (1 + np.exp(-t))
    log_sig = lambda z: -np.logaddexp(0.0, -z)  # noqa: E731
    kl = p * (log_sig(t) - log_sig(s)) + (1 - p) * (log_sig(-t) - log_sig(-s))
    return float(kl.mean())


def test_head_aware_scores_a_multi_label_head_per_unit():
    """Shifting every logit of a sigmoid head changes each unit's
    probability: a softmax KL would not see it."""
    t = np.array([[2.0, -3.0, 0.5, 1.0, -1.0]] * 4, "float32")
    s = t - 6.0
    objective = objectives.HeadAware(temperature=1.0)
    got = float(objective.distillation(t, s, sigmoid=True))
    np.testing.assert_allclose(got, _bernoulli(t, s), rtol=1e-5)
    assert got > 1.0
    labels = np.array([[1, 0, 1, 1, 0]] * 4, "float32")
    bce = float(keras.ops.mean(keras.ops.binary_crossentropy(labels, t, True)))
    got = float(objective.label_loss(labels, t, sigmoid=True))
    np.testing.assert_allclose(got, bce, rtol=1e-5)


def _multi_label_teacher(x, k=5):
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(8, activation="relu", name="rep"),
            keras.layers.Dense(k, activation="sigmoid", name="out"),
        ]
    )
    y = (x[:, :k] > 0).astype("float32")
    teacher.compile("adam", "binary_crossentropy")
    return teacher, y


def test_a_multi_label_head_is_distilled_per_unit():
    """Refinement's two paths and the head-aware trainer take a sigmoid
    head of 5 units as 5 Bernoulli units, not a softmax over 5."""
    import tensorflow as tf

    from teacherclass import baselines
    from teacherclass import refinement

    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    teacher, y = _multi_label_teacher(x)
    logits = baselines.logits_model(teacher).predict(x, verbose=0)
    # A student whose logits are the teacher's minus 6.
    student = keras.models.clone_model(baselines.logits_model(teacher))
    student.set_weights(teacher.get_weights())
    kernel, bias = student.layers[-1].get_weights()
    student.layers[-1].set_weights([kernel, bias - 6.0])
    expected = {0.0: _bernoulli(logits, logits - 6.0)}
    bce = keras.ops.binary_crossentropy(y, logits - 6.0, from_logits=True)
    expected[1.0] = float(keras.ops.mean(bce))
    for alpha, want in expected.items():
        history = baselines.distill_into(
            teacher,
            student,
            x,
            y,
            temperature=1.0,
            alpha=alpha,
            optimizer=keras.optimizers.SGD(0.0),
            batch_size=16,
            verbose=0,
        )
        np.testing.assert_allclose(history.history["loss"], [want], 1e-4)
        trainer = refinement.CachedLogitsTrainer(
            student, 1.0, alpha, sigmoid=True
        )
        trainer.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
        )
        cached = tf.data.Dataset.from_tensor_slices(
            (x, {"labels": y, "logits": logits})
        )
        history = trainer.fit(cached.batch(16), verbose=0)
        np.testing.assert_allclose(history.history["loss"], [want], 1e-4)

    tc = TeacherClass(teacher, num_students=2)
    assert training.for_class(tc, loss="head_aware").sigmoid is True
    assert isinstance(objectives.default_for(tc.head), objectives.HeadAware)
    tc.fit_students(x, epochs=1, verbose=0)
    assert refinement.Refinement(tc).trainer().sigmoid is True
    refined = tc.refine(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(refined.history.history["loss"]).all()


@pytest.mark.parametrize(
    "loss",
    [
        keras.losses.BinaryCrossentropy(from_logits=True),
        "binary_crossentropy",
    ],
)
def test_a_linear_head_compiled_with_a_binary_loss_is_multi_label(loss):
    """Logits (no sigmoid layer) of a teacher compiled with a binary
    cross-entropy are Bernoulli units too: its head is distilled and
    labelled per unit, not as a softmax over 5."""
    from teacherclass import baselines
    from teacherclass import refinement
    from teacherclass import teacher as teacher_lib

    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    teacher = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", name="rep"),
            keras.layers.Dense(5, name="out"),
        ]
    )
    assert not teacher_lib.sigmoid_output(teacher)
    teacher.compile("adam", loss)
    y = (x[:, :5] > 0).astype("float32")
    assert teacher_lib.sigmoid_output(teacher)
    tc = TeacherClass(teacher, num_students=2)
    assert training.for_class(tc, loss="head_aware").sigmoid is True
    tc.fit_students(x, epochs=1, verbose=0)
    refined = refinement.Refinement(tc)
    assert refined.trainer().sigmoid is True
    label_loss = teacher_lib.label_compile_args(teacher, refined.logits, y)
    assert isinstance(label_loss["loss"], keras.losses.BinaryCrossentropy)
    assert label_loss["loss"].get_config()["from_logits"]
    distill = baselines.logits_distillation(
        5, 1.0, sigmoid=teacher_lib.sigmoid_output(teacher)
    )
    assert type(distill.loss).__name__ == "BernoulliKL"


def test_a_mixed_precision_classifier_defaults_to_head_aware():
    """The float32 cast ending a mixed-precision head is looked past."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8,))
        probabilities = keras.layers.Dense(5, activation="sigmoid")(inputs)
        head = keras.Model(
            inputs,
            keras.layers.Activation("linear", dtype="float32")(probabilities),
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert isinstance(objectives.default_for(head), objectives.HeadAware)


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


@pytest.mark.parametrize("cached", [False, True])
def test_an_interrupted_refine_leaves_the_head_refined(teacher, data, cached):
    """The head's fused output ("out": Dense(softmax)) is trained as a
    linear copy; stopped by a callback, refine still gives it back, so
    the class holds refined students beside the head they learned with.
    """
    import tensorflow as tf

    from teacherclass import baselines

    x, y = data
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    out = tc.head.get_layer("out")
    before = out.get_weights()[0].copy()
    if cached:
        logits = baselines.logits_model(teacher).predict(x, verbose=0)
        targets = {"labels": y.astype("int32"), "logits": logits}
        args = (tf.data.Dataset.from_tensor_slices((x, targets)).batch(64),)
        args += (None,)
    else:
        args = (x, y)
    with pytest.raises(KeyboardInterrupt):
        tc.refine(
            *args,
            epochs=3,
            optimizer=keras.optimizers.SGD(0.5),
            callbacks=[_StopAfterFirstEpoch()],
            verbose=0,
        )
    assert np.abs(out.get_weights()[0] - before).max() > 1e-3


def test_refine_resumes_at_initial_epoch(teacher, data):
    """`epochs` is refine's own argument: `initial_epoch` is checked
    against it, by the Distiller and on cached logits alike."""
    import tensorflow as tf

    from teacherclass import baselines

    x, y = data
    x, y = x[:32], y[:32]
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    logits = baselines.logits_model(teacher).predict(x, verbose=0)
    targets = {"labels": y.astype("int32"), "logits": logits}
    cached = tf.data.Dataset.from_tensor_slices((x, targets)).batch(16)
    for args in ((x, y), (cached, None)):
        refined = tc.refine(*args, epochs=3, initial_epoch=1, verbose=0)
        assert refined.history.epoch == [1, 2]
        with pytest.raises(ValueError, match="initial_epoch=3, epochs=3"):
            tc.refine(*args, epochs=3, initial_epoch=3, verbose=0)
        with pytest.raises(ValueError, match="Received: batch_size=0"):
            tc.refine(*args, batch_size=0, verbose=0)


def test_cached_logits_trainer_refuses_other_targets(teacher, data):
    from teacherclass import refinement

    x, y = data
    student = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(3)]
    )
    trainer = refinement.CachedLogitsTrainer(student, temperature=2.0)
    trainer.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    with pytest.raises(ValueError, match=r"Received: y=\['labels'\]"):
        trainer.fit(x, {"labels": y}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="alpha=-0.5"):
        refinement.CachedLogitsTrainer(student, alpha=-0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        *_BAD_TEMPERATURES,
        (
            {"alpha": 2},
            r"`alpha` must be a finite number in \[0, 1\]. Received: alpha=2",
        ),
        (
            {"alpha": float("nan")},
            r"`alpha` must be a finite number in \[0, 1\]. "
            "Received: alpha=nan",
        ),
    ],
)
def test_cached_logits_trainer_refuses_bad_settings(kwargs, message):
    from teacherclass import refinement

    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=message):
        refinement.CachedLogitsTrainer(student, **kwargs)


def test_cached_logits_trainer_takes_numpy_numbers():
    from teacherclass import refinement

    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    for temperature in (np.float64(2.0), np.float32(2.0)):
        trainer = refinement.CachedLogitsTrainer(
            student, temperature=temperature, alpha=np.float32(0.25)
        )
        assert (trainer.temperature, trainer.alpha) == (2.0, 0.25)
        assert type(trainer.temperature) is float  # Keras' loss needs one


def test_refinement_keeps_a_head_tuned_through_composed(teacher, data):
    """A fused output ("out" is Dense(softmax)) is trained as a linear
    copy: it starts from the head as tuned, and only a trained copy is
    written back."""
    from teacherclass import refinement

    x, _ = data
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    refined = refinement.Refinement(tc)
    out = refined.head.get_layer("out")
    tuned = [w * 1.5 for w in out.get_weights()]
    out.set_weights(tuned)  # as head fine-tuning through `composed` does
    refined.finish()
    np.testing.assert_array_equal(out.get_weights()[0], tuned[0])
    trainer = refined.trainer()
    copy = trainer.student.layers[-1].layers[-1]
    assert copy is not out
    np.testing.assert_array_equal(copy.get_weights()[0], tuned[0])
    copy.set_weights([w * 2.0 for w in tuned])  # as refinement would
    refined.finish()
    np.testing.assert_array_equal(out.get_weights()[0], tuned[0] * 2.0)


def test_a_second_trainer_keeps_what_the_copy_learned(teacher, data):
    """One trainer per epoch (a resumable run): the fused output's
    linear copy keeps its training, and the head catches up."""
    from teacherclass import refinement

    x, _ = data
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    refined = refinement.Refinement(tc)
    out = refined.head.get_layer("out")
    copy = refined.trainer().student.layers[-1].layers[-1]
    learned = [w * 3.0 for w in copy.get_weights()]
    copy.set_weights(learned)  # as an epoch of refinement would
    again = refined.trainer().student.layers[-1].layers[-1]
    assert again is copy
    np.testing.assert_array_equal(copy.get_weights()[0], learned[0])
    np.testing.assert_array_equal(out.get_weights()[0], learned[0])


def test_label_term_leaves_out_the_ignored_class():
    objective = objectives.HeadAware(label_weight=1.0)
    logits = keras.ops.convert_to_tensor(
        np.log(np.array([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]], "float32"))
    )
    labels = np.array([[0, 3]])  # 3: void
    kept = objectives.HeadAware.label_loss(
        objective, labels, logits, ignore_class=3
    )
    assert float(kept) == pytest.approx(-np.log(0.7), 1e-5)
    all_void = objective.label_loss(np.array([[3, 3]]), logits, 3)
    assert float(all_void) == 0.0


def _refinable(teacher, x, y, cached):
    """A class of trained students and what `refine` takes: `(x, y)`, or
    (cached) a dataset of `(x, {"labels", "logits"})` in batches of 32."""
    import tensorflow as tf

    from teacherclass import baselines

    keras.utils.set_random_seed(3)
    tc = TeacherClass(teacher, num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    if not cached:
        return tc, x, y
    logits = baselines.logits_model(teacher).predict(x, verbose=0)
    inputs = tf.data.Dataset.from_tensor_slices(
        (x, {"labels": y, "logits": logits})
    ).batch(32)
    return tc, inputs, None


@pytest.mark.parametrize("cached", [False, True], ids=["distiller", "cached"])
def test_refine_callbacks_checkpoint_the_composed_model(
    teacher, data, tmp_path, cached
):
    """`ModelCheckpoint` in `refine` writes the composed model (not the
    trainer); `BackupAndRestore` runs; the History is kept."""

    x, y = data
    tc, inputs, labels = _refinable(teacher, x, y, cached)
    path = str(tmp_path / "refined.keras")
    refined = tc.refine(
        inputs,
        labels,
        epochs=2,
        optimizer=keras.optimizers.Adam(1e-2),
        batch_size=None if cached else 32,
        verbose=0,
        callbacks=[
            keras.callbacks.ModelCheckpoint(path),
            keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        ],
    )
    loaded = keras.saving.load_model(path)
    assert loaded.count_params() == refined.count_params()
    assert loaded.compiled  # as refine returns it
    np.testing.assert_allclose(
        loaded.predict(x[:16], verbose=0),
        refined.predict(x[:16], verbose=0),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        loaded.predict(x[:4], verbose=0).sum(-1), 1.0, rtol=1e-5
    )
    assert len(refined.history.history["loss"]) == 2


@pytest.mark.parametrize("cached", [False, True], ids=["distiller", "cached"])
def test_refine_backup_and_restore_resumes_its_optimizer(
    teacher, data, tmp_path, cached
):
    """A refinement resumed by `BackupAndRestore` goes on with its
    optimizer's step count; its weights file still loads into the
    composed model."""

    x, y = data
    steps = -(-len(x) // 32)  # batches of 32 per epoch
    tc, inputs, labels = _refinable(teacher, x, y, cached)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    weights = str(tmp_path / "refined.weights.h5")
    common = dict(epochs=3, batch_size=None if cached else 32, verbose=0)
    first = keras.optimizers.Adam(1e-3)
    with pytest.raises(RuntimeError, match="preempted"):
        tc.refine(
            inputs,
            labels,
            optimizer=first,
            callbacks=[backup, PreemptedAfterFirstEpoch()],
            **common,
        )
    assert int(first.iterations.numpy()) == steps
    resumed = keras.optimizers.Adam(1e-3)
    refined = tc.refine(
        inputs,
        labels,
        optimizer=resumed,
        callbacks=[
            backup,
            keras.callbacks.ModelCheckpoint(weights, save_weights_only=True),
        ],
        **common,
    )
    assert len(refined.history.history["loss"]) == 2
    assert int(resumed.iterations.numpy()) == 3 * steps
    expected = refined.predict(x[:8], verbose=0)
    refined.load_weights(weights)
    np.testing.assert_allclose(
        refined.predict(x[:8], verbose=0), expected, atol=1e-6
    )
