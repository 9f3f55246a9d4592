"""Scaler options against scikit-learn: robust's --quantile-range and --unit-variance, --clip for
every bounded method, and transform --impute (counted in a note)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler
from typer.testing import CliRunner

from normcli.cli import app
from normcli.errors import UsageError
from normcli.scaling.apply import Impute
from normcli.scaling.fit import fit
from normcli.scaling.methods import normal_spread

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(6)
    values = np.column_stack([rng.standard_t(3, 2001) * 4 + 1, rng.exponential(2, 2001), rng.normal(size=2001)])
    path = tmp_path / "d.parquet"
    pl.DataFrame(values, schema=["a", "b", "c"], orient="row").write_parquet(path)
    return path, values


@pytest.mark.parametrize(("quantile_range", "unit_variance"), [((25.0, 75.0), False), ((10.0, 90.0), True), ((5.0, 60.0), False), ((0.0, 100.0), False), ((1.0, 99.0), True)])
def test_robust_matches_scikit_learns_robust_scaler(data, quantile_range, unit_variance) -> None:
    path, values = data
    stats = fit([str(path)], method="robust", quantile_range=quantile_range, unit_variance=unit_variance)
    scaler = RobustScaler(quantile_range=quantile_range, unit_variance=unit_variance).fit(values)
    for i, column in enumerate(stats.columns):
        assert column.center == scaler.center_[i]
        assert column.scale == pytest.approx(scaler.scale_[i], rel=1e-15)  # Φ⁻¹ from the stdlib, not scipy
        low, high = np.percentile(values[:, i], quantile_range)
        assert (column.q_low, column.q_high) == pytest.approx((low, high), rel=1e-15)
    ours = np.column_stack([(values[:, i] - c.center) / c.scale for i, c in enumerate(stats.columns)])
    np.testing.assert_allclose(ours, scaler.transform(values), rtol=1e-14, atol=1e-14)


def test_unit_variance_spread_is_that_of_the_normal_distribution() -> None:
    from scipy.stats import norm

    for low, high in ((25.0, 75.0), (10.0, 90.0), (0.5, 99.5)):
        assert normal_spread((low, high)) == pytest.approx(norm.ppf(high / 100) - norm.ppf(low / 100), rel=1e-15)
    assert normal_spread((25.0, 75.0)) == pytest.approx(1.3489795003921634, rel=1e-15)


def test_constant_robust_column_is_scaled_like_scikit_learn(tmp_path: Path) -> None:
    path = tmp_path / "k.parquet"
    pl.DataFrame({"k": [3.0] * 10}).write_parquet(path)
    column = fit([str(path)], method="robust", unit_variance=True).column("k")
    scaler = RobustScaler(unit_variance=True).fit(np.full((10, 1), 3.0))
    assert (column.center, column.scale) == (scaler.center_[0], pytest.approx(scaler.scale_[0], rel=1e-15))


@pytest.mark.parametrize(("text", "words"), [("75,25", "LOW < HIGH"), ("-1,50", "0 <= LOW"), ("0,100 --unit-variance", "0 < LOW < HIGH < 100"), ("a,b", "LOW,HIGH")])
def test_bad_quantile_ranges_are_usage_errors(tmp_path: Path, monkeypatch, text: str, words: str) -> None:
    monkeypatch.chdir(tmp_path)
    pl.DataFrame({"x": [1.0, 2.0]}).write_csv("d.csv")
    value, *rest = text.split(" ")
    result = runner.invoke(app, ["fit", "d.csv", "--method", "robust", "--quantile-range", value, *rest, "-o", "s.json"])
    assert result.exit_code == 2 and words in result.stderr and not Path("s.json").exists()


@pytest.mark.parametrize(("method", "scaler", "bounds"), [("minmax", MinMaxScaler(feature_range=(-1, 2), clip=True), (-1.0, 2.0)), ("maxabs", MaxAbsScaler(), (-1.0, 1.0))])
def test_clip_applies_to_every_bounded_method(tmp_path: Path, monkeypatch, method, scaler, bounds) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    pl.DataFrame({"x": rng.normal(size=500)}).write_parquet("train.parquet")
    new = np.concatenate([rng.normal(size=500) * 3, [np.nan]])
    pl.DataFrame({"x": pl.Series(new, nan_to_null=False)}).write_parquet("new.parquet")
    assert runner.invoke(app, ["fit", "train.parquet", "-m", method, "--feature-range", "-1,2", "-o", "s.json", "-q"]).exit_code == 0
    result = runner.invoke(app, ["transform", "new.parquet", "-s", "s.json", "--clip", "-o", "out.parquet"])
    assert result.exit_code == 0 and "warning" not in result.stderr
    out = pl.read_parquet("out.parquet")["x"].to_numpy()
    expected = np.clip(scaler.fit(pl.read_parquet("train.parquet").to_numpy()).transform(new.reshape(-1, 1)).ravel(), *bounds)
    np.testing.assert_allclose(out[:-1], expected[:-1], rtol=1e-14, atol=1e-15)
    assert out[:-1].min() == bounds[0] and out[:-1].max() == bounds[1] and np.isnan(out[-1])


def test_clip_warns_when_it_can_do_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    pl.DataFrame({"x": [1.0, 2.0, 3.0]}).write_csv("d.csv")
    assert runner.invoke(app, ["fit", "d.csv", "-o", "s.json", "-q"]).exit_code == 0
    result = runner.invoke(app, ["transform", "d.csv", "-s", "s.json", "--clip"])
    assert result.exit_code == 0
    assert "warning: --clip does nothing here: no fitted column uses a bounded method (minmax, maxabs)" in result.stderr


def test_impute_fills_missing_values_after_scaling_and_counts_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("train.csv").write_text("s,m,r\n1,1,1\n2,3,2\n3,5,10\n4,7,4\n")
    Path("new.csv").write_text("s,m,r\n,1,\n2,,NaN\n5,9,3\n")
    assert runner.invoke(app, ["fit", "train.csv", "--method-for", "m=minmax", "--method-for", "r=robust", "-o", "st.json", "-q"]).exit_code == 0
    stats = json.loads(Path("st.json").read_text())
    m = next(c for c in stats["columns"] if c["name"] == "m")

    def run(*options: str) -> tuple[pl.DataFrame, str]:
        result = runner.invoke(app, ["transform", "new.csv", "-s", "st.json", "--null-values", "", *options])
        assert result.exit_code == 0, result.stderr
        return pl.read_csv(result.stdout.encode()), result.stderr

    out, stderr = run("--impute", "mean")
    assert out["s"].to_list()[0] == 0.0 and out["m"].to_list()[1] == ((4.0 - m["center"]) - m["center_lo"]) / m["scale"]
    assert "imputed 4 missing values with mean (s: 1, m: 1, r: 2)" in stderr
    out, stderr = run("--impute", "zero")
    assert out.null_count().sum_horizontal().item() == 0 and out["r"].to_list()[:2] == [0.0, 0.0]
    out, _ = run("--impute", "constant=-3")
    assert out["m"].to_list()[1] == -3.0
    out, stderr = run()
    assert out["s"].to_list()[0] is None and "imputed" not in stderr
    result = runner.invoke(app, ["transform", "new.csv", "-s", "st.json", "--impute", "median"])
    assert result.exit_code == 2 and "only robust columns keep" in result.stderr and "s, m" in result.stderr


@pytest.mark.parametrize("text", ["average", "constant=x", "constant=inf", "keep=1"])
def test_bad_impute_values_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--impute"):
        Impute.parse(text)


def test_impute_median_for_robust_columns_is_the_transformed_median(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pl.DataFrame({"r": [1.0, 2.0, 3.0, 10.0, None]}).write_parquet(path)
    stats = fit([str(path)], method="robust")
    from normcli.scaling.apply import apply_stats

    out = apply_stats(pl.LazyFrame({"r": [None, 4.0]}, schema={"r": pl.Float64}), stats, impute="median").collect()
    assert out["r"].to_list()[0] == 0.0


def test_options_of_a_method_no_column_uses_warn_as_clip_does(tmp_path: Path) -> None:
    """--quantile-range and --unit-variance (robust) and --feature-range (minmax) change nothing
    when no fitted column uses that method: the fit says so (they used to be ignored silently)."""
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,4\n2,2\n3,9\n")
    idle = fit([str(path)], quantile_range=(10, 90), unit_variance=True, feature_range=(-1, 1))
    assert [w.split(" does nothing")[0] for w in idle.warnings if "does nothing" in w] == ["--quantile-range", "--unit-variance", "--feature-range"]
    used = fit([str(path)], method_for={"x": "robust", "y": "minmax"}, quantile_range=(10, 90), unit_variance=True, feature_range=(-1, 1))
    assert not [w for w in used.warnings if "does nothing" in w]
