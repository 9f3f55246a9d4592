"""Random CSV and Parquet inputs through fit → transform → inspect, and random stats documents
through transform.

Invariant: the exit code is 0, 1 or 2 only. On 0 the numbers match numpy float64 computed from the
generated values; on 1 or 2 stderr is one ``normcli: error:`` line and no output file exists.

The default profile runs a few hundred examples (CI); ``NORMCLI_FUZZ=full`` runs the full one
(2,000 inputs and 1,000 stats documents):

    NORMCLI_FUZZ=full python -m pytest tests/test_fuzz.py -q
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from normcli.cli import app

settings.register_profile(
    "ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("full", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = "full" if os.environ.get("NORMCLI_FUZZ") == "full" else "ci"
EXAMPLES = settings.get_profile(PROFILE).max_examples
runner = CliRunner()


# --------------------------------------------------------------------------- generated tables


@dataclass
class Column:
    name: str
    kind: str  # float, int, mixed, bool, text
    values: list  # Python values; None is a missing cell

    @property
    def numeric(self) -> bool:
        return self.kind in ("float", "int", "mixed")

    def finite(self) -> np.ndarray:
        """The values normcli's statistics are over: numbers that are neither missing nor NaN."""
        if not self.numeric:
            return np.array([])
        x = np.array([float(v) for v in self.values if v is not None], dtype=np.float64)
        return x[~np.isnan(x)]

    @property
    def has_infinity(self) -> bool:
        return self.numeric and any(v is not None and isinstance(v, float) and math.isinf(v) for v in self.values)


names = st.one_of(
    # (no bare CR: Python's csv writer leaves it unquoted with a "\n" line end, a broken file)
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), min_size=1, max_size=8),
    st.sampled_from(["a", "b", "x y", " a", "é", "名前", "NA", "nan", "a,b", 'q"uote', "new\nline", "1", "", "__rows__"]),
)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 5e-324, 1e-300, 2.0**53 + 2]),
)
integers = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1) | st.integers(-1000, 1000)
words = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=6).map(
    lambda s: "x" + s
)


@st.composite
def columns(draw, rows: int) -> Column:
    kind = draw(st.sampled_from(["float", "float", "int", "mixed", "bool", "text"]))
    # an infinity makes fit fail (by design): allow them in one float column out of five only
    some = floats if draw(st.integers(0, 4)) == 0 else floats.map(lambda v: 1.5 if math.isinf(v) else v)
    element = {
        "float": some,
        "int": integers,
        "mixed": st.one_of(some, st.integers(-10**6, 10**6)),
        "bool": st.booleans(),
        "text": words,
    }[kind]
    values = draw(st.lists(st.one_of(element, element, element, st.none()), min_size=rows, max_size=rows))
    return Column(draw(names), kind, values)


@st.composite
def tables(draw) -> tuple[list[Column], int]:
    rows = draw(st.integers(0, 25))
    table = draw(st.lists(columns(rows), min_size=1, max_size=5))
    if draw(st.integers(0, 9)):  # mostly distinct names; sometimes duplicates on purpose
        seen: set[str] = set()
        table = [c for c in table if not (c.name in seen or seen.add(c.name))]
    return table, rows


