"""Per-group partial statistics (``--by``): the group dimension of the fragment function.

A fragment's blocks (the fixed 65,536-row blocks of :mod:`normcli.scaling.fragments`) are split
by group key. For each group and column, every block contributes float sums of the deviations
from the block's own (weighted) mean of the group, summed in row order with ``numpy.bincount``,
so they depend on the block's rows alone — exactly as the pooled statistics do. They are then
added up **exactly**: converted with error-free products into raw sums (``Σw·x``, ``Σw·x²``),
and kept per group as short non-overlapping expansions of floats (Shewchuk's grow-expansion, done
for all groups at once with numpy; a component that does not fit moves into an exact
:class:`~normcli.scaling.exact.Dyadic`). So the statistics of a fragment do not depend on how its
rows were cut into fragments at block boundaries, and fragments merge exactly like the pooled ones.

Cost: per block, a hash join of the block's keys with the keys seen so far and a fixed number of
vectorized passes per column, whatever the number of groups; memory: a few floats per group and
column, so it grows with the number of groups, never with the number of rows.

Groups whose values (or weights) are near float64's limits — beyond 2^250, or all below 2^-250 —
take an exact path of their own, block by block.

Keys are normalized so that CSV and Parquet inputs agree: text stays text, integers and booleans
stay as they are, dates, datetimes and categories become their ISO/text form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from normcli.errors import DataError
from normcli.scaling.exact import ZERO, Dyadic, Moments
from normcli.scaling.model import ColumnPartial, GroupKey

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from normcli.scaling.fragments import ColumnSpec

LEVELS = 6
"""Floats per running sum (see :class:`ExactSums`); what the last cannot hold goes to a Dyadic."""

_GID = "\x00gid"


@dataclass
class GroupPartials:
    """What the fragment function returns for ``--by``: each group's key, rows and partials.

    ``keys[i]``, ``rows[i]`` and ``columns[name][i]`` describe group ``i`` (in order of first
    appearance in the fragment). Plain data: it pickles, so a distributed engine can return it.
    """

    keys: list[GroupKey] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    columns: dict[str, list[ColumnPartial]] = field(default_factory=dict)

    def items(self):  # noqa: ANN201 - (key, rows, {column: partial}) per group
        for index, key in enumerate(self.keys):
            yield key, self.rows[index], {name: partials[index] for name, partials in self.columns.items()}


def key_expressions(by: Sequence[str], schema: pl.Schema | dict) -> list[pl.Expr]:
    """The ``--by`` columns as group keys: text, integers and booleans as they are, anything else
    (dates, datetimes, categories) as text, so that every input format gives the same keys."""
    import polars as pl

    exprs = []
    for name in by:
        dtype = schema[name]
        keep = dtype == pl.String or dtype == pl.Boolean or dtype.is_integer()
        exprs.append(pl.col(name) if keep else pl.col(name).cast(pl.String))
    return exprs


def check_key_dtype(name: str, dtype: str) -> None:
    """Group columns hold labels: text, integers, booleans, dates or categories, not floats."""
    if dtype.startswith(("Float", "Decimal")):
        raise DataError(
            f"--by column '{name}' holds {dtype} numbers; groups are labels",
            hint="group by a text, integer, boolean or date column (cast or round the values first)",
        )


class KeyIndex:
    """Group ids (0, 1, … in order of first appearance) for the keys of successive blocks."""

    def __init__(self, by: Sequence[str]) -> None:
        self.by = list(by)
        self.known: pl.DataFrame | None = None

    def __len__(self) -> int:
        return 0 if self.known is None else self.known.height

    def ids(self, keys: pl.DataFrame) -> np.ndarray:
        """The group id of each row of ``keys`` (new keys get new ids)."""
        import polars as pl

        if self.known is None:
            new = keys.unique(maintain_order=True)
            self.known = new.with_columns(pl.int_range(0, new.height, dtype=pl.Int64).alias(_GID))
        joined = keys.join(self.known, on=self.by, how="left", nulls_equal=True, maintain_order="left")
        gid = joined[_GID]
        if gid.null_count():
            new = keys.filter(gid.is_null()).unique(maintain_order=True)
            start = self.known.height
            new = new.with_columns(pl.int_range(start, start + new.height, dtype=pl.Int64).alias(_GID))
            self.known = pl.concat([self.known, new.cast(self.known.schema)], how="vertical")
            gid = keys.join(self.known, on=self.by, how="left", nulls_equal=True, maintain_order="left")[_GID]
        return gid.to_numpy()

    def keys(self) -> list[GroupKey]:
        if self.known is None:
            return []
        return [tuple(row) for row in self.known.select(self.by).rows()]


def two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p, e) with p = fl(a·b) and p + e = a·b exactly (Dekker), elementwise — exact unless a
    product is below about 2^-970 or an operand beyond 2^995 (callers rule those out)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = 134217729.0 * a  # 2^27 + 1
    high = c - (c - a)
    return high, a - high


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth), elementwise."""
    s = a + b
    virtual = s - a
    return s, (a - (s - virtual)) + (b - virtual)


