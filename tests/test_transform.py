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
