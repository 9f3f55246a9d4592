"""Fitted statistics as SQL or as an ONNX model, computing what ``normcli transform`` computes, bit for bit.

Both apply the documented formula ``y = ((x − center) − center_lo) / scale`` with IEEE float64
operations in that order, so the results equal transform's:

* **SQL** (DuckDB, PostgreSQL, SQLite): a ``SELECT`` over a table. Every constant is written so the
  database reads exactly the float64 normcli holds: ``CAST('1.5' AS DOUBLE)`` for DuckDB and
  PostgreSQL (a bare ``1.5`` is a DECIMAL in DuckDB), and an integer mantissa scaled by powers of
  two for SQLite (whose decimal parser is not always correctly rounded). Identifiers are quoted.
  With groups (``--by``) the per-group parameters are a ``VALUES`` table joined on the keys
  (``IS NOT DISTINCT FROM``, so a null key is a group too); datetime keys as timestamps where the
  database has them (DuckDB, PostgreSQL), since its text of a timestamp is not Polars'.
* **ONNX**: one float64 input per fitted column (NaN for a missing value) and one output each,
  made of ``Sub``/``Div`` nodes with float64 constants — never ONNX's ``Scaler`` operator, which
  stores offset and scale as float32 (at a 1e12 offset that is off by thousands of standard
  deviations). Groups need a single ``--by`` column: its values pick each row's parameters through
  an ``ai.onnx.ml.LabelEncoder`` and ``Gather``.

Options mirror transform's: ``--clip``, ``--impute``, ``--unknown-group`` (``pooled`` or ``null``:
neither SQL nor ONNX can stop with an error), ``--inverse``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normcli.errors import DataError, UsageError
from normcli.scaling.apply import Impute, Scaling
from normcli.scaling.methods import METHODS
from normcli.scaling.model import ColumnStats, Stats

if TYPE_CHECKING:
    import numpy as np

TARGETS = ("sql", "onnx")
DIALECTS = ("duckdb", "postgres", "sqlite")
EXPORT_UNKNOWN_GROUP = ("pooled", "null")
_ZONED = re.compile(r"[+-]\d\d:\d\d$")


@dataclass(frozen=True)
class ExportOptions:
    """What the exported query or model computes: transform's options that SQL and ONNX can express."""

    inverse: bool = False
    clip: bool = False
    impute: Impute = Impute()
    unknown_group: str = "pooled"

    def check(self, stats: Stats) -> Scaling:
        """Validate against ``stats`` the way transform does (the same errors)."""
        if self.unknown_group not in EXPORT_UNKNOWN_GROUP:
            raise UsageError(
                f"--unknown-group {self.unknown_group} cannot be exported: a query or a model cannot stop with an error",
                hint=f"choose {' or '.join(EXPORT_UNKNOWN_GROUP)} (check new data first: normcli check)",
            )
        return Scaling(stats, inverse=self.inverse, clip=self.clip, impute=self.impute, unknown_group=self.unknown_group)


# =========================================================================== SQL