class ExactSums:
    """Exact running sums of floats, one per (quantity, group), vectorized over all of them.

    Each sum is held as :data:`LEVELS` floats whose exact total it is. Adding a float is a cascade
    of error-free ``TwoSum`` steps: level 0 takes the float, level 1 the rounding error of that,
    and so on (each level's errors are far smaller than its values); an error the last level cannot
    take moves into an exact Dyadic. Every step is exact, so the total always is.
    """

    def __init__(self, quantities: int) -> None:
        import numpy as np

        self.levels = np.zeros((LEVELS, quantities, 0))
        self.spilled: dict[tuple[int, int], Dyadic] = {}

    def grow(self, groups: int) -> None:
        import numpy as np

        have = self.levels.shape[2]
        if groups > have:
            size = max(groups, 2 * have)
            bigger = np.zeros((LEVELS, self.levels.shape[1], size))
            bigger[:, :, :have] = self.levels
            self.levels = bigger

    def add(self, values: np.ndarray, start: int = 0) -> None:
        """Add ``values[q, g]`` to sum (q, g) for the first ``values.shape[1]`` groups (exact).

        ``start``: the level to add them at. Any level keeps the total exact; small values (the
        rounding errors of products) start lower, where their magnitude is, saving steps."""
        import numpy as np

        width = values.shape[1]
        carry = np.array(values, dtype=np.float64)  # a copy: the steps below work in place
        total, virtual, low = (np.empty_like(carry) for _ in range(3))
        for level in self.levels[start:, :, :width]:
            # TwoSum(level, carry) in place: level ← fl(level + carry), carry ← its rounding error
            np.add(level, carry, out=total)
            np.subtract(total, level, out=virtual)
            np.subtract(total, virtual, out=low)
            np.subtract(level, low, out=low)
            np.subtract(carry, virtual, out=carry)
            np.add(low, carry, out=carry)
            level[...] = total
            if not carry.any():
                return
        for q, g in zip(*np.nonzero(carry), strict=True):
            key = (int(q), int(g))
            self.spilled[key] = self.spilled.get(key, ZERO) + Dyadic.of(float(carry[q, g]))

    def totals(self, q: int, groups: int) -> list[Dyadic]:
        """The exact sums (q, g) of the first ``groups`` groups."""
        import numpy as np

        terms = self.levels[:, q, :groups]
        fractions, exponents = np.frexp(terms)
        mantissas = (fractions * 2.0**53).astype(np.int64)  # exact: 53-bit integers
        exponents = exponents.astype(np.int64) - 53
        nonzero = mantissas != 0
        lowest = np.where(nonzero, exponents, np.iinfo(np.int64).max).min(axis=0)
        lowest = np.where(nonzero.any(axis=0), lowest, 0)
        shifts = np.where(nonzero, exponents - lowest, 0)
        # Python integers from here (object arrays: the shifts may exceed 64 bits), summed in C loops
        totals = (mantissas.astype(object) << shifts.astype(object)).sum(axis=0).tolist()
        result = [Dyadic(total, e) for total, e in zip(totals, lowest.tolist(), strict=True)]
        for (quantity, g), spilled in self.spilled.items():
            if quantity == q and g < groups:
                result[g] = result[g] + spilled
        return result


FAST_MAX = 2.0**200
FAST_MIN = 2.0**-200
"""Values (and block weight totals) within these magnitudes take the vectorized path."""
SNAP = 2.0**-300
"""A block mean closer to 0 than this is taken as 0 (any shift near the mean will do)."""
PRODUCT_MIN = 2.0**-900
"""Products of the conversion below this magnitude could lose bits: those blocks go the exact way."""
ROUND_LEVELS = (0, 0, 0, 1, 1, 1, 1, 1, 2, 1, 2, 2, 2, 2, 2, 2, 2)
"""The level (:class:`ExactSums`) each round of the exact conversion (:meth:`_Column.add`) starts
at: the block sums and the main products at 0, their rounding errors lower."""


