import pytest

from teacherclass import chunking


def test_contiguous_spreads_the_remainder():
    assert chunking.contiguous(256, 3) == (86, 85, 85)
    assert chunking.contiguous(256, 4) == (64, 64, 64, 64)
    assert chunking.contiguous(10, 10) == (1,) * 10
    assert sum(chunking.contiguous(257, 8)) == 257


@pytest.mark.parametrize("n", [0, -1, 257, 2.0, True])
def test_contiguous_bad_num_students(n):
    with pytest.raises(ValueError, match=f"Received: num_students={n!r}"):
        chunking.contiguous(256, n)


def test_resolve_explicit_chunks():
    assert chunking.resolve(10, chunks=[3, 7]) == (3, 7)
    assert chunking.resolve(10, num_students=2, chunks=(5, 5)) == (5, 5)
    assert chunking.resolve(12) == (3, 3, 3, 3)


@pytest.mark.parametrize(
    "chunks, message",
    [
        ([3, 6], "must sum to the feature width 10; they sum to 9"),
        ([0, 10], "must be positive integers"),
        ([-2, 12], "must be positive integers"),
        ([], "must be positive integers"),
    ],
)
def test_resolve_bad_chunks(chunks, message):
    with pytest.raises(ValueError, match=message) as info:
        chunking.resolve(10, chunks=chunks)
    assert f"Received: chunks={tuple(chunks)}" in str(info.value)


def test_resolve_num_students_disagrees_with_chunks():
    with pytest.raises(ValueError, match="disagrees with the 2 `chunks`"):
        chunking.resolve(10, num_students=3, chunks=[5, 5])


def test_bounds():
    assert chunking.bounds((86, 85, 85)) == ((0, 86), (86, 171), (171, 256))
