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

With ``--weight`` the statistics are frequency-weighted: a row of weight ``w`` counts as ``w``
rows, so ``n = Σw``, ``mean = Σw·x / Σw`` and ``std = √(Σw(x − mean)² / (Σw − ddof))``; min and max
are over the values of positive weight.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from normcli.errors import DataError
from normcli.scaling.exact import Dyadic, Moments, Ratio
from normcli.scaling.model import ColumnPartial, ColumnStats, FitOptions, GroupColumn

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

EPSILON = sys.float_info.epsilon
NEAR_CONSTANT = 10 * EPSILON
"""A spread below this many times the column's magnitude is treated as zero (scikit-learn's rule)."""


@dataclass(frozen=True)
class Fitted:
    """What a method makes of a column: the exact centre, the scale, and its own fields."""

    center: Fraction | Ratio
    scale: float
    constant: bool = False
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class Summary:
    """A column's exact moments, computed once: ``mean``, ``m2`` = Σw(x − mean)², ``std``."""

    mean: Ratio
    m2: Ratio
    std: float

    @staticmethod
    def of(partial: ColumnPartial, ddof: int) -> Summary:
        if partial.min == partial.max:  # constant: exactly zero spread, whatever rounding says
            low = Fraction(partial.min)
            return Summary(Ratio(low.numerator, low.denominator), Ratio(0, 1), 0.0)
        rounded = partial.moments.rounded(ddof)
        return Summary(rounded.mean, rounded.m2, rounded.std)


def split(value: Fraction | Ratio) -> tuple[float, float]:
    """(hi, lo): hi is ``value`` rounded to float64, lo the rounded remainder.

    A centre beyond float64's range (minmax mapping ±1.7e308 onto a far feature range) cannot be
    written: an error, never an infinite centre in a stats file the loader would refuse.
    """
    if isinstance(value, Fraction):
        value = Ratio(value.numerator, value.denominator)
    hi, lo = value.split()
    if not math.isfinite(hi):
        raise DataError(
            "the centre of the scaling is beyond float64's range",
            hint="choose a feature range of moderate width and position, e.g. --feature-range 0,1",
        )
    return hi, lo


def near_zero(spread: float, magnitude: float) -> bool:
    return spread <= NEAR_CONSTANT * magnitude or spread == 0.0


def unfittable(partial: ColumnPartial, ddof: int) -> str | None:
    """Why ``partial`` cannot be fitted (no values, all of weight 0, too few for ``ddof``), or None."""
    n = partial.count
    if n == 0:
        return "has no values"
    weight = partial.moments.weight
    if weight is None:
        if n - ddof <= 0:
            return f"has {n} value; the standard deviation with --ddof {ddof} needs at least {ddof + 1}"
        return None
    if weight.mantissa <= 0:
        return "has only values of weight 0"
    if weight.magnitude() > 1000:  # leaves room for Σw(x − mean)² and the stats file's sums
        return f"has a total weight of {float(weight):.3g}, above the 2^1000 (about 1e301) normcli handles"
    if (weight - Dyadic(ddof, 0)).mantissa <= 0:
        return f"has a total weight of {float(weight):g}; the standard deviation with --ddof {ddof} needs more than {ddof}"
    return None


