"""Writing outputs: never a partial file, never an input overwritten, a command's files all or none.

What a target names decides how it is written (:func:`resolve_target`):

* a regular file, or a name that does not exist yet: the bytes go to a temporary file beside it,
  renamed onto it only when the whole write succeeded (:func:`atomic_path`). A replaced file keeps
  its permission bits, owner and group (where the user may set them) and extended attributes.
* a symbolic link: followed (to any depth); the file it points to is replaced as above and the link
  stays a link, as the shell's ``>`` would do.
* a character device (``/dev/null``, a terminal), a FIFO, or a name of an open descriptor
  (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``): opened and written directly. A rename
  would replace the device node by a regular file (as root, ``-o /dev/null`` broke /dev/null for
  the whole machine); such outputs are streams, and like stdout they cannot be taken back.
* a folder, a name ending in ``/``, a block device or a socket: refused before any work.

Within :func:`committed_together` (the CLI opens one per command) the renames wait until the
command has finished, after its stdout was written: ``train -o m.npz --metrics-out m.json`` that
fails on the metrics or on stdout leaves ``m.npz`` as it was. :func:`check_distinct_outputs` makes
sure one command's outputs are different files. Before any work, :func:`check_output_target`
refuses a target that cannot be written or that is one of the command's inputs.

An output named by URL (``s3://bucket/key``) is written straight to its key: an object store makes
an object visible only when its upload completes (a single PUT, or a multipart upload that is
completed last and aborted on failure), so readers see the old object or the whole new one, never
a part — the same guarantee as the local rename. Dataset folders (``-o out/`` for transform and
predict) are :mod:`normcli.data.dataset`; for every other output a name ending in ``/`` is refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from normcli.data.diagnostics import write_failure
from normcli.data.formats import COMPRESSIONS, FORMATS, Format, detect_format
from normcli.data.inputs import STANDARD_STREAMS, follow_links
from normcli.data.storage import StorageOptions, check_scheme, is_url, store_errors, write_url
from normcli.errors import DataError, UsageError

TEMP_SUFFIX = ".normcli-tmp"
"""Suffix of the temporary files written next to a target before the final rename."""

_RANDOM_CHARACTERS = 8
"""Length of the random part :func:`tempfile.mkstemp` puts in a name."""


_NOTHING_CHANGED = "free some space or choose another output; nothing was changed"


@dataclass(frozen=True)
class Target:
    """Where an output goes: what the user called it, the path written, and whether directly."""

    display: str
    path: Path
    direct: bool = False
    """Written in place (a device, a FIFO, an open descriptor), not via a temporary file."""


def resolve_target(name: str) -> Target:
    """What the output ``name`` is, by the rules in this module's docstring (nothing is written)."""
    if name.endswith(("/", os.sep)):
        raise UsageError(
            f"{name}: ends in '/', so it names a folder",
            hint="name the output file itself, e.g. -o folder/out.csv",
        )
    final, descriptor = follow_links(name)
    if descriptor:
        _check_descriptor(name, final)
        return Target(name, Path(name), direct=True)
    try:
        info = os.stat(final)
    except FileNotFoundError:
        return Target(name, Path(final))
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise _name_too_long(name, Path(final)) from None
        if exc.errno == errno.ENOTDIR:
            raise DataError(f"{name}: a part of the path is a file, not a folder", hint="check the -o path") from None
        raise DataError(f"cannot write {name}: {exc.strerror or exc}", hint="choose another output") from None
    if stat.S_ISREG(info.st_mode):
        return Target(name, Path(final))
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{name}: is a directory", hint="name an output file")
    if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        return Target(name, Path(final), direct=True)
    kind = "block device" if stat.S_ISBLK(info.st_mode) else "socket" if stat.S_ISSOCK(info.st_mode) else "special file"
    raise DataError(
        f"{name}: is a {kind}", hint="normcli writes files, pipes (FIFOs) and character devices such as /dev/null"
    )


