"""Applying fitted statistics to data: one ``with_columns`` of expressions, streamed to an output.

Every fitted column becomes ``((x − center) − center_lo) / scale`` (or the inverse) through its
method (:mod:`normcli.scaling.methods`); other columns pass through untouched and in place (text
exactly as written, null tokens included). Nulls stay null and NaN stays NaN. Files are scanned and sunk by Polars in one streaming query; streams
(stdin, FIFOs) are transformed chunk by chunk, so the first rows come out before the input ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from normcli.data.diagnostics import polars_errors
from normcli.data.formats import Format, ReadOptions
from normcli.data.inputs import Source, describe, has_no_data_rows, open_sources
from normcli.data.outputs import atomic_path, check_output_columns, check_output_target, output_format, stdout_stream, writing
from normcli.data.schema import NULL, SourceSchema, is_numeric_dtype, read_schema
from normcli.errors import DataError, UsageError

DELIMITED = ("csv", "tsv")
"""Formats whose cells are text: between them, columns that are not fitted pass through as written."""
from normcli.scaling.methods import METHODS
from normcli.scaling.model import Stats
from normcli.scaling.statsfile import load_stats

if TYPE_CHECKING:
    import polars as pl

    from normcli.data.streams import StreamReader


def scaling_expressions(stats: Stats, *, inverse: bool = False, clip: bool = False, float32: bool = False) -> list[pl.Expr]:
    """One expression per fitted column applying its parameters, named like the column."""
    import polars as pl

    if inverse and clip:
        raise UsageError("--clip and --inverse cannot be combined", hint="clip applies to the forward transform")
    exprs = []
    for column in stats.columns:
        method = METHODS[column.method]
        y = method.expression(column, inverse=inverse)
        bounds = method.clip_range(column) if clip else None
        if bounds is not None:
            y = y.clip(*bounds)
        exprs.append((y.cast(pl.Float32) if float32 else y).alias(column.name))
    return exprs


def check_columns(schema: pl.Schema | dict, stats: Stats, source: str = "input") -> None:
    """Each fitted column must be present and numeric (or empty, which transforms to nulls)."""
    missing = [name for name in stats.names if name not in schema]
    if missing:
        raise DataError(
            f"{source}: column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} from the stats not found",
            hint="transform data with the columns that were fitted, or fit again",
        )
    for column in stats.columns:
        dtype = schema[column.name]
        if not (dtype.is_numeric() or str(dtype) == NULL):
            raise DataError(
                f"{source}: column '{column.name}' is {dtype} now but was fitted as {column.dtype}",
                hint="fix the values or fit again",
            )


def apply_stats(
    frame: pl.LazyFrame,
    stats: Stats,
    *,
    inverse: bool = False,
    clip: bool = False,
    float32: bool = False,
    source: str = "input",
) -> pl.LazyFrame:
    """``frame`` with the fitted columns scaled (lazy); checks that each one is present and numeric."""
    check_columns(frame.collect_schema(), stats, source)
    return frame.with_columns(scaling_expressions(stats, inverse=inverse, clip=clip, float32=float32))


@dataclass
class TransformReport:
    """What a transform did, for the command's notes."""

    notes: list[str] = field(default_factory=list)


