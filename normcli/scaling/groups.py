"""Per-group partial statistics (``--by``): the group dimension of the fragment function.

A fragment's blocks (the fixed 65,536-row blocks of :mod:`normcli.scaling.fragments`) are split
by group key. For each group and column, every block contributes float sums of the deviations
from one *group shift* — the (weighted) mean of the group's values in the first block where it
has any — summed in row order with ``numpy.bincount``, so they depend on the block's rows alone.
These block sums are then added up **exactly**: each group keeps its running sums as a short
non-overlapping expansion of floats (Shewchuk's grow-expansion, done for all groups at once with
numpy; a component that does not fit is moved into an exact :class:`~normcli.scaling.exact.Dyadic`),
so the statistics of a fragment do not depend on how its rows were cut into fragments at block
boundaries, and fragments merge exactly like the pooled statistics.

Cost: per block, a hash join of the block's keys with the keys seen so far and a few vectorized
passes per column, whatever the number of groups; memory: a few floats per group and column, so
it grows with the number of groups, never with the number of rows.

Groups whose values are near float64's limits (beyond 2^500, or all below 2^-400), or whose
weights are, take an exact path of their own, block by block (values scaled by a power of two).

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

EXPANSION_TERMS = 4
"""Floats kept per running sum; sums that need more bits move their smallest part to a Dyadic."""

SAFE_MAX = 2.0**500
SAFE_MIN = 2.0**-400

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
        if dtype == pl.String or dtype == pl.Boolean or dtype.is_integer():
            exprs.append(pl.col(name))
        elif dtype == pl.Null:
            exprs.append(pl.col(name).cast(pl.String))
        else:
            exprs.append(pl.col(name).cast(pl.String))
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


class ExactSums:
    """Exact running sums of floats, one per (quantity, group), vectorized over all of them.

    Each sum is a non-overlapping expansion of :data:`EXPANSION_TERMS` floats, smallest first;
    adding a float is Shewchuk's grow-expansion (error-free ``TwoSum`` steps), after which one zero
    component is dropped — or, if there is none, the smallest moves into an exact Dyadic.
    """

    def __init__(self, quantities: int) -> None:
        import numpy as np

        self.terms = np.zeros((EXPANSION_TERMS, quantities, 0))
        self.spilled: dict[tuple[int, int], Dyadic] = {}

    def grow(self, groups: int) -> None:
        import numpy as np

        have = self.terms.shape[2]
        if groups > have:
            size = max(groups, 2 * have)
            bigger = np.zeros((EXPANSION_TERMS, self.terms.shape[1], size))
            bigger[:, :, :have] = self.terms
            self.terms = bigger

    def add(self, values: np.ndarray) -> None:
        """Add ``values[q, g]`` to sum (q, g) for the first ``values.shape[1]`` groups (exact)."""
        import numpy as np

        width = values.shape[1]
        terms = self.terms[:, :, :width]
        parts = []
        carry = values
        for i in range(EXPANSION_TERMS):  # grow-expansion: (carry, h_i) = TwoSum(carry, e_i)
            total = carry + terms[i]
            virtual = total - carry
            parts.append((carry - (total - virtual)) + (terms[i] - virtual))
            carry = total
        parts.append(carry)
        # drop the first zero component; where none is zero, spill the smallest
        zero = np.stack([p == 0.0 for p in parts])
        first_zero = np.where(zero.any(axis=0), zero.argmax(axis=0), 0)
        spill = ~zero.any(axis=0)
        if spill.any():
            for q, g in zip(*np.nonzero(spill), strict=True):
                key = (int(q), int(g))
                self.spilled[key] = self.spilled.get(key, ZERO) + Dyadic.of(float(parts[0][q, g]))
        for j in range(EXPANSION_TERMS):
            terms[j] = np.where(j < first_zero, parts[j], parts[j + 1])

    def totals(self, q: int, groups: int) -> list[Dyadic]:
        """The exact sums (q, g) of the first ``groups`` groups."""
        import numpy as np

        terms = self.terms[:, q, :groups]
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


class _Column:
    """One column's per-group state in a fragment: counts, extremes, shifts and exact sums."""

    def __init__(self, spec: ColumnSpec) -> None:
        import numpy as np

        self.spec = spec
        self.weighted = spec.weight is not None
        self.count = np.zeros(0, dtype=np.int64)  # values used (not null, not NaN)
        self.fast = np.zeros(0, dtype=np.int64)  # ... of which summed on the fast path
        self.nulls = np.zeros(0, dtype=np.int64)
        self.nans = np.zeros(0, dtype=np.int64)
        self.low = np.zeros(0)
        self.high = np.zeros(0)
        self.shift = np.zeros(0)
        self.sums = ExactSums(3 if self.weighted else 2)  # s1, s2 (, Σw)
        self.exact: dict[int, Moments] = {}  # groups summed on the exact path

    def grow(self, groups: int) -> None:
        import numpy as np

        have = len(self.count)
        if groups <= have:
            return
        extra = groups - have
        self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])
        self.fast = np.concatenate([self.fast, np.zeros(extra, dtype=np.int64)])
        self.nulls = np.concatenate([self.nulls, np.zeros(extra, dtype=np.int64)])
        self.nans = np.concatenate([self.nans, np.zeros(extra, dtype=np.int64)])
        self.low = np.concatenate([self.low, np.full(extra, np.inf)])
        self.high = np.concatenate([self.high, np.full(extra, -np.inf)])
        self.shift = np.concatenate([self.shift, np.full(extra, np.nan)])
        self.sums.grow(groups)

    def add(self, gid: np.ndarray, groups: int, x: np.ndarray, null: np.ndarray, w: np.ndarray | None) -> None:
        """One block: ``x`` the values (NaN where null or NaN), ``null`` where missing, ``w`` weights."""
        import numpy as np

        self.grow(groups)
        nan = np.isnan(x) & ~null
        self.nulls[:groups] += np.bincount(gid[null], minlength=groups)
        self.nans[:groups] += np.bincount(gid[nan], minlength=groups)
        used = ~np.isnan(x)
        g, v = gid[used], x[used]
        if not len(v):
            return
        if np.isinf(v).any():  # the pooled statistics report infinities as an error
            return
        wv = w[used] if w is not None else None
        self.count[:groups] += np.bincount(g, minlength=groups)
        positive = g if wv is None else g[wv > 0]
        values = v if wv is None else v[wv > 0]
        np.minimum.at(self.low, positive, values)
        np.maximum.at(self.high, positive, values)
        # groups near float64's limits take the exact path
        top = np.zeros(groups)
        np.maximum.at(top, g, np.abs(v))
        unsafe = (top > SAFE_MAX) | ((top > 0) & (top < SAFE_MIN))
        if wv is not None:
            wtop = np.zeros(groups)
            np.maximum.at(wtop, g, wv)
            unsafe |= (wtop > SAFE_MAX) | ((wtop > 0) & (wtop < SAFE_MIN))
        # a new group's shift: its (weighted) mean in this block
        present = np.bincount(g, minlength=groups) > 0
        new = present & np.isnan(self.shift[:groups]) & ~unsafe
        if new.any():
            plain = np.bincount(g, weights=v, minlength=groups) / np.maximum(np.bincount(g, minlength=groups), 1)
            if wv is not None:
                wsum = np.bincount(g, weights=wv, minlength=groups)
                with np.errstate(invalid="ignore", divide="ignore"):
                    weighted = np.bincount(g, weights=wv * v, minlength=groups) / wsum
                plain = np.where(wsum > 0, weighted, plain)
            self.shift[:groups] = np.where(new, plain, self.shift[:groups])
        fast_rows = ~unsafe[g]
        gf, vf = g[fast_rows], v[fast_rows]
        d = vf - self.shift[gf]
        if wv is None:
            s1 = np.bincount(gf, weights=d, minlength=groups)
            s2 = np.bincount(gf, weights=d * d, minlength=groups)
            sums = np.stack([s1, s2])
        else:
            wf = wv[fast_rows]
            wd = wf * d
            sums = np.stack([
                np.bincount(gf, weights=wd, minlength=groups),
                np.bincount(gf, weights=wd * d, minlength=groups),
                np.bincount(gf, weights=wf, minlength=groups),
            ])
        overflow = ~np.isfinite(sums).all(axis=0)
        if overflow.any():  # squares beyond float64 range: those groups take the exact path too
            unsafe |= overflow
            sums[:, overflow] = 0.0
            fast_rows = ~unsafe[g]
        self.fast[:groups] += np.bincount(g[fast_rows], minlength=groups)
        self.sums.add(sums)
        for group in np.nonzero(unsafe & present)[0].tolist():
            rows = g == group
            moments = exact_block_moments(v[rows], None if wv is None else wv[rows])
            mine = self.exact.get(group)
            self.exact[group] = moments if mine is None else mine.combine(moments)

    def partials(self, groups: int) -> list[ColumnPartial]:
        self.grow(groups)
        count, fast, nulls, nans = (a.tolist() for a in (self.count, self.fast, self.nulls, self.nans))
        low, high, shift = self.low.tolist(), self.high.tolist(), self.shift.tolist()
        s1, s2 = self.sums.totals(0, groups), self.sums.totals(1, groups)
        w = self.sums.totals(2, groups) if self.weighted else None
        result = []
        for g in range(groups):
            if not count[g]:
                result.append(ColumnPartial(self.spec.dtype, null_count=nulls[g], nan_count=nans[g]))
                continue
            moments = Moments.empty()
            if fast[g]:
                moments = Moments(fast[g], shift[g], s1[g], s2[g], None if w is None else w[g])
            if g in self.exact:
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

    magnitude = float(np.abs(values).max())
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
        self.columns = {spec.name: _Column(spec) for spec in specs}
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
        for spec in self.specs:
            values = numbers(block, spec)
            null = values.is_null().to_numpy()
            x = values.fill_null(float("nan")).to_numpy()
            w = None
            if spec.weight is not None:
                if spec.weight not in weights:
                    weights[spec.weight] = block[spec.weight].cast(pl.Float64).to_numpy()
                w = weights[spec.weight]
            self.columns[spec.name].add(gid, groups, x, null, w)

    def result(self, absent: Sequence[ColumnSpec]) -> GroupPartials:
        groups = len(self.index)
        rows = [] if self.rows is None else self.rows.tolist()
        result = GroupPartials(keys=self.index.keys(), rows=rows)
        for spec in self.specs:
            result.columns[spec.name] = self.columns[spec.name].partials(groups)
        for spec in absent:
            result.columns[spec.name] = [ColumnPartial(spec.dtype, null_count=n) for n in rows]
        return result
