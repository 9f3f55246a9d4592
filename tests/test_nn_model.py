"""The MLP: architecture, whole-network gradients, dtypes, save/load; optionally vs PyTorch."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
from conftest import numeric_grad, rel_err, step_with_torch

from normcli.errors import DataError
from normcli.learn.modelfile import (
    load_model,
    model_from_bytes,
    model_to_bytes,
    save_model,
)
from normcli.nn import (
    GELU,
    MLP,
    SGD,
    Adam,
    BatchNorm1d,
    Dropout,
    LeakyReLU,
    Linear,
    MLPConfig,
    MSELoss,
    ReLU,
    SoftmaxCrossEntropy,
    Tanh,
)


def layer_types(model: MLP) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


# -- architecture ------------------------------------------------------------------------------


def test_bn_placement_after_before_none():
    after = MLP(MLPConfig(4, 3, hidden=(8, 6), bn_placement="after"))
    assert layer_types(after) == [
        "Linear", "ReLU", "BatchNorm1d", "Linear", "ReLU", "BatchNorm1d", "Linear",
    ]  # fmt: skip
    before = MLP(MLPConfig(4, 3, hidden=(8, 6), bn_placement="before", activation="tanh"))
    assert layer_types(before) == [
        "Linear", "BatchNorm1d", "Tanh", "Linear", "BatchNorm1d", "Tanh", "Linear",
    ]  # fmt: skip
    plain = MLP(MLPConfig(4, 3, hidden=(8,), bn_placement="none", dropout=0.5))
    assert layer_types(plain) == ["Linear", "ReLU", "Dropout", "Linear"]
    shapes = [(layer.W.shape, layer.b.shape) for layer in after.linears]
    assert shapes == [((8, 4), (8,)), ((6, 8), (6,)), ((3, 6), (3,))]
    assert after.num_parameters == (8 * 4 + 8) + (6 * 8 + 6) + (3 * 6 + 3) + 2 * (8 + 6)


def test_same_seed_same_weights_other_seed_different():
    a = MLP(MLPConfig(5, 2, hidden=(7,), seed=3))
    b = MLP(MLPConfig(5, 2, hidden=(7,), seed=3))
    c = MLP(MLPConfig(5, 2, hidden=(7,), seed=4))
    np.testing.assert_array_equal(a.flat_parameters()[0], b.flat_parameters()[0])
    assert not np.array_equal(a.first_linear.W, c.first_linear.W)


def test_config_validation():
    with pytest.raises(ValueError, match="activation"):
        MLPConfig(3, 2, activation="sigmoid")
    with pytest.raises(ValueError, match="bn_placement"):
        MLPConfig(3, 2, bn_placement="middle")
    with pytest.raises(ValueError, match="dtype"):
        MLPConfig(3, 2, dtype="float16")
    assert MLPConfig.from_dict(MLPConfig(3, 2, hidden=[4]).to_dict()) == MLPConfig(3, 2, hidden=(4,))


def test_parameters_are_views_of_the_flat_buffer():
    model = MLP(MLPConfig(3, 2, hidden=(4,)))
    values, grads = model.flat_parameters()
    values[...] = 0.0
    assert np.all(model.first_linear.W == 0) and np.all(model.batchnorms[0].gamma == 0)
    model.forward(np.ones((3, 3)), training=True)
    model.backward(np.ones((3, 2), dtype=np.float32))
    assert np.shares_memory(model.linears[-1].db, grads)
    np.testing.assert_array_equal(model.linears[-1].db, [3.0, 3.0])


# -- whole-network gradients -------------------------------------------------------------------


@pytest.mark.parametrize(
    "placement,activation,dropout",
    [
        ("after", "relu", 0.0),
        ("before", "relu", 0.0),
        ("none", "relu", 0.0),
        ("after", "tanh", 0.0),
        ("before", "gelu", 0.0),
        ("after", "leaky_relu", 0.3),
    ],
)
def test_whole_network_gradient_classification(placement, activation, dropout):
    config = MLPConfig(
        3, 3, hidden=(5, 4), activation=activation, bn_placement=placement,
        dropout=dropout, dtype="float64", seed=11,
    )  # fmt: skip
    model = MLP(config)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 3))
    y = np.array([0, 1, 2, 2, 1, 0, 1])
    for bn in model.batchnorms:  # non-trivial γ, β
        bn.gamma[...] = rng.uniform(0.5, 1.5, bn.gamma.shape)
        bn.beta[...] = rng.standard_normal(bn.beta.shape)
    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]

    def loss() -> float:
        for layer in dropouts:  # same masks in every evaluation
            layer.rng = np.random.default_rng(99)
        return SoftmaxCrossEntropy().forward(model.forward(x, training=True), y)

    values, grads = model.flat_parameters()
    loss_fn = SoftmaxCrossEntropy()
    for layer in dropouts:
        layer.rng = np.random.default_rng(99)
    loss_fn.forward(model.forward(x, training=True), y)
    model.backward(loss_fn.backward())
    analytic = grads.copy()
    assert rel_err(numeric_grad(loss, values), analytic) <= 1e-7


def test_whole_network_gradient_regression():
    model = MLP(MLPConfig(4, 2, hidden=(6,), dtype="float64", task="regression", seed=2))
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    values, grads = model.flat_parameters()
    loss_fn = MSELoss()
    loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    analytic = grads.copy()
    numeric = numeric_grad(lambda: MSELoss().forward(model.forward(x), y), values)
    assert rel_err(numeric, analytic) <= 1e-7


# -- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "leaky_relu"])
def test_float32_model_never_upcasts(activation):
    model = MLP(MLPConfig(6, 3, hidden=(8, 8), activation=activation, dropout=0.1))
    x = np.random.default_rng(0).standard_normal((10, 6))  # float64 input is cast once
    h = x.astype(np.float32)
    for layer in model.layers:
        h = layer.forward(h, training=True)
        assert h.dtype == np.float32, type(layer).__name__
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(x), np.zeros(10, dtype=int))
    dout = loss_fn.backward()
    assert dout.dtype == np.float32
    for layer in reversed(model.layers):
        dout = layer.backward(dout)
        assert dout is None or dout.dtype == np.float32
    for value, grad in model.parameters():
        assert value.dtype == np.float32 and grad.dtype == np.float32
    for bn in model.batchnorms:
        assert bn.running_mean.dtype == np.float32 and bn.running_var.dtype == np.float32
    assert model.output(x).dtype == np.float32


def test_float64_model():
    model = MLP(MLPConfig(3, 2, hidden=(4,), dtype="float64"))
    assert model.forward(np.ones((2, 3), dtype=np.float32)).dtype == np.float64
    assert all(value.dtype == np.float64 for value, _ in model.parameters())


def test_output_in_chunks_equals_one_pass_and_predict():
    model = MLP(MLPConfig(3, 4, hidden=(5,), dtype="float64"))
    x = np.random.default_rng(1).standard_normal((50, 3))
    full = model.forward(x, training=False)
    np.testing.assert_allclose(model.output(x, chunk_rows=7), full, rtol=1e-15)
    np.testing.assert_array_equal(model.predict(x), full.argmax(axis=1))
    proba = model.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(ValueError):
        model.forward(np.ones((2, 4)))
    regression = MLP(MLPConfig(3, 1, hidden=(5,), task="regression"))
    assert regression.predict(x).shape == (50,)


# -- save / load -------------------------------------------------------------------------------


def trained_like_model(**overrides) -> MLP:
    """A model whose parameters and running statistics are all non-default."""
    config = MLPConfig(**{"input_dim": 4, "output_dim": 3, "hidden": (6, 5), **overrides})
    model = MLP(config)
    rng = np.random.default_rng(21)
    for _ in range(3):
        model.forward(rng.standard_normal((9, 4)) * 2 + 1, training=True)
    values, _ = model.flat_parameters()
    values += rng.standard_normal(values.shape).astype(values.dtype) * 0.1
    return model


EXTRA = {
    "feature_columns": ["a", "b", "c", "d"],
    "class_labels": ["x", "y", "z"],
    "input_stats": {"mean": np.array([1.0, 2.0, 3.0, 4.0]), "scale": [1.5, 2.0, 1.0, 0.5]},
    "versions": {"normcli": "0.1.0", "numpy": np.__version__},
    "count": np.int64(7),
}


@pytest.mark.parametrize("placement", ["after", "before", "none"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, placement, dtype):
    model = trained_like_model(bn_placement=placement, dtype=dtype, activation="tanh")
    path = tmp_path / "model.npz"
    save_model(model, path, EXTRA)
    loaded, extra = load_model(path)
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        loaded_value = loaded.state_dict()[key]
        assert loaded_value.dtype == value.dtype
        np.testing.assert_array_equal(loaded_value, value, err_msg=key)
    x = np.random.default_rng(3).standard_normal((20, 4))
    np.testing.assert_array_equal(loaded.output(x), model.output(x))
    assert extra["feature_columns"] == ["a", "b", "c", "d"]
    assert extra["input_stats"]["mean"] == [1.0, 2.0, 3.0, 4.0]
    assert extra["count"] == 7
    # The file is a plain npz that numpy reads without pickle.
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["metadata"]))
        assert meta["format"] == "normcli-mlp" and meta["config"]["bn_placement"] == placement
        np.testing.assert_array_equal(npz["layers.0.W"], model.first_linear.W)


def test_saved_bytes_are_deterministic(tmp_path, monkeypatch):
    first = model_to_bytes(trained_like_model(), EXTRA)
    # Whatever the clock says, the bytes do not change.
    monkeypatch.setattr("time.time", lambda: 2_000_000_000.0)
    second = model_to_bytes(trained_like_model(), dict(reversed(list(EXTRA.items()))))
    assert first == second
    save_model(trained_like_model(), tmp_path / "a.npz", EXTRA)
    save_model(model_from_bytes(first)[0], tmp_path / "b.npz", EXTRA)
    assert (tmp_path / "a.npz").read_bytes() == first == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npz"]  # no temp files left


class _Trap:
    """Unpickling this creates a file: proof that an object array was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_never_unpickles(tmp_path):
    """Object arrays are refused before unpickling (np.load(allow_pickle=True) would run the trap)."""
    path = tmp_path / "m.npz"
    save_model(trained_like_model(), path)
    arrays = dict(np.load(path))
    trap = tmp_path / "unpickled"
    first = next(name for name in arrays if name != "metadata")
    arrays[first] = np.array([_Trap(str(trap))], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(DataError, match="object"):
        load_model(tmp_path / "evil.npz")
    assert not trap.exists()
    dict(np.load(tmp_path / "evil.npz", allow_pickle=True))  # the trap is real
    assert trap.exists()


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old content")
    save_model(trained_like_model(), path)
    load_model(path)


def test_save_to_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot write"):
        save_model(trained_like_model(), tmp_path / "nope" / "m.npz")


def test_extra_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="metadata"):
        model_to_bytes(trained_like_model(), {"bad": object()})


