"""The stats file: written deterministically as JSON version 3; versions 1 to 3 read back, validated.

The format is the contract other tools read; docs/stats-format.md describes it and
``normcli/scaling/schema/stats-v3.schema.json`` is its JSON Schema. Loading checks every field that
transform relies on and says which one is wrong, so a tampered or foreign file never turns into
silently wrong output; a file of a newer version is refused, naming it. Version 3 added groups
(``--by``), weights (``--weight``), robust's ``--quantile-range``/``--unit-variance`` and the
inputs' column order; version 2 files load as fits without them, and version 1 files (before exact
sums) load too: their rounded sums merge as they always did, to about 1e-12.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from normcli import __version__
from normcli.data.inputs import STDIN, read_stdin_text
from normcli.data.outputs import write_text_output
from normcli.data.storage import is_url, read_url
from normcli.errors import DataError
from normcli.scaling.exact import Dyadic, Moments, expansion
from normcli.scaling.methods import METHODS
from normcli.scaling.model import ColumnStats, GroupColumn, GroupTable, SkippedColumn, Stats, key_kind, value_kind

if TYPE_CHECKING:
    import numpy as np

FORMAT_NAME = "normcli-stats"
FORMAT_VERSION = 3
SCHEMA_PATH = Path(__file__).parent / "schema" / f"stats-v{FORMAT_VERSION}.schema.json"


def stats_to_dict(stats: Stats) -> dict[str, Any]:
    """The JSON document of ``stats``, as plain Python objects in a fixed key order."""
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created_by": f"normcli {__version__}",
        "inputs": {"files": list(stats.inputs), "row_count": stats.row_count, "columns": stats.all_columns},
        "options": {
            "default_method": stats.default_method,
            "ddof": stats.ddof,
            "feature_range": list(stats.feature_range),
            "null_values": list(stats.null_values),
            "quantile_range": list(stats.quantile_range),
            "unit_variance": stats.unit_variance,
            "by": list(stats.by),
            "weight": stats.weight,
        },
        "skipped_columns": [{"name": s.name, "dtype": s.dtype, "reason": s.reason} for s in stats.skipped],
        "columns": [_column_to_dict(c) for c in stats.columns],
    }
    if stats.groups is not None:
        doc["groups"] = _groups_to_dict(stats)
    return doc


def _column_to_dict(column: ColumnStats, *, head: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": column.name, "dtype": column.dtype, "method": column.method} if head else {}
    entry.update({
        "count": column.count,
        "null_count": column.null_count,
        "nan_count": column.nan_count,
        "mean": column.mean,
        "m2": column.m2,
        "std": column.std,
        "min": column.min,
        "max": column.max,
        "sums": _sums_to_dict(column.moments),
    })
    if column.weight_sum is not None:
        entry["weight_sum"] = column.weight_sum
    for name in METHODS[column.method].fields:
        value = getattr(column, name)
        entry[name] = list(value) if isinstance(value, tuple) else value
    entry["center"] = column.center
    entry["center_lo"] = column.center_lo
    entry["scale"] = column.scale
    return entry


_GROUP_NUMBERS = ("mean", "m2", "std")
_GROUP_PARAMETERS = ("center", "center_lo", "scale")


def _groups_to_dict(stats: Stats) -> dict[str, Any]:
    """The groups, column by column: arrays with one entry per group (null where not fitted)."""
    table = stats.groups
    assert table is not None
    columns: dict[str, Any] = {}
    for pooled in stats.columns:
        group = table.columns[pooled.name]
        fitted = group.fitted.tolist()

        def values(array, fitted=fitted):  # noqa: ANN001, ANN202
            return [v if f and v == v else None for v, f in zip(array.tolist(), fitted, strict=True)]

        entry: dict[str, Any] = {
            "count": group.count.tolist(),
            "null_count": group.null_count.tolist(),
            "nan_count": group.nan_count.tolist(),
            "min": group.min.tolist(),
            "max": group.max.tolist(),
            **{name: values(getattr(group, name)) for name in _GROUP_NUMBERS},
            "sums": _group_sums_to_dict(group.moments),
        }
        if group.weight_sum is not None:
            entry["weight_sum"] = group.weight_sum.tolist()
        for name in METHODS[pooled.method].fields:
            value = group.extra[name]
            entry[name] = list(value) if isinstance(value, tuple) else values(value)
        for name in _GROUP_PARAMETERS:
            entry[name] = values(getattr(group, name))
        columns[pooled.name] = entry
    return {"keys": [list(key) for key in table.keys], "row_count": table.row_count.tolist(), "columns": columns}


def _group_sums_to_dict(moments: Sequence[Moments]) -> dict[str, Any]:
    each = [_sums_to_dict(m) for m in moments]
    sums: dict[str, Any] = {
        "shift": [e["shift"] for e in each],
        "s1": [e["s1"] for e in each],
        "s2": [e["s2"] for e in each],
    }
    if any("w" in e for e in each):
        sums["w"] = [e.get("w", [0.0]) for e in each]
    if any("power" in e for e in each):
        sums["power"] = [e.get("power", 0) for e in each]
    return sums


def _sums_to_dict(moments: Moments) -> dict[str, Any]:
    """The exact sums as float expansions; scaled by 2^power (and 4^power) when beyond range."""
    power = moments.power()
    sums: dict[str, Any] = {
        "shift": moments.shift,
        "s1": moments.s1.scaled(-power).expansion(),
        "s2": moments.s2.scaled(-2 * power).expansion(),
    }
    if moments.weight is not None:
        sums["w"] = moments.weight.expansion()
    if power:
        sums["power"] = power
    return sums


_FORMAT_KEY = re.compile(rb'"format"\s*:\s*"normcli-stats"')


def is_stats_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a stats file: its first 4 KiB declare ``"format": "normcli-stats"``
    (normcli writes that key first). A quick look for :func:`~normcli.data.outputs.check_replaceable`,
    not a validation (:func:`load_stats` validates)."""
    try:
        with open(path, "rb") as handle:
            return bool(_FORMAT_KEY.search(handle.read(4096)))
    except OSError:
        return False