def cell(value, quoting_nan: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return quoting_nan
        return repr(value)
    return str(value)


@st.composite
def csv_files(draw) -> tuple[bytes, list[Column]]:
    table, rows = draw(tables())
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    nan_text = draw(st.sampled_from(["nan", "NaN", "NA", ""]))
    out = io.StringIO()
    writer = csv.writer(out, quoting=quoting, lineterminator=newline)
    writer.writerow([c.name for c in table])
    blank_after = set(draw(st.lists(st.integers(0, max(rows - 1, 0)), max_size=2))) if rows else set()
    for i in range(rows):
        writer.writerow([cell(c.values[i], nan_text) for c in table])
        if i in blank_after:
            out.write(newline)
    text = out.getvalue()
    for column in table:
        column.name = polars_name(column.name, csv_file=True)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no final newline
    bom = "\ufeff" if draw(st.integers(0, 9)) == 0 else ""
    return (bom + text).encode(), table


@st.composite
def parquet_files(draw) -> tuple[bytes, list[Column]]:
    table, rows = draw(tables())
    seen: set[str] = set()
    unique = []
    for column in table:  # Parquet written by Polars needs distinct, non-empty names
        if column.name and column.name not in seen:
            seen.add(column.name)
            unique.append(column)
    dtypes = {"float": pl.Float64, "int": pl.Int64, "mixed": pl.Float64, "bool": pl.Boolean, "text": pl.String}
    series = []
    for column in unique:
        values = [float(v) if column.kind == "mixed" and v is not None else v for v in column.values]
        series.append(pl.Series(column.name, values, dtype=dtypes[column.kind], strict=False))
    buffer = io.BytesIO()
    pl.DataFrame(series).write_parquet(buffer)
    for column in unique:
        if column.kind == "mixed":
            column.values = [float(v) if v is not None else None for v in column.values]
    return buffer.getvalue(), unique


# --------------------------------------------------------------------------- the checks


def run(folder: Path, *args: str):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return runner.invoke(app, list(args))
    finally:
        os.chdir(cwd)


def assert_failed_cleanly(result, folder: Path, output: str) -> None:
    assert result.exit_code in (1, 2), (result.exit_code, result.stderr, repr(result.exception))
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("normcli: error: "), result.stderr
    assert sum(line.startswith("normcli: error: ") for line in lines) == 1, result.stderr
    assert all(line.startswith("normcli: ") for line in lines), result.stderr
    assert "rerun with --debug" not in result.stderr, "an unexpected exception, not a reported error"
    assert not (folder / output).exists()
    assert not list(folder.glob(".*.normcli-tmp"))


def reference(x: np.ndarray) -> dict[str, float]:
    """mean/std/min/max in float64, scaled by a power of two first so squares cannot over- or
    underflow (numpy's own std of [0, 5e-215] is 0: the square underflows)."""
    exponent = math.frexp(float(np.max(np.abs(x))))[1] if np.any(x) else 0
    scaled = np.ldexp(x, -exponent)
    return {
        "mean": math.ldexp(float(scaled.mean()), exponent),
        "std": math.ldexp(float(scaled.std()), exponent),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def polars_name(name: str, csv_file: bool) -> str:
    """The name Polars gives a CSV header cell: it does not unescape "" inside a quoted header
    (a Polars bug: the header "q""uote" becomes the column 'q""uote', in fit and transform alike)."""
    return name.replace('"', '""') if csv_file else name


def check_statistics(doc: dict, table: list[Column]) -> None:
    by_name = {c.name: c for c in table}
    fitted = {c["name"]: c for c in doc["columns"]}
    assert len(by_name) == len(table), "fit succeeded on duplicate column names"
    assert "" not in fitted
    for name, got in fitted.items():
        column = by_name[name]
        assert column.numeric, f"fitted a {column.kind} column {name!r}"
        assert not column.has_infinity, f"fitted {name!r}, which holds an infinity"
        x = column.finite()
        assert got["count"] == len(x)
        ref = reference(x)
        spread = max(abs(ref["min"]), abs(ref["max"]))
        assert got["min"] == ref["min"] and got["max"] == ref["max"]
        assert abs(got["mean"] - ref["mean"]) <= 1e-12 * spread, (got["mean"], ref["mean"])
        assert abs(got["std"] - ref["std"]) <= 1e-9 * spread + 1e-300, (got["std"], ref["std"])
    for column in table:
        if column.numeric and len(column.finite()) and not column.has_infinity:
            assert column.name in fitted or any(
                s["name"] == column.name for s in doc["skipped_columns"]
            ), f"numeric column {column.name!r} neither fitted nor skipped"


def check_transformed(out: Path, doc: dict, table: list[Column], parquet: bool) -> None:
    frame = pl.read_parquet(out) if parquet else pl.read_csv(out, infer_schema=False)
    if not parquet:  # same columns in the same order; names by position (see polars_name)
        frame.columns = [c.name for c in table]
    by_name = {c.name: c for c in table}
    for fitted in doc["columns"]:
        x = by_name[fitted["name"]].finite()
        # the documented formula, in IEEE float64 (two-term centre, true division): bit for bit
        expected = ((x - fitted["center"]) - fitted["center_lo"]) / fitted["scale"]
        got = frame[fitted["name"]].cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
        np.testing.assert_array_equal(got, expected)


def fit_transform_inspect(data: bytes, table: list[Column], name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / name).write_bytes(data)
        fit = run(folder, "fit", name, "-o", "stats.json")
        event(f"fit exit {fit.exit_code}")
        if fit.exit_code != 0:
            assert_failed_cleanly(fit, folder, "stats.json")
            event(fit.stderr.splitlines()[-1].split(": ")[-1][:40] if fit.stderr else "")
            return
        doc = json.loads((folder / "stats.json").read_text())
        check_statistics(doc, table)
        target = "out.parquet" if name.endswith(".parquet") else "out.csv"
        transform = run(folder, "transform", name, "-s", "stats.json", "-o", target)
        event(f"transform exit {transform.exit_code}")
        if transform.exit_code != 0:
            assert_failed_cleanly(transform, folder, target)
        else:
            check_transformed(folder / target, doc, table, parquet=name.endswith(".parquet"))
        shown = run(folder, "inspect", "stats.json")
        assert shown.exit_code == 0, shown.stderr


@settings(settings.get_profile(PROFILE), max_examples=EXAMPLES)
@given(csv_files())
def test_random_csv_through_fit_transform_inspect(generated) -> None:
    data, table = generated
    fit_transform_inspect(data, table, "data.csv")


@settings(settings.get_profile(PROFILE), max_examples=EXAMPLES // 2)
@given(parquet_files())
def test_random_parquet_through_fit_transform_inspect(generated) -> None:
    data, table = generated
    fit_transform_inspect(data, table, "data.parquet")


# --------------------------------------------------------------------------- random stats documents


SAMPLE = b"a,b,c\n1,2,x\n3,5,y\n-4,7.5,z\n10,,w\n"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def stats_documents(draw) -> str:
    """A valid stats document (fitted on SAMPLE) with a few random edits, or random JSON text."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "s.csv").write_bytes(SAMPLE)
        method = draw(st.sampled_from(["standard", "minmax", "robust", "maxabs"]))
        result = run(Path(tmp), "fit", "s.csv", "--method", method, "-o", "-", "-q")
        doc = json.loads(result.stdout)
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return json.dumps(draw(json_values))
    if choice == 1:
        text = json.dumps(doc)
        return text[: draw(st.integers(0, len(text)))]
    for _ in range(draw(st.integers(1, 3))):
        targets = [doc, doc.get("options"), doc.get("inputs")]
        if isinstance(doc.get("columns"), list):
            targets += doc["columns"]
        where = draw(st.sampled_from([t for t in targets if isinstance(t, dict)]))
        key = draw(st.sampled_from(sorted(where) + ["extra"]))
        if draw(st.integers(0, 4)) == 0:
            where.pop(key, None)
        else:
            where[key] = draw(json_values | st.sampled_from([0, -1, 1e308, float("nan"), float("inf"), 2]))
    return json.dumps(doc, allow_nan=True)


@settings(settings.get_profile(PROFILE), max_examples=EXAMPLES // 2)
@given(stats_documents())
def test_random_stats_documents_through_transform(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "s.csv").write_bytes(SAMPLE)
        (folder / "stats.json").write_text(text)
        result = run(folder, "transform", "s.csv", "-s", "stats.json", "-o", "out.csv")
        event(f"transform exit {result.exit_code}")
        if result.exit_code != 0:
            assert_failed_cleanly(result, folder, "out.csv")
            return
        doc = json.loads(text)
        frame = pl.read_csv(folder / "out.csv", infer_schema=False)
        raw = pl.read_csv(io.BytesIO(SAMPLE), infer_schema=False)
        assert frame.columns == raw.columns
        for fitted in doc["columns"]:
            x = raw[fitted["name"]].cast(pl.Float64).to_numpy()
            expected = ((x - float(fitted["center"])) - float(fitted["center_lo"])) / float(fitted["scale"])
            got = frame[fitted["name"]].cast(pl.Float64).to_numpy()
            np.testing.assert_array_equal(got, expected)
        inspected = run(folder, "inspect", "stats.json")
        assert inspected.exit_code == 0, inspected.stderr