def write_npz(path, **arrays) -> None:
    np.savez(path, **arrays)


def corrupt_variants(tmp_path):
    good = model_to_bytes(trained_like_model())
    meta = json.loads(str(model_from_npz_metadata(good)))
    cases = {}
    cases["missing.npz"] = None
    cases["text.npz"] = b"feature,label\n1,2\n"
    cases["empty.npz"] = b""
    cases["truncated.npz"] = good[: len(good) // 2]
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    cases["flipped.npz"] = bytes(flipped)
    cases["array.npy"] = "npy"
    cases["foreign.npz"] = {"weights": np.ones(3)}
    cases["object.npz"] = {
        "metadata": np.array(json.dumps(meta)),
        "junk": np.array([{"a": 1}], dtype=object),
    }
    cases["wrongformat.npz"] = {"metadata": np.array(json.dumps({**meta, "format": "other"}))}
    cases["newer.npz"] = {"metadata": np.array(json.dumps({**meta, "format_version": 99}))}
    cases["notjson.npz"] = {"metadata": np.array("{not json")}
    state = trained_like_model().state_dict()
    cases["incomplete.npz"] = {"metadata": np.array(json.dumps(meta))}
    wrong_shape = dict(state)
    wrong_shape["layers.0.W"] = np.zeros((2, 2), dtype=np.float32)
    cases["shape.npz"] = {"metadata": np.array(json.dumps(meta)), **wrong_shape}
    nan_state = dict(state)
    nan_state["layers.0.b"] = np.full_like(state["layers.0.b"], np.nan)
    cases["nan.npz"] = {"metadata": np.array(json.dumps(meta)), **nan_state}
    bad_config = {**meta, "config": {**meta["config"], "activation": "swish"}}
    cases["badconfig.npz"] = {"metadata": np.array(json.dumps(bad_config)), **state}
    for name, content in cases.items():
        path = tmp_path / name
        if content is None:
            continue
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content == "npy":
            np.save(path, np.ones(3))
        else:
            write_npz(path, **content)
    return list(cases)


def model_from_npz_metadata(data: bytes) -> np.ndarray:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return npz["metadata"]


def test_bad_model_files_raise_data_error_naming_the_file(tmp_path):
    names = corrupt_variants(tmp_path)
    for name in names:
        path = tmp_path / name
        with pytest.raises(DataError) as caught:
            load_model(path)
        message = caught.value.message
        assert str(path) in message, (name, message)
        assert "\n" not in caught.value.one_line(), name
    with pytest.raises(DataError, match="object"):
        load_model(tmp_path / "object.npz")
    with pytest.raises(DataError, match="newer"):
        load_model(tmp_path / "newer.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(DataError, match="directory"):
        load_model(tmp_path)


def test_model_from_bytes_errors_name_the_source():
    with pytest.raises(DataError, match="upload.npz"):
        model_from_bytes(b"garbage", "upload.npz")


# -- against PyTorch (a test dependency: these never skip) -------------------------------------


def torch_copy(model: MLP, torch):
    """A torch.nn.Sequential with the same layers and the same values as ``model``."""
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    modules = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            module = torch.nn.Linear(layer.in_features, layer.out_features, dtype=dtype)
            module.weight.data = torch.tensor(layer.W.copy())
            module.bias.data = torch.tensor(layer.b.copy())
        elif isinstance(layer, BatchNorm1d):
            module = torch.nn.BatchNorm1d(
                layer.num_features, eps=layer.eps, momentum=layer.momentum, dtype=dtype
            )
            module.weight.data = torch.tensor(layer.gamma.copy())
            module.bias.data = torch.tensor(layer.beta.copy())
        elif isinstance(layer, ReLU):
            module = torch.nn.ReLU()
        elif isinstance(layer, LeakyReLU):
            module = torch.nn.LeakyReLU(layer.negative_slope)
        elif isinstance(layer, Tanh):
            module = torch.nn.Tanh()
        elif isinstance(layer, GELU):
            module = torch.nn.GELU()  # exact erf form
        else:
            raise AssertionError(f"no torch twin for {layer!r}")
        modules.append(module)
    return torch.nn.Sequential(*modules)


def assert_same_state(model: MLP, twin, tol: float, skip_biases_before_bn: bool = False) -> None:
    """Parameters and running statistics equal within ``tol``.

    A Linear bias right before a BatchNorm1d has a zero gradient up to rounding noise (batch
    norm subtracts the mean); Adam divides that noise by its own size, so those biases wander
    differently in any two implementations — without any effect on the output. They (and
    the running means of those batch norms, which include them) are skipped on request.
    """
    torch_values = []
    for module in twin:
        if hasattr(module, "weight"):
            torch_values += [module.weight, module.bias]
    ours = [value for value, _ in model.parameters()]
    skipped = set()
    if skip_biases_before_bn:
        for index, layer in enumerate(model.layers[:-1]):
            if isinstance(layer, Linear) and isinstance(model.layers[index + 1], BatchNorm1d):
                skipped.add(id(layer.b))
    for mine, theirs in zip(ours, torch_values, strict=True):
        if id(mine) not in skipped:
            np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=tol, atol=tol)
    twins = [m for m in twin if hasattr(m, "running_mean")]
    for bn, module in zip(model.batchnorms, twins, strict=True):
        if not skip_biases_before_bn:
            np.testing.assert_allclose(
                bn.running_mean, module.running_mean.numpy(), rtol=tol, atol=tol
            )
        np.testing.assert_allclose(bn.running_var, module.running_var.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-12)])