class Dialect:
    """How one database spells what the query needs."""

    name: str = ""
    double = "DOUBLE"
    text_type = "VARCHAR"
    timestamps: tuple[str, str, str] | None = None
    """The types of a datetime key: naive (µs or ms), naive in nanoseconds, with a time zone; None
    where the database has no timestamp type."""

    def identifier(self, name: str) -> str:
        if "\x00" in name:
            raise DataError(f"column name {name!r} contains a NUL character, which SQL identifiers cannot hold")
        return '"' + name.replace('"', '""') + '"'

    def number(self, value: float) -> str:
        """A float64 constant the database reads back exactly."""
        if not math.isfinite(value):
            raise DataError(f"cannot write the non-finite number {value!r} as SQL")
        return f"CAST('{value!r}' AS {self.double})"

    def column(self, table: str, name: str) -> str:
        return f"CAST({table}.{self.identifier(name)} AS {self.double})"

    def is_nan(self, expr: str) -> str:
        return f"isnan({expr})"

    def text(self, value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    def boolean(self, value: bool) -> str:
        return "TRUE" if value else "FALSE"

    def same(self, left: str, right: str) -> str:
        """Equality that holds for two nulls too."""
        return f"{left} IS NOT DISTINCT FROM {right}"

    def key_text(self, expr: str) -> str:
        """A date or other non-text key column as the text normcli's keys hold."""
        return f"CAST({expr} AS {self.text_type})"

    def timestamp(self, key: str) -> str | None:
        """A datetime key, as Polars writes it (``… 12:30:00.000000``: the digits give the time
        unit; ``…+01:00`` with a time zone), as a timestamp literal; None where the database has
        no timestamp type (the column is then compared as text)."""
        if self.timestamps is None:
            return None
        naive, nanoseconds, zoned = self.timestamps
        fraction = key.rpartition(".")[2] if "." in key else ""
        kind = zoned if _ZONED.search(key) else nanoseconds if len(fraction) == 9 else naive
        return f"CAST({self.text(key)} AS {kind})"


class DuckDB(Dialect):
    name = "duckdb"
    timestamps = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMPTZ")

    def is_nan(self, expr: str) -> str:
        # DuckDB 2.0's statistics propagation takes a Parquet column without NaN statistics to
        # hold no NaN and folds isnan(x) to false (measured: 0 of 145 NaN found); a list element
        # carries no statistics, so [x][1] keeps the test honest.
        return f"isnan([{expr}][1])"


class Postgres(Dialect):
    name = "postgres"
    double = "DOUBLE PRECISION"
    text_type = "TEXT"
    timestamps = ("TIMESTAMP", "TIMESTAMP", "TIMESTAMPTZ")  # microseconds at most

    def is_nan(self, expr: str) -> str:
        return f"({expr} = CAST('NaN' AS DOUBLE PRECISION))"


class SQLite(Dialect):
    name = "sqlite"
    double = "REAL"
    text_type = "TEXT"

    def number(self, value: float) -> str:
        """``mantissa`` (an integer, exact) scaled by powers of two (exact): SQLite's decimal
        parser rounds about 0.3% of 17-digit literals to a neighbouring float."""
        if not math.isfinite(value):
            raise DataError(f"cannot write the non-finite number {value!r} as SQL")
        if value == 0.0:
            return "CAST(0 AS REAL)" if math.copysign(1.0, value) > 0 else "CAST(-0.0 AS REAL)"
        fraction, exponent = math.frexp(value)
        mantissa, power = int(fraction * 2**53), exponent - 53
        while mantissa % 2 == 0:
            mantissa //= 2
            power += 1
        expr = f"CAST({mantissa} AS REAL)"
        step = "*" if power > 0 else "/"
        rest = abs(power)
        while rest:
            k = min(rest, 62)
            expr = f"{expr} {step} {2**k}"
            rest -= k
        return f"({expr} /* {value!r} */)"

    def is_nan(self, expr: str) -> str:
        return "0"  # SQLite stores NaN as NULL

    def boolean(self, value: bool) -> str:
        return "1" if value else "0"

    def same(self, left: str, right: str) -> str:
        return f"{left} IS {right}"


SQL_DIALECTS: dict[str, Dialect] = {d.name: d for d in (DuckDB(), Postgres(), SQLite())}


def is_export_file(path: str) -> bool:
    """Whether ``path`` looks like an export normcli wrote (SQL starting with its ``-- normcli``
    comment, or an ONNX model whose producer is normcli): a quick look for
    :func:`~normcli.data.outputs.check_replaceable`, so ``export -o`` does not replace data."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    return head.startswith(b"-- normcli") or b"\x12\x07normcli" in head


def export_sql(stats: Stats, *, dialect: str = "duckdb", table: str = "data", options: ExportOptions | None = None) -> str:
    """A ``SELECT`` over ``table`` that applies ``stats`` and passes the other columns through.

    DuckDB keeps every column of the table (``SELECT * REPLACE``); PostgreSQL and SQLite list the
    columns of the fitted data (``inputs.columns`` of the stats file), in their order.
    """
    if dialect not in SQL_DIALECTS:
        raise UsageError(f"unknown --dialect '{dialect}'", hint=f"choose one of: {', '.join(SQL_DIALECTS)}")
    options = options or ExportOptions()
    scaling = options.check(stats)
    d = SQL_DIALECTS[dialect]
    parts = table.split(".")
    if not all(parts):
        raise UsageError(
            f"--table needs a name, or schema.table with both parts: '{table}' has an empty part",
            hint="e.g. --table events or --table analytics.events",
        )
    source = ".".join(d.identifier(part) for part in parts)
    grouped = stats.groups is not None
    lines = []
    if grouped:
        lines.append(_params_cte(stats, d, scaling))
    expressions = {c.name: _column_sql(d, stats, i, c, options, grouped) for i, c in enumerate(stats.columns)}
    if d.name == "duckdb":
        replaced = ",\n    ".join(f"{expr} AS {d.identifier(name)}" for name, expr in expressions.items())
        lines.append(f"SELECT t.* REPLACE (\n    {replaced}\n)")
    else:
        items = [
            f"{expressions[name]} AS {d.identifier(name)}" if name in expressions else f"t.{d.identifier(name)}"
            for name in stats.all_columns
        ]
        lines.append("SELECT\n    " + ",\n    ".join(items))
    lines.append(f"FROM {source} AS t")
    if grouped:
        on = " AND ".join(
            d.same(_key_column(d, stats, name), f"p.{d.identifier(f'k{i}')}") for i, name in enumerate(stats.by)
        )
        lines.append(f"LEFT JOIN params AS p ON {on}")
    header = (
        f"-- normcli {_version()}: y = ((x - center) - center_lo) / scale, in float64, for {len(stats.columns)} "
        f"column{'s' if len(stats.columns) != 1 else ''} ({d.name})"
    )
    return header + "\n" + "\n".join(lines) + ";\n"


def _version() -> str:
    from normcli import __version__

    return __version__


def _key_column(d: Dialect, stats: Stats, name: str) -> str:
    dtype = stats.by_dtype(name)
    column = f"t.{d.identifier(name)}"
    if dtype == "String" or dtype == "Boolean" or dtype.startswith(("Int", "UInt")):
        return column
    if _is_datetime(dtype) and d.timestamps is not None:
        return column  # compared as timestamps: the database's text of one is not Polars'
    return d.key_text(column)


def _is_datetime(dtype: str) -> bool:
    return dtype.startswith("Datetime")


def _column_sql(d: Dialect, stats: Stats, index: int, column: ColumnStats, options: ExportOptions, grouped: bool) -> str:
    x = d.column("t", column.name)
    if grouped:
        center, center_lo, scale = (f"p.{d.identifier(f'{kind}{index}')}" for kind in ("c", "l", "s"))
        if options.unknown_group == "pooled":
            center = f"COALESCE({center}, {d.number(column.center)})"
            center_lo = f"COALESCE({center_lo}, {d.number(column.center_lo)})"
            scale = f"COALESCE({scale}, {d.number(column.scale)})"
    else:
        center, center_lo, scale = d.number(column.center), d.number(column.center_lo), d.number(column.scale)
    tiny = column.scale < 2.0**-1000 or (grouped and bool((stats.groups.columns[column.name].scale < 2.0**-1000).any()))
    if options.inverse:
        y = f"(({x} * {scale}) + {center_lo}) + {center}"
    elif tiny:
        two100 = d.number(2.0**100)
        y = f"((({x} - {center}) - {center_lo}) * {two100}) / ({scale} * {two100})"
    else:
        y = f"(({x} - {center}) - {center_lo}) / {scale}"
    bounds = METHODS[column.method].clip_range(column) if options.clip else None
    if bounds is not None:
        low, high = (d.number(b) for b in bounds)
        y = f"CASE WHEN ({y}) < {low} THEN {low} WHEN ({y}) > {high} THEN {high} ELSE {y} END"
        if d.name != "sqlite":  # NaN compares greater than everything in DuckDB and PostgreSQL
            y = f"CASE WHEN {d.is_nan(x)} THEN {x} ELSE {y} END"
    fill = options.impute.fill(column)
    if fill is not None:
        value = d.number(fill)
        if grouped and options.impute.kind == "mean":
            value = f"COALESCE(p.{d.identifier(f'f{index}')}, {value})"
        missing = f"({y}) IS NULL" if d.name == "sqlite" else f"({y}) IS NULL OR {d.is_nan(f'({y})')}"
        y = f"CASE WHEN {missing} THEN {value} ELSE {y} END"
    return f"({y})"


def _params_cte(stats: Stats, d: Dialect, scaling: Scaling) -> str:
    """``WITH params(k0, …, c0, l0, s0, f0, …) AS (VALUES …)``: one row per group."""
    table = stats.groups
    assert table is not None
    names = [f"k{i}" for i in range(len(stats.by))]
    arrays: list[np.ndarray] = []
    for i, column in enumerate(stats.columns):
        group = table.columns[column.name]
        fill = scaling._group_fill(column, group)
        names += [f"c{i}", f"l{i}", f"s{i}", f"f{i}"]
        arrays += [group.center, group.center_lo, group.scale, fill if fill is not None else group.center * math.nan]
    columns = [a.tolist() for a in arrays]
    rows = []
    for g, key in enumerate(table.keys):
        cells = [_key_literal(d, value, stats.by_dtype(name)) for value, name in zip(key, stats.by, strict=True)]
        cells += ["NULL" if values[g] != values[g] else d.number(values[g]) for values in columns]
        rows.append("(" + ", ".join(cells) + ")")
    header = ", ".join(d.identifier(n) for n in names)
    return f"WITH params({header}) AS (VALUES\n    " + ",\n    ".join(rows) + "\n)"


def _key_literal(d: Dialect, value: object, dtype: str) -> str:
    if value is None:
        return "NULL"
    if _is_datetime(dtype) and isinstance(value, str):
        literal = d.timestamp(value)
        if literal is not None:
            return literal
    if isinstance(value, bool):
        return d.boolean(value)
    if isinstance(value, int):
        return str(value)
    return d.text(str(value))


# =========================================================================== ONNX


def export_onnx(stats: Stats, *, options: ExportOptions | None = None) -> bytes:
    """An ONNX model (serialized) computing transform's output for each fitted column.

    Inputs: one float64 tensor of shape [N] per fitted column, named like it (NaN = missing); with
    groups, also the ``--by`` column (string or int64). Outputs: ``<column>_scaled`` (float64 [N]).
    """
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        raise UsageError("--to onnx needs the onnx package", hint="pip install 'normcli[onnx]'") from None
    import numpy as np

    options = options or ExportOptions()
    scaling = options.check(stats)
    grouped = stats.groups is not None
    taken = {c.name for c in stats.columns} | set(stats.by)
    nodes: list = []
    initializers: list = []
    inputs = [helper.make_tensor_value_info(c.name, TensorProto.DOUBLE, ["N"]) for c in stats.columns]
    outputs = []

    def fresh(base: str) -> str:
        name = base
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    def constant(value: float | np.ndarray, base: str) -> str:
        name = fresh(base)
        array = np.asarray(value, dtype=np.float64)
        initializers.append(onnx.numpy_helper.from_array(array, name))
        return name

    def node(op: str, args: Sequence[str], base: str, **attributes) -> str:  # noqa: ANN003
        out = fresh(base)
        nodes.append(helper.make_node(op, list(args), [out], name=out, **attributes))
        return out

    index_name = None
    if grouped:
        index_name, key_input = _onnx_group_index(stats, helper, TensorProto, node, fresh)
        inputs.append(key_input)
    for i, column in enumerate(stats.columns):
        x = column.name
        if grouped:
            params = _onnx_group_parameters(stats, i, column, options, scaling)
            center, center_lo, scale, fill = (
                node("Gather", [constant(values, f"normcli_{kind}{i}"), index_name], f"normcli_{kind}{i}_of_row")
                if values is not None else None
                for kind, values in zip("clsf", params, strict=True)
            )
        else:
            center, center_lo, scale = (constant(v, f"normcli_{k}{i}") for k, v in zip("cls", (column.center, column.center_lo, column.scale), strict=True))
            fill = None
        tiny = column.scale < 2.0**-1000 or (grouped and bool((stats.groups.columns[column.name].scale < 2.0**-1000).any()))
        if options.inverse:
            y = node("Add", [node("Add", [node("Mul", [x, scale], f"normcli_{i}_mul"), center_lo], f"normcli_{i}_add"), center], f"normcli_{i}_y")
        else:
            centred = node("Sub", [node("Sub", [x, center], f"normcli_{i}_sub"), center_lo], f"normcli_{i}_centred")
            if tiny:
                two100 = constant(2.0**100, f"normcli_two100_{i}")
                centred = node("Mul", [centred, two100], f"normcli_{i}_up")
                scale = node("Mul", [scale, two100], f"normcli_{i}_scale_up")
            y = node("Div", [centred, scale], f"normcli_{i}_y")
        bounds = METHODS[column.method].clip_range(column) if options.clip else None
        if bounds is not None:  # Where(y < low, low, Where(y > high, high, y)): NaN stays NaN
            low, high = constant(bounds[0], f"normcli_low{i}"), constant(bounds[1], f"normcli_high{i}")
            above = node("Where", [node("Greater", [y, high], f"normcli_{i}_above"), high, y], f"normcli_{i}_upper")
            y = node("Where", [node("Less", [y, low], f"normcli_{i}_below"), low, above], f"normcli_{i}_clipped")
        value = options.impute.fill(column)
        if value is not None:
            filler = fill if fill is not None else constant(value, f"normcli_fill{i}")
            y = node("Where", [node("IsNaN", [y], f"normcli_{i}_missing"), filler, y], f"normcli_{i}_imputed")
        output = fresh(f"{column.name}_scaled")
        nodes.append(helper.make_node("Identity", [y], [output], name=output))
        outputs.append(helper.make_tensor_value_info(output, TensorProto.DOUBLE, ["N"]))
    graph = helper.make_graph(nodes, "normcli_transform", inputs, outputs, initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)],
        producer_name="normcli",
        producer_version=_version(),
        doc_string="normcli transform: y = ((x - center) - center_lo) / scale in float64 per column; NaN = missing.",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _onnx_group_index(stats: Stats, helper, TensorProto, node, fresh):  # noqa: ANN001, ANN202, N803
    """The row's group index from the ``--by`` column (the pooled row, ``len(groups)``, if unseen)."""
    if len(stats.by) != 1:
        raise UsageError(
            f"ONNX export supports one --by column; these stats have {len(stats.by)} ({', '.join(stats.by)})",
            hint="export SQL instead (--to sql), or fit with one group column",
        )
    name = stats.by[0]
    dtype = stats.by_dtype(name)
    table = stats.groups
    present = [(g, key[0]) for g, key in enumerate(table.keys) if key[0] is not None]
    integer = dtype.startswith(("Int", "UInt"))
    if dtype == "Boolean":
        raise UsageError(f"ONNX export needs a text or integer --by column; '{name}' is Boolean", hint="export SQL instead (--to sql)")
    attributes = {"default_int64": len(table), "values_int64s": [g for g, _ in present]}
    if integer:
        attributes["keys_int64s"] = [int(k) for _, k in present]
        key_input = helper.make_tensor_value_info(name, TensorProto.INT64, ["N"])
    else:
        attributes["keys_strings"] = [str(k) for _, k in present]
        key_input = helper.make_tensor_value_info(name, TensorProto.STRING, ["N"])
    index = node("LabelEncoder", [name], "normcli_group_index", domain="ai.onnx.ml", **attributes)
    return index, key_input


def _onnx_group_parameters(stats: Stats, index: int, column: ColumnStats, options: ExportOptions, scaling: Scaling):  # noqa: ANN202
    """center, center_lo, scale and the imputed value per group, plus a last entry for unseen
    groups (the pooled values, or NaN with ``--unknown-group null``); NaN where a group has no
    parameters is replaced the same way."""
    import numpy as np

    group = stats.groups.columns[column.name]
    pooled = options.unknown_group == "pooled"
    result = []
    fill = scaling._group_fill(column, group)
    pooled_fill = options.impute.fill(column)
    for values, fallback in (
        (group.center, column.center), (group.center_lo, column.center_lo), (group.scale, column.scale),
        (fill, pooled_fill),
    ):
        if values is None:
            result.append(None)
            continue
        fallback = fallback if (pooled and fallback is not None) else math.nan
        if values is fill and fallback != fallback and pooled_fill is not None:
            fallback = pooled_fill  # an imputed value stays imputed, even for rows of unseen groups
        extended = np.append(values, fallback)
        result.append(np.where(np.isnan(extended), fallback, extended))
    return result
