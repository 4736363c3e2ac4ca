"""Loading saved models: `keras.saving.load_model`, with the package's
layers registered and loading errors that say what happened.

A composed model holds the package's own layers (its towers, its
`FeatureClip`). Keras finds them only once `teacherclass` has registered
them, which happens when the modules that define them are imported;
`keras.saving.load_model` in a fresh process that never imported them ends
in a long `TypeError`. `teacherclass.load_model` imports them first.

The trainers (`fit_students`' and `refine`'s) checkpoint another model's
weights in their stead (the class, the composed model);
`save_optimizer_state` and `load_optimizer_state` keep their optimizer's
state in the same `.weights.h5` file, as Keras' own `save_weights` of a
compiled model does, so that `BackupAndRestore` resumes the step count
(and a learning rate schedule) where it stopped.
"""

import importlib
import os
import re
import warnings
import zipfile
import zlib

# The modules that define the package's registered (saveable) classes.
# tests/test_saving.py checks this list against the package's sources.
_REGISTERING_MODULES = (
    "teacherclass.towers",
    "teacherclass.compose",
    "teacherclass.fusion",
    "teacherclass.architectures",
    "teacherclass.model",
    "teacherclass.baselines",  # BernoulliKL, RegularizedDistiller
)

# The group of a `.weights.h5` file that holds a trainer's optimizer state
# beside the weights of the model it trains (Keras ignores other groups
# when it loads the weights).
_OPTIMIZER_GROUP = "teacherclass_trainer_optimizer"

_MISSING = re.compile(r"Could not locate (class|function) '([^']+)'")


def register_layers():
    """Imports the modules whose classes `.keras` files may name.

    Registration happens at import, through
    `keras.saving.register_keras_serializable(package="teacherclass")`.
    `load_model` calls this first; call it yourself before
    `keras.saving.load_model` if you must use Keras' loader.
    """
    for name in _REGISTERING_MODULES:
        importlib.import_module(name)


def _check_archive(path):
    """Raises ValueError unless `path` looks like a whole `.keras` archive."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ValueError(
                    "The file is a zip archive but not a Keras model (it has "
                    f"no config.json). Received: path={path!r}"
                )
        return
    with open(path, "rb") as f:
        start = f.read(4)
    if start == b"PK\x03\x04":
        raise ValueError(
            "The file is truncated: it starts as a `.keras` zip archive but "
            "its end is missing (an interrupted save or copy?). Received: "
            f"path={path!r}"
        )
    raise ValueError(
        f"The file is not a `.keras` zip archive. Received: path={path!r}"
    )


def _missing_object_error(error, path):
    """A short TypeError for a class or function nobody registered."""
    match = _MISSING.search(str(error))
    if match is None:
        return None
    kind, name = match.groups()
    return TypeError(
        f"{path!r} needs the {kind} {name!r}, which is not registered "
        "in this process. Import the module that defines it (decorated with "
        "`@keras.saving.register_keras_serializable`) or pass "
        f"custom_objects={{{name!r}: ...}}."
    )


def load_model(path, custom_objects=None, compile=True, safe_mode=True):
    """Loads a `.keras` model, with the package's layers registered.

    Use it instead of `keras.saving.load_model` for anything
    `teacherclass` saved (composed models, students, representations): it
    registers the package's layers first, so the file loads in a process
    that never imported `teacherclass` otherwise (Keras' own loader then
    fails with a long `TypeError`), and it reports a missing, truncated or
    foreign file as such. Other arguments and formats (`.h5`, a remote
    path) go to `keras.saving.load_model` as they are.

    Args:
        path: str or `os.PathLike`, the `.keras` file.
        custom_objects: dict or None, your own classes and functions by
            name, for those not registered with
            `keras.saving.register_keras_serializable`.
        compile: bool, whether to compile the model as it was saved.
        safe_mode: bool, refuse to deserialize Python lambdas (keep True
            for files you did not write yourself).

    Returns:
        The `keras.Model`.

    Raises:
        FileNotFoundError: nothing exists at `path`.
        ValueError: the file is truncated, not a zip archive, or a zip
            archive that is not a Keras model.
        TypeError: the model names a class or function that is not
            registered in this process; the message names it.

    Example:

    >>> import os, tempfile
    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> model.save(path)
    >>> load_model(path).output_shape
    (None, 2)
    """
    import keras

    register_layers()
    filepath = os.fspath(path)
    if "://" not in filepath:  # remote paths: Keras copies them itself
        if not os.path.exists(filepath):
            raise FileNotFoundError(
                f"There is no file at `path`. Received: path={filepath!r}"
            )
        if os.path.isfile(filepath) and filepath.endswith(".keras"):
            _check_archive(filepath)
    try:
        return keras.saving.load_model(
            filepath,
            custom_objects=custom_objects,
            compile=compile,
            safe_mode=safe_mode,
        )
    except TypeError as error:
        short = _missing_object_error(error, filepath)
        if short is None:
            raise
        raise short from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ValueError(
            f"The `.keras` archive is damaged ({type(error).__name__}: "
            f"{error}). Received: path={filepath!r}"
        ) from None


def _local_weights_file(filepath):
    filepath = os.fspath(filepath)
    if "://" in filepath or not filepath.endswith(".weights.h5"):
        return None
    return filepath


def save_optimizer_state(optimizer, filepath):
    """Adds `optimizer`'s variables to the `.weights.h5` file `filepath`.

    Does nothing for an optimizer not built yet, a sharded or remote file,
    or a file that has no model weights (nothing was written).

    Args:
        optimizer: a `keras.optimizers.Optimizer`, or None.
        filepath: str or `os.PathLike`, the file `save_weights` just wrote.
    """
    filepath = _local_weights_file(filepath)
    if optimizer is None or not optimizer.built or filepath is None:
        return
    if not os.path.isfile(filepath):
        return
    import h5py

    store = {}
    optimizer.save_own_variables(store)
    with h5py.File(filepath, "a") as f:
        if _OPTIMIZER_GROUP in f:
            del f[_OPTIMIZER_GROUP]
        group = f.create_group(_OPTIMIZER_GROUP)
        for key, value in store.items():
            group[key] = value


def load_optimizer_state(optimizer, variables, filepath):
    """Restores `optimizer`'s variables saved by `save_optimizer_state`.

    Args:
        optimizer: a `keras.optimizers.Optimizer` (built on `variables`
            first if it is not), or None.
        variables: the variables the optimizer trains.
        filepath: str or `os.PathLike`, a `.weights.h5` file; one without
            an optimizer's state (a model's own weights) leaves the
            optimizer as it is.

    Returns:
        True when the optimizer's state was restored; False when there
        was none to restore, or when the saved state holds another
        number of variables than the optimizer (another model's or
        optimizer's): the optimizer is then left as it is, with a
        warning that gives both counts.
    """
    filepath = _local_weights_file(filepath)
    if optimizer is None or filepath is None or not os.path.isfile(filepath):
        return False
    import h5py

    with h5py.File(filepath, "r") as f:
        if _OPTIMIZER_GROUP not in f:
            return False
        store = {key: value[()] for key, value in f[_OPTIMIZER_GROUP].items()}
    if not optimizer.built:
        optimizer.build(variables)
    if len(store) != len(optimizer.variables):
        # Keras would skip it too, with a warning only: say so here.
        warnings.warn(
            f"The optimizer state saved in {filepath} was not restored: "
            f"it holds {len(store)} variables, the optimizer "
            f"{optimizer.name!r} has {len(optimizer.variables)}. The "
            "optimizer starts afresh.",
            stacklevel=2,
        )
        return False
    optimizer.load_own_variables(store)
    return True
