"""The stats file: written deterministically as JSON version 2; versions 1 and 2 read back, validated.

The format is the contract other tools read; docs/stats-format.md describes it and
``normcli/scaling/schema/stats-v2.schema.json`` is its JSON Schema. Loading checks every field that
transform relies on and says which one is wrong, so a tampered or foreign file never turns into
silently wrong output. Version 1 files (before exact sums) load too: their rounded sums merge as
they always did, to about 1e-12.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from normcli import __version__
from normcli.data.inputs import STDIN, read_stdin_text
from normcli.data.outputs import write_text_output
from normcli.data.storage import is_url, read_url
from normcli.errors import DataError
from normcli.scaling.exact import Dyadic, Moments, expansion
from normcli.scaling.methods import METHODS
from normcli.scaling.model import ColumnStats, SkippedColumn, Stats

FORMAT_NAME = "normcli-stats"
FORMAT_VERSION = 2
SCHEMA_PATH = Path(__file__).parent / "schema" / f"stats-v{FORMAT_VERSION}.schema.json"


def stats_to_dict(stats: Stats) -> dict[str, Any]:
    """The JSON document of ``stats``, as plain Python objects in a fixed key order."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created_by": f"normcli {__version__}",
        "inputs": {"files": list(stats.inputs), "row_count": stats.row_count},
        "options": {
            "default_method": stats.default_method,
            "ddof": stats.ddof,
            "feature_range": list(stats.feature_range),
            "null_values": list(stats.null_values),
        },
        "skipped_columns": [{"name": s.name, "dtype": s.dtype, "reason": s.reason} for s in stats.skipped],
        "columns": [_column_to_dict(c) for c in stats.columns],
    }


def _column_to_dict(column: ColumnStats) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": column.name,
        "dtype": column.dtype,
        "method": column.method,
        "count": column.count,
        "null_count": column.null_count,
        "nan_count": column.nan_count,
        "mean": column.mean,
        "m2": column.m2,
        "std": column.std,
        "min": column.min,
        "max": column.max,
        "sums": _sums_to_dict(column.moments),
    }
    for name in METHODS[column.method].fields:
        value = getattr(column, name)
        entry[name] = list(value) if isinstance(value, tuple) else value
    entry["center"] = column.center
    entry["center_lo"] = column.center_lo
    entry["scale"] = column.scale
    return entry


def _sums_to_dict(moments: Moments) -> dict[str, Any]:
    """The exact sums as float expansions; scaled by 2^power (and 4^power) when beyond range."""
    power = moments.power()
    sums: dict[str, Any] = {
        "shift": moments.shift,
        "s1": moments.s1.scaled(-power).expansion(),
        "s2": moments.s2.scaled(-2 * power).expansion(),
    }
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
    """Strict, deterministic JSON text of ``stats`` (shortest round-trip floats, no NaN/Infinity)."""
    return json.dumps(stats_to_dict(stats), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def save_stats(stats: Stats, path: str, stdout: IO[bytes] | None = None, storage: tuple[tuple[str, str], ...] = ()) -> None:
    """Write ``stats`` to ``path`` (a file or a URL) atomically, or to stdout when ``path`` is ``-``."""
    write_text_output(dumps_stats(stats), path, stdout, storage)


# --------------------------------------------------------------------------- loading


def load_stats(
    path: str | Path,
    storage: tuple[tuple[str, str], ...] = (),
    *,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
    data: Sequence[str] | None = None,
) -> Stats:
    """Read and validate a stats file (a path or a URL); any problem is a :class:`DataError`
    naming the field.

    ``-`` reads the stats from ``stdin`` (``normcli fit a.csv -o - | normcli transform b.csv -s -``);
    ``data``, the data inputs of the same command, must then not read stdin too.
    """
    name = str(path)
    if name == "-":
        return parse_stats(read_stdin_text(stdin, stdin_is_terminal, data, what="stats"), STDIN)
    if is_url(path):
        try:
            text = read_url(name, storage).decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{name}: not a normcli stats file (not UTF-8 JSON)") from None
        return parse_stats(text, name)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{name}: no such stats file", hint="create one with: normcli fit DATA -o " + name) from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a directory, not a stats file") from None
    except PermissionError:
        raise DataError(f"{name}: permission denied") from None
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

    def integer(self, obj: Any, key: str, where: str, minimum: int = 0) -> int:
        value = self.get(obj, key, where)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{where}.{key}", f"must be an integer ≥ {minimum}, not {value!r}")
        return value

    def number(self, obj: Any, key: str, where: str, *, nullable: bool = False) -> float | None:
        value = self.get(obj, key, where)
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(f"{where}.{key}", f"must be a finite number, not {value!r}")
        return float(value)

    def string(self, obj: Any, key: str, where: str) -> str:
        value = self.get(obj, key, where)
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", f"must be a string, not {value!r}")
        return value

    def pair(self, obj: Any, key: str, where: str) -> tuple[float, float]:
        value = self.get(obj, key, where)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
            or not value[0] < value[1]
        ):
            raise self.fail(f"{where}.{key}", f"must be [low, high] with low < high, not {value!r}")
        return float(value[0]), float(value[1])

    def expansion(self, obj: Any, key: str, where: str) -> Dyadic:
        value = self.get(obj, key, where)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        ):
            raise self.fail(f"{where}.{key}", f"must be a non-empty list of finite numbers, not {value!r}")
        return Dyadic.from_expansion([float(v) for v in value])


