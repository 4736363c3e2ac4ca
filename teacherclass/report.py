"""Compression reports: what the class of students costs against the teacher."""


class CompressionReport(dict):
    """Parameter counts and compression ratio, a dict that prints a table.

    Keys: `teacher_params`, `student_params` (a list, one per student),
    `head_params`, `composed_params` (students + head) and
    `compression_ratio` (teacher / composed), plus any extra measurements
    added by the caller (e.g. `teacher_accuracy`).

    Example:

    >>> r = CompressionReport.from_counts(teacher=1000, students=[40, 40],
    ...                                   head=20)
    >>> r["compression_ratio"]
    10.0
    """

    @classmethod
    def from_counts(cls, teacher, students, head):
        """Builds a report from parameter counts.

        Args:
            teacher: int, the teacher's parameters.
            students: list of ints, each student's parameters.
            head: int, the head's parameters.

        Returns:
            A `CompressionReport`.
        """
        composed = sum(students) + head
        return cls(
            teacher_params=int(teacher),
            student_params=[int(s) for s in students],
            head_params=int(head),
            composed_params=int(composed),
            compression_ratio=float(teacher) / composed,
        )

    def rows(self):
        """The table's rows as `(name, parameters, extra)` tuples."""
        rows = [("teacher", self["teacher_params"], self._extra("teacher"))]
        for i, p in enumerate(self["student_params"]):
            rows.append((f"student {i}", p, self._extra(f"student_{i}")))
        rows.append(("head", self["head_params"], ""))
        rows.append(
            ("composed", self["composed_params"], self._extra("composed"))
        )
        return rows

    def _extra(self, prefix):
        parts = []
        for key, value in self.items():
            if key.startswith(prefix + "_") and not key.endswith("_params"):
                name = key[len(prefix) + 1 :]
                shown = f"{value:.4f}" if isinstance(value, float) else value
                parts.append(f"{name}={shown}")
        return ", ".join(parts)

    def __str__(self):
        rows = self.rows()
        width = max(len(r[0]) for r in rows)
        lines = [f"{'model':<{width}}  {'parameters':>12}  measured"]
        for name, params, extra in rows:
            lines.append(f"{name:<{width}}  {params:>12,}  {extra}".rstrip())
        lines.append(f"compression ratio: {self['compression_ratio']:.1f}x")
        return "\n".join(lines)
