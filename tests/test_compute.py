"""Compute in comparisons: MACs, paired latency, budgets by MACs."""

import keras
import numpy as np
import pytest
from helpers import blobs
from helpers import mlp_teacher

from teacherclass import TeacherClass
from teacherclass import architectures
from teacherclass import baselines
from teacherclass import fusion
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


def test_a_layer_or_subclassed_model_is_counted_wrapped():
    # Neither has known inputs; wrapped in a functional model, it counts.
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return self.dense(x)

    layer = keras.layers.Dense(4)
    layer.build((None, 3))
    subclassed = Subclassed()
    subclassed(np.zeros((1, 3), "float32"))  # built by a call
    for unknown in (layer, subclassed):
        with pytest.raises(ValueError, match="functional or Sequential"):
            count_macs(unknown)
        x = keras.Input((3,))
        assert count_macs(keras.Model(x, unknown(x))) == 3 * 4


def _one_layer(layer, shape):
    x = keras.Input(shape)
    return keras.Model(x, layer(x))


@pytest.mark.parametrize(
    "equation, shape, output_shape, macs",
    [
        # MultiHeadAttention's output projection: sums h=2 and d=3.
        ("abcd,cde->abe", (4, 2, 3), (None, 8), 4 * 2 * 3 * 8),
        # Its query projection: sums the 8 input features.
        ("abc,cde->abde", (4, 8), (None, 2, 3), 4 * 8 * 2 * 3),
        ("ab,bc->ac", (8,), (5,), 8 * 5),
        ("...b,bc->...c", (4, 8), (5,), 4 * 8 * 5),
    ],
)
def test_einsum_dense_macs_are_the_kernel_axes_summed(
    equation, shape, output_shape, macs
):
    layer = keras.layers.EinsumDense(
        equation, output_shape=output_shape, bias_axes=equation[-1]
    )
    model = _one_layer(layer, shape)
    outputs = int(np.prod(model(np.zeros((1, *shape))).shape[1:]))
    assert count_macs(model) == macs
    assert count_flops(model) == 2 * macs + outputs  # + the bias


def test_multi_head_attention_counts_its_projections():
    x = keras.Input((4, 8))
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    model = keras.Model(x, mha(x, x))
    # q, k, v: 4 steps x 8 features x 2 heads x 3; output: back to 8.
    assert count_macs(model) == 3 * (4 * 8 * 2 * 3) + 4 * 2 * 3 * 8


@pytest.mark.parametrize(
    "make, shape, macs",
    [
        (lambda f: keras.layers.Conv2D(5, 3, padding="same", data_format=f),
         (8, 8, 3), 8 * 8 * 5 * 3 * 3 * 3),
        (lambda f: keras.layers.Conv1D(5, 3, data_format=f),
         (10, 4), 8 * 5 * 3 * 4),
        (lambda f: keras.layers.SeparableConv2D(5, 3, padding="same",
                                                data_format=f),
         (6, 6, 4), 6 * 6 * 4 * 9 + 6 * 6 * 4 * 5),
        (lambda f: keras.layers.Conv2DTranspose(5, 3, strides=2,
                                                padding="same", data_format=f),
         (4, 4, 3), 4 * 4 * 3 * 9 * 5),
    ],
    ids=["conv2d", "conv1d", "separable", "transposed"],
)  # fmt: skip
def test_convolution_macs_in_either_data_format(make, shape, macs):
    last = _one_layer(make("channels_last"), shape)
    first_shape = (shape[-1], *shape[:-1])
    first = _one_layer(make("channels_first"), first_shape)
    assert count_macs(last) == count_macs(first) == macs
    assert count_flops(last) == count_flops(first)


def test_time_distributed_counts_its_layer_at_every_step():
    dense = _one_layer(keras.layers.TimeDistributed(keras.layers.Dense(5)),
                       (4, 8))  # fmt: skip
    assert count_macs(dense) == 4 * 8 * 5
    assert count_flops(dense) == 4 * (2 * 8 * 5 + 5)
    inner = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(6), keras.layers.Dense(5)]
    )
    model = _one_layer(keras.layers.TimeDistributed(inner), (4, 8))
    assert count_macs(model) == 4 * (8 * 6 + 6 * 5)


def test_macs_do_not_depend_on_how_the_students_are_fused():
    keras.utils.set_random_seed(0)
    x, _ = blobs(n=16)
    # A representation of 16 in two even chunks: no mode pads a tower.
    tc = TeacherClass(mlp_teacher(width=16), num_students=2)
    tc.fit_students(x, epochs=1, verbose=0)
    unfused = tc.compose(fuse="none")
    macs, flops = count_macs(unfused), count_flops(unfused)
    assert macs > 0
    for mode in fusion.FUSED_MODES:
        fused = tc.compose(fuse=mode)
        assert fused.fusion.mode == mode
        assert (count_macs(fused), count_flops(fused)) == (macs, flops), mode
    kinds = {kind for _, kind, _ in count_macs(fused, per_layer=True)[1]}
    assert "BatchedDense" in kinds  # the last mode, "einsum"


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
