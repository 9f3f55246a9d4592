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
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from normcli.data.formats import FORMATS, PARQUET_MAGIC, Format, ReadOptions, detect_format, sniff_compression
from normcli.data.storage import StorageOptions, concurrently, expand_url, is_url, read_head
from normcli.errors import DataError, UsageError

STDIN = "<stdin>"

MAX_COLUMNS = 100_000
"""Inputs with more columns are refused: each column costs Polars about half a millisecond per
block of rows and normcli a few KB, so 100,000 columns take about a minute per 65,536 rows and
half a GB; a million-column header (12 MB of CSV) used to take 6 GB."""

MAX_HEADER_BYTES = 32 << 20
"""A first line (a CSV header) longer than this is refused before it is parsed: 100,000 columns
with names of 300 characters fit; a file without line breaks (binary data) does not."""

MAX_RECORD_BYTES = 256 << 20
"""A record of a stream longer than this is refused rather than held in memory while its end is
awaited (an unclosed quote makes the rest of a CSV stream one record)."""

_DESCRIPTOR = re.compile(r"^/(?:proc/(?:self|thread-self|\d+)(?:/task/\d+)?|dev)/fd/\d+$")
STANDARD_STREAMS = ("/dev/stdin", "/dev/stdout", "/dev/stderr")
"""Names of this process's standard descriptors (0, 1, 2)."""


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


def follow_links(name: str) -> tuple[str, bool]:
    """The path ``name`` leads to through symbolic links, and whether it names an open descriptor.

    Folders are resolved with :func:`os.path.realpath`; the last component is followed step by
    step, so that ``/dev/stdout`` → ``/proc/self/fd/1`` is seen to be a descriptor before it is
    resolved into whatever that descriptor is (a pipe, a terminal, the file of a ``>``).
    """
    current = os.path.abspath(name)
    for _ in range(64):
        if current in STANDARD_STREAMS or _DESCRIPTOR.match(current):
            return current, True
        folder, base = os.path.split(current)
        current = os.path.join(os.path.realpath(folder), base)
        if _DESCRIPTOR.match(current):
            return current, True
        if not os.path.islink(current):
            return current, False
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    raise DataError(f"{name}: too many levels of symbolic links", hint="check where the link points")


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
    stdin: IO[bytes] | None, stdin_is_terminal: bool, data: Sequence[str] | None, what: str, limit: int | None = None
) -> str:
    """All of stdin as UTF-8 text, for a small document named ``-`` (a stats file).

    Refused when the command's data (``data``) read stdin too, or stdin is a terminal, or it is
    longer than ``limit`` bytes (read no further: ``cat /dev/zero | ... -s -`` must end).
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
    stream = stdin if stdin is not None else sys.stdin.buffer
    raw = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(raw) > limit:
        raise DataError(f"{STDIN}: the {what} are longer than {limit >> 20} MiB, which they never are", hint=f"is stdin the {what}?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if raw.startswith(b"PK\x03\x04"):  # a zip archive: a model (.npz), which '-' never carries
            raise DataError(
                f"{STDIN}: holds a zip archive (a model?), not {what}",
                hint="'-' is for stats; give a model as a file or a pipe path (e.g. <(cat model.npz))",
            ) from None
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
    a pipe behind /dev/stdin), a name of an open descriptor (``/dev/stdin < data.csv`` is read as
    ``-`` is), or a /proc file whose size says 0 although it has content."""
    if not stat.S_ISREG(info.st_mode) or follow_links(name)[1]:
        return True
    return info.st_size == 0 and os.path.realpath(name).startswith("/proc/")


MAX_STREAMED_MODEL_BYTES = 1 << 30
"""A model read from a pipe (``--model <(…)``, a FIFO) is read into memory first (a zip archive
is read from its end); more than this is refused. Here, not in the model module, so that
``inspect`` can size a pipe without importing numpy."""


