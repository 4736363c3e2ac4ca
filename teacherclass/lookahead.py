"""Lookahead: a slow copy of the weights that the fast ones return to.

airbench's ("94% on CIFAR-10 in 3.29 seconds", Jordan 2024) form of
Lookahead (Zhang et al., 2019): every `every` optimizer steps the slow
copy moves towards the trained weights by `1 - alpha` and the weights
are set back to it, with `alpha` rising as the cube of training progress
from 0 to `peak` (airbench: `0.95 ** 5`), so early training is left
alone and late training averages its last steps. At the last step the
weights are set to the slow copy. Every float weight takes part, the
BN moving statistics included (airbench averages its whole state).

Keras's own `use_ema=True, ema_overwrite_frequency=5` (an optimizer
argument) is the nearest built-in: a fixed `ema_momentum` from the first
step, over the trainable variables only. This callback exists for
airbench's schedule, which leaves early training alone.
"""

import numbers
import warnings

import keras
import numpy as np

from teacherclass import validation


class Lookahead(keras.callbacks.Callback):
    """airbench's Lookahead, as a Keras callback.

    Built on a model whose weights exist; its state is `variables`: the
    slow copy (one `keras.Variable` per float weight of the model) and,
    last, the optimizer step it stands at. Keras' checkpoints
    (`BackupAndRestore`, `ModelCheckpoint`) do not hold it: save and
    restore `variables` with the weights and the optimizer's variables
    (as `benchmarks/reproduce_state.Stage` does) for an interrupted `fit`
    to resume to the same weights. A `fit` that starts at another
    optimizer step than the slow copy's (a run resumed from a Keras
    checkpoint) restarts the slow copy from the restored weights, with a
    warning (it would pull them back to older ones). The step count is
    the optimizer's `iterations`, so several `fit` calls (one per epoch)
    make one schedule; a `LossScaleOptimizer`'s skipped steps do not
    count (`total_steps` counts applied steps). The slow copy is updated
    at the steps that are multiples of `every`, seen at the end of a
    batch: keep `fit`'s `steps_per_execution` at 1 (or a divisor of
    `every`).

    The schedule runs over the optimizer's steps from 0, not from the
    step this callback is made at (a resumed run makes a new one at a
    later step and must keep the same schedule). To fine-tune a model
    whose optimizer has already taken steps, pass
    `total_steps=int(model.optimizer.iterations) + steps`; `alpha` then
    starts at `alpha(iterations)`, not at 0.

    Args:
        model: a built `keras.Model`, compiled before training.
        total_steps: int, the optimizer step (its `iterations`, counted
            from 0) at which training ends; at that step the weights
            become the slow copy.
        every: int, steps between two updates of the slow copy, at most
            `total_steps`.
        peak: real number in `[0, 1)`, `alpha` at the last step.

    Raises:
        ValueError: if `total_steps` or `every` is not a positive
            integer, `every` exceeds `total_steps`, `peak` is not in
            `[0, 1)`, or `model` has no weights yet; and when a
            training batch begins with the optimizer already at or past
            `total_steps` (the weights would never end on the slow
            copy); a `fit` that runs no batch is let be. A `fit` that
            goes on past `total_steps` warns, once (its last weights are
            not the slow copy).

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> look = Lookahead(model, total_steps=4, every=2)
    >>> _ = model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2,
    ...               callbacks=[look], verbose=0)
    >>> all(np.array_equal(s.numpy(), w.numpy())
    ...     for s, w in zip(look.variables, model.weights))
    True
    """

    def __init__(self, model, total_steps, every=5, peak=0.95**5):
        super().__init__()
        total_steps = validation.check_int("total_steps", total_steps)
        every = validation.check_int("every", every)
        if every > total_steps:
            # No update would run, and the last step would set the
            # weights back to the slow copy: the starting weights.
            raise ValueError(
                "`every` must be at most `total_steps`. "
                f"Received: every={every}, total_steps={total_steps}"
            )
        if (
            not isinstance(peak, numbers.Real)
            or isinstance(peak, (bool, np.bool_))
            or not 0 <= peak < 1
        ):
            raise ValueError(
                f"`peak` must be a number in [0, 1). Received: peak={peak!r}"
            )
        self._weights = [
            w for w in model.weights if keras.backend.is_float_dtype(w.dtype)
        ]
        if not self._weights:
            raise ValueError(
                "`model` must be built (have weights) before Lookahead "
                f"copies them. Received: model={model.name!r} with no weights"
            )
        self.total_steps = total_steps
        self.every = every
        self.peak = float(peak)
        self.variables = [
            keras.Variable(
                w.numpy(),
                dtype=w.dtype,
                trainable=False,
                name=f"lookahead_{i}",
            )
            for i, w in enumerate(self._weights)
        ]
        # The optimizer step the slow copy stands at (checkpointed with
        # it): the optimizer's now (0 before training).
        optimizer = getattr(model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        start = 0 if iterations is None else int(iterations.numpy())
        self._step = keras.Variable(
            start, dtype="int64", trainable=False, name="lookahead_step"
        )
        self.variables.append(self._step)

    def _slow(self):
        return self.variables[:-1]

    def on_train_begin(self, logs=None):
        # Checked at the first batch, not here: a `fit` that runs no
        # batch (`initial_epoch=epochs`, a resumed script whose stage is
        # done) leaves the weights alone, at any step.
        self._checked = False
        self._warned_past_end = False  # once per `fit`

    def _check_not_ended(self):
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self.total_steps:
            raise ValueError(
                f"The optimizer already stands at step {step}, at or past "
                "`total_steps`, which counts the optimizer's steps from 0: "
                "the weights would never end on the slow copy. To train "
                f"`n` more steps, pass total_steps={step} + n. "
                f"Received: total_steps={self.total_steps}"
            )

    def on_train_batch_begin(self, batch, logs=None):
        if not getattr(self, "_checked", False):
            # Here, not in `on_train_begin`: every callback's
            # `on_train_begin` has run, a `BackupAndRestore` listed after
            # this one included.
            self._checked = True
            self._check_not_ended()  # a checkpoint restored since
            self._check_step()

    def _check_step(self):
        step = int(self.model.optimizer.iterations.numpy())
        if step != int(self._step.numpy()):
            warnings.warn(
                "Lookahead's slow copy stands at optimizer step "
                f"{int(self._step.numpy())}, the optimizer at {step} (a run "
                "resumed from a Keras checkpoint, which does not hold the "
                "slow copy): it restarts from the current weights. Save "
                "and restore `Lookahead.variables` with the weights for an "
                "exact resume.",
                stacklevel=2,
            )
            for slow, fast in zip(self._slow(), self._weights):
                slow.assign(fast)
            self._step.assign(step)

    def alpha(self, step):
        """The slow copy's share of itself at optimizer step `step`."""
        return self.peak * (min(step, self.total_steps) / self.total_steps) ** 3

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step == int(self._step.numpy()):
            return  # a step a loss scale skipped: nothing applied
        self._step.assign(step)
        if step % self.every == 0:
            keep = self.alpha(step)
            for slow, fast in zip(self._slow(), self._weights):
                slow.assign(slow + (1 - keep) * (fast - slow))
                fast.assign(slow)
        if step == self.total_steps:
            for slow, fast in zip(self._slow(), self._weights):
                fast.assign(slow)
        elif step > self.total_steps and not getattr(
            self, "_warned_past_end", False
        ):
            self._warned_past_end = True
            warnings.warn(
                "Training ran past Lookahead's `total_steps` (the optimizer "
                f"is at step {step}): the weights it ends on are not the "
                "slow copy. Pass the optimizer step at which training ends "
                "(its `iterations` when it starts plus the steps it "
                f"takes). Received: total_steps={self.total_steps}",
                stacklevel=2,
            )
