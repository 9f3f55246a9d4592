"""The fragment function: partial statistics of one fragment, computed block by block.

A fragment is a file, a range of rows of a large Parquet file (:func:`row_ranges`), or a stream. It is read in blocks of exactly
:data:`BLOCK_ROWS` rows (the last may be shorter), counted from the fragment's first row, so the
blocks — and therefore the statistics — do not depend on how Polars split the work among threads,
nor on whether the rows came from a file, a pipe or a worker of a cluster. Each block's sums are
taken around the block's own mean (well conditioned, so no second pass is ever needed) and added
into exact :class:`~normcli.scaling.exact.Moments`. The result, a :class:`FragmentStats`, merges
exactly with those of other fragments (:mod:`normcli.scaling.merge`).

This is the function a distributed engine ships to its workers: it depends on nothing but the
fragment description and returns plain data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from normcli.data.diagnostics import polars_errors
from normcli.data.formats import ReadOptions
from normcli.data.inputs import Source
from normcli.scaling.exact import Moments
from normcli.scaling.model import ColumnPartial

if TYPE_CHECKING:
    import polars as pl

    from normcli.data.streams import StreamReader

BLOCK_ROWS = 65_536
"""Rows per block: the unit whose float sums are exact-added. Fixed, so results are reproducible."""

FRAGMENT_ROWS = 64 * BLOCK_ROWS
"""A Parquet file with more rows is split into fragments of at least this many rows (4,194,304),
cut at row-group ends rounded down to a multiple of :data:`BLOCK_ROWS`: the blocks stay those of
the whole file, so the statistics do not depend on the split, and a cluster gets tasks of a few
seconds each."""

SPLIT_MIN_BYTES = 8 << 20
"""Parquet files smaller than this are one fragment whatever their rows (no footer is read)."""

SAFE_MAX = 2.0**500
SAFE_MIN = 2.0**-400
"""Blocks whose largest magnitude is outside [SAFE_MIN, SAFE_MAX] are summed on values scaled by a
power of two: their squares would overflow (values near 1e300) or lose digits as subnormals."""


@dataclass(frozen=True)
class ColumnSpec:
    """A column to compute statistics for.

    ``unknown`` columns had no values in any input's first rows: they are read as text and decided
    by their values (numbers, words, or none at all). ``keep_values`` keeps every value (for
    quantiles, which do not merge).
    """

    name: str
    dtype: str
    unknown: bool = False
    keep_values: bool = False


@dataclass
class FragmentStats:
    """What the fragment function returns: rows read and each column's partial statistics."""

    rows: int = 0
    columns: dict[str, ColumnPartial] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    """For ``unknown`` columns: how many non-missing values were not numbers."""
    values: dict[str, pl.Series] = field(default_factory=dict)
    """For ``keep_values`` columns: every value (NaN and nulls dropped)."""


@dataclass(frozen=True)
class Fragment:
    """A unit of work: which rows of which input, read how, and which columns to summarize.

    ``types`` is the full schema to read a text file with (so nothing is inferred again);
    ``absent`` are columns the input does not have (read as empty). ``rows`` = (offset, length)
    restricts a file to a range of rows, a multiple of :data:`BLOCK_ROWS` from its start.
    """

    index: int
    source: Source
    options: ReadOptions
    columns: tuple[ColumnSpec, ...]
    types: dict[str, pl.DataType] | None = None
    absent: tuple[str, ...] = ()
    rows: tuple[int, int] | None = None
    reader: StreamReader | None = field(default=None, compare=False)
    data: pl.DataFrame | None = field(default=None, compare=False)
    """Rows already in memory (a Parquet stream, a training split)."""

    def read_types(self) -> dict[str, pl.DataType] | None:
        """The schema to read with: numeric columns as Float64 in text formats, so a decimal far
        below integer rows parses (a word is an error naming its line), ``unknown`` as text;
        a column whose type ``--dtype`` fixed as exactly that type."""
        import polars as pl

        if self.types is None:
            return None
        present = {c.name: c for c in self.columns if c.name not in self.absent}
        types = dict(self.types)
        for name, spec in present.items():
            if name not in self.options.fixed:
                types[name] = pl.String if spec.unknown else pl.Float64
        return types

    def frames(self) -> Iterator[pl.DataFrame]:
        """The fragment's rows (only the columns it summarizes), in frames of any size."""
        present = [c.name for c in self.columns if c.name not in self.absent]
        if self.reader is not None:
            yield from self.reader.frames(self.read_types() or {}, present)
            return
        if self.data is not None:
            yield self.data.select(present)
            return
        assert self.source.path is not None
        scan = self.source.format.scan(self.source.path, self.options, self.read_types()).select(present)
        if self.rows is not None:
            scan = scan.slice(*self.rows)
        with polars_errors([self.source], self.options):
            yield from scan.collect_batches(chunk_size=BLOCK_ROWS)

    def blocks(self) -> Iterator[pl.DataFrame]:
        """The fragment's rows in blocks of exactly :data:`BLOCK_ROWS` rows, each one contiguous."""
        yield from reblock(self.frames(), BLOCK_ROWS)


