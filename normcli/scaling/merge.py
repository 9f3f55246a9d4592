"""Merging partial statistics, in order, into a fit: the one step behind fit and ``normcli merge``.

``fit`` folds the statistics of its fragments; ``merge`` folds those of stats files. Both end in
:func:`finish`, and the fold is exact (counts, extremes and :class:`Moments` combine without
rounding), so ``merge`` of the fits of shards equals the fit of their union byte for byte when
the shards are given in the same order. Groups (``--by``) fold the same way, key by key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from normcli.data.schema import NULL
from normcli.errors import DataError
from normcli.scaling.methods import METHODS, unfittable
from normcli.scaling.model import (
    GROUP_KEY,
    NO_VALUES,
    ColumnPartial,
    ColumnStats,
    FitOptions,
    GroupColumn,
    GroupKey,
    GroupTable,
    SkippedColumn,
    Stats,
    key_kind,
)

if TYPE_CHECKING:
    import polars as pl


@dataclass
class GroupFold:
    """One group's rows and its columns' partial statistics so far."""

    rows: int = 0
    columns: dict[str, ColumnPartial] = field(default_factory=dict)

    def add(self, rows: int, columns: Mapping[str, ColumnPartial]) -> None:
        self.rows += rows
        for name, partial in columns.items():
            mine = self.columns.get(name)
            self.columns[name] = partial if mine is None else mine.merge(partial)


@dataclass
class Fold:
    """Statistics of all rows so far: what :func:`finish` turns into a :class:`Stats`.

    ``columns`` are the numeric (or not yet known) columns, ``skipped`` the others; ``order`` is
    the order in which columns were first seen. ``values`` holds every value of columns whose
    method needs them (quantiles). ``groups`` holds each ``--by`` group's partials, by key.
    """

    inputs: list[str] = field(default_factory=list)
    rows: int = 0
    order: list[str] = field(default_factory=list)
    columns: dict[str, ColumnPartial] = field(default_factory=dict)
    skipped: dict[str, SkippedColumn] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    values: dict[str, list[pl.Series]] = field(default_factory=dict)
    groups: dict[GroupKey, GroupFold] = field(default_factory=dict)
    input_columns: list[str] = field(default_factory=list)
    outside: dict[str, int] = field(default_factory=dict)
    """Values outside the bounds of a column's spec (``check``)."""

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

    def add_group(self, key: GroupKey, rows: int, columns: Mapping[str, ColumnPartial]) -> None:
        """Merge one group's partials in (exact, like the pooled columns)."""
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = GroupFold()
        group.add(rows, columns)

    def see_columns(self, names: Sequence[str]) -> None:
        """Record the inputs' columns, in order (new names go at the end)."""
        known = set(self.input_columns)
        self.input_columns.extend(name for name in names if name not in known)


MAX_COUNT = 2**63 - 1
"""The largest row or value count a stats file holds (as any table's rows: a signed 64-bit count)."""


def _check_counts(fold: Fold, by: Sequence[str], where: str) -> None:
    """Refuse counts a stats file cannot hold: only merges of tampered or huge shards reach them,
    and a stats file the loader refuses must never be written."""
    counts: list[tuple[str, int]] = [("the rows", fold.rows)]
    for name, partial in fold.columns.items():
        counts += [(f"column '{name}'", max(partial.count, partial.null_count, partial.nan_count))]
    for key, group in fold.groups.items():
        label = describe_key(by, key)
        counts += [(f"the group {label}", group.rows)]
        for name, partial in group.columns.items():
            counts += [(f"column '{name}' in the group {label}", max(partial.count, partial.null_count, partial.nan_count))]
    for what, count in counts:
        if count > MAX_COUNT:
            raise DataError(
                f"{where}: {what} would count {count:,}, more than a stats file holds (2^63 - 1)",
                hint="check the inputs: are some stats files tampered, or the same shard given twice?",
            )


