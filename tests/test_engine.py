"""The exact statistics engine (issue "One exact statistics engine"), against independent references.

* Exactness: moments combine exactly, so the grouping and order of blocks and fragments cannot
  change a bit; checked against exact rational arithmetic (fractions.Fraction).
* One schema rule for several inputs: all-missing, Int + Float, absent columns, real conflicts.
* merge: shards with empty columns, overlap, and merge == fit byte for byte.
* transform numerics: the two-term centre, true division, near-constant columns, empty columns.
* streams: stdin and FIFOs read as they come, without a spool file, compressed or not.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import NORMCLI
from normcli.cli import app
from normcli.errors import DataError, UsageError
from normcli.scaling.exact import Dyadic, Moments, sqrt_correctly_rounded
from normcli.scaling.fit import fit
from normcli.scaling.fragments import BLOCK_ROWS, ColumnSpec, reblock, summarize
from normcli.scaling.merge import merge_stats
from normcli.scaling.methods import METHODS
from normcli.scaling.statsfile import SCHEMA_PATH, dumps_stats, load_stats, parse_stats, save_stats

runner = CliRunner()
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e150, max_value=1e150)


# --------------------------------------------------------------------------- exact arithmetic


@given(st.lists(finite, min_size=1, max_size=60), st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_moments_of_single_values_combine_to_the_exact_mean_and_m2(values, rng) -> None:
    """Each value its own block (shift = value, sums 0): any grouping gives the exact statistics."""
    singles = [Moments.of_block(1, v, 0.0, 0.0) for v in values]
    rng.shuffle(singles)
    # combine in a random tree shape
    while len(singles) > 1:
        i = rng.randrange(len(singles) - 1)
        singles[i : i + 2] = [singles[i].combine(singles[i + 1])]
    moments = singles[0]
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    m2 = sum((x - mean) ** 2 for x in exact)
    assert moments.count == len(values)
    assert moments.mean() == mean and moments.m2() == m2
    assert float(moments.mean()) == float(mean)  # correctly rounded, once


@given(st.floats(min_value=0, max_value=1e300, allow_nan=False), st.integers(1, 10**30))
@settings(max_examples=300, deadline=None)
def test_sqrt_is_correctly_rounded(value, divisor) -> None:
    exact = Fraction(value) / divisor
    got = sqrt_correctly_rounded(exact)
    # the nearest float: compare squares of the neighbours' midpoints exactly
    below, above = math.nextafter(got, 0), math.nextafter(got, math.inf)
    assert (Fraction(below) + Fraction(got)) ** 2 / 4 <= exact <= (Fraction(got) + Fraction(above)) ** 2 / 4
    if value and divisor == 1:
        assert got == math.sqrt(value)  # math.sqrt is correctly rounded for a float


@given(st.floats(min_value=1e150, max_value=1.7976931348623157e308, allow_nan=False), st.integers(1, 1000))
@settings(max_examples=300, deadline=None)
def test_sqrt_is_correctly_rounded_up_to_the_top_of_float64(value, divisor) -> None:
    """The std of values near ±1.7e308 raised OverflowError (the root, as an integer, did not fit a float)."""
    exact = Fraction(value) ** 2 / divisor
    got = sqrt_correctly_rounded(exact)
    below, above = math.nextafter(got, 0), math.nextafter(got, math.inf)
    upper = (Fraction(got) + Fraction(above)) ** 2 / 4 if math.isfinite(above) else exact
    assert (Fraction(below) + Fraction(got)) ** 2 / 4 <= exact <= upper
    if divisor == 1:
        assert got == value


@given(st.lists(finite, min_size=1, max_size=30))
def test_expansions_hold_the_exact_value(values) -> None:
    total = Dyadic.of(0.0)
    for v in values:
        total = total + Dyadic.of(v)
    assert Dyadic.from_expansion(total.expansion()).fraction() == total.fraction()


def test_blocks_are_fixed_whatever_the_frames_they_come_in() -> None:
    rng = np.random.default_rng(1)
    values = 1e12 + rng.normal(size=3 * BLOCK_ROWS + 17)
    frame = pl.DataFrame({"x": values})
    specs = [ColumnSpec("x", "Float64")]
    whole = summarize(reblock([frame], BLOCK_ROWS), specs)
    cuts = sorted(rng.choice(len(values), size=40, replace=False))
    pieces = [frame[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)])]
    pieced = summarize(reblock(pieces, BLOCK_ROWS), specs)
    assert whole.columns["x"] == pieced.columns["x"]
    fractions = [Fraction(v) for v in values]
    mean = sum(fractions) / len(fractions)
    # the engine's mean is the exact mean of the data to within the blocks' float rounding
    assert abs(whole.columns["x"].moments.mean() - mean) < Fraction(1, 10**15)


# --------------------------------------------------------------------------- one schema rule


def write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text)
    return str(folder / name)


def test_a_column_missing_in_one_file_takes_its_type_from_the_others(tmp_path: Path) -> None:
    a = write(tmp_path, "A.csv", "a,b\n0,0\n1,2\n2,4\n")
    b = write(tmp_path, "B.csv", "a,b\nNA,0\nNA,1\n")
    stats = fit([a, b])
    assert stats.names == ["a", "b"]
    column = stats.column("a")
    assert (column.count, column.null_count, column.mean, column.dtype) == (3, 2, 1.0, "Int64")


def test_integers_in_one_file_and_floats_in_another_are_floats(tmp_path: Path) -> None:
    a = write(tmp_path, "A.csv", "x\n1\n2\n")
    b = write(tmp_path, "B.csv", "x\n2.5\n4.5\n")
    column = fit([a, b]).column("x")
    assert column.dtype == "Float64" and column.mean == 2.5


def test_an_absent_column_names_the_file_unless_allowed(tmp_path: Path) -> None:
    a = write(tmp_path, "A.csv", "x,y\n1,5\n3,7\n")
    b = write(tmp_path, "B.csv", "x\n5\n")
    with pytest.raises(DataError) as error:
        fit([a, b])
    assert "B.csv: has no column 'y'" in error.value.one_line() and "--allow-missing-columns" in error.value.one_line()
    stats = fit([a, b], allow_missing_columns=True)
    assert (stats.column("y").count, stats.column("y").null_count) == (2, 1)
    assert stats.column("x").mean == 3.0


def test_numbers_in_one_file_and_words_in_another_name_file_column_and_line(tmp_path: Path) -> None:
    a = write(tmp_path, "A.csv", "x,y\n1,5\n3,7\n")
    b = write(tmp_path, "B.csv", "x,y\n4,1\nfour,2\n")
    with pytest.raises(DataError, match=r"B\.csv: column 'x' has the value 'four' at line 3.*holds numbers in .*A\.csv"):
        fit([a, b])


def test_a_column_empty_in_the_first_rows_and_numeric_later_is_fitted(tmp_path: Path) -> None:
    rows = ["x,y"] + [f"{i}," for i in range(12_000)] + [f"{i},{i}" for i in range(10)]
    path = write(tmp_path, "late.csv", "\n".join(rows) + "\n")
    column = fit([path]).column("y")
    assert (column.count, column.mean, column.dtype) == (10, 4.5, "Float64")


# --------------------------------------------------------------------------- merge


def test_merge_accepts_a_shard_where_a_column_has_no_values(tmp_path: Path) -> None:
    a = write(tmp_path, "A.csv", "a,b\n0,0\n1,2\n2,4\n")
    b = write(tmp_path, "B.csv", "a,b\nNA,0\nNA,1\n")
    shards = [fit([a]), fit([b])]
    assert any(s.name == "a" and s.has_no_values for s in shards[1].skipped)
    merged = merge_stats([parse_stats(dumps_stats(s)) for s in shards])
    assert dumps_stats(merged) == dumps_stats(fit([a, b]))


def test_merge_refuses_overlapping_shards_unless_allowed(tmp_path: Path) -> None:
    a = write(tmp_path, "A.csv", "x\n1\n2\n")
    one = fit([a])
    with pytest.raises(DataError, match="both list the input"):
        merge_stats([one, one])
    doubled = merge_stats([one, one], allow_overlap=True)
    assert dumps_stats(doubled) == dumps_stats(fit([a, a], allow_overlap=True))
    with pytest.raises(UsageError, match="given twice"):  # fit refuses the same file twice, as merge does
        fit([a, a])


def test_merge_cli_is_byte_identical_to_fit_of_the_union(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    for i in range(3):
        pl.DataFrame({"u": 1e12 + rng.normal(size=1000), "v": rng.integers(0, 9, 1000)}).write_csv(f"p{i}.csv")
        assert runner.invoke(app, ["fit", f"p{i}.csv", "-o", f"p{i}.json", "--method-for", "v=maxabs", "-q"]).exit_code == 0
    merged = runner.invoke(app, ["merge", "p0.json", "p1.json", "p2.json", "-o", "-"])
    together = runner.invoke(app, ["fit", "p0.csv", "p1.csv", "p2.csv", "--method-for", "v=maxabs", "-o", "-", "-q"])
    assert merged.exit_code == 0 and merged.stdout == together.stdout
    again = runner.invoke(app, ["merge", "p0.json", "p0.json", "-o", "-"])
    assert again.exit_code == 1 and "--allow-overlap" in again.stderr


def test_version_1_files_still_load_and_merge(tmp_path: Path) -> None:
    v1 = {
        "format": "normcli-stats", "version": 1, "inputs": {"files": ["a.csv"], "row_count": 4},
        "options": {"default_method": "standard", "ddof": 0, "feature_range": [0.0, 1.0], "null_values": ["NA"]},
        "skipped_columns": [],
        "columns": [{
            "name": "x", "dtype": "Int64", "method": "standard", "count": 4, "null_count": 0, "nan_count": 0,
            "mean": 2.5, "m2": 5.0, "std": 1.118033988749895, "min": 1.0, "max": 4.0, "shift": 2.0,
            "shifted_sum": 2.0, "center": 2.5, "scale": 1.118033988749895,
        }],
    }
    first = parse_stats(json.dumps(v1))
    assert first.column("x").moments.mean() == Fraction(5, 2) and first.column("x").moments.m2() == 5
    v1["inputs"]["files"] = ["b.csv"]
    merged = merge_stats([first, parse_stats(json.dumps(v1))])
    assert merged.column("x").count == 8 and merged.column("x").std == 1.118033988749895


def test_schema_lists_exactly_the_methods_of_the_registry() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$defs"]["method"]["enum"] == list(METHODS)
    for name, method in METHODS.items():
        condition = next((c for c in schema["$defs"]["column"]["allOf"] if c["if"]["properties"]["method"]["const"] == name), None)
        required = condition["then"]["required"] if condition else []
        assert sorted(required) == sorted(method.fields), name


# --------------------------------------------------------------------------- transform numerics


def transformed(tmp_path: Path, values: np.ndarray, method: str = "standard") -> tuple[np.ndarray, dict]:
    data = tmp_path / "x.parquet"
    pl.DataFrame({"x": values}).write_parquet(data)
    stats_path = tmp_path / "s.json"
    save_stats(fit([str(data)], method=method), str(stats_path))
    out = tmp_path / "out.parquet"
    from normcli.scaling.apply import transform

    transform([str(data)], stats=stats_path, output=str(out))
    return pl.read_parquet(out)["x"].to_numpy(), json.loads(stats_path.read_text())["columns"][0]


def test_a_large_offset_column_transforms_to_mean_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    values = 1e12 + rng.normal(size=200_000)
    out, column = transformed(tmp_path, values)
    exact = [Fraction(v) for v in out]
    assert abs(float(sum(exact) / len(exact))) < 1e-15  # a one-term centre gives about 2e-5
    assert column["center_lo"] != 0.0


@pytest.mark.parametrize("method", ["standard", "minmax", "maxabs", "robust"])
def test_transform_divides_correctly_rounded(tmp_path: Path, method: str) -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=1000) * 37.3 + 3.1
    out, c = transformed(tmp_path, values, method)
    expected = ((values - c["center"]) - c["center_lo"]) / c["scale"]  # IEEE division, as documented
    np.testing.assert_array_equal(out, expected)
    if method == "maxabs":
        np.testing.assert_array_equal(out, values / c["max_abs"])


def test_a_near_constant_column_gets_scale_one_like_scikit_learn(tmp_path: Path) -> None:
    from sklearn.preprocessing import StandardScaler

    values = np.array([1.0, 0.9999999999999999, 1.0, 0.9999999999999999])
    out, column = transformed(tmp_path, values)
    assert column["scale"] == 1.0
    expected = StandardScaler().fit_transform(values.reshape(-1, 1)).ravel()
    np.testing.assert_allclose(out, expected, atol=1e-15)


def test_a_fitted_column_empty_in_new_data_transforms_to_nulls(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "train.csv", "a,b\n1,2\n3,4\n")
    write(tmp_path, "new.csv", "a,b\n,1\n,2\n")
    assert runner.invoke(app, ["fit", "train.csv", "-o", "s.json", "-q"]).exit_code == 0
    result = runner.invoke(app, ["transform", "new.csv", "-s", "s.json", "-o", "out.parquet"])
    assert result.exit_code == 0, result.stderr
    assert "column 'a' has no values" in result.stderr
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out.schema["a"] == pl.Float64 and out["a"].null_count() == 2
    assert out["b"].to_list() == [-2.0, -1.0]  # fitted on 2, 4: mean 3, std 1


# --------------------------------------------------------------------------- streams


def csv_bytes(rows: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({"i": np.arange(rows), "x": rng.normal(size=rows), "w": rng.choice(["p", "q,r", 'say "hi"'], rows)})
    return frame.write_csv().encode()


def fit_doc(args: list[str], stdin: bytes | None = None, cwd: Path | None = None) -> dict:
    done = subprocess.run([*NORMCLI, "fit", *args, "-o", "-", "-q"], input=stdin, capture_output=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    doc["inputs"].pop("files")
    return doc


def test_a_pipe_gives_the_same_stats_as_the_file(tmp_path: Path) -> None:
    data = csv_bytes(150_000)
    (tmp_path / "d.csv").write_bytes(data)
    assert fit_doc(["-"], data) == fit_doc([str(tmp_path / "d.csv")])


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_pipes_are_read_as_they_come(tmp_path: Path, compression: str) -> None:
    import pyarrow as pa

    data = csv_bytes(20_000)
    (tmp_path / "d.csv").write_bytes(data)
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, compression) as stream:
        stream.write(data)
    assert fit_doc(["-"], sink.getvalue().to_pybytes()) == fit_doc([str(tmp_path / "d.csv")])


def test_a_stream_that_ends_mid_row_reads_like_the_file(tmp_path: Path) -> None:
    data = b"a,b\n1,2\n3,4\n5"
    (tmp_path / "d.csv").write_bytes(data)
    assert fit_doc(["-"], data) == fit_doc([str(tmp_path / "d.csv")])
    assert fit_doc(["-"], data)["columns"][1]["count"] == 2


def test_integers_then_a_decimal_far_down_a_pipe(tmp_path: Path) -> None:
    values = np.arange(600_000, dtype=np.float64)
    values[499_999] = 0.5
    text = "x\n" + "\n".join(str(int(v)) if v.is_integer() else repr(float(v)) for v in values) + "\n"
    doc = fit_doc(["-"], text.encode())
    assert doc["columns"][0]["mean"] == float(sum(Fraction(v) for v in values) / len(values))


def test_a_fifo_and_dev_stdin_are_read_as_streams(tmp_path: Path) -> None:
    data = csv_bytes(5000)
    (tmp_path / "d.csv").write_bytes(data)
    expected = fit_doc([str(tmp_path / "d.csv")])
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    assert fit_doc([str(fifo)]) == expected
    writer.join()
    assert fit_doc(["/dev/stdin"], data) == expected


def test_transform_writes_rows_before_its_input_ends_and_spools_nothing(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(csv_bytes(1000))
    assert subprocess.run([*NORMCLI, "fit", "d.csv", "-o", "s.json", "-q"], cwd=tmp_path).returncode == 0
    spool = tmp_path / "tmp"
    spool.mkdir()
    process = subprocess.Popen(
        [*NORMCLI, "transform", "-s", "s.json"], cwd=tmp_path, env={**os.environ, "TMPDIR": str(spool)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    first, second = csv_bytes(400_000), csv_bytes(100_000, seed=1).split(b"\n", 1)[1]
    more = threading.Event()

    def feed() -> None:
        process.stdin.write(first)  # about 12 MiB: more than one chunk
        process.stdin.flush()
        more.wait(timeout=120)  # the input stays open until the test has seen output
        process.stdin.write(second)
        process.stdin.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    header = process.stdout.readline()
    assert header == b"i,x,w\n"  # out while the input is still open
    assert list(spool.iterdir()) == []  # and no spool file in $TMPDIR
    more.set()
    rest = process.stdout.read()
    feeder.join()
    assert process.wait(timeout=60) == 0, process.stderr.read()
    assert rest.count(b"\n") == 500_000


def test_fit_warns_about_columns_that_look_like_row_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "ids.parquet"
    pl.DataFrame({
        "shuffled_rows": rng.permutation(500),            # 0..499 each once: a row number
        "order_id": rng.integers(0, 10**9, 500),          # named like an id
        "gaps": np.sort(rng.choice(2000, 500, replace=False)),  # distinct, but not consecutive
        "doubled": np.arange(500) * 2,                     # distinct and regular, not a range
        "x": rng.normal(size=500),
    }).write_parquet(path)
    warned = {w.split("'")[1] for w in fit([str(path)]).warnings if "row identifier" in w}
    assert warned == {"shuffled_rows", "order_id"}


# --------------------------------------------------------------------------- never a stats file the loader refuses (issue 10, #14)


EXTREMES = [
    ([1e-300, 2e-300, 3e-300], (0.0, 1.0)),
    ([0.0, 1.0, 2.0], (-1e307, 1e307)),
    ([0.0, 1e-300], (0.0, 1e300)),
    ([1e300, 1.7e308, -1.7e308], (0.0, 1.0)),
    ([5e-324, 1e-323, 0.0], (1e300, 1.5e300)),
    ([1.0, 1.0 + 2**-52], (0.0, 1e-300)),
]


@pytest.mark.parametrize(("values", "feature_range"), EXTREMES)
@pytest.mark.parametrize("method", ["standard", "minmax", "maxabs", "robust"])
def test_fit_writes_only_stats_that_load_and_transform(tmp_path: Path, values, feature_range, method: str) -> None:
    """minmax with --feature-range=-1e308,1e308 used to write scale 0, which transform refused:
    a fit either fails with one clear error or writes a file that loads and applies."""
    src = write(tmp_path, "x.csv", "a\n" + "\n".join(repr(v) for v in values) + "\n")
    try:
        stats = fit([src], method=method, feature_range=feature_range)
    except (DataError, UsageError) as exc:
        assert exc.one_line() and "scale" in exc.one_line() or "--feature-range" in exc.one_line()
        return
    path = tmp_path / "s.json"
    save_stats(stats, str(path))
    column = load_stats(path).column("a")
    assert column.scale > 0 and math.isfinite(column.scale) and math.isfinite(column.center)
    out = tmp_path / "out.parquet"
    from normcli.scaling.apply import transform

    transform([src], stats=path, output=str(out))
    assert pl.read_parquet(out)["a"].len() == len(values)


def test_merge_of_shards_near_1e200_equals_the_fit_of_their_union(tmp_path: Path) -> None:
    """The merge of ±1e200 shards used to raise ValueError where one fit of the same rows worked."""
    a = write(tmp_path, "a.csv", "a\n1e200\n-1e200\n")
    b = write(tmp_path, "b.csv", "a\n-1e200\n1e200\n3\n")
    for method in ("standard", "minmax", "maxabs"):
        merged = merge_stats([parse_stats(dumps_stats(fit([p], method=method))) for p in (a, b)])
        assert dumps_stats(merged) == dumps_stats(fit([a, b], method=method))
        values = np.array([1e200, -1e200, -1e200, 1e200, 3])
        # within float64's precision at the column's magnitude (block sums around a block's mean
        # lose the low bits of 1e200 − 1, as any float64 sum does)
        assert merged.column("a").mean == pytest.approx(values.mean(), abs=1e-15 * 1e200)
        assert merged.column("a").std == pytest.approx((values / 1e100).std() * 1e100, rel=1e-15)  # squares overflow