def read_if_stream(name: str, limit: int | Callable[[bytes], int], what: str) -> bytes | None:
    """All the bytes of ``name`` when it must be read as a stream (a FIFO, ``<(…)``, ``/dev/stdin``
    on a pipe), for a file that must be read whole and cannot be read from a pipe in place (a zip
    archive is read from its end); None for a regular file or a name that cannot be opened (the
    caller reports it). More than ``limit`` bytes are refused, so ``<(cat /dev/zero)`` ends; a
    callable ``limit`` is given the first 4 bytes (a kind of file may have its own limit)."""
    try:
        info = os.stat(name)
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(info.st_mode) or not _is_stream_path(name, info):
        return None
    try:
        with open(name, "rb") as handle:
            data = handle.read(4)
            if callable(limit):
                limit = limit(data)
            data += handle.read(max(limit - len(data), 0) + 1)
    except OSError:
        return None
    if len(data) > limit:
        raise DataError(f"{name}: the stream holds more than {limit >> 20} MiB, more than any {what}", hint=f"is it a {what}?")
    return data


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
        kind = sniff_compression(head)
        if kind is not None:
            raise DataError(f"{name}: is {kind}-compressed; normcli reads Parquet files as they are", hint=f"decompress it first ({'gunzip' if kind == 'gzip' else 'unzstd'})")
        raise DataError(f"{name}: not a Parquet file (no PAR1 header)", hint="if it is CSV, rename it or pass --format csv")
    if fmt.name != "parquet" and is_parquet:
        raise DataError(
            f"{name}: is a Parquet file, not {fmt.name.upper()}",
            hint="rename it to .parquet or pass --format parquet",
        )
    kind = sniff_compression(head)
    if compression is not None and kind != compression:
        raise DataError(
            f"{name}: is named as {compression}-compressed but is not",
            hint=f"rename it without the compressed ending, e.g. .{fmt.name}",
        )
    if compression is None and kind is not None:
        raise DataError(
            f"{name}: is {kind}-compressed but has no compressed extension",
            hint=f"rename it to end in .{fmt.name}.{'gz' if kind == 'gzip' else 'zst'}",
        )


def check_header_width(source: Source, options: ReadOptions) -> None:
    """Look at a text file's first line before Polars infers a schema of every column: refuse one
    too long or with too many fields (reading at most :data:`MAX_HEADER_BYTES` of it), and text
    that is not UTF-8 lines (UTF-16, NUL bytes, CR-only line breaks, compressed Parquet)."""
    if source.path is None or not source.format.text:
        return
    try:
        with _open_text_file(source, options) as handle:
            line = _first_line(handle)
    except (OSError, EOFError, ValueError) as exc:  # a truncated or corrupt compressed file
        raise DataError(
            f"{source.display}: compressed data ends unexpectedly or is corrupt ({exc or type(exc).__name__})",
            hint="the file is probably truncated; copy or download it again",
        ) from None
    check_header_line(line, source, options)


def _first_line(handle: IO[bytes]) -> bytes:
    """The bytes up to the first line break (included), or the first :data:`MAX_HEADER_BYTES` + 1."""
    line = b""
    while len(line) <= MAX_HEADER_BYTES:
        piece = handle.read(1 << 16)
        if not piece:
            break
        end = piece.find(b"\n")
        if end >= 0:
            return line + piece[: end + 1]
        line += piece
    return line


def check_header_line(line: bytes, source: Source, options: ReadOptions) -> None:
    """The first line of a text input: its encoding and line breaks (:func:`check_text`), then the
    header-size limits (:data:`MAX_HEADER_BYTES`, :data:`MAX_COLUMNS`) of CSV/TSV."""
    check_text(line, source.display)
    if b"\r" in line.rstrip(b"\r\n"):
        raise DataError(
            f"{source.display}: has CR-only line breaks (old Mac text): the whole file reads as one line",
            hint=r"convert them: tr '\r' '\n' < in.csv > out.csv",
        )
    if source.format.name not in ("csv", "tsv"):
        return
    if len(line) > MAX_HEADER_BYTES:
        raise DataError(
            f"{source.display}: the first line is longer than {MAX_HEADER_BYTES >> 20} MiB",
            hint="is it binary data, or a file without line breaks? A header row of column names is expected",
        )
    delimiter = source.format.delimiter(options)
    fields = line.count(delimiter.encode()) + 1
    if fields > MAX_COLUMNS:  # an upper bound (quoted separators count too): count exactly
        import csv

        text = line.decode("utf-8", errors="replace")
        fields = len(next(csv.reader([text.rstrip("\r\n")], delimiter=delimiter), []))
    if fields > MAX_COLUMNS:
        raise_too_wide(source, fields)


