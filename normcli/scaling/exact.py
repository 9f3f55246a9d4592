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
        try:
            return float(self.fraction())
        except OverflowError:
            return math.copysign(math.inf, self.mantissa)

    def expansion(self) -> list[float]:
        """Floats whose exact sum is this value, largest first (see :func:`expansion`)."""
        return expansion(self.fraction())

    @staticmethod
    def from_expansion(terms: list[float]) -> Dyadic:
        total = ZERO
        for term in terms:
            total = total + Dyadic.of(term)
        return total


ZERO = Dyadic(0, 0)


def expansion(value: Fraction) -> list[float]:
    """Floats whose exact sum is ``value``, largest first (a non-overlapping expansion).

    The first is ``value`` correctly rounded; the rest are the successive remainders. Bits below
    the smallest subnormal (2^-1074) cannot be written as floats and are dropped.
    """
    terms: list[float] = []
    rest = value
    while rest and len(terms) < 40:
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
    num, den = value.numerator, value.denominator
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


@dataclass(frozen=True, slots=True)
class Moments:
    """Exact ``count``, ``Σ(x − shift)`` and ``Σ(x − shift)²`` of a column's values.

    ``mean = shift + s1 / count`` and ``M2 = Σ(x − mean)² = s2 − s1² / count`` are computed exactly
    from these and rounded once. Moments of disjoint row sets combine exactly (:meth:`combine`),
    so the result is the same whatever the grouping: that is what lets a fit be split into
    fragments on any number of threads or machines.
    """

    count: int
    shift: float
    s1: Dyadic
    s2: Dyadic

    @staticmethod
    def empty() -> Moments:
        return Moments(0, 0.0, ZERO, ZERO)

    @staticmethod
    def of_block(count: int, shift: float, s1: float, s2: float, power: int = 0) -> Moments:
        """Moments of one block from its float sums: ``s1 = Σ(x·2^p − shift·2^p)`` and ``s2``
        the sum of squares of the same deviations, computed on values scaled by ``2**power``
        (0 unless they would overflow or underflow)."""
        return Moments(count, shift, Dyadic.of(s1).scaled(-power), Dyadic.of(s2).scaled(-2 * power))

    def recentred(self, shift: float) -> Moments:
        """The same moments around another shift (exact)."""
        if shift == self.shift or not self.count:
            return Moments(self.count, shift, self.s1, self.s2)
        c = Dyadic.of(self.shift) - Dyadic.of(shift)
        s1 = self.s1 + c * self.count
        s2 = self.s2 + c * self.s1 * 2 + c * c * self.count
        return Moments(self.count, shift, s1, s2)

    def combine(self, other: Moments) -> Moments:
        """The moments of the union of two disjoint row sets, around this one's shift (exact).

        An empty side takes the other's shift, so the first non-empty part fixes it.
        """
        if not other.count:
            return self
        if not self.count:
            return other
        other = other.recentred(self.shift)
        return Moments(self.count + other.count, self.shift, self.s1 + other.s1, self.s2 + other.s2)

    def power(self) -> int:
        """A power of two ``p`` such that ``s1 / 2^p`` and ``s2 / 4^p`` are comfortably within
        float64 range (0 unless the values are near 1e300 or tiny): how the stats file writes them."""
        top = self.s2.magnitude()
        if not self.s2.mantissa or -900 < top < 1000:
            return 0
        return top // 2

    def mean(self) -> Fraction:
        return Fraction(self.shift) + self.s1.fraction() / self.count

    def m2(self) -> Fraction:
        s1 = self.s1.fraction()
        m2 = self.s2.fraction() - s1 * s1 / self.count
        return max(m2, Fraction(0))
