"""What a fit produces: per-column statistics, the options they were fitted with, what was skipped.

:class:`ColumnPartial` is the mergeable part of one column's statistics over some rows (counts,
extremes and exact :class:`~normcli.scaling.exact.Moments`); a fit of many fragments is the merge of
their partials, in order. :class:`ColumnStats` adds the method and the fitted parameters of
``y = ((x − center) − center_lo) / scale``; :class:`Stats` is a whole stats file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from normcli.data.schema import unify_dtypes
from normcli.errors import UsageError
from normcli.scaling.exact import Moments

if TYPE_CHECKING:
    import numpy as np

@dataclass(frozen=True)
class FitOptions:
    """What to fit: the default method, per-column overrides, which columns, ddof, feature range;
    the group columns (``--by``), the frequency-weight column (``--weight``) and robust's options.

    ``quantile_range`` and ``unit_variance`` follow scikit-learn's ``RobustScaler``: robust columns
    are centred on the median and scaled by the spread between the two percentiles (divided by
    that spread of a standard normal distribution with ``unit_variance``).
    """

    method: str = "standard"
    method_for: Mapping[str, str] = field(default_factory=dict)
    columns: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    ddof: int = 0
    feature_range: tuple[float, float] = (0.0, 1.0)
    by: tuple[str, ...] = ()
    weight: str | None = None
    quantile_range: tuple[float, float] = (25.0, 75.0)
    unit_variance: bool = False

    def __post_init__(self) -> None:
        from normcli.scaling.methods import METHODS

        for method in (self.method, *self.method_for.values()):
            if method not in METHODS:
                raise UsageError(f"unknown method '{method}'", hint=f"choose one of: {', '.join(METHODS)}")
        if self.ddof not in (0, 1):
            raise UsageError(f"--ddof must be 0 or 1, not {self.ddof}")
        low, high = self.feature_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high and math.isfinite(high - low)):
            raise UsageError(
                f"--feature-range {low:g},{high:g} is not an increasing pair of finite numbers",
                hint="write LOW,HIGH with LOW < HIGH and a finite width, e.g. --feature-range 0,1",
            )
        low, high = self.quantile_range
        inner = 0 < low and high < 100 if self.unit_variance else 0 <= low and high <= 100
        if not (math.isfinite(low) and math.isfinite(high) and low < high and inner):
            bounds = "0 < LOW < HIGH < 100 with --unit-variance" if self.unit_variance else "0 <= LOW < HIGH <= 100"
            raise UsageError(
                f"--quantile-range {low:g},{high:g} is not a pair of percentiles with {bounds}",
                hint="e.g. --quantile-range 25,75 (the interquartile range, scikit-learn's default)",
            )
        if len(set(self.by)) != len(self.by):
            raise UsageError(f"--by names a column twice: {', '.join(self.by)}")
        if self.weight is not None and self.weight in self.by:
            raise UsageError(f"column '{self.weight}' cannot be both --weight and --by")

    def method_of(self, name: str) -> str:
        return self.method_for.get(name, self.method)


@dataclass(frozen=True)
class ColumnPartial:
    """The mergeable statistics of one column over a set of rows.

    ``count`` values were used (not null, not NaN); ``min``/``max`` are 0 when there are none.
    ``inf_count`` is kept so the error can say how many infinities a column holds.
    """

    dtype: str
    count: int = 0
    null_count: int = 0
    nan_count: int = 0
    inf_count: int = 0
    min: float = 0.0
    max: float = 0.0
    moments: Moments = field(default_factory=Moments.empty)

    def merge(self, other: ColumnPartial) -> ColumnPartial:
        """The partial of the union of two disjoint row sets (exact; the dtypes unify)."""
        both = self.count and other.count
        return ColumnPartial(
            dtype=unify_dtypes(self.dtype, other.dtype) or self.dtype,
            count=self.count + other.count,
            null_count=self.null_count + other.null_count,
            nan_count=self.nan_count + other.nan_count,
            inf_count=self.inf_count + other.inf_count,
            min=min(self.min, other.min) if both else (self.min if self.count else other.min),
            max=max(self.max, other.max) if both else (self.max if self.count else other.max),
            moments=self.moments.combine(other.moments),
        )

    def with_nulls(self, rows: int) -> ColumnPartial:
        """This partial with ``rows`` more missing values (a fragment where the column is empty)."""
        return replace(self, null_count=self.null_count + rows)


@dataclass(frozen=True)
class ColumnStats:
    """A fitted column: its statistics and the parameters of ``y = ((x − center) − center_lo) / scale``.

    ``center + center_lo`` holds the exact centre to about 106 bits (``center`` alone is it
    rounded to float64): a column like 1e12 + N(0, 1) needs both to come out with mean ~1e-17.
    ``mean``, ``m2`` (Σ(x − mean)², ``None`` beyond float64 range) and ``std`` are correctly rounded
    from the exact ``moments`` (weighted by ``--weight``: Σw(x − mean)², std = √(m2 / (Σw − ddof))).
    Quantiles (``median`` and the ``q_low``/``q_high`` percentiles of ``--quantile-range``) are
    present for ``robust`` columns only.
    """

    name: str
    dtype: str
    method: str
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
    moments: Moments = field(default_factory=Moments.empty)
    center_lo: float = 0.0
    weight_sum: float | None = None
    """``Σw`` of the values (rounded) when the fit was weighted; ``None`` otherwise."""
    median: float | None = None
    q_low: float | None = None
    q_high: float | None = None
    max_abs: float | None = None
    feature_range: tuple[float, float] | None = None

    def partial(self) -> ColumnPartial:
        """The mergeable part of these statistics."""
        return ColumnPartial(
            self.dtype, self.count, self.null_count, self.nan_count, 0, self.min, self.max, self.moments
        )

    @property
    def shift(self) -> float:
        return self.moments.shift

    def apply(self, x: float) -> float:
        """The transform of one value, in float64 exactly as every implementation computes it."""
        return ((x - self.center) - self.center_lo) / self.scale


@dataclass(frozen=True)
class SkippedColumn:
    """A column fit did not use, with its type and why (``no values`` columns are mergeable)."""

    name: str
    dtype: str
    reason: str

    @property
    def has_no_values(self) -> bool:
        return self.reason.startswith(NO_VALUES)


NO_VALUES = "no values"
GROUP_KEY = "group key (--by)"
WEIGHT = "weight (--weight)"
"""Reasons of the columns ``--by`` and ``--weight`` name: used, but not scaled."""


GroupKey = tuple
"""A group's key: one value per ``--by`` column (str, int, bool or None; dates as ISO text)."""


