"""teacherclass: compress Keras models with teacher-class networks."""

from teacherclass.chunking import contiguous as contiguous_chunks
from teacherclass.compose import FeatureClip
from teacherclass.features import DiskCache
from teacherclass.model import TeacherClass
from teacherclass.report import CompressionReport
from teacherclass.towers import ConvTower
from teacherclass.towers import DenseTower
from teacherclass.towers import SegmentationTower
from teacherclass.towers import TextTower
from teacherclass.towers import Tower

__version__ = "0.1.0"

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
]
