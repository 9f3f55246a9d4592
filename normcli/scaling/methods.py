"""The scaling methods: one object each, owning its parameters, merge rule and application.

Every method maps a column by the same affine formula, so a stats file can be applied by any
language with two subtractions and one division (docs/stats-format.md)::

    y = ((x − center) − center_lo) / scale          x = (y · scale + center_lo) + center

``center + center_lo`` is the exact centre split into two floats (a double-double); ``scale`` is
positive. A method says how its centre and scale come from a column's statistics, whether fits
of disjoint shards merge exactly, and which fields of its own the stats file carries.

A spread of zero, or one so small that it is float noise — below ``10·ε·max(|min|, |max|)``,
scikit-learn's rule — gives ``scale = 1`` and a warning, as scikit-learn does; for minmax that
maps the column to the low end of the range.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from normcli.errors import DataError
from normcli.scaling.exact import sqrt_correctly_rounded
from normcli.scaling.model import ColumnPartial, ColumnStats, FitOptions

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

EPSILON = sys.float_info.epsilon
NEAR_CONSTANT = 10 * EPSILON
"""A spread below this many times the column's magnitude is treated as zero (scikit-learn's rule)."""


@dataclass(frozen=True)
class Fitted:
    """What a method makes of a column: the exact centre, the scale, and its own fields."""

    center: Fraction
    scale: float
    constant: bool = False
    extra: dict[str, Any] | None = None


def split(value: Fraction) -> tuple[float, float]:
    """(hi, lo): hi is ``value`` rounded to float64, lo the rounded remainder.

    A centre beyond float64's range (minmax mapping ±1.7e308 onto a far feature range) cannot be
    written: an error, never an infinite centre in a stats file the loader would refuse.
    """
    hi = _float(value)
    if not math.isfinite(hi):
        raise DataError(
            "the centre of the scaling is beyond float64's range",
            hint="choose a feature range of moderate width and position, e.g. --feature-range 0,1",
        )
    return hi, float(value - Fraction(hi))


def near_zero(spread: float, magnitude: float) -> bool:
    return spread <= NEAR_CONSTANT * magnitude or spread == 0.0


class Method:
    """A scaling method. Subclasses set ``name`` and implement :meth:`fit`."""

    name: ClassVar[str]
    mergeable: ClassVar[bool] = True
    """Whether fits of disjoint shards merge exactly into the fit of their union."""
    keeps_values: ClassVar[bool] = False
    """Whether fitting needs every value (quantiles) rather than mergeable partial statistics."""
    fields: ClassVar[tuple[str, ...]] = ()
    """The method's own fields in the stats file, besides the common ones."""

    def fit(self, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        raise NotImplementedError

    def clip_range(self, column: ColumnStats) -> tuple[float, float] | None:
        """The output range ``--clip`` clamps to, if the method has one."""
        return None

    # ------------------------------------------------------------------ application

    def expression(self, column: ColumnStats, *, inverse: bool = False) -> pl.Expr:
        """The Polars expression applying ``column`` to the column of that name (as Float64).

        Division is by a materialized column: Polars turns division by a scalar into
        multiplication by its reciprocal, which is off by one ulp in a third of the rows.
        """
        import polars as pl

        x = pl.col(column.name).cast(pl.Float64)
        if inverse:
            return (x * column.scale + column.center_lo) + column.center
        # a column equal to ``scale`` everywhere, which the optimizer cannot fold into a constant
        divisor = x.is_null().cast(pl.Float64) * 0.0 + column.scale
        centred = (x - column.center) - column.center_lo
        if column.scale < 2.0**-1000:  # x/subnormal may overflow where the exact quotient does not
            return (centred * 2.0**100) / (divisor * 2.0**100)
        return centred / divisor

    def apply_numpy(self, x: np.ndarray, column: ColumnStats, *, inverse: bool = False) -> np.ndarray:
        """The same formula on a numpy array (NaN stays NaN)."""
        if inverse:
            return (x * column.scale + column.center_lo) + column.center
        return ((x - column.center) - column.center_lo) / column.scale

    # ------------------------------------------------------------------ the stats

    def finish(self, name: str, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None = None) -> tuple[ColumnStats, list[str]]:
        """The fitted column of ``partial`` and its warnings (constant, NaN, big integers)."""
        n, moments = partial.count, partial.moments
        if n - options.ddof <= 0:
            raise DataError(
                f"column '{name}' has {n} value; the standard deviation with --ddof {options.ddof} needs at least 2",
                hint="use --ddof 0 or more rows",
            )
        if partial.min == partial.max:  # constant: exactly zero spread, whatever rounding says
            mean, m2 = Fraction(partial.min), Fraction(0)
        else:
            mean, m2 = moments.mean(), moments.m2()
        std = sqrt_correctly_rounded(m2 / (n - options.ddof))
        m2_float = _finite_or_none(m2)
        fitted = self.fit(partial, options, quantiles)
        center, center_lo = split(fitted.center)
        column = ColumnStats(
            name=name,
            dtype=partial.dtype,
            method=self.name,
            count=n,
            null_count=partial.null_count,
            nan_count=partial.nan_count,
            mean=min(max(float(mean), partial.min), partial.max),
            m2=m2_float,
            std=std,
            min=partial.min,
            max=partial.max,
            center=center,
            center_lo=center_lo,
            scale=fitted.scale,
            moments=moments,
            **(fitted.extra or {}),
        )
        return column, _warnings(column, partial, fitted.constant)


def _float(value: Fraction) -> float:
    """``value`` rounded to float64, ±inf beyond its range (``float()`` raises there)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _finite_or_none(value: Fraction) -> float | None:
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if result != float("inf") else None


def _warnings(column: ColumnStats, partial: ColumnPartial, constant: bool) -> list[str]:
    warnings = []
    identifier = _looks_like_an_identifier(column)
    if identifier:
        warnings.append(
            f"column '{column.name}' looks like a row identifier ({identifier}); scaling it is rarely "
            f"meaningful: --exclude '{column.name}'"
        )
    if constant:
        if column.min == column.max:
            warnings.append(f"column '{column.name}' is constant ({column.min:.17g}); scale set to 1")
        else:
            warnings.append(
                f"column '{column.name}' is nearly constant ({column.min:.17g} to {column.max:.17g}: "
                "a spread of float rounding noise); scale set to 1"
            )
    if column.nan_count:
        warnings.append(f"column '{column.name}' has {column.nan_count} NaN value(s), treated as missing")
    if column.dtype.startswith(("Int", "UInt")) and max(abs(column.min), abs(column.max)) > 2**53:
        warnings.append(
            f"column '{column.name}' has integers beyond 2^53; statistics are computed in float64 "
            "and lose precision"
        )
    return warnings


def _looks_like_an_identifier(column: ColumnStats) -> str | None:
    """Why a fitted column looks like a row id: its name, or — from the exact statistics — being
    the consecutive integers min..max, each once (mean and M2 of a permutation of a range)."""
    from normcli.data.schema import ID_NAME

    if ID_NAME.search(column.name):
        return "its name"
    n = column.count
    if n < 100 or column.null_count or not column.dtype.startswith(("Int", "UInt")) or column.max - column.min + 1 != n:
        return None
    moments = column.moments
    if moments.mean() == (Fraction(column.min) + Fraction(column.max)) / 2 and moments.m2() == Fraction(n * (n * n - 1), 12):
        return f"the integers {column.min:.0f} to {column.max:.0f}, each once"
    return None


def _magnitude(partial: ColumnPartial) -> float:
    return max(abs(partial.min), abs(partial.max))


class Standard(Method):
    """z-score: centre the mean, scale by the standard deviation (with ``--ddof``)."""

    name = "standard"

    def fit(self, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        if partial.min == partial.max:
            return Fitted(Fraction(partial.min), 1.0, constant=True)
        mean = partial.moments.mean()
        std = sqrt_correctly_rounded(partial.moments.m2() / (partial.count - options.ddof))
        if near_zero(std, _magnitude(partial)):
            return Fitted(mean, 1.0, constant=True)
        return Fitted(mean, std)


class MinMax(Method):
    """Map [min, max] onto ``--feature-range`` [low, high]."""

    name = "minmax"
    fields = ("feature_range",)

    def fit(self, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        low, high = options.feature_range
        span = Fraction(partial.max) - Fraction(partial.min)  # may exceed float64: ±1.7e308
        constant = near_zero(_float(span), _magnitude(partial))
        if constant:
            span = Fraction(1)
        scale = _float(span / (Fraction(high) - Fraction(low)))
        if scale == 0.0 or scale == float("inf"):
            raise DataError(
                f"--feature-range {low:g},{high:g} is too wide or too narrow for the range of the data "
                f"({partial.min:g} to {partial.max:g}): the scale is not a positive float64",
                hint="choose a feature range of moderate width, e.g. 0,1",
            )
        # min maps to low exactly: centre = min − low · (the scale actually used)
        center = Fraction(partial.min) - Fraction(low) * Fraction(scale)
        return Fitted(center, scale, constant=constant, extra={"feature_range": (low, high)})

    def clip_range(self, column: ColumnStats) -> tuple[float, float] | None:
        return column.feature_range


class Robust(Method):
    """Centre the median, scale by the interquartile range (quantiles interpolated like numpy)."""

    name = "robust"
    mergeable = False
    keeps_values = True
    fields = ("median", "q1", "q3")

    def fit(self, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        assert quantiles is not None
        q1, median, q3 = quantiles["q1"], quantiles["median"], quantiles["q3"]
        iqr = q3 - q1
        constant = near_zero(iqr, max(abs(q1), abs(q3)))
        extra = {"median": median, "q1": q1, "q3": q3}
        return Fitted(Fraction(median), 1.0 if constant else iqr, constant=constant, extra=extra)


class MaxAbs(Method):
    """Scale by the largest absolute value, no centring (keeps zeros and sparsity)."""

    name = "maxabs"
    fields = ("max_abs",)

    def fit(self, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        max_abs = _magnitude(partial)
        return Fitted(Fraction(0), max_abs or 1.0, constant=max_abs == 0.0, extra={"max_abs": max_abs})


METHODS: dict[str, Method] = {m.name: m for m in (Standard(), MinMax(), Robust(), MaxAbs())}
"""The methods by name, in the order of ``--help`` and the JSON schema's enum."""


def method(name: str) -> Method:
    return METHODS[name]