def finish(fold: Fold, options: FitOptions, null_values: Sequence[str], *, requested: Sequence[str] = (), where: str = "data") -> Stats:
    """Fitted parameters for every column of ``fold`` (exact, then rounded once), and the warnings.

    A column with no values is skipped with a warning (an error if the user asked for it by name);
    infinities are an error; a column of ``unknown`` type that held words is text after all.
    """
    import polars as pl

    _check_counts(fold, options.by, where)
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
            quantiles = method.quantiles(values, options)
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
    groups = _finish_groups(fold, fitted, options, warnings) if options.by else None
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
        by=options.by,
        weight=options.weight,
        quantile_range=options.quantile_range,
        unit_variance=options.unit_variance,
        groups=groups,
        input_columns=tuple(fold.input_columns),
    )


def group_order(key: GroupKey) -> tuple:
    """The order of groups in a stats file: by key, the missing value (null) first."""
    return tuple((value is not None, type(value).__name__, value) if value is not None else (False, "", 0) for value in key)


def describe_key(by: Sequence[str], key: GroupKey) -> str:
    """``store=7, region=north``: a group as messages name it."""
    return ", ".join(f"{name}={'null' if value is None else value}" for name, value in zip(by, key, strict=True))


def _finish_groups(fold: Fold, fitted: Sequence[ColumnStats], options: FitOptions, warnings: list[str]) -> GroupTable:
    """Each group's parameters for the columns the pooled fit has, as arrays ordered by key; what
    cannot be fitted in a group falls back to the pooled statistics, counted in one warning per
    column. The same exact computation as the pooled columns, group by group."""
    import numpy as np

    keys = sorted(fold.groups, key=group_order)
    folds = [fold.groups[key] for key in keys]
    columns = {}
    for pooled in fitted:
        method = METHODS[pooled.method]
        partials = []
        for group in folds:
            partial = group.columns.get(pooled.name)
            if partial is None:
                partial = ColumnPartial(pooled.dtype, null_count=group.rows)
            partials.append(partial)
        numbers: dict[str, list[float]] = {k: [] for k in ("mean", "m2", "std", "center", "center_lo", "scale")}
        extra: dict[str, list] = {}
        fitted_flags, constant, missing = [], [], []
        for key, partial in zip(keys, partials, strict=True):
            if unfittable(partial, options.ddof) is not None:
                fitted_flags.append(False)
                missing.append(key)
                for values in numbers.values():
                    values.append(math.nan)
                for values in extra.values():
                    values.append(math.nan)
                continue
            p = method.parameters(partial, options)
            fitted_flags.append(True)
            if p.constant:
                constant.append(key)
            for name, value in (("mean", p.mean), ("m2", p.m2), ("std", p.std), ("center", p.center), ("center_lo", p.center_lo), ("scale", p.scale)):
                numbers[name].append(math.nan if value is None else value)
            for name, value in (p.extra or {}).items():
                extra.setdefault(name, [math.nan] * (len(fitted_flags) - 1)).append(value)
        weighted = options.weight is not None
        columns[pooled.name] = GroupColumn(
            count=np.array([p.count for p in partials], dtype=np.int64),
            null_count=np.array([p.null_count for p in partials], dtype=np.int64),
            nan_count=np.array([p.nan_count for p in partials], dtype=np.int64),
            min=np.array([p.min for p in partials], dtype=np.float64),
            max=np.array([p.max for p in partials], dtype=np.float64),
            fitted=np.array(fitted_flags, dtype=bool),
            moments=tuple(p.moments for p in partials),
            weight_sum=np.array([float(p.moments.total()) for p in partials]) if weighted else None,
            extra=_group_extra(extra, pooled),
            **{name: np.array(values, dtype=np.float64) for name, values in numbers.items()},
        )
        if constant:
            warnings.append(f"column '{pooled.name}' is constant in {_some_groups(options.by, constant, len(keys))}; scale set to 1 there")
        if missing:
            warnings.append(
                f"column '{pooled.name}' has too few values (or none of positive weight) in "
                f"{_some_groups(options.by, missing, len(keys))}; rows there get the pooled statistics "
                "(or what --unknown-group says)"
            )
    return GroupTable(
        by=options.by,
        keys=tuple(keys),
        row_count=np.array([group.rows for group in folds], dtype=np.int64),
        columns=columns,
    )