def _check_descriptor(name: str, path: str) -> None:
    """A descriptor of this process must be one its parent (the shell) gave it.

    Descriptors normcli opens itself (an input being read, a pipe of its own) are opened
    close-on-exec, so they are not inheritable; one the shell opened (``3> out.csv``, stdout) is.
    Without this check ``-o /dev/stdout`` with stdout closed (``>&-``) would reopen whatever file
    happened to take descriptor 1 — an input, truncated.
    """
    if path in STANDARD_STREAMS:
        number = STANDARD_STREAMS.index(path)
    elif _own_descriptor(path):
        number = int(path.rsplit("/", 1)[1])
    else:
        return
    try:
        inherited = os.get_inheritable(number)
    except OSError:  # not open at all
        inherited = False
    if not inherited:
        raise DataError(
            f"{name}: names file descriptor {number}, which the shell did not open",
            hint=f"open it in the shell (e.g. {number}> out.csv), or name a file",
        )


def _own_descriptor(path: str) -> bool:
    """Whether a descriptor path is one of this process's (not another process's /proc/PID/fd)."""
    match = re.match(r"^/proc/(self|thread-self|\d+)/", path)
    return match is None or match.group(1) in ("self", "thread-self") or int(match.group(1)) == os.getpid()


def stdout_stream(stdout: IO[bytes] | None) -> IO[bytes]:
    """The binary stdout to write data to (``stdout`` or the process's); a closed one is an error."""
    from normcli.context import ClosedStdout, _binary

    stream = stdout if stdout is not None else _binary(sys.stdout)
    if isinstance(stream, ClosedStdout):
        stream.write(b"")  # raises the clean error
    return stream


