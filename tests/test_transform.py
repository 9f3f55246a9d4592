"""transform: the affine map, pass-through columns, nulls/NaN, inverse, clip and output formats."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from normcli.errors import DataError, UsageError
from normcli.scaling.fit import fit
from normcli.scaling.statsfile import load_stats, save_stats
from normcli.scaling.apply import apply_stats, transform


@pytest.fixture
def fitted(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "train.csv"
    data.write_text(
        "id,x,y,city\n"
        "a1,1.5,10,Oslo\n"
        "a2,2.5,NA,Rome\n"
        "a3,,30,\"Lima, Peru\"\n"
        "a4,4.0,40,Kyiv\n"
    )
    stats = tmp_path / "stats.json"
    save_stats(fit([str(data)], method_for={"y": "minmax"}), str(stats))
    return data, stats


def test_scaled_values_match_numpy_and_other_columns_pass_through(fitted, tmp_path: Path) -> None:
    data, stats_path = fitted
    stats = load_stats(stats_path)
    out = tmp_path / "out.csv"
    transform([str(data)], stats=stats_path, output=str(out))
    result = pl.read_csv(out)
    assert result.columns == ["id", "x", "y", "city"]
    x = np.array([1.5, 2.5, 4.0])
    expected_x = (x - x.mean()) / x.std()
    np.testing.assert_allclose(result["x"].drop_nulls().to_numpy(), expected_x, rtol=1e-15)
    assert result["x"].is_null().to_list() == [False, False, True, False]
    np.testing.assert_allclose(result["y"].drop_nulls().to_numpy(), [0.0, 2 / 3, 1.0], rtol=1e-15)
    assert result["y"].null_count() == 1
    # text passes through exactly, quoting included
    assert out.read_text().splitlines()[3].endswith('"Lima, Peru"')
    assert result["id"].to_list() == ["a1", "a2", "a3", "a4"]
    assert stats.column("x").center == pytest.approx(x.mean(), rel=1e-15)


def test_inverse_round_trips_to_1e12(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pl.DataFrame({"a": rng.normal(1e6, 1e3, 2000), "b": rng.lognormal(0, 3, 2000), "c": rng.uniform(-5, 5, 2000)})
    src = tmp_path / "src.parquet"
    frame.write_parquet(src)
    for method in ("standard", "minmax", "robust", "maxabs"):
        stats = tmp_path / f"{method}.json"
        save_stats(fit([str(src)], method=method), str(stats))
        forward, back = tmp_path / f"{method}.parquet", tmp_path / f"{method}-back.parquet"
        transform([str(src)], stats=stats, output=str(forward))
        transform([str(forward)], stats=stats, output=str(back), inverse=True)
        restored = pl.read_parquet(back)
        for name in frame.columns:
            original = frame[name].to_numpy()
            # affine maps cancel digits of values much smaller than the center: the error bound is
            # relative to the column's magnitude, not to each tiny value
            np.testing.assert_allclose(
                restored[name].to_numpy(), original, rtol=1e-12, atol=1e-12 * np.abs(original).max()
            )


def test_nan_stays_nan_and_null_stays_null(tmp_path: Path) -> None:
    src = tmp_path / "n.parquet"
    pl.DataFrame({"v": [1.0, float("nan"), None, 3.0]}).write_parquet(src)
    stats = tmp_path / "s.json"
    save_stats(fit([str(src)]), str(stats))
    out = tmp_path / "o.parquet"
    transform([str(src)], stats=stats, output=str(out))
    v = pl.read_parquet(out)["v"]
    assert v[0] == -1.0 and v[3] == 1.0
    assert np.isnan(v[1]) and v[2] is None


def test_clip_limits_minmax_output_to_the_feature_range(tmp_path: Path) -> None:
    train, new = tmp_path / "train.csv", tmp_path / "new.csv"
    train.write_text("v\n0\n10\n")
    new.write_text("v\n-5\n5\n20\n")
    stats = tmp_path / "s.json"
    save_stats(fit([str(train)], method="minmax", feature_range=(-1.0, 1.0)), str(stats))
    out = tmp_path / "o.csv"
    transform([str(new)], stats=stats, output=str(out))
    assert pl.read_csv(out)["v"].to_list() == [-2.0, 0.0, 3.0]
    transform([str(new)], stats=stats, output=str(out), clip=True)
    assert pl.read_csv(out)["v"].to_list() == [-1.0, 0.0, 1.0]
    with pytest.raises(UsageError):
        transform([str(new)], stats=stats, output=str(out), clip=True, inverse=True)


def test_float32_and_output_formats(fitted, tmp_path: Path) -> None:
    data, stats = fitted
    for name, reader in (("o.parquet", pl.read_parquet), ("o.ndjson", pl.read_ndjson), ("o.tsv", lambda p: pl.read_csv(p, separator="\t")), ("o.csv.gz", pl.read_csv)):
        out = tmp_path / name
        transform([str(data)], stats=stats, output=str(out), float32=name.endswith("parquet"))
        result = reader(out)
        assert result.columns == ["id", "x", "y", "city"]
        if name.endswith("parquet"):
            assert result.schema["x"] == pl.Float32


def test_stdin_to_stdout(fitted) -> None:
    data, stats = fitted
    out = io.BytesIO()
    transform([], stats=stats, stdin=io.BytesIO(data.read_bytes()), stdout=out)
    result = pl.read_csv(io.BytesIO(out.getvalue()))
    assert result.columns == ["id", "x", "y", "city"] and result.height == 4


def test_missing_or_non_numeric_fitted_columns_are_named(fitted, tmp_path: Path) -> None:
    _, stats = fitted
    missing = tmp_path / "missing.csv"
    missing.write_text("id,y\na,1\n")
    with pytest.raises(DataError, match="'x'.*not found"):
        transform([str(missing)], stats=stats, output=str(tmp_path / "o.csv"))
    text = tmp_path / "text.csv"
    text.write_text("id,x,y\na,hello,1\n")
    with pytest.raises(DataError, match="column 'x' is String now but was fitted as Float64"):
        transform([str(text)], stats=stats, output=str(tmp_path / "o.csv"))
    assert not (tmp_path / "o.csv").exists()


def test_refuses_to_overwrite_an_input(fitted) -> None:
    data, stats = fitted
    before = data.read_bytes()
    with pytest.raises(UsageError, match="one of the inputs"):
        transform([str(data)], stats=stats, output=str(data))
    assert data.read_bytes() == before


def test_apply_stats_is_lazy_and_usable_from_python(fitted) -> None:
    data, stats_path = fitted
    frame = apply_stats(pl.scan_csv(data, null_values=["NA"]), load_stats(stats_path))
    assert isinstance(frame, pl.LazyFrame)
    assert frame.collect()["x"].drop_nulls().mean() == pytest.approx(0.0, abs=1e-15)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=arrays(np.float64, st.tuples(st.integers(2, 40), st.integers(1, 4)), elements=finite),
    method=st.sampled_from(["standard", "minmax"]),
    low=st.floats(-10, 9, allow_nan=False),
    width=st.floats(0.5, 10, allow_nan=False),
)
def test_property_fit_then_transform_standardizes(tmp_path_factory, data, method, low, width) -> None:
    """On any numeric frame: mean 0 and std 1 (standard) or exactly [low, high] (minmax)."""
    folder = tmp_path_factory.mktemp("prop")
    src = folder / "d.parquet"
    frame = pl.DataFrame(data, schema=[f"c{i}" for i in range(data.shape[1])], orient="row")
    frame.write_parquet(src)
    high = low + width
    stats = fit([str(src)], method=method, feature_range=(low, high))
    out = folder / "o.parquet"
    transform([str(src)], stats=stats, output=str(out))
    result = pl.read_parquet(out)
    for i, name in enumerate(frame.columns):
        column, values = data[:, i], result[name].to_numpy()
        spread = column.max() - column.min()
        if spread <= 1e-9 * max(1.0, np.abs(column).max()):
            continue  # (near-)constant: scale 1 by design, checked elsewhere
        if method == "standard":
            assert abs(values.mean()) <= 1e-9 * max(1.0, np.abs(values).max())
            assert values.std() == pytest.approx(1.0, rel=1e-9)
        else:
            assert values.min() == pytest.approx(low, abs=1e-9 * max(1, abs(low)))
            assert values.max() == pytest.approx(high, abs=1e-9 * max(1, abs(high)))


@pytest.mark.parametrize("method", ["standard", "minmax", "robust", "maxabs"])
@pytest.mark.parametrize("output", ["back.parquet", "back.csv", "back.ndjson"])
def test_inverse_restores_the_fitted_integer_type(tmp_path: Path, method: str, output: str) -> None:
    """2007 comes back as 2007 (Int64), not 2007.0: every value scales back exactly to its integer."""
    rng = np.random.default_rng(7)
    years = rng.integers(1900, 2100, 5000)
    big = rng.integers(-(2**52), 2**52, 5000)
    frame = pl.DataFrame({"year": years, "big": big, "x": rng.normal(size=5000), "id": np.arange(5000)})
    frame.write_csv(tmp_path / "src.csv")
    stats = tmp_path / "s.json"
    save_stats(fit([str(tmp_path / "src.csv")], method=method, exclude=["id"]), str(stats))
    transform([str(tmp_path / "src.csv")], stats=stats, output=str(tmp_path / "scaled.parquet"))
    report = transform([str(tmp_path / "scaled.parquet")], stats=stats, output=str(tmp_path / output), inverse=True)
    assert report.notes == []
    back = {"back.parquet": pl.read_parquet, "back.csv": pl.read_csv, "back.ndjson": pl.read_ndjson}[output](tmp_path / output)
    assert (back["year"].dtype, back["big"].dtype, back["x"].dtype) == (pl.Int64, pl.Int64, pl.Float64)
    assert back["year"].to_list() == years.tolist() and back["big"].to_list() == big.tolist()


def test_inverse_keeps_floats_and_says_so_when_a_value_is_not_an_integer(tmp_path: Path) -> None:
    (tmp_path / "src.csv").write_text("year,n\n2007,1\n1999,2\n2021,3\n")
    stats = tmp_path / "s.json"
    save_stats(fit([str(tmp_path / "src.csv")]), str(stats))
    transform([str(tmp_path / "src.csv")], stats=stats, output=str(tmp_path / "scaled.csv"))
    scaled = pl.read_csv(tmp_path / "scaled.csv").with_columns(pl.col("year") + pl.Series([1e-3, 0.0, 0.0]))
    scaled.write_csv(tmp_path / "edited.csv")  # someone rounded or edited one scaled value
    report = transform([str(tmp_path / "edited.csv")], stats=stats, output=str(tmp_path / "back.csv"), inverse=True)
    assert report.notes == ["column 'year' was fitted as integers, but 1 restored value is not exactly an integer: written as floats"]
    back = pl.read_csv(tmp_path / "back.csv")
    assert back["year"].dtype == pl.Float64 and back["n"].dtype == pl.Int64
    assert back["year"][1:].to_list() == [1999.0, 2021.0] and back["year"][0] != 2007.0


def test_inverse_from_a_pipe_restores_integers_chunk_by_chunk(tmp_path: Path) -> None:
    (tmp_path / "src.csv").write_text("year,n\n2007,1\n1999,2\n2021,3\n")
    stats = tmp_path / "s.json"
    save_stats(fit([str(tmp_path / "src.csv")]), str(stats))
    transform([str(tmp_path / "src.csv")], stats=stats, output=str(tmp_path / "scaled.csv"))
    out = io.BytesIO()
    report = transform([], stats=stats, inverse=True, stdin=io.BytesIO((tmp_path / "scaled.csv").read_bytes()), stdout=out)
    assert out.getvalue() == b"year,n\n2007,1\n1999,2\n2021,3\n" and report.notes == []
    parquet = io.BytesIO()
    report = transform(
        [], stats=stats, inverse=True, output_format_name="parquet", stdin=io.BytesIO((tmp_path / "scaled.csv").read_bytes()), stdout=parquet
    )
    assert pl.read_parquet(io.BytesIO(parquet.getvalue()))["year"].to_list() == [2007.0, 1999.0, 2021.0]
    assert report.notes == ["columns fitted as integers ('year', 'n') are written as floats: Parquet from a stream cannot be checked before it is written (transform a file to restore them)"]


# --------------------------------------------------------------------------- null tokens and pass-through text


PASS_THROUGH = (
    'country,x,note,code\n'
    'NA,1,null,007\n'
    'DE,2,"a, b",NA\n'
    'NaN,NA,N/A,1\n'
    ',4,"",null\n'
    'N/A,5,NULL, 2\n'
)
"""Country codes, words and codes that look like null tokens; x is the only fitted column."""


def cells(text: str, column: str) -> list[str]:
    """The cells of ``column`` as text, by Python's csv module (an independent reader)."""
    import csv

    rows = list(csv.reader(io.StringIO(text)))
    index = rows[0].index(column)
    return [row[index] for row in rows[1:]]


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_null_tokens_apply_to_fitted_columns_only(tmp_path: Path, via: str) -> None:
    """Namibia's code NA, the word null and a code 007 pass through as written (they used to be
    emptied); NA in the fitted column x is missing."""
    src = tmp_path / "in.csv"
    src.write_text(PASS_THROUGH)
    stats = fit([str(src)], columns=["x"])
    out = io.BytesIO()
    if via == "file":
        transform([str(src)], stats=stats, output=str(tmp_path / "out.csv"))
        written = (tmp_path / "out.csv").read_text()
    else:
        transform([], stats=stats, stdin=io.BytesIO(src.read_bytes()), stdout=out)
        written = out.getvalue().decode()
    for column in ("country", "note", "code"):
        assert cells(written, column) == cells(PASS_THROUGH, column)
    x = np.array([1, 2, 4, 5], dtype=float)
    scaled = cells(written, "x")
    assert scaled[2] == ""
    np.testing.assert_array_equal([float(v) for v in scaled if v], (x - x.mean()) / x.std())


