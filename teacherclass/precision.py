"""The dtype policy a run trains under: float32 or mixed precision.

`resolve_policy("auto")` picks what the hardware runs fastest without
changing what the models compute in float32 (their variables): mixed
float16 on a GPU (tensor cores); mixed bfloat16 on a CPU with bfloat16
instructions (x86 `avx512_bf16` or `amx_bf16`, Arm `bf16`; no loss
scaling); float32 on any other CPU, where bfloat16 is emulated and slow
(`benchmarks/precision_speed.py` measured training steps 9-10x slower
in mixed bfloat16 than in float32 on an AMD EPYC with AVX2 and no
AVX-512). `set_policy` resolves and applies it. The library itself
never changes the policy: the `teacherclass` command and the benchmarks
call `set_policy`.
"""

import keras

POLICIES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

# CPU feature flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags, as a set of strings (empty if unknown).

    Read from the "flags" (x86) or "Features" (Arm) line of
    `/proc/cpuinfo`; other systems have no such file and give an empty
    set.
    """
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def cpu_has_bfloat16():
    """Whether the CPU has native bfloat16 arithmetic (`BFLOAT16_FLAGS`).

    False where the flags cannot be read (not Linux): "auto" then keeps
    float32, which is never the slow choice.
    """
    return bool(cpu_flags() & set(BFLOAT16_FLAGS))


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
            is visible, else "mixed_bfloat16" on a CPU with bfloat16
            instructions (`cpu_has_bfloat16`), else "float32"; the others
            are returned as given.

    Returns:
        A Keras dtype policy name: "float32", "mixed_bfloat16" or
        "mixed_float16".

    Raises:
        ValueError: if `policy` is not one of `POLICIES`.

    Example:

    >>> resolve_policy("float32")
    'float32'
    >>> resolve_policy() in ("float32", "mixed_bfloat16", "mixed_float16")
    True
    """
    if policy not in POLICIES:
        raise ValueError(
            f"`policy` must be one of {', '.join(POLICIES)}. "
            f"Received: policy={policy!r}"
        )
    if policy != "auto":
        return policy
    if _has_gpu():
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"


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