def split_rows(row_groups: Sequence[int], target: int | None = None) -> list[tuple[int, int]] | None:
    """(offset, length) ranges of a Parquet file with row groups of these sizes, or None for one
    fragment. A fragment ends after the row group that brings it to ``target`` rows, at that
    group's end rounded down to a multiple of :data:`BLOCK_ROWS` (row groups written by Polars or
    pyarrow usually end on one already)."""
    target = FRAGMENT_ROWS if target is None else target
    total = sum(row_groups)
    cuts = [0]
    end = 0
    for rows in row_groups[:-1]:
        end += rows
        cut = end // BLOCK_ROWS * BLOCK_ROWS
        if cut - cuts[-1] >= target and cut < total:
            cuts.append(cut)
    if len(cuts) == 1:
        return None
    cuts.append(total)
    return [(start, stop - start) for start, stop in zip(cuts, cuts[1:], strict=False)]


def row_ranges(source: Source, options: ReadOptions) -> list[tuple[int, int] | None]:
    """The row ranges a file is read in as fragments: several for a large Parquet file (from its
    footer), else one (``[None]``: the whole file). The same plan serves every engine."""
    if source.path is None or source.format.name != "parquet":
        return [None]
    with polars_errors([source], options):
        if source.is_url:
            from normcli.data.storage import Store, parquet_metadata

            store, key = Store.of(source.path, options.storage)
            if store.size(key) < SPLIT_MIN_BYTES:
                return [None]
            metadata = parquet_metadata(source.path, options.storage)
        else:
            import os

            import pyarrow.parquet as pq

            if os.path.getsize(source.path) < SPLIT_MIN_BYTES:
                return [None]
            metadata = pq.read_metadata(source.path)
    if metadata.num_rows <= FRAGMENT_ROWS:
        return [None]
    ranges = split_rows([metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)])
    return list(ranges) if ranges else [None]