class _Column:
    """One column's per-group state in a fragment: counts, extremes, shifts and exact sums.

    Per block and group, the sums are taken around the block's own (weighted) mean ``m``:
    ``W``, ``s1 = Σw(x − m)``, ``s2 = Σw(x − m)²`` (floats, in row order: they depend on the block
    alone, as the pooled statistics do). They are moved exactly — with error-free differences and
    products — to the group's shift ``S`` (the mean of its first block): with ``d = m − S``,
    ``Σw(x − S) = s1 + W·d`` and ``Σw(x − S)² = s2 + 2d·s1 + W·d²``, which add up exactly.
    """

    def __init__(self, spec: ColumnSpec, offset: int) -> None:
        import numpy as np

        self.spec = spec
        self.weighted = spec.weight is not None
        self.offset = offset  # its quantities in the shared ExactSums: Σw(x − S), Σw(x − S)² (, Σw)
        self.quantities = 3 if self.weighted else 2
        self.count = np.zeros(0, dtype=np.int64)  # values used (not null, not NaN)
        self.fast = np.zeros(0, dtype=np.int64)  # ... of which summed on the vectorized path
        self.nulls = np.zeros(0, dtype=np.int64)
        self.nans = np.zeros(0, dtype=np.int64)
        self.low = np.zeros(0)
        self.high = np.zeros(0)
        self.shift = np.zeros(0)  # the first block's mean: NaN until the group has values
        self.exact: dict[int, Moments] = {}  # blocks summed on the exact path

    def grow(self, groups: int) -> None:
        import numpy as np

        have = len(self.count)
        if groups <= have:
            return
        extra = groups - have
        zeros = np.zeros(extra, dtype=np.int64)
        self.count, self.fast = np.concatenate([self.count, zeros]), np.concatenate([self.fast, zeros])
        self.nulls, self.nans = np.concatenate([self.nulls, zeros]), np.concatenate([self.nans, zeros])
        self.low = np.concatenate([self.low, np.full(extra, np.inf)])
        self.high = np.concatenate([self.high, np.full(extra, -np.inf)])
        self.shift = np.concatenate([self.shift, np.full(extra, np.nan)])

    def add(self, gid: np.ndarray, groups: int, x: np.ndarray, null: np.ndarray, w: np.ndarray | None) -> list[np.ndarray | None]:
        """One block: ``x`` the values (NaN where null or NaN), ``null`` where missing, ``w`` the
        weights. Returns the floats to add exactly to this column's sums, round by round, each of
        shape (quantities, groups) or None where all zero."""
        import numpy as np

        self.grow(groups)
        missing = np.isnan(x)
        if missing.any():
            nan = missing & ~null
            self.nulls[:groups] += np.bincount(gid[null], minlength=groups)
            self.nans[:groups] += np.bincount(gid[nan], minlength=groups)
            used = ~missing
            g, v = gid[used], x[used]
            wv = w[used] if w is not None else None
        else:
            g, v, wv = gid, x, w
        if not len(v) or np.isinf(v).any():  # infinities: the pooled statistics report the error
            return []
        counts = np.bincount(g, minlength=groups)
        self.count[:groups] += counts
        present = counts > 0
        positive = g if wv is None else g[wv > 0]
        values = v if wv is None else v[wv > 0]
        np.minimum.at(self.low, positive, values)
        np.maximum.at(self.high, positive, values)
        # the block's sums per group, around its own mean
        total = counts.astype(np.float64) if wv is None else np.bincount(g, weights=wv, minlength=groups)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
            plain = np.bincount(g, weights=v, minlength=groups) / np.maximum(counts, 1)
            mean = plain
            if wv is not None:
                mean = np.where(total > 0, np.bincount(g, weights=wv * v, minlength=groups) / total, plain)
            mean = np.where(np.abs(mean) < SNAP, 0.0, mean)
            d = v - mean[g]
            wd = d if wv is None else wv * d
            s1 = np.bincount(g, weights=wd, minlength=groups)
            s2 = np.bincount(g, weights=wd * d, minlength=groups)
            first = present & np.isnan(self.shift[:groups])
            self.shift[:groups] = np.where(first, mean, self.shift[:groups])
            shift = self.shift[:groups]
            # which groups the vectorized conversion handles exactly; the others go the exact way
            unsafe = ~(np.isfinite(mean) & np.isfinite(s1) & np.isfinite(s2) & np.isfinite(total))
            magnitude = np.abs(v)
            if magnitude.max() > FAST_MAX or (magnitude < FAST_MIN).sum() > (magnitude == 0).sum():
                top = np.zeros(groups)
                np.maximum.at(top, g, magnitude)
                unsafe |= (top > FAST_MAX) | ((top > 0) & (top < FAST_MIN))
            if wv is not None:
                unsafe |= (total > FAST_MAX) | ((total > 0) & (total < FAST_MIN))
            keep = present & ~unsafe
            m, n, r1, r2, base = (np.where(keep, a, 0.0) for a in (mean, total, s1, s2, shift))
            high, low = two_sum(m, -base)  # d = high + low, exactly
            square, square_e = two_product(high, high)
            parts = {"nh": two_product(n, high), "hs": two_product(high, r1), "nq": two_product(n, square), "nqe": two_product(n, square_e)}
            checked = [square, square_e]
            if low.any():  # d is exact as one float unless the means differ in sign or by 2x and more
                cross, cross_e = two_product(high, low)
                tiny, tiny_e = two_product(low, low)
                parts.update(
                    nl=two_product(n, low), ls=two_product(low, r1), nc=two_product(n, cross),
                    nce=two_product(n, cross_e), nt=two_product(n, tiny), nte=two_product(n, tiny_e),
                )
                checked += [cross, cross_e, tiny, tiny_e]
            for p in (*checked, *(p for p, _ in parts.values())):
                unsafe |= (p != 0) & (np.abs(p) < PRODUCT_MIN)
        keep = present & ~unsafe
        if (unsafe & present & (m != 0)).any():  # groups found unsafe by their products: drop their terms
            parts = {k: (a * keep, b * keep) for k, (a, b) in parts.items()}
            r1, r2, n = r1 * keep, r2 * keep, n * keep

        def term(name: str, error: bool = False, factor: float = 1.0):  # noqa: ANN202
            pair = parts.get(name)
            return None if pair is None else factor * pair[1 if error else 0]

        # (Σw(x − S) term, Σw(x − S)² term) per round, by magnitude (see ROUND_LEVELS); None: zero
        pairs = [
            (r1, r2), (term("nh"), term("nq")), (term("nl"), term("hs", factor=2.0)),
            (term("nh", True), term("nq", True)), (term("nl", True), term("ls", factor=2.0)),
            (None, term("hs", True, 2.0)), (None, term("ls", True, 2.0)), (None, term("nqe")), (None, term("nqe", True)),
            (None, term("nc", factor=2.0)), (None, term("nc", True, 2.0)), (None, term("nce", factor=2.0)),
            (None, term("nce", True, 2.0)), (None, term("nt")), (None, term("nt", True)), (None, term("nte")),
            (None, term("nte", True)),
        ]
        zero = np.zeros(groups)
        rounds: list[np.ndarray | None] = []
        for i, (first_term, second_term) in enumerate(pairs):
            if first_term is None and second_term is None and not (i == 0 and wv is not None):
                rounds.append(None)
                continue
            row = [zero if first_term is None else first_term, zero if second_term is None else second_term]
            if wv is not None:
                row.append(n if i == 0 else zero)
            rounds.append(np.stack(row))
        self.fast[:groups] += counts * keep
        for group in np.nonzero(unsafe & present)[0].tolist():
            if np.isfinite([mean[group], s1[group], s2[group], total[group]]).all():
                weight = None if wv is None else Dyadic.of(float(total[group]))
                moments = Moments(int(counts[group]), float(mean[group]), Dyadic.of(float(s1[group])), Dyadic.of(float(s2[group])), weight)
            else:
                rows = g == group
                moments = exact_block_moments(v[rows], None if wv is None else wv[rows])
                if first[group]:
                    self.shift[group] = moments.shift
            mine = self.exact.get(group)
            self.exact[group] = moments if mine is None else mine.combine(moments)
        return rounds

    def partials(self, groups: int, sums: ExactSums) -> list[ColumnPartial]:
        self.grow(groups)
        count, fast, nulls, nans = (a.tolist() for a in (self.count, self.fast, self.nulls, self.nans))
        low, high, shift = self.low.tolist(), self.high.tolist(), self.shift.tolist()
        raw1, raw2 = sums.totals(self.offset, groups), sums.totals(self.offset + 1, groups)
        w = sums.totals(self.offset + 2, groups) if self.weighted else None
        result = []
        for g in range(groups):
            if not count[g]:
                result.append(ColumnPartial(self.spec.dtype, null_count=nulls[g], nan_count=nans[g]))
                continue
            moments = Moments.empty()
            if fast[g]:
                moments = Moments(fast[g], shift[g], raw1[g], raw2[g], None if w is None else w[g])
            if g in self.exact:  # recentred to the shift of the fast part (the group's shift)
                moments = moments.combine(self.exact[g])
            if self.weighted and moments.weight is None:
                moments = Moments(moments.count, moments.shift, moments.s1, moments.s2, ZERO)
            seen = low[g] <= high[g]  # some value of positive weight
            result.append(
                ColumnPartial(
                    self.spec.dtype, count[g], nulls[g], nans[g], 0,
                    low[g] if seen else 0.0, high[g] if seen else 0.0, moments,
                )
            )
        return result