@pytest.mark.parametrize("name", ["out.parquet", "out.ndjson"])
def test_text_stays_text_and_typed_columns_read_tokens_in_typed_outputs(tmp_path: Path, name: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text("country,x,n,flag\nNA,1,5,true\nDE,2,NA,False\nnull,3,7,NA\n")
    stats = fit([str(src)], columns=["x"])
    transform([str(src)], stats=stats, output=str(tmp_path / name))
    result = pl.read_parquet(tmp_path / name) if name.endswith("parquet") else pl.read_ndjson(tmp_path / name)
    assert result["country"].to_list() == ["NA", "DE", "null"]
    assert result["n"].to_list() == [5, None, 7] and result.schema["n"] == pl.Int64
    assert result["flag"].to_list() == [True, False, None] and result.schema["flag"] == pl.Boolean


FLOAT_CELLS = [
    "1", "-2", "+5", ".5", "5.", "1e5", "1E+05", "1e-400", "1e400", "007", "-0", "0.1e1", "4.9e-324",
    "inf", "-inf", "+inf", "Inf", "INF", "infinity", "-Infinity", "nan", "NaN", "NAN", "-nan",
    " 5", "\t5", "  -5", " 1e5", " inf", "", " ", "\t", '""', '" 5"', '"3"',
]
"""Cells the CSV reader parses as Float64 (or reads as missing): transform must read each the same."""
TOKENS = ["NA", "N/A", "null", "NULL", '"NA"']

BAD_CELLS = ["5 ", " NA", "NA ", "1_000", "0x10", '"1,5"', "1d5", "e5", "-", ".", "1..2", "٣", "- 5", "\u00a05"]


@pytest.mark.parametrize("via", ["file", "stdin"])
@pytest.mark.parametrize("null_values", [("NA", "N/A", "NaN", "nan", "null", "NULL"), ()])
def test_transform_reads_numbers_as_polars_csv_reader_does(tmp_path: Path, null_values, via: str) -> None:
    """transform reads a file as text and parses the fitted columns itself (so that text columns
    keep null tokens): each cell must come out as Polars' own reader parses it for fit."""
    cases = ["1.5"] * 10_000 + FLOAT_CELLS + (TOKENS if null_values else [])  # past the rows that infer types
    body = "x,keep\n" + "".join(f"{cell},k{i}\n" for i, cell in enumerate(cases))
    src = tmp_path / "cells.csv"
    src.write_bytes(body.encode())
    reference = pl.read_csv(src, schema={"x": pl.Float64, "keep": pl.String}, null_values=list(null_values) or None)["x"]
    stats = _stats_of_x(tmp_path, null_values)
    if via == "file":
        transform([str(src)], stats=stats, output=str(tmp_path / "out.parquet"))
        got = pl.read_parquet(tmp_path / "out.parquet")["x"]
    else:
        out = io.BytesIO()
        transform([], stats=stats, stdin=io.BytesIO(src.read_bytes()), stdout=out, output_format_name="parquet")
        got = pl.read_parquet(out.getvalue())["x"]
    column = stats.column("x")
    assert got.is_null().to_list() == reference.is_null().to_list()
    expected = ((reference.drop_nulls().to_numpy() - column.center) - column.center_lo) / column.scale  # IEEE division
    np.testing.assert_array_equal(got.drop_nulls().to_numpy(), expected)


@pytest.mark.parametrize("cell", BAD_CELLS)
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_a_cell_the_reader_refuses_is_named_with_its_line(tmp_path: Path, cell: str, via: str) -> None:
    rows = [f"{i}.5" for i in range(12_000)]  # past the rows that decide the column's type
    rows[11_000] = cell
    src = tmp_path / "bad.csv"
    src.write_bytes(("x\n" + "\n".join(rows) + "\n").encode())
    with pytest.raises(pl.exceptions.ComputeError):
        pl.read_csv(src, schema={"x": pl.Float64}, null_values=["NA"])  # Polars' reader refuses it too
    stats = _stats_of_x(tmp_path)
    expected = cell.strip('"') if cell.startswith('"') else cell
    with pytest.raises(DataError) as caught:
        if via == "file":
            transform([str(src)], stats=stats, output=str(tmp_path / "out.csv"))
        else:
            transform([], stats=stats, stdin=io.BytesIO(src.read_bytes()), stdout=io.BytesIO())
    assert f"has the value '{expected}' at line 11002" in caught.value.message
    assert not (tmp_path / "out.csv").exists()


def _stats_of_x(folder: Path, null_values=("NA",)):
    """Stats of a column x fitted on a clean file (the cells under test make x text when inferred)."""
    (folder / "good.csv").write_text("x\n1\n2\n4\n")
    return fit([str(folder / "good.csv")], null_values=null_values)


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_predict_passes_kept_text_columns_through(tmp_path: Path, via: str) -> None:
    """predict --keep writes kept columns as they are: a country code NA used to come out empty.
    Features still read null tokens as missing, as in training."""
    from typer.testing import CliRunner

    from normcli.cli import app

    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=200), rng.normal(size=200)
    codes = ["NA", "null", "N/A", "DE"] * 50
    frame = pl.DataFrame({"country": codes, "x1": x1, "x2": x2, "y": (x1 + x2 > 0).astype(int)})
    frame.write_csv(tmp_path / "c.csv")
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(tmp_path / "c.csv"), "--target", "y", "--exclude", "country", "--epochs", "2", "-o", str(tmp_path / "m.npz"), "-q"])
    assert trained.exit_code == 0, trained.stderr
    args = ["predict", "--model", str(tmp_path / "m.npz"), "--keep", "country", "-q"]
    if via == "file":
        result = runner.invoke(app, [*args, str(tmp_path / "c.csv")])
    else:
        result = runner.invoke(app, args, input=(tmp_path / "c.csv").read_bytes())
    assert result.exit_code == 0, result.stderr
    assert cells(result.stdout, "country") == codes