def _name_max(folder: Path) -> int:
    """The longest file name (in bytes) the folder's file system allows."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _name_too_long(display: str, path: Path) -> DataError:
    limit = _name_max(path.parent) if path.parent.is_dir() else 255
    return DataError(
        f"{display}: the file name is too long ({len(os.fsencode(path.name))} bytes; the file system allows {limit})",
        hint="choose a shorter name",
    )


# --------------------------------------------------------------------------- checks before any work


def output_format(path: str | None, override: str | None) -> tuple[Format, str | None]:
    """Format and compression for an output: ``--output-format``, else the extension, else CSV.

    CSV is also the default for a device or pipe named without an extension (``-o /dev/null``).
    Parquet compresses its own pages, so a ``.parquet.gz`` name is refused rather than written as
    plain Parquet under a compressed name.
    """
    if override is not None and override not in FORMATS:
        raise UsageError(f"unknown output format '{override}'", hint=f"choose one of: {', '.join(FORMATS)}")
    if path is None or path == "-":
        return FORMATS[override or "csv"], None
    try:
        fmt, compression = detect_format(path, override, "--output-format")
    except UsageError:
        if is_url(path) or not resolve_target(path).direct:
            raise
        return FORMATS["csv"], None
    if compression is not None and not fmt.text:
        raise UsageError(
            f"{path}: {fmt.name} output cannot be {compression}-compressed as a whole",
            hint=f"{fmt.name} compresses its own pages: name it without the .{path.rsplit('.', 1)[-1]} ending",
        )
    return fmt, compression


def check_output_target(target: str, inputs: Sequence[str | os.PathLike[str]] = (), *, plain: str | None = None) -> Path | str:
    """Check before any work that ``target`` can be written and is none of the inputs.

    ``plain`` names what is written when it is never compressed (``"a stats file"``): a name
    ending in ``.gz`` or ``.zst`` is then refused rather than written uncompressed under it.
    Returns the target as a :class:`Path`, or as the URL string it is (the store's permissions are
    known only when writing)."""
    if plain is not None:
        check_uncompressed_name(target, plain)
    if is_url(target):
        check_scheme(target)
        if target in [str(source) for source in inputs]:
            raise UsageError(f"{target}: output is one of the inputs", hint="write to a new key; normcli never overwrites its inputs")
        return target
    resolved = resolve_target(target)
    path = resolved.path
    if resolved.direct:
        if not os.access(path, os.W_OK):
            raise DataError(f"{target}: is not writable", hint="choose another -o or fix permissions")
    else:
        folder = path.parent
        shown = folder if os.path.islink(target) else Path(target).parent
        if not folder.is_dir():
            raise DataError(f"{target}: output folder '{shown}' does not exist", hint="create it first")
        if len(os.fsencode(path.name)) > _name_max(folder):
            raise _name_too_long(target, path)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise DataError(f"{target}: folder '{shown}' is not writable", hint="choose another -o")
        if path.exists() and not os.access(path, os.W_OK):
            raise DataError(f"{target}: is not writable", hint="choose another -o or fix permissions")
    if path.exists():
        for source in inputs:
            if os.path.exists(source) and os.path.samefile(path, source):
                raise UsageError(
                    f"{target}: output is one of the inputs",
                    hint="write to a new file; normcli never overwrites its inputs",
                )
    return Path(target)


def check_uncompressed_name(target: str, what: str) -> None:
    """Refuse a compressed name (``stats.json.gz``) for an output normcli writes uncompressed: the
    file would claim a compression it does not have (only data outputs are compressed on the way)."""
    suffix = Path(target).suffix.lower()
    if suffix in COMPRESSIONS:
        raise UsageError(
            f"{target}: {what} is written uncompressed, but the name ends in {suffix} ({COMPRESSIONS[suffix]})",
            hint=f"name it without the {suffix} ending (compress it afterwards if you like)",
        )


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


def check_output_columns(schema: Mapping[str, object], fmt: Format, hint: str = "") -> None:
    """Refuse columns the output format cannot hold (lists and structs in CSV/TSV), before any work."""
    if fmt.name not in ("csv", "tsv"):
        return
    for name, dtype in schema.items():
        if str(dtype).startswith(("List", "Array", "Struct", "Object")):
            raise UsageError(
                f"column '{name}' is {dtype}: {fmt.name.upper()} cannot hold nested values",
                hint="write Parquet or NDJSON instead (-o out.parquet)" + (f", {hint}" if hint else ""),
            )


def check_distinct_outputs(outputs: Mapping[str, str | None]) -> None:
    """Refuse two options of one command naming the same file (``-o m.npz --metrics-out m.npz``).

    ``outputs`` maps each option to its value (None: not given; ``-``: stdout, checked by the
    command). Devices and pipes written directly may be shared (two outputs to /dev/null).
    """
    seen: dict[str, str] = {}
    for option, name in outputs.items():
        if name is None or name == "-":
            continue
        if is_url(name):
            key = name
        else:
            resolved = resolve_target(name)
            if resolved.direct:
                continue
            key = os.path.normcase(str(resolved.path))
        for other, other_key in seen.items():
            same = key == other_key or (
                not is_url(name) and os.path.exists(key) and os.path.exists(other_key) and os.path.samefile(key, other_key)
            )
            if same:
                raise UsageError(
                    f"{other} and {option} both name {name}",
                    hint="give each output of the command its own file",
                )
        seen[option] = key


# --------------------------------------------------------------------------- writing


@dataclass
class _Commit:
    """Temporary files waiting to be renamed onto their targets when the command succeeds."""

    pending: list[tuple[Path, Path, str]] = field(default_factory=list)

    def add(self, temp: Path, final: Path, display: str) -> None:
        for _, other, name in self.pending:
            if other == final:
                raise UsageError(f"{display} is written twice by one command (also as {name})", hint="give each output its own file")
        self.pending.append((temp, final, display))

    def commit(self) -> None:
        try:
            while self.pending:
                temp, final, display = self.pending[0]
                _replace(temp, final, display)
                self.pending.pop(0)
        finally:
            self.discard()

    def discard(self) -> None:
        for temp, _, _ in self.pending:
            temp.unlink(missing_ok=True)
        self.pending.clear()


_COMMIT: contextvars.ContextVar[_Commit | None] = contextvars.ContextVar("normcli_commit", default=None)


@contextlib.contextmanager
def committed_together() -> Iterator[None]:
    """Inside this block, files written with :func:`atomic_path` are renamed into place only at its
    end, all together, and only if the block succeeds; on any error none of them is.

    The CLI runs each command in one such block, so a command that fails late (a full disk for its
    second output, a closed or full stdout) leaves all its targets as they were. Nested blocks
    join the outer one.
    """
    if _COMMIT.get() is not None:
        yield
        return
    group = _Commit()
    token = _COMMIT.set(group)
    try:
        yield
    except BaseException:
        group.discard()
        raise
    else:
        group.commit()
    finally:
        _COMMIT.reset(token)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path | str]:
    """Yield the path to write ``target``'s bytes to; put them in place only if the block succeeds.

    For a regular file that is a temporary file named ``.<target>.<random>.normcli-tmp`` beside
    it (the name shortened so that it fits the file system's limit), so a leftover after SIGKILL
    is recognisable. On any exception (or KeyboardInterrupt) it is removed and ``target`` is
    untouched; a failed write (disk full, file-size limit) becomes a :class:`DataError` naming
    ``target``. Devices, FIFOs and descriptors are yielded as they are (written directly), and so
    is a URL: the store publishes the object only once it is complete.
    """
    display = os.fspath(target)
    if is_url(display):  # the store publishes the object only once it is complete
        with store_errors(display):
            yield display  # type: ignore[misc]
        return
    resolved = resolve_target(display)
    if resolved.direct:
        with writing(display):
            yield resolved.path
        return
    temp = _temporary(resolved.path, display)
    try:
        with writing(display, hint=_NOTHING_CHANGED):
            yield temp
        group = _COMMIT.get()
        if group is not None:
            group.add(temp, resolved.path, display)
        else:
            _replace(temp, resolved.path, display)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _temporary(final: Path, display: str) -> Path:
    """A new empty file beside ``final`` whose name fits the file system's length limit."""
    room = _name_max(final.parent) - len(TEMP_SUFFIX) - _RANDOM_CHARACTERS - 2
    stem = os.fsencode(final.name)[: max(room, 1)].decode("utf-8", errors="ignore") or "out"
    try:
        fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=TEMP_SUFFIX, dir=final.parent)
    except OSError as exc:
        raise DataError(f"cannot write {display}: {exc.strerror or exc}", hint="choose another output") from None
    os.close(fd)
    return Path(name)


