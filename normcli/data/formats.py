"""The formats normcli reads and writes, in one registry.

A :class:`Format` knows its extensions, how to scan files of it lazily, how to parse a chunk of a
stream, and how to write frames (all at once to a file, or batch by batch to a stream). Adding a
format is adding one entry to :data:`FORMATS`; compression (gzip, zstd) is told by the extension
or by the first bytes and applies to the text formats.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
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


DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
"""Words and escapes accepted for ``-d/--delimiter`` besides the character itself."""

TYPE_NAMES = {"text": "String", "int": "Int64", "float": "Float64", "bool": "Boolean", "date": "Date", "datetime": "Datetime"}
"""Types ``--dtype COL=TYPE`` accepts, and the Polars type each reads as."""


def parse_delimiter(text: str) -> str:
    """The field delimiter ``-d`` names: a one-byte character, ``\\t``, or tab/comma/semicolon/pipe/space."""
    delimiter = DELIMITER_NAMES.get(text.lower(), text) if len(text) > 1 else text
    if len(delimiter.encode()) != 1 or delimiter in ('"', "\n", "\r"):
        raise UsageError(
            f"--delimiter must be one character (one byte), not '{text}'",
            hint="e.g. -d ',' or -d ';' or -d '|' or -d tab (also '\\t')",
        )
    return delimiter


def parse_dtype(text: str) -> tuple[str, str]:
    """``COL=TYPE`` of ``--dtype``: the column (a selection item) and the Polars type name."""
    column, sep, kind = text.rpartition("=")
    column = column.strip()
    if len(column) > 1 and column[0] == column[-1] == '"':
        column = column[1:-1].replace('""', '"')
    if not sep or not column:
        raise UsageError(f"--dtype takes COLUMN=TYPE, not '{text}'", hint=f"types: {', '.join(TYPE_NAMES)}")
    return column, polars_type_name(kind)


def polars_type_name(kind: str) -> str:
    """The Polars type a ``--dtype`` type word stands for (``text`` → ``String``...)."""
    word = kind.strip().lower()
    name = TYPE_NAMES.get(word) or next((v for v in TYPE_NAMES.values() if v.lower() == word), None)
    if name is None:
        raise UsageError(f"--dtype: unknown type '{kind}'", hint=f"choose one of: {', '.join(TYPE_NAMES)}")
    return name


def dtype_pairs(dtypes: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``--dtype`` as (column pattern, Polars type name) pairs, from the Python API's mapping or pairs."""
    pairs = dtypes.items() if isinstance(dtypes, Mapping) else dtypes
    return tuple((pattern, polars_type_name(kind)) for pattern, kind in pairs)


@dataclass(frozen=True)
class ReadOptions:
    """How to read inputs: format override, missing-value tokens, CSV delimiter and header, column
    types the user fixed, and the ``--storage-option`` pairs for inputs named by URL (see
    :mod:`normcli.data.storage`).

    ``text`` (``--text``) are column patterns read as text whatever they hold (zip codes like
    00501); ``dtypes`` (``--dtype``) are (pattern, Polars type name) pairs. ``fixed`` and
    ``trimmed`` are not options but what schema inference decided for one input
    (:func:`normcli.data.schema.read_schema`): ``fixed`` are the columns ``--text``/``--dtype``
    gave a type (read as exactly that type); ``trimmed`` are columns of numbers written with spaces
    around them or a leading ``+`` (`` 5 ``, ``+5``), which Polars reads as text; they are read as
    text and converted, trimmed, to their numeric type.
    """

    format: str | None = None
    null_values: tuple[str, ...] = DEFAULT_NULL_VALUES
    separator: str | None = None
    has_header: bool = True
    text: tuple[str, ...] = ()
    dtypes: tuple[tuple[str, str], ...] = ()
    text_if_present: tuple[str, ...] = ()
    """Exact column names read as text where an input has them (group keys that were text when
    fitted), without ``--text``'s error for a name no input has."""
    trimmed: frozenset[str] = frozenset()
    fixed: frozenset[str] = frozenset()
    storage: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise UsageError(f"unknown format '{self.format}'", hint=f"choose one of: {', '.join(FORMATS)}")
        if self.separator is not None:
            object.__setattr__(self, "separator", parse_delimiter(self.separator))
        if not self.has_header and self.format not in (None, "csv", "tsv"):
            raise UsageError(f"--no-headers applies to CSV and TSV, not {self.format}")

    @classmethod
    def of(
        cls,
        *,
        format: str | None = None,
        null_values: Iterable[str] | None = None,
        default_null_values: Iterable[str] = DEFAULT_NULL_VALUES,
        separator: str | None = None,
        has_header: bool = True,
        text: Iterable[str] = (),
        dtypes: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        storage: Iterable[tuple[str, str]] = (),
    ) -> ReadOptions:
        """The options of the Python API's arguments (any iterables; ``dtypes`` a mapping or pairs
        of type words): ``null_values`` None reads ``default_null_values`` as missing — a fit's own
        tokens when new data are read against its stats."""
        return cls(
            format=format,
            null_values=tuple(null_values if null_values is not None else default_null_values),
            separator=separator,
            has_header=has_header,
            text=tuple(text),
            dtypes=dtype_pairs(dtypes),
            storage=tuple(storage),
        )

    def storage_for(self, path: str) -> dict[str, str] | None:
        """Polars' ``storage_options`` for ``path`` (None: the environment's credentials only)."""
        from normcli.data.storage import polars_options

        return polars_options(path, self.storage)


