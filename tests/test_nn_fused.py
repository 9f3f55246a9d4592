"""The numba kernels (normcli.nn.fused) against the numpy layers, finite differences and torch.

numba is a test dependency (normcli[test] includes it), so nothing here skips. References are
independent of the fused code: the numpy layers (a separate implementation of the same
equations), central finite differences, and PyTorch.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import numeric_grad, step_with_torch

from normcli.errors import UsageError
from normcli.nn import (
    MLP,
    SGD,
    Adam,
    BatchNorm1d,
    LeakyReLU,
    Linear,
    MLPConfig,
    NetworkConfig,
    ReLU,
    SettingError,
    SoftmaxCrossEntropy,
    TrainConfig,
    fused,
    train_network,
    training,
)
from normcli.nn.fused import FusedAdam, FusedHidden, FusedSGD, FusedSoftmaxCrossEntropy

ACTIVATIONS = {"relu": ReLU, "leaky_relu": lambda: LeakyReLU(0.25)}  # slope·h stays dyadic


def numpy_block(placement: str, activation: str, linear: Linear, batchnorm: BatchNorm1d | None) -> list:
    act = ACTIVATIONS[activation]()
    if placement == "after":
        return [linear, act, batchnorm]
    if placement == "before":
        return [linear, batchnorm, act]
    return [linear, act]


def twin_blocks(placement: str, activation: str, dtype, rng, width_in: int = 5, width: int = 6):
    """Two identical (Linear, BN) pairs: one to run layer by layer, one as a FusedHidden."""
    gamma, beta = rng.uniform(0.5, 1.5, width).round(2), rng.uniform(-1, 1, width).round(2)
    made = []
    for _ in range(2):
        linear = Linear(width_in, width, np.random.default_rng(7), dtype)
        bn = None if placement == "none" else BatchNorm1d(width, momentum=0.3, dtype=dtype)
        if bn is not None:
            bn.gamma[...], bn.beta[...] = gamma, beta
        made.append((linear, bn))
    return made


def run_numpy(layers: list, x: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = x
    for layer in layers:
        out = layer.forward(out, training=True)
    grad = dout.copy()
    for layer in reversed(layers):
        grad = layer.backward(grad)
    return out, grad


def run_fused(block: FusedHidden, x: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = block.forward(x, training=True).copy()
    return out, block.backward(dout.copy())


def gradients(linear: Linear, bn: BatchNorm1d | None) -> dict[str, np.ndarray]:
    found = {"W": linear.dW, "b": linear.db}
    if bn is not None:
        found |= {"gamma": bn.dgamma, "beta": bn.dbeta, "running_mean": bn.running_mean,
                  "running_var": bn.running_var}  # fmt: skip
    return found


# -- a block, element by element -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("placement", ["after", "before", "none"])
def test_fused_block_is_bit_identical_to_the_layers_when_sums_are_exact(placement, activation, dtype):
    """Integer data and weights make every sum over the batch exact, whatever its order: then
    the fused kernels must reproduce the numpy layers bit for bit (same element-wise formulas,
    same order of operations) — all but the Linear's bias gradient, a sum of inexact terms."""
    rng = np.random.default_rng(3)
    (lin_a, bn_a), (lin_b, bn_b) = twin_blocks(placement, activation, dtype, rng)
    for linear in (lin_a, lin_b):
        linear.W[...] = np.random.default_rng(1).integers(-3, 4, linear.W.shape)
        linear.b[...] = np.random.default_rng(2).integers(-2, 3, linear.b.shape) / 4
    layers = numpy_block(placement, activation, lin_a, bn_a)
    block = FusedHidden(lin_b, ACTIVATIONS[activation](), bn_b, placement)
    for step in range(3):
        x = rng.integers(-4, 5, (16, 5)).astype(dtype)  # 16 rows: 1/N is exact
        dout = (rng.integers(-8, 9, (16, 6)) / 8).astype(dtype)
        expected_out, expected_dx = run_numpy(layers, x, dout)
        out, dx = run_fused(block, x, dout)
        np.testing.assert_array_equal(out, expected_out)
        np.testing.assert_array_equal(dx, expected_dx)
        ours, theirs = gradients(lin_b, bn_b), gradients(lin_a, bn_a)
        for name in ours:
            if name == "b":  # Σ_rows of ∂L/∂h, terms of size ~1 that nearly cancel
                tol = 16 * 4 * np.finfo(dtype).eps
                np.testing.assert_allclose(ours[name], theirs[name], rtol=tol, atol=tol)
            else:
                np.testing.assert_array_equal(ours[name], theirs[name], err_msg=f"{name}, step {step}")


