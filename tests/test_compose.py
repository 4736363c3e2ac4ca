import keras
import numpy as np
import pytest

from teacherclass import compose


def test_feature_clip_bounds_of_different_lengths_are_a_value_error():
    with pytest.raises(
        ValueError,
        match=r"`low` and `high` must have the same length when both are "
        r"per-feature lists. Received: low=\[0.0, 0.0, 0.0\] \(3 values\), "
        r"high=\[1.0, 1.0\] \(2 values\)",
    ):
        compose.FeatureClip(low=[0, 0, 0], high=[1, 1])


@pytest.mark.parametrize("name", ["low", "high"])
def test_feature_clip_bounds_must_match_the_input_width(name):
    clip = compose.FeatureClip(**{name: [0.0, 0.5, 1.0]})
    with pytest.raises(
        ValueError,
        match=rf"`{name}` must hold one value per feature: the input has 4 "
        rf"features, `{name}` 3. Received: {name}=\[0.0, 0.5, 1.0\] for "
        r"input_shape=\(2, 4\)",
    ):
        clip(np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="the input has 4 features"):
        clip(keras.Input((4,)))


def test_feature_clip_per_feature_and_single_bounds_clip():
    x = np.array([[-1.0, 0.25, 5.0]], "float32")
    clip = compose.FeatureClip(low=[0.0, 0.5, 1.0], high=[1.0, 1.0, 2.0])
    np.testing.assert_array_equal(clip(x), [[0.0, 0.5, 2.0]])
    # One value in a list applies to every feature.
    np.testing.assert_array_equal(
        compose.FeatureClip(low=[0.0])(x), [[0.0, 0.25, 5.0]]
    )
