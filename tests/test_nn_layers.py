"""Layers and losses of normcli.nn: gradients by finite differences, batch-norm semantics by hand.

Every reference here is computed independently of the code under test: central finite
differences of the layer's own forward (for gradients), or the textbook formula written out
again in the test (for values).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import numeric_grad, rel_err

from normcli.nn import (
    GELU,
    BatchNorm1d,
    Dropout,
    LeakyReLU,
    Linear,
    MSELoss,
    ReLU,
    SoftmaxCrossEntropy,
    Tanh,
    erf,
)

TOL = 1e-7  # norm-based relative error of analytic vs numeric gradients (float64)




def check_layer_grads(layer, x: np.ndarray, rng: np.random.Generator, training: bool = True):
    """Loss L = Σ out·R for a fixed random R; compare ∂L/∂x and parameter gradients to FD."""
    out = layer.forward(x, training)
    weights = rng.standard_normal(out.shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x, training) * weights))

    layer.forward(x, training)
    dx = layer.backward(weights)
    assert rel_err(numeric_grad(loss, x), dx) <= TOL
    for name in layer.param_names:
        layer.forward(x, training)
        layer.backward(weights)
        analytic = getattr(layer, "d" + name).copy()
        numeric = numeric_grad(loss, getattr(layer, name))
        assert rel_err(numeric, analytic) <= TOL, name
    return dx


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# -- Linear ------------------------------------------------------------------------------------


def test_linear_forward_is_x_wt_plus_b(rng):
    layer = Linear(3, 2, rng, np.float64)
    x = rng.standard_normal((4, 3))
    expected = np.array(
        [
            [sum(x[i, k] * layer.W[j, k] for k in range(3)) + layer.b[j] for j in range(2)]
            for i in range(4)
        ]
    )
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-14)


def test_linear_gradients(rng):
    layer = Linear(4, 3, rng, np.float64)
    check_layer_grads(layer, rng.standard_normal((5, 4)), rng)


def test_linear_without_input_grad_returns_none(rng):
    layer = Linear(4, 3, rng, np.float64, input_grad=False)
    layer.forward(rng.standard_normal((5, 4)))
    assert layer.backward(np.ones((5, 3))) is None
    np.testing.assert_allclose(layer.db, [5.0, 5.0, 5.0])


def test_linear_init_like_torch_kaiming_uniform():
    fan_in = 50
    layer = Linear(fan_in, 400, np.random.default_rng(0), np.float32)
    bound = 1.0 / math.sqrt(fan_in)
    assert layer.W.shape == (400, fan_in) and layer.b.shape == (400,)
    assert layer.W.dtype == np.float32 and layer.b.dtype == np.float32
    assert np.abs(layer.W).max() <= bound and np.abs(layer.b).max() <= bound
    # Uniform on [-bound, bound]: the extremes are nearly reached, the variance is bound²/3.
    assert np.abs(layer.W).max() > 0.99 * bound
    assert abs(layer.W.var() - bound**2 / 3) < 0.05 * bound**2 / 3
    same = Linear(fan_in, 400, np.random.default_rng(0), np.float64)
    np.testing.assert_array_equal(same.W.astype(np.float32), layer.W)


# -- BatchNorm1d -------------------------------------------------------------------------------


def test_batchnorm_gradients_training_mode(rng):
    layer = BatchNorm1d(3, dtype=np.float64)
    layer.gamma[...] = rng.uniform(0.5, 2.0, 3)
    layer.beta[...] = rng.standard_normal(3)
    check_layer_grads(layer, rng.standard_normal((6, 3)) * 3 + 1, rng)


def test_batchnorm_gradients_eval_mode(rng):
    layer = BatchNorm1d(3, dtype=np.float64)
    layer.gamma[...] = rng.uniform(0.5, 2.0, 3)
    layer.running_mean[...] = rng.standard_normal(3)
    layer.running_var[...] = rng.uniform(0.5, 2.0, 3)
    check_layer_grads(layer, rng.standard_normal((4, 3)), rng, training=False)


@pytest.mark.parametrize("rows", [2, 3])
def test_batchnorm_gradients_tiny_batch_elementwise(rows, rng):
    layer = BatchNorm1d(2, dtype=np.float64)
    layer.gamma[...] = [1.5, -0.7]
    x = rng.standard_normal((rows, 2))
    weights = rng.standard_normal((rows, 2))

    def loss() -> float:
        return float(np.sum(layer.forward(x) * weights))

    layer.forward(x)
    dx = layer.backward(weights)
    numeric = numeric_grad(loss, x)
    # Each element on its own, relative to the gradient's scale.
    scale = np.abs(numeric).max()
    assert np.all(np.abs(numeric - dx) <= 1e-7 * scale)
    # Batch-norm output is invariant to shifting a column: its gradient sums to 0 per column.
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-12)


def reference_batchnorm(x, gamma, beta, eps):
    """Per column: (x − mean)/sqrt(biased var + eps)·γ + β, written out with Python floats."""
    rows, cols = x.shape
    out = np.empty_like(x)
    means, biased, unbiased = [], [], []
    for j in range(cols):
        column = [float(v) for v in x[:, j]]
        mean = sum(column) / rows
        var = sum((v - mean) ** 2 for v in column) / rows
        means.append(mean)
        biased.append(var)
        unbiased.append(sum((v - mean) ** 2 for v in column) / (rows - 1))
        for i in range(rows):
            out[i, j] = gamma[j] * (column[i] - mean) / math.sqrt(var + eps) + beta[j]
    return out, np.array(means), np.array(biased), np.array(unbiased)


def test_batchnorm_training_forward_and_running_stats_by_hand(rng):
    layer = BatchNorm1d(3, dtype=np.float64)
    layer.gamma[...] = [2.0, 0.5, 1.0]
    layer.beta[...] = [0.1, -1.0, 3.0]
    x1 = rng.standard_normal((5, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    x2 = rng.standard_normal((7, 3))

    out1 = layer.forward(x1, training=True)
    expected1, mean1, _, unbiased1 = reference_batchnorm(x1, layer.gamma, layer.beta, 1e-5)
    np.testing.assert_allclose(out1, expected1, rtol=1e-12, atol=1e-12)
    # new = (1 − 0.1)·old + 0.1·batch, from mean 0 / var 1; variance unbiased (n/(n−1)).
    running_mean = 0.9 * 0.0 + 0.1 * mean1
    running_var = 0.9 * 1.0 + 0.1 * unbiased1
    np.testing.assert_allclose(layer.running_mean, running_mean, rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, running_var, rtol=1e-13)

    out2 = layer.forward(x2, training=True)
    expected2, mean2, _, unbiased2 = reference_batchnorm(x2, layer.gamma, layer.beta, 1e-5)
    np.testing.assert_allclose(out2, expected2, rtol=1e-12, atol=1e-12)
    running_mean = 0.9 * running_mean + 0.1 * mean2
    running_var = 0.9 * running_var + 0.1 * unbiased2
    np.testing.assert_allclose(layer.running_mean, running_mean, rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, running_var, rtol=1e-13)

    # Eval mode: running statistics, not the batch's; and no update of them.
    x3 = rng.standard_normal((4, 3))
    out3 = layer.forward(x3, training=False)
    expected3 = (x3 - running_mean) / np.sqrt(running_var + 1e-5) * layer.gamma + layer.beta
    np.testing.assert_allclose(out3, expected3, rtol=1e-12)
    np.testing.assert_allclose(layer.running_mean, running_mean, rtol=1e-13)
    single = layer.forward(x3[:1], training=False)  # one row is fine in eval mode
    np.testing.assert_allclose(single, expected3[:1], rtol=1e-12)


def test_batchnorm_custom_momentum_and_eps():
    layer = BatchNorm1d(1, momentum=0.25, eps=1e-3, dtype=np.float64)
    x = np.array([[1.0], [3.0]])
    out = layer.forward(x)
    # mean 2, biased var 1, unbiased var 2.
    np.testing.assert_allclose(out[:, 0], [-1 / math.sqrt(1.001), 1 / math.sqrt(1.001)])
    np.testing.assert_allclose(layer.running_mean, [0.75 * 0 + 0.25 * 2])
    np.testing.assert_allclose(layer.running_var, [0.75 * 1 + 0.25 * 2])


def test_batchnorm_batch_of_two():
    layer = BatchNorm1d(2, dtype=np.float64)
    x = np.array([[1.0, -4.0], [3.0, 6.0]])
    out = layer.forward(x)
    # Two rows: x̂ = ±d/sqrt(d² + eps) with d the half-difference.
    np.testing.assert_allclose(out[:, 0], [-1 / math.sqrt(1 + 1e-5), 1 / math.sqrt(1 + 1e-5)])
    np.testing.assert_allclose(out[:, 1], [-5 / math.sqrt(25 + 1e-5), 5 / math.sqrt(25 + 1e-5)])
    np.testing.assert_allclose(layer.running_var, [0.9 + 0.1 * 2.0, 0.9 + 0.1 * 50.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_constant_feature_gives_beta(dtype):
    layer = BatchNorm1d(2, dtype=dtype)
    layer.beta[...] = [0.5, -2.0]
    layer.gamma[...] = [3.0, 1.0]
    x = np.array([[7.0, 1.0], [7.0, 2.0], [7.0, 4.0]], dtype=dtype)
    out = layer.forward(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[:, 0], np.full(3, 0.5, dtype=dtype))
    dx = layer.backward(np.ones_like(x))
    assert np.isfinite(dx).all() and np.isfinite(layer.dgamma).all()
    np.testing.assert_allclose(layer.running_var[0], 0.9)  # unbiased var 0


def test_batchnorm_single_row_in_training_raises():
    layer = BatchNorm1d(3)
    with pytest.raises(ValueError, match="at least 2 rows"):
        layer.forward(np.ones((1, 3), dtype=np.float32), training=True)


def test_batchnorm_starts_at_identity_parameters_and_keeps_float32():
    layer = BatchNorm1d(4)
    for name in ("gamma", "beta", "running_mean", "running_var"):
        assert getattr(layer, name).dtype == np.float32
    np.testing.assert_array_equal(layer.gamma, 1.0)
    np.testing.assert_array_equal(layer.beta, 0.0)
    np.testing.assert_array_equal(layer.running_var, 1.0)
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32
    assert layer.backward(out).dtype == np.float32
    assert layer.running_var.dtype == np.float32 and layer.dgamma.dtype == np.float32


def test_batchnorm_rejects_bad_settings():
    with pytest.raises(ValueError):
        BatchNorm1d(0)
    with pytest.raises(ValueError):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError):
        BatchNorm1d(3, eps=0.0)


# -- activations and dropout -------------------------------------------------------------------


def away_from_zero(rng: np.random.Generator, shape) -> np.ndarray:
    """Values with |x| ≥ 0.1, so finite differences never straddle a kink."""
    x = rng.uniform(0.1, 2.0, shape)
    return x * rng.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize(
    "layer",
    [ReLU(), LeakyReLU(0.01), LeakyReLU(0.2), Tanh(), GELU()],
    ids=["relu", "leaky0.01", "leaky0.2", "tanh", "gelu"],
)
def test_activation_gradients(layer, rng):
    check_layer_grads(layer, away_from_zero(rng, (4, 5)), rng)


def test_activation_values(rng):
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_array_equal(ReLU().forward(x), [[0, 0, 0, 0.5, 3.0]])
    np.testing.assert_allclose(LeakyReLU(0.1).forward(x), [[-0.2, -0.05, 0, 0.5, 3.0]])
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x))
    gelu = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x[0]]
    np.testing.assert_allclose(GELU().forward(x)[0], gelu, rtol=1e-13, atol=1e-15)
    relu = ReLU()
    relu.forward(x)
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), [[0, 0, 0, 1, 1]])


@pytest.mark.parametrize("layer_type", [ReLU, LeakyReLU, Tanh, GELU])
def test_activations_keep_float32(layer_type):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    layer = layer_type()
    out = layer.forward(x)
    assert out.dtype == np.float32
    assert layer.backward(np.ones_like(x)).dtype == np.float32


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 5e-7)])
def test_erf_matches_math_erf(dtype, tol):
    x = np.linspace(-7, 7, 20001).astype(dtype)
    got = erf(x)
    assert got.dtype == dtype
    expected = np.array([math.erf(float(v)) for v in x])
    assert np.abs(got - expected).max() <= tol
    assert erf(np.array([np.inf, -np.inf]))[0] == 1.0


def test_dropout_gradient_with_fixed_mask(rng):
    x = rng.standard_normal((6, 5))
    layer = Dropout(0.3, np.random.default_rng(7))
    weights = rng.standard_normal(x.shape)

    def forward() -> np.ndarray:
        layer.rng = np.random.default_rng(7)  # same mask on every call
        return layer.forward(x, training=True)

    def loss() -> float:
        return float(np.sum(forward() * weights))

    out = forward()
    dx = layer.backward(weights)
    assert rel_err(numeric_grad(loss, x), dx) <= TOL
    kept = out != 0
    # Inverted dropout: kept entries are scaled by 1/(1 − p), the rest are 0.
    np.testing.assert_allclose(out[kept], x[kept] / 0.7)
    np.testing.assert_array_equal(dx[~kept], 0.0)


def test_dropout_rate_eval_mode_and_seed():
    x = np.ones((200, 100), dtype=np.float32)
    layer = Dropout(0.25, np.random.default_rng(3))
    out = layer.forward(x, training=True)
    assert out.dtype == np.float32
    assert abs((out == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    again = Dropout(0.25, np.random.default_rng(3)).forward(x, training=True)
    np.testing.assert_array_equal(out, again)
    with pytest.raises(ValueError):
        Dropout(1.0, np.random.default_rng(0))


# -- losses ------------------------------------------------------------------------------------


def test_softmax_cross_entropy_value_and_gradient(rng):
    logits = rng.standard_normal((5, 4)) * 3
    target = np.array([0, 3, 1, 1, 2])
    loss_fn = SoftmaxCrossEntropy()
    value = loss_fn.forward(logits, target)
    expected = 0.0
    for row, label in zip(logits, target):
        expected += -math.log(math.exp(row[label]) / sum(math.exp(v) for v in row))
    assert value == pytest.approx(expected / 5, rel=1e-13)
    grad = loss_fn.backward()
    numeric = numeric_grad(lambda: SoftmaxCrossEntropy().forward(logits, target), logits)
    assert rel_err(numeric, grad) <= TOL
    np.testing.assert_allclose(loss_fn.per_sample(logits, target).mean(), value, rtol=1e-13)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0], [-1000.0, 1000.0]], dtype=np.float32)
    loss_fn = SoftmaxCrossEntropy()
    value = loss_fn.forward(logits, np.array([0, 0]))
    assert value == pytest.approx(1000.0)  # (0 + 2000) / 2
    assert np.isfinite(loss_fn.backward()).all()


def test_mse_value_and_gradient(rng):
    output = rng.standard_normal((6, 2))
    target = rng.standard_normal((6, 2))
    loss_fn = MSELoss()
    value = loss_fn.forward(output, target)
    expected = sum((o - t) ** 2 for o, t in zip(output.ravel(), target.ravel())) / 12
    assert value == pytest.approx(expected, rel=1e-13)
    grad = loss_fn.backward()
    numeric = numeric_grad(lambda: MSELoss().forward(output, target), output)
    assert rel_err(numeric, grad) <= TOL


def test_mse_accepts_1d_target_for_single_output():
    loss_fn = MSELoss()
    assert loss_fn.forward(np.array([[1.0], [2.0]]), np.array([0.0, 0.0])) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        loss_fn.forward(np.zeros((2, 2)), np.zeros(2))


@pytest.mark.parametrize("make", [lambda: BatchNorm1d(7, dtype=np.float64), lambda: ReLU()])
def test_in_place_mode_computes_the_same_as_the_copying_mode(make):
    """The MLP lets its layers overwrite their inputs; the numbers must not change."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((9, 7)) * 3 + 1
    dout = rng.standard_normal((9, 7))
    copying, in_place = make(), make()
    in_place.inplace = True
    expected_out = copying.forward(x, training=True)
    expected_dx = copying.backward(dout)
    x_given, dout_given = x.copy(), dout.copy()
    out = in_place.forward(x_given, training=True).copy()
    dx = in_place.backward(dout_given)
    np.testing.assert_allclose(out, expected_out, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-14, atol=1e-14)
    for name in in_place.param_names:
        np.testing.assert_array_equal(getattr(in_place, "d" + name), getattr(copying, "d" + name))
    # the copying mode leaves its arguments alone
    x_before, dout_before = x.copy(), dout.copy()
    copying.forward(x, training=True)
    copying.backward(dout)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
