"""Merging partial statistics, in order, into a fit: the one step behind fit and ``normcli merge``.

``fit`` folds the statistics of its fragments; ``merge`` folds those of stats files. Both end in
:func:`finish`, and the fold is exact (counts, extremes and :class:`Moments` combine without
rounding), so ``merge`` of the fits of shards equals the fit of their union byte for byte when
the shards are given in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from normcli.data.schema import NULL
from normcli.errors import DataError
from normcli.scaling.methods import METHODS
from normcli.scaling.model import NO_VALUES, ColumnPartial, FitOptions, SkippedColumn, Stats

if TYPE_CHECKING:
    import polars as pl


@dataclass
class Fold:
    """Statistics of all rows so far: what :func:`finish` turns into a :class:`Stats`.

    ``columns`` are the numeric (or not yet known) columns, ``skipped`` the others; ``order`` is
    the order in which columns were first seen. ``values`` holds every value of columns whose
    method needs them (quantiles).
    """

    inputs: list[str] = field(default_factory=list)
    rows: int = 0
    order: list[str] = field(default_factory=list)
    columns: dict[str, ColumnPartial] = field(default_factory=dict)
    skipped: dict[str, SkippedColumn] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    values: dict[str, list[pl.Series]] = field(default_factory=dict)

    def _see(self, name: str) -> None:
        if name not in self.columns and name not in self.skipped:
            self.order.append(name)

    def add_numbers(self, name: str, partial: ColumnPartial, where: str = "") -> None:
        """Merge a numeric column's partial in (a column with no values leaves text as text)."""
        if name in self.skipped:
            if partial.count:
                raise _numbers_and_words(name, where)
            return
        self._see(name)
        mine = self.columns.get(name)
        self.columns[name] = partial if mine is None else mine.merge(partial)

    def add_text(self, column: SkippedColumn, where: str = "") -> None:
        """A column that is not numeric here: refused if it held numbers so far."""
        mine = self.columns.pop(column.name, None)
        if mine is not None and mine.count:
            self.columns[column.name] = mine
            raise _numbers_and_words(column.name, where)
        if mine is None:
            self._see(column.name)
        self.skipped.setdefault(column.name, column)


