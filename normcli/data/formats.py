"""The formats normcli reads and writes, in one registry.

A :class:`Format` knows its extensions, how to scan files of it lazily, how to parse a chunk of a
stream, and how to write frames (all at once to a file, or batch by batch to a stream). Adding a
format is adding one entry to :data:`FORMATS`; compression (gzip, zstd) is told by the extension
or by the first bytes and applies to the text formats.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import IO, TYPE_CHECKING, Any

from normcli.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

DEFAULT_NULL_VALUES = ("NA", "N/A", "NaN", "nan", "null", "NULL")
"""Cell texts read as missing by default, besides the empty cell."""

INFER_SCHEMA_ROWS = 10_000
"""Rows read to infer text columns' types; later surprises are reported, never ignored."""

FLOAT_WORDS = ("nan", "NaN", "NAN", "inf", "-inf", "+inf", "Inf", "-Inf", "infinity", "-infinity")
"""Words that are valid floats: ignored when inferring types, so they don't make a column text."""

COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class ReadOptions:
    """How to read inputs: the format override, missing-value tokens and CSV separator."""

    format: str | None = None
    null_values: tuple[str, ...] = DEFAULT_NULL_VALUES
    separator: str | None = None

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise UsageError(f"unknown format '{self.format}'", hint=f"choose one of: {', '.join(FORMATS)}")
        if self.separator is not None and len(self.separator.encode()) != 1:
            raise UsageError(f"--separator must be a single one-byte character, not '{self.separator}'")


@dataclass(frozen=True)
class Format:
    """One file format: its name, extensions and how Polars reads and writes it."""

    name: str
    extensions: tuple[str, ...]
    text: bool = True
    separator: str | None = None

    def delimiter(self, options: ReadOptions) -> str:
        return options.separator or self.separator or ","

    # ------------------------------------------------------------------ reading

    def scan(
        self,
        path: str,
        options: ReadOptions,
        schema: Mapping[str, pl.DataType] | None = None,
        *,
        infer: bool = False,
        keep_text: bool = False,
    ) -> pl.LazyFrame:
        """A lazy scan of one file. With ``schema`` (every column's type) nothing is inferred;
        ``infer`` reads float words such as ``inf`` as missing, for type inference only;
        ``keep_text`` applies the null tokens to typed columns only, so text columns keep them as
        written (see :func:`typed_from_text`; without text columns the two readings are the same)."""
        import polars as pl

        if self.name == "parquet":
            return pl.scan_parquet(path, glob=False)
        nulls = list(options.null_values)
        if infer:
            nulls += [word for word in FLOAT_WORDS if word not in nulls]
        if self.name == "ndjson":  # types from every line: a key first seen on line 10,001 is a column too
            return pl.scan_ndjson(path, schema=dict(schema) if schema else None, infer_schema_length=None)
        if keep_text and schema and any(dtype == pl.String for dtype in schema.values()):
            raw = pl.scan_csv(
                path, separator=self.delimiter(options), schema=dict.fromkeys(schema, pl.String), glob=False, raise_if_empty=True
            )
            return raw.with_columns(typed_from_text(schema, options.null_values))
        return pl.scan_csv(
            path,
            separator=self.delimiter(options),
            null_values=nulls,
            infer_schema_length=INFER_SCHEMA_ROWS,
            schema=dict(schema) if schema else None,
            glob=False,
            raise_if_empty=True,
        )

    def parse(
        self,
        data: bytes,
        names: list[str],
        options: ReadOptions,
        schema: Mapping[str, pl.DataType] | None,
        *,
        columns: list[str] | None = None,
        infer: bool = False,
        keep_text: bool = False,
    ) -> pl.DataFrame:
        """Parse one chunk of a stream (whole records, no header line) into a frame.

        ``schema`` gives every column's type (nothing is inferred); ``columns`` keeps only those;
        ``keep_text`` as in :meth:`scan`. NDJSON chunks come back with the keys and types of their
        own lines (:class:`~normcli.data.streams.StreamReader` fits them to the schema).
        """
        import polars as pl

        if keep_text and schema and self.name != "ndjson" and any(dtype == pl.String for dtype in schema.values()):
            raw = self.parse(data, names, replace(options, null_values=()), dict.fromkeys(schema, pl.String), columns=columns)
            return raw.with_columns(typed_from_text({n: t for n, t in schema.items() if n in raw.columns}, options.null_values))
        if self.name == "ndjson":
            # every line's keys and types are read, also with a schema: the caller checks that the
            # chunk fits it (a key or a float the first chunk did not have) and casts it
            return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        nulls = list(options.null_values)
        if infer:
            nulls += [word for word in FLOAT_WORDS if word not in nulls]
        return pl.read_csv(
            data,
            has_header=False,
            new_columns=names,
            columns=[names.index(c) for c in columns] if columns is not None else None,
            separator=self.delimiter(options),
            null_values=nulls,
            infer_schema_length=INFER_SCHEMA_ROWS,
            n_rows=INFER_SCHEMA_ROWS if infer else None,
            schema=dict(schema) if schema else None,
            raise_if_empty=False,
        )

    # ------------------------------------------------------------------ writing

    def sink(self, frame: pl.LazyFrame, target: Any, compression: str | None = None) -> None:
        """Stream ``frame`` into ``target`` (a path or a binary stream)."""
        if self.name == "parquet":
            frame.sink_parquet(target)
        elif self.name == "ndjson":
            frame.sink_ndjson(target, compression=compression or "uncompressed", check_extension=False)
        else:
            frame.sink_csv(target, separator=self.separator or ",", compression=compression or "uncompressed", check_extension=False)

    def batch_writer(self, stream: IO[bytes], compression: str | None = None) -> BatchWriter:
        """A writer of frames one after another onto an open binary stream (for streamed output)."""
        return BatchWriter(self, stream, compression)


