"""The multilayer perceptron (:class:`MLP`) and its configuration.

Architecture, for hidden sizes (h₁, …, h_k) and batch-norm placement:

* ``"after"`` (default): [Linear → activation → BatchNorm1d → Dropout?] × k → Linear
* ``"before"`` (Ioffe & Szegedy): [Linear → BatchNorm1d → activation → Dropout?] × k → Linear
* ``"none"``: [Linear → activation → Dropout?] × k → Linear

The output Linear is followed by nothing: it gives logits (classification, trained with
softmax cross-entropy) or values (regression, trained with MSE). Dropout layers exist only when
``dropout > 0``.

Saving and loading models is not done here (nn does no file I/O): see
:mod:`normcli.learn.modelfile`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from normcli.nn.layers import (
    GELU,
    BatchNorm1d,
    Dropout,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    SettingError,
    Tanh,
)
from normcli.nn.losses import SoftmaxCrossEntropy

__all__ = [
    "ACTIVATIONS",
    "BN_PLACEMENTS",
    "TASKS",
    "DTYPES",
    "NetworkConfig",
    "MLPConfig",
    "MLP",
]

ACTIVATIONS = ("relu", "tanh", "gelu", "leaky_relu")
BN_PLACEMENTS = ("after", "before", "none")
TASKS = ("classification", "regression")
DTYPES = ("float32", "float64")

# Parameters are laid out in one flat buffer; each starts on a 64-byte boundary.
_ALIGN_BYTES = 64
# Rows per chunk when predicting, so a large input never needs all activations at once.
PREDICT_CHUNK_ROWS = 8192


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """The architecture of an MLP, whatever data it is fitted to.

    ``hidden`` sizes; ``activation`` ('relu', 'tanh', 'gelu' (exact erf), 'leaky_relu' with
    ``leaky_relu_slope``); ``bn_placement`` ('after' = Linear→act→BN, 'before' =
    Linear→BN→act, 'none'); ``dropout`` probability (0 = no dropout layers); ``dtype``
    ('float32' or 'float64'); ``bn_momentum`` (PyTorch convention; ``None`` = cumulative
    average, see :class:`~normcli.nn.layers.BatchNorm1d`) and ``bn_eps``.

    Invalid values raise :class:`~normcli.nn.layers.SettingError` (a ``ValueError`` and a
    usage error) listing every problem.
    """

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    bn_placement: str = "after"
    dropout: float = 0.0
    dtype: str = "float32"
    bn_momentum: float | None = 0.1
    bn_eps: float = 1e-5
    leaky_relu_slope: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        try:
            object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        except TypeError:
            pass  # reported below
        problems = self._problems()
        if problems:
            raise SettingError("invalid network settings: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if any(h < 1 for h in self.hidden):
            problems.append(f"hidden sizes must be >= 1 (got {self.hidden})")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {', '.join(ACTIVATIONS)} (got {self.activation!r})")
        if self.bn_placement not in BN_PLACEMENTS:
            problems.append(
                f"bn_placement must be one of {', '.join(BN_PLACEMENTS)} (got {self.bn_placement!r})"
            )
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {', '.join(DTYPES)} (got {self.dtype!r})")
        if self.bn_momentum is not None and not 0.0 <= self.bn_momentum <= 1.0:
            problems.append(
                f"bn_momentum must be in [0, 1], or None for a cumulative average (got {self.bn_momentum})"
            )
        if not (math.isfinite(self.bn_eps) and self.bn_eps > 0.0):
            problems.append(f"bn_eps must be > 0 (got {self.bn_eps})")
        if not (math.isfinite(self.leaky_relu_slope) and self.leaky_relu_slope >= 0.0):
            problems.append(f"leaky_relu_slope must be >= 0 (got {self.leaky_relu_slope})")
        return problems

    def network(self) -> NetworkConfig:
        """Just the architecture (drops the fields a subclass adds)."""
        names = {f.name for f in fields(NetworkConfig)}
        return NetworkConfig(**{k: v for k, v in asdict(self).items() if k in names})


@dataclass(frozen=True)
class MLPConfig(NetworkConfig):
    """An :class:`MLP`: its architecture (a :class:`NetworkConfig`) fitted to data.

    Adds the input and output sizes, the ``task`` and the ``seed`` of the weight initialisation
    (stream ``[seed, 0]``) and of the dropout masks (stream ``[seed, 1]``), drawn through
    ``numpy.random.default_rng``. ``MLPConfig(4, 3, hidden=(8,))``.
    """

    input_dim: int
    output_dim: int
    task: str = "classification"
    seed: int = 0

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if self.input_dim < 1:
            problems.append(f"input_dim must be >= 1 (got {self.input_dim})")
        if self.output_dim < 1:
            problems.append(f"output_dim must be >= 1 (got {self.output_dim})")
        if self.seed < 0:
            problems.append(f"seed must be >= 0 (got {self.seed})")
        if self.task not in TASKS:
            problems.append(f"task must be one of {', '.join(TASKS)} (got {self.task!r})")
        return problems

    @classmethod
    def of(cls, network: NetworkConfig, input_dim: int, output_dim: int, task: str, seed: int) -> MLPConfig:
        """The MLP of ``network`` for data of these sizes."""
        return cls(input_dim, output_dim, task=task, seed=seed, **asdict(network.network()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``hidden`` as a list)."""
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    def state_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """The keys of :meth:`MLP.state_dict` with each array's shape and dtype, computed from the
        configuration alone: a model file's arrays are checked against its metadata before any
        memory is allocated (tests check that it agrees with a built network's state)."""
        shapes: dict[str, tuple[tuple[int, ...], str]] = {}
        widths = (self.input_dim, *self.hidden)
        index = 0
        for k, width in enumerate(self.hidden):
            shapes[f"layers.{index}.W"] = ((width, widths[k]), self.dtype)
            shapes[f"layers.{index}.b"] = ((width,), self.dtype)
            index += 1
            if self.bn_placement != "none":
                bn = index if self.bn_placement == "before" else index + 1
                for name in ("gamma", "beta", "running_mean", "running_var"):
                    shapes[f"layers.{bn}.{name}"] = ((width,), self.dtype)
                if self.bn_momentum is None:
                    shapes[f"layers.{bn}.num_batches_tracked"] = ((), "int64")
                index += 1
            index += 1 + (self.dropout > 0.0)  # the activation, and dropout
        shapes[f"layers.{index}.W"] = ((self.output_dim, widths[-1]), self.dtype)
        shapes[f"layers.{index}.b"] = ((self.output_dim,), self.dtype)
        return shapes

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MLPConfig:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on unknown or missing fields."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingError(f"unknown architecture fields {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:  # a missing required field
            raise SettingError(f"incomplete architecture: {exc}") from None


def _make_activation(config: MLPConfig) -> Layer:
    if config.activation == "relu":
        return ReLU()
    if config.activation == "tanh":
        return Tanh()
    if config.activation == "gelu":
        return GELU()
    return LeakyReLU(config.leaky_relu_slope)


class MLP:
    """A multilayer perceptron built from an :class:`MLPConfig` (see the module docstring).

    All parameters live in one flat array (``flat_parameters()``) and each layer's ``W``, ``b``,
    ``gamma``, ``beta`` (and gradients) are views into it, so an optimizer can update the whole
    network with a handful of vectorized operations. Replace values with ``arr[...] = new`` or
    :meth:`load_state_dict`, never by rebinding the attribute.
    """

    def __init__(self, config: MLPConfig) -> None:
        self.config = config
        self.dtype = np.dtype(config.dtype)
        init_rng = np.random.default_rng([config.seed, 0])
        dropout_rng = np.random.default_rng([config.seed, 1])
        layers: list[Layer] = []
        widths = (config.input_dim, *config.hidden)
        for index, width in enumerate(config.hidden):
            layers.append(Linear(widths[index], width, init_rng, self.dtype, input_grad=index > 0))
            batchnorm = BatchNorm1d(width, config.bn_momentum, config.bn_eps, self.dtype)
            if config.bn_placement == "before":
                layers += [batchnorm, _make_activation(config)]
            elif config.bn_placement == "after":
                layers += [_make_activation(config), batchnorm]
            else:
                layers.append(_make_activation(config))
            if config.dropout > 0.0:
                layers.append(Dropout(config.dropout, dropout_rng))
        has_hidden = bool(config.hidden)
        layers.append(
            Linear(widths[-1], config.output_dim, init_rng, self.dtype, input_grad=has_hidden)
        )
        # The MLP owns every array between its layers, so they may work in place (see
        # nn.layers) — except on an output the layer before still needs (tanh's).
        for before, layer in zip([None, *layers], layers):
            layer.inplace = before is None or not before.keeps_output
        self.layers = layers
        self._flat_values, self._flat_grads = self._gather_into_flat_buffers()
        self.kernels = "numpy"
        """What runs training-mode passes: 'numpy' (the layers) or 'numba' (see :meth:`use_kernels`)."""
        self._training_steps: list = layers
        self._last_steps: list = layers

    def _gather_into_flat_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        align = _ALIGN_BYTES // self.dtype.itemsize
        slots = []
        total = 0
        for layer in self.layers:
            for name in layer.param_names:
                size = getattr(layer, name).size
                slots.append((layer, name, total))
                total += -(-size // align) * align
        values = np.zeros(total, dtype=self.dtype)
        grads = np.zeros(total, dtype=self.dtype)
        for layer, name, offset in slots:
            current = getattr(layer, name)
            view = values[offset : offset + current.size].reshape(current.shape)
            view[...] = current
            setattr(layer, name, view)
            setattr(layer, "d" + name, grads[offset : offset + current.size].reshape(current.shape))
        return values, grads

    # -- structure -------------------------------------------------------------------------

    @property
    def linears(self) -> list[Linear]:
        return [layer for layer in self.layers if isinstance(layer, Linear)]

    @property
    def batchnorms(self) -> list[BatchNorm1d]:
        return [layer for layer in self.layers if isinstance(layer, BatchNorm1d)]

    @property
    def first_linear(self) -> Linear:
        return self.linears[0]

    @property
    def num_parameters(self) -> int:
        return sum(value.size for value, _ in self.parameters())

    def __repr__(self) -> str:
        return "MLP(" + " → ".join(repr(layer) for layer in self.layers) + ")"

    # -- computation -----------------------------------------------------------------------

    @property
    def training_steps(self) -> list:
        """What a training-mode ``forward`` runs in turn: the layers, or fused blocks of them."""
        return list(self._training_steps)

    def use_kernels(self, kernels: str) -> None:
        """Run training-mode passes with 'numpy' (each layer in turn, the default) or 'numba'.

        'numba' replaces each fusable hidden block (Linear → ReLU/LeakyReLU ⇄ BatchNorm1d) by
        a :class:`normcli.nn.fused.FusedHidden`, which computes the same equations with the
        same arrays in compiled kernels (results equal within float rounding); it needs numba
        (``pip install 'normcli[fast]'``). Eval mode always runs the layers.
        """
        if kernels == "numba":
            from normcli.nn.fused import training_steps

            self._training_steps = training_steps(self.layers)
        elif kernels == "numpy":
            self._training_steps = self.layers
        else:
            raise SettingError(f"kernels must be 'numpy' or 'numba', got {kernels!r}")
        self.kernels = kernels
        self._last_steps = self.layers

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Outputs (logits or values) for a batch; ``training`` selects batch/running BN stats.

        ``x`` is cast to the model dtype once, here, so nothing downstream widens or narrows.
        In training mode the layers reuse their buffers: the result is valid until the next
        training-mode ``forward`` (eval mode returns a new array).
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.config.input_dim:
            raise ValueError(
                f"MLP expects input of shape (n, {self.config.input_dim}), got {x.shape}"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        steps = self._training_steps if training else self.layers
        self._last_steps = steps
        for step in steps:
            x = step.forward(x, training)
        return x

    def backward(self, dout: np.ndarray) -> None:
        """Backpropagate ∂L/∂output of the last ``forward``; fills every layer's gradients."""
        for step in reversed(self._last_steps):
            dout = step.backward(dout)

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(value, gradient)`` pairs of every trainable array, layer by layer."""
        return [pair for layer in self.layers for pair in layer.parameters()]

    def flat_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """All parameter values and all gradients as two flat arrays (views of the layers').

        The padding between arrays (for alignment) is always 0 in both.
        """
        return self._flat_values, self._flat_grads

    def output(self, x: np.ndarray, chunk_rows: int = PREDICT_CHUNK_ROWS) -> np.ndarray:
        """Eval-mode outputs (logits or values) of all rows, computed ``chunk_rows`` at a time."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.config.input_dim:
            raise ValueError(
                f"MLP expects input of shape (n, {self.config.input_dim}), got {x.shape}"
            )
        if x.shape[0] <= chunk_rows:
            return self.forward(x, training=False)
        chunks = [
            self.forward(x[start : start + chunk_rows], training=False)
            for start in range(0, x.shape[0], chunk_rows)
        ]
        return np.concatenate(chunks)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax of the logits), shape (n, classes); classification only."""
        if self.config.task != "classification":
            raise ValueError("predict_proba needs a classification model")
        return SoftmaxCrossEntropy.probabilities(self.output(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices (classification) or values, shape (n,) for one output (regression).

        Regression values are in the units the network was trained on (scaled targets).
        """
        out = self.output(x)
        if self.config.task == "classification":
            return out.argmax(axis=1)
        return out[:, 0] if out.shape[1] == 1 else out

    # -- state -----------------------------------------------------------------------------

    def state_dict(self, copy: bool = True) -> dict[str, np.ndarray]:
        """Every parameter and batch-norm running statistic, keyed ``layers.<i>.<name>``."""
        state = {}
        for index, layer in enumerate(self.layers):
            for name in (*layer.param_names, *layer.state_names):
                value = getattr(layer, name)
                state[f"layers.{index}.{name}"] = value.copy() if copy else value
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Copy values into the model's arrays (in place); shapes must match exactly."""
        own = self.state_dict(copy=False)
        missing = sorted(set(own) - set(state))
        if missing:
            raise ValueError(f"state is missing {missing}")
        for key, target in own.items():
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"{key}: shape {value.shape} != expected {target.shape}")
            np.copyto(target, value, casting="same_kind")
