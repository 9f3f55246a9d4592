"""Fitting: inputs → schemas → a plan of fragments → the engine → an exact, ordered merge.

:func:`fit` is what ``normcli fit`` runs. Each input is one fragment (a file, a stream read once)
or, for a large Parquet file, several ranges of its row groups; the engine (local, or a Dask
cluster) runs the fragment function (:mod:`normcli.scaling.fragments`), which computes partial
statistics in fixed blocks, and :mod:`normcli.scaling.merge` folds them in fragment order and fits
the parameters: the same bytes whatever the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING

from normcli.data.diagnostics import _FileText
from normcli.data.formats import DEFAULT_NULL_VALUES, ReadOptions
from normcli.data.inputs import Source, check_distinct_inputs, describe, open_sources
from normcli.data.selection import named, select
from normcli.data.storage import concurrently
from normcli.data.schema import NULL, SourceSchema, TableSchema, is_numeric_dtype, read_schema, unify
from normcli.errors import DataError, UsageError
from normcli.scaling.engine import Engine, LocalEngine
from normcli.scaling.fragments import ColumnSpec, Fragment, row_ranges
from normcli.scaling.merge import Fold, finish
from normcli.scaling.methods import METHODS
from normcli.scaling.groups import check_key_dtype
from normcli.scaling.model import GROUP_KEY, WEIGHT, ColumnPartial, FitOptions, SkippedColumn, Stats

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
    by: Sequence[str] = (),
    weight: str | None = None,
    quantile_range: tuple[float, float] = (25.0, 75.0),
    unit_variance: bool = False,
    null_values: Sequence[str] = DEFAULT_NULL_VALUES,
    format: str | None = None,
    separator: str | None = None,
    has_header: bool = True,
    text: Sequence[str] = (),
    dtypes: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    allow_missing_columns: bool = False,
    allow_overlap: bool = False,
    storage: Sequence[tuple[str, str]] = (),
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
    engine: Engine | None = None,
    progress: Callable[[int], None] | None = None,
) -> Stats:
    """Fit scaling statistics over one or more files (or ``-`` for stdin), streaming.

    The keyword arguments mirror ``normcli fit``'s options (``separator`` is ``-d``, ``has_header``
    is the opposite of ``--no-headers``, ``text`` and ``dtypes`` are ``--text`` and ``--dtype``:
    column patterns, and pattern → type such as ``"text"`` or ``"int"``; ``storage``:
    ``--storage-option`` pairs for inputs named by URL; ``engine``: where fragments run, e.g. a
    :class:`~normcli.scaling.engine.DaskEngine`). Warnings (constant columns, integers past 2^53,
    skipped columns) are returned in ``Stats.warnings`` rather than printed. ``progress`` is
    called with the number of rows read so far, as the work goes. A file given twice (under any
    names) is refused unless ``allow_overlap``, as ``merge`` refuses shards that list the same file.

    ``by`` fits every column per group of rows too (the pooled statistics stay those of all rows);
    ``weight`` names a column of frequency weights (a row of weight w counts as w rows).

    Example::

        stats = normcli.fit(["train.csv"], method="minmax", method_for={"income": "robust"})
        normcli.save_stats(stats, "stats.json")
        per_store = normcli.fit(["sales.parquet"], by=["store"], weight="visits")
    """
    options = FitOptions(
        method=method,
        method_for=dict(method_for or {}),
        columns=tuple(columns) if columns is not None else None,
        exclude=tuple(exclude),
        ddof=ddof,
        feature_range=(float(feature_range[0]), float(feature_range[1])),
        by=tuple(by),
        weight=weight,
        quantile_range=(float(quantile_range[0]), float(quantile_range[1])),
        unit_variance=unit_variance,
    )
    read = ReadOptions.of(
        format=format, null_values=null_values, separator=separator, has_header=has_header,
        text=text, dtypes=dtypes, storage=storage,
    )  # fmt: skip
    with open_sources(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as sources:
        if not allow_overlap:
            check_distinct_inputs(sources, hint="name each input once, or pass --allow-overlap to count its rows twice")
        return fit_sources(sources, read, options, allow_missing_columns=allow_missing_columns, engine=engine, progress=progress)


def fit_sources(
    sources: Sequence[Source],
    read: ReadOptions,
    options: FitOptions,
    *,
    allow_missing_columns: bool = False,
    engine: Engine | None = None,
    progress: Callable[[int], None] | None = None,
) -> Stats:
    """Fit ``options`` over resolved ``sources`` (see :func:`fit`)."""
    scanned = scan_inputs(sources, read, allow_missing_columns)
    table = scanned.table
    choice = select_columns(table, options)
    specs, skipped, options = choice.specs, choice.skipped, choice.options
    if not specs and all(s.sample is not None and s.sample.height == 0 for s in scanned.schemas):
        raise _no_rows(sources, read, describe(sources))  # a header and nothing else, from a pipe
    hints = _numbers_with_words(scanned.schemas, skipped)
    if not specs:
        fold = Fold(order=list(skipped), skipped=skipped, input_columns=table.names)
        stats = finish(fold, options, read.null_values, where=describe(sources))
        return replace(stats, warnings=(*stats.warnings, *hints))
    fold = fold_fragments(scanned, specs, skipped, by=options.by, engine=engine, progress=progress)
    stats = finish(fold, options, read.null_values, requested=sorted(choice.by_name), where=describe(sources))
    return replace(stats, warnings=(*stats.warnings, *hints, *_idle_options(options, stats)))


def _idle_options(options: FitOptions, stats: Stats) -> list[str]:
    """Warnings for a method's options given while no fitted column uses that method (as --clip
    warns in transform): they change nothing, and the user probably meant another method."""
    methods = {c.method for c in stats.columns}
    idle = []
    if "robust" not in methods:
        if options.quantile_range != FitOptions.quantile_range:
            idle.append("--quantile-range")
        if options.unit_variance:
            idle.append("--unit-variance")
    if "minmax" not in methods and options.feature_range != FitOptions.feature_range:
        idle.append("--feature-range")
    return [
        f"{option} does nothing here: no fitted column uses {'robust' if option != '--feature-range' else 'minmax'} "
        f"(choose it with --method or --method-for)"
        for option in idle
    ]


@dataclass
class Scanned:
    """Resolved inputs ready for the fragment engine: each one's schema (a text stream with its
    reader, a Parquet stream read into memory) and the one unified schema."""

    sources: Sequence[Source]
    read: ReadOptions
    schemas: list[SourceSchema]
    readers: dict[int, StreamReader]
    frames: dict[int, pl.DataFrame]
    table: TableSchema


def scan_inputs(sources: Sequence[Source], read: ReadOptions, allow_missing_columns: bool = False) -> Scanned:
    """Each input's schema and the unified schema (the rule of :mod:`normcli.data.schema`)."""
    schemas, readers, frames = _schemas(sources, read)
    return Scanned(sources, read, schemas, readers, frames, unify(schemas, allow_missing_columns))


