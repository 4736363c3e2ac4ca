import keras
import pytest

from teacherclass import precision


@pytest.fixture
def restore_policy():
    before = keras.config.dtype_policy().name
    yield
    keras.config.set_dtype_policy(before)


@pytest.mark.parametrize(
    "gpu, bf16, expected",
    [
        (False, True, "mixed_bfloat16"),
        (False, False, "float32"),
        (True, False, "mixed_float16"),
        (True, True, "mixed_float16"),
    ],
)
def test_auto_picks_by_device(monkeypatch, gpu, bf16, expected):
    monkeypatch.setattr(precision, "_has_gpu", lambda: gpu)
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: bf16)
    assert precision.resolve_policy("auto") == expected
    assert precision.resolve_policy() == expected
    assert precision.resolve_policy("float32") == "float32"
    assert precision.resolve_policy("mixed_bfloat16") == "mixed_bfloat16"


def test_set_policy_sets_the_global_policy(restore_policy, monkeypatch):
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    assert precision.set_policy() == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "mixed_bfloat16"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("flags\t\t: fpu sse avx avx512f avx512_bf16\n", True),
        ("flags\t\t: fpu sse avx amx_bf16 amx_tile\n", True),
        ("Features\t: fp asimd bf16 i8mm\n", True),
        ("flags\t\t: fpu sse avx fma f16c\n", False),
        ("processor\t: 0\n", False),
    ],
)
def test_cpu_bfloat16_is_read_from_the_flags(
    tmp_path, monkeypatch, line, expected
):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\n" + line)
    assert ("bf16" in "".join(precision.cpu_flags(info))) == expected
    read = precision.cpu_flags
    monkeypatch.setattr(precision, "cpu_flags", lambda: read(info))
    assert precision.cpu_has_bfloat16() == expected


def test_unreadable_cpu_flags_mean_no_bfloat16(tmp_path):
    assert precision.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("policy", ["float16", "AUTO", None])
def test_rejects_unknown_policies(policy):
    with pytest.raises(ValueError, match=f"Received: policy={policy!r}"):
        precision.resolve_policy(policy)
