"""Fitting: inputs → schemas → a plan of fragments → the engine → an exact, ordered merge.

:func:`fit` is what ``normcli fit`` runs. Each input is one fragment (a file, or a stream read
once); the fragment function (:mod:`normcli.scaling.fragments`) computes its partial statistics in
fixed blocks, and :mod:`normcli.scaling.merge` folds them in input order and fits the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING

from normcli.data.diagnostics import _FileText
from normcli.data.formats import DEFAULT_NULL_VALUES, ReadOptions
from normcli.data.inputs import Source, check_distinct_inputs, describe, open_sources
from normcli.data.schema import NULL, SourceSchema, TableSchema, is_numeric_dtype, read_schema, unify
from normcli.errors import DataError, UsageError
from normcli.scaling.engine import Engine, LocalEngine
from normcli.scaling.fragments import ColumnSpec, Fragment
from normcli.scaling.merge import Fold, finish
from normcli.scaling.methods import METHODS
from normcli.scaling.model import ColumnPartial, FitOptions, SkippedColumn, Stats

if TYPE_CHECKING:
    import polars as pl

    from normcli.data.streams import StreamReader


def fit(
    paths: Sequence[str],
    *,
    method: str = "standard",
    method_for: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    ddof: int = 0,
    feature_range: tuple[float, float] = (0.0, 1.0),
    null_values: Sequence[str] = DEFAULT_NULL_VALUES,
    format: str | None = None,
    separator: str | None = None,
    allow_missing_columns: bool = False,
    allow_overlap: bool = False,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
    engine: Engine | None = None,
) -> Stats:
    """Fit scaling statistics over one or more files (or ``-`` for stdin), streaming.

    The keyword arguments mirror ``normcli fit``'s options. Warnings (constant columns, integers past
    2^53, skipped columns) are returned in ``Stats.warnings`` rather than printed. A file given
    twice (under any names) is refused unless ``allow_overlap``, as ``merge`` refuses shards that
    list the same file.

    Example::

        stats = normcli.fit(["train.csv"], method="minmax", method_for={"income": "robust"})
        normcli.save_stats(stats, "stats.json")
    """
    options = FitOptions(
        method=method,
        method_for=dict(method_for or {}),
        columns=tuple(columns) if columns is not None else None,
        exclude=tuple(exclude),
        ddof=ddof,
        feature_range=(float(feature_range[0]), float(feature_range[1])),
    )
    read = ReadOptions(format=format, null_values=tuple(null_values), separator=separator)
    with open_sources(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as sources:
        if not allow_overlap:
            check_distinct_inputs(sources, hint="name each input once, or pass --allow-overlap to count its rows twice")
        return fit_sources(sources, read, options, allow_missing_columns=allow_missing_columns, engine=engine)


def fit_sources(
    sources: Sequence[Source],
    read: ReadOptions,
    options: FitOptions,
    *,
    allow_missing_columns: bool = False,
    engine: Engine | None = None,
) -> Stats:
    """Fit ``options`` over resolved ``sources`` (see :func:`fit`)."""
    schemas, readers, frames = _schemas(sources, read)
    table = unify(schemas, allow_missing_columns)
    specs, skipped = select_columns(table, options)
    if not specs and all(s.sample is not None and s.sample.height == 0 for s in schemas):
        raise _no_rows(sources, read, describe(sources))  # a header and nothing else, from a pipe
    if not specs:
        return finish(Fold(order=list(skipped), skipped=skipped), options, read.null_values, where=describe(sources))
    fragments = [
        Fragment(
            index=index,
            source=schema.source,
            options=read,
            columns=tuple(specs),
            types=dict(schema.types) if schema.source.format.text else None,
            absent=tuple(name for name in table.missing(index) if any(s.name == name for s in specs)),
            reader=readers.get(index),
            data=frames.get(index),
        )
        for index, schema in enumerate(schemas)
    ]
    results = (engine or LocalEngine()).map(fragments)
    fold = Fold(inputs=[s.display for s in sources])
    wanted = {s.name: s for s in specs}
    for name in table.names:
        if name in wanted:
            fold.add_numbers(name, ColumnPartial(wanted[name].dtype))
        elif name in skipped:
            fold.add_text(skipped[name])
    for result in results:
        fold.rows += result.rows
        for name, partial in result.columns.items():
            fold.add_numbers(name, partial)
        for name, count in result.words.items():
            fold.words[name] = fold.words.get(name, 0) + count
        for name, values in result.values.items():
            fold.values.setdefault(name, []).append(values)
    where = describe(sources)
    if fold.rows == 0:
        raise _no_rows(sources, read, where)
    return finish(fold, options, read.null_values, requested=options.columns or (), where=where)


def _schemas(
    sources: Sequence[Source], read: ReadOptions
) -> tuple[list[SourceSchema], dict[int, StreamReader], dict[int, pl.DataFrame]]:
    """Each input's schema. A text stream gets its reader (which holds its first chunk); a
    Parquet stream, which cannot be streamed, is read into memory."""
    from normcli.data.streams import StreamReader, read_parquet_stream

    schemas = []
    readers: dict[int, StreamReader] = {}
    frames: dict[int, pl.DataFrame] = {}
    for index, source in enumerate(sources):
        if source.is_stream and source.format.text:
            readers[index] = StreamReader(source, read)
            schemas.append(read_schema(source, read, readers[index]))
        elif source.is_stream:
            frames[index] = read_parquet_stream(source)
            schemas.append(SourceSchema(source, dict(frames[index].schema), read, sample=frames[index]))
        else:
            schemas.append(read_schema(source, read))
    return schemas, readers, frames


def _no_rows(sources: Sequence[Source], read: ReadOptions, where: str) -> DataError:
    """No input has a data row: an unclosed quote that swallowed the file, or really none."""
    for source in sources:
        if source.path is not None:
            located = _FileText(source, read).structure()
            if located is not None:
                return located
    return DataError(f"{where}: has no data rows", hint="expected at least one row below the header")


def select_columns(table: TableSchema, options: FitOptions) -> tuple[list[ColumnSpec], dict[str, SkippedColumn]]:
    """The columns to fit (in input order) and those skipped, checking every name the user gave."""
    names = table.names
    available = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
    for name in [*(options.columns or ()), *options.exclude, *options.method_for]:
        if name not in table.dtypes:
            raise UsageError(f"no column named '{name}'", hint=f"columns are: {available}")
    requested = set(options.columns) if options.columns is not None else None
    specs: list[ColumnSpec] = []
    skipped: dict[str, SkippedColumn] = {}
    for name in names:
        if name in options.exclude or (requested is not None and name not in requested):
            continue
        dtype = table.dtypes[name]
        if dtype == "String" and requested is not None:
            dtype = _requested_text(table, name)
        if is_numeric_dtype(dtype) or dtype == NULL:
            method = METHODS[options.method_of(name)]
            specs.append(ColumnSpec(name, dtype, unknown=dtype == NULL, keep_values=method.keeps_values))
        elif requested is not None:
            raise DataError(f"column '{name}' is not numeric ({dtype})", hint="leave it out of --columns")
        else:
            skipped[name] = SkippedColumn(name, dtype, f"non-numeric ({dtype})")
    fitted = {s.name for s in specs}
    for name in options.method_for:
        if name not in fitted:
            raise UsageError(f"--method-for names '{name}', which is not fitted", hint="it is excluded or not numeric")
    return specs, skipped


def _requested_text(table: TableSchema, name: str) -> str:
    """A text column the user asked for by name: ``Null`` if it had no values in every sample."""
    if all(s.is_empty(name) for s in table.inputs if name in s.types):
        return NULL
    return "String"


def fit_frame(
    frame: pl.DataFrame,
    options: FitOptions,
    *,
    schema: Mapping[str, pl.DataType] | None = None,
    where: str = "data",
    input_names: Sequence[str] = (),
    null_values: Sequence[str] = DEFAULT_NULL_VALUES,
) -> Stats:
    """Fit ``options`` over an in-memory frame (a training split), as one fragment.

    ``schema`` gives the types to report (those of the file the frame came from), if not its own.
    """
    from normcli.scaling.fragments import BLOCK_ROWS, reblock, summarize

    schema = {name: str(dtype) for name, dtype in (schema or frame.schema).items()}
    table = TableSchema(schema, [])
    specs, skipped = select_columns(table, options)
    result = summarize(reblock([frame], BLOCK_ROWS), specs)
    fold = Fold(inputs=list(input_names), rows=result.rows)
    for name in table.names:
        if name in skipped:
            fold.add_text(skipped[name])
        elif name in result.columns:
            fold.add_numbers(name, result.columns[name])
    for name, values in result.values.items():
        fold.values[name] = [values]
    return finish(fold, options, null_values, requested=options.columns or (), where=where)