def dumps_stats(stats: Stats) -> str:
    """Strict, deterministic JSON text of ``stats`` (shortest round-trip floats, no NaN/Infinity).

    Two-space indentation, one key per line — except the arrays of ``groups`` (one entry per
    group), each written on one line, so a file with 10,000 groups stays compact and quick to read.
    """
    doc = stats_to_dict(stats)
    groups = doc.pop("groups", None)
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
    if groups is None:
        return text + "\n"
    return text[: text.rindex("}")].rstrip() + ',\n  "groups": ' + _compact_leaves(groups, 1) + "\n}\n"


def _compact_leaves(obj: Any, depth: int) -> str:
    """JSON of nested objects, indented, with every non-object value on one line."""
    if not isinstance(obj, dict):
        return json.dumps(obj, ensure_ascii=False, allow_nan=False)
    pad = "  " * (depth + 1)
    items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_compact_leaves(v, depth + 1)}" for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"


def save_stats(stats: Stats, path: str, stdout: IO[bytes] | None = None, storage: tuple[tuple[str, str], ...] = ()) -> None:
    """Write ``stats`` to ``path`` (a file or a URL) atomically, or to stdout when ``path`` is ``-``."""
    write_text_output(dumps_stats(stats), path, stdout, storage)


# --------------------------------------------------------------------------- loading


MAX_STATS_BYTES = 128 << 20
"""Stats files are refused above this size, before they are read: a column takes about 500
bytes, so even 100,000 columns (the column limit of inputs) stay near 50 MB; parsing JSON into
Python objects takes about five times the file's size in memory."""


def load_stats(
    path: str | Path,
    storage: tuple[tuple[str, str], ...] = (),
    *,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
    data: Sequence[str] | None = None,
) -> Stats:
    """Read and validate a stats file (a path or a URL); any problem is a :class:`DataError`
    naming the field. Files larger than :data:`MAX_STATS_BYTES` are refused before they are read.

    ``-`` reads the stats from ``stdin`` (``normcli fit a.csv -o - | normcli transform b.csv -s -``);
    ``data``, the data inputs of the same command, must then not read stdin too.
    """
    name = str(path)
    if name == "-":
        return parse_stats(read_stdin_text(stdin, stdin_is_terminal, data, what="stats", limit=MAX_STATS_BYTES), STDIN)
    if is_url(path):
        try:
            text = read_url(name, storage, limit=MAX_STATS_BYTES).decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{name}: not a normcli stats file (not UTF-8 JSON)") from None
        return parse_stats(text, name)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_STATS_BYTES + 1)
        return stats_from_bytes(raw, name)
    except FileNotFoundError:
        raise DataError(f"{name}: no such stats file", hint="create one with: normcli fit DATA -o " + name) from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a directory, not a stats file") from None
    except PermissionError:
        raise DataError(f"{name}: permission denied") from None