def key_kind(dtype: str) -> str | None:
    """What the keys of a ``--by`` column of type ``dtype`` are in a stats file: ``integer``,
    ``boolean`` or ``text`` (dates, categories and the rest are written as text); ``None`` for a
    column with no values (``Null``: every key is null)."""
    if dtype == "Null":
        return None
    if dtype == "Boolean":
        return "boolean"
    return "integer" if dtype.startswith(("Int", "UInt")) else "text"


def value_kind(value: object) -> str | None:
    """The :func:`key_kind` a key value in a stats file has (``None`` for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    return "integer" if isinstance(value, int) else "text"


@dataclass(frozen=True)
class GroupColumn:
    """One fitted column's statistics in every group (``--by``), as arrays: entry ``i`` is group ``i``.

    ``fitted[i]`` says whether group ``i`` has parameters for the column; where it has not (no
    values there, too few for ``--ddof``, or only values of weight 0) ``mean``, ``m2``, ``std``,
    ``center``, ``center_lo`` and ``scale`` are NaN, and the group's rows get the pooled parameters
    (or what ``--unknown-group`` says). ``m2`` is also NaN when beyond float64 range.
    ``moments[i]`` are the exact sums, kept so that merges stay exact. ``extra`` holds the
    method's own fields (``max_abs`` per group; minmax's ``feature_range``, the same for all).
    """

    count: np.ndarray
    null_count: np.ndarray
    nan_count: np.ndarray
    min: np.ndarray
    max: np.ndarray
    fitted: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    std: np.ndarray
    center: np.ndarray
    center_lo: np.ndarray
    scale: np.ndarray
    moments: Sequence[Moments]
    weight_sum: np.ndarray | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def partial(self, index: int, dtype: str) -> ColumnPartial:
        """The mergeable statistics of group ``index``."""
        return ColumnPartial(
            dtype,
            int(self.count[index]),
            int(self.null_count[index]),
            int(self.nan_count[index]),
            0,
            float(self.min[index]),
            float(self.max[index]),
            self.moments[index],
        )


@dataclass(frozen=True)
class GroupTable:
    """The per-group statistics of a fit with ``--by``: the keys (ordered) and each column's arrays."""

    by: tuple[str, ...]
    keys: tuple[GroupKey, ...]
    row_count: np.ndarray
    columns: Mapping[str, GroupColumn]

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Stats:
    """Everything a fit produced: what was read, with which options, and each column's statistics.

    With ``--by``, ``columns`` are the pooled statistics of all rows (the same numbers as a fit
    without ``--by``) and ``groups`` those of each group, ordered by key.
    """

    inputs: tuple[str, ...]
    row_count: int
    ddof: int
    feature_range: tuple[float, float]
    null_values: tuple[str, ...]
    default_method: str
    columns: tuple[ColumnStats, ...]
    skipped: tuple[SkippedColumn, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)
    by: tuple[str, ...] = ()
    weight: str | None = None
    quantile_range: tuple[float, float] = (25.0, 75.0)
    unit_variance: bool = False
    groups: GroupTable | None = None
    input_columns: tuple[str, ...] = ()
    """Every column of the inputs in their order (empty in files written before version 3)."""

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

    @property
    def all_columns(self) -> list[str]:
        """Every column of the fitted data, in input order as far as the file tells it."""
        if self.input_columns:
            return list(self.input_columns)
        return [*self.names, *(s.name for s in self.skipped)]

    def by_dtype(self, name: str) -> str:
        """The type a ``--by`` column had in the fitted data."""
        return next((s.dtype for s in self.skipped if s.name == name), "String")

    def options(self) -> FitOptions:
        return FitOptions(
            method=self.default_method,
            method_for={c.name: c.method for c in self.columns if c.method != self.default_method},
            ddof=self.ddof,
            feature_range=self.feature_range,
            by=self.by,
            weight=self.weight,
            quantile_range=self.quantile_range,
            unit_variance=self.unit_variance,
        )
