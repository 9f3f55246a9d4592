"""Reading a stream (stdin, a FIFO, a compressed pipe) once, in bounded memory, chunk by chunk.

The bytes are cut into chunks of whole records (a cut is a line break outside quotes), and each
chunk is parsed by the same Polars reader that scans files, with the same options and a schema
fixed from the first rows; so a stream and a file with the same bytes give the same frames.
Memory holds one chunk at a time (:data:`CHUNK_BYTES`), whatever the stream's length. gzip and
zstd streams are decompressed on the fly. Parquet cannot be streamed (its index is at the end):
a Parquet stream is read into memory whole.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING

from normcli.data.formats import INFER_SCHEMA_ROWS, ReadOptions
from normcli.data.inputs import InputStream, Source
from normcli.errors import DataError

if TYPE_CHECKING:
    import polars as pl

CHUNK_BYTES = 4 << 20
"""Bytes read from a stream at a time (the chunk may end up a little longer: a whole last record)."""

_BOM = b"\xef\xbb\xbf"


def _decompressed(source: Source) -> InputStream | _Decompressed:
    assert source.stream is not None
    if source.compression is None:
        return source.stream
    return _Decompressed(source.stream, source.compression)


class _Decompressed:
    """A gzip or zstd stream decompressed on the fly (by pyarrow), with InputStream's interface."""

    def __init__(self, stream: InputStream, compression: str) -> None:
        import pyarrow as pa

        self.stream = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), compression)

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size if size >= 0 else None)

    def ready(self, wait: float = 0.0) -> bool:
        return True


def _last_boundary(buffer: bytes, quote: bytes | None) -> int:
    """Index just after the last line break that is outside quotes, or 0 if there is none.

    The buffer starts at a record boundary, so the quote parity before a position tells whether
    it is inside a quoted field (``""`` inside quotes toggles twice and keeps the parity).
    """
    end = len(buffer)
    if quote and buffer.find(quote) < 0:  # memchr: most data has no quotes at all
        quote = None
    remaining = buffer.count(quote) if quote else 0
    while True:
        pos = buffer.rfind(b"\n", 0, end)
        if pos < 0:
            return 0
        if quote:
            remaining -= buffer.count(quote, pos, end)
            if remaining % 2:
                end = pos
                continue
        return pos + 1


def _first_boundary(buffer: bytes, quote: bytes | None) -> int:
    """Index just after the first line break outside quotes, or 0 if there is none."""
    start = 0
    inside = 0
    while True:
        pos = buffer.find(b"\n", start)
        if pos < 0:
            return 0
        if quote:
            inside += buffer.count(quote, start, pos)
            if inside % 2:
                start = pos + 1
                continue
        return pos + 1


def first_records(handle: IO[bytes], rows: int, quoted: bool = True, header: bool = True) -> bytes:
    """The bytes of the first ``rows`` records after the header line of an open text file (from
    its start, a byte-order mark removed, when it has no header line)."""
    quote = b'"' if quoted else None
    data = b""
    if header:
        while not (header_end := _first_boundary(data, quote)):
            more = handle.read(1 << 16)
            if not more:
                return b""
            data += more
        data = data[header_end:]
    else:
        data = handle.read(1 << 16)
        data = data[len(_BOM) :] if data.startswith(_BOM) else data
    lines = data.count(b"\n")
    while lines <= rows:
        more = handle.read(1 << 20)
        if not more:
            return data
        data += more
        lines += more.count(b"\n")
    return data[: _last_boundary(data, quote)]


