"""Exact arithmetic on sums of float64 values: what makes every fit a deterministic merge.

A fit adds up per-block sums of the deviations of a column's values from a *shift* (a value near
their mean). Floating-point addition depends on the order; the sum of the same floats taken as
exact dyadic rationals (integer × 2^e) does not. :class:`Moments` keeps ``Σ(x − shift)`` and
``Σ(x − shift)²`` exactly, combines blocks and fragments with different shifts exactly, and rounds
only once at the end — so the statistics do not depend on thread counts, on which machine summed
which fragment, or on the order in which fragments with the same rows are merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class Dyadic:
    """An exact dyadic rational ``mantissa · 2**exponent``; every finite float is one."""

    mantissa: int
    exponent: int

    @staticmethod
    def of(value: float) -> Dyadic:
        """The exact value of a finite float."""
        if value == 0.0:
            return ZERO
        fraction, exponent = math.frexp(value)
        return Dyadic(int(fraction * (1 << 53)), exponent - 53)

    def __add__(self, other: Dyadic) -> Dyadic:
        if not other.mantissa:
            return self
        if not self.mantissa:
            return other
        if self.exponent <= other.exponent:
            return Dyadic(self.mantissa + (other.mantissa << (other.exponent - self.exponent)), self.exponent)
        return Dyadic((self.mantissa << (self.exponent - other.exponent)) + other.mantissa, other.exponent)

    def __sub__(self, other: Dyadic) -> Dyadic:
        return self + Dyadic(-other.mantissa, other.exponent)

    def __mul__(self, other: Dyadic | int) -> Dyadic:
        if isinstance(other, int):
            return Dyadic(self.mantissa * other, self.exponent)
        return Dyadic(self.mantissa * other.mantissa, self.exponent + other.exponent)

    def magnitude(self) -> int:
        """About log2 of the absolute value (0 for zero)."""
        return self.mantissa.bit_length() + self.exponent if self.mantissa else 0

    def scaled(self, power: int) -> Dyadic:
        """This value times ``2**power`` (exact)."""
        return Dyadic(self.mantissa, self.exponent + power)

    def fraction(self) -> Fraction:
        if self.exponent >= 0:
            return Fraction(self.mantissa << self.exponent)
        return Fraction(self.mantissa, 1 << -self.exponent)

    def __float__(self) -> float:
        """Correctly rounded (inf beyond float64 range)."""
        m, e = self.mantissa, self.exponent
        if m.bit_length() <= 1000 and -1000 < m.bit_length() + e < 1020:
            return math.ldexp(float(m), e)  # float(int) rounds once; ldexp is exact in normal range
        try:
            return float(self.fraction())
        except OverflowError:
            return math.inf if self.mantissa > 0 else -math.inf

    def expansion(self) -> list[float]:
        """Floats whose exact sum is this value, largest first (see :func:`expansion`).

        Computed on the integer mantissa while the terms are normal floats (the same terms as
        :func:`expansion`, much faster); near float64's limits on the exact fraction.
        """
        m, e = self.mantissa, self.exponent
        terms: list[float] = []
        while m and len(terms) < _EXPANSION_LIMIT:
            if not (m.bit_length() <= 1000 and -1000 < m.bit_length() + e < 1020):
                rest = expansion(Dyadic(m, e).fraction(), _EXPANSION_LIMIT - len(terms))
                return terms + (rest if rest != [0.0] else []) or [0.0]
            rounded = float(m)
            terms.append(math.ldexp(rounded, e))
            m -= int(rounded)
        return terms or [0.0]

    @staticmethod
    def from_expansion(terms: list[float]) -> Dyadic:
        total = ZERO
        for term in terms:
            total = total + Dyadic.of(term)
        return total


ZERO = Dyadic(0, 0)


_EXPANSION_LIMIT = 40


def expansion(value: Fraction, limit: int = _EXPANSION_LIMIT) -> list[float]:
    """Floats whose exact sum is ``value``, largest first (a non-overlapping expansion).

    The first is ``value`` correctly rounded; the rest are the successive remainders. Bits below
    the smallest subnormal (2^-1074) cannot be written as floats and are dropped.
    """
    terms: list[float] = []
    rest = value
    while rest and len(terms) < limit:
        term = float(rest)
        if term == 0.0:
            break
        terms.append(term)
        rest -= Fraction(term)
    return terms or [0.0]


def sqrt_correctly_rounded(value: Fraction) -> float:
    """The float nearest to √value for a non-negative rational (ties cannot occur)."""
    if value <= 0:
        return 0.0
    return sqrt_ratio(value.numerator, value.denominator)


def sqrt_ratio(num: int, den: int) -> float:
    """The float nearest to √(num / den) for integers num ≥ 0, den > 0 (need not be reduced)."""
    if num <= 0:
        return 0.0
    # choose a power of four 4^s so that the integer square root has 55 to 57 bits (s < 0 for
    # values near the top of float64's range: their root as an integer does not fit a float)
    shift = (110 - (num.bit_length() - den.bit_length())) // 2 + 1
    if shift >= 0:
        quotient, remainder = divmod(num << (2 * shift), den)
    else:
        quotient, remainder = divmod(num, den << (-2 * shift))
    root = math.isqrt(quotient)
    inexact = remainder != 0 or root * root != quotient
    # root ≤ √ < root + 1; with ≥ 55 bits, rounding root + ½ rounds the true value the same way
    return math.ldexp(float(2 * root + inexact), -(shift + 1))


def _add_aligned(x: int, xe: int, y: int, ye: int) -> tuple[int, int]:
    """x·2^xe + y·2^ye as (integer, exponent)."""
    e = min(xe, ye)
    return (x << (xe - e)) + (y << (ye - e)), e


def _ratio(num: int, ne: int, den: int, de: int) -> Ratio:
    """(num·2^ne) / (den·2^de) for den > 0."""
    k = ne - de
    return Ratio(num << k, den) if k >= 0 else Ratio(num, den << -k)


@dataclass(frozen=True, slots=True)
class Ratio:
    """An exact rational ``num / den`` (den > 0), not reduced: cheaper than a Fraction to build
    and round once (CPython's integer true division is correctly rounded)."""

    num: int
    den: int

    def __float__(self) -> float:
        """Correctly rounded; ±inf beyond float64 range."""
        try:
            return self.num / self.den
        except OverflowError:
            return math.inf if self.num > 0 else -math.inf

    def fraction(self) -> Fraction:
        return Fraction(self.num, self.den)

    def split(self) -> tuple[float, float]:
        """(hi, lo): hi is the value rounded to float64, lo the rounded remainder."""
        hi = float(self)
        if not math.isfinite(hi) or hi == 0.0:
            return hi, 0.0
        h = Dyadic.of(hi)
        rest, e = _add_aligned(self.num, 0, -h.mantissa * self.den, h.exponent)
        return hi, float(_ratio(rest, e, self.den, 0))


@dataclass(frozen=True, slots=True)
class Rounded:
    """A column's ``mean`` and ``m2`` (exact) and its ``std`` (correctly rounded)."""

    mean: Ratio
    m2: Ratio
    std: float


@dataclass(frozen=True, slots=True)
class Moments:
    """Exact ``count``, ``Σw``, ``Σw(x − shift)`` and ``Σw(x − shift)²`` of a column's values.

    Unweighted, every value weighs 1 (``weight`` is ``None`` and ``Σw = count``). With frequency
    weights, ``weight`` holds ``Σw`` exactly: a value of weight ``w`` counts as ``w`` values, so
    ``mean = shift + s1 / Σw`` and ``M2 = Σw(x − mean)² = s2 − s1² / Σw``. Both are computed exactly
    from these sums and rounded once. Moments of disjoint row sets combine exactly
    (:meth:`combine`), so the result is the same whatever the grouping: that is what lets a fit be
    split into fragments on any number of threads or machines.
    """

    count: int
    shift: float
    s1: Dyadic
    s2: Dyadic
    weight: Dyadic | None = None
    """``Σw`` of frequency-weighted values; ``None`` when each value weighs 1."""

    @staticmethod
    def empty() -> Moments:
        return Moments(0, 0.0, ZERO, ZERO)

    @staticmethod
    def of_block(
        count: int,
        shift: float,
        s1: float,
        s2: float,
        power: int = 0,
        weight: float | None = None,
        weight_power: int = 0,
    ) -> Moments:
        """Moments of one block from its float sums: ``s1 = Σw(x·2^p − shift·2^p)`` and ``s2`` the
        weighted sum of squares of the same deviations, computed on values scaled by ``2**power``
        and weights (``weight`` = their float sum) scaled by ``2**weight_power`` (both 0 unless
        they would overflow or underflow). Unweighted blocks pass no ``weight``."""
        w = None if weight is None else Dyadic.of(weight).scaled(-weight_power)
        return Moments(
            count,
            shift,
            Dyadic.of(s1).scaled(-power - weight_power),
            Dyadic.of(s2).scaled(-2 * power - weight_power),
            w,
        )

    @property
    def weighted(self) -> bool:
        return self.weight is not None

    def total(self) -> Dyadic:
        """``Σw``: the weight of the values (their count when unweighted)."""
        return self.weight if self.weight is not None else Dyadic(self.count, 0)

    def recentred(self, shift: float) -> Moments:
        """The same moments around another shift (exact)."""
        if shift == self.shift or not self.count:
            return Moments(self.count, shift, self.s1, self.s2, self.weight)
        c = Dyadic.of(self.shift) - Dyadic.of(shift)
        total: Dyadic | int = self.count if self.weight is None else self.weight
        s1 = self.s1 + c * total
        s2 = self.s2 + c * self.s1 * 2 + c * c * total
        return Moments(self.count, shift, s1, s2, self.weight)

    def combine(self, other: Moments) -> Moments:
        """The moments of the union of two disjoint row sets, around this one's shift (exact).

        An empty side takes the other's shift, so the first non-empty part fixes it. Weighted and
        unweighted moments combine as if the unweighted values weighed 1 each.
        """
        if not other.count:
            return self
        if not self.count:
            return other
        other = other.recentred(self.shift)
        weight = None
        if self.weight is not None or other.weight is not None:
            weight = self.total() + other.total()
        return Moments(self.count + other.count, self.shift, self.s1 + other.s1, self.s2 + other.s2, weight)

    def power(self) -> int:
        """A power of two ``p`` such that ``s1 / 2^p`` and ``s2 / 4^p`` are comfortably within
        float64 range (0 unless the values are near 1e300 or tiny): how the stats file writes them."""
        top = self.s2.magnitude()
        if not self.s2.mantissa or -900 < top < 1000:
            return 0
        return top // 2

    def mean(self) -> Fraction:
        return Fraction(self.shift) + self.s1.fraction() / self.total().fraction()

    def rounded(self, ddof: int) -> Rounded:
        """mean, M2 and std, each computed exactly and rounded once (integer arithmetic only:
        the fast equivalent of ``mean()``, ``m2()`` and a correctly rounded square root)."""
        if self.weight is None:
            t, te = self.count, 0
        else:
            t, te = self.weight.mantissa, self.weight.exponent
        shift = Dyadic.of(self.shift)
        a, ae = self.s1.mantissa, self.s1.exponent
        # mean = (shift·T + s1) / T
        num, e1 = _add_aligned(shift.mantissa * t, shift.exponent + te, a, ae)
        mean = _ratio(num, e1, t, te)
        # M2 = (s2·T − s1²) / T, never below 0
        top, e2 = _add_aligned(self.s2.mantissa * t, self.s2.exponent + te, -a * a, 2 * ae)
        top = max(top, 0)
        m2 = _ratio(top, e2, t, te)
        # std = √(M2 / (T − ddof))
        ue = min(te, 0)
        u = (t << (te - ue)) - (ddof << -ue)
        k = e2 - te - ue
        std = sqrt_ratio(top << max(k, 0), (t * u) << max(-k, 0)) if u > 0 else math.nan
        return Rounded(mean, m2, std)

    def m2(self) -> Fraction:
        s1 = self.s1.fraction()
        m2 = self.s2.fraction() - s1 * s1 / self.total().fraction()
        return max(m2, Fraction(0))
