"""Griffe extension: Keras-style `Example:` sections render as examples.

The library's docstrings say `Example:` (singular, as Keras does); Google
style parsers read only `Examples:` as a doctest section, and would render
the `>>>` lines as Markdown quotes. This renames the section and indents
its body (Keras writes it flush with the header) when griffe loads it. The
section must be the docstring's last, as it is in this library.
"""

import re

import griffe

_EXAMPLE = re.compile(r"^Example:[ \t]*\n+((?:.*\n?)*)", re.M)


def _section(match):
    body = match.group(1).rstrip("\n")
    lines = [
        ("    " + line) if line.strip() else "" for line in body.split("\n")
    ]
    return "Examples:\n" + "\n".join(lines) + "\n"


class ExampleSections(griffe.Extension):
    """Renames `Example:` to `Examples:` in every loaded docstring."""

    def on_package(self, *, pkg, **kwargs):
        _rename(pkg, set())


def _rename(obj, seen):
    if obj.is_alias or id(obj) in seen:
        return
    seen.add(id(obj))
    if obj.docstring is not None:
        obj.docstring.value = _EXAMPLE.sub(_section, obj.docstring.value)
    for member in obj.members.values():
        _rename(member, seen)