def fold_fragments(
    scanned: Scanned,
    specs: Sequence[ColumnSpec],
    skipped: Mapping[str, SkippedColumn],
    *,
    by: Sequence[str] = (),
    engine: Engine | None = None,
    progress: Callable[[int], None] | None = None,
) -> Fold:
    """The exact, ordered merge of the fragment statistics of ``specs`` over every input (on a
    cluster a large Parquet file is several fragments: ranges of its row groups).

    Fragments are cut at block boundaries, so the statistics do not depend on the cutting: the
    local engine reads each file whole (splitting would only add scans and a footer read with
    pyarrow, ~0.1 s of imports), a cluster reads the pieces in parallel, and both give the same
    bytes (:attr:`~normcli.scaling.engine.Engine.splits_files`).
    """
    sources, read, table, schemas = scanned.sources, scanned.read, scanned.table, scanned.schemas
    weights = {s.weight for s in specs if s.weight is not None}
    for name, option in [*((n, "--by") for n in by), *((n, "--weight") for n in weights)]:
        lacking = table.lacking(name)
        if lacking is not None:  # --allow-missing-columns reads fitted columns as empty, not these
            raise DataError(
                f"{lacking.source.display}: has no column '{name}', which {option} names",
                hint=f"every input needs the {option} column, even with --allow-missing-columns",
            )
    engine = engine or LocalEngine()
    if engine.splits_files:
        names = [s.path or "" for s in sources]
        ranges = concurrently(lambda schema: row_ranges(schema.source, schema.options), list(schemas), names)
    else:
        ranges = [[None] for _ in schemas]
    fragments = []
    for index, schema in enumerate(schemas):
        for rows in ranges[index]:
            fragments.append(
                Fragment(
                    index=len(fragments),
                    source=schema.source,
                    options=schema.options,
                    columns=tuple(specs),
                    types=dict(schema.types) if schema.source.format.text else None,
                    absent=tuple(name for name in table.missing(index) if any(s.name == name for s in specs)),
                    rows=rows,
                    reader=scanned.readers.get(index),
                    data=scanned.frames.get(index),
                    by=tuple(by),
                )
            )
    results = engine.map(fragments, progress)
    fold = Fold(inputs=[s.display for s in sources], input_columns=table.names)
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
        for name, count in result.outside.items():
            fold.outside[name] = fold.outside.get(name, 0) + count
        if result.groups is not None:
            for key, rows, columns in result.groups.items():
                fold.add_group(key, rows, columns)
    if fold.rows == 0:
        raise _no_rows(sources, read, describe(sources))
    return fold


