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
from normcli.data.inputs import MAX_STREAMED_MODEL_BYTES
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
_READ_ERRORS = (ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, OSError, NotImplementedError)

MAX_METADATA_BYTES = 64 << 20
"""The metadata entry (JSON: the encoding, the input statistics, categories) is refused above
this size: no real model comes near it (a few KB to a few MB), and it is read into memory."""

MAX_EXPANSION = 64
"""A compressed entry may not claim to expand more than this many times (normcli stores its
entries uncompressed; float weights compress by a few percent, zeros by a thousand times)."""

_NPY_HEADER_BYTES = 1 << 16
"""Room for an .npy header beside an array's own bytes (numpy writes 128 or 256)."""


def _read_model(source: str | os.PathLike[str] | io.BytesIO, display: str) -> tuple[MLP, dict]:
    """Read a model, checking sizes before allocating: entries are read by name (others never),
    their declared sizes are checked against the architecture in the metadata, and the network
    is built only once its arrays are known to be there. A 10 KB file can no longer claim a
    30000×30000 network and make predict allocate 10 GB."""
    try:
        archive = zipfile.ZipFile(source)
    except FileNotFoundError as exc:
        raise DataError(f"model file {display} does not exist") from exc
    except IsADirectoryError as exc:
        raise DataError(f"model file {display} is a directory") from exc
    except PermissionError as exc:
        raise DataError(f"cannot read model file {display}: permission denied") from exc
    except _READ_ERRORS as exc:
        if _starts_with(source, b"\x93NUMPY"):
            raise _not_a_model(display, "it holds a single .npy array, not an .npz archive") from exc
        raise _not_a_model(display, "not a readable .npz archive") from exc
    with archive:
        entries = {info.filename: info for info in archive.infolist()}
        metadata = _metadata(archive, entries, display)
        try:
            config = MLPConfig.from_dict(metadata["config"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"model file {display} has an invalid architecture: {exc}") from exc
        expected = config.state_shapes()
        for key, (shape, dtype) in expected.items():
            _check_entry_size(entries.get(key + ".npy"), key, shape, dtype, display)
        state = {key: _read_array(archive, entries[key + ".npy"], key, display) for key in expected}
    for key, (shape, dtype) in expected.items():
        value = state[key]
        if value.shape != shape or value.dtype != np.dtype(dtype):
            raise DataError(
                f"model file {display}: entry '{key}' is {value.dtype}{list(value.shape)}, "
                f"expected {dtype}{list(shape)}"
            )
        if not np.isfinite(value).all():
            raise DataError(f"model file {display}: entry '{key}' has non-finite values")
    model = MLP(config)
    model.load_state_dict(state)
    return model, metadata["extra"]


def _starts_with(source: str | os.PathLike[str] | io.BytesIO, magic: bytes) -> bool:
    try:
        if isinstance(source, io.BytesIO):
            return source.getvalue().startswith(magic)
        with open(source, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


def _metadata(archive: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo], display: str) -> dict[str, Any]:
    """The metadata entry, parsed and checked (format, version, config and extra objects)."""
    info = entries.get(METADATA_ENTRY + ".npy")
    if info is None:
        shown = ", ".join(sorted(name.removesuffix(".npy") for name in entries)[:5]) or "nothing"
        raise _not_a_model(display, f"no '{METADATA_ENTRY}' entry (it holds {shown})")
    if info.file_size > MAX_METADATA_BYTES:
        raise _not_a_model(
            display, f"its metadata entry is {info.file_size / 2**20:.0f} MiB (at most {MAX_METADATA_BYTES >> 20} MiB)"
        )
    _check_expansion(info, METADATA_ENTRY, display)
    meta_array = _read_array(archive, info, METADATA_ENTRY, display)
    if meta_array.dtype.kind != "U" or meta_array.ndim != 0:
        raise _not_a_model(display, f"'{METADATA_ENTRY}' is not a text entry")
    try:
        metadata = json.loads(str(meta_array))
    except json.JSONDecodeError as exc:
        raise _not_a_model(display, f"metadata is not valid JSON ({exc.msg})") from exc
    except RecursionError:
        raise _not_a_model(display, "metadata is nested too deeply") from None
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
    metadata.setdefault("extra", {})
    if not isinstance(metadata["extra"], dict) or not isinstance(metadata.get("config"), dict):
        raise _not_a_model(display, "metadata 'config' and 'extra' must be objects")
    return metadata


def _check_expansion(info: zipfile.ZipInfo, key: str, display: str) -> None:
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_EXPANSION * info.compress_size + _NPY_HEADER_BYTES:
        raise _not_a_model(
            display,
            f"entry '{key}' claims to expand from {info.compress_size:,} to {info.file_size:,} bytes "
            f"(more than {MAX_EXPANSION} times)",
        )


def _check_entry_size(info: zipfile.ZipInfo | None, key: str, shape: tuple[int, ...], dtype: str, display: str) -> None:
    """Before reading: the entry exists and its declared size fits the shape the metadata implies."""
    if info is None:
        raise DataError(f"model file {display} is incomplete: entry '{key}' is missing")
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if not nbytes <= info.file_size <= nbytes + _NPY_HEADER_BYTES:
        raise DataError(
            f"model file {display}: entry '{key}' holds {info.file_size:,} bytes, but the architecture in its "
            f"metadata needs {dtype}{list(shape)} ({nbytes:,} bytes)",
            hint="the metadata or the arrays were changed; train the model again",
        )
    _check_expansion(info, key, display)


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, display: str) -> np.ndarray:
    """One .npy entry, its header checked against the entry's size before anything is allocated."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with archive.open(info) as handle:
            version = np.lib.format.read_magic(handle)
            if version not in readers:
                raise _not_a_model(display, f"entry '{key}' is an .npy file of version {version}")
            shape, fortran, dtype = readers[version](handle)
            if dtype.hasobject:
                raise _not_a_model(display, "it contains object (pickled) arrays")
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes > info.file_size:
                raise _not_a_model(display, f"entry '{key}' claims {list(shape)} values but holds {info.file_size:,} bytes")
            data = handle.read(nbytes)
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise _not_a_model(display, f"damaged entry '{key}' ({type(exc).__name__})") from exc
    if len(data) != nbytes:
        raise _not_a_model(display, f"entry '{key}' is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def load_model(path: str | os.PathLike[str], data: bytes | None = None) -> tuple[MLP, dict]:
    """Load a model saved by :func:`save_model`; returns ``(model, extra)``.

    Uses ``np.load(path, allow_pickle=False)`` only. A missing, unreadable, corrupt or non-npz
    file, a foreign npz, one with object arrays, or one whose arrays do not fit the stored
    architecture raises :class:`~normcli.errors.DataError` naming the file. A FIFO or a pipe
    (``<(…)``, ``/dev/stdin``) is read whole first, up to :data:`MAX_STREAMED_MODEL_BYTES`;
    ``data`` is the file's content when the caller already read it.
    """
    from normcli.data.inputs import read_if_stream

    display = os.fspath(path)
    if data is None:
        data = read_if_stream(display, MAX_STREAMED_MODEL_BYTES, "model file")
    if data is not None:
        return _read_model(io.BytesIO(data), display)
    return _read_model(path, display)


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


def describe_model(path: str | os.PathLike[str], data: bytes | None = None) -> dict[str, Any]:
    """What a model file holds, as one JSON-able document: the architecture (``config``), the
    number of trained ``parameters``, and the metadata train stored (task, target, features and
    their encoding, classes, normalization stats, training settings and outcome). Validated as
    :func:`load_model` validates (``data``: the file's content, when already read)."""
    model, extra = load_model(path, data)
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
