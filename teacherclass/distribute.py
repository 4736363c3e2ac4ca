"""tf.distribute strategies that Keras' trainer runs under as they are.

A `TeacherClass` built inside `strategy.scope()` trains under that strategy
like any Keras model: `fit_teacher`, `fit_students` and
`compose(fine_tune=True)` all do. `tf.distribute.MirroredStrategy` needs
nothing more. `tf.distribute.MultiWorkerMirroredStrategy` needs one fix in
Keras 3 (keras-team/keras#20585): Keras' TensorFlow trainer calls
`strategy.reduce` on a nest of tensors (an `(x, y)` batch) and with
`axis=0` on its metrics' results, which that strategy rejects for scalars
and, for a vector result (`F1Score(average=None)`, one value per class),
would average over the classes too. The subclass here reduces each
tensor of a nest, and Keras' metric results across replicas only,
element-wise, as Keras' other strategies' path does.
"""

import contextlib

import tensorflow as tf


def current_strategy():
    """The `tf.distribute` strategy whose scope is open, or None."""
    return (
        tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    )


def scope(strategy):
    """`strategy.scope()`, or a no-op context for None.

    A `TeacherClass` records the strategy it was built in (see
    `current_strategy`) and trains its students' trainer under it, also
    when `fit_students` is called outside the scope.
    """
    return contextlib.nullcontext() if strategy is None else strategy.scope()


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` that Keras 3 can fit.

    A drop-in replacement: same arguments, same `TF_CONFIG` cluster
    description, same collective all-reduce. Only `reduce` differs (see
    the module docstring): Keras' metric results (it passes `axis=0`,
    whose leading axis is not a batch) are reduced across replicas only,
    element-wise; any other caller's `axis` is honoured, as TensorFlow's
    (a scalar takes none). Create it first thing in each
    worker, before any other TensorFlow op, as with TensorFlow's own.

    Example (each worker process, `TF_CONFIG` set per worker):

    ```python
    from teacherclass import TeacherClass, distribute

    strategy = distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        tc = TeacherClass(teacher, num_students=4)
        tc.fit_students(dataset, epochs=10)
    ```
    """

    def reduce(self, reduce_op, value, axis=None):
        return self._reduce(reduce_op, value, axis, _called_by_keras())

    def _reduce(self, reduce_op, value, axis, keras_result):
        if isinstance(value, (tuple, list, dict)):
            return tf.nest.map_structure(
                lambda v: self._reduce(reduce_op, v, axis, keras_result),
                value,
            )
        local = self.experimental_local_results(value)[0]
        rank = tf.TensorShape(getattr(local, "shape", ())).rank
        if keras_result or (axis is not None and rank == 0):
            # Keras' `axis=0` on a metric's result (scalar or one value
            # per class): across replicas only, as its other strategies'
            # `tf.reduce_mean(local_results, axis=0)`. Another caller's
            # `axis` (a batch of per-example values) is honoured.
            axis = None
        return super().reduce(reduce_op, value, axis)


# The module whose `reduce_per_replica` passes `axis=0` for metric results.
_KERAS_TRAINER = "keras.src.backend.tensorflow.trainer"


def _called_by_keras():
    """Whether the caller of `reduce` is Keras' TensorFlow trainer.

    Keras calls it while tracing its step (in Python), so the calling
    frame tells Keras' metric results from a custom loop's tensors.
    """
    import sys

    caller = sys._getframe(2)  # 0: here, 1: `reduce`, 2: its caller
    return caller.f_globals.get("__name__") == _KERAS_TRAINER
