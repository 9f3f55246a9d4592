"""Fitting scaling statistics over tabular data in one streaming Polars query.

For every selected numeric column the query computes counts, min, max and the *shifted* sums
S1 = Σ(x−p) and S2 = Σ(x−p)² around a pivot p taken from the first rows. Then

    mean = p + S1/n,    M2 = Σ(x−mean)² = S2 − S1²/n,    std = √(M2 / (n − ddof)).

Shifting first keeps the sums small, so a column like 1e12 + N(0,1) keeps all its digits (plain
Σx² − (Σx)²/n would lose about five). When the pivot turns out far from the mean (a sorted column,
say) the column is summed again around its mean; when squares overflow (values near 1e300) it is
summed again on values scaled by a power of two. Both are rare, and both are exact in float64 terms.

Each method turns its statistics into a ``center`` and ``scale`` so that every method applies as
``(x − center) / scale`` (see docs/stats-format.md); constant columns get scale 1, as scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Literal

from normcli.errors import DataError, UsageError
from normcli.io import DEFAULT_NULL_VALUES, Inputs, ReadOptions, open_inputs, polars_errors

if TYPE_CHECKING:
    import polars as pl

Method = Literal["standard", "minmax", "robust", "maxabs"]
METHODS: tuple[Method, ...] = ("standard", "minmax", "robust", "maxabs")

PIVOT_ROWS = 1_000
"""Rows read ahead of the main pass to choose each column's pivot (the mean of their values)."""

REFINE_RATIO = 16.0
"""Re-sum a column around its mean when (mean − pivot)² exceeds this many variances."""

TINY = 2.0**-480
"""Columns whose largest magnitude is below this are summed again on values scaled up by a power
of two: their squares would underflow (5e-215² is 0 in float64, so the std would come out 0)."""

EXACT_INT_LIMIT = 2**53
"""Integers beyond this magnitude are not exact in float64; fitting such a column warns."""


@dataclass(frozen=True)
class FitOptions:
    """What to fit: the default method, per-column overrides and which columns to use."""

    method: Method = "standard"
    method_for: Mapping[str, Method] = field(default_factory=dict)
    columns: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    ddof: int = 0
    feature_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        for method in (self.method, *self.method_for.values()):
            if method not in METHODS:
                raise UsageError(
                    f"unknown method '{method}'", hint=f"choose one of: {', '.join(METHODS)}"
                )
        if self.ddof not in (0, 1):
            raise UsageError(f"--ddof must be 0 or 1, not {self.ddof}")
        low, high = self.feature_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise UsageError(
                f"--feature-range {low:g},{high:g} is not an increasing pair of finite numbers",
                hint="write LOW,HIGH with LOW < HIGH, e.g. --feature-range 0,1",
            )


@dataclass(frozen=True)
class ColumnStats:
    """Statistics of one column and the affine parameters ``(x − center) / scale`` fitted from them.

    ``m2`` is the sum of squared deviations from the mean, kept (with ``count``, ``mean``, ``min``,
    ``max``) so that fits of disjoint shards can be merged exactly; it is ``None`` only when it is
    beyond float64 range. ``shift`` and ``shifted_sum`` = Σ(x − shift) carry the mean with more
    digits than one float64 holds (mean = shift + shifted_sum / count), which a merge of columns
    like 1e12 + N(0,1) needs. Quantiles are present for ``robust`` columns only.
    """

    name: str
    dtype: str
    method: Method
    count: int
    null_count: int
    nan_count: int
    mean: float
    m2: float | None
    std: float
    min: float
    max: float
    center: float
    scale: float
    shift: float = 0.0
    shifted_sum: float | None = 0.0
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
    max_abs: float | None = None
    feature_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class SkippedColumn:
    """A column fit did not use, with its type and why."""

    name: str
    dtype: str
    reason: str


@dataclass(frozen=True)
class Stats:
    """Everything a fit produced: what was read, with which options, and each column's statistics."""

    inputs: tuple[str, ...]
    row_count: int
    ddof: int
    feature_range: tuple[float, float]
    null_values: tuple[str, ...]
    default_method: Method
    columns: tuple[ColumnStats, ...]
    skipped: tuple[SkippedColumn, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def column(self, name: str) -> ColumnStats:
        """The statistics of column ``name`` (KeyError if it was not fitted)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        """Names of the fitted columns, in input order."""
        return [c.name for c in self.columns]


# --------------------------------------------------------------------------- public API


def fit(
    paths: Sequence[str],
    *,
    method: Method = "standard",
    method_for: Mapping[str, Method] | None = None,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    ddof: int = 0,
    feature_range: tuple[float, float] = (0.0, 1.0),
    null_values: Sequence[str] = DEFAULT_NULL_VALUES,
    format: str | None = None,
    separator: str | None = None,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> Stats:
    """Fit scaling statistics over one or more files (or ``-`` for stdin), streaming.

    The keyword arguments mirror ``normcli fit``'s options. Warnings (constant columns, integers past
    2^53, skipped columns) are returned in ``Stats.warnings`` rather than printed.

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
    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        return fit_inputs(inputs, options)