def _numbers_with_words(schemas: Sequence[SourceSchema], skipped: Mapping[str, SkippedColumn]) -> list[str]:
    """Warnings for skipped text columns that are mostly numbers: the first value that is not
    one (it made the column text) and how to fix it."""
    warnings = []
    for name, column in skipped.items():
        if column.dtype != "String":
            continue
        for schema in schemas:
            found = schema.mostly_numbers(name) if schema.source.format.text else None
            if found is not None:
                line, value = found
                warnings.append(
                    f"column '{name}' is skipped as text, but most of its values are numbers: "
                    f"'{value}' at line {line} of {schema.source.display} is not (blank it, add it to --null-values, "
                    f"or pass --dtype '{name}=float' to read the column as numbers)"
                )
                break
    return warnings


def _schemas(
    sources: Sequence[Source], read: ReadOptions
) -> tuple[list[SourceSchema], dict[int, StreamReader], dict[int, pl.DataFrame]]:
    """Each input's schema. A text stream gets its reader (which holds its first chunk); a
    Parquet stream, which cannot be streamed, is read into memory."""
    from normcli.data.streams import StreamReader, read_parquet_stream

    files = [s for s in sources if not s.is_stream]
    inferred = dict(zip(files, concurrently(lambda source: read_schema(source, read), files, [s.path or "" for s in files]), strict=True))
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
            schemas[-1].fix_types()
        else:
            schemas.append(inferred[source])
    return schemas, readers, frames


def _no_rows(sources: Sequence[Source], read: ReadOptions, where: str) -> DataError:
    """No input has a data row: an unclosed quote that swallowed the file, or really none."""
    for source in sources:
        if source.path is not None:
            located = _FileText(source, read).structure()
            if located is not None:
                return located
    return DataError(f"{where}: has no data rows", hint="expected at least one row below the header")


@dataclass
class ColumnChoice:
    """What :func:`select_columns` decided: the columns to fit (in input order), those skipped,
    the options with every column pattern resolved to names, and the columns named exactly in
    ``--columns`` (which must be usable: numeric, with values)."""

    specs: list[ColumnSpec]
    skipped: dict[str, SkippedColumn]
    options: FitOptions
    by_name: set[str]