def stats_from_bytes(raw: bytes, name: str) -> Stats:
    """A stats file's bytes, already read (at most :data:`MAX_STATS_BYTES` + 1 of them), validated."""
    if len(raw) > MAX_STATS_BYTES:
        raise DataError(
            f"{name}: is larger than {MAX_STATS_BYTES >> 20} MiB, which no stats file is",
            hint="is it a stats file written by normcli fit?",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a normcli stats file (not UTF-8 JSON)") from None
    return parse_stats(text, name)


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not allowed in strict JSON")


def parse_stats(text: str, name: str = "<stats>") -> Stats:
    """Parse and validate stats JSON text (see :func:`load_stats`)."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise DataError(f"{name}: not valid stats JSON ({exc})", hint="re-create it with normcli fit") from None
    except RecursionError:
        raise DataError(f"{name}: not valid stats JSON (nested too deeply)", hint="re-create it with normcli fit") from None
    return stats_from_dict(doc, name)


class _Reader:
    """Typed field access that names the offending field in its error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> DataError:
        return DataError(f"{self.source}: invalid stats file: {where} {problem}", hint="re-create it with normcli fit")

    def get(self, obj: Any, key: str, where: str) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(where, "is not an object")
        if key not in obj:
            raise self.fail(f"{where}.{key}", "is missing")
        return obj[key]

    def integer(self, obj: Any, key: str, where: str, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
        """An integer in [minimum, maximum] (counts: at most 2^63 − 1, as any table's rows)."""
        value = self.get(obj, key, where)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.fail(f"{where}.{key}", f"must be an integer from {minimum} to {maximum}, not {_shown(value)}")
        return value

    def number(self, obj: Any, key: str, where: str, *, nullable: bool = False) -> float | None:
        value = self.get(obj, key, where)
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise self.fail(f"{where}.{key}", f"must be a finite number, not {_shown(value)}")
        return float(value)

    def string(self, obj: Any, key: str, where: str) -> str:
        value = self.get(obj, key, where)
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", f"must be a string, not {_shown(value)}")
        return value

    def pair(self, obj: Any, key: str, where: str) -> tuple[float, float]:
        value = self.get(obj, key, where)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v) for v in value)
            or not float(value[0]) < float(value[1])
            or not math.isfinite(float(value[1]) - float(value[0]))
        ):
            raise self.fail(f"{where}.{key}", f"must be [low, high] with low < high and a finite width, not {_shown(value)}")
        return float(value[0]), float(value[1])

    def expansion(self, obj: Any, key: str, where: str) -> Dyadic:
        value = self.get(obj, key, where)
        if (
            not isinstance(value, list)
            or not value
            or len(value) > 64
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v) for v in value)
        ):
            raise self.fail(f"{where}.{key}", f"must be a list of 1 to 64 finite numbers, not {_shown(value)}")
        total = Dyadic.from_expansion([float(v) for v in value])
        if not math.isfinite(float(total)):  # normcli writes the rounded sum first: always finite
            raise self.fail(f"{where}.{key}", f"must add up to a finite number, not to one beyond float64 ({_shown(value)})")
        return total


def _finite(value: int | float) -> bool:
    """Finite as a float64 (an integer of 400 digits is not: it would overflow)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _shown(value: Any) -> str:
    """A value for an error message, cut short (a tampered field may hold megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:40] + f"… ({len(text)} characters)"


