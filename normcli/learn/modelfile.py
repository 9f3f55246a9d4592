"""The model file: an :class:`~normcli.nn.MLP` and its metadata as a plain ``.npz``.

Format (read back with ``np.load(path, allow_pickle=False)`` only): one ``float32``/``float64``
array per parameter and batch-norm running statistic, named ``layers.<index>.<name>`` (e.g.
``layers.0.W`` of shape (out, in), ``layers.2.running_var``; a batch norm with a cumulative
average, ``bn_momentum`` null, also keeps its int64 ``num_batches_tracked``), plus
``metadata``: a 0-d numpy unicode array holding JSON ::

    {"format": "normcli-mlp", "format_version": 1, "normcli_version": "...",
     "config": {...MLPConfig fields...}, "arrays": [...names...], "extra": {...caller's dict...}}

``extra`` is what :mod:`normcli.learn.train` stores to repeat the data preparation: the task,
target, feature columns and their encoding, the input statistics, class labels, target scaling
and the training settings.

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
from typing import Any

import numpy as np

import normcli
from normcli.errors import DataError
from normcli.nn import MLP, MLPConfig

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "save_model",
    "load_model",
    "model_to_bytes",
    "model_from_bytes",
    "describe_model",
    "is_model_archive",
]

MODEL_FORMAT = "normcli-mlp"
MODEL_FORMAT_VERSION = 1
METADATA_ENTRY = "metadata"


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
            archive.writestr(info, _npy_bytes(np.asarray(array)))
    return buffer.getvalue()


def save_model(
    model: MLP, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None
) -> None:
    """Save ``model`` (weights, running statistics, architecture) and ``extra`` to ``path``.

    ``extra`` is any JSON-able dict (numpy scalars/arrays are converted). It comes back from
    :func:`load_model`. The file is replaced atomically. An unwritable path raises ``DataError``.
    """
    from normcli.learn._seam import atomic_path  # imported here: the data code loads polars

    data = model_to_bytes(model, extra)
    try:
        with atomic_path(path) as temp:
            temp.write_bytes(data)
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


def is_model_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zip archive with a model's ``metadata`` entry (a quick look at its
    directory, for :func:`~normcli.data.outputs.check_replaceable`; :func:`load_model` validates)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return METADATA_ENTRY + ".npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def describe_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a model file holds, as one JSON-able document: the architecture (``config``), the
    number of trained ``parameters``, and the metadata train stored (task, target, features and
    their encoding, classes, normalization stats, training settings and outcome). Validated as
    :func:`load_model` validates."""
    model, extra = load_model(path)
    state = model.state_dict(copy=False)
    parameters = sum(int(array.size) for name, array in state.items() if name.rsplit(".", 1)[-1] in ("W", "b", "gamma", "beta"))
    return {
        "file": os.fspath(path),
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "config": model.config.to_dict(),
        "parameters": parameters,
        **extra,
    }
