"""Models from every path load in a fresh process and predict the same.

Raw-text models (test_text) have their own fresh-process test; this one
covers the plain MSE class (the `TeacherClass` itself, which must come
back with its trained students and compose again, and its fine-tuned
composed model), the adversarial objective, knowledge reuse (a new head,
and `representation()`) and segmentation. Everything is saved here, then
one new Python process loads each `.keras` file with
`keras.saving.load_model` (safe_mode=True by default) after
`import teacherclass` and compares its predictions.
"""

import subprocess
import sys
import textwrap

import keras
import numpy as np

from teacherclass import DenseTower
from teacherclass import TeacherClass
from teacherclass import segmentation


def _save(tmp_path, name, model, x):
    model.save(tmp_path / f"{name}.keras")
    np.save(tmp_path / f"{name}_x.npy", x)
    np.save(tmp_path / f"{name}_y.npy", model.predict(x, verbose=0))


def test_every_path_loads_in_a_fresh_process(teacher, data, tmp_path):
    x, y, x_test, _ = data
    saved = []

    plain = TeacherClass(
        teacher, num_students=2, student=DenseTower(1, hidden=(16,))
    )
    plain.fit_students(x, epochs=2, verbose=0)
    fine_tuned = plain.compose(fine_tune=True, x=x, y=y, epochs=1, verbose=0)
    _save(tmp_path, "class", plain, x_test)
    _save(tmp_path, "composed", fine_tuned, x_test)
    saved += ["class", "composed"]

    adversarial = TeacherClass(teacher, num_students=2)
    adversarial.fit_students(x, epochs=2, loss="adversarial", verbose=0)
    composed = adversarial.compose()
    assert not any("discriminator" in w.path for w in composed.weights)
    _save(tmp_path, "adversarial", composed, x_test)
    saved.append("adversarial")

    reuse = TeacherClass(teacher, num_students=2)
    reuse.fit_students(x, epochs=2, verbose=0)
    head = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(2, activation="softmax")]
    )
    head.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    new_task = reuse.compose(
        head=head, fine_tune=True, x=x, y=(y == 0), epochs=1, verbose=0
    )
    _save(tmp_path, "new_head", new_task, x_test)
    _save(tmp_path, "representation", reuse.representation(), x_test)
    saved += ["new_head", "representation"]

    images = np.random.default_rng(0).random((8, 16, 16, 3), "float32")
    unet = segmentation.unet_teacher(
        (16, 16, 3), num_classes=3, filters=(8, 16), rescale=False
    )
    seg = TeacherClass(
        unet, num_students=2, student=segmentation.segmentation_student((8,))
    )
    seg.fit_students(images, epochs=1, batch_size=4, verbose=0)
    _save(tmp_path, "segmentation", seg.compose(), images)
    saved.append("segmentation")

    script = textwrap.dedent(
        f"""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import keras, numpy as np
        import teacherclass
        d = {str(tmp_path)!r}
        for name in {saved!r}:
            model = keras.saving.load_model(f"{{d}}/{{name}}.keras")
            x = np.load(f"{{d}}/{{name}}_x.npy")
            np.testing.assert_allclose(
                model.predict(x, verbose=0), np.load(f"{{d}}/{{name}}_y.npy"),
                atol=1e-5, err_msg=name)
            print("ok", name)
        tc = keras.saving.load_model(f"{{d}}/class.keras")
        assert isinstance(tc, teacherclass.TeacherClass), type(tc)
        assert tc.trained_students == [0, 1], tc.trained_students
        np.testing.assert_allclose(
            tc.compose().predict(np.load(f"{{d}}/class_x.npy"), verbose=0),
            np.load(f"{{d}}/class_y.npy"), atol=1e-5)
        print("ok", "compose")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [
        word for name in [*saved, "compose"] for word in ("ok", name)
    ]
