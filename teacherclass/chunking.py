"""How the representation is split among the students.

Chunks are contiguous ranges of the representation's last axis (units of a
vector, channels of a feature map), in order, covering every feature once.
"""

from teacherclass import validation


def contiguous(width, num_students):
    """Splits `width` features into `num_students` near-equal chunks.

    The remainder goes to the first chunks, one feature each, so no feature
    is dropped: 256 into 3 gives (86, 85, 85).

    Args:
        width: int, the representation width.
        num_students: int, between 1 and `width`.

    Returns:
        A tuple of chunk widths summing to `width`.

    Raises:
        ValueError: if `num_students` is not between 1 and `width`.

    Example:

    >>> contiguous(256, 3)
    (86, 85, 85)
    """
    if not validation.is_int(num_students) or not 1 <= num_students <= width:
        raise ValueError(
            "`num_students` must be an integer between 1 and the feature "
            f"width {width}. Received: num_students={num_students!r}"
        )
    num_students = int(num_students)
    base, extra = divmod(width, num_students)
    return tuple(base + (i < extra) for i in range(num_students))


def resolve(width, num_students=None, chunks=None):
    """Chunk widths from either `num_students` or explicit `chunks`.

    Args:
        width: int, the representation width.
        num_students: int or None, for a contiguous equal split.
        chunks: sequence of positive ints summing to `width`, or None.

    Returns:
        A tuple of chunk widths.

    Raises:
        ValueError: if the chunks do not cover the width exactly, hold a
            non-positive width, or disagree with `num_students`.
    """
    if chunks is None:
        return contiguous(width, 4 if num_students is None else num_students)
    try:
        chunks = tuple(chunks)
    except TypeError:
        raise ValueError(
            "`chunks` must be a sequence of chunk widths, one per student "
            f"(or pass `num_students`). Received: chunks={chunks!r}"
        ) from None
    if not chunks or any(not validation.is_int(c) or c < 1 for c in chunks):
        raise ValueError(
            f"`chunks` must be positive integers. Received: chunks={chunks}"
        )
    chunks = tuple(int(c) for c in chunks)
    if sum(chunks) != width:
        raise ValueError(
            f"`chunks` must sum to the feature width {width}; they sum to "
            f"{sum(chunks)}. Received: chunks={chunks}"
        )
    if num_students is not None and num_students != len(chunks):
        raise ValueError(
            f"`num_students` ({num_students}) disagrees with the "
            f"{len(chunks)} `chunks`; pass one of them. "
            f"Received: num_students={num_students}, chunks={chunks}"
        )
    return chunks


def bounds(chunks):
    """The `(start, stop)` of each chunk on the representation's last axis.

    Example:

    >>> bounds((86, 85, 85))
    ((0, 86), (86, 171), (171, 256))
    """
    out, start = [], 0
    for width in chunks:
        out.append((start, start + width))
        start += width
    return tuple(out)