def transform(
    paths: Sequence[str],
    *,
    stats: Stats | str | Path,
    output: str = "-",
    inverse: bool = False,
    clip: bool = False,
    float32: bool = False,
    format: str | None = None,
    output_format_name: str | None = None,
    separator: str | None = None,
    null_values: Sequence[str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> TransformReport:
    """Apply ``stats`` (a :class:`Stats` or a stats file) to inputs and write ``output``.

    ``output`` ``-`` streams to ``stdout`` (CSV unless ``output_format_name``); a path is written via
    a temporary file renamed into place on success. Missing-value tokens default to those of the fit.

    Example::

        normcli.transform(["new.csv"], stats="stats.json", output="new-scaled.parquet")
    """
    stats_file = None if isinstance(stats, Stats) else Path(stats)
    if stats_file is not None:
        stats = load_stats(stats_file)
    if inverse and clip:
        raise UsageError("--clip and --inverse cannot be combined", hint="clip applies to the forward transform")
    read = ReadOptions(
        format=format,
        null_values=tuple(null_values) if null_values is not None else stats.null_values,
        separator=separator,
    )
    out_format, compression = output_format(output, output_format_name)
    report = TransformReport()
    with open_sources(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as sources:
        read_files = [*(s.path for s in sources if s.path), *([str(stats_file)] if stats_file else [])]
        target = None if output == "-" else check_output_target(output, read_files)
        if all(has_no_data_rows(s) for s in sources):
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        plan = _plan(sources, read, stats, out_format, report)
        check_output_columns(plan[0].types, out_format)
        exprs = scaling_expressions(stats, inverse=inverse, clip=clip, float32=float32)
        if target is None:
            stream = stdout_stream(stdout)
            with writing("the output"):
                _write(plan, exprs, out_format, compression, stream, read)
        else:
            with atomic_path(target) as temp:
                _write(plan, exprs, out_format, compression, temp, read)
    return report


@dataclass
class _Part:
    """One input, ready to read: its schema, the types to read it with, its stream reader."""

    schema: SourceSchema
    types: dict[str, pl.DataType]
    reader: StreamReader | None = None


def _plan(sources: Sequence[Source], read: ReadOptions, stats: Stats, out_format: Format, report: TransformReport) -> list[_Part]:
    """Schemas of the inputs, checked against the stats; the types each is read with.

    Fitted columns are read as Float64; from CSV/TSV to CSV/TSV the other columns are read as
    strings, so they pass through exactly as written whatever their later rows hold (into
    Parquet or NDJSON they keep their types). Null tokens make
    cells missing in typed columns only: a text column keeps ``NA`` (Namibia) and ``null`` (a
    word) as they are, in any output format (see :func:`~normcli.data.formats.typed_from_text`).
    """
    import polars as pl

    from normcli.data.streams import StreamReader

    parts = []
    names: list[str] | None = None
    for source in sources:
        reader = StreamReader(source, read) if source.is_stream and source.format.text else None
        if source.is_stream and reader is None:
            raise UsageError(f"{source.display}: Parquet cannot be transformed from a stream", hint="pass the file's path")
        schema = read_schema(source, read, reader)
        if names is None:
            names = schema.names
        elif schema.names != names:
            raise DataError(
                f"{source.display}: its columns differ from those of {sources[0].display}",
                hint="transform files with the same columns one at a time",
            )
        types = dict(schema.types)
        for name in stats.names:
            if name in types and schema.dtype(name) == NULL:
                report.notes.append(f"column '{name}' has no values in the first rows of {source.display}: its missing values stay missing")
                types[name] = pl.Null
        check_columns(types, stats, source.display)
        text_to_text = source.format.name in DELIMITED and out_format.name in DELIMITED
        for name in types:
            if name in stats.names:
                types[name] = pl.Float64
            elif text_to_text:
                types[name] = pl.String
        parts.append(_Part(schema, types, reader))
    return parts


def _frames(part: _Part, read: ReadOptions) -> Iterator[pl.DataFrame]:
    source = part.schema.source
    if part.reader is not None:
        yield from part.reader.frames(part.types, keep_text=True)
        return
    assert source.path is not None
    with polars_errors([source], read):
        yield from source.format.scan(source.path, read, part.types, keep_text=True).collect_batches()


def _write(parts: list[_Part], exprs: list[pl.Expr], out_format: Format, compression: str | None, target, read: ReadOptions) -> None:
    """Files only: one lazy query sunk by Polars. With a stream: frame by frame, flushed as it goes."""
    import polars as pl

    sources = [p.schema.source for p in parts]
    if not any(p.reader for p in parts):
        scans = [p.schema.source.format.scan(p.schema.source.path, read, p.types, keep_text=True) for p in parts]
        frame = scans[0] if len(scans) == 1 else pl.concat(scans, how="vertical")
        with polars_errors(sources, read):
            out_format.sink(frame.with_columns(exprs), target, compression)
        return
    opened = open(target, "wb") if isinstance(target, Path) else None  # noqa: SIM115
    try:
        writer = out_format.batch_writer(opened or target, compression)
        wrote = False
        for part in parts:
            for frame in _frames(part, read):
                writer.write(frame.with_columns(exprs))
                wrote = True
        if not wrote:
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        writer.close()
    finally:
        if opened is not None:
            opened.close()
