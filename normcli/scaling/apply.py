"""Applying fitted statistics to data: one ``with_columns`` of expressions, streamed to an output.

Every fitted column becomes ``((x − center) − center_lo) / scale`` (or the inverse) through its
method (:mod:`normcli.scaling.methods`); other columns pass through untouched and in place (text
exactly as written, null tokens included). Nulls stay null and NaN stays NaN. Files are scanned and sunk by Polars in one streaming query; streams
(stdin, FIFOs) are transformed chunk by chunk, so the first rows come out before the input ends.
To a dataset folder (``-o out/``, or any output on a Dask cluster) each input fragment becomes
one part, written by :func:`write_part` wherever the engine runs it (:mod:`normcli.data.dataset`).

With stats fitted per group (``--by``), the fitted columns take each row's group parameters through
a left join with the small table of groups (:class:`Scaling`); ``--impute`` fills missing values
after scaling; what was imputed, and rows of groups the stats lack, are counted in notes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from normcli.data.dataset import is_dataset_target
from normcli.data.diagnostics import polars_errors
from normcli.data.formats import Format, ReadOptions
from normcli.data.inputs import Source, describe, has_no_data_rows, open_sources
from normcli.data.outputs import atomic_path, check_output_columns, check_output_target, output_format, stdout_stream, writing
from normcli.data.schema import NULL, SourceSchema, read_schema
from normcli.errors import DataError, UsageError
from normcli.scaling.engine import Engine, LocalEngine
from normcli.scaling.methods import METHODS
from normcli.scaling.model import ColumnStats, Stats
from normcli.scaling.statsfile import load_stats

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from normcli.data.streams import StreamReader

FrameT = TypeVar("FrameT", "pl.DataFrame", "pl.LazyFrame")

DELIMITED = ("csv", "tsv")
"""Formats whose cells are text: between them, columns that are not fitted pass through as written."""


UNKNOWN_GROUP = ("pooled", "null", "error")
"""What transform does with a row whose group the stats do not have (``--unknown-group``)."""

_KNOWN = "\x00known"


_NAIVE_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?")
"""A datetime key as Polars writes a naive datetime (no time zone)."""


def refuse_own_names(names: Iterable[str], source: str | None, why: str) -> None:
    """Refuse data columns whose names begin with a NUL character: the columns transform adds
    for a while (the group join, the integers of --inverse) are named so, and Polars would
    rename, overwrite or drop the data's own (exit 0, data lost)."""
    taken = next((name for name in names if name.startswith("\x00")), None)
    if taken is not None:
        raise DataError(
            f"{source + ': ' if source else ''}column {taken!r} begins with a NUL character, which {why}",
            hint="rename that column first (no CSV can hold its name anyway)",
        )


def _helper(kind: str, index: int) -> str:
    """Names of the columns the group join adds (no input column can have them)."""
    return f"\x00{kind}{index}"


@dataclass(frozen=True)
class Impute:
    """How transform fills a missing value (null or NaN) of a fitted column after scaling.

    ``keep`` leaves it missing; ``mean`` writes what the column's (group's) mean transforms to (0
    for standard columns); ``zero`` writes 0; ``median`` what the median transforms to (robust
    columns only: the others do not keep a median); ``constant`` writes ``value``.
    """

    kind: str = "keep"
    value: float = 0.0

    KINDS = ("keep", "mean", "zero", "median", "constant=V")

    @staticmethod
    def parse(text: str) -> Impute:
        kind, sep, value = text.partition("=")
        if kind == "constant" and sep:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise UsageError(f"--impute constant= takes a finite number, not '{value}'", hint="e.g. --impute constant=0")
            return Impute("constant", number)
        if sep or kind not in ("keep", "mean", "zero", "median"):
            raise UsageError(f"unknown --impute '{text}'", hint=f"choose one of: {', '.join(Impute.KINDS)}")
        return Impute(kind)

    @property
    def label(self) -> str:
        return f"constant {self.value:g}" if self.kind == "constant" else self.kind

    def check(self, stats: Stats) -> None:
        """``median`` needs a median, which only robust columns keep."""
        if self.kind == "median":
            others = [c.name for c in stats.columns if c.median is None]
            if others:
                raise UsageError(
                    f"--impute median needs each column's median, which only robust columns keep; "
                    f"not: {', '.join(others[:5])}{' …' if len(others) > 5 else ''}",
                    hint="use --impute mean, or fit those columns with --method robust",
                )

    def fill(self, column: ColumnStats) -> float | None:
        """The output value of a missing cell of ``column`` (pooled), or None to keep it missing."""
        if self.kind == "keep":
            return None
        if self.kind == "zero":
            return 0.0
        if self.kind == "constant":
            return self.value
        if self.kind == "mean":
            return METHODS[column.method].transformed_mean(column)
        assert column.median is not None
        return column.apply(column.median)


def scaling_expressions(stats: Stats, *, inverse: bool = False, clip: bool = False, float32: bool = False) -> list[pl.Expr]:
    """One expression per fitted column applying its pooled parameters, named like the column."""
    return Scaling(stats, inverse=inverse, clip=clip, float32=float32, pooled_only=True).expressions()