BOOLEAN_CARRIER = "u8"
"""Polars' name of the type (UInt8) booleans are parsed through, as 0/1, by :func:`typed_from_text`:
a failed cast from text to it is about a true/false column."""


def cleaned_text(name: str, null_values: Sequence[str]) -> pl.Expr:
    """The text of column ``name`` as Polars' CSV reader sees it before parsing a number: a null
    token, an empty quoted cell ``""`` or only spaces and tabs is missing, leading spaces and tabs
    are dropped (trailing ones are not: ``'5 '`` is not a number there either)."""
    import polars as pl

    text = pl.col(name)
    if null_values:
        text = pl.when(~text.is_in(list(null_values))).then(text)  # then(text) keeps the name, for errors
    text = text.str.strip_chars_start(" \t")
    return pl.when(text != "").then(text)


def missing_tokens(names: Sequence[str], null_values: Sequence[str]) -> list[pl.Expr]:
    """Null tokens made missing in text columns read as written (what the CSV reader's
    ``null_values`` does to a String column: a cell equal to a token is null)."""
    import polars as pl

    if not null_values:
        return []
    return [pl.when(~pl.col(name).is_in(list(null_values))).then(pl.col(name)) for name in names]


def typed_from_text(schema: Mapping[str, pl.DataType], null_values: Sequence[str]) -> list[pl.Expr]:
    """Expressions turning text columns (read with no null tokens) into ``schema``'s types, exactly
    as Polars' CSV reader parses them with ``null_values``; String columns are left as written.

    This is how transform passes text through byte for byte: a cell ``NA`` is missing in a fitted
    (numeric) column, and stays ``NA`` in a column of country codes. Polars applies null tokens
    to every column of a file alike, so the file is read as text and only the typed columns are
    parsed (tested against the reader on every corner of the float syntax in tests/test_transform.py).
    Numbers take a fast path: a plain cast, which accepts a subset of what the reader accepts;
    only the cells it refuses (and null tokens) go through :func:`cleaned_text` and a strict cast,
    which raises on a cell the reader would refuse too. This costs about 1.2× the CPU of reading
    the numbers directly (bench/bench_passthrough.py), against 1.6× for the slow path everywhere.
    """
    import polars as pl

    exprs = []
    for name, dtype in schema.items():
        if dtype == pl.String:
            continue
        if dtype == pl.Boolean:  # via 0/1 and a strict cast, whose error names the column and value
            text = cleaned_text(name, null_values).str.to_lowercase()
            digits = (text + " ").str.replace(r"^true $", "1").str.replace(r"^false $", "0")  # others fail the cast
            exprs.append(digits.cast(pl.UInt8).cast(pl.Boolean))
        elif dtype == pl.Null:
            exprs.append(pl.lit(None, dtype=pl.Null).alias(name))
        else:
            raw = pl.col(name)
            direct = raw.cast(dtype, strict=False)
            plain = direct.is_not_null() & ~raw.is_in(list(null_values)) if null_values else direct.is_not_null()
            exprs.append(pl.when(plain).then(direct).otherwise(cleaned_text(name, null_values).cast(dtype)))
    return exprs