def select_columns(table: TableSchema, options: FitOptions) -> ColumnChoice:
    """Choose the columns to fit, resolving the column patterns (:mod:`normcli.data.selection`;
    an item matching nothing is an error).

    A column named exactly in ``--columns`` must be numeric; one that a glob, regex or range
    selects is skipped (and named) if it is not. The ``--by`` and ``--weight`` columns are used
    but not fitted: they are listed as skipped, with their own reasons.
    """
    names = table.names
    available = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
    weights = [options.weight] if options.weight is not None else []
    for name in [*options.by, *weights]:
        if name not in table.dtypes:
            raise UsageError(f"no column named '{name}'", hint=f"columns are: {available}")
    roles = {**dict.fromkeys(options.by, GROUP_KEY), **dict.fromkeys(weights, WEIGHT)}
    requested = None if options.columns is None else select(options.columns, names, "--columns")
    by_name = named(options.columns or (), names, "--columns")
    exclude = set(select(options.exclude, names, "--exclude"))
    method_for: dict[str, str] = {}
    for pattern, method in options.method_for.items():
        method_for.update(dict.fromkeys(select([pattern], names, "--method-for"), method))
    for name in roles:
        if name in by_name or name in named(options.method_for, names, "--method-for"):
            option = "--by" if roles[name] == GROUP_KEY else "--weight"
            raise UsageError(f"column '{name}' is named by {option}, so it cannot be fitted too", hint="leave it out of --columns and --method-for")
    resolved = replace(
        options, columns=tuple(requested) if requested is not None else None, exclude=tuple(exclude), method_for=method_for
    )
    wanted = set(requested) if requested is not None else None
    specs: list[ColumnSpec] = []
    skipped: dict[str, SkippedColumn] = {}
    for name in names:
        if name in roles:
            skipped[name] = SkippedColumn(name, _role_dtype(table, name, roles[name]), roles[name])
            continue
        if name in exclude or (wanted is not None and name not in wanted):
            continue
        dtype = table.dtypes[name]
        if dtype == "String" and name in by_name:
            dtype = _requested_text(table, name)
        if is_numeric_dtype(dtype) or dtype == NULL:
            method = METHODS[resolved.method_of(name)]
            _check_method_options(name, method.name, resolved)
            specs.append(
                ColumnSpec(name, dtype, unknown=dtype == NULL, keep_values=method.keeps_values, weight=options.weight)
            )
        elif name in by_name:
            raise DataError(f"column '{name}' is not numeric ({dtype})", hint="leave it out of --columns")
        else:
            skipped[name] = SkippedColumn(name, dtype, f"non-numeric ({dtype})")
    fitted = {s.name for s in specs}
    for name in named(options.method_for, names, "--method-for"):
        if name not in fitted:
            raise UsageError(f"--method-for names '{name}', which is not fitted", hint="it is excluded or not numeric")
    return ColumnChoice(specs, skipped, resolved, by_name)


def _role_dtype(table: TableSchema, name: str, role: str) -> str:
    """The type of a ``--by`` or ``--weight`` column, checked for its role."""
    dtype = table.dtypes[name]
    if role == WEIGHT:
        if not (is_numeric_dtype(dtype) or dtype == NULL):
            raise DataError(f"weight column '{name}' is not numeric ({dtype})", hint="--weight names a column of non-negative numbers")
        return dtype
    check_key_dtype(name, dtype)
    return dtype


def _check_method_options(name: str, method: str, options: FitOptions) -> None:
    """Methods that keep every value (robust's quantiles) do not merge: not per group, not weighted."""
    if not METHODS[method].mergeable and (options.by or options.weight):
        option = "--by" if options.by else "--weight"
        raise UsageError(
            f"column '{name}' is {method}, which cannot be fitted with {option} (its quantiles do not merge"
            + (" and are not defined for frequency weights" if option == "--weight" else "") + ")",
            hint=f"use another method for it (--method-for '{name}=standard'), or drop {option}",
        )


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
    choice = select_columns(table, options)
    specs, skipped, options = choice.specs, choice.skipped, choice.options
    result = summarize(reblock([frame], BLOCK_ROWS), specs, by=options.by, where=where)
    fold = Fold(inputs=list(input_names), rows=result.rows, input_columns=table.names)
    for name in table.names:
        if name in skipped:
            fold.add_text(skipped[name])
        elif name in result.columns:
            fold.add_numbers(name, result.columns[name])
    for name, values in result.values.items():
        fold.values[name] = [values]
    if result.groups is not None:
        for key, rows, columns in result.groups.items():
            fold.add_group(key, rows, columns)
    return finish(fold, options, null_values, requested=sorted(choice.by_name), where=where)