class Method:
    """A scaling method. Subclasses set ``name`` and implement :meth:`fit`."""

    name: ClassVar[str]
    mergeable: ClassVar[bool] = True
    """Whether fits of disjoint shards merge exactly into the fit of their union."""
    keeps_values: ClassVar[bool] = False
    """Whether fitting needs every value (quantiles) rather than mergeable partial statistics."""
    fields: ClassVar[tuple[str, ...]] = ()
    """The method's own fields in the stats file, besides the common ones."""
    bounded: ClassVar[bool] = False
    """Whether the method maps the fitted data into a fixed range (which ``--clip`` enforces)."""

    def fit(self, partial: ColumnPartial, summary: Summary, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        raise NotImplementedError

    def clip_range(self, column: ColumnStats) -> tuple[float, float] | None:
        """The output range ``--clip`` clamps to, if the method has one."""
        return None

    def quantiles(self, values: pl.Series, options: FitOptions) -> dict[str, float] | None:
        """What a method that keeps every value (``keeps_values``) needs of them."""
        return None

    # ------------------------------------------------------------------ application

    def expression(self, column: ColumnStats, *, inverse: bool = False) -> pl.Expr:
        """The Polars expression applying ``column`` to the column of that name (as Float64)."""
        import polars as pl

        x = pl.col(column.name).cast(pl.Float64)
        # a column equal to ``scale`` everywhere, which the optimizer cannot fold into a constant
        divisor = x.is_null().cast(pl.Float64) * 0.0 + column.scale
        tiny = column.scale < 2.0**-1000
        return self.affine(x, pl.lit(column.center), pl.lit(column.center_lo), divisor, inverse=inverse, tiny=tiny)

    @staticmethod
    def affine(x: pl.Expr, center: pl.Expr, center_lo: pl.Expr, scale: pl.Expr, *, inverse: bool = False, tiny: bool = False) -> pl.Expr:
        """``((x − center) − center_lo) / scale`` (or the inverse) with parameters as expressions.

        ``scale`` must be a column, not a literal: Polars turns division by a scalar into
        multiplication by its reciprocal, which is off by one ulp in a third of the rows.
        ``tiny``: some scale is below 2^-1000, where x/scale may overflow though the exact
        quotient does not; both sides are then multiplied by 2^100 (exactly) first.
        """
        if inverse:
            return (x * scale + center_lo) + center
        centred = (x - center) - center_lo
        if tiny:
            return (centred * 2.0**100) / (scale * 2.0**100)
        return centred / scale

    def transformed_mean(self, column: ColumnStats) -> float:
        """What the column's mean becomes (``--impute mean``): the transform of the mean."""
        return column.apply(column.mean)

    def transformed_means(self, group: GroupColumn) -> np.ndarray:
        """The same for each group (NaN where the group has no parameters)."""
        return ((group.mean - group.center) - group.center_lo) / group.scale

    def apply_numpy(self, x: np.ndarray, column: ColumnStats, *, inverse: bool = False) -> np.ndarray:
        """The same formula on a numpy array (NaN stays NaN)."""
        if inverse:
            return (x * column.scale + column.center_lo) + column.center
        return ((x - column.center) - column.center_lo) / column.scale

    # ------------------------------------------------------------------ the stats

    def finish(self, name: str, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None = None) -> tuple[ColumnStats, list[str]]:
        """The fitted column of ``partial`` and its warnings (constant, NaN, big integers)."""
        problem = unfittable(partial, options.ddof)
        if problem is not None:
            hint = "use --ddof 0 or more rows" if "--ddof" in problem else "check the --weight column"
            raise DataError(f"column '{name}' {problem}", hint=hint)
        column, fitted = self.fit_column(name, partial, options, quantiles)
        return column, _warnings(column, partial, fitted.constant)

    def fit_column(self, name: str, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None = None) -> tuple[ColumnStats, Parameters]:
        """The fitted column of a fittable ``partial`` (see :func:`unfittable`), and its parameters."""
        p = self.parameters(partial, options, quantiles)
        moments: Moments = partial.moments
        column = ColumnStats(
            name=name,
            dtype=partial.dtype,
            method=self.name,
            count=partial.count,
            null_count=partial.null_count,
            nan_count=partial.nan_count,
            mean=p.mean,
            m2=p.m2,
            std=p.std,
            min=partial.min,
            max=partial.max,
            center=p.center,
            center_lo=p.center_lo,
            scale=p.scale,
            moments=moments,
            weight_sum=float(moments.total()) if moments.weighted else None,
            **(p.extra or {}),
        )
        return column, p

    def parameters(self, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None = None) -> Parameters:
        """The rounded statistics and parameters of a fittable ``partial``: exact, rounded once."""
        summary = Summary.of(partial, options.ddof)
        fitted = self.fit(partial, summary, options, quantiles)
        center, center_lo = split(fitted.center)
        return Parameters(
            mean=min(max(float(summary.mean), partial.min), partial.max),
            m2=_finite_or_none(summary.m2),
            std=summary.std,
            center=center,
            center_lo=center_lo,
            scale=fitted.scale,
            constant=fitted.constant,
            extra=fitted.extra,
        )


@dataclass(frozen=True)
class Parameters:
    """A column's rounded statistics and the parameters of ``y = ((x − center) − center_lo) / scale``."""

    mean: float
    m2: float | None
    std: float
    center: float
    center_lo: float
    scale: float
    constant: bool = False
    extra: dict[str, Any] | None = None


def _float(value: Fraction) -> float:
    """``value`` rounded to float64, ±inf beyond its range (``float()`` raises there)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _finite_or_none(value: Ratio) -> float | None:
    result = float(value)
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

    def parameters(self, partial: ColumnPartial, options: FitOptions, quantiles: dict[str, float] | None = None) -> Parameters:
        """As :meth:`Method.parameters`, with the exact mean and std used directly (no
        intermediate objects: per-group fits call this once per group and column)."""
        if partial.min == partial.max:
            return super().parameters(partial, options, quantiles)
        rounded = partial.moments.rounded(options.ddof)
        center, center_lo = rounded.mean.split()  # center: the mean rounded once
        constant = near_zero(rounded.std, _magnitude(partial))
        return Parameters(
            mean=min(max(center, partial.min), partial.max),
            m2=_finite_or_none(rounded.m2),
            std=rounded.std,
            center=center,
            center_lo=center_lo,
            scale=1.0 if constant else rounded.std,
            constant=constant,
        )

    def transformed_mean(self, column: ColumnStats) -> float:
        return 0.0  # the centre is the exact mean (the float mean alone would give ±lo/scale)

    def transformed_means(self, group: GroupColumn) -> np.ndarray:
        import numpy as np

        return np.where(group.fitted, 0.0, np.nan)

    def fit(self, partial: ColumnPartial, summary: Summary, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        if partial.min == partial.max:
            return Fitted(Fraction(partial.min), 1.0, constant=True)
        if near_zero(summary.std, _magnitude(partial)):
            return Fitted(summary.mean, 1.0, constant=True)
        return Fitted(summary.mean, summary.std)


class MinMax(Method):
    """Map [min, max] onto ``--feature-range`` [low, high]."""

    name = "minmax"
    fields = ("feature_range",)
    bounded = True

    def fit(self, partial: ColumnPartial, summary: Summary, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
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
    """Centre the median, scale by the spread between two percentiles (``--quantile-range``,
    default 25,75: the interquartile range), interpolated linearly like numpy and scikit-learn.

    With ``--unit-variance`` the spread is divided by that of a standard normal distribution
    (``Φ⁻¹(high/100) − Φ⁻¹(low/100)``, 1.349 for the IQR), as ``RobustScaler(unit_variance=True)``
    does, so normally distributed data end up with standard deviation 1. A zero spread gives
    scale 1 (then divided too, as scikit-learn does).
    """

    name = "robust"
    mergeable = False
    keeps_values = True
    fields = ("median", "q_low", "q_high")

    def fit(self, partial: ColumnPartial, summary: Summary, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        assert quantiles is not None
        low, median, high = quantiles["q_low"], quantiles["median"], quantiles["q_high"]
        spread = high - low
        constant = near_zero(spread, max(abs(low), abs(high)))
        scale = 1.0 if constant else spread
        if options.unit_variance:
            scale = scale / normal_spread(options.quantile_range)
        extra = {"median": median, "q_low": low, "q_high": high}
        return Fitted(Fraction(median), scale, constant=constant, extra=extra)

    def quantiles(self, values: pl.Series, options: FitOptions) -> dict[str, float] | None:
        low, high = options.quantile_range
        return {
            "q_low": float(values.quantile(low / 100.0, interpolation="linear")),
            "median": float(values.median()),
            "q_high": float(values.quantile(high / 100.0, interpolation="linear")),
        }


def normal_spread(quantile_range: tuple[float, float]) -> float:
    """``Φ⁻¹(high/100) − Φ⁻¹(low/100)``: the spread between the percentiles of N(0, 1)."""
    from statistics import NormalDist

    normal = NormalDist()
    low, high = quantile_range
    return normal.inv_cdf(high / 100.0) - normal.inv_cdf(low / 100.0)


class MaxAbs(Method):
    """Scale by the largest absolute value, no centring (keeps zeros and sparsity); maps into [-1, 1]."""

    name = "maxabs"
    fields = ("max_abs",)
    bounded = True

    def fit(self, partial: ColumnPartial, summary: Summary, options: FitOptions, quantiles: dict[str, float] | None) -> Fitted:
        max_abs = _magnitude(partial)
        return Fitted(Fraction(0), max_abs or 1.0, constant=max_abs == 0.0, extra={"max_abs": max_abs})

    def clip_range(self, column: ColumnStats) -> tuple[float, float] | None:
        return (-1.0, 1.0)


METHODS: dict[str, Method] = {m.name: m for m in (Standard(), MinMax(), Robust(), MaxAbs())}
"""The methods by name, in the order of ``--help`` and the JSON schema's enum."""


def method(name: str) -> Method:
    return METHODS[name]
