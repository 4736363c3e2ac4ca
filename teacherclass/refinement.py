"""Refinement: the composed class trained end to end after its students.

Once every student learned its chunk, `refine` builds the composed model
(the students and the head that reads them) and trains it as one on
labels plus logit distillation from the teacher, with
`keras.distillation` (see `baselines.distill_into`). It is the public
`TeacherClass.refine`; its docstring there is the reference.
"""

import keras

from teacherclass import baselines
from teacherclass import compose as compose_lib
from teacherclass import distribute
from teacherclass import training
from teacherclass import validation


def refine(
    tc,
    x,
    y,
    epochs=1,
    temperature=4.0,
    alpha=0.5,
    optimizer=None,
    batch_size=None,
    **fit_kwargs,
):
    """Composes `tc`, then trains the composed model end to end.

    See `TeacherClass.refine` (which calls this) for the arguments.

    Args:
        tc: a `TeacherClass` whose students are all trained or loaded.
        x: inputs, as for `fit` (a dataset may carry the labels).
        y: labels (None only for a dataset `x` of `(x, y)`).
        epochs: int >= 1.
        temperature: float > 0, the distillation temperature.
        alpha: float in [0, 1], the weight of the label loss.
        optimizer: optimizer name or instance; default Adam(1e-4).
        batch_size: int, as for `fit`.
        **fit_kwargs: passed to the distiller's `fit`.

    Returns:
        The refined composed `keras.Model`, compiled like the teacher.

    Raises:
        ValueError: on untrained students, missing labels, `epochs`
            below 1, a `temperature` that is not positive or an `alpha`
            outside [0, 1].
    """
    import tensorflow as tf

    validation.check_int("epochs", epochs)
    if y is None and not isinstance(x, tf.data.Dataset):
        raise ValueError(
            "refine() trains on labels: pass `y`, or a dataset of "
            "`(x, y)` as `x`. Received: y=None"
        )
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or temperature <= 0
    ):
        raise ValueError(
            "`temperature` must be a positive number. "
            f"Received: temperature={temperature!r}"
        )
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not 0 <= alpha <= 1
    ):
        raise ValueError(
            f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}"
        )
    tc._check_composable()
    validation.check_labelled_fit(tc.teacher, x, y, tc.teacher, fit_kwargs)
    with distribute.scope(tc._strategy):
        head, clip = tc.target_head()
        inputs = tc.cut.inputs()
        rep = compose_lib.representation_model(
            inputs,
            tc.students,
            clip,
            preprocessor=tc.cut.preprocessor(),
        ).outputs[0]
        composed = keras.Model(
            inputs, compose_lib.float32_output(head(rep)), name="composed"
        )
        head_logits = baselines.logits_model(head)
        student_view = keras.Model(
            inputs, head_logits(rep), name="composed_logits"
        )
        optimizer = optimizer or keras.optimizers.Adam(1e-4)
        with training.trainable([*tc.students, head], True):
            baselines.distill_into(
                tc.teacher,
                student_view,
                x,
                y,
                temperature=temperature,
                alpha=alpha,
                epochs=epochs,
                batch_size=batch_size,
                optimizer=optimizer,
                **fit_kwargs,
            )
        # A fused output activation was trained as a linear copy.
        last = head_logits.layers[-1]
        if last not in head.layers:
            original = head.get_layer(last.name.removesuffix("_logits"))
            original.set_weights(last.get_weights())
        compose_lib.compile_like(composed, tc.teacher)
    return composed
