"""The user's input arguments resolved into :class:`Source` objects: files, globs and streams.

``-`` is stdin; a path that cannot be memory-mapped or read twice (a FIFO, ``/dev/stdin``, a
process substitution ``<(…)``, a file under /proc) is read as a stream too. Streams are read once,
in order, in bounded memory (:mod:`normcli.data.streams`); files are scanned lazily by Polars.
Every file is checked before anything is read: it exists, is readable, is not a folder, and its
first bytes agree with its format (a Parquet file named ``.csv`` is reported, not misparsed).
Inputs named by URL (``s3://``, ``gs://``, ``az://``, ``http(s)://``) are checked the same way
through their store (:mod:`normcli.data.storage`), and globs on them list the bucket.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from normcli.data.formats import FORMATS, PARQUET_MAGIC, Format, ReadOptions, detect_format, sniff_compression
from normcli.data.storage import StorageOptions, concurrently, expand_url, is_url, read_head
from normcli.errors import DataError, UsageError

STDIN = "<stdin>"


class InputStream(io.RawIOBase):
    """A non-seekable input, read once: stdin, a FIFO, a pipe behind ``/dev/stdin``.

    :meth:`read` returns what is available (waiting only while nothing is), and :meth:`ready` says
    whether more can be read without waiting; so a reader can hand on what a slow producer has
    written so far instead of waiting for a whole chunk. :meth:`peek` looks at the first bytes.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream
        self._prefix = b""
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream (tests, the Python API)
            self._fd = None
        if self._fd is not None:
            _widen_pipe(self._fd)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        if size is None or size < 0:
            return self.readall()
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        if self._fd is None:
            return self._stream.read(size)
        return os.read(self._fd, size)

    def ready(self, wait: float = 0.05) -> bool:
        """Whether more can be read within ``wait`` seconds (a pause longer than that means a slow
        producer, whose rows should not be held back; a fast one is never idle that long)."""
        if self._prefix or self._fd is None:
            return True
        import select

        return bool(select.select([self._fd], [], [], wait)[0])

    def peek(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer at the end of the stream), left to be read again."""
        while len(self._prefix) < size:
            wanted = size - len(self._prefix)
            data = self._stream.read(wanted) if self._fd is None else os.read(self._fd, wanted)
            if not data:
                break
            self._prefix += data
        return self._prefix[:size]


def _widen_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe buffer (64 KiB by default): 16 times fewer reads and context
    switches between normcli and the program writing into the pipe. Harmless where refused."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


@dataclass(frozen=True)
class Source:
    """One input: what the user called it, where it is, its format, and an open stream if it is one."""

    display: str
    path: str | None
    format: Format
    compression: str | None = None
    stream: InputStream | None = None

    @property
    def is_stream(self) -> bool:
        return self.stream is not None

    @property
    def is_url(self) -> bool:
        """Whether the input is an object in a store (read through its URL)."""
        return is_url(self.path)


def expand_patterns(patterns: Sequence[str], storage: StorageOptions = ()) -> list[str]:
    """Paths from the user's arguments: globs expanded (sorted; on a bucket, by listing it),
    ``-`` kept, order preserved."""
    paths: list[str] = []
    for pattern in patterns:
        if is_url(pattern):
            paths.extend(expand_url(pattern, storage))
        elif pattern != "-" and glob.has_magic(pattern) and not os.path.exists(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise DataError(f"no file matches '{pattern}'", hint="check the pattern and folder")
            paths.extend(matches)
        else:
            paths.append(pattern)
    return paths


def named_files(patterns: Sequence[str]) -> list[str]:
    """The local files among the user's input arguments (globs expanded; ``-`` and URLs left out)."""
    return [name for name in expand_patterns([p for p in patterns if not is_url(p)]) if name != "-"]


