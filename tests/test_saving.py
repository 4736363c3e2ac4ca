import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from teacherclass import DenseTower
from teacherclass import TeacherClass
from teacherclass import saving

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def composed(teacher, data, tmp_path_factory):
    """A composed model saved to `.keras`: (path, x, its predictions)."""
    keras.utils.set_random_seed(0)
    x, _, x_test, _ = data
    tc = TeacherClass(teacher, num_students=2, student=DenseTower(1))
    tc.fit_students(x, epochs=1, verbose=0)
    model = tc.compose()
    path = tmp_path_factory.mktemp("saving") / "composed.keras"
    model.save(path)
    return path, x_test, model.predict(x_test, verbose=0)


def test_load_model_loads_a_composed_model(composed):
    path, x, expected = composed
    for where in (path, str(path)):
        model = saving.load_model(where, safe_mode=True)
        np.testing.assert_allclose(
            model.predict(x, verbose=0), expected, atol=1e-6
        )
    assert not saving.load_model(path, compile=False).compiled


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.keras"
    with pytest.raises(FileNotFoundError, match="Received: path=.*nowhere"):
        saving.load_model(path)


def test_truncated_file(composed, tmp_path):
    path = tmp_path / "truncated.keras"
    data = composed[0].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # Keras itself calls this file missing.
    with pytest.raises(ValueError, match="File not found"):
        keras.saving.load_model(path)
    with pytest.raises(ValueError, match="The file is truncated") as info:
        saving.load_model(path)
    assert str(path) in str(info.value) and len(str(info.value)) < 300


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.keras"
    path.write_bytes(b"\x00\x01 not a model " * 50)
    with pytest.raises(ValueError, match="not a `.keras` zip archive"):
        saving.load_model(path)


def test_zip_that_is_not_a_model(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="not a Keras model"):
        saving.load_model(path)


def test_damaged_archive(composed, tmp_path):
    data = bytearray(composed[0].read_bytes())
    with zipfile.ZipFile(composed[0]) as archive:
        info = archive.getinfo("model.weights.h5")
    assert info.compress_type == zipfile.ZIP_STORED
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle : middle + 8] = bytes(255 - b for b in data[middle:][:8])
    path = tmp_path / "damaged.keras"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="archive is damaged.*Bad CRC"):
        saving.load_model(path)


class Scale(keras.layers.Layer):
    """A custom layer nobody registered."""

    def call(self, inputs):
        return 2.0 * inputs


def unregistered_tanh(x):
    return keras.ops.tanh(x)


@pytest.mark.parametrize(
    "layer, kind, name",
    [
        (Scale(), "class", "Scale"),
        (DenseTower(2, activation=unregistered_tanh), "function", None),
    ],
    ids=["class", "function"],
)
def test_unregistered_custom_object(layer, kind, name, tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "custom.keras"
    model.save(path)
    with pytest.raises(TypeError) as info:
        saving.load_model(path)
    message = str(info.value)
    assert len(message) < 400, message
    assert f"needs the {kind}" in message
    assert "custom_objects=" in message and "Full object config" not in message
    missing = re.search(r"needs the \w+ '([^']+)'", message).group(1)
    if name is not None:
        assert missing == name
    custom = {missing: Scale if kind == "class" else unregistered_tanh}
    loaded = saving.load_model(path, custom_objects=custom)
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_every_registering_module_is_imported_first():
    # A module that registers a saveable class must be in the list, or a
    # file naming that class fails to load in a fresh process.
    package = ROOT / "teacherclass"
    registering = {
        f"teacherclass.{p.stem}"
        for p in package.glob("*.py")
        if "register_keras_serializable(" in p.read_text()
        and p.stem != "saving"
    }
    assert registering <= set(saving._REGISTERING_MODULES)


def test_fresh_process_loads_without_importing_teacherclass(composed):
    path, x, expected = composed
    np.save(path.with_suffix(".npy"), x)
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import keras, numpy as np
        path = {str(path)!r}
        try:
            keras.saving.load_model(path)
        except TypeError as error:
            print("keras alone:", len(str(error)), "characters")
        else:
            sys.exit("keras.saving.load_model loaded without teacherclass")
        assert not any(m.startswith("teacherclass") for m in sys.modules)
        from teacherclass.saving import load_model
        model = load_model(path)
        x = np.load({str(path.with_suffix(".npy"))!r})
        out = model.predict(x, verbose=0)
        np.save({str(path.with_suffix(".out.npy"))!r}, out)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "keras alone:" in result.stdout
    np.testing.assert_allclose(
        np.load(path.with_suffix(".out.npy")), expected, atol=1e-5
    )


def test_optimizer_state_of_another_size_is_not_restored(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    one = [keras.Variable(np.ones(3))]
    two = [keras.Variable(np.ones(3)), keras.Variable(np.ones(2))]
    saved = keras.optimizers.Adam()
    saved.build(one)
    saving.save_optimizer_state(saved, path)
    other = keras.optimizers.Adam()
    other.build(two)
    before = [v.numpy().copy() for v in other.variables]
    with pytest.warns(UserWarning, match=r"holds 4 variables.* has 6"):
        assert saving.load_optimizer_state(other, two, path) is False
    for kept, now in zip(before, other.variables):
        np.testing.assert_array_equal(kept, now.numpy())
    # The same size is restored.
    same = keras.optimizers.Adam()
    assert saving.load_optimizer_state(same, one, path) is True
