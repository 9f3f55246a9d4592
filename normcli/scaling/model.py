"""What a fit produces: per-column statistics, the options they were fitted with, what was skipped.

:class:`ColumnPartial` is the mergeable part of one column's statistics over some rows (counts,
extremes and exact :class:`~normcli.scaling.exact.Moments`); a fit of many fragments is the merge of
their partials, in order. :class:`ColumnStats` adds the method and the fitted parameters of
``y = ((x − center) − center_lo) / scale``; :class:`Stats` is a whole stats file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from normcli.data.schema import unify_dtypes
from normcli.errors import UsageError
from normcli.scaling.exact import Moments

@dataclass(frozen=True)
class FitOptions:
    """What to fit: the default method, per-column overrides, which columns, ddof, feature range."""

    method: str = "standard"
    method_for: Mapping[str, str] = field(default_factory=dict)
    columns: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    ddof: int = 0
    feature_range: tuple[float, float] = (0.0, 1.0)

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
    from the exact ``moments``. Quantiles are present for ``robust`` columns only.
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
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
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


@dataclass(frozen=True)
class Stats:
    """Everything a fit produced: what was read, with which options, and each column's statistics."""

    inputs: tuple[str, ...]
    row_count: int
    ddof: int
    feature_range: tuple[float, float]
    null_values: tuple[str, ...]
    default_method: str
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

    def options(self) -> FitOptions:
        return FitOptions(
            method=self.default_method,
            method_for={c.name: c.method for c in self.columns if c.method != self.default_method},
            ddof=self.ddof,
            feature_range=self.feature_range,
        )
