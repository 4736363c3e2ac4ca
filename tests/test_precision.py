import keras
import pytest

from teacherclass import precision


@pytest.fixture
def restore_policy():
    before = keras.config.dtype_policy().name
    yield
    keras.config.set_dtype_policy(before)


@pytest.mark.parametrize(
    "gpu, expected", [(False, "mixed_bfloat16"), (True, "mixed_float16")]
)
def test_auto_picks_by_device(monkeypatch, gpu, expected):
    monkeypatch.setattr(precision, "_has_gpu", lambda: gpu)
    assert precision.resolve_policy("auto") == expected
    assert precision.resolve_policy() == expected
    assert precision.resolve_policy("float32") == "float32"


def test_set_policy_sets_the_global_policy(restore_policy, monkeypatch):
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    assert precision.set_policy() == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "mixed_bfloat16"


@pytest.mark.parametrize("policy", ["float16", "AUTO", None])
def test_rejects_unknown_policies(policy):
    with pytest.raises(ValueError, match=f"Received: policy={policy!r}"):
        precision.resolve_policy(policy)