class Scaling:
    """``stats`` applied with Polars: each fitted column scaled by its method, through a join with
    the table of per-group parameters when the stats have groups, then clipped, imputed and cast.

    With groups, a row takes its group's ``center``, ``center_lo`` and ``scale``; a row whose group
    the stats do not have (or have no parameters for that column) takes the pooled ones, a null, or
    is an error, as ``unknown_group`` says. Division is by a column, never by a literal: Polars
    turns division by a scalar into multiplication by its reciprocal (off by one ulp at times).
    """

    def __init__(
        self,
        stats: Stats,
        *,
        inverse: bool = False,
        clip: bool = False,
        float32: bool = False,
        impute: Impute | None = None,
        unknown_group: str = "pooled",
        pooled_only: bool = False,
    ) -> None:
        impute = impute or Impute()
        if inverse and clip:
            raise UsageError("--clip and --inverse cannot be combined", hint="clip applies to the forward transform")
        if inverse and impute.kind != "keep":
            raise UsageError("--impute and --inverse cannot be combined", hint="imputation applies to the forward transform")
        if unknown_group not in UNKNOWN_GROUP:
            raise UsageError(f"unknown --unknown-group '{unknown_group}'", hint=f"choose one of: {', '.join(UNKNOWN_GROUP)}")
        impute.check(stats)
        self.stats = stats
        self.inverse, self.clip, self.float32 = inverse, clip, float32
        self.impute = impute
        self.unknown_group = unknown_group
        self.grouped = stats.groups is not None and not pooled_only
        self.warnings: list[str] = []
        if clip and not any(METHODS[c.method].bounded for c in stats.columns):
            bounded = ", ".join(name for name, m in METHODS.items() if m.bounded)
            self.warnings.append(f"--clip does nothing here: no fitted column uses a bounded method ({bounded})")

    # ------------------------------------------------------------------ the group join

    def key_names(self) -> list[str]:
        return [_helper("k", i) for i in range(len(self.stats.by))]

    def helper_names(self) -> list[str]:
        if not self.grouped:
            return []
        names = [*self.join_names(), _KNOWN]
        for i in range(len(self.stats.columns)):
            names += [_helper(kind, i) for kind in ("c", "l", "s", "f")]
        return names

    def parameters(self) -> pl.DataFrame:
        """The table of per-group parameters, keyed by the group keys in the stats' types."""
        import numpy as np
        import polars as pl

        table = self.stats.groups
        assert table is not None
        keys = {
            _helper("k", i): pl.Series([key[i] for key in table.keys], dtype=_key_dtype(self.stats.by_dtype(name)))
            for i, name in enumerate(self.stats.by)
        }
        columns: dict[str, np.ndarray] = {}
        for i, column in enumerate(self.stats.columns):
            group = table.columns[column.name]
            columns[_helper("c", i)] = group.center
            columns[_helper("l", i)] = group.center_lo
            columns[_helper("s", i)] = group.scale
            fill = self._group_fill(column, group)
            columns[_helper("f", i)] = fill if fill is not None else np.full(len(table), np.nan)
        frame = pl.DataFrame({**keys, _KNOWN: np.ones(len(table), dtype=bool), **columns})
        frame = frame.with_columns(pl.col(list(columns)).fill_nan(None))
        return frame.with_columns(pl.lit(True).alias(_helper("ok", i)) for i in range(len(self.stats.by)))

    def key_expressions(self, schema: pl.Schema | Mapping) -> list[pl.Expr]:
        """The data's group columns as the stats' keys: normalized (dates as text), then read as
        the type the keys had when fitted — so text read from a CSV ("007") finds an integer key
        (7) — with a flag per column that is false where a value is not of that type (such rows
        match no group)."""
        import polars as pl

        from normcli.scaling.groups import key_expressions

        exprs = []
        tokens = list(self.stats.null_values)
        for i, (name, expr) in enumerate(zip(self.stats.by, key_expressions(self.stats.by, schema), strict=True)):
            if tokens and schema[name] == pl.String:  # text read as written: its null tokens are missing keys
                expr = pl.when(expr.is_in(tokens)).then(None).otherwise(expr)
            spelling = self._datetime_spelling(i) if schema[name] == pl.String else None
            if spelling is not None:  # a CSV's 2024-03-31T01:30:00 is the key 2024-03-31 01:30:00.000000
                parsed = expr.str.to_datetime(strict=False, time_unit="ns").dt.to_string(spelling)
                expr = pl.when(parsed.is_not_null()).then(parsed).otherwise(expr)
            target = _key_dtype(self.stats.by_dtype(name))
            if target == pl.Boolean and schema[name] == pl.String:
                key = expr.str.to_lowercase().replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)
            else:
                key = expr.cast(target, strict=False)
            exprs += [key.alias(_helper("k", i)), (expr.is_null() | key.is_not_null()).alias(_helper("ok", i))]
        return exprs

    def _datetime_spelling(self, index: int) -> str | None:
        """How the keys of ``--by`` column ``index`` spell datetimes (Polars' text of them: a
        space, then the fraction digits of the time unit), when the column held naive datetimes
        when fitted; None otherwise (text keys, or keys with a time zone, are matched as written)."""
        if self.stats.groups is None or not self.stats.by_dtype(self.stats.by[index]).startswith("Datetime"):
            return None
        key = next((k[index] for k in self.stats.groups.keys if isinstance(k[index], str)), None)
        if key is None or not _NAIVE_DATETIME.fullmatch(key):
            return None
        digits = len(key.rpartition(".")[2]) if "." in key else 0
        return "%Y-%m-%d %H:%M:%S" + (f"%.{digits}f" if digits else "")

    def _group_fill(self, column: ColumnStats, group) -> np.ndarray | None:  # noqa: ANN001
        """Per group: the output value of a missing cell (NaN: the pooled one), or None for keep."""

        if self.impute.kind in ("keep", "zero", "constant"):
            return None
        # median is refused for group stats (robust does not fit per group)
        return METHODS[column.method].transformed_means(group)

    def prepare(self, frame, source: str | None = None, *, own_names_checked: bool = False):  # noqa: ANN001, ANN201 - LazyFrame or DataFrame
        """``frame`` joined with the per-group parameters (a left join keeping the row order);
        ``source`` names the data in errors. ``own_names_checked``: the data's columns were
        checked for the helpers' names already (``frame`` holds helper columns of its own)."""
        if not self.grouped:
            return frame
        import polars as pl

        schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
        missing = [name for name in self.stats.by if name not in schema]
        if missing:
            raise DataError(
                f"group column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} of the stats (--by) not found",
                hint="transform data that has the group columns",
            )
        if not own_names_checked:
            refuse_own_names(schema, source, "per-group stats keep for the columns of their join")
        params = self.parameters()
        if isinstance(frame, pl.LazyFrame):
            params = params.lazy()
        keyed = frame.with_columns(self.key_expressions(schema))
        return keyed.join(params, on=self.join_names(), how="left", nulls_equal=True, maintain_order="left")

    def join_names(self) -> list[str]:
        return [*self.key_names(), *(_helper("ok", i) for i in range(len(self.stats.by)))]

    # ------------------------------------------------------------------ the expressions

    def expressions(self) -> list[pl.Expr]:
        """The scaled columns (clipped, imputed, cast), named like the columns."""
        return [self._finished(i, column, self._scaled(i, column)) for i, column in enumerate(self.stats.columns)]

    def _scaled(self, index: int, column: ColumnStats) -> pl.Expr:
        import polars as pl

        method = METHODS[column.method]
        if not self.grouped:
            return method.expression(column, inverse=self.inverse)
        table = self.stats.groups
        center, center_lo, scale = (pl.col(_helper(kind, index)) for kind in ("c", "l", "s"))
        if self.unknown_group != "null":  # error: the rows were checked first; what remains is pooled
            center = center.fill_null(column.center)
            center_lo = center_lo.fill_null(column.center_lo)
            scale = scale.fill_null(column.scale)
        tiny = column.scale < 2.0**-1000 or bool((table.columns[column.name].scale < 2.0**-1000).any())
        return method.affine(pl.col(column.name).cast(pl.Float64), center, center_lo, scale, inverse=self.inverse, tiny=tiny)

    def _finished(self, index: int, column: ColumnStats, y: pl.Expr) -> pl.Expr:
        import polars as pl

        bounds = METHODS[column.method].clip_range(column) if self.clip else None
        if bounds is not None:
            y = y.clip(*bounds)
        fill = self.impute.fill(column)
        if fill is not None:
            value = pl.lit(fill)
            if self.grouped and self.impute.kind == "mean":
                value = pl.col(_helper("f", index)).fill_null(fill)
            y = pl.when(y.is_null() | y.is_nan()).then(value).otherwise(y)
        return (y.cast(pl.Float32) if self.float32 else y).alias(column.name)

    def apply(self, frame):  # noqa: ANN001, ANN201
        """``frame`` with the fitted columns scaled (lazy or eager, as given), helpers dropped."""
        return self.prepare(frame).with_columns(self.expressions()).drop(self.helper_names())

    # ------------------------------------------------------------------ what happened

    def counters(self) -> list[pl.Expr]:
        """Aggregations over a prepared frame for the notes: imputed cells, unseen groups, and
        rows of known groups without parameters for a column."""
        import polars as pl

        counts = []
        if self.impute.kind != "keep":
            for i, column in enumerate(self.stats.columns):
                y = self._scaled(i, column)
                counts.append((y.is_null() | y.is_nan()).sum().alias(_helper("imputed", i)))
        if self.grouped:
            unseen = pl.col(_KNOWN).is_null()
            counts.append(unseen.sum().alias("\x00unseen"))
            counts.append(pl.struct(list(self.stats.by)).filter(unseen).unique().implode().alias("\x00unseen_keys"))
            for i, column in enumerate(self.stats.columns):
                lacking = pl.col(_helper("c", i)).is_null() & _has_value(column.name)
                counts.append((~unseen & lacking).sum().alias(_helper("nogroup", i)))
        return counts

    def notes(self, totals: Mapping[str, Any], unseen_keys: set) -> list[str]:
        """The notes of a transform from summed counters (see :meth:`counters`)."""
        from normcli.scaling.merge import describe_key

        notes = []
        names = self.stats.names
        if self.grouped and totals.get("\x00unseen"):
            rows = totals["\x00unseen"]
            shown = "; ".join(describe_key(self.stats.by, key) for key in sorted(unseen_keys, key=_sort_key)[:3])
            what = "the pooled statistics" if self.unknown_group == "pooled" else "nulls"
            notes.append(
                f"{rows} row{'s' if rows != 1 else ''} in {len(unseen_keys)} group{'s' if len(unseen_keys) != 1 else ''} "
                f"not in the stats ({shown}{', …' if len(unseen_keys) > 3 else ''}) got {what} (--unknown-group)"
            )
        if self.grouped:
            for i, name in enumerate(names):
                rows = totals.get(_helper("nogroup", i), 0)
                if rows:
                    what = "the pooled statistics" if self.unknown_group != "null" else "nulls"
                    notes.append(f"column '{name}': {rows} value{'s' if rows != 1 else ''} in groups fitted without it got {what}")
        if self.impute.kind != "keep":
            imputed = {name: totals.get(_helper("imputed", i), 0) for i, name in enumerate(names)}
            total = sum(imputed.values())
            detail = ", ".join(f"{name}: {count}" for name, count in imputed.items() if count)
            notes.append(f"imputed {total} missing value{'s' if total != 1 else ''} with {self.impute.label}" + (f" ({detail})" if detail else ""))
        return notes

    def value_flags(self) -> list[pl.Expr]:
        """Per fitted column, whether a row's cell holds a value (what needs its group's parameters)."""
        return [_has_value(c.name).alias(_helper("v", i)) for i, c in enumerate(self.stats.columns)]

    def check_groups(self, prepared: pl.DataFrame, where: str, first_row: int = 0) -> None:
        """With ``--unknown-group error``: the first row whose group the stats lack (or lack
        parameters for a column) is an error naming it."""
        import polars as pl

        from normcli.scaling.merge import describe_key

        if not self.grouped or self.unknown_group != "error":
            return
        # a missing value needs no parameters (it stays missing): only values count as lacking them
        if _helper("v", 0) not in prepared.columns:
            prepared = prepared.with_columns(self.value_flags())
        lacking = [pl.col(_helper("c", i)).is_null() & pl.col(_helper("v", i)) for i in range(len(self.stats.columns))]
        bad = pl.any_horizontal(pl.col(_KNOWN).is_null(), *lacking)
        index, any_bad = prepared.select(bad.arg_max().alias("index"), bad.any().alias("any")).row(0)
        if not any_bad:
            return
        row = prepared.row(index, named=True)
        key = tuple(row[name] for name in self.stats.by)
        group = describe_key(self.stats.by, key)
        if row[_KNOWN] is None:
            problem = f"has the group {group}, which the stats do not have"
        else:
            column = next(c.name for i, c in enumerate(self.stats.columns) if row[_helper("c", i)] is None and row[_helper("v", i)])
            problem = f"is in the group {group}, which has no statistics for column '{column}' (too few values when fitted)"
        raise DataError(
            f"{where}: data row {first_row + index + 1} {problem}",
            hint="use --unknown-group pooled (the pooled statistics) or null, or fit again with these groups",
        )


