"""Applying fitted statistics to data: one ``with_columns`` of affine expressions, streamed to a sink.

Every fitted column becomes ``(x − center) / scale`` (or ``x · scale + center`` with ``inverse``);
other columns pass through untouched and in place. Nulls stay null and NaN stays NaN, because the
arithmetic propagates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from normcli.errors import DataError, UsageError
from normcli.io import (
    Inputs,
    ReadOptions,
    atomic_path,
    check_output_target,
    open_inputs,
    output_format,
    polars_errors,
    sink,
)
from normcli.stats import Stats, float_overrides, is_numeric
from normcli.statsfile import load_stats

if TYPE_CHECKING:
    import polars as pl


def scaling_expressions(
    stats: Stats, *, inverse: bool = False, clip: bool = False, float32: bool = False
) -> list[pl.Expr]:
    """One expression per fitted column applying its parameters, named like the column."""
    import polars as pl

    if inverse and clip:
        raise UsageError("--clip and --inverse cannot be combined", hint="clip applies to the forward transform")
    exprs = []
    for column in stats.columns:
        x = pl.col(column.name).cast(pl.Float64)
        if inverse:
            y = x * column.scale + column.center
        elif column.scale < 2.0**-1000:
            # Polars divides by a constant by multiplying with its reciprocal, which is infinite
            # for a subnormal scale (a column like [0, 2e-311]): scale both sides by 2^100 (exact).
            y = ((x - column.center) * 2.0**100) / (column.scale * 2.0**100)
        else:
            y = (x - column.center) / column.scale
        if clip and column.feature_range is not None:
            y = y.clip(*column.feature_range)
        exprs.append((y.cast(pl.Float32) if float32 else y).alias(column.name))
    return exprs


def apply_stats(
    frame: pl.LazyFrame,
    stats: Stats,
    *,
    inverse: bool = False,
    clip: bool = False,
    float32: bool = False,
    source: str = "input",
) -> pl.LazyFrame:
    """``frame`` with the fitted columns scaled (lazy); checks that each one is present and numeric."""
    schema = frame.collect_schema()
    missing = [name for name in stats.names if name not in schema]
    if missing:
        raise DataError(
            f"{source}: column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} from the stats not found",
            hint="transform data with the columns that were fitted, or fit again",
        )
    for column in stats.columns:
        if not is_numeric(schema[column.name]):
            raise DataError(
                f"{source}: column '{column.name}' is {schema[column.name]} now but was fitted as "
                f"{column.dtype}",
                hint="fix the values or fit again",
            )
    return frame.with_columns(scaling_expressions(stats, inverse=inverse, clip=clip, float32=float32))


def transform(
    paths: Sequence[str],
    *,
    stats: Stats | str | Path,
    output: str = "-",
    inverse: bool = False,
    clip: bool = False,
    float32: bool = False,
    format: str | None = None,
    output_format_name: str | None = None,
    separator: str | None = None,
    null_values: Sequence[str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> None:
    """Apply ``stats`` (a :class:`Stats` or a stats file) to inputs and write ``output``.

    ``output`` ``-`` streams to ``stdout`` (CSV unless ``output_format_name``); a path is written via
    a temporary file renamed into place on success. Missing-value tokens default to those of the fit.

    Example::

        normcli.transform(["new.csv"], stats="stats.json", output="new-scaled.parquet")
    """
    stats_file = None if isinstance(stats, Stats) else Path(stats)
    if stats_file is not None:
        stats = load_stats(stats_file)
    read = ReadOptions(
        format=format,
        null_values=tuple(null_values) if null_values is not None else stats.null_values,
        separator=separator,
    )
    out_format, compression = output_format(output, output_format_name)
    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        read_files = [*inputs.paths, *([stats_file] if stats_file else [])]
        target = None if output == "-" else check_output_target(output, read_files)
        frame = _scaled_frame(inputs, stats, out_format, inverse=inverse, clip=clip, float32=float32)
        with polars_errors(inputs):
            if target is None:
                import sys

                sink(frame, stdout if stdout is not None else sys.stdout.buffer, out_format, compression)
            else:
                with atomic_path(target) as temp:
                    sink(frame, temp, out_format, compression)


def _scaled_frame(
    inputs: Inputs, stats: Stats, out_format: str, *, inverse: bool, clip: bool, float32: bool
) -> pl.LazyFrame:
    """Scan inputs with the right column types and apply ``stats``.

    Fitted columns are read as Float64. From text to text, the other columns are read as strings, so
    they pass through exactly as written whatever their later rows hold.
    """
    import polars as pl

    schema = inputs.schema()
    probe = pl.LazyFrame(schema=schema)
    apply_stats(probe, stats, source=inputs.describe())  # validates names and types up front
    overrides = float_overrides(inputs, stats.names)
    text_in = all(s.format in ("csv", "tsv") for s in inputs.sources)
    if overrides and text_in and out_format in ("csv", "tsv"):
        overrides.update({name: pl.String for name in schema.names() if name not in overrides})
    frame = inputs.scan(overrides)
    return apply_stats(frame, stats, inverse=inverse, clip=clip, float32=float32, source=inputs.describe())