class StreamReader:
    """Chunks of whole records from a text stream, parsed into frames with a fixed schema.

    ``names`` is the header (CSV/TSV); :meth:`sample` parses the first rows with type inference;
    :meth:`frames` yields every chunk (the first one included) parsed with the given schema.
    """

    def __init__(self, source: Source, options: ReadOptions, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.source = source
        self.options = options
        self.format = source.format
        self.chunk_bytes = chunk_bytes
        self._raw = _decompressed(source)
        self._quote = b'"' if self.format.name != "ndjson" else None
        self._pending = bytearray()  # read but not yet handed out
        self._eof = False
        self._header_lines = 0
        self.rows = 0  # data rows handed out so far
        self.names: list[str] = []
        if self.format.name in ("csv", "tsv"):
            self.names = self._read_header()

    # ------------------------------------------------------------------ raw chunks

    def _fill(self) -> bool:
        """Read what the stream has (waiting only while it has nothing); False at its end."""
        if self._eof:
            return False
        try:
            data = self._raw.read(self.chunk_bytes)
        except (OSError, EOFError) as exc:  # a truncated or corrupt compressed stream
            raise DataError(
                f"{self.source.display}: compressed data ends unexpectedly or is corrupt ({exc})",
                hint="the stream is probably truncated; produce it again",
            ) from None
        if not data:
            self._eof = True
            return False
        self._pending += data
        return True

    def _take(self, size: int) -> bytes:
        """The first ``size`` pending bytes, removed from the buffer (one copy)."""
        with memoryview(self._pending) as view:
            chunk = bytes(view[:size])
        del self._pending[:size]
        return chunk

    def _read_header(self) -> list[str]:
        """The column names from the first record; without a header (``--no-headers``) the first
        record is data, left in place, and the columns are ``column_1``, ``column_2``, ..."""
        while not (cut := _first_boundary(self._pending, self._quote)) and self._fill():
            pass
        if self._pending.startswith(_BOM):
            del self._pending[: len(_BOM)]
            cut = max(cut - len(_BOM), 0)
        if self.options.has_header:
            header = self._take(cut or len(self._pending))
        else:
            header = bytes(self._pending[: cut or len(self._pending)])
        if not header.strip():
            raise DataError(f"{self.source.display}: file is empty", hint="expected a header row and data")
        if self.options.has_header:
            self._header_lines = header.count(b"\n")
        try:
            text = header.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(
                f"{self.source.display}: is not valid UTF-8",
                hint="convert it first, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv",
            ) from None
        delimiter = self.format.delimiter(self.options)
        import csv

        rows = list(csv.reader(io.StringIO(text.rstrip("\r\n")), delimiter=delimiter))
        first = rows[0] if rows else []
        return first if self.options.has_header else [f"column_{i + 1}" for i in range(len(first))]

    def _chunks(self) -> Iterator[bytes]:
        """Each chunk of whole records, in order: up to :data:`CHUNK_BYTES`, or what a slow
        producer has written so far (its rows are not held back waiting for more)."""
        while True:
            while len(self._pending) < self.chunk_bytes and self._raw.ready() and self._fill():
                pass
            cut = len(self._pending) if self._eof else _last_boundary(self._pending, self._quote)
            if not cut:
                if self._fill() or self._pending:  # wait for the rest of a record
                    continue
                return
            chunk = self._take(cut)
            if self._eof and not chunk.strip():
                continue
            yield chunk

    @property
    def line(self) -> int:
        """The line number of the next row (exact unless quoted values span lines)."""
        return 1 + self._header_lines + self.rows

    # ------------------------------------------------------------------ parsed frames

    def sample(self) -> pl.DataFrame:
        """The first rows (up to :data:`INFER_SCHEMA_ROWS`) with inferred types, for the schema.

        Reads ahead as far as needed but consumes nothing: :meth:`frames` starts from the top.
        """
        lines = self._pending.count(b"\n")
        while not self._eof and len(self._pending) < self.chunk_bytes and lines <= INFER_SCHEMA_ROWS:
            seen = len(self._pending)
            if self._fill():
                lines += self._pending.count(b"\n", seen)
        cut = _last_boundary(self._pending, self._quote) or len(self._pending)
        return self._parse(self.line, bytes(self._pending[:cut]), None, None, infer=True)

    def frames(self, schema: Mapping[str, pl.DataType], columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """Every chunk parsed with ``schema`` (names → types), only ``columns`` if given."""
        for chunk in self._chunks():
            frame = self._parse(self.line, chunk, schema, columns)
            self.rows += frame.height
            yield frame

    def _parse(self, line: int, chunk: bytes, schema: Mapping[str, pl.DataType] | None, columns: list[str] | None, infer: bool = False) -> pl.DataFrame:
        import polars as pl

        from normcli.data.diagnostics import translate_chunk_error

        try:
            return self.format.parse(chunk, self.names, self.options, schema, columns=columns, infer=infer)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise translate_chunk_error(exc, self.source, self.options, self.names, chunk, line) from exc


def read_parquet_stream(source: Source) -> pl.DataFrame:
    """A Parquet stream, read into memory whole (Parquet keeps its index at the end)."""
    import polars as pl

    assert source.stream is not None
    data = _decompressed(source).read()
    try:
        return pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{source.display}: not a complete Parquet stream ({str(exc).splitlines()[0]})") from exc
