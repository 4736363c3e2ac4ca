"""The package's version, in a module of its own.

`setup.cfg` reads it (`version = attr: teacherclass.version.__version__`)
without importing Keras or TensorFlow, and `teacherclass.__version__`
re-exports it.
"""

__version__ = "0.1.0"