def stats_from_dict(doc: Any, source: str = "<stats>") -> Stats:
    """Validate a decoded stats document (version 1, 2 or 3) and build :class:`Stats` from it."""
    read = _Reader(source)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise DataError(
            f"{source}: not a normcli stats file (no \"format\": \"{FORMAT_NAME}\")",
            hint="create one with normcli fit",
        )
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise read.fail("version", f"must be a positive integer, not {_shown(version)}")
    if version > FORMAT_VERSION:
        raise DataError(
            f"{source}: stats format version {version} is newer than this normcli reads (version {FORMAT_VERSION})",
            hint="upgrade normcli: pip install -U normcli",
        )
    inputs = read.get(doc, "inputs", "$")
    files = read.get(inputs, "files", "inputs")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise read.fail("inputs.files", "must be a list of strings")
    row_count = read.integer(inputs, "row_count", "inputs")
    options = read.get(doc, "options", "$")
    default_method = read.string(options, "default_method", "options")
    if default_method not in METHODS:
        raise read.fail("options.default_method", f"must be one of {', '.join(METHODS)}")
    ddof = read.integer(options, "ddof", "options")
    if ddof > 1:
        raise read.fail("options.ddof", "must be 0 or 1")
    feature_range = read.pair(options, "feature_range", "options")
    null_values = read.get(options, "null_values", "options")
    if not isinstance(null_values, list) or not all(isinstance(v, str) for v in null_values):
        raise read.fail("options.null_values", "must be a list of strings")
    v3: dict[str, Any] = {}
    if version >= 3:
        v3 = _options_v3(read, inputs, options)
    skipped_raw = read.get(doc, "skipped_columns", "$")
    if not isinstance(skipped_raw, list):
        raise read.fail("skipped_columns", "must be a list")
    skipped = tuple(
        SkippedColumn(
            read.string(s, "name", f"skipped_columns[{i}]"),
            read.string(s, "dtype", f"skipped_columns[{i}]"),
            read.string(s, "reason", f"skipped_columns[{i}]"),
        )
        for i, s in enumerate(skipped_raw)
    )
    columns_raw = read.get(doc, "columns", "$")
    if not isinstance(columns_raw, list) or not columns_raw:
        raise read.fail("columns", "must be a non-empty list")
    columns = tuple(_column_from_dict(read, c, f"columns[{i}]", version) for i, c in enumerate(columns_raw))
    names = [c.name for c in columns]
    seen: set[str] = set()
    for name in names:  # linear: a tampered file may list a million columns
        if name in seen:
            raise read.fail("columns", f"name '{name}' more than once")
        seen.add(name)
    by = v3.get("by", ())
    for name in (*by, *([v3["weight"]] if v3.get("weight") else [])):
        if name in names:
            raise read.fail("options", f"names the fitted column '{name}' in by or weight")
    groups = None
    if by:
        key_types = {s.name: s.dtype for s in skipped}
        groups = _groups_from_dict(read, read.get(doc, "groups", "$"), columns, by, tuple(key_types.get(name, "String") for name in by))
    elif "groups" in doc:
        raise read.fail("groups", "is present but options.by is empty")
    return Stats(
        inputs=tuple(files),
        row_count=row_count,
        ddof=ddof,
        feature_range=feature_range,
        null_values=tuple(null_values),
        default_method=default_method,
        columns=columns,
        skipped=skipped,
        groups=groups,
        **v3,
    )


def _options_v3(read: _Reader, inputs: Any, options: Any) -> dict[str, Any]:
    """What version 3 added: the inputs' columns, robust's options, ``by`` and ``weight``."""
    all_columns = read.get(inputs, "columns", "inputs")
    if not isinstance(all_columns, list) or not all(isinstance(c, str) for c in all_columns):
        raise read.fail("inputs.columns", "must be a list of strings")
    low, high = read.pair(options, "quantile_range", "options")
    if not (0 <= low and high <= 100):
        raise read.fail("options.quantile_range", f"must be percentiles within [0, 100], not {_shown([low, high])}")
    unit_variance = read.get(options, "unit_variance", "options")
    if not isinstance(unit_variance, bool):
        raise read.fail("options.unit_variance", f"must be true or false, not {_shown(unit_variance)}")
    by = read.get(options, "by", "options")
    if not isinstance(by, list) or not all(isinstance(b, str) and b for b in by) or len(set(by)) != len(by):
        raise read.fail("options.by", f"must be a list of distinct column names, not {_shown(by)}")
    weight = read.get(options, "weight", "options")
    if weight is not None and (not isinstance(weight, str) or not weight):
        raise read.fail("options.weight", f"must be a column name or null, not {_shown(weight)}")
    return {
        "input_columns": tuple(all_columns),
        "quantile_range": (low, high),
        "unit_variance": unit_variance,
        "by": tuple(by),
        "weight": weight,
    }


