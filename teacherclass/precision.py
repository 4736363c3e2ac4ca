"""The dtype policy a run trains under: float32 or mixed precision.

`resolve_policy("auto")` picks what the hardware runs fastest without
changing what the models compute in float32 (their variables): mixed
float16 on a GPU (tensor cores), mixed bfloat16 on a CPU (no loss
scaling; fast on CPUs with bfloat16 instructions, and no slower in
float32 arithmetic on others). `set_policy` resolves and applies it.
The library itself never changes the policy: the `teacherclass` command
and the benchmarks call `set_policy`.
"""

import keras

POLICIES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def _has_gpu():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def resolve_policy(policy="auto"):
    """The dtype policy name `policy` stands for on this machine.

    Args:
        policy: one of `POLICIES`. "auto" is "mixed_float16" when a GPU
            is visible, "mixed_bfloat16" otherwise; the others are
            returned as given.

    Returns:
        A Keras dtype policy name: "float32", "mixed_bfloat16" or
        "mixed_float16".

    Raises:
        ValueError: if `policy` is not one of `POLICIES`.

    Example:

    >>> resolve_policy("float32")
    'float32'
    >>> resolve_policy() in ("mixed_bfloat16", "mixed_float16")
    True
    """
    if policy not in POLICIES:
        raise ValueError(
            f"`policy` must be one of {', '.join(POLICIES)}. "
            f"Received: policy={policy!r}"
        )
    if policy != "auto":
        return policy
    return "mixed_float16" if _has_gpu() else "mixed_bfloat16"


def set_policy(policy="auto"):
    """Resolves `policy` (see `resolve_policy`) and sets it globally.

    Models built afterwards compute in the policy's dtype; note that
    `keras.backend.clear_session()` resets the global policy to float32.

    Args:
        policy: one of `POLICIES`.

    Returns:
        The policy name set.

    Raises:
        ValueError: if `policy` is not one of `POLICIES`.

    Example:

    >>> set_policy("float32")
    'float32'
    >>> keras.config.dtype_policy().name
    'float32'
    """
    name = resolve_policy(policy)
    keras.config.set_dtype_policy(name)
    return name
