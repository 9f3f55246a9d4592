"""Frequency weights (``fit --weight``) against exact rational references, numpy and row repetition.

Frequency-weight semantics: a row of weight w counts as w rows, so n = Σw, mean = Σw·x / Σw and
var = Σw(x − mean)² / (Σw − ddof) — what ``numpy.cov(fweights=..., ddof=...)`` and statsmodels'
``DescrStatsW`` compute. Min and max are over the values of positive weight.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import NORMCLI, snapshot
from normcli.cli import app
from normcli.errors import DataError, UsageError
from normcli.scaling.exact import sqrt_correctly_rounded
from normcli.scaling.fit import fit
from normcli.scaling.merge import merge_stats
from normcli.scaling.statsfile import SCHEMA_PATH, dumps_stats, parse_stats

runner = CliRunner()


def exact_weighted(values, weights, ddof: int = 0) -> tuple[float, float]:
    """Correctly rounded weighted mean and std from exact rational arithmetic."""
    xs = [Fraction(float(v)) for v in values]
    ws = [Fraction(float(w)) for w in weights]
    total = sum(ws)
    mean = sum(w * x for w, x in zip(ws, xs, strict=True)) / total
    m2 = sum(w * (x - mean) ** 2 for w, x in zip(ws, xs, strict=True))
    return float(mean), sqrt_correctly_rounded(m2 / (total - ddof))


def write_parquet(path: Path, **columns) -> str:
    pl.DataFrame(columns).write_parquet(path)
    return str(path)


@pytest.mark.parametrize("ddof", [0, 1])
def test_weighted_mean_and_std_are_the_exact_ones(tmp_path: Path, ddof: int) -> None:
    rng = np.random.default_rng(11)
    n = 150_000  # several blocks
    x = 1e12 + rng.normal(size=n)
    w = rng.exponential(size=n)
    y = rng.normal(size=n) * 3
    path = write_parquet(tmp_path / "w.parquet", x=x, y=y, w=w)
    stats = fit([path], weight="w", ddof=ddof)
    for name, values in (("x", x), ("y", y)):
        mean, std = exact_weighted(values, w, ddof)
        column = stats.column(name)
        assert abs(column.mean - mean) <= 2e-16 * abs(mean) + 1e-15 * std
        assert column.std == pytest.approx(std, rel=1e-14)
        assert column.weight_sum == pytest.approx(math.fsum(w), rel=1e-15)
        assert column.count == n
    assert [s.name for s in stats.skipped] == ["w"] and stats.skipped[0].reason == "weight (--weight)"


def test_integer_weights_match_numpy_cov_with_fweights(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(5, 2, 5000)
    w = rng.integers(0, 5, 5000)
    path = write_parquet(tmp_path / "w.parquet", x=x, w=w)
    for ddof in (0, 1):
        column = fit([path], weight="w", ddof=ddof).column("x")
        assert column.mean == pytest.approx(np.average(x, weights=w), rel=1e-15)
        assert column.std**2 == pytest.approx(float(np.cov(x, fweights=w, ddof=ddof)), rel=1e-13)
        assert (column.min, column.max) == (x[w > 0].min(), x[w > 0].max())


def test_integer_weights_are_repeated_rows(tmp_path: Path) -> None:
    """Frequency semantics: weight w is the same as the row written w times."""
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=3000), 3)
    w = rng.integers(0, 4, 3000)
    weighted = fit([write_parquet(tmp_path / "w.parquet", x=x, w=w)], weight="w", ddof=1).column("x")
    repeated = fit([write_parquet(tmp_path / "r.parquet", x=np.repeat(x, w))], ddof=1).column("x")
    assert weighted.weight_sum == repeated.count == int(w.sum())
    assert (weighted.min, weighted.max) == (repeated.min, repeated.max)
    # block sums are rounded differently (3,000 rows against 4,507), then added exactly
    assert abs(weighted.mean - repeated.mean) <= 1e-15 * repeated.std
    assert weighted.std == pytest.approx(repeated.std, rel=1e-15)


@given(
    st.lists(
        st.tuples(
            st.floats(-1e200, 1e200, allow_nan=False, allow_infinity=False),
            st.floats(0, 1e200, allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=40,
    )
)
@settings(max_examples=150, deadline=None)
def test_any_finite_values_and_weights_give_the_exact_mean(tmp_path_factory, pairs) -> None:
    x = [p[0] for p in pairs]
    w = [p[1] for p in pairs]
    if sum(Fraction(v) for v in w) == 0:
        return
    path = write_parquet(tmp_path_factory.mktemp("h") / "h.parquet", x=x, w=w)
    column = fit([path], weight="w").column("x")
    mean, std = exact_weighted(x, w)
    positive = [v for v, weight in zip(x, w, strict=True) if weight > 0]
    assert (column.min, column.max) == (min(positive), max(positive))
    # block sums are floats: a spread below float64's resolution of the values (a weight of 1e-299
    # beside one of 1e15) is the near-constant case, resolved to about ε·max|x|, no better
    resolution = 1e-14 * max(abs(v) for v in positive)
    assert column.mean == pytest.approx(mean, rel=1e-12, abs=resolution)
    assert column.std == pytest.approx(std, rel=1e-9, abs=resolution)


def test_weights_and_values_near_float64_limits(tmp_path: Path) -> None:
    x = np.array([1e300, -3e299, 7e299, 2e300])
    w = np.array([1e-300, 5e-301, 2e-300, 1e-310])
    column = fit([write_parquet(tmp_path / "l.parquet", x=x, w=w)], weight="w").column("x")
    mean, std = exact_weighted(x, w)
    assert column.mean == pytest.approx(mean, rel=1e-14)
    assert column.std == pytest.approx(std, rel=1e-14)


def test_rows_of_weight_zero_count_but_weigh_nothing(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "z.parquet", x=[1.0, 2.0, 100.0, 3.0], w=[1, 1, 0, 1])
    column = fit([path], weight="w").column("x")
    assert (column.count, column.weight_sum, column.mean, column.max) == (4, 3.0, 2.0, 3.0)
    with pytest.raises(DataError, match="only values of weight 0"):
        fit([write_parquet(tmp_path / "z0.parquet", x=[1.0, 2.0], w=[0, 0])], weight="w")


def test_merge_of_weighted_shards_is_the_weighted_fit_of_both(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    paths = []
    for i in range(3):
        paths.append(write_parquet(tmp_path / f"p{i}.parquet", x=1e9 + rng.normal(size=70_000), w=rng.exponential(size=70_000)))
    shards = [parse_stats(dumps_stats(fit([p], weight="w"))) for p in paths]
    together = fit(paths, weight="w")
    assert dumps_stats(merge_stats(shards)) == dumps_stats(together)
    with pytest.raises(DataError, match="--weight"):
        merge_stats([shards[0], parse_stats(dumps_stats(fit([paths[1]])))])


def test_weighted_stats_file_round_trips_and_validates(tmp_path: Path) -> None:
    import jsonschema

    path = write_parquet(tmp_path / "w.parquet", x=[1.0, 2.0, 4.0], w=[0.5, 1.5, 2.0])
    stats = fit([path], weight="w", method_for={"x": "maxabs"})
    text = dumps_stats(stats)
    doc = json.loads(text)
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    assert doc["options"]["weight"] == "w" and doc["columns"][0]["sums"]["w"] == [4.0]
    again = parse_stats(text)
    assert dumps_stats(again) == text and again.column("x").weight_sum == 4.0


def test_a_pipe_and_threads_give_the_bytes_of_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    frame = pl.DataFrame({"x": rng.normal(size=200_000) * 1e3, "w": rng.integers(0, 9, 200_000)})
    frame.write_csv(tmp_path / "d.csv")

    def run(args: list[str], threads: str, stdin: bytes | None = None) -> bytes:
        done = subprocess.run(
            [*NORMCLI, "fit", *args, "--weight", "w", "-o", "-", "-q"], input=stdin, capture_output=True,
            cwd=tmp_path, env={**__import__("os").environ, "POLARS_MAX_THREADS": threads}, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        doc["inputs"].pop("files")
        return json.dumps(doc).encode()

    from_file = run(["d.csv"], "1")
    assert run(["d.csv"], "2") == from_file
    assert run(["-"], "2", (tmp_path / "d.csv").read_bytes()) == from_file


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        ("1\n-1\n2\n", ("weight column 'w'", "-1.0", "data row 2", "non-negative")),
        ("1\n2\nNaN\n", ("'w'", "nan", "data row 3")),
        ("1\n\n2\n", ("'w'", "no value", "data row 2")),
        ("1\ninf\n2\n", ("'w'", "inf", "data row 2")),
    ],
)
def test_bad_weights_are_errors_naming_the_row(tmp_path: Path, monkeypatch, weights: str, words) -> None:
    rows = ["x,w"] + [f"{i},{w}" for i, w in enumerate(weights.split("\n")[:-1])]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["fit", "d.csv", "--weight", "w", "--null-values", "", "-o", "s.json"])
    assert result.exit_code == 1, result.stderr
    for word in words:
        assert word in result.stderr
    assert snapshot(tmp_path) == before


def test_weight_options_that_cannot_work(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,w,s\n1,1,a\n2,1,b\n")
    with pytest.raises(UsageError, match="robust.*--weight"):
        fit([str(path)], weight="w", method="robust", columns=["x"])
    with pytest.raises(DataError, match="weight column 's' is not numeric"):
        fit([str(path)], weight="s")
    with pytest.raises(UsageError, match="no column named 'nope'"):
        fit([str(path)], weight="nope")
    with pytest.raises(UsageError, match="cannot be fitted too"):
        fit([str(path)], weight="w", columns=["x", "w"])


def test_a_total_weight_above_2_pow_1000_is_refused_with_its_size(tmp_path: Path) -> None:
    """Weights of 1e300 add up to about 1.3e302: inside float64's range (1.8e308), above the 2^1000
    normcli handles. The message says that (it used to say "beyond float64's range")."""
    w = np.full(50, 2.5e300)
    path = write_parquet(tmp_path / "h.parquet", x=np.arange(50.0), w=w)
    total = math.fsum(w)
    with pytest.raises(DataError, match=re.escape(f"total weight of {total:.3g}, above the 2^1000")):
        fit([path], weight="w")