@dataclass(frozen=True)
class Format:
    """One file format: its name, extensions and how Polars reads and writes it."""

    name: str
    extensions: tuple[str, ...]
    text: bool = True
    separator: str | None = None

    def delimiter(self, options: ReadOptions) -> str:
        return options.separator or self.separator or ","

    def output_delimiter(self, options: ReadOptions | None) -> str:
        """The delimiter written: CSV output keeps the inputs' ``-d`` delimiter (a ``;`` file comes
        back with ``;``); TSV is tab."""
        if self.name == "csv" and options is not None and options.separator:
            return options.separator
        return self.separator or ","

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
        """A lazy scan of one file. With ``schema`` (every column's type) nothing is inferred (a
        Parquet file has its own types: only the columns ``--text``/``--dtype`` fixed are cast);
        ``infer`` reads float words such as ``inf`` as missing, for type inference only. Without a
        header (``--no-headers``) the columns are ``column_1``, ``column_2``, ...
        ``keep_text`` applies the null tokens to typed columns only, so text columns keep them as
        written (see :func:`typed_from_text`; without text columns the two readings are the same)."""
        import polars as pl

        if self.name == "parquet":
            frame = pl.scan_parquet(path, glob=False, storage_options=options.storage_for(path))
            fixed = {n: schema[n] for n in options.fixed if schema and n in schema}  # --text, --dtype
            return frame.cast(fixed) if fixed else frame
        nulls = list(options.null_values)
        if infer:
            nulls += [word for word in FLOAT_WORDS if word not in nulls]
        if self.name == "ndjson":  # types from every line: a key first seen on line 10,001 is a column too
            frame = pl.scan_ndjson(
                path, schema=_read_types(schema, options), infer_schema_length=None,
                storage_options=options.storage_for(path),
            )
            return _convert_trimmed(frame, schema, options)
        if keep_text and schema and any(dtype == pl.String for dtype in schema.values()):
            raw = self.scan_text(path, options, raw=True)
            typed = {n: t for n, t in schema.items() if n not in options.trimmed or not t.is_numeric()}
            return _convert_trimmed(raw.with_columns(typed_from_text(typed, options.null_values)), schema, options)
        frame = pl.scan_csv(
            path,
            separator=self.delimiter(options),
            has_header=options.has_header,
            null_values=nulls,
            infer_schema_length=INFER_SCHEMA_ROWS,
            schema=_read_types(schema, options),
            glob=False,
            raise_if_empty=True,
            storage_options=options.storage_for(path),
        )
        if not options.has_header and schema is None:
            frame = frame.rename(_one_based)
        return _convert_trimmed(frame, schema, options)

    def scan_text(self, path: str, options: ReadOptions, *, raw: bool = False) -> pl.LazyFrame:
        """A scan of a CSV/TSV file with every column read as text (for second looks at bad values),
        null tokens as missing, or with ``raw`` exactly as written."""
        import polars as pl

        frame = pl.scan_csv(
            path, separator=self.delimiter(options), has_header=options.has_header,
            null_values=None if raw else list(options.null_values), infer_schema=False, glob=False,
            raise_if_empty=True, storage_options=options.storage_for(path),
        )  # fmt: skip
        return frame if options.has_header else frame.rename(_one_based)

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

        if self.name == "ndjson":
            # every line's keys and types are read, also with a schema: the caller checks that the
            # chunk fits it (a key or a float the first chunk did not have) and casts it
            return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        if keep_text and schema and any(dtype == pl.String for dtype in schema.values()):
            # two parses of the chunk: the text columns as written, the others as the reader types
            # them (null tokens applied). In memory this is cheaper than typed_from_text on every
            # column read as text (17 vs 21 ms of CPU per 4 MiB chunk of bench_core's data);
            # for files, whose scans are streamed, it is the other way round (bench_passthrough.py).
            wanted = list(columns) if columns is not None else list(names)
            text = [n for n in wanted if schema.get(n) == pl.String]
            raw = self.parse(data, names, replace(options, null_values=(), trimmed=frozenset()), dict.fromkeys(schema, pl.String), columns=text)
            others = [n for n in wanted if n not in text]
            if not others:
                return raw
            typed = self.parse(data, names, options, schema, columns=others, infer=infer)
            return pl.concat([typed, raw], how="horizontal").select(wanted)
        nulls = list(options.null_values)
        if infer:
            nulls += [word for word in FLOAT_WORDS if word not in nulls]
        frame = pl.read_csv(
            data,
            has_header=False,
            new_columns=names,
            columns=[names.index(c) for c in columns] if columns is not None else None,
            separator=self.delimiter(options),
            null_values=nulls,
            infer_schema_length=INFER_SCHEMA_ROWS,
            n_rows=INFER_SCHEMA_ROWS if infer else None,
            schema=_read_types(schema, options),
            raise_if_empty=False,
        )
        return _convert_trimmed(frame.lazy(), schema, options).collect() if options.trimmed and schema else frame

    # ------------------------------------------------------------------ writing

    def sink(
        self,
        frame: pl.LazyFrame,
        target: Any,
        compression: str | None = None,
        storage: tuple[tuple[str, str], ...] = (),
        *,
        options: ReadOptions | None = None,
        lazy: bool = False,
    ) -> Any:
        """Stream ``frame`` into ``target`` (a path, a URL with its ``storage`` options, or a binary stream).

        ``lazy``: return the sink as a LazyFrame instead, to run together with other queries
        (``pl.collect_all``) — local targets only (a URL is staged and uploaded).

        ``options`` are those the inputs were read with, when the output is the same table
        (transform): CSV output keeps their delimiter, and has no header line if they had none.
        A URL is staged in a local temporary file and uploaded once complete: Polars 2.1 can sink
        to a bucket itself, but a process whose cloud sink failed crashes when it exits (SIGSEGV
        or abort instead of exit 1), and the upload publishes the object only when whole anyway.
        """
        from normcli.data.storage import is_url, upload_file

        if isinstance(target, str) and is_url(target):
            if lazy:
                raise ValueError("a sink to a URL cannot be lazy")
            import os
            import tempfile

            with tempfile.TemporaryDirectory(prefix="normcli-upload-") as folder:
                staged = os.path.join(folder, "object")
                self.sink(frame, staged, compression, options=options)
                upload_file(target, staged, storage)
            return
        if self.name == "parquet":
            return frame.sink_parquet(target, lazy=lazy)
        if self.name == "ndjson":
            return frame.sink_ndjson(target, compression=compression or "uncompressed", check_extension=False, lazy=lazy)
        return frame.sink_csv(
            target, separator=self.output_delimiter(options), include_header=options is None or options.has_header,
            compression=compression or "uncompressed", check_extension=False, lazy=lazy,
        )  # fmt: skip

    def batch_writer(self, stream: IO[bytes], compression: str | None = None, options: ReadOptions | None = None) -> BatchWriter:
        """A writer of frames one after another onto an open binary stream (for streamed output);
        ``options`` as for :meth:`sink`."""
        return BatchWriter(self, stream, compression, options)


