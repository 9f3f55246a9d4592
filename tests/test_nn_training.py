"""Optimizers, schedules and the training loop of normcli.nn."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from normcli.errors import DataError, UsageError
from normcli.nn import (
    SGD,
    Adam,
    CosineLR,
    NetworkConfig,
    StepLR,
    TrainConfig,
    batch_bounds,
    evaluate,
    make_schedule,
    train_network,
)
from normcli.learn.compare import compare_settings
from normcli.learn.modelfile import model_to_bytes

# -- optimizers against hand-computed updates ---------------------------------------------------


def pair(values, grads, dtype=np.float64):
    return np.array(values, dtype=dtype), np.array(grads, dtype=dtype)


def test_sgd_plain_and_weight_decay():
    value, grad = pair([1.0, -2.0], [0.5, 0.25])
    SGD([(value, grad)], lr=0.1).step()
    np.testing.assert_allclose(value, [1.0 - 0.05, -2.0 - 0.025])
    value, grad = pair([1.0, -2.0], [0.5, 0.25])
    SGD([(value, grad)], lr=0.1, weight_decay=0.01).step()
    # g + λθ = [0.51, 0.23]
    np.testing.assert_allclose(value, [1.0 - 0.051, -2.0 - 0.023])
    np.testing.assert_allclose(grad, [0.5, 0.25])  # gradients are not modified


def test_sgd_momentum_like_torch():
    value, grad = pair([1.0], [0.5])
    opt = SGD([(value, grad)], lr=0.1, momentum=0.9)
    opt.step()  # b = g = 0.5
    assert value[0] == pytest.approx(1.0 - 0.1 * 0.5)
    grad[...] = [0.2]
    opt.step()  # b = 0.9·0.5 + 0.2 = 0.65
    assert value[0] == pytest.approx(0.95 - 0.1 * 0.65)
    grad[...] = [-1.0]
    opt.step()  # b = 0.9·0.65 − 1 = −0.415
    assert value[0] == pytest.approx(0.885 + 0.1 * 0.415)


def test_sgd_nesterov_with_weight_decay():
    value, grad = pair([2.0], [0.5])
    opt = SGD([(value, grad)], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    opt.step()
    g = 0.5 + 0.1 * 2.0  # 0.7; b = 0.7; step uses g + μb = 0.7 + 0.63
    expected = 2.0 - 0.1 * (g + 0.9 * g)
    assert value[0] == pytest.approx(expected)
    grad[...] = [0.3]
    opt.step()
    g2 = 0.3 + 0.1 * expected
    b2 = 0.9 * g + g2
    assert value[0] == pytest.approx(expected - 0.1 * (g2 + 0.9 * b2))


def test_sgd_rejects_bad_settings():
    value, grad = pair([1.0], [1.0])
    with pytest.raises(ValueError):
        SGD([(value, grad)], lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        SGD([(value, grad)], lr=-1.0)
    with pytest.raises(ValueError):
        SGD([(value, np.zeros(2))], lr=0.1)


def test_adam_bias_correction_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    value, grad = pair([1.0, -1.0], [0.0, 0.0])
    opt = Adam([(value, grad)], lr=lr, betas=(b1, b2), eps=eps)
    grads = [[0.1, -3.0], [0.2, 1.0], [-0.05, 0.5]]
    for t, g in enumerate(grads, 1):
        grad[...] = g
        opt.step()
        np.testing.assert_allclose(value, _adam_reference(grads[:t], lr, b1, b2, eps, 0.0))
    # With bias correction the first step moves each coordinate by ≈ lr, whatever |g| is
    # (without it the step would be lr·(1−β₁)/√(1−β₂) ≈ 3.16·lr).
    first = _adam_reference(grads[:1], lr, b1, b2, eps, 0.0)
    np.testing.assert_allclose(np.abs(first - [1.0, -1.0]), [lr, lr], rtol=1e-6)


def _adam_reference(grads, lr, b1, b2, eps, wd, start=(1.0, -1.0)):
    """Adam written out per coordinate with Python floats (PyTorch's formulation)."""
    theta = list(start)
    m = [0.0] * len(theta)
    v = [0.0] * len(theta)
    for t, g in enumerate(grads, 1):
        for i in range(len(theta)):
            gi = g[i] + wd * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            denom = math.sqrt(v[i]) / math.sqrt(1 - b2**t) + eps
            theta[i] -= lr / (1 - b1**t) * m[i] / denom
    return np.array(theta)


def test_adam_weight_decay_by_hand():
    value, grad = pair([1.0, -1.0], [0.0, 0.0])
    opt = Adam([(value, grad)], lr=0.1, weight_decay=0.5)
    grads = [[0.0, 0.0], [0.3, -0.2]]
    for g in grads:
        grad[...] = g
        opt.step()
    np.testing.assert_allclose(value, _adam_reference(grads, 0.1, 0.9, 0.999, 1e-8, 0.5))


def test_optimizers_update_float32_in_place():
    value = np.ones(5, dtype=np.float32)
    grad = np.full(5, 0.5, dtype=np.float32)
    for opt in (SGD([(value, grad)], 0.1, momentum=0.9, weight_decay=0.1), Adam([(value, grad)])):
        before = value.__array_interface__["data"][0]
        opt.step()
        assert value.dtype == np.float32 and value.__array_interface__["data"][0] == before


# -- schedules ---------------------------------------------------------------------------------


def test_step_schedule():
    schedule = StepLR(0.1, step_size=3, gamma=0.5)
    assert [schedule.lr_at(e) for e in range(7)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    )
    assert make_schedule("step", 1.0, epochs=9).lr_at(3) == pytest.approx(0.1)  # every 3 epochs


def test_cosine_schedule():
    schedule = CosineLR(0.2, total_epochs=4)
    expected = [0.2, 0.1 * (1 + math.cos(math.pi / 4)), 0.1, 0.1 * (1 + math.cos(3 * math.pi / 4))]
    assert [schedule.lr_at(e) for e in range(4)] == pytest.approx(expected)
    assert make_schedule("none", 0.3, 10).lr_at(9) == 0.3
    with pytest.raises(ValueError):
        make_schedule("exp", 0.1, 10)


# -- batches -----------------------------------------------------------------------------------


def test_batch_bounds_merge_a_last_single_row():
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(9, 4) == [(0, 4), (4, 9)]  # 1 left over: merged
    assert batch_bounds(5, 8) == [(0, 5)]
    assert batch_bounds(2, 8) == [(0, 2)]
    assert batch_bounds(8, 4) == [(0, 4), (4, 8)]


# -- data sets ---------------------------------------------------------------------------------


def blobs(rows: int, features: int = 6, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 4
    y = rng.integers(0, classes, rows)
    X = centers[y] + rng.standard_normal((rows, features))
    return X, y


def regression_data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (rows, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2] + 0.05 * rng.standard_normal(rows)
    return X, y


FAST = dict(hidden=(16, 16), epochs=8, batch_size=32, lr=0.05)
NETWORK_FIELDS = {f.name for f in fields(NetworkConfig)}


def make_config(**settings) -> TrainConfig:
    """A TrainConfig from flat keywords, the network's among them."""
    network = {k: settings.pop(k) for k in list(settings) if k in NETWORK_FIELDS}
    return TrainConfig(network=NetworkConfig(**network), **settings)


# -- training ----------------------------------------------------------------------------------


def test_classification_reaches_high_accuracy():
    X, y = blobs(900)
    config = make_config(**FAST)
    result = train_network(X[:600], y[:600], X[600:], y[600:], config)
    assert not result.diverged and result.epochs_run == 8
    assert result.history[-1]["val_accuracy"] >= 0.95
    assert result.num_classes == 3
    assert set(result.history[0]) == {
        "epoch", "lr", "train_loss", "val_loss", "val_accuracy", "grad_norm_first_layer",
    }  # fmt: skip
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.parametrize("placement", ["after", "before", "none"])
def test_regression_reaches_high_r2_with_rmse_in_original_units(placement):
    X, y = regression_data(800)
    center, scale = float(y.mean()), float(y.std())
    y_scaled = (y - center) / scale
    config = make_config(
        task="regression", hidden=(32, 32), epochs=30, batch_size=32, lr=0.02,
        bn_placement=placement, y_center=center, y_scale=scale,
    )  # fmt: skip
    result = train_network(X[:600], y_scaled[:600], X[600:], y_scaled[600:], config)
    final = result.history[-1]
    assert final["val_r2"] >= 0.9, final
    # rmse in original units, from the model's predictions undone by hand.
    predictions = result.model.predict(X[600:]).astype(np.float64) * scale + center
    rmse = math.sqrt(np.mean((predictions - y[600:]) ** 2))
    assert final["val_rmse"] == pytest.approx(rmse, rel=1e-5)
    ss_res = np.sum((predictions - y[600:]) ** 2)
    ss_tot = np.sum((y[600:] - y[600:].mean()) ** 2)
    assert final["val_r2"] == pytest.approx(1 - ss_res / ss_tot, abs=1e-5)
    assert final["val_loss"] == pytest.approx((rmse / scale) ** 2, rel=1e-4)


def test_same_seed_bit_identical_history_and_model_bytes():
    X, y = blobs(300)
    config = make_config(**{**FAST, "epochs": 3, "dropout": 0.2, "optimizer": "adam", "lr": 0.01})
    first = train_network(X[:200], y[:200], X[200:], y[200:], config)
    second = train_network(X[:200], y[:200], X[200:], y[200:], config)
    assert first.history == second.history
    assert model_to_bytes(first.model, {"a": 1}) == model_to_bytes(second.model, {"a": 1})
    other = train_network(X[:200], y[:200], X[200:], y[200:], make_config(**{**FAST, "seed": 1}))
    assert other.history != first.history


def test_training_stays_float32():
    X, y = blobs(200)
    result = train_network(X[:150], y[:150], X[150:], y[150:], make_config(**FAST, dropout=0.1))
    model = result.model
    for value, grad in model.parameters():
        assert value.dtype == np.float32 and grad.dtype == np.float32
    for bn in model.batchnorms:
        assert bn.running_var.dtype == np.float32
    assert model.output(X).dtype == np.float32
    for row in result.history:
        assert all(isinstance(v, (int, float)) for v in row.values())


def test_float64_training():
    X, y = blobs(200)
    result = train_network(X, y, None, None, make_config(**FAST, dtype="float64"))
    assert all(value.dtype == np.float64 for value, _ in result.model.parameters())
    assert result.history[-1]["val_loss"] is None
    assert result.best_epoch is None


@pytest.mark.parametrize("placement", ["after", "before"])
def test_last_batch_of_one_row_does_not_crash(placement):
    X, y = blobs(2 * 16 + 1)
    config = make_config(hidden=(8,), epochs=2, batch_size=16, bn_placement=placement)
    result = train_network(X, y, X, y, config)
    assert result.epochs_run == 2 and not result.diverged


def test_divergence_is_detected_and_reported_without_nan():
    X, y = blobs(400)
    X = X * 1000.0  # raw, badly scaled inputs
    config = make_config(hidden=(16, 16), epochs=5, batch_size=32, lr=1e6, bn_placement="none")
    seen = []
    result = train_network(X[:300], y[:300], X[300:], y[300:], config, on_epoch=seen.append)
    assert result.diverged
    assert "epoch" in result.divergence_message and "batch" in result.divergence_message
    assert result.epochs_run < 5 and len(seen) == result.epochs_run
    for row in result.history:
        assert all(math.isfinite(v) for v in row.values() if v is not None)
    values, _ = result.model.flat_parameters()
    assert np.isfinite(values).all()  # weights of the last completed epoch (or the initial ones)
    assert result.model_epoch == result.epochs_run


def test_early_stopping_restores_best_weights():
    X, y = blobs(300, seed=3)
    config = make_config(hidden=(32,), epochs=40, batch_size=16, lr=0.2, patience=2,
                         bn_placement="none")  # fmt: skip
    result = train_network(X[:100], y[:100], X[100:], y[100:], config)
    assert result.best_epoch is not None
    assert result.model_epoch == result.best_epoch
    best_loss = result.history[result.best_epoch - 1]["val_loss"]
    assert best_loss == min(row["val_loss"] for row in result.history)
    if result.stopped_early:
        assert result.epochs_run == result.best_epoch + 2
    metrics = evaluate(result.model, X[100:].astype(np.float32), y[100:])
    assert metrics["loss"] == pytest.approx(best_loss, rel=1e-12)


def test_epochs_to_target_and_callback():
    X, y = blobs(400)
    rows = []
    config = make_config(**{**FAST, "target_loss": 0.2})
    result = train_network(X[:300], y[:300], X[300:], y[300:], config, on_epoch=rows.append)
    assert rows == result.history
    first = next(r["epoch"] for r in result.history if r["val_loss"] <= 0.2)
    assert result.epochs_to_target == first


def test_schedules_in_training_history():
    X, y = blobs(100)
    config = make_config(**{**FAST, "epochs": 4, "schedule": "cosine", "lr": 0.1})
    result = train_network(X, y, X, y, config)
    assert [row["lr"] for row in result.history] == pytest.approx(
        [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    )
    config = make_config(**{**FAST, "epochs": 4, "schedule": "step", "lr_step_size": 2})
    lrs = [row["lr"] for row in train_network(X, y, X, y, config).history]
    assert lrs == pytest.approx([0.05, 0.05, 0.005, 0.005])


def test_gradient_norm_is_mean_over_batches_of_first_layer_norm():
    X, y = blobs(64)
    config = make_config(hidden=(8,), epochs=1, batch_size=64, lr=0.1)
    result = train_network(X, y, X, y, config)
    # One batch: the norm is that of the first step's gradient, recomputed here from scratch.
    from normcli.nn import MLP, SoftmaxCrossEntropy

    model = MLP(config.model_config(6, 3))
    loss_fn = SoftmaxCrossEntropy()
    order = np.random.default_rng([0, 2]).permutation(64)
    loss_fn.forward(model.forward(X[order].astype(np.float32)), y[order])
    model.backward(loss_fn.backward())
    expected = float(np.linalg.norm(model.first_linear.dW.astype(np.float64)))
    assert result.history[0]["grad_norm_first_layer"] == pytest.approx(expected, rel=1e-5)


def test_bad_data_and_settings():
    X, y = blobs(50)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        train_network(bad, y, None, None, make_config(**FAST))
    with pytest.raises(DataError, match="at least 2 rows"):
        train_network(X[:1], y[:1], None, None, make_config(**FAST))
    with pytest.raises(DataError, match="class"):
        train_network(X, y + 0.5, None, None, make_config(**FAST))
    with pytest.raises(DataError, match="negative"):
        train_network(X, y - 1, None, None, make_config(**FAST))
    with pytest.raises(DataError, match="empty"):
        train_network(X, y, X[:0], y[:0], make_config(**FAST))
    with pytest.raises(DataError, match="columns"):
        train_network(X, y, X[:, :2], y, make_config(**FAST))
    with pytest.raises(UsageError, match="batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(UsageError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(UsageError, match="nesterov"):
        TrainConfig(nesterov=True, momentum=0.0)
    with pytest.raises(UsageError, match="validation"):
        train_network(X, y, None, None, make_config(**FAST, patience=3))


# -- the normalization study --------------------------------------------------------------------


def test_compare_normalization_rows():
    X, y = blobs(300)
    rng = np.random.default_rng(1)
    X_raw = X * rng.uniform(1, 500, X.shape[1]) + rng.uniform(-1000, 1000, X.shape[1])
    mean, std = X_raw[:200].mean(axis=0), X_raw[:200].std(axis=0)
    X_norm = (X_raw - mean) / std
    config = make_config(hidden=(16,), epochs=3, batch_size=32, target_loss=0.5)
    seen = []
    rows = compare_settings(
        X_raw[:200], X_norm[:200], y[:200], X_raw[200:], X_norm[200:], y[200:], config,
        learning_rates=[0.01, 0.1], on_run=seen.append,
    )  # fmt: skip
    assert [(r.setting, r.lr) for r in rows] == [
        ("raw", 0.01), ("normalized", 0.01), ("normalized+bn", 0.01),
        ("raw", 0.1), ("normalized", 0.1), ("normalized+bn", 0.1),
    ]  # fmt: skip
    assert seen == rows
    assert [r.batchnorm for r in rows[:3]] == ["none", "none", "after"]
    for row in rows:
        data = row.as_dict()
        assert "result" not in data and data["setting"] == row.setting
        if not row.diverged:
            assert row.epochs_run == 3 and row.val_accuracy is not None
            assert row.final_val_loss == row.result.history[-1]["val_loss"]
    normalized = rows[1]
    assert normalized.val_accuracy >= 0.9
    # Raw inputs of scale ~1000 give first-layer gradients orders of magnitude larger.
    raw = rows[0]
    if raw.grad_norm_first_layer is not None:
        assert raw.grad_norm_first_layer > 10 * normalized.grad_norm_first_layer