class BatchWriter:
    """Writes frames as they come: CSV/TSV with one header, NDJSON lines, or Parquet row groups.

    Text output may be compressed (gzip or zstd) on the way; each frame is flushed, so a reader
    downstream sees rows as soon as they are ready.
    """

    def __init__(self, format: Format, stream: IO[bytes], compression: str | None = None) -> None:
        self.format = format
        self.started = False
        self._parquet: Any = None
        self._compressor: Any = None
        self.stream = stream
        if compression is not None and format.text:
            import pyarrow as pa

            self._compressor = pa.CompressedOutputStream(pa.PythonFile(_KeepOpen(stream), mode="w"), compression)
            self.stream = self._compressor

    def write(self, frame: pl.DataFrame) -> None:
        if self.format.name == "parquet":
            import pyarrow.parquet as pq

            table = frame.to_arrow()
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.stream, table.schema)
            self._parquet.write_table(table)
        else:
            buffer = io.BytesIO()
            if self.format.name == "ndjson":
                frame.write_ndjson(buffer)
            else:
                frame.write_csv(buffer, separator=self.format.separator or ",", include_header=not self.started)
            self.stream.write(buffer.getvalue())
        self.started = True
        self.stream.flush()

    def close(self) -> None:
        """Finish the output (Parquet footer, compressed trailer); the stream itself stays open."""
        if self._parquet is not None:
            self._parquet.close()
        if self._compressor is not None:
            self._compressor.close()
        else:
            self.stream.flush()


class _KeepOpen(io.RawIOBase):
    """A binary stream that passes writes on but is not closed by whoever wraps it (stdout)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._stream.write(data)
        return len(data)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self.flush()


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("csv", (".csv",), separator=","),
        Format("tsv", (".tsv", ".tab"), separator="\t"),
        Format("parquet", (".parquet", ".pq"), text=False),
        Format("ndjson", (".ndjson", ".jsonl")),
    )
}


def format_named(name: str) -> Format:
    return FORMATS[name]


def detect_format(name: str, override: str | None, option: str = "--format") -> tuple[Format, str | None]:
    """The format and compression of a file from its extension, or the ``--format`` override."""
    suffixes = [s.lower() for s in PurePath(name).suffixes]
    compression = None
    if suffixes and suffixes[-1] in COMPRESSIONS:
        compression = COMPRESSIONS[suffixes.pop()]
    if override is not None:
        return FORMATS[override], compression
    for fmt in FORMATS.values():
        if suffixes and suffixes[-1] in fmt.extensions:
            return fmt, compression
    raise UsageError(
        f"{name}: cannot tell the format from the extension",
        hint=f"pass {option} ({', '.join(FORMATS)})",
    )


def sniff_compression(head: bytes) -> str | None:
    """gzip or zstd from the first bytes, else None."""
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    return None
