"""The package imports its public names on first use (PEP 562).

`import teacherclass` alone must neither import TensorFlow (so the CLI's
`--help` is fast; see test_cli) nor break the promise that a `.keras` file
with the package's layers loads after it, whichever of Keras, TensorFlow
and teacherclass is imported first.
"""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import teacherclass
from teacherclass import DenseTower
from teacherclass import FeatureClip


def test_every_public_name_resolves():
    for name in teacherclass.__all__:
        assert getattr(teacherclass, name) is not None, name
        assert name in dir(teacherclass)
    from teacherclass import TeacherClass
    from teacherclass.model import TeacherClass as defined

    assert TeacherClass is defined
    assert teacherclass.contiguous_chunks(8, 2) is not None
    assert teacherclass.__version__ == "0.1.0"


def test_modules_are_attributes_and_unknown_names_are_not():
    assert teacherclass.datasets.load is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        teacherclass.nothing  # noqa: B018
    with pytest.raises(ImportError, match="nothing"):
        from teacherclass import nothing  # noqa: F401


@pytest.mark.parametrize(
    "imports",
    [
        # Keras after the package: registered when Keras is imported.
        "import teacherclass\nimport keras",
        # TensorFlow imports Keras half-way through its own import.
        "import teacherclass\nimport tensorflow\nimport keras",
        # A module first: it imports Keras (or TensorFlow) itself, half-way
        # through its own import, which the registration must wait out.
        "import teacherclass.towers\nimport keras",
        "import teacherclass.teacher\nimport keras",
        "import teacherclass.datasets\nimport keras",
    ],
    ids=[
        "keras-after",
        "tensorflow-after",
        "towers-first",
        "teacher-first",
        "datasets-first",
    ],
)
def test_saved_layers_load_after_a_plain_import(imports, tmp_path):
    x = np.random.default_rng(0).random((4, 6), "float32")
    model = keras.Sequential(
        [keras.Input((6,)), DenseTower(3, hidden=(5,)), FeatureClip(0.0, 0.5)]
    )
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        {{imports}}
        import numpy as np
        d = {str(tmp_path)!r}
        model = keras.saving.load_model(d + "/m.keras")
        np.testing.assert_allclose(
            model.predict(np.load(d + "/x.npy"), verbose=0),
            np.load(d + "/y.npy"), atol=1e-6)
        print(keras.saving.get_registered_object("teacherclass>TeacherClass"))
        """
    ).replace("{imports}", imports)
    result = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", script],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # TeacherClass too, once TensorFlow has finished importing.
    registered = result.stdout.strip().splitlines()[-1]
    assert registered == "<class 'teacherclass.model.TeacherClass'>"
