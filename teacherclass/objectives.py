"""Student objectives: how a student's output is scored against its chunk.

An objective is any Keras regression loss (`"mse"` as in the paper,
`"mae"`, `"huber"`, a `keras.losses.Loss` or a function
`(y_true, y_pred) -> per-sample loss`), reduced to its mean over the batch
and, for feature maps, over positions.
"""

import keras
from keras import ops

_REGRESSION = ("mse", "mae", "huber", "log_cosh")


def get(loss):
    """Resolves the `loss` argument of `fit_students` to a function.

    Args:
        loss: a name from ("mse", "mae", "huber", "log_cosh"), a
            `keras.losses.Loss`, or a callable `(y_true, y_pred) -> loss`.

    Returns:
        A function `(target, prediction) -> scalar float32`.

    Raises:
        ValueError: if `loss` is an unknown name.
    """
    if isinstance(loss, str):
        if loss not in _REGRESSION:
            raise ValueError(
                f"`loss` must be one of {_REGRESSION}, a keras.losses.Loss "
                f"or a callable. Received: loss={loss!r}"
            )
        loss = keras.losses.get(loss)
    if not callable(loss):
        raise ValueError(
            "`loss` must be a loss name, a keras.losses.Loss or a callable. "
            f"Received: loss={loss!r}"
        )

    def objective(target, prediction):
        prediction = ops.cast(prediction, "float32")
        return ops.mean(ops.cast(loss(target, prediction), "float32"))

    return objective
