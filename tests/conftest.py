import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

# Fixtures below use these; tests import helpers from `helpers` directly.
from helpers import blobs  # noqa: E402
from helpers import time_once  # noqa: E402
from helpers import trained_mlp_teacher  # noqa: E402


@pytest.fixture(autouse=True)
def seed():
    """Every test starts from the same seed and the float32 policy."""
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(autouse=True)
def drop_leaked_gradient_registrations():
    """Lets the graphs of a test's traced training steps be freed.

    Each traced Keras train step registers, in TensorFlow's global gradient
    registry, a gradient function for the `all_reduce` its optimizer runs
    (`tf.custom_gradient` in graph mode, under any strategy), never removed;
    its closure holds the traced graph (tensorflow/tensorflow#97697). After
    test_model.py a worker held 161 dead train graphs (1.65M Python
    objects, against 0.45M with this fixture), each full garbage collection
    took over a second, and the tuning tests (Keras Tuner collects twice
    per trial build) ran 2-3x slower. The gradients were taken when the
    steps were traced: nothing reads these entries after the test.
    """
    yield
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    for name in [k for k in registry if k.startswith("CustomGradient-")]:
        del registry[name]


@pytest.fixture
def quick_latency(monkeypatch):
    """Latencies timed after one warm-up call, once (`helpers.time_once`)."""
    time_once(monkeypatch)


@pytest.fixture(scope="session")
def keras_home(tmp_path_factory):
    """A `KERAS_HOME` for this test run, not the developer's `~/.keras`.

    Shared by the pytest-xdist workers of one run.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / "keras_home"
    path.mkdir(exist_ok=True)
    return path


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


# The heaviest modules first. `--dist loadfile` hands whole modules to the
# workers in collection order (pyproject's `--no-loadscope-reorder`: else
# pytest-xdist orders them by their number of tests), so a heavy module
# collected last runs alone while the other worker idles; first, the light
# ones fill in around it. Ranked by the time each took on 2 workers
# (2026-12-03, the whole suite, per-test start and stop recorded).
_HEAVY_FIRST = (
    "test_model.py",
    "test_reproduce.py",
    "test_notebooks.py",
    "test_cli.py",
    "test_cifar10.py",
    "test_distribute.py",
    "test_head_aware.py",
    "test_datasets.py",
    "test_text.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