_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"), (b"\xff\xfe", "UTF-16LE"), (b"\xfe\xff", "UTF-16BE")
)


def check_text(head: bytes, display: str) -> None:
    """Refuse the start of a text input that is not UTF-8 text: UTF-16/32 (with a byte-order mark,
    or ASCII with every other byte NUL), other bytes with NULs (binary data), Parquet bytes."""
    if head.startswith(PARQUET_MAGIC):
        raise DataError(f"{display}: holds Parquet data", hint="decompress it if it is compressed, and pass --format parquet")
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    sample = head[:4096]
    if encoding is None and b"\x00" in sample:
        odd, even, half = sample[1::2].count(0), sample[0::2].count(0), len(sample) // 2
        if odd * 2 > half and even * 4 < half:  # ASCII in UTF-16: every second byte is NUL
            encoding = "UTF-16LE"
        elif even * 2 > half and odd * 4 < half:
            encoding = "UTF-16BE"
        else:
            raise DataError(f"{display}: holds NUL bytes: binary data, not text", hint="is it another format? pass --format")
    if encoding is not None:
        raise DataError(
            f"{display}: is {encoding} text, not UTF-8",
            hint=f"convert it first: iconv -f {encoding.removesuffix('LE').removesuffix('BE')} -t UTF-8 in.csv > out.csv",
        )


def raise_too_wide(source: Source, columns: int) -> None:
    raise DataError(
        f"{source.display}: has {columns:,} columns; normcli reads at most {MAX_COLUMNS:,}",
        hint="select the columns you need first (e.g. with cut, xsv select or mlr cut)",
    )


def _open_text_file(source: Source, options: ReadOptions) -> IO[bytes]:
    """A text file's (or object's) bytes, decompressed as they are read."""
    assert source.path is not None
    if not source.is_url:
        if source.compression == "gzip":
            import gzip

            return gzip.open(source.path, "rb")  # type: ignore[return-value]
        if source.compression is not None:
            import pyarrow as pa

            return pa.input_stream(source.path, compression=source.compression)  # type: ignore[return-value]
        return open(source.path, "rb")
    from normcli.data.storage import open_url

    raw = open_url(source.path, options.storage)
    if source.compression == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if source.compression is not None:
        import pyarrow as pa

        return pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), source.compression)  # type: ignore[return-value]
    return raw


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


def check_distinct_inputs(sources: Sequence[Source], hint: str = "name each input once") -> None:
    """Refuse a file given twice, also under another name (a glob and its match, ``./a.csv``, a
    link or a hard link): its rows would count twice, without a word."""
    seen: dict[tuple[int, int] | str, Source] = {}
    for source in sources:
        if source.path is None:
            continue
        if source.is_url:
            key: tuple[int, int] | str = source.path
        else:
            info = os.stat(source.path)
            key = (info.st_dev, info.st_ino)
        first = seen.setdefault(key, source)
        if first is not source:
            same = f"'{source.display}' is given twice" if first.display == source.display else f"'{first.display}' and '{source.display}' are the same file"
            raise UsageError(f"{same}: its rows would count twice", hint=hint)


def describe(sources: Sequence[Source]) -> str:
    """A short name of the inputs for messages: the file, or the first file and a count."""
    if len(sources) == 1:
        return sources[0].display
    return f"{sources[0].display} (+{len(sources) - 1} more)"