@pytest.mark.parametrize("placement", ["after", "before", "none"])
def test_fused_block_matches_the_layers_on_real_numbers(placement):
    rng = np.random.default_rng(5)
    (lin_a, bn_a), (lin_b, bn_b) = twin_blocks(placement, "relu", "float64", rng, width_in=7, width=9)
    layers = numpy_block(placement, "relu", lin_a, bn_a)
    block = FusedHidden(lin_b, ReLU(), bn_b, placement)
    for rows in (2, 3, 63, 64, 65, 200):  # around the kernels' 64-row blocks
        x = rng.standard_normal((rows, 7)) * 3 + 2
        dout = rng.standard_normal((rows, 9))
        expected_out, expected_dx = run_numpy(layers, x, dout)
        out, dx = run_fused(block, x, dout)
        np.testing.assert_allclose(out, expected_out, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-13)
        for name, value in gradients(lin_b, bn_b).items():
            np.testing.assert_allclose(value, gradients(lin_a, bn_a)[name], rtol=1e-12, atol=1e-13, err_msg=name)


def test_fused_block_keeps_nan_so_divergence_is_seen_and_rejects_one_row():
    rng = np.random.default_rng(0)
    block = FusedHidden(Linear(3, 4, rng, np.float64), ReLU(), BatchNorm1d(4, dtype=np.float64), "after")
    x = rng.standard_normal((5, 3))
    x[2, 1] = np.nan
    assert np.isnan(block.forward(x)).any()
    linear = Linear(3, 4, rng, np.float64)
    linear.W[...] = np.abs(linear.W)
    none = FusedHidden(linear, ReLU(), None, "none")
    x = np.full((2, 3), -np.inf)
    x[0, 0] = np.nan
    with np.errstate(invalid="ignore"):
        out = none.forward(x)
    assert np.isnan(out[0]).all()  # NaN stays NaN
    np.testing.assert_array_equal(out[1], 0.0)  # ReLU(−∞) = 0, as np.maximum
    with pytest.raises(ValueError, match="at least 2 rows"):
        block.forward(rng.standard_normal((1, 3)))


def test_fused_sums_stay_accurate_on_a_large_float32_batch():
    """μ and σ² of 100,000 float32 rows with a large mean: blocks of 64 rows, float64 between."""
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((100_000, 1)) * 0.5).astype(np.float32)
    linear = Linear(1, 1, rng, np.float32)
    linear.W[...] = 1.0
    linear.b[...] = 1000.0
    bn = BatchNorm1d(1, momentum=1.0, dtype=np.float32)
    block = FusedHidden(linear, ReLU(), bn, "after")
    block.forward(x)
    h = x.astype(np.float64) + 1000.0
    assert abs(bn.running_mean[0] - h.mean()) <= 1e-4  # float32 resolution at 1000 is 6e-5
    expected_var = h.var() * len(h) / (len(h) - 1)
    assert bn.running_var[0] == pytest.approx(expected_var, rel=1e-3)


# -- whole networks ------------------------------------------------------------------------------