def reblock(frames: Iterable[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    """The same rows in frames of exactly ``rows`` rows (the last may be shorter), rechunked.

    Sums over a frame depend on how its memory is split into chunks; a fixed block size and a
    single chunk per block make them depend on the data alone.
    """
    import polars as pl

    pending: list[pl.DataFrame] = []
    held = 0
    for frame in frames:
        while frame.height:
            take = min(rows - held, frame.height)
            pending.append(frame.slice(0, take))
            held += take
            frame = frame.slice(take)
            if held == rows:
                yield pl.concat(pending, rechunk=True) if len(pending) > 1 else pending[0].rechunk()
                pending, held = [], 0
    if held:
        yield pl.concat(pending, rechunk=True) if len(pending) > 1 else pending[0].rechunk()


# --------------------------------------------------------------------------- the statistics

_STATS_PER_COLUMN = 8


def _expressions(spec: ColumnSpec, dtype: pl.DataType) -> list[pl.Expr]:
    """Per block: mean (the shift), count, nulls, NaNs, min, max, Σd, Σd² with d = x − mean."""
    import polars as pl

    raw = pl.col(spec.name)
    if spec.unknown:
        values = raw.cast(pl.Float64, strict=False)
        special = (raw.is_not_null() & values.is_null()).sum()  # words, not numbers
        values = values.fill_nan(None)
    elif dtype.is_float():
        values = raw.cast(pl.Float64).fill_nan(None)
        special = raw.is_nan().sum()
    else:
        values = raw.cast(pl.Float64)
        special = pl.lit(0, dtype=pl.UInt32)
    mean = values.mean()
    deviation = values - mean
    return [
        mean,
        values.count(),
        raw.null_count(),
        special,
        values.min(),
        values.max(),
        deviation.sum(),
        (deviation * deviation).sum(),
    ]


class _Accumulator:
    """One column's running partial statistics over the blocks of a fragment."""

    def __init__(self, spec: ColumnSpec) -> None:
        self.spec = spec
        self.count = self.nulls = self.special = self.infs = 0
        self.min = math.inf
        self.max = -math.inf
        self.moments = Moments.empty()
        self.values: list[pl.Series] = []

    def add(self, block: pl.DataFrame, row: Sequence) -> None:
        mean, count, nulls, special, low, high, s1, s2 = row
        self.nulls += nulls
        self.special += special
        if not count:
            return
        self.count += count
        self.min = min(self.min, low)
        self.max = max(self.max, high)
        if math.isinf(low) or math.isinf(high):
            self.infs += _count_infinite(block, self.spec)
            return
        if self.infs:
            return  # the fit will fail: no need for moments
        magnitude = max(abs(low), abs(high))
        if magnitude > SAFE_MAX or 0.0 < magnitude < SAFE_MIN or not math.isfinite(s2):
            self.moments = self.moments.combine(_scaled_block_moments(block, self.spec, magnitude))
        else:
            self.moments = self.moments.combine(Moments.of_block(count, mean, s1, s2))

    def partial(self, absent_rows: int) -> ColumnPartial:
        return ColumnPartial(
            dtype=self.spec.dtype,
            count=self.count,
            null_count=self.nulls + absent_rows,
            nan_count=0 if self.spec.unknown else self.special,
            inf_count=self.infs,
            min=self.min if self.count else 0.0,
            max=self.max if self.count else 0.0,
            moments=self.moments,
        )


def _values(block: pl.DataFrame, spec: ColumnSpec) -> pl.Series:
    import polars as pl

    column = block[spec.name]
    values = column.cast(pl.Float64, strict=False)
    return values.fill_nan(None).drop_nulls() if values.dtype.is_float() else values.drop_nulls()


def _count_infinite(block: pl.DataFrame, spec: ColumnSpec) -> int:
    return int(_values(block, spec).is_infinite().sum())


def _scaled_block_moments(block: pl.DataFrame, spec: ColumnSpec, magnitude: float) -> Moments:
    """A block's moments from values scaled by a power of two (exact), when squares would overflow
    or underflow; the power is undone exactly in :meth:`Moments.of_block`."""
    power = -math.frexp(magnitude)[1]
    power = max(min(power, 1000), -1000)
    values = _values(block, spec) * (2.0**power)
    mean = values.mean()
    deviation = values - mean
    shift = math.ldexp(mean, -power)  # exact: a power of two
    return Moments.of_block(values.len(), shift, deviation.sum(), (deviation * deviation).sum(), power)


def fragment_stats(fragment: Fragment, progress: Callable[[int], None] | None = None) -> FragmentStats:
    """The partial statistics of one fragment: the function every engine runs, locally or remotely.
    ``progress`` is told the rows of each block as it is done."""
    return summarize(fragment.blocks(), fragment.columns, fragment.absent, progress)


def summarize(
    blocks: Iterable[pl.DataFrame],
    specs: Sequence[ColumnSpec],
    absent: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> FragmentStats:
    """Partial statistics of ``specs`` over ``blocks`` (see the module docstring)."""
    present = [s for s in specs if s.name not in absent]
    accumulators = {s.name: _Accumulator(s) for s in specs}
    rows = 0
    exprs: list[pl.Expr] | None = None
    for block in blocks:
        if exprs is None:
            schema = block.schema
            exprs = [
                expr.alias(f"{index}\x00{k}")  # any column name may occur, so aliases are positional
                for index, spec in enumerate(present)
                for k, expr in enumerate(_expressions(spec, schema[spec.name]))
            ]
        rows += block.height
        if progress is not None:
            progress(block.height)
        if not present:
            continue
        row = block.select(exprs).row(0)
        for index, spec in enumerate(present):
            accumulator = accumulators[spec.name]
            accumulator.add(block, row[index * _STATS_PER_COLUMN : (index + 1) * _STATS_PER_COLUMN])
            if spec.keep_values:
                accumulator.values.append(_values(block, spec))
    result = FragmentStats(rows=rows)
    for spec in specs:
        accumulator = accumulators[spec.name]
        result.columns[spec.name] = accumulator.partial(rows if spec.name in absent else 0)
        if spec.unknown:
            result.words[spec.name] = accumulator.special
        if spec.keep_values and accumulator.values:
            import polars as pl

            result.values[spec.name] = pl.concat(accumulator.values)
    return result
