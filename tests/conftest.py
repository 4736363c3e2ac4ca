import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def seed():
    """Every test starts from the same seed and the float32 policy."""
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


def shared_data():
    """The real datasets beside the repository (`../shared/data`).

    Else `$TEACHERCLASS_SHARED_DATA`; the calling test is skipped when
    neither is a folder.
    """
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir() and os.environ.get("TEACHERCLASS_SHARED_DATA"):
        path = Path(os.environ["TEACHERCLASS_SHARED_DATA"])
    if not path.is_dir():
        pytest.skip(f"no shared data folder at {path}")
    return path


@pytest.fixture(scope="session")
def keras_home(tmp_path_factory):
    """A `KERAS_HOME` for this test run; archives extract under it.

    Shared by the pytest-xdist workers of one run (extraction is atomic).
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / "keras_home"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def shared_cache(keras_home):
    """Where `datasets.load` extracts shared archives, once per session.

    The default cache of a process whose `KERAS_HOME` is `keras_home`, so
    notebooks run with that `KERAS_HOME` reuse what tests extracted.
    """
    return keras_home / "datasets" / "teacherclass"


def blobs(n=256, classes=3, shape=(8,), seed=0, spread=0.3):
    """Learnable data: one Gaussian blob per class, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    dim = int(np.prod(shape))
    centers = rng.uniform(0.2, 0.8, size=(classes, dim))
    y = rng.integers(0, classes, size=n)
    x = centers[y] + spread * 0.1 * rng.standard_normal((n, dim))
    return x.reshape((n, *shape)).astype("float32"), y.astype("int32")


def mlp_teacher(input_dim=8, width=16, classes=3, name="teacher"):
    """Input -> Dense(32) -> Dense(width, relu) [rep] -> Dropout -> softmax."""
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(width, activation="relu", name="rep"),
            keras.layers.Dropout(0.2, name="drop"),
            keras.layers.Dense(classes, activation="softmax", name="out"),
        ],
        name=name,
    )


def trained_mlp_teacher(x, y, epochs, **kwargs):
    """`mlp_teacher(**kwargs)` compiled with Adam and fitted on `(x, y)`."""
    model = mlp_teacher(**kwargs)
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def data():
    """Three learnable blobs in 8 dimensions: (x, y, x_test, y_test)."""
    keras.utils.set_random_seed(0)
    x, y = blobs(n=384, classes=3, shape=(8,))
    return x[:256], y[:256], x[256:], y[256:]


@pytest.fixture(scope="module")
def teacher(data):
    """`mlp_teacher` trained on `data` (above 90 % test accuracy)."""
    keras.utils.set_random_seed(0)
    x, y, _, _ = data
    return trained_mlp_teacher(x, y, epochs=30)