@pytest.mark.parametrize("placement", ["after", "before", "none"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_fused_network_gradient_by_finite_differences(placement, activation):
    model = MLP(MLPConfig(4, 3, hidden=(6, 5), bn_placement=placement, activation=activation,
                          leaky_relu_slope=0.2, dtype="float64", seed=2))  # fmt: skip
    model.use_kernels("numba")
    assert any(isinstance(step, FusedHidden) for step in model.training_steps)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((11, 4))
    y = rng.integers(0, 3, 11)
    loss_fn = FusedSoftmaxCrossEntropy()

    def loss() -> float:
        return loss_fn.forward(model.forward(x, training=True), y)

    loss()
    model.backward(loss_fn.backward())
    values, grads = model.flat_parameters()
    analytic = grads.copy()
    numeric = numeric_grad(loss, values)
    error = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert error < 1e-7


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("placement", ["after", "before", "none"])
@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_fused_network_training_steps_match_the_numpy_path(dtype, tol, placement, dropout):
    config = MLPConfig(6, 4, hidden=(16, 12), bn_placement=placement, dtype=dtype, dropout=dropout,
                       bn_momentum=None, seed=3)  # fmt: skip
    numpy_model, numba_model = MLP(config), MLP(config)
    numba_model.use_kernels("numba")
    numpy_loss, numba_loss = SoftmaxCrossEntropy(), FusedSoftmaxCrossEntropy()
    numpy_opt = Adam([numpy_model.flat_parameters()], lr=0.01, weight_decay=0.01)
    numba_opt = FusedAdam([numba_model.flat_parameters()], lr=0.01, weight_decay=0.01)
    rng = np.random.default_rng(6)
    for _ in range(4):
        x = (rng.standard_normal((40, 6)) * 2 + 1).astype(dtype)
        y = rng.integers(0, 4, 40)
        expected = numpy_loss.forward(numpy_model.forward(x), y)
        got = numba_loss.forward(numba_model.forward(x), y)
        assert got == pytest.approx(expected, rel=tol, abs=tol)
        numpy_model.backward(numpy_loss.backward())
        numba_model.backward(numba_loss.backward())
        np.testing.assert_allclose(numba_model.flat_parameters()[1], numpy_model.flat_parameters()[1],
                                   rtol=20 * tol, atol=tol)  # fmt: skip
        numpy_opt.step()
        numba_opt.step()
    np.testing.assert_allclose(numba_model.flat_parameters()[0], numpy_model.flat_parameters()[0],
                               rtol=20 * tol, atol=tol)  # fmt: skip
    for ours, theirs in zip(numba_model.batchnorms, numpy_model.batchnorms, strict=True):
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean, rtol=20 * tol, atol=tol)
        np.testing.assert_allclose(ours.running_var, theirs.running_var, rtol=20 * tol, atol=tol)
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 4
    # eval mode runs the numpy layers in both
    x = rng.standard_normal((9, 6)).astype(dtype)
    np.testing.assert_allclose(numba_model.output(x), numpy_model.output(x), rtol=50 * tol, atol=tol)


def test_unfusable_blocks_run_their_layers():
    model = MLP(MLPConfig(3, 2, hidden=(4, 4), activation="tanh"))
    model.use_kernels("numba")
    assert model.training_steps == model.layers
    mixed = MLP(MLPConfig(3, 2, hidden=(4,), dropout=0.5))
    mixed.use_kernels("numba")
    assert [type(step).__name__ for step in mixed.training_steps] == ["FusedHidden", "Dropout", "Linear"]
    with pytest.raises(SettingError):
        mixed.use_kernels("cuda")
    mixed.use_kernels("numpy")
    assert mixed.training_steps == mixed.layers


# -- loss and optimizers -------------------------------------------------------------------------


def test_fused_softmax_cross_entropy_matches_numpy_and_stays_finite():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((70, 5)) * 4
    target = rng.integers(0, 5, 70)
    reference = SoftmaxCrossEntropy()
    expected = reference.forward(logits, target)
    ours = FusedSoftmaxCrossEntropy()
    assert ours.forward(logits, target) == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(ours.backward(), reference.backward(), rtol=1e-13, atol=1e-17)
    huge = np.array([[1e4, -1e4, 0.0], [-5e3, 5e3, 5e3]], dtype=np.float32)
    assert ours.forward(huge, np.array([0, 2])) == pytest.approx(math.log(2) / 2, rel=1e-6)
    assert np.isfinite(ours.backward()).all()
    assert math.isnan(ours.forward(np.array([[0.0, np.nan], [1.0, 2.0]]), np.array([0, 1])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda cls, p: cls(p, lr=0.3),
        lambda cls, p: cls(p, lr=0.1, momentum=0.9),
        lambda cls, p: cls(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    ],
)
def test_fused_sgd_is_bit_identical_to_sgd(make, dtype):
    check_same_updates(make, SGD, FusedSGD, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda cls, p: cls(p, lr=0.01),
        lambda cls, p: cls(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    ],
)
def test_fused_adam_is_bit_identical_to_adam(make, dtype):
    check_same_updates(make, Adam, FusedAdam, dtype)


@pytest.mark.parametrize("fused_cls", [FusedSGD, FusedAdam])
def test_fused_optimizers_tell_finite_gradients_from_the_sums_they_compute(fused_cls):
    values = np.zeros(100, np.float32)
    grads = np.full(100, 1e30, np.float32)  # finite, but their squares overflow float32
    optimizer = fused_cls([(values, grads)], lr=1e-40)
    optimizer.step()
    assert optimizer.gradients_finite()
    for bad in (np.nan, np.inf):
        grads[77] = bad
        optimizer.step()
        assert not optimizer.gradients_finite()
        assert not SGD([(values, grads)], lr=0.1).gradients_finite()  # the numpy path agrees
    grads[77] = 1.0
    optimizer.step()
    assert optimizer.gradients_finite()


def check_same_updates(make, reference_cls, fused_cls, dtype) -> None:
    rng = np.random.default_rng(11)
    start = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(7).astype(dtype)]
    theirs = [(v.copy(), np.zeros_like(v)) for v in start]
    ours = [(v.copy(), np.zeros_like(v)) for v in start]
    reference, fast = make(reference_cls, theirs), make(fused_cls, ours)
    for _ in range(6):
        for (_, g_theirs), (_, g_ours) in zip(theirs, ours, strict=True):
            g_theirs[...] = g_ours[...] = rng.standard_normal(g_ours.shape) * 3
        reference.step()
        fast.step()
        for (v_theirs, _), (v_ours, _) in zip(theirs, ours, strict=True):
            np.testing.assert_array_equal(v_ours, v_theirs)


# -- against PyTorch -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("placement", ["after", "before"])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_fused_network_matches_torch(dtype, tol, placement, momentum):
    import torch
    from test_nn_model import assert_same_state, torch_copy

    model = MLP(MLPConfig(5, 4, hidden=(16, 12), bn_placement=placement, dtype=dtype,
                          bn_momentum=momentum, seed=1))  # fmt: skip
    twin = torch_copy(model, torch)
    model.use_kernels("numba")
    ours = FusedSGD([model.flat_parameters()], lr=0.05, momentum=0.9, weight_decay=0.01)
    theirs = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    loss_fn = FusedSoftmaxCrossEntropy()
    rng = np.random.default_rng(9)
    for rows in (24, 7, 64, 65):
        x = rng.standard_normal((rows, 5)).astype(dtype)
        y = rng.integers(0, 4, rows)
        step_with_torch(model, loss_fn, ours, twin, theirs, x, y, tol)
    assert_same_state(model, twin, tol)
    twin.eval()
    x = rng.standard_normal((10, 5)).astype(dtype)
    np.testing.assert_allclose(model.output(x), twin(torch.tensor(x)).detach().numpy(), rtol=10 * tol, atol=10 * tol)


# -- train_network's choice ----------------------------------------------------------------------


def blobs(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 6)) * 3
    y = rng.integers(0, 3, rows)
    return centers[y] + rng.standard_normal((rows, 6)), y