def _has_value(name: str) -> pl.Expr:
    """Whether a fitted column's cell holds a value (neither null nor NaN)."""
    import polars as pl

    return pl.col(name).cast(pl.Float64, strict=False).fill_nan(None).is_not_null()


def _key_dtype(dtype: str) -> pl.DataType:
    """The Polars type of a group key column as the stats file writes it."""
    import polars as pl

    if dtype == "Boolean":
        return pl.Boolean
    if dtype.startswith(("Int", "UInt")):
        return pl.Int64
    return pl.String


def _sort_key(key: tuple) -> tuple:
    from normcli.scaling.merge import group_order

    return group_order(key)


def check_columns(schema: pl.Schema | dict, stats: Stats, source: str = "input") -> None:
    """Each fitted column must be present and numeric (or empty, which transforms to nulls)."""
    missing = [name for name in stats.names if name not in schema]
    if missing:
        raise DataError(
            f"{source}: column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} from the stats not found",
            hint="transform data with the columns that were fitted, or fit again",
        )
    for column in stats.columns:
        dtype = schema[column.name]
        if not (dtype.is_numeric() or str(dtype) == NULL):
            raise DataError(
                f"{source}: column '{column.name}' is {dtype} now but was fitted as {column.dtype}",
                hint="fix the values or fit again",
            )


