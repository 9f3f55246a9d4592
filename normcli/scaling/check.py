"""Does new data still look like the data the stats were fitted on? (``normcli check``)

A check is a fit of the new data — the same fragment engine, streaming and exact — compared with
the stats, plus a count of values outside each column's fitted [min, max]. Per fitted column:

* rows and the share of missing values (null or NaN), then and now;
* the mean shift, in fitted standard deviations: ``(mean_now − mean_then) / std_then``;
* the std ratio ``std_now / std_then`` (with the fit's ``--ddof``; weighted if the fit was and the
  new data have the weight column);
* the share of values outside the fitted [min, max];
* the type then and now; and which fitted columns are missing, which columns are new.

A column fails when a measure is beyond its threshold (:class:`Thresholds`), when it is missing,
no longer numeric, or has no values. A numeric type change (Int64 → Float64) and new columns are
reported but do not fail. Data that look already transformed with these stats — every column's
mean and std within 10% of what transform produces, while the raw comparison fails — are reported
as such (and fail: transforming them would scale them twice). With groups (``--by``), the groups
the stats do not have are counted (their rows get the pooled statistics in transform), and the
largest per-group mean shift of each column is reported; neither fails the check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from normcli.data.formats import ReadOptions
from normcli.data.inputs import open_sources
from normcli.data.schema import NULL, is_numeric_dtype
from normcli.errors import UsageError
from normcli.scaling.exact import Moments
from normcli.scaling.fit import fold_fragments, scan_inputs
from normcli.scaling.fragments import ColumnSpec
from normcli.scaling.merge import GroupFold, describe_key
from normcli.scaling.model import ColumnPartial, ColumnStats, GroupKey, Stats
from normcli.scaling.statsfile import load_stats

TRANSFORMED_TOLERANCE = 0.1
"""How close to the mean and std transform produces new data must be to look transformed already."""


@dataclass(frozen=True)
class Thresholds:
    """How far new data may drift before the check fails (the defaults are ``normcli check``'s)."""

    max_shift: float = 0.25
    """|mean shift| in fitted standard deviations (0.25: a quarter of a standard deviation)."""
    max_std_ratio: float = 1.5
    """std now / then must lie within [1/r, r]."""
    max_null_rate_change: float = 0.05
    """|share of missing values now − then| (0.05: five percentage points)."""
    max_out_of_range: float = 0.01
    """Share of the values outside the fitted [min, max] (0.01: one in a hundred)."""

    def __post_init__(self) -> None:
        for name, value in (
            ("--max-shift", self.max_shift),
            ("--max-null-rate-change", self.max_null_rate_change),
            ("--max-out-of-range", self.max_out_of_range),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"{name} must be a number ≥ 0, not {value:g}")
        if not (math.isfinite(self.max_std_ratio) and self.max_std_ratio >= 1):
            raise UsageError(f"--max-std-ratio must be a number ≥ 1, not {self.max_std_ratio:g}")


@dataclass
class ColumnCheck:
    """One fitted column compared: its numbers then and now, and what is beyond the thresholds."""

    name: str
    dtype_then: str
    dtype_now: str | None
    count_then: int
    count_now: int = 0
    missing_then: float = 0.0
    missing_now: float | None = None
    mean_then: float = 0.0
    mean_now: float | None = None
    std_then: float = 0.0
    std_now: float | None = None
    shift: float | None = None
    std_ratio: float | None = None
    outside: int = 0
    outside_share: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    worst_group: tuple[str, float] | None = None
    looks_transformed: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        def finite(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        entry: dict[str, Any] = {
            "name": self.name,
            "ok": self.ok,
            "problems": self.problems,
            "notes": self.notes,
            "dtype": {"then": self.dtype_then, "now": self.dtype_now},
            "count": {"then": self.count_then, "now": self.count_now},
            "missing_share": {
                "then": self.missing_then, "now": self.missing_now,
                "change": None if self.missing_now is None else self.missing_now - self.missing_then,
            },
            "mean": {"then": self.mean_then, "now": self.mean_now},
            "std": {"then": self.std_then, "now": self.std_now},
            "shift": finite(self.shift),
            "std_ratio": finite(self.std_ratio),
            "outside": {"count": self.outside, "share": self.outside_share},
        }
        if self.worst_group is not None:
            entry["worst_group"] = {"group": self.worst_group[0], "shift": finite(self.worst_group[1])}
        return entry


@dataclass
class CheckReport:
    """The outcome of a check: per column, and for the data as a whole."""

    stats: str
    inputs: list[str]
    thresholds: Thresholds
    rows_then: int
    rows_now: int
    columns: list[ColumnCheck]
    missing_columns: list[str]
    new_columns: list[str]
    transformed: bool = False
    groups: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.transformed and all(c.ok for c in self.columns)

    @property
    def failing(self) -> list[ColumnCheck]:
        return [c for c in self.columns if not c.ok]

    @property
    def verdict(self) -> str:
        if self.transformed:
            return (
                "the data look already transformed with these stats (each column's mean and std are those "
                "transform produces); transforming them again would scale them twice"
            )
        if self.ok:
            return f"{len(self.columns)} column{'s' if len(self.columns) != 1 else ''} within the thresholds"
        parts = [f"{c.name} ({'; '.join(c.problems)})" for c in self.failing[:5]]
        if len(self.failing) > 5:
            parts.append("…")
        return f"{len(self.failing)} of {len(self.columns)} columns beyond the thresholds: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        t = self.thresholds
        doc: dict[str, Any] = {
            "ok": self.ok,
            "verdict": self.verdict,
            "transformed": self.transformed,
            "stats": self.stats,
            "inputs": self.inputs,
            "rows": {"then": self.rows_then, "now": self.rows_now},
            "thresholds": {
                "max_shift": t.max_shift, "max_std_ratio": t.max_std_ratio,
                "max_null_rate_change": t.max_null_rate_change, "max_out_of_range": t.max_out_of_range,
            },
            "columns": [c.to_dict() for c in self.columns],
            "missing_columns": self.missing_columns,
            "new_columns": self.new_columns,
        }
        if self.groups is not None:
            doc["groups"] = self.groups
        return doc


def check_data(
    paths: Sequence[str],
    *,
    stats: Stats | str | Path,
    thresholds: Thresholds | None = None,
    null_values: Sequence[str] | None = None,
    format: str | None = None,
    separator: str | None = None,
    has_header: bool = True,
    text: Sequence[str] = (),
    dtypes: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    storage: Sequence[tuple[str, str]] = (),
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
    progress: Callable[[int], None] | None = None,
) -> CheckReport:
    """Compare new data with ``stats`` (a :class:`Stats` or a stats file); see the module docstring.

    Missing-value tokens default to those of the fit; the reading options are those of
    :func:`normcli.scaling.fit.fit`. Example::

        report = normcli.check_data(["new.csv"], stats="stats.json")
        report.ok, report.verdict, [c.shift for c in report.columns]
    """
    source_name = "<stats>" if isinstance(stats, Stats) else str(stats)
    if not isinstance(stats, Stats):
        stats = load_stats(stats, tuple(storage), stdin=stdin, stdin_is_terminal=stdin_is_terminal, data=paths)
    thresholds = thresholds or Thresholds()
    # group columns whose keys were text when fitted are read as text, as transform reads them:
    # a CSV of only numeric-looking keys ("007") would otherwise be read as integers (7)
    text_keys = tuple(name for name in stats.by if not stats.by_dtype(name).startswith(("Int", "UInt", "Boolean")))
    read = replace(
        ReadOptions.of(
            format=format, null_values=null_values, default_null_values=stats.null_values, separator=separator,
            has_header=has_header, text=text, dtypes=dtypes, storage=storage,
        ),
        text_if_present=text_keys,
    )
    with open_sources(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as sources:
        scanned = scan_inputs(sources, read, allow_missing_columns=True)
        table = scanned.table
        checks: dict[str, ColumnCheck] = {}
        specs: list[ColumnSpec] = []
        weight = stats.weight if stats.weight is not None and table.lacking(stats.weight) is None else None
        notes = []
        if stats.weight is not None and weight is None:
            notes.append(f"{table.lacking(stats.weight).source.display} has no weight column '{stats.weight}': each row weighs 1")
        for column in stats.columns:
            check = checks[column.name] = _then(column, stats)
            dtype = table.dtypes.get(column.name)
            check.dtype_now = dtype
            if dtype is None:
                check.problems.append("is missing")
                continue
            if not (is_numeric_dtype(dtype) or dtype == NULL):
                check.problems.append(f"is {dtype} now, not numeric")
                continue
            if dtype != column.dtype and dtype != NULL:
                check.notes.append(f"type {column.dtype} → {dtype}")
            specs.append(ColumnSpec(column.name, dtype, unknown=dtype == NULL, weight=weight, bounds=(column.min, column.max)))
        by = stats.by if stats.groups is not None and all(table.lacking(name) is None for name in stats.by) else ()
        if stats.groups is not None and not by:
            name = next(name for name in stats.by if table.lacking(name) is not None)
            notes.append(f"{table.lacking(name).source.display} has no group column '{name}' (--by): groups not compared")
        fold = fold_fragments(scanned, specs, {}, by=by, progress=progress) if specs else None
        rows_now = fold.rows if fold is not None else 0
        inputs = [s.display for s in sources]
    for spec in specs:
        check = checks[spec.name]
        _now(check, fold.columns[spec.name], fold.words.get(spec.name, 0), fold.outside.get(spec.name, 0), stats, thresholds)
        mark_transformed(check, stats.column(spec.name))
    known = set(stats.all_columns) | set(stats.by) | ({stats.weight} if stats.weight else set())
    report = CheckReport(
        stats=source_name,
        inputs=inputs,
        thresholds=thresholds,
        rows_then=stats.row_count,
        rows_now=rows_now,
        columns=list(checks.values()),
        missing_columns=[c.name for c in stats.columns if c.name not in table.dtypes],
        new_columns=[name for name in table.names if name not in known],
        notes=notes,
    )
    report.transformed = _looks_transformed(report)
    if by and fold is not None:
        report.groups = _compare_groups(stats, fold, report)
    return report


def _then(column: ColumnStats, stats: Stats) -> ColumnCheck:
    rows = column.count + column.null_count + column.nan_count
    return ColumnCheck(
        name=column.name,
        dtype_then=column.dtype,
        dtype_now=None,
        count_then=column.count,
        missing_then=(column.null_count + column.nan_count) / rows if rows else 0.0,
        mean_then=column.mean,
        std_then=column.std,
    )


def _now(check: ColumnCheck, partial: ColumnPartial, words: int, outside: int, stats: Stats, thresholds: Thresholds) -> None:
    """Fill in a column's numbers now and what is beyond the thresholds."""
    if words:
        check.problems.append(f"holds {words} non-numeric value{'s' if words != 1 else ''}")
        return
    if partial.inf_count:  # fit refuses them; their moments are not summed (it said "too few values")
        check.problems.append(f"holds {partial.inf_count} infinite value{'s' if partial.inf_count != 1 else ''}")
        return
    rows = partial.count + partial.null_count + partial.nan_count
    check.count_now = partial.count
    check.missing_now = (partial.null_count + partial.nan_count) / rows if rows else 0.0
    change = check.missing_now - check.missing_then
    if abs(change) > thresholds.max_null_rate_change:
        check.problems.append(f"missing {check.missing_then:.1%} → {check.missing_now:.1%}")
    if partial.count == 0:
        check.problems.append("has no values")
        return
    moments = partial.moments
    total = moments.total().fraction()
    if total <= stats.ddof:
        check.problems.append("has too few values (or too little weight) for a standard deviation")
        return
    if partial.min == partial.max:
        check.mean_now, check.std_now = partial.min, 0.0
    else:
        rounded = moments.rounded(stats.ddof)
        check.mean_now = min(max(float(rounded.mean), partial.min), partial.max)
        check.std_now = rounded.std
    check.shift = _ratio(check.mean_now - check.mean_then, check.std_then)
    check.std_ratio = _ratio(check.std_now, check.std_then, equal=1.0)
    check.outside = outside
    check.outside_share = outside / partial.count
    if abs(check.shift) > thresholds.max_shift:
        check.problems.append(f"mean shifted {_signed(check.shift)} SD")
    ratio = check.std_ratio
    spread = partial.count >= 2 and total >= 2  # one value (or a weight below 2) has no spread to compare
    if spread and (ratio > thresholds.max_std_ratio or ratio < 1 / thresholds.max_std_ratio):
        check.problems.append(f"std ratio {ratio:.3g}")
    if check.outside_share > thresholds.max_out_of_range:
        check.problems.append(f"{check.outside_share:.1%} outside the fitted range")


def _ratio(top: float, bottom: float, equal: float = 0.0) -> float:
    """top / bottom, with 0/0 = ``equal`` and x/0 = ±inf (a constant column that changed)."""
    if bottom:
        return top / bottom
    return equal if top == 0 else math.copysign(math.inf, top)


def _signed(value: float) -> str:
    return f"{value:+.3g}" if math.isfinite(value) else ("+inf" if value > 0 else "-inf")


def _looks_transformed(report: CheckReport) -> bool:
    """Every compared column has the mean and std transform would give the fitted data (while the
    raw comparison fails): the data were transformed already."""
    if report.ok:
        return False
    compared = [c for c in report.columns if c.mean_now is not None and c.std_now is not None]
    if not compared or len(compared) < len(report.columns):
        return False
    return all(c.looks_transformed for c in compared)


def mark_transformed(check: ColumnCheck, column: ColumnStats) -> None:
    """Whether ``check``'s numbers now are those of ``column`` after transform."""
    t_mean = column.apply(column.mean)
    t_std = column.std / column.scale
    if check.mean_now is None or check.std_now is None or t_std == 0:
        return
    check.looks_transformed = (
        abs(check.mean_now - t_mean) <= TRANSFORMED_TOLERANCE * t_std
        and abs(check.std_now / t_std - 1) <= TRANSFORMED_TOLERANCE
    )


def _compare_groups(stats: Stats, fold, report: CheckReport) -> dict[str, Any]:  # noqa: ANN001
    """Groups now versus then: unseen groups (rows), and each column's largest group mean shift."""
    table = stats.groups
    assert table is not None
    index = {key: i for i, key in enumerate(table.keys)}
    groups = as_fitted_keys(stats, fold.groups)
    unseen = [key for key in groups if key not in index]
    unseen_rows = sum(groups[key].rows for key in unseen)
    for check in report.columns:
        group_column = table.columns.get(check.name)
        if group_column is None or check.mean_now is None:
            continue
        worst: tuple[str, float] | None = None
        for key, group in groups.items():
            i = index.get(key)
            partial = group.columns.get(check.name)
            if i is None or partial is None or not group_column.fitted[i] or partial.count == 0:
                continue
            moments: Moments = partial.moments
            if moments.total().fraction() <= 0:
                continue
            mean = float(moments.rounded(0).mean) if partial.min != partial.max else partial.min
            shift = _ratio(mean - float(group_column.mean[i]), float(group_column.std[i]))
            if worst is None or abs(shift) > abs(worst[1]):
                worst = (describe_key(stats.by, key), shift)
        check.worst_group = worst
    shown = ", ".join(describe_key(stats.by, key) for key in unseen[:5])
    if unseen:
        report.notes.append(
            f"{unseen_rows} row{'s' if unseen_rows != 1 else ''} in {len(unseen)} group{'s' if len(unseen) != 1 else ''} the stats do not have "
            f"({shown}{', …' if len(unseen) > 5 else ''}): transform gives them the pooled statistics by default"
        )
    return {
        "by": list(stats.by),
        "then": len(table),
        "now": len(groups),
        "unseen": {"groups": len(unseen), "rows": unseen_rows, "keys": [list(key) for key in unseen[:100]]},
    }




def as_fitted_keys(stats: Stats, groups: Mapping[GroupKey, GroupFold]) -> dict[GroupKey, GroupFold]:
    """The new data's groups keyed as transform keys them: each key read as the type the fitted
    keys have (an integer 7 of a Parquet file is the text key "7"; a text "01" the integer key
    1), groups that become the same key merged; a key that is not of that type stays as it is
    (transform finds no group for it)."""
    import polars as pl

    from normcli.scaling.apply import Scaling

    if not groups:
        return dict(groups)
    keys = list(groups)
    frame = pl.DataFrame([pl.Series(name, [key[i] for key in keys], strict=False) for i, name in enumerate(stats.by)])
    helpers = Scaling(stats).key_expressions(frame.schema)
    converted = frame.select(helpers).rows()
    width = len(stats.by)
    result: dict[GroupKey, GroupFold] = {}
    for key, row in zip(keys, converted, strict=True):
        fitted_key = tuple(row[0 : 2 * width : 2]) if all(row[1 : 2 * width : 2]) else key
        mine = result.setdefault(fitted_key, GroupFold())
        mine.add(groups[key].rows, groups[key].columns)
    return result