def test_batchnorm_matches_torch(dtype, tol):
    import torch
    rng = np.random.default_rng(4)
    ours = BatchNorm1d(6, momentum=0.1, eps=1e-5, dtype=dtype)
    ours.gamma[...] = rng.uniform(0.5, 1.5, 6)
    ours.beta[...] = rng.standard_normal(6)
    theirs = torch.nn.BatchNorm1d(6, dtype=getattr(torch, dtype))
    theirs.weight.data = torch.tensor(ours.gamma.copy())
    theirs.bias.data = torch.tensor(ours.beta.copy())
    for step in range(3):
        x = (rng.standard_normal((32, 6)) * 3 + step).astype(dtype)
        dout = rng.standard_normal((32, 6)).astype(dtype)
        tx = torch.tensor(x, requires_grad=True)
        tout = theirs(tx)
        tout.backward(torch.tensor(dout))
        out = ours.forward(x, training=True)
        dx = ours.backward(dout)
        np.testing.assert_allclose(out, tout.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.dgamma, theirs.weight.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.dbeta, theirs.bias.grad.numpy(), rtol=tol, atol=tol)
        theirs.weight.grad = theirs.bias.grad = None
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=tol)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=tol)
    theirs.eval()
    x = rng.standard_normal((5, 6)).astype(dtype)
    expected = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(ours.forward(x, training=False), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("placement", ["after", "before"])
@pytest.mark.parametrize(
    "optimizer",
    ["sgd_momentum", "sgd_nesterov_wd", "adam", "adam_wd"],
)
def test_mlp_training_steps_match_torch(dtype, tol, placement, optimizer):
    import torch
    activation = "gelu" if optimizer == "adam" else "relu"
    model = MLP(MLPConfig(5, 4, hidden=(16, 12), bn_placement=placement, dtype=dtype,
                          activation=activation, seed=1))  # fmt: skip
    twin = torch_copy(model, torch)
    params = [model.flat_parameters()]
    if optimizer == "sgd_momentum":
        ours = SGD(params, lr=0.05, momentum=0.9)
        theirs = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    elif optimizer == "sgd_nesterov_wd":
        ours = SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
        theirs = torch.optim.SGD(
            twin.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01
        )
    else:
        wd = 0.01 if optimizer == "adam_wd" else 0.0
        ours = Adam(params, lr=0.01, weight_decay=wd)
        theirs = torch.optim.Adam(twin.parameters(), lr=0.01, weight_decay=wd)
    rng = np.random.default_rng(9)
    loss_fn = SoftmaxCrossEntropy()
    for _ in range(4):
        x = rng.standard_normal((24, 5)).astype(dtype)
        y = rng.integers(0, 4, 24)
        step_with_torch(model, loss_fn, ours, twin, theirs, x, y, tol)
    adam_before = optimizer.startswith("adam") and placement == "before"
    assert_same_state(model, twin, tol, skip_biases_before_bn=adam_before)
    x = rng.standard_normal((10, 5)).astype(dtype)
    if adam_before:  # compare in training mode, where those biases cancel exactly
        ours_out = model.forward(x, training=True)
    else:
        twin.eval()
        ours_out = model.output(x)
    np.testing.assert_allclose(
        ours_out, twin(torch.tensor(x)).detach().numpy(), rtol=10 * tol, atol=10 * tol
    )


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-13)])
def test_batchnorm_cumulative_average_matches_torch_momentum_none(dtype, tol):
    import torch

    rng = np.random.default_rng(12)
    ours = BatchNorm1d(5, momentum=None, dtype=dtype)
    theirs = torch.nn.BatchNorm1d(5, momentum=None, dtype=getattr(torch, dtype))
    ours.gamma[...] = rng.uniform(0.5, 1.5, 5)
    ours.beta[...] = rng.standard_normal(5)
    theirs.weight.data = torch.tensor(ours.gamma.copy())
    theirs.bias.data = torch.tensor(ours.beta.copy())
    batch_means = []
    for step, rows in enumerate([7, 32, 2, 19, 64, 3]):
        x = (rng.standard_normal((rows, 5)) * (step + 1) + 3 * step).astype(dtype)
        batch_means.append(x.astype(np.float64).mean(axis=0))
        out = ours.forward(x, training=True)
        expected = theirs(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == step + 1
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=tol, atol=tol)
    # a cumulative average: the running mean is the plain mean of the batch means
    np.testing.assert_allclose(ours.running_mean, np.mean(batch_means, axis=0), rtol=10 * tol, atol=10 * tol)
    theirs.eval()
    x = rng.standard_normal((6, 5)).astype(dtype)
    np.testing.assert_allclose(
        ours.forward(x, training=False), theirs(torch.tensor(x)).detach().numpy(), rtol=tol, atol=tol
    )


def test_cumulative_batchnorm_round_trips_through_the_model_file(tmp_path):
    model = trained_like_model(bn_momentum=None)
    assert [int(bn.num_batches_tracked) for bn in model.batchnorms] == [3, 3]
    save_model(model, tmp_path / "m.npz")
    loaded, _ = load_model(tmp_path / "m.npz")
    assert loaded.config.bn_momentum is None
    assert [int(bn.num_batches_tracked) for bn in loaded.batchnorms] == [3, 3]
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert "layers.2.num_batches_tracked" in npz.files
    # a model with a fixed momentum keeps exactly the arrays it always had
    plain = model_to_bytes(trained_like_model())
    with np.load(io.BytesIO(plain), allow_pickle=False) as npz:
        assert not any("num_batches_tracked" in name for name in npz.files)


def test_batchnorm_settings_errors_are_usage_errors():
    from normcli.errors import UsageError

    for bad in ({"momentum": 1.5}, {"momentum": "fast"}, {"eps": 0.0}):
        with pytest.raises(UsageError) as caught:
            BatchNorm1d(4, **bad)
        assert isinstance(caught.value, ValueError)
    with pytest.raises(UsageError, match="bn_momentum"):
        MLPConfig(3, 2, bn_momentum=-0.1)