def _group_extra(extra: dict[str, list], pooled: ColumnStats) -> dict:
    """A method's own fields per group: arrays of numbers; ``feature_range`` is one pair for all."""
    import numpy as np

    result: dict = {}
    for name in METHODS[pooled.method].fields:
        if name == "feature_range":
            result[name] = pooled.feature_range
        else:
            result[name] = np.array(extra.get(name, []), dtype=np.float64)
    return result


def _some_groups(by: Sequence[str], keys: Sequence[GroupKey], total: int) -> str:
    shown = "; ".join(describe_key(by, key) for key in keys[:3])
    more = ", …" if len(keys) > 3 else ""
    return f"{len(keys)} of {total} groups ({shown}{more})"


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
    ``allow_overlap``: then the rows count twice, as they would in a fit of both). Groups merge
    key by key, exactly like the pooled columns.
    """
    names = list(names or [f"shard {i + 1}" for i in range(len(shards))])
    where = "cannot merge these stats"
    first = shards[0]
    for shard, name in zip(shards[1:], names[1:], strict=True):
        if (shard.ddof, shard.feature_range) != (first.ddof, first.feature_range):
            raise DataError(f"{where}: {name} was fitted with different --ddof or --feature-range than {names[0]}")
        if shard.null_values != first.null_values:
            raise DataError(f"{where}: {name} was fitted with different --null-values than {names[0]}")
        if shard.by != first.by:
            raise DataError(
                f"{where}: {name} was fitted with --by {','.join(shard.by) or '(none)'} but {names[0]} "
                f"with --by {','.join(first.by) or '(none)'}",
                hint="merge fits of the same groups",
            )
        if shard.weight != first.weight:
            raise DataError(
                f"{where}: {name} was fitted with --weight {shard.weight or '(none)'} but {names[0]} "
                f"with --weight {first.weight or '(none)'}",
            )
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
    key_dtypes = _key_dtypes(shards, names, where)
    fold = Fold()
    for shard, name in zip(shards, names, strict=True):
        _add_shard(fold, shard, name, allow_missing_columns)
    for key_name, dtype in key_dtypes.items():  # a shard whose keys were all null does not set the type
        fold.skipped[key_name] = SkippedColumn(key_name, dtype, GROUP_KEY)
    options = FitOptions(
        method=first.default_method,
        method_for={k: v for k, v in methods.items() if v != first.default_method},
        ddof=first.ddof,
        feature_range=first.feature_range,
        by=first.by,
        weight=first.weight,
        quantile_range=first.quantile_range,
        unit_variance=first.unit_variance,
    )
    return finish(fold, options, first.null_values, where=where)


def _key_dtypes(shards: Sequence[Stats], names: Sequence[str], where: str) -> dict[str, str]:
    """The type of each ``--by`` column over all shards: the first that is not ``Null``; keys of
    different kinds (integers in one shard, text in another) are refused, as fit refuses them."""
    result: dict[str, str] = {}
    for key_name in shards[0].by:
        first: tuple[str, str] | None = None
        for shard, name in zip(shards, names, strict=True):
            dtype = shard.by_dtype(key_name)
            if key_kind(dtype) is None:
                continue
            if first is None:
                first = (dtype, name)
            elif key_kind(dtype) != key_kind(first[0]):
                raise DataError(
                    f"{where}: group column '{key_name}' holds {key_kind(first[0])} keys in {first[1]} "
                    f"but {key_kind(dtype)} keys in {name}",
                    hint=f"fit every shard with the same key type, e.g. --dtype '{key_name}=text'",
                )
        result[key_name] = first[0] if first is not None else shards[0].by_dtype(key_name)
    return result


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
    if shard.groups is not None:
        table = shard.groups
        numeric = list(fold.columns)
        for index, key in enumerate(table.keys):
            rows = int(table.row_count[index])
            columns = {
                name: table.columns[name].partial(index, fitted[name].dtype)
                if name in table.columns else ColumnPartial(NULL, null_count=rows)
                for name in numeric
            }
            fold.add_group(key, rows, columns)
    fold.see_columns(shard.all_columns)
    fold.inputs.extend(shard.inputs)
    fold.rows += shard.row_count


def _numbers_and_words(column: str, name: str) -> DataError:
    return DataError(
        f"column '{column}' holds numbers in one input and is not numeric in {name}",
        hint=f"give it one type everywhere, or --exclude '{column}'",
    )