def _groups_from_dict(
    read: _Reader, raw: Any, pooled: tuple[ColumnStats, ...], by: tuple[str, ...], dtypes: tuple[str, ...]
) -> GroupTable:
    """Validate the columnar groups (vectorized: a file may hold 10,000 groups). Each key holds,
    per ``--by`` column, null or a value of the type that column had when fitted (``dtypes``, as
    ``skipped_columns`` lists them): a boolean, an integer within 64 bits, or a string."""
    import numpy as np

    if not isinstance(raw, dict):
        raise read.fail("groups", "must be an object")
    keys_raw = read.get(raw, "keys", "groups")
    if not isinstance(keys_raw, list):
        raise read.fail("groups.keys", "must be a list")
    size = len(keys_raw)
    keys = []
    seen: set[tuple] = set()
    for i, key in enumerate(keys_raw):
        if not isinstance(key, list) or len(key) != len(by) or not all(v is None or isinstance(v, (str, int)) for v in key):
            raise read.fail(f"groups.keys[{i}]", f"must be a list of {len(by)} strings, integers, booleans or nulls, not {_shown(key)}")
        for name, dtype, v in zip(by, dtypes, key, strict=True):
            if v is not None and not _key_fits(v, dtype):
                kind, found = key_kind(dtype), value_kind(v)
                what = "beyond the 64 bits of an integer key" if found == kind else f"whose keys are {kind or 'all null'}"
                raise read.fail(f"groups.keys[{i}]", f"holds the {found} {_shown(v)} for '{name}', {what} ({dtype})")
        typed = tuple((type(v), v) for v in key)
        if typed in seen:
            raise read.fail(f"groups.keys[{i}]", f"{_shown(key)} occurs more than once")
        seen.add(typed)
        keys.append(tuple(key))
    row_count = _int_array(read, raw, "row_count", "groups", size)
    columns_raw = read.get(raw, "columns", "groups")
    if not isinstance(columns_raw, dict):
        raise read.fail("groups.columns", "must be an object")
    fitted_names = {column.name for column in pooled}
    unknown = next((name for name in columns_raw if name not in fitted_names), None)
    if unknown is not None:
        raise read.fail(f"groups.columns['{unknown}']", "is not one of the fitted columns")
    columns: dict[str, GroupColumn] = {}
    for column in pooled:
        where = f"groups.columns['{column.name}']"
        entry = read.get(columns_raw, column.name, "groups.columns")
        numbers = {name: _float_array(read, entry, name, where, size, nullable=True) for name in (*_GROUP_NUMBERS, *_GROUP_PARAMETERS)}
        fitted = ~np.isnan(numbers["scale"])
        for name in ("mean", "std", "center", "center_lo"):
            if (np.isnan(numbers[name]) & fitted).any():
                index = int(np.argmax(np.isnan(numbers[name]) & fitted))
                raise read.fail(f"{where}.{name}[{index}]", "is null where scale is not")
        if (numbers["scale"][fitted] <= 0).any():
            index = int(np.flatnonzero(fitted)[np.argmax(numbers["scale"][fitted] <= 0)])
            raise read.fail(f"{where}.scale[{index}]", "must be positive")
        for name in ("std", "m2"):
            if (numbers[name] < 0).any():
                raise read.fail(f"{where}.{name}[{int(np.argmax(numbers[name] < 0))}]", "must not be negative")
        low, high = _float_array(read, entry, "min", where, size), _float_array(read, entry, "max", where, size)
        if (low > high).any():
            raise read.fail(f"{where}.min[{int(np.argmax(low > high))}]", "is greater than max")
        count = _int_array(read, entry, "count", where, size)
        weighted = "weight_sum" in entry
        extra: dict[str, Any] = {}
        for name in METHODS[column.method].fields:
            extra[name] = read.pair(entry, name, where) if name == "feature_range" else _float_array(read, entry, name, where, size, nullable=True)
        columns[column.name] = GroupColumn(
            count=count,
            null_count=_int_array(read, entry, "null_count", where, size),
            nan_count=_int_array(read, entry, "nan_count", where, size),
            min=low,
            max=high,
            fitted=fitted,
            moments=_GroupSums(read, read.get(entry, "sums", where), f"{where}.sums", count, weighted),
            weight_sum=_float_array(read, entry, "weight_sum", where, size) if weighted else None,
            extra=extra,
            **numbers,
        )
    return GroupTable(by=by, keys=tuple(keys), row_count=row_count, columns=columns)


