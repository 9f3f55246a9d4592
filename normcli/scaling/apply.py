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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from normcli.data.dataset import is_dataset_target
from normcli.data.diagnostics import polars_errors
from normcli.data.formats import Format, ReadOptions, dtype_pairs
from normcli.data.inputs import Source, describe, has_no_data_rows, open_sources
from normcli.data.outputs import atomic_path, check_output_target, output_format, writing
from normcli.data.schema import NULL, SourceSchema, is_numeric_dtype, read_schema
from normcli.errors import DataError, UsageError
from normcli.scaling.engine import Engine, LocalEngine
from normcli.scaling.methods import METHODS
from normcli.scaling.model import ColumnStats, Stats
from normcli.scaling.statsfile import load_stats

if TYPE_CHECKING:
    import polars as pl

    from normcli.data.streams import StreamReader

FrameT = TypeVar("FrameT", "pl.DataFrame", "pl.LazyFrame")


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
    has_header: bool = True,
    text: Sequence[str] = (),
    dtypes: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    storage: Sequence[tuple[str, str]] = (),
    engine: Engine | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
    progress: Callable[[int], None] | None = None,
) -> TransformReport:
    """Apply ``stats`` (a :class:`Stats`, a stats file, or ``-`` for stdin) to inputs and write ``output``.

    ``output`` ``-`` streams to ``stdout`` (CSV unless ``output_format_name``); a path is written via
    a temporary file renamed into place on success. Missing-value tokens default to those of the fit.
    The reading options are those of :func:`normcli.scaling.fit.fit`; CSV output keeps the inputs'
    delimiter, and has no header line when they had none. ``progress`` is called with the rows
    written so far when an input is a stream (files are written by Polars in one query).
    A folder (``out/``) or a Dask ``engine`` writes a dataset: one part per input fragment.

    Example::

        normcli.transform(["new.csv"], stats="stats.json", output="new-scaled.parquet")
    """
    stats_file = None if isinstance(stats, Stats) or str(stats) == "-" else str(stats)
    if not isinstance(stats, Stats):
        stats = load_stats(stats, tuple(storage), stdin=stdin, stdin_is_terminal=stdin_is_terminal, data=paths)
    if inverse and clip:
        raise UsageError("--clip and --inverse cannot be combined", hint="clip applies to the forward transform")
    read = ReadOptions(
        format=format,
        null_values=tuple(null_values) if null_values is not None else stats.null_values,
        separator=separator,
        has_header=has_header,
        text=tuple(text),
        dtypes=dtype_pairs(dtypes),
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
        if all(has_no_data_rows(s, read) for s in sources):
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        plan = _plan(sources, read, stats, out_format, report)
        exprs = scaling_expressions(stats, inverse=inverse, clip=clip, float32=float32)
        integers = _Integers(stats) if inverse else None
        stream = stdout if stdout is not None else sys.stdout.buffer
        if target is None:
            with writing("the output"):
                _write(plan, exprs, out_format, compression, stream, read, integers, progress)
        else:
            with atomic_path(target) as temp:
                _write(plan, exprs, out_format, compression, temp, read, integers, progress)
        if integers is not None:
            report.notes.extend(integers.notes(streamed_parquet=any(p.reader for p in plan) and not out_format.text))
    return report


class _Integers:
    """``--inverse``: columns fitted as integers come back as integers when every value does.

    The integer of a scaled value ``y`` is the one the transform maps to exactly ``y``: the
    rounded restored value ``round(x)``, or its neighbour when float error in ``x`` passed half a
    unit (integers near 2^52). Below 2^52 that map is one-to-one, so the integer found is the one
    ``y`` came from. A value with no such integer (edited, rounded, written as float32) fails.
    Files are checked in one pass before anything is written, so a column is all integers or, with
    a note, all floats. A stream cannot be read twice: each chunk is decided on its own (text
    output has no column types: CSV and NDJSON readers see integers where they restore), and
    Parquet from a stream keeps floats, with a note.
    """

    def __init__(self, stats: Stats) -> None:
        self.columns = [(i, c) for i, c in enumerate(stats.columns) if c.dtype.startswith(("Int", "UInt"))]
        self.failed: dict[str, int] = {}

    def _temporaries(self) -> list[pl.Expr]:
        """round(x) and its neighbours, as columns (the transform applies to named columns)."""
        exprs = []
        for i, column in self.columns:
            rounded = METHODS[column.method].expression(column, inverse=True).round()
            exprs += [rounded.alias(f"\x00{i}"), (rounded - 1).alias(f"\x00{i}-"), (rounded + 1).alias(f"\x00{i}+")]
        return exprs

    def _restored(self, i: int, column: ColumnStats) -> pl.Expr:
        """The integer whose transform is exactly the value read (null when there is none)."""
        import polars as pl

        y = pl.col(column.name).cast(pl.Float64)
        chosen = pl.lit(None, dtype=pl.Float64)
        for name in (f"\x00{i}+", f"\x00{i}-", f"\x00{i}"):  # the last one set wins: round(x) first
            candidate = pl.col(name)
            exact = METHODS[column.method].expression(replace(column, name=name)) == y
            chosen = pl.when(candidate.is_finite() & (candidate.abs() < 2.0**63) & exact).then(candidate).otherwise(chosen)
        return chosen

    def failures(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """One row: per integer column, how many values have no integer (see the class)."""
        import polars as pl

        checks = [
            (pl.col(c.name).is_not_null() & self._restored(i, c).is_null()).sum().alias(str(i)) for i, c in self.columns
        ]  # fmt: skip
        return frame.with_columns(self._temporaries()).select(checks)

    def apply(self, frame: FrameT, exprs: list[pl.Expr], failures: pl.DataFrame) -> FrameT:
        """``frame`` with ``exprs`` applied, the integer columns without failures restored as
        integers of their fitted type."""
        import polars as pl

        exprs = list(exprs)
        for i, column in self.columns:
            count = int(failures[str(i)][0])
            if count:
                self.failed[column.name] = self.failed.get(column.name, 0) + count
            else:
                exprs[i] = self._restored(i, column).cast(getattr(pl, column.dtype, pl.Int64)).alias(column.name)
        temporaries = self._temporaries()
        return frame.with_columns(temporaries).with_columns(exprs).drop([t.meta.output_name() for t in temporaries])

    def notes(self, streamed_parquet: bool) -> list[str]:
        if streamed_parquet and self.columns:
            names = ", ".join(f"'{c.name}'" for _, c in self.columns)
            return [f"columns fitted as integers ({names}) are written as floats: Parquet from a stream cannot be checked before it is written (transform a file to restore them)"]
        return [
            f"column '{name}' was fitted as integers, but {count} restored value{'s are' if count > 1 else ' is'} "
            "not exactly an integer: written as floats"
            for name, count in self.failed.items()
        ]
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
            task.format.sink(frame.with_columns(exprs), task.target, None, task.read.storage, options=task.read)
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
        if all(has_no_data_rows(s, read) for s in sources):
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        plan = _plan(sources, read, stats, out_format, report)
        with DatasetWriter(output, out_format.extensions[0].lstrip("."), read.storage) as writer:
            tasks: list[PartTask] = []
            infos: list[PartInfo] = []
            schemas = [part.schema for part in plan]
            ranges = concurrently(lambda schema: row_ranges(schema.source, schema.options), schemas, [s.source.path or "" for s in schemas])
            for part, source_ranges in zip(plan, ranges, strict=True):
                source, options = part.schema.source, part.schema.options
                for rows in source_ranges:
                    index = len(tasks)
                    tasks.append(PartTask(source, options, part.types, rows, stats, inverse, clip, float32, out_format, writer.part(index)))
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
    integers = [f"'{c.name}'" for c in stats.columns if inverse and c.dtype.startswith(("Int", "UInt"))]
    if integers:  # the parts are written independently: one could not be checked against the others
        report.notes.append(f"columns fitted as integers ({', '.join(integers)}) are written as floats in a dataset folder")
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
        schema = read_schema(source, read, reader, wanted=stats.names)
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
                types[name] = types[name] if name in schema.options.fixed else pl.Float64
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
        yield from source.format.scan(source.path, part.schema.options, part.types).collect_batches()


def _write(
    parts: list[_Part], exprs: list[pl.Expr], out_format: Format, compression: str | None, target, read: ReadOptions,
    integers: _Integers | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Files only: one lazy query sunk by Polars. With a stream: frame by frame, flushed as it goes.
    ``integers`` (``--inverse``): fitted integer columns restored (see :class:`_Integers`)."""
    import polars as pl

    sources = [p.schema.source for p in parts]
    if not any(p.reader for p in parts):
        scans = [p.schema.source.format.scan(p.schema.source.path, p.schema.options, p.types) for p in parts]
        frame = scans[0] if len(scans) == 1 else pl.concat(scans, how="vertical")
        with polars_errors(sources, read):
            if integers is not None and integers.columns:
                frame = integers.apply(frame, exprs, integers.failures(frame).collect(engine="streaming"))
            else:
                frame = frame.with_columns(exprs)
            out_format.sink(frame, target, compression, options=read)
        return
    if isinstance(target, str):  # a URL: spool the stream's rows locally, then upload them whole
        import tempfile

        from normcli.data.storage import upload_file

        with tempfile.NamedTemporaryFile(prefix=".normcli-spool.") as spool:
            _write(parts, exprs, out_format, compression, Path(spool.name), read, integers, progress)
            upload_file(target, spool.name, read.storage)
        return
    per_chunk = integers is not None and bool(integers.columns) and out_format.text
    opened = open(target, "wb") if isinstance(target, Path) else None  # noqa: SIM115
    try:
        writer = out_format.batch_writer(opened or target, compression, read)
        wrote, written = False, 0
        for part in parts:
            for frame in _frames(part, read):
                if per_chunk:
                    writer.write(integers.apply(frame, exprs, integers.failures(frame.lazy()).collect()))  # type: ignore[union-attr]
                else:
                    writer.write(frame.with_columns(exprs))
                wrote = True
                if progress is not None:
                    written += frame.height
                    progress(written)
        if not wrote:
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        writer.close()
    finally:
        if opened is not None:
            opened.close()