@contextlib.contextmanager
def open_sources(
    patterns: Sequence[str],
    options: ReadOptions,
    *,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> Iterator[list[Source]]:
    """Resolve input arguments into sources, opening streams; close what was opened afterwards.

    No arguments means stdin. A terminal on stdin is a usage error rather than a hang.
    """
    patterns = list(patterns) or ["-"]
    names = expand_patterns(patterns, options.storage)
    urls = [name for name in names if is_url(name)]
    heads = dict(zip(urls, concurrently(lambda url: read_head(url, 4, options.storage), urls, urls), strict=True))
    if names.count("-") > 1:
        raise UsageError("stdin ('-') can be read only once", hint="name it once among the inputs")
    opened: list[int] = []
    try:
        sources = []
        for name in names:
            if name == "-":
                if stdin_is_terminal:
                    raise UsageError(
                        "no input given and stdin is a terminal",
                        hint="name an input file, or pipe data in: normcli ... < data.csv",
                    )
                stream = stdin if stdin is not None else sys.stdin.buffer
                sources.append(_stream_source(STDIN, stream, options))
                continue
            if is_url(name):
                fmt, compression = detect_format(name, options.format)
                _sniff(name, heads[name], fmt, compression)
                sources.append(Source(name, name, fmt, compression))
                continue
            info = _check_readable(name)
            if _is_stream_path(name, info):
                fd = os.open(name, os.O_RDONLY)
                opened.append(fd)
                sources.append(_stream_source(name, os.fdopen(fd, "rb", buffering=0, closefd=False), options, name))
                continue
            fmt, compression = detect_format(name, options.format)
            _check_header_option(name, fmt, options)
            _sniff_file(name, fmt, compression)
            # absolute, so that a Dask worker in another folder reads the same file
            sources.append(Source(name, os.path.abspath(name), fmt, compression))
        yield sources
    finally:
        for fd in opened:
            os.close(fd)


def reads_stdin(patterns: Sequence[str], stdin: IO[bytes] | None = None) -> bool:
    """Whether these input arguments read stdin: none at all, ``-``, or a path that is stdin's own
    pipe or device (``/dev/stdin``)."""
    if not patterns or "-" in patterns:
        return True
    try:
        fd = (stdin if stdin is not None else sys.stdin.buffer).fileno()
        own = os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        return False
    if stat.S_ISREG(own.st_mode):
        return False
    for name in patterns:
        with contextlib.suppress(OSError):
            info = os.stat(name)
            if (info.st_dev, info.st_ino) == (own.st_dev, own.st_ino):
                return True
    return False


def read_stdin_text(
    stdin: IO[bytes] | None, stdin_is_terminal: bool, data: Sequence[str] | None, what: str
) -> str:
    """All of stdin as UTF-8 text, for a small document named ``-`` (a stats file).

    Refused when the command's data (``data``) read stdin too, or stdin is a terminal.
    """
    if data is not None and reads_stdin(data, stdin):
        raise UsageError(
            f"stdin ('-') cannot carry both the data and the {what}",
            hint=f"name the data files, or give the {what} as a file",
        )
    if stdin_is_terminal:
        raise UsageError(
            f"the {what} should come from stdin ('-'), but stdin is a terminal",
            hint="pipe them in (normcli fit data.csv -o - | normcli ...), or name a file",
        )
    raw = (stdin if stdin is not None else sys.stdin.buffer).read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{STDIN}: the {what} are not UTF-8 text") from None


def _stream_source(display: str, stream: IO[bytes], options: ReadOptions, name: str | None = None) -> Source:
    """A stream's source: the format from ``--format`` (or the name), compression from its first bytes."""
    if options.format is not None:
        fmt = FORMATS[options.format]
    elif name is not None:
        try:
            fmt = detect_format(name, None)[0]
        except UsageError:
            fmt = FORMATS["csv"]
    else:
        fmt = FORMATS["csv"]
    _check_header_option(display, fmt, options)
    wrapped = InputStream(stream)
    head = wrapped.peek(4)
    compression = sniff_compression(head)
    if head.startswith(PARQUET_MAGIC) and fmt.name != "parquet":
        raise DataError(f"{display}: is Parquet data, not {fmt.name.upper()}", hint="pass --format parquet")
    return Source(display, None, fmt, compression, wrapped)


def _check_header_option(name: str, fmt: Format, options: ReadOptions) -> None:
    if not options.has_header and fmt.name not in ("csv", "tsv"):
        raise UsageError(f"{name}: --no-headers applies to CSV and TSV, not {fmt.name}", hint="drop --no-headers")


def _check_readable(name: str) -> os.stat_result:
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise DataError(f"{name}: no such file", hint="check the path") from None
    except PermissionError:
        raise DataError(f"{name}: permission denied", hint="check the file's permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{name}: is a directory", hint="name the files inside it, or a glob")
    if not os.access(name, os.R_OK):
        raise DataError(f"{name}: permission denied", hint="check the file's permissions")
    return info


def _is_stream_path(name: str, info: os.stat_result) -> bool:
    """Whether a path must be read as a stream: not a regular file (a FIFO, a character device,
    a pipe behind /dev/stdin), or a /proc file whose size says 0 although it has content."""
    if not stat.S_ISREG(info.st_mode):
        return True
    return info.st_size == 0 and os.path.realpath(name).startswith("/proc/")


def _sniff_file(name: str, fmt: Format, compression: str | None) -> None:
    """Refuse a file whose first bytes contradict its format, before Polars misreads it."""
    with open(name, "rb") as handle:
        head = handle.read(4)
    _sniff(name, head, fmt, compression)


def _sniff(name: str, head: bytes, fmt: Format, compression: str | None) -> None:
    """Refuse an input whose first bytes ``head`` contradict its format."""
    is_parquet = head == PARQUET_MAGIC
    if not head:
        hint = {"parquet": "expected a Parquet file", "ndjson": "expected one JSON object per line"}.get(
            fmt.name, "expected a header row and data"
        )
        raise DataError(f"{name}: file is empty", hint=hint)
    if fmt.name == "parquet" and not is_parquet:
        raise DataError(f"{name}: not a Parquet file (no PAR1 header)", hint="if it is CSV, rename it or pass --format csv")
    if fmt.name != "parquet" and is_parquet:
        raise DataError(
            f"{name}: is a Parquet file, not {fmt.name.upper()}",
            hint="rename it to .parquet or pass --format parquet",
        )
    kind = sniff_compression(head)
    if compression is None and kind is not None:
        raise DataError(
            f"{name}: is {kind}-compressed but has no compressed extension",
            hint=f"rename it to end in .{fmt.name}.{'gz' if kind == 'gzip' else 'zst'}",
        )


def has_no_data_rows(source: Source, options: ReadOptions) -> bool:
    """Whether a plain text file holds a header and nothing else (a cheap look at its first bytes;
    other files and streams say so when read)."""
    if source.path is None or not source.format.text or source.compression is not None or source.format.name == "ndjson":
        return False
    if not options.has_header:
        return False  # an empty file was refused when opened
    if source.is_url:
        head = read_head(source.path, (1 << 16) + 1, options.storage)
        if len(head) > 1 << 16:
            return False
    else:
        with open(source.path, "rb") as handle:
            head = handle.read(1 << 16)
            if handle.read(1):
                return False
    quoted = False
    for index, byte in enumerate(head):
        if byte == 0x22:
            quoted = not quoted
        elif byte == 0x0A and not quoted:
            return not head[index + 1 :].strip()
    return True


def describe(sources: Sequence[Source]) -> str:
    """A short name of the inputs for messages: the file, or the first file and a count."""
    if len(sources) == 1:
        return sources[0].display
    return f"{sources[0].display} (+{len(sources) - 1} more)"