def _key_fits(value: str | int | bool, dtype: str) -> bool:
    """Whether a group key's value is of the type its ``--by`` column had (transform reads the
    keys as Boolean, Int64 or String, :func:`normcli.scaling.apply._key_dtype`)."""
    if dtype == "Null":  # a column without values has only null keys
        return False
    if dtype == "Boolean":
        return isinstance(value, bool)
    if dtype.startswith(("Int", "UInt")):
        return type(value) is int and -(2**63) <= value <= 2**63 - 1
    return isinstance(value, str)


def _array(read: _Reader, obj: Any, key: str, where: str, size: int) -> list:
    value = read.get(obj, key, where)
    if not isinstance(value, list) or len(value) != size:
        raise read.fail(f"{where}.{key}", f"must be a list of {size} entries (one per group)")
    return value


def _float_array(read: _Reader, obj: Any, key: str, where: str, size: int, *, nullable: bool = False) -> np.ndarray:
    """Finite numbers (and nulls, as NaN, if ``nullable``), one per group."""
    import numpy as np

    value = _array(read, obj, key, where, size)
    for index, v in enumerate(value):
        if not ((v is None and nullable) or (type(v) in (int, float) and _finite(v))):
            raise read.fail(f"{where}.{key}[{index}]", f"must be a finite number{' or null' if nullable else ''}, not {_shown(v)}")
    return np.array([math.nan if v is None else v for v in value] if nullable else value, dtype=np.float64).reshape(size)


def _int_array(read: _Reader, obj: Any, key: str, where: str, size: int) -> np.ndarray:
    import numpy as np

    value = _array(read, obj, key, where, size)
    for index, v in enumerate(value):
        if type(v) is not int or not 0 <= v <= 2**63 - 1:
            raise read.fail(f"{where}.{key}[{index}]", f"must be an integer from 0 to {2**63 - 1}, not {_shown(v)}")
    return np.array(value, dtype=np.int64).reshape(size)


_MAX_WEIGHT_BITS = 1000
"""fit refuses a column whose total weight reaches 2^1000 (:func:`normcli.scaling.methods.unfittable`),
so no stats file it writes holds more; a merge of such totals then stays within float64."""


class _GroupSums(Sequence):
    """The exact sums of a column in every group, validated and converted when first needed
    (merges need them; transform does not)."""

    def __init__(self, read: _Reader, sums: Any, where: str, count: np.ndarray, weighted: bool) -> None:
        if not isinstance(sums, dict):
            raise read.fail(where, f"must be an object, not {_shown(sums)}")
        size = len(count)
        self.read, self.where, self.count = read, where, count.tolist()
        self.shift = _float_array(read, sums, "shift", where, size).tolist()
        self.s1 = _array(read, sums, "s1", where, size)
        self.s2 = _array(read, sums, "s2", where, size)
        self.w = _array(read, sums, "w", where, size) if weighted else None
        self.power = _array(read, sums, "power", where, size) if "power" in sums else None
        self.cache: dict[int, Moments] = {}

    def __len__(self) -> int:
        return len(self.count)

    def __getitem__(self, index):  # noqa: ANN001, ANN204
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index in self.cache:
            return self.cache[index]
        read, where = self.read, self.where
        power = 0
        if self.power is not None:
            power = self.power[index]
            if type(power) is not int or abs(power) > 1100:
                raise read.fail(f"{where}.power[{index}]", f"must be an integer between -1100 and 1100, not {_shown(power)}")
        entry = {"s1": self.s1[index], "s2": self.s2[index], **({"w": self.w[index]} if self.w is not None else {})}
        weight = read.expansion(entry, "w", f"{where}[{index}]") if self.w is not None else None
        if weight is not None and weight.mantissa < 0:
            raise read.fail(f"{where}.w[{index}]", "must not be negative")
        if weight is not None and weight.magnitude() > _MAX_WEIGHT_BITS:
            raise read.fail(f"{where}.w[{index}]", f"must be below 2^{_MAX_WEIGHT_BITS}, the largest total weight fit accepts")
        moments = Moments(
            self.count[index],
            self.shift[index],
            read.expansion(entry, "s1", f"{where}[{index}]").scaled(power),
            read.expansion(entry, "s2", f"{where}[{index}]").scaled(2 * power),
            weight,
        )
        self.cache[index] = moments
        return moments


