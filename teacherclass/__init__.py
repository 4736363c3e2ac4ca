"""teacherclass: compress Keras models with teacher-class networks.

Importing the package is cheap: the public names below are imported on first
use (PEP 562 `__getattr__`), so `teacherclass --help` answers without
TensorFlow. The layers that saved `.keras` files name (the towers,
`FeatureClip`, `TeacherClass`, the fast CIFAR-10 teacher's initializer
and optimizer) are registered with Keras as soon as both
this package and Keras are imported, in either order, so
`keras.saving.load_model` finds them after a plain `import teacherclass`.
"""

import importlib
import sys
import typing

from teacherclass.version import __version__  # noqa: F401

# public name -> (module, attribute): what `from teacherclass import X` loads.
_PUBLIC = {
    "CompressionReport": ("teacherclass.report", "CompressionReport"),
    "ConvTower": ("teacherclass.towers", "ConvTower"),
    "DenseTower": ("teacherclass.towers", "DenseTower"),
    "DiskCache": ("teacherclass.features", "DiskCache"),
    "FeatureClip": ("teacherclass.compose", "FeatureClip"),
    "SegmentationTower": ("teacherclass.towers", "SegmentationTower"),
    "TeacherClass": ("teacherclass.model", "TeacherClass"),
    "TextTower": ("teacherclass.towers", "TextTower"),
    "Tower": ("teacherclass.towers", "Tower"),
    "contiguous_chunks": ("teacherclass.chunking", "contiguous"),
    "load_model": ("teacherclass.saving", "load_model"),
}

# Modules whose import registers Keras serializables (in load order: these
# import only Keras, `model` imports TensorFlow too).
_REGISTERING = (
    "teacherclass.towers",
    "teacherclass.compose",
    "teacherclass.fusion",
    "teacherclass.architectures",
)
_REGISTERING_WITH_TF = ("teacherclass.model",)

__all__ = [
    "CompressionReport",
    "ConvTower",
    "DenseTower",
    "DiskCache",
    "FeatureClip",
    "SegmentationTower",
    "TeacherClass",
    "TextTower",
    "Tower",
    "contiguous_chunks",
    "load_model",
]

if typing.TYPE_CHECKING:  # for type checkers and the API docs; not run
    from teacherclass.chunking import contiguous as contiguous_chunks
    from teacherclass.compose import FeatureClip
    from teacherclass.features import DiskCache
    from teacherclass.model import TeacherClass
    from teacherclass.report import CompressionReport
    from teacherclass.saving import load_model
    from teacherclass.towers import ConvTower
    from teacherclass.towers import DenseTower
    from teacherclass.towers import SegmentationTower
    from teacherclass.towers import TextTower
    from teacherclass.towers import Tower


def __getattr__(name):
    if name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        value = getattr(importlib.import_module(module), attribute)
        _register()
        globals()[name] = value
        return value
    if not name.startswith("_"):
        # `teacherclass.datasets` etc. without importing them first, as the
        # eager package allowed for the modules it imported.
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _initializing(name, finished=None):
    if name == finished:  # its import ends once this hook returns
        return False
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and getattr(spec, "_initializing", False)


def _register(finished=None):
    """Imports the modules that register this package's Keras objects.

    `finished`: "keras" or "tensorflow" when called by the hook that ends
    that module's import.
    """
    if _initializing("keras", finished):
        return  # Keras' own import ends by calling this again
    for module in _REGISTERING:
        importlib.import_module(module)
    # TensorFlow imports Keras half-way through its own import; `model`
    # needs all of TensorFlow, so it waits for the end of that import.
    if not _initializing("tensorflow", finished):
        for module in _REGISTERING_WITH_TF:
            importlib.import_module(module)


class _RegisterAfterKeras:
    """Runs `_register()` right after `keras` (and `tensorflow`) import.

    A `sys.meta_path` finder that answers nothing itself: it lets the other
    finders find `keras` or `tensorflow` and wraps the found loader, then
    removes itself once both are imported. Whichever of the two a program
    imports first imports the other inside its own import; `_register`
    waits for what it needs.
    """

    _WATCHED = ("keras", "tensorflow")

    def __init__(self):
        self._finding = False
        self._seen = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self._WATCHED or self._finding:
            return None
        self._finding = True
        try:
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._finding = False
        exec_module = getattr(getattr(spec, "loader", None), "exec_module", 0)
        if not exec_module:
            return spec

        def exec_then_register(module):
            exec_module(module)
            self._seen.add(fullname)
            if self._seen.issuperset(self._WATCHED) and self in sys.meta_path:
                sys.meta_path.remove(self)
            try:
                _register(finished=fullname)
            except Exception as e:  # never break `import keras` itself
                import warnings

                warnings.warn(
                    "teacherclass could not register its Keras layers "
                    f"({e!r}); import teacherclass.towers before loading "
                    "a saved model.",
                    stacklevel=2,
                )

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    _register()
elif not any(type(f).__name__ == "_RegisterAfterKeras" for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