def _one_based(name: str) -> str:
    """Polars names headerless columns ``column_0``, ``column_1``, ...; normcli counts from 1 (as
    the selection language's indices do)."""
    return f"column_{int(name.rpartition('_')[2]) + 1}"


def _read_types(schema: Mapping[str, pl.DataType] | None, options: ReadOptions) -> dict[str, pl.DataType] | None:
    """The types to parse with: ``schema``, with trimmed numeric columns read as text first."""
    import polars as pl

    if not schema:
        return None
    return {name: pl.String if name in options.trimmed and dtype.is_numeric() else dtype for name, dtype in schema.items()}


def _convert_trimmed(frame: pl.LazyFrame, schema: Mapping[str, pl.DataType] | None, options: ReadOptions) -> pl.LazyFrame:
    """Trimmed numeric columns, read as text, converted: spaces stripped, missing-value tokens
    null, then a strict cast (a word is an error naming its value, located by the diagnostics)."""
    import polars as pl

    if not schema or not options.trimmed:
        return frame
    exprs = []
    for name in options.trimmed:
        dtype = schema.get(name)
        if dtype is not None and dtype.is_numeric():
            stripped = pl.col(name).str.strip_chars()
            missing = stripped.is_in([*options.null_values, ""])
            exprs.append(pl.when(missing).then(None).otherwise(stripped).cast(dtype).alias(name))
    return frame.with_columns(exprs) if exprs else frame


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

    def __init__(self, format: Format, stream: IO[bytes], compression: str | None = None, options: ReadOptions | None = None) -> None:
        self.format = format
        self.options = options
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
                header = not self.started and (self.options is None or self.options.has_header)
                frame.write_csv(buffer, separator=self.format.output_delimiter(self.options), include_header=header)
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
    if "://" in name:  # a URL: the key's extension, before any query string
        name = name.split("://", 1)[1].split("?", 1)[0]
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