def _sums_from_dict(read: _Reader, entry: Any, where: str, count: int) -> Moments:
    sums = read.get(entry, "sums", where)
    if not isinstance(sums, dict):
        raise read.fail(f"{where}.sums", f"must be an object, not {_shown(sums)}")
    power = read.integer(sums, "power", f"{where}.sums", minimum=-1100, maximum=1100) if "power" in sums else 0
    weight = read.expansion(sums, "w", f"{where}.sums") if "w" in sums else None
    if weight is not None and weight.mantissa < 0:
        raise read.fail(f"{where}.sums.w", "must not be negative")
    if weight is not None and weight.magnitude() > _MAX_WEIGHT_BITS:
        raise read.fail(f"{where}.sums.w", f"must be below 2^{_MAX_WEIGHT_BITS}, the largest total weight fit accepts")
    return Moments(
        count,
        read.number(sums, "shift", f"{where}.sums"),
        read.expansion(sums, "s1", f"{where}.sums").scaled(power),
        read.expansion(sums, "s2", f"{where}.sums").scaled(2 * power),
        weight,
    )


_FIELDS_BEFORE_V3 = {"q_low": "q1", "q_high": "q3"}
"""Robust's percentile fields had these names before ``--quantile-range`` (version 3)."""


def _column_from_dict(read: _Reader, entry: Any, where: str, version: int) -> ColumnStats:
    name = read.string(entry, "name", where)
    if not name:
        raise read.fail(f"{where}.name", "is empty")
    where = f"column '{name}'"
    method = read.string(entry, "method", where)
    if method not in METHODS:
        raise read.fail(f"{where}.method", f"must be one of {', '.join(METHODS)}, not {_shown(method)}")
    count = read.integer(entry, "count", where)
    std = read.number(entry, "std", where)
    if std < 0:
        raise read.fail(f"{where}.std", f"must not be negative ({_shown(std)})")
    m2 = read.number(entry, "m2", where, nullable=True)
    if m2 is not None and m2 < 0:
        raise read.fail(f"{where}.m2", f"must not be negative ({_shown(m2)})")
    scale = read.number(entry, "scale", where)
    if not scale > 0:
        raise read.fail(f"{where}.scale", f"must be positive, not {_shown(scale)}")
    low, high = read.number(entry, "min", where), read.number(entry, "max", where)
    if low > high:
        raise read.fail(f"{where}.min", "is greater than max")
    if version == 1:
        moments = _moments_v1(read, entry, where, count, m2)
        center_lo = 0.0
    else:
        moments = _sums_from_dict(read, entry, where, count)
        center_lo = read.number(entry, "center_lo", where)
    weight_sum = read.number(entry, "weight_sum", where) if moments.weighted else None
    extra: dict[str, Any] = {}
    for field in METHODS[method].fields:
        key = field if version >= 3 else _FIELDS_BEFORE_V3.get(field, field)
        extra[field] = read.pair(entry, key, where) if field == "feature_range" else read.number(entry, key, where)
    return ColumnStats(
        name=name,
        dtype=read.string(entry, "dtype", where),
        method=method,
        count=count,
        null_count=read.integer(entry, "null_count", where),
        nan_count=read.integer(entry, "nan_count", where),
        mean=read.number(entry, "mean", where),
        m2=m2,
        std=std,
        min=low,
        max=high,
        center=read.number(entry, "center", where),
        center_lo=center_lo,
        scale=scale,
        moments=moments,
        weight_sum=weight_sum,
        **extra,
    )


def _moments_v1(read: _Reader, entry: Any, where: str, count: int, m2: float | None) -> Moments:
    """Version 1 kept ``shift``, a rounded ``shifted_sum`` and ``m2``: s2 = m2 + s1²/n (exactly
    from those rounded values, so merges of v1 files are as good as they were)."""
    shift = read.number(entry, "shift", where)
    shifted_sum = read.number(entry, "shifted_sum", where, nullable=True)
    if shifted_sum is None or m2 is None or count == 0:
        return Moments(count, shift, Dyadic.of(shifted_sum or 0.0), Dyadic.of(m2 or 0.0))
    s1 = Dyadic.of(shifted_sum)
    s1_fraction = s1.fraction()
    s2_fraction = Dyadic.of(m2).fraction() + s1_fraction * s1_fraction / count
    return Moments(count, shift, s1, Dyadic.from_expansion(expansion(s2_fraction)))

