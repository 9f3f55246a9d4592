"""The multilayer perceptron (:class:`MLP`), its configuration, and saving/loading it as ``.npz``.

Architecture, for hidden sizes (h₁, …, h_k) and batch-norm placement:

* ``"after"`` (default): [Linear → activation → BatchNorm1d → Dropout?] × k → Linear
* ``"before"`` (Ioffe & Szegedy): [Linear → BatchNorm1d → activation → Dropout?] × k → Linear
* ``"none"``: [Linear → activation → Dropout?] × k → Linear

The output Linear is followed by nothing: it gives logits (classification, trained with
softmax cross-entropy) or values (regression, trained with MSE). Dropout layers exist only when
``dropout > 0``.

Model file (``.npz``, read back with ``np.load(path, allow_pickle=False)`` only): one
``float32``/``float64`` array per parameter and batch-norm running statistic, named
``layers.<index>.<name>`` (e.g. ``layers.0.W`` of shape (out, in), ``layers.2.running_var``),
plus ``metadata``: a 0-d numpy unicode array holding JSON ::

    {"format": "normcli-mlp", "format_version": 1, "normcli_version": "...",
     "config": {...MLPConfig fields...}, "arrays": [...names...], "extra": {...caller's dict...}}

The bytes depend only on the weights, config and extra: the zip is written by hand, stored
(uncompressed) with a fixed 1980-01-01 timestamp, entries in a fixed order and JSON with sorted
keys — ``np.savez`` would stamp each entry with the current time.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

import normcli
from normcli.errors import DataError
from normcli.nn.layers import (
    GELU,
    BatchNorm1d,
    Dropout,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    Tanh,
)
from normcli.nn.losses import SoftmaxCrossEntropy

__all__ = [
    "ACTIVATIONS",
    "BN_PLACEMENTS",
    "TASKS",
    "DTYPES",
    "MLPConfig",
    "MLP",
    "save_model",
    "load_model",
    "model_to_bytes",
    "model_from_bytes",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
]

ACTIVATIONS = ("relu", "tanh", "gelu", "leaky_relu")
BN_PLACEMENTS = ("after", "before", "none")
TASKS = ("classification", "regression")
DTYPES = ("float32", "float64")

MODEL_FORMAT = "normcli-mlp"
MODEL_FORMAT_VERSION = 1
METADATA_ENTRY = "metadata"

# Parameters are laid out in one flat buffer; each starts on a 64-byte boundary.
_ALIGN_BYTES = 64
# Rows per chunk when predicting, so a large input never needs all activations at once.
PREDICT_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class MLPConfig:
    """Everything that defines an :class:`MLP`'s architecture and initial weights.

    ``seed`` seeds the weight initialisation (stream ``[seed, 0]``) and the dropout masks
    (stream ``[seed, 1]``) through ``numpy.random.default_rng``.
    """

    input_dim: int
    output_dim: int
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    bn_placement: str = "after"
    dropout: float = 0.0
    dtype: str = "float32"
    seed: int = 0
    task: str = "classification"
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    leaky_relu_slope: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        problems = []
        if self.input_dim < 1:
            problems.append(f"input_dim must be >= 1, got {self.input_dim}")
        if self.output_dim < 1:
            problems.append(f"output_dim must be >= 1, got {self.output_dim}")
        if any(h < 1 for h in self.hidden):
            problems.append(f"hidden sizes must be >= 1, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.bn_placement not in BN_PLACEMENTS:
            problems.append(
                f"bn_placement must be one of {BN_PLACEMENTS}, got {self.bn_placement!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.seed < 0:
            problems.append(f"seed must be >= 0, got {self.seed}")
        if self.task not in TASKS:
            problems.append(f"task must be one of {TASKS}, got {self.task!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``hidden`` as a list)."""
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MLPConfig:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on unknown or missing fields."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown architecture fields {unknown}")
        return cls(**data)


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
        self.layers = layers
        self._flat_values, self._flat_grads = self._gather_into_flat_buffers()

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

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Outputs (logits or values) for a batch; ``training`` selects batch/running BN stats.

        ``x`` is cast to the model dtype once, here, so nothing downstream widens or narrows.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.config.input_dim:
            raise ValueError(
                f"MLP expects input of shape (n, {self.config.input_dim}), got {x.shape}"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dout: np.ndarray) -> None:
        """Backpropagate ∂L/∂output of the last ``forward``; fills every layer's gradients."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

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


# -- saving and loading ------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in model metadata (not JSON)")


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def model_to_bytes(model: MLP, extra: Mapping[str, Any] | None = None) -> bytes:
    """The ``.npz`` file content for ``model`` and the caller's JSON-able ``extra`` dict.

    Deterministic: the same weights, config and extra always give the same bytes.
    """
    state = model.state_dict(copy=False)
    metadata = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "normcli_version": normcli.__version__,
        "config": model.config.to_dict(),
        "arrays": list(state),
        "extra": dict(extra or {}),
    }
    text = json.dumps(metadata, sort_keys=True, default=_json_default)
    entries = [(METADATA_ENTRY, np.array(text)), *state.items()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in entries:
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # unix, whatever the platform
            info.external_attr = 0o644 << 16
            archive.writestr(info, _npy_bytes(array))
    return buffer.getvalue()


def save_model(
    model: MLP, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None
) -> None:
    """Save ``model`` (weights, running statistics, architecture) and ``extra`` to ``path``.

    ``extra`` is any JSON-able dict (numpy scalars/arrays are converted): feature columns, class
    labels, input-normalization and target-scaling statistics, versions… It comes back from
    :func:`load_model`. The file is replaced atomically. An unwritable path raises ``DataError``.
    """
    from normcli.data.outputs import atomic_write_bytes

    data = model_to_bytes(model, extra)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DataError(f"cannot write model file {os.fspath(path)}: {reason}") from exc


def _not_a_model(display: str, why: str) -> DataError:
    return DataError(
        f"{display} is not a normcli model file: {why}",
        hint="pass a .npz file written by 'normcli train'",
    )


# What reading a damaged or foreign archive can raise, besides our own checks.
_READ_ERRORS = (ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, OSError)


def _read_model(source: str | os.PathLike[str] | io.BytesIO, display: str) -> tuple[MLP, dict]:
    try:
        loaded = np.load(source, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(f"model file {display} does not exist") from exc
    except IsADirectoryError as exc:
        raise DataError(f"model file {display} is a directory") from exc
    except PermissionError as exc:
        raise DataError(f"cannot read model file {display}: permission denied") from exc
    except _READ_ERRORS as exc:
        raise _not_a_model(display, "not a readable .npz archive") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise _not_a_model(display, "it holds a single .npy array, not an .npz archive")
    with loaded:
        try:
            arrays = {name: loaded[name] for name in loaded.files}
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise _not_a_model(display, "it contains object (pickled) arrays") from exc
            raise _not_a_model(display, f"damaged entry ({exc})") from exc
        except _READ_ERRORS as exc:
            raise _not_a_model(display, f"damaged archive ({type(exc).__name__})") from exc
    return _model_from_arrays(arrays, display)


def _model_from_arrays(arrays: dict[str, np.ndarray], display: str) -> tuple[MLP, dict]:
    meta_array = arrays.get(METADATA_ENTRY)
    if meta_array is None:
        shown = ", ".join(sorted(arrays)[:5]) or "nothing"
        raise _not_a_model(display, f"no '{METADATA_ENTRY}' entry (it holds {shown})")
    if meta_array.dtype.kind != "U" or meta_array.ndim != 0:
        raise _not_a_model(display, f"'{METADATA_ENTRY}' is not a text entry")
    try:
        metadata = json.loads(str(meta_array))
    except json.JSONDecodeError as exc:
        raise _not_a_model(display, f"metadata is not valid JSON ({exc.msg})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != MODEL_FORMAT:
        raise _not_a_model(display, f"metadata does not say format '{MODEL_FORMAT}'")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise _not_a_model(display, f"bad format_version {version!r}")
    if version > MODEL_FORMAT_VERSION:
        raise DataError(
            f"model file {display} has format version {version}, newer than this normcli "
            f"reads ({MODEL_FORMAT_VERSION})",
            hint="upgrade normcli",
        )
    extra = metadata.get("extra", {})
    if not isinstance(extra, dict) or not isinstance(metadata.get("config"), dict):
        raise _not_a_model(display, "metadata 'config' and 'extra' must be objects")
    try:
        config = MLPConfig.from_dict(metadata["config"])
        model = MLP(config)
    except (TypeError, ValueError) as exc:
        raise DataError(f"model file {display} has an invalid architecture: {exc}") from exc
    state = {}
    for key, expected in model.state_dict(copy=False).items():
        value = arrays.get(key)
        if value is None:
            raise DataError(f"model file {display} is incomplete: entry '{key}' is missing")
        if value.shape != expected.shape or value.dtype != expected.dtype:
            raise DataError(
                f"model file {display}: entry '{key}' is {value.dtype}{list(value.shape)}, "
                f"expected {expected.dtype}{list(expected.shape)}"
            )
        if not np.isfinite(value).all():
            raise DataError(f"model file {display}: entry '{key}' has non-finite values")
        state[key] = value
    model.load_state_dict(state)
    return model, extra


def load_model(path: str | os.PathLike[str]) -> tuple[MLP, dict]:
    """Load a model saved by :func:`save_model`; returns ``(model, extra)``.

    Uses ``np.load(path, allow_pickle=False)`` only. A missing, unreadable, corrupt or non-npz
    file, a foreign npz, one with object arrays, or one whose arrays do not fit the stored
    architecture raises :class:`~normcli.errors.DataError` naming the file.
    """
    return _read_model(path, os.fspath(path))


def model_from_bytes(data: bytes, display: str = "<bytes>") -> tuple[MLP, dict]:
    """:func:`load_model` for file content already in memory (``display`` names it in errors)."""
    return _read_model(io.BytesIO(data), display)