def apply_stats(
    frame: pl.LazyFrame,
    stats: Stats,
    *,
    inverse: bool = False,
    clip: bool = False,
    float32: bool = False,
    impute: Impute | str = "keep",
    unknown_group: str = "pooled",
    source: str = "input",
) -> pl.LazyFrame:
    """``frame`` with the fitted columns scaled (lazy); checks that each one is present and numeric.

    With group stats (``--by``), each row takes its group's parameters (``unknown_group`` says what
    rows of unseen groups get; ``error`` is not checked here: use :func:`transform`).
    """
    check_columns(frame.collect_schema(), stats, source)
    impute = Impute.parse(impute) if isinstance(impute, str) else impute
    scaling = Scaling(stats, inverse=inverse, clip=clip, float32=float32, impute=impute, unknown_group=unknown_group)
    return scaling.apply(frame)


@dataclass
class TransformReport:
    """What a transform did, for the command's notes and warnings."""

    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parts: int | None = None
    """The parts of a dataset folder written (None: one output file or stream)."""


def transform(
    paths: Sequence[str],
    *,
    stats: Stats | str | Path,
    output: str = "-",
    inverse: bool = False,
    clip: bool = False,
    float32: bool = False,
    impute: Impute | str = "keep",
    unknown_group: str = "pooled",
    format: str | None = None,
    output_format_name: str | None = None,
    separator: str | None = None,
    null_values: Sequence[str] | None = None,
    has_header: bool = True,
    text: Sequence[str] = (),
    dtypes: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    storage: Sequence[tuple[str, str]] = (),
    engine: Engine | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
    progress: Callable[[int], None] | None = None,
) -> TransformReport:
    """Apply ``stats`` (a :class:`Stats`, a stats file, or ``-`` for stdin) to inputs and write ``output``.

    ``output`` ``-`` streams to ``stdout`` (CSV unless ``output_format_name``); a path is written via
    a temporary file renamed into place on success. Missing-value tokens default to those of the fit.
    The reading options are those of :func:`normcli.scaling.fit.fit`; CSV output keeps the inputs'
    delimiter, and has no header line when they had none. ``progress`` is called with the rows
    written so far when an input is a stream (files are written by Polars in one query).
    A folder (``out/``) or a Dask ``engine`` writes a dataset: one part per input fragment.
    ``impute`` fills missing values after scaling (``keep``, ``mean``, ``zero``, ``median`` or
    ``constant=V``); ``unknown_group`` says what rows of groups the stats lack get (``pooled``,
    ``null`` or ``error``).

    Example::

        normcli.transform(["new.csv"], stats="stats.json", output="new-scaled.parquet")
    """
    stats_file = None if isinstance(stats, Stats) or str(stats) == "-" else str(stats)
    if not isinstance(stats, Stats):
        stats = load_stats(stats, tuple(storage), stdin=stdin, stdin_is_terminal=stdin_is_terminal, data=paths)
    impute = Impute.parse(impute) if isinstance(impute, str) else impute
    scaling = Scaling(stats, inverse=inverse, clip=clip, float32=float32, impute=impute, unknown_group=unknown_group)
    read = ReadOptions.of(
        format=format, null_values=null_values, default_null_values=stats.null_values, separator=separator,
        has_header=has_header, text=text, dtypes=dtypes, storage=storage,
    )
    engine = engine or LocalEngine()
    if engine.distributed or is_dataset_target(output):
        return _transform_dataset(
            paths, stats, output, read, engine, scaling, format_name=output_format_name, stats_file=stats_file,
        )  # fmt: skip
    out_format, compression = output_format(output, output_format_name)
    report = TransformReport(warnings=list(scaling.warnings))
    with open_sources(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as sources:
        read_files = [*(s.path for s in sources if s.path), *([str(stats_file)] if stats_file else [])]
        target = None if output == "-" else check_output_target(output, read_files)
        if all(has_no_data_rows(s, read) for s in sources):
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        plan = _plan(sources, read, stats, out_format, report)
        check_output_columns(plan[0].types, out_format)
        # fitted integers come back as integers (pooled parameters only: per-group ones vary by row)
        integers = _Integers(stats) if inverse and not scaling.grouped else None
        if integers is not None and integers.columns:
            for part in plan:
                refuse_own_names(part.types, part.schema.source.display, "--inverse keeps for the integers it restores")
        if target is None:
            stream = stdout_stream(stdout)
            with writing("the output"):
                _write(plan, scaling, out_format, compression, stream, read, report, integers, progress)
        else:
            with atomic_path(target) as temp:
                _write(plan, scaling, out_format, compression, temp, read, report, integers, progress)
        if integers is not None:
            report.notes.extend(integers.notes(streamed_parquet=any(p.reader for p in plan) and not out_format.text))
    return report


class _Integers:
    """``--inverse``: columns fitted as integers come back as integers when every value does.

    The integer of a scaled value ``y`` is the one the transform maps to exactly ``y``: the
    rounded restored value ``round(x)``, or its neighbour when float error in ``x`` passed half a
    unit (integers near 2^52). Below 2^52 that map is one-to-one, so the integer found is the one
    ``y`` came from. A value with no such integer (edited, rounded, written as float32) fails.
    Files are checked in one pass before anything is written, so a column is all integers or, with
    a note, all floats. A stream cannot be read twice: each chunk is decided on its own (text
    output has no column types: CSV and NDJSON readers see integers where they restore), and
    Parquet from a stream keeps floats, with a note.
    """

    def __init__(self, stats: Stats) -> None:
        self.columns = [(i, c) for i, c in enumerate(stats.columns) if c.dtype.startswith(("Int", "UInt"))]
        self.failed: dict[str, int] = {}

    def _temporaries(self) -> list[pl.Expr]:
        """round(x) and its neighbours, as columns (the transform applies to named columns)."""
        exprs = []
        for i, column in self.columns:
            rounded = METHODS[column.method].expression(column, inverse=True).round()
            exprs += [rounded.alias(f"\x00{i}"), (rounded - 1).alias(f"\x00{i}-"), (rounded + 1).alias(f"\x00{i}+")]
        return exprs

    def _restored(self, i: int, column: ColumnStats) -> pl.Expr:
        """The integer whose transform is exactly the value read (null when there is none)."""
        import polars as pl

        y = pl.col(column.name).cast(pl.Float64)
        chosen = pl.lit(None, dtype=pl.Float64)
        for name in (f"\x00{i}+", f"\x00{i}-", f"\x00{i}"):  # the last one set wins: round(x) first
            candidate = pl.col(name)
            exact = METHODS[column.method].expression(replace(column, name=name)) == y
            chosen = pl.when(candidate.is_finite() & (candidate.abs() < 2.0**63) & exact).then(candidate).otherwise(chosen)
        return chosen

    def failures(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """One row: per integer column, how many values have no integer (see the class)."""
        import polars as pl

        checks = [
            (pl.col(c.name).is_not_null() & self._restored(i, c).is_null()).sum().alias(str(i)) for i, c in self.columns
        ]  # fmt: skip
        return frame.with_columns(self._temporaries()).select(checks)

    def apply(self, frame: FrameT, exprs: list[pl.Expr], failures: pl.DataFrame) -> FrameT:
        """``frame`` with ``exprs`` applied, the integer columns without failures restored as
        integers of their fitted type."""
        import polars as pl

        exprs = list(exprs)
        for i, column in self.columns:
            count = int(failures[str(i)][0])
            if count:
                self.failed[column.name] = self.failed.get(column.name, 0) + count
            else:
                exprs[i] = self._restored(i, column).cast(getattr(pl, column.dtype, pl.Int64)).alias(column.name)
        temporaries = self._temporaries()
        return frame.with_columns(temporaries).with_columns(exprs).drop([t.meta.output_name() for t in temporaries])

    def notes(self, streamed_parquet: bool) -> list[str]:
        if streamed_parquet and self.columns:
            names = ", ".join(f"'{c.name}'" for _, c in self.columns)
            return [f"columns fitted as integers ({names}) are written as floats: Parquet from a stream cannot be checked before it is written (transform a file to restore them)"]
        return [
            f"column '{name}' was fitted as integers, but {count} restored value{'s are' if count > 1 else ' is'} "
            "not exactly an integer: written as floats"
            for name, count in self.failed.items()
        ]
@dataclass(frozen=True)
class PartTask:
    """One part of a dataset: which rows of which input, how to read and scale them, where to write.

    Plain data (picklable): a Dask worker runs :func:`write_part` on it.
    """

    source: Source
    read: ReadOptions
    types: dict[str, pl.DataType]
    rows: tuple[int, int] | None
    scaling: Scaling
    format: Format
    target: str


def write_part(task: PartTask) -> int | None:
    """Scale one fragment into its part (the query of a local transform, on a slice); returns the
    rows written (Parquet: from the footer; text formats: None)."""
    source = task.source
    assert source.path is not None
    frame = source.format.scan(source.path, task.read, task.types, keep_text=True)
    if task.rows is not None:
        frame = frame.slice(*task.rows)
    try:
        with polars_errors([source], task.read):
            task.format.sink(task.scaling.apply(frame), task.target, None, task.read.storage, options=task.read)
    except DataError as exc:
        cause = exc.__cause__
        if cause is None or task.target not in str(cause):
            raise
        from normcli.data.diagnostics import first_line, write_failure

        raise DataError(f"cannot write {task.target}: {write_failure(cause) or first_line(str(cause))}") from cause
    if task.format.name != "parquet":
        return None
    from normcli.data.storage import is_url, parquet_metadata

    if is_url(task.target):
        return parquet_metadata(task.target, task.read.storage).num_rows
    import pyarrow.parquet as pq

    return pq.read_metadata(task.target).num_rows


def _transform_dataset(
    paths: Sequence[str],
    stats: Stats,
    output: str,
    read: ReadOptions,
    engine: Engine,
    scaling: Scaling,
    *,
    format_name: str | None,
    stats_file: str | None,
) -> TransformReport:
    """Transform into a dataset folder: one part per fragment, published by :class:`DatasetWriter`."""
    from normcli import __version__
    from normcli.data.dataset import DatasetWriter, PartInfo, check_dataset_format
    from normcli.data.formats import FORMATS
    from normcli.data.storage import concurrently
    from normcli.scaling.fragments import row_ranges

    if output == "-" or not is_dataset_target(output):
        raise UsageError(
            f"on a cluster, -o names a dataset folder, not '{output}'",
            hint="end it with /, e.g. -o out/ or -o s3://bucket/out/",
        )
    out_format = FORMATS[check_dataset_format(format_name)]
    report = TransformReport(warnings=list(scaling.warnings))
    inverse = scaling.inverse
    with open_sources(paths, read) as sources:
        for source in sources:
            if source.is_stream:
                raise UsageError(
                    f"{source.display}: a dataset folder is written from files or URLs, not a stream",
                    hint="name the input files, or write one output file",
                )
        inputs = [s.path for s in sources if s.path]
        if output.rstrip("/") in inputs or (stats_file is not None and output.rstrip("/") == stats_file):
            raise UsageError(f"{output}: output is one of the inputs")
        if all(has_no_data_rows(s, read) for s in sources):
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        plan = _plan(sources, read, stats, out_format, report)
        check_output_columns(plan[0].types, out_format)
        if scaling.grouped and scaling.unknown_group == "error":
            scans = [part.schema.source.format.scan(part.schema.source.path, part.schema.options, part.types, keep_text=True) for part in plan]
            _check_groups_first(scans[0] if len(scans) == 1 else _concat(scans), scaling, list(sources), read)
        with DatasetWriter(output, out_format.extensions[0].lstrip("."), read.storage) as writer:
            tasks: list[PartTask] = []
            infos: list[PartInfo] = []
            schemas = [part.schema for part in plan]
            ranges = concurrently(lambda schema: row_ranges(schema.source, schema.options), schemas, [s.source.path or "" for s in schemas])
            for part, source_ranges in zip(plan, ranges, strict=True):
                source, options = part.schema.source, part.schema.options
                for rows in source_ranges:
                    index = len(tasks)
                    tasks.append(PartTask(source, options, part.types, rows, scaling, out_format, writer.part(index)))
                    infos.append(PartInfo(writer.part_name(index), source.display, input_rows=rows))
            for info, rows_written in zip(infos, engine.run(write_part, tasks, name="part"), strict=True):
                info.rows = rows_written
            manifest = {
                "normcli": __version__,
                "command": "transform",
                "stats": stats_file,
                "format": out_format.name,
                "inverse": inverse,
                "rows": sum(i.rows for i in infos) if all(i.rows is not None for i in infos) else None,
            }
            writer.commit(infos, manifest)
    report.parts = len(infos)
    integers = [f"'{c.name}'" for c in stats.columns if inverse and c.dtype.startswith(("Int", "UInt"))]
    if integers:  # the parts are written independently: one could not be checked against the others
        report.notes.append(f"columns fitted as integers ({', '.join(integers)}) are written as floats in a dataset folder")
    return report


@dataclass
class _Part:
    """One input, ready to read: its schema, the types to read it with, its stream reader."""

    schema: SourceSchema
    types: dict[str, pl.DataType]
    reader: StreamReader | None = None


def _plan(sources: Sequence[Source], read: ReadOptions, stats: Stats, out_format: Format, report: TransformReport) -> list[_Part]:
    """Schemas of the inputs, checked against the stats; the types each is read with.

    Fitted columns are read as Float64; from CSV/TSV to CSV/TSV the other columns are read as
    strings, so they pass through exactly as written whatever their later rows hold (into
    Parquet or NDJSON they keep their types). Null tokens make cells missing in typed columns
    only: a text column keeps ``NA`` (Namibia) and ``null`` (a word) as they are, in any output
    format (see :func:`~normcli.data.formats.typed_from_text`).
    """
    import polars as pl

    from normcli.data.streams import StreamReader

    parts = []
    names: list[str] | None = None
    for source in sources:
        reader = StreamReader(source, read) if source.is_stream and source.format.text else None
        if source.is_stream and reader is None:
            raise UsageError(f"{source.display}: Parquet cannot be transformed from a stream", hint="pass the file's path")
        schema = read_schema(source, read, reader, wanted=stats.names)
        if names is None:
            names = schema.names
        elif schema.names != names:
            raise DataError(
                f"{source.display}: its columns differ from those of {sources[0].display}",
                hint="transform files with the same columns one at a time",
            )
        types = dict(schema.types)
        for name in stats.names:
            if name in types and schema.dtype(name) == NULL:
                report.notes.append(f"column '{name}' has no values in the first rows of {source.display}: its missing values stay missing")
                types[name] = pl.Null
        check_columns(types, stats, source.display)
        text_to_text = source.format.name in DELIMITED and out_format.name in DELIMITED
        for name in types:
            if name in stats.names:
                types[name] = types[name] if name in schema.options.fixed else pl.Float64
            elif text_to_text:
                types[name] = pl.String
        parts.append(_Part(schema, types, reader))
    return parts


def _frames(part: _Part, read: ReadOptions) -> Iterator[pl.DataFrame]:
    source = part.schema.source
    if part.reader is not None:
        yield from part.reader.frames(part.types, keep_text=True)
        return
    assert source.path is not None
    with polars_errors([source], read):
        yield from source.format.scan(source.path, part.schema.options, part.types, keep_text=True).collect_batches()


def _write(
    parts: list[_Part], scaling: Scaling, out_format: Format, compression: str | None, target, read: ReadOptions,
    report: TransformReport,
    integers: _Integers | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Files only: one lazy query sunk by Polars (its counters collected alongside). With a stream:
    frame by frame, flushed as it goes. ``integers`` (``--inverse``): fitted integer columns
    restored (see :class:`_Integers`)."""
    import polars as pl

    sources = [p.schema.source for p in parts]
    exprs = scaling.expressions()
    helpers = scaling.helper_names()
    counters = scaling.counters()
    totals: dict[str, Any] = {}
    unseen: set = set()
    if not any(p.reader for p in parts):
        scans = [p.schema.source.format.scan(p.schema.source.path, p.schema.options, p.types, keep_text=True) for p in parts]
        frame = scans[0] if len(scans) == 1 else _concat(scans)
        if scaling.grouped and scaling.unknown_group == "error":
            _check_groups_first(frame, scaling, sources, read)
        with polars_errors(sources, read):
            prepared = scaling.prepare(frame, sources[0].display if len(sources) == 1 else describe(sources))
            if integers is not None and integers.columns:
                output = integers.apply(prepared, exprs, integers.failures(prepared).collect(engine="streaming"))
            else:
                output = prepared.with_columns(exprs)
            output = output.drop(helpers)
            if counters and not _is_url(target):  # the counters come out of the same pass
                sink = out_format.sink(output, target, compression, options=read, lazy=True)
                _, counts = pl.collect_all([sink, prepared.select(counters)])
                _add_counts(totals, unseen, counts)
            else:
                out_format.sink(output, target, compression, options=read)
                if counters:
                    _add_counts(totals, unseen, prepared.select(counters).collect(engine="streaming"))
        report.notes.extend(scaling.notes(totals, unseen))
        return
    if isinstance(target, str):  # a URL: spool the stream's rows locally, then upload them whole
        import tempfile

        from normcli.data.storage import upload_file

        with tempfile.NamedTemporaryFile(prefix=".normcli-spool.") as spool:
            _write(parts, scaling, out_format, compression, Path(spool.name), read, report, integers, progress)
            upload_file(target, spool.name, read.storage)
        return
    per_chunk = integers is not None and bool(integers.columns) and out_format.text
    opened = open(target, "wb") if isinstance(target, Path) else None  # noqa: SIM115
    try:
        writer = out_format.batch_writer(opened or target, compression, read)
        wrote, written = False, 0
        for part in parts:
            first_row = 0
            for frame in _frames(part, read):
                prepared = scaling.prepare(frame, part.schema.source.display)
                scaling.check_groups(prepared, part.schema.source.display, first_row)
                if counters:
                    _add_counts(totals, unseen, prepared.select(counters))
                if per_chunk:
                    out = integers.apply(prepared, exprs, integers.failures(prepared.lazy()).collect())  # type: ignore[union-attr]
                else:
                    out = prepared.with_columns(exprs)
                writer.write(out.drop(helpers))
                first_row += frame.height
                wrote = True
                if progress is not None:
                    written += frame.height
                    progress(written)
        if not wrote:
            raise DataError(f"{describe(sources)}: has no data rows", hint="expected at least one row below the header")
        writer.close()
    finally:
        if opened is not None:
            opened.close()
    report.notes.extend(scaling.notes(totals, unseen))


def _concat(frames: list[pl.LazyFrame]) -> pl.LazyFrame:
    import polars as pl

    return pl.concat(frames, how="vertical")


def _is_url(target: Any) -> bool:
    from normcli.data.storage import is_url

    return isinstance(target, str) and is_url(target)


def _add_counts(totals: dict[str, Any], unseen: set, counts: pl.DataFrame) -> None:
    for name, value in counts.row(0, named=True).items():
        if name == "\x00unseen_keys":
            unseen.update(tuple(key.values()) for key in value)
        else:
            totals[name] = totals.get(name, 0) + value


def _check_groups_first(frame: pl.LazyFrame, scaling: Scaling, sources: Sequence[Source], read: ReadOptions) -> None:
    """``--unknown-group error`` on files: a first pass over the group columns (and whether each
    fitted cell holds a value), so that nothing is written when a row's group is unseen."""
    where = sources[0].display if len(sources) == 1 else describe(sources)
    refuse_own_names(frame.collect_schema(), where, "per-group stats keep for the columns of their join")
    with polars_errors(list(sources), read):
        flagged = frame.select(*scaling.stats.by, *scaling.value_flags())  # the flags are named like helpers
        keys = scaling.prepare(flagged, own_names_checked=True).collect(engine="streaming")
    scaling.check_groups(keys, where)