def stats_from_dict(doc: Any, source: str = "<stats>") -> Stats:
    """Validate a decoded stats document (version 1 or 2) and build :class:`Stats` from it."""
    read = _Reader(source)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise DataError(
            f"{source}: not a normcli stats file (no \"format\": \"{FORMAT_NAME}\")",
            hint="create one with normcli fit",
        )
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise read.fail("version", f"must be a positive integer, not {version!r}")
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
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise read.fail("columns", f"name '{duplicates[0]}' more than once")
    return Stats(
        inputs=tuple(files),
        row_count=row_count,
        ddof=ddof,
        feature_range=feature_range,
        null_values=tuple(null_values),
        default_method=default_method,
        columns=columns,
        skipped=skipped,
    )


def _column_from_dict(read: _Reader, entry: Any, where: str, version: int) -> ColumnStats:
    name = read.string(entry, "name", where)
    if not name:
        raise read.fail(f"{where}.name", "is empty")
    where = f"column '{name}'"
    method = read.string(entry, "method", where)
    if method not in METHODS:
        raise read.fail(f"{where}.method", f"must be one of {', '.join(METHODS)}, not {method!r}")
    count = read.integer(entry, "count", where)
    std = read.number(entry, "std", where)
    if std < 0:
        raise read.fail(f"{where}.std", f"must not be negative ({std!r})")
    m2 = read.number(entry, "m2", where, nullable=True)
    if m2 is not None and m2 < 0:
        raise read.fail(f"{where}.m2", f"must not be negative ({m2!r})")
    scale = read.number(entry, "scale", where)
    if not scale > 0:
        raise read.fail(f"{where}.scale", f"must be positive, not {scale!r}")
    low, high = read.number(entry, "min", where), read.number(entry, "max", where)
    if low > high:
        raise read.fail(f"{where}.min", "is greater than max")
    if version == 1:
        moments = _moments_v1(read, entry, where, count, m2)
        center_lo = 0.0
    else:
        sums = read.get(entry, "sums", where)
        if not isinstance(sums, dict):
            raise read.fail(f"{where}.sums", f"must be an object, not {sums!r}")
        power = read.integer(sums, "power", f"{where}.sums", minimum=-1100) if "power" in sums else 0
        if abs(power) > 1100:
            raise read.fail(f"{where}.sums.power", f"must be between -1100 and 1100, not {power}")
        moments = Moments(
            count,
            read.number(sums, "shift", f"{where}.sums"),
            read.expansion(sums, "s1", f"{where}.sums").scaled(power),
            read.expansion(sums, "s2", f"{where}.sums").scaled(2 * power),
        )
        center_lo = read.number(entry, "center_lo", where)
    extra: dict[str, Any] = {}
    for field in METHODS[method].fields:
        extra[field] = read.pair(entry, field, where) if field == "feature_range" else read.number(entry, field, where)
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

