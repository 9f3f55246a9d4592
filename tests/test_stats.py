"""fit's numerics against independent references: numpy two-pass, math.fsum and scikit-learn."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from normcli.errors import DataError, UsageError
from normcli.scaling.fit import fit
from normcli.scaling.statsfile import SCHEMA_PATH, dumps_stats, load_stats, parse_stats, save_stats

RTOL = 1e-12


def fsum_mean_std(values: np.ndarray, ddof: int = 0) -> tuple[float, float]:
    """Reference mean and std: corrected two-pass with exactly rounded sums (math.fsum).

    The plain two-pass Σ(x − m)² is *not* accurate enough at 1e12 + N(0,1): the float64 mean m
    is off by up to half an ulp (6e-5), which adds n·δ² and biases the std by ~1e-9 relative.
    Subtracting (Σ(x − m))²/n removes that term (Björck's corrected two-pass); the result agrees
    with exact rational arithmetic (statistics.pstdev), checked in a test below.
    """
    xs = [float(v) for v in values]
    n = len(xs)
    mean = math.fsum(xs) / n
    deviations = [x - mean for x in xs]
    s1 = math.fsum(deviations)
    m2 = math.fsum(d * d for d in deviations) - s1 * s1 / n
    return mean + s1 / n, math.sqrt(m2 / (n - ddof))


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


@pytest.fixture
def mixed_csv(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    n = 20_000
    data = {
        "small": rng.normal(0.001, 1e-4, n),
        "wide": rng.normal(5e6, 3e5, n),
        "offset_1e12": 1e12 + rng.normal(0, 1, n),
        "offset_1e9": 1e9 + rng.normal(0, 1, n),
        "ints": rng.integers(-1000, 1000, n).astype(np.int64),
        "skewed": rng.lognormal(0, 2, n),
    }
    path = tmp_path / "mixed.csv"
    frame = pl.DataFrame(data).with_columns(pl.Series("label", ["a", "b"] * (n // 2)))
    frame.write_csv(path, float_precision=None)
    # the values as float64 exactly as the CSV holds them (what any reader of the file sees)
    return path, {k: pl.read_csv(path)[k].cast(pl.Float64).to_numpy() for k in data}


def test_standard_matches_fsum_reference_including_1e12_offset(mixed_csv) -> None:
    path, columns = mixed_csv
    stats = fit([str(path)])
    assert stats.row_count == 20_000
    assert [s.name for s in stats.skipped] == ["label"]
    for name, values in columns.items():
        mean, std = fsum_mean_std(values)
        column = stats.column(name)
        assert rel(column.mean, mean) <= RTOL, name
        assert rel(column.std, std) <= RTOL, name
        assert column.min == values.min() and column.max == values.max()
        assert column.count == len(values)
        assert (column.center, column.scale) == (column.mean, column.std)


def test_reference_agrees_with_exact_rational_arithmetic(mixed_csv) -> None:
    import statistics

    _, columns = mixed_csv
    values = columns["offset_1e12"][:5000]
    mean, std = fsum_mean_std(values)
    assert rel(std, statistics.pstdev(values.tolist())) <= 1e-15
    assert rel(mean, float(statistics.mean(values.tolist()))) <= 1e-15


def test_plain_polars_variance_loses_digits_where_fit_does_not(mixed_csv) -> None:
    """The motivating case: the naive one-pass formula is far off on 1e12 + N(0,1)."""
    path, columns = mixed_csv
    values = columns["offset_1e12"]
    _, std = fsum_mean_std(values)
    n = len(values)
    naive = math.sqrt(max((np.sum(values**2) - np.sum(values) ** 2 / n) / n, 0.0))
    assert rel(naive, std) > 1e-6  # the failure fit avoids
    assert rel(fit([str(path)], columns=["offset_1e12"]).column("offset_1e12").std, std) <= RTOL


def test_ddof_one_matches_reference(mixed_csv) -> None:
    path, columns = mixed_csv
    stats = fit([str(path)], ddof=1)
    for name, values in columns.items():
        assert rel(stats.column(name).std, fsum_mean_std(values, ddof=1)[1]) <= RTOL, name


def test_sorted_column_far_from_first_rows_stays_exact(tmp_path: Path) -> None:
    """A sorted column makes the first rows a bad pivot; fit re-sums around the mean."""
    values = np.sort(np.random.default_rng(3).normal(1e8, 1e3, 50_000))
    path = tmp_path / "sorted.csv"
    pl.DataFrame({"t": values}).write_csv(path)
    values = pl.read_csv(path)["t"].to_numpy()
    mean, std = fsum_mean_std(values)
    column = fit([str(path)]).column("t")
    assert rel(column.mean, mean) <= RTOL
    assert rel(column.std, std) <= RTOL


def test_values_near_1e300_give_a_finite_correct_std(tmp_path: Path) -> None:
    values = np.array([1e300, -1e300, 5e299, 1.5e300, -2e299])
    path = tmp_path / "huge.csv"
    pl.DataFrame({"h": values}).write_csv(path)
    column = fit([str(path)]).column("h")
    scaled = values / 1e300
    expected = float(np.std(scaled)) * 1e300
    assert rel(column.std, expected) <= RTOL
    assert rel(column.mean, float(np.mean(scaled)) * 1e300) <= RTOL
    text = dumps_stats(fit([str(path)]))
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


@pytest.mark.parametrize(
    ("method", "scaler"),
    [
        ("standard", StandardScaler()),
        ("minmax", MinMaxScaler(feature_range=(-2.0, 3.0))),
        ("robust", RobustScaler()),
        ("maxabs", MaxAbsScaler()),
    ],
)
def test_transform_parameters_match_scikit_learn(tmp_path: Path, method: str, scaler) -> None:
    rng = np.random.default_rng(11)
    data = np.column_stack([rng.normal(3, 2, 5001), rng.exponential(5, 5001), rng.uniform(-7, 2, 5001)])
    path = tmp_path / "d.parquet"
    pl.DataFrame(data, schema=["a", "b", "c"], orient="row").write_parquet(path)
    stats = fit([str(path)], method=method, feature_range=(-2.0, 3.0))
    expected = scaler.fit_transform(data)
    ours = np.column_stack(
        [(data[:, i] - c.center) / c.scale for i, c in enumerate(stats.columns)]
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_robust_quantiles_match_numpy_linear(tmp_path: Path) -> None:
    values = np.random.default_rng(5).standard_t(3, 999)
    path = tmp_path / "r.parquet"
    pl.DataFrame({"r": values}).write_parquet(path)
    column = fit([str(path)], method="robust").column("r")
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    assert (column.q_low, column.median, column.q_high) == pytest.approx((q1, median, q3), rel=1e-14)
    assert column.center == column.median and column.scale == pytest.approx(q3 - q1, rel=1e-14)


def test_missing_values_tokens_nan_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("x,y\n38.5,1\nNA,2\n,3\n40.1,N/A\nnull,4\nNULL,nan\n41.0,NaN\n")
    stats = fit([str(path)])
    x, y = stats.column("x"), stats.column("y")
    assert (x.count, x.null_count, x.nan_count) == (3, 4, 0)
    assert x.mean == pytest.approx((38.5 + 40.1 + 41.0) / 3, rel=1e-15)
    assert (y.count, y.null_count) == (4, 3)


def test_nan_values_are_counted_and_never_poison_the_mean(tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    pl.DataFrame({"v": [1.0, float("nan"), 3.0, None, float("nan")]}).write_parquet(path)
    stats = fit([str(path)])
    column = stats.column("v")
    assert (column.count, column.null_count, column.nan_count) == (2, 1, 2)
    assert (column.mean, column.std) == (2.0, 1.0)
    assert any("NaN" in w for w in stats.warnings)


def test_replacing_null_values_makes_text_nan_a_nan(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("v\n1\nnan\n3\nNA\n")
    with pytest.raises(DataError, match=r"no numeric column to fit; skipped: v \(non-numeric"):
        fit([str(path)], null_values=["nan"])  # NA is now a word: the column is text
    column = fit([str(path)], null_values=["NA"]).column("v")
    assert (column.count, column.nan_count, column.null_count) == (2, 1, 1)


def test_constant_column_gets_scale_one_and_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("k,v\n7,1\n7,2\n7,4\n")
    stats = fit([str(path)], method="minmax")
    k = stats.column("k")
    assert (k.std, k.scale) == (0.0, 1.0)
    assert (7 - k.center) / k.scale == 0.0  # like MinMaxScaler: a constant maps to LOW
    assert any("'k' is constant" in w for w in stats.warnings)


def test_infinite_values_are_an_error_naming_column_and_count(tmp_path: Path) -> None:
    path = tmp_path / "i.parquet"
    pl.DataFrame({"ok": [1.0, 2.0, 3.0], "bad": [1.0, float("inf"), -float("inf")]}).write_parquet(path)
    with pytest.raises(DataError, match=r"'bad' has 2 infinite values"):
        fit([str(path)])


def test_integers_beyond_2_53_warn(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pl.DataFrame({"id": [2**60, 2**60 + 1, 3]}).write_parquet(path)
    stats = fit([str(path)])
    assert any("2^53" in w for w in stats.warnings)


def test_single_row_with_ddof_one_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("v\n3.5\n")
    with pytest.raises(DataError, match="ddof"):
        fit([str(path)], ddof=1)
    assert fit([str(path)]).column("v").scale == 1.0


def test_column_selection_and_per_column_methods(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("a,b,c,name\n1,10,100,x\n2,20,300,y\n4,40,200,z\n")
    stats = fit([str(path)], columns=["a", "c"], method_for={"c": "minmax"})
    assert stats.names == ["a", "c"]
    assert [c.method for c in stats.columns] == ["standard", "minmax"]
    assert fit([str(path)], exclude=["b"]).names == ["a", "c"]
    with pytest.raises(UsageError, match="no column named 'zz'"):
        fit([str(path)], columns=["zz"])
    with pytest.raises(DataError, match="'name' is not numeric"):
        fit([str(path)], columns=["name"])
    with pytest.raises(UsageError, match="--method-for"):
        fit([str(path)], exclude=["a"], method_for={"a": "robust"})
    with pytest.raises(UsageError, match="unknown method"):
        fit([str(path)], method="zscore")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="feature-range"):
        fit([str(path)], feature_range=(1.0, 0.0))


def test_integer_then_float_far_past_inference_window(tmp_path: Path) -> None:
    values = np.arange(30_000, dtype=np.float64)
    values[25_000] = 0.5
    path = tmp_path / "late_float.csv"
    path.write_text("v\n" + "\n".join(str(int(v)) if v != 0.5 else "0.5" for v in values) + "\n")
    column = fit([str(path)]).column("v")
    assert column.mean == pytest.approx(float(np.mean(values)), rel=1e-14)


def test_stray_word_far_past_inference_window_names_column_and_line(tmp_path: Path) -> None:
    lines = [str(i * 0.5) for i in range(30_000)]
    lines[28_000] = "oops"
    path = tmp_path / "stray.csv"
    path.write_text("v\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"column 'v' has the value 'oops' at line 28002"):
        fit([str(path)])


def test_several_files_equal_one_file(tmp_path: Path, mixed_csv) -> None:
    path, _ = mixed_csv
    frame = pl.read_csv(path)
    frame[:7000].write_csv(tmp_path / "part1.csv", float_precision=None)
    frame[7000:].write_csv(tmp_path / "part2.csv", float_precision=None)
    whole = fit([str(path)])
    parts = fit([str(tmp_path / "part*.csv")])
    assert parts.inputs == (str(tmp_path / "part1.csv"), str(tmp_path / "part2.csv"))
    for a, b in zip(whole.columns, parts.columns, strict=True):
        assert rel(b.mean, a.mean) <= RTOL and rel(b.std, a.std) <= RTOL


def test_stats_file_is_deterministic_and_round_trips(tmp_path: Path, mixed_csv) -> None:
    path, _ = mixed_csv
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    save_stats(fit([str(path)], method_for={"skewed": "robust", "ints": "maxabs"}), str(first))
    save_stats(fit([str(path)], method_for={"skewed": "robust", "ints": "maxabs"}), str(second))
    assert first.read_bytes() == second.read_bytes()
    loaded = load_stats(first)
    assert dumps_stats(loaded) == first.read_text()


def test_stats_file_validates_against_the_published_schema(tmp_path: Path, mixed_csv) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path, _ = mixed_csv
    doc = json.loads(dumps_stats(fit([str(path)], method_for={"skewed": "robust", "ints": "minmax"})))
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    doc["columns"][0]["scale"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    with pytest.raises(DataError, match="scale"):
        parse_stats(json.dumps(doc))


def test_merging_shard_fits_equals_fitting_everything(tmp_path: Path, mixed_csv) -> None:
    from normcli.scaling.merge import merge_stats

    path, _ = mixed_csv
    frame = pl.read_csv(path)
    frame[:5000].write_csv(tmp_path / "a.csv", float_precision=None)
    frame[5000:].write_csv(tmp_path / "b.csv", float_precision=None)
    methods = {"wide": "minmax", "ints": "maxabs"}
    whole = fit([str(path)], method_for=methods, ddof=1)
    shards = [fit([str(tmp_path / name)], method_for=methods, ddof=1) for name in ("a.csv", "b.csv")]
    merged = merge_stats(shards)
    assert merged.row_count == whole.row_count
    for a, b in zip(whole.columns, merged.columns, strict=True):
        assert (a.count, a.min, a.max, a.method) == (b.count, b.min, b.max, b.method)
        for field in ("mean", "std", "m2", "center", "scale"):
            assert rel(getattr(b, field), getattr(a, field)) <= RTOL, (a.name, field)
    # the merge of the shards' fits is the fit of both files, byte for byte (and through JSON)
    both = fit([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], method_for=methods, ddof=1)
    reloaded = [parse_stats(dumps_stats(shard)) for shard in shards]
    assert dumps_stats(merge_stats(reloaded)) == dumps_stats(both)
    with pytest.raises(DataError, match="quantiles do not merge"):
        merge_stats([fit([str(tmp_path / "a.csv")], method="robust"), fit([str(tmp_path / "b.csv")], method="robust")])


def test_the_documented_example_is_what_fit_writes(tmp_path: Path) -> None:
    """docs/stats-format.md's example, fitted for real (all but created_by)."""
    import re

    doc_text = (Path(__file__).parent.parent / "docs" / "stats-format.md").read_text()
    example = json.loads(re.search(r"## Example\n\n```json\n(.*?)```", doc_text, re.DOTALL).group(1))
    (tmp_path / "sales.csv").write_text("store,price\na,2\na,3\na,4\nb,5\nb,6\n")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        written = json.loads(dumps_stats(fit(["sales.csv"], by=["store"])))
    finally:
        os.chdir(cwd)
    assert written == example