def exact_block_moments(values: np.ndarray, weights: np.ndarray | None) -> Moments:
    """Moments of some values (and weights) from sums on values scaled by powers of two, so that
    neither their squares nor the weighted products overflow or underflow (exact scaling)."""
    import numpy as np

    weighed = values if weights is None or not (weights > 0).any() else values[weights > 0]
    magnitude = float(np.abs(weighed).max())  # values of weight 0 do not count
    power = 0 if magnitude == 0.0 else max(min(-math.frexp(magnitude)[1], 1000), -1000)
    scaled = values * 2.0**power
    if weights is None:
        mean = float(scaled.mean())
        d = scaled - mean
        return Moments.of_block(len(values), math.ldexp(mean, -power), float(d.sum()), float((d * d).sum()), power)
    wmax = float(weights.max())
    weight_power = 0 if wmax == 0.0 else max(min(-math.frexp(wmax)[1], 1000), -1000)
    u = weights * 2.0**weight_power
    total = float(u.sum())
    mean = float((u * scaled).sum() / total) if total > 0 else float(scaled.mean())
    d = scaled - mean
    return Moments.of_block(
        len(values), math.ldexp(mean, -power), float((u * d).sum()), float((u * d * d).sum()),
        power, total, weight_power,
    )


class GroupAccumulator:
    """Per-group partial statistics of a fragment's columns, block after block."""

    def __init__(self, by: Sequence[str], specs: Sequence[ColumnSpec]) -> None:
        self.by = list(by)
        self.specs = list(specs)
        self.index = KeyIndex(by)
        self.columns: dict[str, _Column] = {}
        offset = 0
        for spec in specs:
            column = self.columns[spec.name] = _Column(spec, offset)
            offset += column.quantities
        self.sums = ExactSums(offset)
        self.rows = None

    def add(self, block: pl.DataFrame) -> None:
        import numpy as np
        import polars as pl

        from normcli.scaling.fragments import numbers

        gid = self.index.ids(block.select(key_expressions(self.by, block.schema)))
        groups = len(self.index)
        rows = np.bincount(gid, minlength=groups)
        if self.rows is None:
            self.rows = rows
        else:
            self.rows = np.concatenate([self.rows, np.zeros(groups - len(self.rows), dtype=np.int64)]) + rows
        weights: dict[str, np.ndarray] = {}
        per_column = []
        for spec in self.specs:
            values = numbers(block, spec)
            null = values.is_null().to_numpy()
            x = values.to_numpy()  # nulls become NaN
            w = None
            if spec.weight is not None:
                if spec.weight not in weights:
                    weights[spec.weight] = block[spec.weight].cast(pl.Float64).to_numpy()
                w = weights[spec.weight]
            column = self.columns[spec.name]
            per_column.append((column, column.add(gid, groups, x, null, w)))
        self.sums.grow(groups)
        for i, level in enumerate(ROUND_LEVELS):  # columns without such terms add zeros
            if all(not terms or terms[i] is None for _, terms in per_column):
                continue
            values = np.concatenate(
                [terms[i] if terms and terms[i] is not None else np.zeros((c.quantities, groups)) for c, terms in per_column]
            )
            if values.any():
                self.sums.add(values, level)

    def result(self, absent: Sequence[ColumnSpec]) -> GroupPartials:
        groups = len(self.index)
        rows = [] if self.rows is None else self.rows.tolist()
        result = GroupPartials(keys=self.index.keys(), rows=rows)
        self.sums.grow(groups)
        for spec in self.specs:
            result.columns[spec.name] = self.columns[spec.name].partials(groups, self.sums)
        for spec in absent:
            result.columns[spec.name] = [ColumnPartial(spec.dtype, null_count=n) for n in rows]
        return result