def fit_inputs(inputs: Inputs, options: FitOptions) -> Stats:
    """Fit ``options`` over already-resolved ``inputs`` (see :func:`fit`)."""
    schema = inputs.schema()
    selected, _ = select_columns(schema, options)
    frame = inputs.scan(float_overrides(inputs, selected))
    with polars_errors(inputs):
        return fit_frame(
            frame,
            options,
            schema=schema,
            where=inputs.describe(),
            input_names=inputs.names,
            null_values=inputs.options.null_values,
        )


def fit_frame(
    frame: pl.LazyFrame,
    options: FitOptions,
    *,
    schema: pl.Schema | None = None,
    where: str = "data",
    input_names: Sequence[str] = (),
    null_values: Sequence[str] = DEFAULT_NULL_VALUES,
) -> Stats:
    """Fit ``options`` over a lazy frame (a file scan, or an in-memory training split).

    ``schema`` is the schema to report dtypes from (the file's as inferred, before the Float64
    overrides); ``where`` names the data in messages.
    """
    schema = schema if schema is not None else frame.collect_schema()
    selected, skipped = select_columns(schema, options)
    methods = {name: options.method_for.get(name, options.method) for name in selected}
    pivots = _pivots(frame, selected)
    row_count, sums = _summarize(frame, selected, pivots, methods)
    sums.update(_refine(frame, selected, sums))

    warnings: list[str] = []
    fitted: list[ColumnStats] = []
    for name in selected:
        column = _column_stats(name, str(schema[name]), methods[name], sums[name], options, where)
        if column.count == 0:
            if options.columns is not None:
                raise DataError(
                    f"{where}: column '{name}' has no values (all missing)",
                    hint="drop it from --columns",
                )
            skipped.append(SkippedColumn(name, column.dtype, "no values (all missing)"))
            warnings.append(f"column '{name}' has no values; skipped")
            continue
        warnings.extend(_column_warnings(column, schema[name]))
        fitted.append(column)
    if not fitted:
        others = ", ".join(f"{s.name} ({s.reason})" for s in skipped[:5])
        raise DataError(
            f"{where}: no numeric column to fit" + (f"; skipped: {others}" if others else ""),
            hint="check the --separator and --null-values",
        )
    non_numeric = [s.name for s in skipped if s.reason.startswith("non-numeric")]
    if non_numeric:
        warnings.insert(0, f"skipped non-numeric columns: {', '.join(non_numeric)}")
    return Stats(
        inputs=tuple(input_names),
        row_count=int(row_count),
        ddof=options.ddof,
        feature_range=options.feature_range,
        null_values=tuple(null_values),
        default_method=options.method,
        columns=tuple(fitted),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------- column selection


def is_numeric(dtype: pl.DataType) -> bool:
    """Whether normcli scales a column of this type: integers, floats and decimals (not booleans)."""
    return dtype.is_numeric()


def select_columns(
    schema: pl.Schema, options: FitOptions
) -> tuple[list[str], list[SkippedColumn]]:
    """The columns to fit (in input order) and those skipped, checking every name the user gave."""
    names = schema.names()
    available = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
    asked = [*(options.columns or ()), *options.exclude, *options.method_for]
    for name in asked:
        if name not in schema:
            raise UsageError(f"no column named '{name}'", hint=f"columns are: {available}")
    skipped: list[SkippedColumn] = []
    if options.columns is not None:
        for name in options.columns:
            if not is_numeric(schema[name]):
                raise DataError(
                    f"column '{name}' is not numeric ({schema[name]})",
                    hint="leave it out of --columns",
                )
        wanted = set(options.columns) - set(options.exclude)
        selected = [name for name in names if name in wanted]
    else:
        selected = []
        for name in names:
            if name in options.exclude:
                continue
            if is_numeric(schema[name]):
                selected.append(name)
            else:
                skipped.append(SkippedColumn(name, str(schema[name]), f"non-numeric ({schema[name]})"))
    for name in options.method_for:
        if name not in selected:
            raise UsageError(
                f"--method-for names '{name}', which is not fitted",
                hint="it is excluded or not numeric",
            )
    return selected, skipped


def float_overrides(inputs: Inputs, names: Iterable[str]) -> dict[str, pl.DataType]:
    """Schema overrides reading ``names`` as Float64 from text formats (a no-op for Parquet).

    Type inference looks at the first rows only; reading the fitted columns as floats means a
    column of integers with a decimal value far down still parses, and a stray word is reported.
    """
    import polars as pl

    if all(s.format == "parquet" for s in inputs.sources):
        return {}
    return {name: pl.Float64 for name in names}


# --------------------------------------------------------------------------- the queries


def _values(name: str) -> pl.Expr:
    """The column as float64 with NaN turned into null: what the statistics are computed over."""
    import polars as pl

    return pl.col(name).cast(pl.Float64).fill_nan(None)


def _pivots(frame: pl.LazyFrame, names: list[str]) -> dict[str, float]:
    """Per column the mean of the finite values among the first rows (0.0 if there are none)."""

    head = frame.head(PIVOT_ROWS).select(
        [_values(n).filter(_values(n).is_finite()).mean().alias(n) for n in names]
    )
    row = head.collect().row(0, named=True) if names else {}
    return {name: (value if value is not None and math.isfinite(value) else 0.0) for name, value in row.items()}


def _sum_exprs(key: str, name: str, pivot: float, factor: float = 1.0) -> list[pl.Expr]:
    values = _values(name)
    shifted = (values - pivot) * factor if factor != 1.0 else values - pivot
    return [
        shifted.sum().alias(f"{key}\x00s1"),
        (shifted * shifted).sum().alias(f"{key}\x00s2"),
    ]


def _summarize(
    frame: pl.LazyFrame,
    names: list[str],
    pivots: dict[str, float],
    methods: dict[str, Method],
) -> tuple[int, dict]:
    """Run the single streaming query: the row count, and per column its counts, min/max, shifted
    sums (and quantiles if robust). Kept apart: a column may be called anything, "__rows__" too.

    The query is kept lean, since it is the whole cost of a fit besides parsing: integer columns
    (which hold no NaN) are used as they are; a float column's NaN-as-null version is computed
    once, as a helper column, instead of once per statistic; infinities show up as an infinite
    min or max and are only counted (by :func:`_count_infinities`) when there are some.
    """
    import polars as pl

    schema = frame.collect_schema()
    helpers: list[pl.Expr] = []
    exprs: list[pl.Expr] = [pl.len().alias("__rows__")]
    for index, name in enumerate(names):
        key = str(index)
        raw = pl.col(name)
        if schema[name].is_float():
            values = pl.col(f"{key}\x00values")
            helpers.append(raw.cast(pl.Float64).fill_nan(None).alias(f"{key}\x00values"))
            nans = raw.is_nan().sum()
        else:
            values = raw
            nans = pl.lit(0, dtype=pl.UInt32)
        shifted = values.cast(pl.Float64) - pivots[name]
        exprs += [
            values.count().alias(f"{key}\x00count"),
            raw.null_count().alias(f"{key}\x00nulls"),
            nans.alias(f"{key}\x00nans"),
            values.min().cast(pl.Float64).alias(f"{key}\x00min"),
            values.max().cast(pl.Float64).alias(f"{key}\x00max"),
            shifted.sum().alias(f"{key}\x00s1"),
            (shifted * shifted).sum().alias(f"{key}\x00s2"),
        ]
        if methods[name] == "robust":
            exprs += [
                values.quantile(0.25, interpolation="linear").alias(f"{key}\x00q1"),
                values.median().alias(f"{key}\x00median"),
                values.quantile(0.75, interpolation="linear").alias(f"{key}\x00q3"),
            ]
    query = frame.with_columns(helpers) if helpers else frame
    row = query.select(exprs).collect(engine="streaming").row(0, named=True)
    result: dict = {}
    by_index: dict[str, dict] = {}
    for key, value in row.items():  # one pass: per-column prefix scans are quadratic in columns
        index, _, statistic = key.partition("\x00")
        by_index.setdefault(index, {})[statistic] = value
    infinite = [
        name
        for index, name in enumerate(names)
        if any(v is not None and math.isinf(v) for v in (by_index[str(index)]["min"], by_index[str(index)]["max"]))
    ]
    counts = _count_infinities(frame, infinite)
    for index, name in enumerate(names):
        entry = by_index[str(index)]
        entry["pivot"] = pivots[name]
        entry["factor"] = 1.0
        entry["infs"] = counts.get(name, 0)
        result[name] = entry
    return row["__rows__"], result


def _count_infinities(frame: pl.LazyFrame, names: list[str]) -> dict[str, int]:
    """How many ±inf values each of ``names`` holds (a second pass, on the error path only)."""
    if not names:
        return {}
    import polars as pl

    row = frame.select([pl.col(n).is_infinite().sum().alias(n) for n in names]).collect(engine="streaming")
    return dict(row.row(0, named=True))


def _moments(entry: dict) -> tuple[float, float]:
    """(mean, M2) of a summary entry; M2 in the entry's scaled units."""
    n = entry["count"]
    s1, s2, factor = entry["s1"], entry["s2"], entry["factor"]
    mean = entry["pivot"] + (s1 / n) / factor
    m2 = max(s2 - s1 * s1 / n, 0.0)
    return mean, m2


def _refine(frame: pl.LazyFrame, names: list[str], sums: dict) -> dict:
    """Sum again the columns whose first pass lost precision: pivot far from the mean, over/underflow.

    A far pivot is replaced by the first-pass mean; an overflowing sum is redone on values scaled by
    a power of two (exactly, so nothing but range changes). Returns the replacement entries.
    """
    redo: dict[str, dict] = {}
    for name in names:
        entry = sums[name]
        if entry["count"] == 0 or entry["infs"]:
            continue
        overflow = not (math.isfinite(entry["s1"]) and math.isfinite(entry["s2"]))
        magnitude = max(abs(entry["min"]), abs(entry["max"]))
        underflow = 0 < magnitude < TINY  # squares of such values are subnormal or zero
        if overflow or underflow:
            factor = 2.0 ** min(-math.frexp(magnitude)[1], 1000)  # subnormals: 2^1033 overflows
            # the pivot may itself be huge: take the midpoint of the range, computed without overflow
            pivot = entry["min"] / 2 + entry["max"] / 2
            redo[name] = {**entry, "pivot": pivot, "factor": factor}
            continue
        mean, m2 = _moments(entry)
        n = entry["count"]
        if m2 > 0 and (mean - entry["pivot"]) ** 2 > REFINE_RATIO * (m2 / n):
            redo[name] = {**entry, "pivot": mean}
    if not redo:
        return {}
    exprs = []
    for index, (name, entry) in enumerate(redo.items()):
        exprs += _sum_exprs(str(index), name, entry["pivot"], entry["factor"])
    row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
    for index, (name, entry) in enumerate(redo.items()):
        entry["s1"] = row[f"{index}\x00s1"]
        entry["s2"] = row[f"{index}\x00s2"]
    return redo


# --------------------------------------------------------------------------- turning sums into stats


def _column_stats(
    name: str, dtype: str, method: Method, entry: dict, options: FitOptions, where: str
) -> ColumnStats:
    n = entry["count"]
    nulls, nans, infs = entry["nulls"], entry["nans"], entry["infs"]
    if infs:
        raise DataError(
            f"{where}: column '{name}' has {infs} infinite value{'s' if infs != 1 else ''}",
            hint=f"remove or blank them, or --exclude '{name}'",
        )
    if n == 0:
        return ColumnStats(name, dtype, method, 0, nulls, nans, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    if n - options.ddof <= 0:
        raise DataError(
            f"{where}: column '{name}' has {n} value; the standard deviation with --ddof {options.ddof} "
            "needs at least 2",
            hint="use --ddof 0 or more rows",
        )
    mean, m2_scaled = _moments(entry)
    factor = entry["factor"]
    std = math.sqrt(m2_scaled / (n - options.ddof)) / factor
    m2 = m2_scaled / factor / factor  # may overflow: then it is not stored
    lo, hi = entry["min"], entry["max"]
    shift, shifted_sum = entry["pivot"], entry["s1"] / factor
    if lo == hi:  # constant: exactly zero spread, whatever rounding says
        std, m2, mean = 0.0, 0.0, lo
        shift, shifted_sum = lo, 0.0
    mean = min(max(mean, lo), hi)
    column = ColumnStats(
        name=name,
        dtype=dtype,
        method=method,
        count=n,
        null_count=nulls,
        nan_count=nans,
        mean=mean,
        m2=m2 if math.isfinite(m2) else None,
        std=std,
        min=lo,
        max=hi,
        center=0.0,
        scale=1.0,
        shift=shift,
        shifted_sum=shifted_sum if math.isfinite(shifted_sum) else None,
    )
    return _with_parameters(column, entry, options)


def _with_parameters(column: ColumnStats, entry: dict, options: FitOptions) -> ColumnStats:
    """Fill ``center``/``scale`` (and the method's own statistics) so x' = (x − center) / scale."""
    lo, hi = column.min, column.max
    if column.method == "standard":
        return replace(column, center=column.mean, scale=column.std or 1.0)
    if column.method == "minmax":
        low, high = options.feature_range
        span = (hi - lo) or 1.0
        scale = span / (high - low)
        return replace(column, center=lo - low * scale, scale=scale, feature_range=(low, high))
    if column.method == "robust":
        q1, median, q3 = entry["q1"], entry["median"], entry["q3"]
        return replace(column, center=median, scale=(q3 - q1) or 1.0, median=median, q1=q1, q3=q3)
    max_abs = max(abs(lo), abs(hi))
    return replace(column, center=0.0, scale=max_abs or 1.0, max_abs=max_abs)


def _column_warnings(column: ColumnStats, dtype: pl.DataType) -> list[str]:
    warnings = []
    if column.count and column.min == column.max:
        warnings.append(
            f"column '{column.name}' is constant ({column.min:.17g}); scale set to 1"
        )
    if column.nan_count:
        warnings.append(
            f"column '{column.name}' has {column.nan_count} NaN value(s), treated as missing"
        )
    magnitude = max(abs(column.min), abs(column.max)) if column.count else 0.0
    if dtype.is_integer() and magnitude > EXACT_INT_LIMIT:
        warnings.append(
            f"column '{column.name}' has integers beyond 2^53; statistics are computed in float64 "
            "and lose precision"
        )
    return warnings


# --------------------------------------------------------------------------- merging


def merge_stats(first: Stats, second: Stats) -> Stats:
    """Combine fits of two disjoint shards into the fit of their union (Chan et al.'s update).

    Counts add; mean and m2 combine exactly in the sense of the formula (no pass over the data);
    min and max take the extremes; center and scale are recomputed. Both fits must have the same
    columns, methods and options. Quantiles do not merge, so ``robust`` columns are refused.
    """
    where = "cannot merge these stats"
    if (first.ddof, first.feature_range) != (second.ddof, second.feature_range):
        raise DataError(f"{where}: they were fitted with different --ddof or --feature-range")
    if first.names != second.names:
        raise DataError(f"{where}: their columns differ ({first.names} vs {second.names})")
    options = FitOptions(method=first.default_method, ddof=first.ddof, feature_range=first.feature_range)
    merged = []
    for a, b in zip(first.columns, second.columns, strict=True):
        if a.method != b.method:
            raise DataError(f"{where}: column '{a.name}' is {a.method} in one and {b.method} in the other")
        if a.method == "robust":
            raise DataError(
                f"{where}: column '{a.name}' is robust, and quantiles do not merge",
                hint="fit all shards at once: normcli fit 'part-*.csv'",
            )
        if None in (a.m2, b.m2, a.shifted_sum, b.shifted_sum):
            raise DataError(f"{where}: column '{a.name}' has sums beyond float64 range")
        n = a.count + b.count
        if not (a.count and b.count):
            merged.append(a if a.count else b)
            continue
        # the means' difference from the shifted sums: exact to far more digits than b.mean − a.mean
        offset_b = (b.shift - a.shift) + b.shifted_sum / b.count
        delta = offset_b - a.shifted_sum / a.count
        shifted_sum = a.shifted_sum + b.shifted_sum + b.count * (b.shift - a.shift)
        mean = a.shift + shifted_sum / n
        m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / n
        if n - options.ddof <= 0:
            raise DataError(f"{where}: column '{a.name}' has {n} value(s), too few for --ddof {options.ddof}")
        lo, hi = min(a.min, b.min), max(a.max, b.max)
        std = 0.0 if lo == hi else math.sqrt(m2 / (n - options.ddof))
        column = replace(
            a,
            count=n,
            null_count=a.null_count + b.null_count,
            nan_count=a.nan_count + b.nan_count,
            mean=mean if lo != hi else lo,
            m2=m2 if lo != hi else 0.0,
            std=std,
            shift=a.shift if lo != hi else lo,
            shifted_sum=shifted_sum if lo != hi else 0.0,
            min=lo,
            max=hi,
        )
        merged.append(_with_parameters(column, {}, options))
    return replace(
        first,
        inputs=first.inputs + second.inputs,
        row_count=first.row_count + second.row_count,
        columns=tuple(merged),
        skipped=first.skipped + tuple(s for s in second.skipped if s not in first.skipped),
        warnings=(),
    )