def config(**settings) -> TrainConfig:
    network = NetworkConfig(hidden=(16, 16), **settings.pop("network", {}))
    return TrainConfig(network=network, **({"epochs": 3, "batch_size": 32, "lr": 0.05} | settings))


def test_train_network_numba_and_numpy_agree_within_rounding():
    X, y = blobs(300)
    runs = {}
    for kernels in ("numpy", "numba"):
        settings = config(kernels=kernels, network={"dtype": "float64"}, optimizer="adam", lr=0.01)
        runs[kernels] = train_network(X[:200], y[:200], X[200:], y[200:], settings)
    assert runs["numpy"].kernels == "numpy" and runs["numba"].kernels == "numba"
    for expected, got in zip(runs["numpy"].history, runs["numba"].history, strict=True):
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert runs["numba"].warm_up_seconds > 0 and runs["numpy"].warm_up_seconds < 0.5


def test_numba_training_is_reproducible_bit_for_bit():
    X, y = blobs(300)
    settings = config(kernels="numba", network={"dropout": 0.2})
    first = train_network(X, y, X, y, settings)
    second = train_network(X, y, X, y, settings)
    assert first.history == second.history
    np.testing.assert_array_equal(first.model.flat_parameters()[0], second.model.flat_parameters()[0])


def test_numba_divergence_is_detected():
    X, y = blobs(400)
    settings = config(kernels="numba", lr=1e6, network={"bn_placement": "none"})
    result = train_network(X[:300] * 1000.0, y[:300], X[300:] * 1000.0, y[300:], settings)
    assert result.diverged and "batch" in result.divergence_message
    assert np.isfinite(result.model.flat_parameters()[0]).all()