def _replace(temp: Path, final: Path, display: str) -> None:
    """Give ``temp`` the replaced file's attributes and rename it onto ``final``."""
    try:
        _carry_attributes(final, temp)
        os.replace(temp, final)
    except OSError as exc:
        raise DataError(f"cannot write {display}: {exc.strerror or exc}", hint="choose another output") from None


def _carry_attributes(final: Path, temp: Path) -> None:
    """The replaced file's mode, owner, group and extended attributes onto ``temp`` (mkstemp makes
    0600 files); a new file gets the usual umask-based mode. Owner and attributes are kept where
    the user may set them (root: always), silently skipped where not."""
    try:
        info = os.stat(final)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        return
    for uid, gid in ((info.st_uid, info.st_gid), (-1, info.st_gid)):
        try:
            os.chown(temp, uid, gid)
            break
        except OSError:
            continue
    os.chmod(temp, stat.S_IMODE(info.st_mode))  # after chown, which may clear set-id bits
    with contextlib.suppress(OSError, AttributeError):
        for key in os.listxattr(final):
            with contextlib.suppress(OSError):
                os.setxattr(temp, key, os.getxattr(final, key))


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
        stream = stdout_stream(stdout)
        with writing("stdout"):
            stream.write(text.encode())
            stream.flush()
        return
    check_output_target(target)
    atomic_write_bytes(target, text.encode(), storage)
