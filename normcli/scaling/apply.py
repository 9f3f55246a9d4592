"""Applying fitted statistics to data: one ``with_columns`` of expressions, streamed to an output.

Every fitted column becomes ``((x − center) − center_lo) / scale`` (or the inverse) through its
method (:mod:`normcli.scaling.methods`); other columns pass through untouched and in place. Nulls
stay null and NaN stays NaN. Files are scanned and sunk by Polars in one streaming query; streams
(stdin, FIFOs) are transformed chunk by chunk, so the first rows come out before the input ends.
To a dataset folder (``-o out/``, or any output on a Dask cluster) each input fragment becomes
one part, written by :func:`write_part` wherever the engine runs it (:mod:`normcli.data.dataset`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from normcli.data.dataset import is_dataset_target
from normcli.data.diagnostics import polars_errors
from normcli.data.formats import Format, ReadOptions
from normcli.data.inputs import Source, describe, has_no_data_rows, open_sources
from normcli.data.outputs import atomic_path, check_output_target, output_format, writing
from normcli.data.schema import NULL, SourceSchema, is_numeric_dtype, read_schema
from normcli.errors import DataError, UsageError
from normcli.scaling.engine import Engine, LocalEngine
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
    parts: int | None = None
    """The parts of a dataset folder written (None: one output file or stream)."""


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
    storage: Sequence[tuple[str, str]] = (),
    engine: Engine | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> TransformReport:
    """Apply ``stats`` (a :class:`Stats` or a stats file) to inputs and write ``output``.

    ``output`` ``-`` streams to ``stdout`` (CSV unless ``output_format_name``); a path is written via
    a temporary file renamed into place on success. Missing-value tokens default to those of the fit.
    A folder (``out/``) or a Dask ``engine`` writes a dataset: one part per input fragment.

    Example::

        normcli.transform(["new.csv"], stats="stats.json", output="new-scaled.parquet")
    """
    stats_file = None if isinstance(stats, Stats) else str(stats)
    if stats_file is not None:
        stats = load_stats(stats_file, tuple(storage))
    if inverse and clip:
        raise UsageError("--clip and --inverse cannot be combined", hint="clip applies to the forward transform")
    read = ReadOptions(
        format=format,
        null_values=tuple(null_values) if null_values is not None else stats.null_values,
        separator=separator,
        storage=tuple(storage),
    )
    engine = engine or LocalEngine()
    if engine.distributed or is_dataset_target(output):
        return _transform_dataset(
            paths, stats, output, read, engine, inverse=inverse, clip=clip, float32=float32,
            format_name=output_format_name, stats_file=stats_file,
        )  # fmt: skip
    out_format, compression = output_format(output, output_format_name)
    report = TransformReport()
    with open_sources(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as sources:
        read_files = [*(s.path for s in sources if s.path), *([str(stats_file)] if stats_file else [])]
        target = None if output == "-" else check_output_target(output, read_files)
        if all(has_no_data_rows(s, read.storage) for s in sources):
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        plan = _plan(sources, read, stats, out_format, report)
        exprs = scaling_expressions(stats, inverse=inverse, clip=clip, float32=float32)
        stream = stdout if stdout is not None else sys.stdout.buffer
        if target is None:
            with writing("the output"):
                _write(plan, exprs, out_format, compression, stream, read)
        else:
            with atomic_path(target) as temp:
                _write(plan, exprs, out_format, compression, temp, read)
    return report


@dataclass(frozen=True)
class PartTask:
    """One part of a dataset: which rows of which input, how to read and scale them, where to write.

    Plain data (picklable): a Dask worker runs :func:`write_part` on it.
    """

    source: Source
    read: ReadOptions
    types: dict[str, pl.DataType]
    rows: tuple[int, int] | None
    stats: Stats
    inverse: bool
    clip: bool
    float32: bool
    format: Format
    target: str


def write_part(task: PartTask) -> int | None:
    """Scale one fragment into its part (the query of a local transform, on a slice); returns the
    rows written (Parquet: from the footer; text formats: None)."""
    source = task.source
    assert source.path is not None
    frame = source.format.scan(source.path, task.read, task.types)
    if task.rows is not None:
        frame = frame.slice(*task.rows)
    exprs = scaling_expressions(task.stats, inverse=task.inverse, clip=task.clip, float32=task.float32)
    try:
        with polars_errors([source], task.read):
            task.format.sink(frame.with_columns(exprs), task.target, None, task.read.storage)
    except DataError as exc:
        cause = exc.__cause__
        if cause is None or task.target not in str(cause):
            raise
        from normcli.data.diagnostics import first_line, write_failure

        raise DataError(f"cannot write {task.target}: {write_failure(cause) or first_line(str(cause))}") from cause
    if task.format.name != "parquet":
        return None
    from normcli.data.storage import is_url, parquet_metadata

    if is_url(task.target):
        return parquet_metadata(task.target, task.read.storage).num_rows
    import pyarrow.parquet as pq

    return pq.read_metadata(task.target).num_rows


def _transform_dataset(
    paths: Sequence[str],
    stats: Stats,
    output: str,
    read: ReadOptions,
    engine: Engine,
    *,
    inverse: bool,
    clip: bool,
    float32: bool,
    format_name: str | None,
    stats_file: str | None,
) -> TransformReport:
    """Transform into a dataset folder: one part per fragment, published by :class:`DatasetWriter`."""
    from normcli import __version__
    from normcli.data.dataset import DatasetWriter, PartInfo, check_dataset_format
    from normcli.data.formats import FORMATS
    from normcli.data.storage import concurrently
    from normcli.scaling.fragments import row_ranges

    if output == "-" or not is_dataset_target(output):
        raise UsageError(
            f"on a cluster, -o names a dataset folder, not '{output}'",
            hint="end it with /, e.g. -o out/ or -o s3://bucket/out/",
        )
    out_format = FORMATS[check_dataset_format(format_name)]
    report = TransformReport()
    with open_sources(paths, read) as sources:
        for source in sources:
            if source.is_stream:
                raise UsageError(
                    f"{source.display}: a dataset folder is written from files or URLs, not a stream",
                    hint="name the input files, or write one output file",
                )
        inputs = [s.path for s in sources if s.path]
        if output.rstrip("/") in inputs or (stats_file is not None and output.rstrip("/") == stats_file):
            raise UsageError(f"{output}: output is one of the inputs")
        if all(has_no_data_rows(s, read.storage) for s in sources):
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        plan = _plan(sources, read, stats, out_format, report)
        with DatasetWriter(output, out_format.extensions[0].lstrip("."), read.storage) as writer:
            tasks: list[PartTask] = []
            infos: list[PartInfo] = []
            sources = [part.schema.source for part in plan]
            ranges = concurrently(lambda source: row_ranges(source, read), sources, [s.path or "" for s in sources])
            for part, source_ranges in zip(plan, ranges, strict=True):
                source = part.schema.source
                for rows in source_ranges:
                    index = len(tasks)
                    tasks.append(PartTask(source, read, part.types, rows, stats, inverse, clip, float32, out_format, writer.part(index)))
                    infos.append(PartInfo(writer.part_name(index), source.display, input_rows=rows))
            for info, rows_written in zip(infos, engine.run(write_part, tasks, name="part"), strict=True):
                info.rows = rows_written
            manifest = {
                "normcli": __version__,
                "command": "transform",
                "stats": stats_file,
                "format": out_format.name,
                "inverse": inverse,
                "rows": sum(i.rows for i in infos) if all(i.rows is not None for i in infos) else None,
            }
            writer.commit(infos, manifest)
    report.parts = len(infos)
    return report


@dataclass
class _Part:
    """One input, ready to read: its schema, the types to read it with, its stream reader."""

    schema: SourceSchema
    types: dict[str, pl.DataType]
    reader: StreamReader | None = None


def _plan(sources: Sequence[Source], read: ReadOptions, stats: Stats, out_format: Format, report: TransformReport) -> list[_Part]:
    """Schemas of the inputs, checked against the stats; the types each is read with.

    Fitted columns are read as Float64; from text to text the other columns are read as strings,
    so they pass through exactly as written whatever their later rows hold.
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
        text_to_text = source.format.text and out_format.text
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
        yield from part.reader.frames(part.types)
        return
    assert source.path is not None
    with polars_errors([source], read):
        yield from source.format.scan(source.path, read, part.types).collect_batches()


def _write(parts: list[_Part], exprs: list[pl.Expr], out_format: Format, compression: str | None, target, read: ReadOptions) -> None:
    """Files only: one lazy query sunk by Polars. With a stream: frame by frame, flushed as it goes."""
    import polars as pl

    sources = [p.schema.source for p in parts]
    if not any(p.reader for p in parts):
        scans = [p.schema.source.format.scan(p.schema.source.path, read, p.types) for p in parts]
        frame = scans[0] if len(scans) == 1 else pl.concat(scans, how="vertical")
        with polars_errors(sources, read):
            out_format.sink(frame.with_columns(exprs), target, compression)
        return
    if isinstance(target, str):  # a URL: spool the stream's rows locally, then upload them whole
        import tempfile

        from normcli.data.storage import upload_file

        with tempfile.NamedTemporaryFile(prefix=".normcli-spool.") as spool:
            _write(parts, exprs, out_format, compression, Path(spool.name), read)
            upload_file(target, spool.name, read.storage)
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