def test_numba_handles_a_last_batch_merged_from_one_row():
    X, y = blobs(2 * 16 + 1)
    result = train_network(X, y, X, y, config(kernels="numba", batch_size=16))
    assert result.epochs_run == 3 and not result.diverged


def test_auto_uses_numba_only_when_it_expects_to_save_seconds(monkeypatch):
    X, y = blobs(100)
    assert train_network(X, y, None, None, config()).kernels == "numpy"  # far below the threshold
    # 3 epochs of 1e6 rows, batch 32, two blocks of 16: 3·(31,250·2·50 µs + 1e6·32·3 ns) = 9.7 s
    big = config()
    assert training.numba_saving_estimate(big, 10**6) == pytest.approx(3 * (31_250 * 2 * 50e-6 + 32e6 * 3e-9))
    assert training.choose_kernels(big, 10**6) == "numba"
    assert training.choose_kernels(big, 2_000) == "numpy"  # 0.02 s
    assert training.numba_saving_estimate(config(network={"activation": "tanh"}), 10**7) == 0.0
    assert training.choose_kernels(config(network={"activation": "gelu"}), 10**7) == "numpy"
    assert training.choose_kernels(config(kernels="numpy"), 10**9) == "numpy"
    monkeypatch.setattr(training, "AUTO_NUMBA_MIN_SAVING", 0.0)
    assert train_network(X, y, None, None, config()).kernels == "numba"


def test_without_numba_auto_falls_back_and_numba_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba → ImportError
    monkeypatch.delitem(sys.modules, "normcli.nn.fused")
    monkeypatch.setattr(training, "AUTO_NUMBA_MIN_SAVING", 0.0)
    assert training.choose_kernels(config(), 100) == "numpy"
    with pytest.raises(UsageError, match="numba") as caught:
        training.choose_kernels(config(kernels="numba"), 100)
    assert "normcli[fast]" in caught.value.hint
    with pytest.raises(SettingError, match="kernels"):
        config(kernels="gpu")


def test_kernels_compile_in_memory_when_numba_has_nowhere_to_cache():
    namespace: dict = {}
    exec("def double(a):\n    for i in range(a.shape[0]):\n        a[i] *= 2\n", namespace)  # no source file
    kernel = fused._jit(namespace["double"])
    values = np.arange(4.0)
    kernel(values)
    np.testing.assert_array_equal(values, [0.0, 2.0, 4.0, 6.0])


def test_small_training_runs_never_import_numba(tmp_path):
    """--help, fit, transform and predict never load numba; nor does a small train ('auto')."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from normcli.nn import TrainConfig, NetworkConfig, train_network
        X = np.random.default_rng(0).standard_normal((50, 3)); y = (X[:, 0] > 0).astype(int)
        result = train_network(X, y, None, None, TrainConfig(epochs=2, network=NetworkConfig(hidden=(8,))))
        assert result.kernels == "numpy", result.kernels
        import normcli.learn.predict, normcli.learn.train, normcli.scaling.fit
        assert "numba" not in sys.modules, "numba was imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_train_reports_and_records_the_kernels_that_ran(tmp_path, monkeypatch):
    """``train --json``'s document says which kernels ran; so does the model file."""
    from normcli.learn.dataset import DataOptions
    from normcli.learn.modelfile import load_model
    from normcli.learn.train import train

    X, y = blobs(120)
    lines = ["a,b,c,d,e,f,label"] + [",".join(f"{v:.6f}" for v in row) + f",k{c}" for row, c in zip(X, y)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    for kernels, threshold in (("numpy", training.AUTO_NUMBA_MIN_SAVING), ("numba", 0.0)):
        monkeypatch.setattr(training, "AUTO_NUMBA_MIN_SAVING", threshold)
        model_path = tmp_path / f"{kernels}.npz"
        report = train([str(tmp_path / "t.csv")], DataOptions(target="label"), config(epochs=2),
                       model_path=str(model_path))  # fmt: skip
        assert report.metrics["kernels"] == kernels
        assert load_model(model_path)[1]["training"]["kernels"] == kernels
