"""Writing outputs so that a failure never leaves a partial file and an input is never overwritten.

Every file normcli writes goes to a temporary file beside its target and is renamed onto it only
when the whole write succeeded (:func:`atomic_path`); before any work, :func:`check_output_target`
refuses a target that cannot be written or that is one of the command's inputs.

An output named by URL (``s3://bucket/key``) is written straight to its key: an object store makes
an object visible only when its upload completes (a single PUT, or a multipart upload that is
completed last and aborted on failure), so readers see the old object or the whole new one, never
a part — the same guarantee as the local rename. Dataset folders are :mod:`normcli.data.dataset`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from normcli.data.diagnostics import write_failure
from normcli.data.formats import FORMATS, Format, detect_format
from normcli.data.storage import StorageOptions, check_scheme, is_url, store_errors, write_url
from normcli.errors import DataError, UsageError

TEMP_SUFFIX = ".normcli-tmp"
"""Suffix of the temporary files written next to a target before the final rename."""


def output_format(path: str | None, override: str | None) -> tuple[Format, str | None]:
    """Format and compression for an output: ``--output-format``, else the extension, else CSV."""
    if override is not None and override not in FORMATS:
        raise UsageError(f"unknown output format '{override}'", hint=f"choose one of: {', '.join(FORMATS)}")
    if path is None or path == "-":
        return FORMATS[override or "csv"], None
    if not is_url(path) and os.path.isdir(path):
        raise DataError(f"{path}: is a directory", hint="name an output file")
    return detect_format(path, override, "--output-format")


def check_output_target(target: str, inputs: Sequence[str | os.PathLike[str]] = ()) -> Path | str:
    """Check before any work that ``target`` can be written and is none of the inputs.

    Returns the target as a :class:`Path`, or as the URL string it is (the store's permissions are
    known only when writing)."""
    if is_url(target):
        check_scheme(target)
        if target in [str(source) for source in inputs]:
            raise UsageError(f"{target}: output is one of the inputs", hint="write to a new key; normcli never overwrites its inputs")
        return target
    path = Path(target)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(f"{target}: output folder '{folder}' does not exist", hint="create it first")
    if path.is_dir():
        raise DataError(f"{target}: is a directory", hint="name an output file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{target}: folder '{folder}' is not writable", hint="choose another -o")
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(f"{target}: is not writable", hint="choose another -o or fix permissions")
    for source in inputs:
        if path.exists() and os.path.exists(source) and os.path.samefile(path, source):
            raise UsageError(
                f"{target}: output is one of the inputs",
                hint="write to a new file; normcli never overwrites its inputs",
            )
    return path


def check_replaceable(target: str, is_kind: Callable[[Path], bool], kind: str, force: bool = False) -> None:
    """Refuse to replace an existing file that is not a ``kind`` (``is_kind`` says which files are):
    ``fit -o stats.json`` must not overwrite someone's data, ``train -o p.json`` a stats file. An
    empty file or a device (``/dev/null``) may be replaced; ``force`` (``--force``) allows any."""
    path = Path(target)
    if force or not path.is_file() or path.stat().st_size == 0 or is_kind(path):
        return
    raise UsageError(
        f"{target}: exists and is not a {kind}; normcli will not replace it",
        hint="choose another -o, or pass --force to replace it",
    )


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path | str]:
    """Yield a temporary path beside ``target``; move it onto ``target`` only if the block succeeds.

    The temporary file is named ``.<target>.<random>.normcli-tmp`` so a leftover after SIGKILL is
    recognisable. On any exception (or KeyboardInterrupt) it is removed and ``target`` is untouched;
    a failed write (disk full, file-size limit) becomes a :class:`DataError` naming ``target``.
    A URL is yielded as it is: the store publishes the object only once it is complete.
    """
    if is_url(target):
        with store_errors(str(target)):
            yield str(target)
        return
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent or Path("."))
    except OSError as exc:
        raise DataError(f"cannot write {target}: {exc.strerror or exc}", hint="choose another output") from None
    os.close(fd)
    temp = Path(name)
    try:
        with writing(str(target), hint="free some space or choose another output; nothing was changed"):
            yield temp
            _match_default_permissions(temp)
            os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def writing(name: str, hint: str | None = None) -> Iterator[None]:
    """Turn a failed write (disk full, file-size limit, read-only) into ``cannot write NAME: ...``."""
    try:
        yield
    except Exception as exc:
        failure = write_failure(exc)
        if failure is None or isinstance(exc, DataError):
            raise
        raise DataError(f"cannot write {name}: {failure}", hint=hint) from exc


def _match_default_permissions(path: Path) -> None:
    """mkstemp creates 0600 files; give the final file the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes, storage: StorageOptions = ()) -> None:
    """Write ``data`` to ``target`` atomically (temporary file in the same folder, then rename; on
    a store, one PUT)."""
    if is_url(target):
        write_url(str(target), data, storage)
        return
    with atomic_path(target) as temp:
        Path(temp).write_bytes(data)


def write_text_output(text: str, target: str, stdout: IO[bytes] | None = None, storage: StorageOptions = ()) -> None:
    """Write ``text`` to ``target`` atomically, or to the binary ``stdout`` when ``target`` is ``-``."""
    if target == "-":
        stream = stdout if stdout is not None else sys.stdout.buffer
        stream.write(text.encode())
        stream.flush()
        return
    check_output_target(target)
    atomic_write_bytes(target, text.encode(), storage)
