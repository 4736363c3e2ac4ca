"""Compute in comparisons: MACs, paired latency, budgets by MACs."""

import keras
import pytest

from teacherclass import architectures
from teacherclass import baselines
from teacherclass import report
from teacherclass.flops import count_flops
from teacherclass.flops import count_macs


def _dense(units, inputs=9):
    x = keras.Input((inputs,))
    return keras.Model(x, keras.layers.Dense(units)(x))


def test_macs_are_the_multiply_add_part_of_flops():
    x = keras.Input((6, 6, 2))
    y = keras.layers.Conv2D(4, 3)(x)
    y = keras.layers.MaxPooling2D(2)(y)
    y = keras.layers.Flatten()(y)
    model = keras.Model(x, keras.layers.Dense(3)(y))
    conv = 4 * 4 * 4 * (3 * 3 * 2)
    dense = 16 * 3
    assert count_macs(model) == conv + dense
    other = 4 * 4 * 4 + 2 * 2 * 4 * 4 + 3  # conv bias, pooling, dense bias
    assert count_flops(model) == 2 * (conv + dense) + other


def test_paired_latency_times_every_model_at_every_batch_size():
    models = {"a": _dense(4), "b": _dense(8)}
    times = report.paired_latency(models, batch_sizes=(1, 4), repeats=2)
    assert set(times) == {"a", "b"}
    assert all(set(t) == {"1", "4"} for t in times.values())
    assert all(v > 0 for t in times.values() for v in t.values())


def test_size_to_budget_by_macs_and_callable():
    assert architectures.size_to_budget(_dense, 90, measure="macs") == 10
    assert architectures.size_to_budget(_dense, 91, measure="macs") == 11
    tenths = architectures.size_to_budget(
        _dense, 10, measure=lambda m: m.count_params() / 10
    )
    assert tenths == 10  # 100 parameters
    with pytest.raises(ValueError, match="measure='flops'"):
        architectures.size_to_budget(_dense, 90, measure="flops")


def test_matched_student_within_tolerance():
    def build(a, b):
        x = keras.Input((4, 4, 1))
        y = keras.layers.Conv2D(a, 3, padding="same")(x)
        y = keras.layers.Flatten()(y)
        return keras.Model(x, keras.layers.Dense(b)(y))

    target = build(6, 10)
    params, macs = target.count_params(), count_macs(target)
    match = baselines.matched_student(build, params=params, macs=macs)
    assert abs(match["params_error"]) <= 0.05
    assert abs(match["macs_error"]) <= 0.05
    model = build(*match["widths"])
    assert model.count_params() == match["params"]
    with pytest.raises(ValueError, match="tolerance=0"):
        baselines.matched_student(build, params, macs, tolerance=0)


def test_compact_mnist_class_costs_less_compute_than_the_teacher():
    teacher = architectures.mnist_teacher()
    teacher_macs = count_macs(teacher)
    assert teacher_macs == 13_238_912
    tower = architectures.mnist_student(4, compact=True)
    x = keras.Input((28, 28, 1))
    student = keras.Model(x, tower(x))
    assert (student.count_params(), count_macs(student)) == (14_488, 653_344)
    assert 4 * count_macs(student) + 2_560 < teacher_macs