def finish(fold: Fold, options: FitOptions, null_values: Sequence[str], *, requested: Sequence[str] = (), where: str = "data") -> Stats:
    """Fitted parameters for every column of ``fold`` (exact, then rounded once), and the warnings.

    A column with no values is skipped with a warning (an error if the user asked for it by name);
    infinities are an error; a column of ``unknown`` type that held words is text after all.
    """
    import polars as pl

    warnings: list[str] = []
    fitted = []
    skipped = dict(fold.skipped)
    for name, partial in fold.columns.items():
        if fold.words.get(name):
            skipped[name] = SkippedColumn(name, "String", "non-numeric (String)")
            continue
        if partial.inf_count:
            count = partial.inf_count
            raise DataError(
                f"{where}: column '{name}' has {count} infinite value{'s' if count != 1 else ''}",
                hint=f"remove or blank them, or --exclude '{name}'",
            )
        if partial.count == 0:
            if name in requested:
                raise DataError(f"{where}: column '{name}' has no values (all missing)", hint="drop it from --columns")
            skipped[name] = SkippedColumn(name, partial.dtype if partial.dtype != "String" else NULL, f"{NO_VALUES} (all missing)")
            warnings.append(f"column '{name}' has no values; skipped")
            continue
        method = METHODS[options.method_of(name)]
        quantiles = None
        if method.keeps_values:
            values = pl.concat(fold.values[name]) if len(fold.values.get(name, [])) > 1 else fold.values[name][0]
            quantiles = {
                "q1": float(values.quantile(0.25, interpolation="linear")),
                "median": float(values.median()),
                "q3": float(values.quantile(0.75, interpolation="linear")),
            }
        if partial.dtype == NULL:  # an unknown column that turned out to hold numbers
            partial = replace(partial, dtype="Float64")
        column, notes = method.finish(name, partial, options, quantiles)
        fitted.append(column)
        warnings.extend(notes)
    skipped_list = [skipped[name] for name in fold.order if name in skipped]
    if not fitted:
        others = ", ".join(f"{s.name} ({s.reason})" for s in skipped_list[:5])
        raise DataError(
            f"{where}: no numeric column to fit" + (f"; skipped: {others}" if others else ""),
            hint="check the --delimiter and --null-values; --dtype COL=float reads a column as numbers",
        )
    non_numeric = [s.name for s in skipped_list if s.reason.startswith("non-numeric")]
    if non_numeric:
        warnings.insert(0, f"skipped non-numeric columns: {', '.join(non_numeric)}")
    return Stats(
        inputs=tuple(fold.inputs),
        row_count=fold.rows,
        ddof=options.ddof,
        feature_range=options.feature_range,
        null_values=tuple(null_values),
        default_method=options.method,
        columns=tuple(fitted),
        skipped=tuple(skipped_list),
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------- merging stats files


def merge_stats(
    shards: Sequence[Stats],
    *,
    names: Sequence[str] | None = None,
    allow_overlap: bool = False,
    allow_missing_columns: bool = False,
) -> Stats:
    """Merge fits of disjoint shards into the fit of their union, without reading the data.

    Columns fitted in one shard and without values in another take the other's rows as missing;
    a column numeric in one shard and text in another is refused, as are robust columns (quantiles
    do not merge), different options, and shards that list the same input file (unless
    ``allow_overlap``: then the rows count twice, as they would in a fit of both).
    """
    names = list(names or [f"shard {i + 1}" for i in range(len(shards))])
    where = "cannot merge these stats"
    first = shards[0]
    for shard, name in zip(shards[1:], names[1:], strict=True):
        if (shard.ddof, shard.feature_range) != (first.ddof, first.feature_range):
            raise DataError(f"{where}: {name} was fitted with different --ddof or --feature-range than {names[0]}")
        if shard.null_values != first.null_values:
            raise DataError(f"{where}: {name} was fitted with different --null-values than {names[0]}")
    methods: dict[str, str] = {}
    for shard, name in zip(shards, names, strict=True):
        for column in shard.columns:
            if methods.setdefault(column.name, column.method) != column.method:
                raise DataError(f"{where}: column '{column.name}' is {methods[column.name]} in one and {column.method} in {name}")
            if not METHODS[column.method].mergeable:
                raise DataError(
                    f"{where}: column '{column.name}' is {column.method}, and quantiles do not merge",
                    hint="fit all shards at once: normcli fit 'part-*.csv'",
                )
    if not allow_overlap:
        _refuse_overlap(shards, names)
    fold = Fold()
    for shard, name in zip(shards, names, strict=True):
        _add_shard(fold, shard, name, allow_missing_columns)
    options = FitOptions(
        method=first.default_method,
        method_for={k: v for k, v in methods.items() if v != first.default_method},
        ddof=first.ddof,
        feature_range=first.feature_range,
    )
    return finish(fold, options, first.null_values, where=where)


def _refuse_overlap(shards: Sequence[Stats], names: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for shard, name in zip(shards, names, strict=True):
        for file in shard.inputs:
            if file == "<stdin>":
                continue
            if file in seen:
                raise DataError(
                    f"cannot merge these stats: {seen[file]} and {name} both list the input '{file}'",
                    hint="merge fits of disjoint shards, or pass --allow-overlap to count those rows twice",
                )
            seen[file] = name


def _add_shard(fold: Fold, shard: Stats, name: str, allow_missing_columns: bool) -> None:
    """Fold one shard in: its fitted columns, its skipped ones, and empty columns for the rest."""
    fitted = {c.name: c for c in shard.columns}
    skipped = {s.name: s for s in shard.skipped}
    first = not fold.inputs
    for column in list(dict.fromkeys([*fold.order, *[c.name for c in shard.columns], *skipped])):
        if column in fitted:
            fold.add_numbers(column, fitted[column].partial(), name)
        elif column in skipped and not skipped[column].has_no_values:
            fold.add_text(skipped[column], name)
        elif column in skipped or allow_missing_columns or first:
            fold.add_numbers(column, ColumnPartial(NULL, null_count=shard.row_count), name)
        else:
            raise DataError(
                f"cannot merge these stats: {name} has no column '{column}'",
                hint="merge shards with the same columns, or pass --allow-missing-columns",
            )
    fold.inputs.extend(shard.inputs)
    fold.rows += shard.row_count


def _numbers_and_words(column: str, name: str) -> DataError:
    return DataError(
        f"column '{column}' holds numbers in one input and is not numeric in {name}",
        hint=f"give it one type everywhere, or --exclude '{column}'",
    )
