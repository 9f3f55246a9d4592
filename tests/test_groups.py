"""Per-group statistics (``fit --by``) against Polars ``over()``/``group_by`` and exact references.

* Each group's mean and std match exact rational arithmetic; all groups match Polars' group_by.
* The pooled statistics of ``fit --by`` are those of ``fit`` without it, byte for byte.
* transform applies each row's group: against a Polars ``over()`` computation, and bit for bit
  against the documented formula with the group's parameters; unseen groups: pooled, null, error.
* The group sums are exact: split at block boundaries, merged from shards, fitted on 1 or 2 threads,
  from a pipe or a file — byte-identical stats.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import NORMCLI, snapshot
from normcli.cli import app
from normcli.errors import DataError, UsageError
from normcli.scaling.exact import Dyadic, sqrt_correctly_rounded
from normcli.scaling.fit import fit
from normcli.scaling.fragments import BLOCK_ROWS, ColumnSpec, reblock, summarize
from normcli.scaling.groups import ExactSums
from normcli.scaling.merge import merge_stats
from normcli.scaling.statsfile import SCHEMA_PATH, dumps_stats, parse_stats

runner = CliRunner()


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(21)
    n = 150_000  # three blocks
    store = pl.Series(rng.choice(["north", "south", "o'hare", "NONE"], n).tolist()).replace("NONE", None)
    z = rng.normal(size=n)
    z[rng.random(n) < 0.03] = np.nan
    return pl.DataFrame(
        {
            "store": store,
            "shelf": rng.integers(0, 5, n),
            "x": 1e9 + rng.normal(size=n) * rng.choice([1.0, 3.0], n),
            "y": rng.exponential(size=n),
            "z": pl.Series(z, nan_to_null=False),
        }
    ).with_columns(pl.when(pl.Series(rng.random(n) < 0.02)).then(None).otherwise(pl.col("y")).alias("y"))


@pytest.fixture
def parquet(tmp_path: Path, frame: pl.DataFrame) -> str:
    path = tmp_path / "g.parquet"
    frame.write_parquet(path)
    return str(path)


def group_index(stats) -> dict:
    return {key: i for i, key in enumerate(stats.groups.keys)}


def exact_mean_std(values: np.ndarray, ddof: int = 0) -> tuple[float, float]:
    xs = [Fraction(float(v)) for v in values]
    mean = sum(xs) / len(xs)
    m2 = sum((x - mean) ** 2 for x in xs)
    return float(mean), sqrt_correctly_rounded(m2 / (len(xs) - ddof))


def test_each_group_has_the_exact_mean_and_std(parquet: str, frame: pl.DataFrame) -> None:
    stats = fit([parquet], by=["store", "shelf"], ddof=1)
    index = group_index(stats)
    assert len(stats.groups) == 20
    for key in [("north", 0), (None, 4), ("o'hare", 2)]:
        rows = frame.filter(pl.col("store").eq_missing(key[0]) & (pl.col("shelf") == key[1]))
        i = index[key]
        assert stats.groups.row_count[i] == rows.height
        for name in ("x", "z"):
            values = rows[name].drop_nulls().drop_nans().to_numpy()
            mean, std = exact_mean_std(values, ddof=1)
            column = stats.groups.columns[name]
            assert column.count[i] == len(values)
            assert abs(column.mean[i] - mean) <= 1e-15 * std, (key, name)
            assert column.std[i] == pytest.approx(std, rel=1e-14), (key, name)
            assert (column.min[i], column.max[i]) == (values.min(), values.max())
            assert (column.center[i], column.scale[i]) == (column.mean[i], column.std[i])


def test_every_group_matches_polars_group_by(parquet: str, frame: pl.DataFrame) -> None:
    stats = fit([parquet], by=["store", "shelf"], method_for={"y": "minmax"})
    index = group_index(stats)
    # Polars sums 1e9 + N(0, 1) naively (its std is off by 1e-8); x − 1e9 is exact and well conditioned
    expected = frame.with_columns(pl.col("z").fill_nan(None), pl.col("x") - 1e9).group_by(["store", "shelf"]).agg(
        pl.len().alias("rows"),
        *[pl.col(c).mean().alias(f"{c}_mean") for c in ("x", "y", "z")],
        *[pl.col(c).std(ddof=0).alias(f"{c}_std") for c in ("x", "y", "z")],
        *[pl.col(c).null_count().alias(f"{c}_nulls") for c in ("x", "y")],
        pl.col("y").min().alias("y_min"), pl.col("y").max().alias("y_max"),
    )
    assert expected.height == len(stats.groups)
    for row in expected.iter_rows(named=True):
        i = index[(row["store"], row["shelf"])]
        assert stats.groups.row_count[i] == row["rows"]
        for c in ("x", "y", "z"):
            column = stats.groups.columns[c]
            offset = 1e9 if c == "x" else 0.0
            assert abs((column.mean[i] - offset) - row[f"{c}_mean"]) <= 1e-13 * row[f"{c}_std"] + 1e-16 * offset
            assert column.std[i] == pytest.approx(row[f"{c}_std"], rel=1e-12)
        assert stats.groups.columns["y"].null_count[i] == row["y_nulls"]
        y = stats.groups.columns["y"]
        assert (y.min[i], y.max[i]) == (row["y_min"], row["y_max"])
        assert y.scale[i] == float((Fraction(row["y_max"]) - Fraction(row["y_min"])))
    assert stats.groups.columns["y"].extra["feature_range"] == (0.0, 1.0)


def test_pooled_statistics_are_those_of_a_fit_without_by(parquet: str) -> None:
    grouped = json.loads(dumps_stats(fit([parquet], by=["store"])))
    plain = json.loads(dumps_stats(fit([parquet], exclude=["store"])))
    assert grouped["columns"] == plain["columns"]
    assert grouped["options"]["by"] == ["store"] and "groups" not in plain


def test_transform_applies_each_rows_group(tmp_path: Path, parquet: str, frame: pl.DataFrame, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["fit", parquet, "--by", "store,shelf", "-o", "s.json", "-q"]).exit_code == 0
    result = runner.invoke(app, ["transform", parquet, "-s", "s.json", "-o", "out.parquet"])
    assert result.exit_code == 0, result.stderr
    out = pl.read_parquet("out.parquet")
    assert out.columns == frame.columns and out["store"].equals(frame["store"]) and out["shelf"].equals(frame["shelf"])
    # against Polars over(): the group's own mean and std (x − 1e9: Polars sums 1e9 + N(0, 1) naively)
    keys = ["store", "shelf"]
    centred = frame.with_columns(pl.col("x") - 1e9)
    over = centred.select(*[((pl.col(c) - pl.col(c).mean().over(keys)) / pl.col(c).std(ddof=0).over(keys)).alias(c) for c in ("x", "y")])
    for c in ("x", "y"):
        np.testing.assert_allclose(out[c].to_numpy(), over[c].to_numpy(), rtol=0, atol=1e-12)
    # bit for bit: the documented formula with each row's group parameters
    stats = parse_stats(Path("s.json").read_text())
    index = group_index(stats)
    rows = np.array([index[key] for key in zip(frame["store"].to_list(), frame["shelf"].to_list(), strict=True)])
    for c in ("x", "y", "z"):
        g = stats.groups.columns[c]
        expected = ((frame[c].to_numpy() - g.center[rows]) - g.center_lo[rows]) / g.scale[rows]
        got = out[c].to_numpy()
        assert np.array_equal(got, expected, equal_nan=True), c


def test_unseen_groups_get_the_pooled_statistics_null_or_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("train.csv").write_text("store,x\na,1\na,3\nb,10\nb,14\n")
    Path("new.csv").write_text("store,x\na,2\nzz,8\nb,12\n")
    assert runner.invoke(app, ["fit", "train.csv", "--by", "store", "-o", "s.json", "-q"]).exit_code == 0
    stats = parse_stats(Path("s.json").read_text())
    pooled = stats.column("x")
    result = runner.invoke(app, ["transform", "new.csv", "-s", "s.json"])
    assert result.exit_code == 0
    assert "1 row in 1 group not in the stats (store=zz) got the pooled statistics" in result.stderr
    values = pl.read_csv(result.stdout.encode())["x"].to_list()
    assert values == [0.0, ((8 - pooled.center) - pooled.center_lo) / pooled.scale, 0.0]
    result = runner.invoke(app, ["transform", "new.csv", "-s", "s.json", "--unknown-group", "null"])
    assert pl.read_csv(result.stdout.encode())["x"].to_list() == [0.0, None, 0.0]
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["transform", "new.csv", "-s", "s.json", "--unknown-group", "error", "-o", "out.csv"])
    assert result.exit_code == 1
    assert "new.csv: data row 2 has the group store=zz, which the stats do not have" in result.stderr
    assert snapshot(tmp_path) == before
    piped = subprocess.run(
        [*NORMCLI, "transform", "-s", "s.json", "--unknown-group", "error"], input=b"store,x\nzz,1\n",
        cwd=tmp_path, capture_output=True, timeout=60,
    )
    assert piped.returncode == 1 and piped.stdout == b"" and b"store=zz" in piped.stderr


def test_a_group_too_small_for_ddof_falls_back_and_still_merges_exactly(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    a.write_text("g,x\np,1\nq,5\nq,7\n")
    b.write_text("g,x\np,4\nq,6\n")
    first = fit([str(a)], by=["g"], ddof=1)
    assert any("too few values" in w and "g=p" in w for w in first.warnings)
    p = group_index(first)[("p",)]
    assert not first.groups.columns["x"].fitted[p]
    merged = merge_stats([parse_stats(dumps_stats(first)), parse_stats(dumps_stats(fit([str(b)], by=["g"], ddof=1)))])
    together = fit([str(a), str(b)], by=["g"], ddof=1)
    assert dumps_stats(merged) == dumps_stats(together)
    assert together.groups.columns["x"].mean[group_index(together)[("p",)]] == 2.5


def test_merge_of_grouped_shards_is_the_fit_of_the_union(tmp_path: Path, frame: pl.DataFrame) -> None:
    paths = []
    for i, (start, stop) in enumerate([(0, 70_000), (70_000, 70_001), (70_001, 150_000)]):
        paths.append(str(tmp_path / f"part{i}.parquet"))
        frame[start:stop].write_parquet(paths[-1])
    options = {"by": ["store", "shelf"], "method_for": {"y": "maxabs"}}
    shards = [parse_stats(dumps_stats(fit([p], **options))) for p in paths]
    assert dumps_stats(merge_stats(shards)) == dumps_stats(fit(paths, **options))
    with pytest.raises(DataError, match="--by"):
        merge_stats([shards[0], parse_stats(dumps_stats(fit([paths[1]], by=["store"])))])


def test_merge_takes_the_key_type_from_a_shard_with_keys_and_refuses_mixed_kinds(tmp_path: Path) -> None:
    """A shard whose keys were all null (type Null) merges with one of integer keys into the fit
    of both files (byte for byte), which transform can use; integer keys in one shard and text
    keys in another are refused, as fit of both files refuses them (they used to merge into a
    file with both 1 and "1" as groups, which transform failed on with a Polars TypeError)."""
    empty, numbers, words = tmp_path / "n.csv", tmp_path / "i.csv", tmp_path / "t.csv"
    empty.write_text("key,x\n,1\n,2\n")
    numbers.write_text("key,x\n1,1\n1,2\n2,5\n2,7\n")
    words.write_text("key,x\n1,3\na,2\na,9\n")
    shards = [parse_stats(dumps_stats(fit([str(p)], by=["key"]))) for p in (empty, numbers, words)]
    merged = merge_stats(shards[:2])
    assert dumps_stats(merged) == dumps_stats(fit([str(empty), str(numbers)], by=["key"]))
    assert merged.by_dtype("key") == "Int64"
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["transform", str(numbers), "-s", "-", "-o", str(out), "-q"], input=dumps_stats(merged))
    assert result.exit_code == 0, result.stderr
    reference = pl.read_csv(numbers).with_columns(
        ((pl.col("x") - pl.col("x").mean().over("key")) / pl.col("x").std(ddof=0).over("key")).alias("x")
    )
    assert pl.read_csv(out)["x"].to_list() == pytest.approx(reference["x"].to_list(), abs=1e-15)
    with pytest.raises(DataError, match="group column 'key' holds integer keys in shard 2 but text keys in shard 3"):
        merge_stats(shards)
    with pytest.raises(DataError, match="not a number"):
        fit([str(numbers), str(words)], by=["key"])


def test_a_key_of_the_wrong_kind_in_a_stats_file_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "i.csv").write_text("key,x\n1,1\n1,2\n2,5\n2,7\n")
    doc = json.loads(dumps_stats(fit([str(tmp_path / "i.csv")], by=["key"])))
    doc["groups"]["keys"][1] = ["2"]
    with pytest.raises(DataError, match=r"groups.keys\[1\] holds the text '2' for 'key', whose keys are integer"):
        parse_stats(json.dumps(doc))


def test_group_sums_do_not_depend_on_where_fragments_split(frame: pl.DataFrame) -> None:
    """A fragment split at a block boundary, merged exactly, is the whole fragment."""
    from normcli.scaling.merge import Fold

    specs = [ColumnSpec(c, "Float64") for c in ("x", "y", "z")]
    whole = summarize(reblock([frame], BLOCK_ROWS), specs, by=["store", "shelf"])
    cut = 2 * BLOCK_ROWS
    parts = [summarize(reblock([f], BLOCK_ROWS), specs, by=["store", "shelf"]) for f in (frame[:cut], frame[cut:])]
    pieces = [frame[a:b] for a, b in [(0, 1000), (1000, 99_999), (99_999, frame.height)]]
    rechunked = summarize(reblock(pieces, BLOCK_ROWS), specs, by=["store", "shelf"])

    def folded(results) -> dict:
        fold = Fold()
        for result in results:
            for key, rows, columns in result.groups.items():
                fold.add_group(key, rows, columns)
        return {key: (g.rows, {c: (p.count, p.null_count, p.nan_count, p.min, p.max, p.moments.mean(), p.moments.m2()) for c, p in g.columns.items()}) for key, g in fold.groups.items()}

    assert folded([whole]) == folded(parts) == folded([rechunked])


def test_threads_and_pipes_give_byte_identical_grouped_stats(tmp_path: Path, frame: pl.DataFrame) -> None:
    frame.write_csv(tmp_path / "g.csv")

    def run(args: list[str], threads: str, stdin: bytes | None = None) -> dict:
        done = subprocess.run(
            [*NORMCLI, "fit", *args, "--by", "store,shelf", "-o", "-", "-q"], input=stdin, capture_output=True,
            cwd=tmp_path, env={**os.environ, "POLARS_MAX_THREADS": threads}, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        doc["inputs"].pop("files")
        return doc

    one = run(["g.csv"], "1")
    assert run(["g.csv"], "2") == one
    assert run(["-"], "2", (tmp_path / "g.csv").read_bytes()) == one


def test_csv_and_parquet_give_the_same_groups_for_dates(tmp_path: Path) -> None:
    frame = pl.DataFrame({"day": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 1), None], "x": [1.0, 2.0, 3.0, 4.0]})
    frame.write_parquet(tmp_path / "d.parquet")
    frame.write_csv(tmp_path / "d.csv")
    from_parquet = fit([str(tmp_path / "d.parquet")], by=["day"])
    from_csv = fit([str(tmp_path / "d.csv")], by=["day"])
    assert from_parquet.groups.keys == from_csv.groups.keys == ((None,), ("2024-01-01",), ("2024-01-02",))
    assert from_parquet.groups.columns["x"].mean.tolist() == [4.0, 2.0, 2.0]
    out = tmp_path / "o.parquet"
    from normcli.scaling.apply import transform

    report = transform([str(tmp_path / "d.parquet")], stats=from_csv, output=str(out))
    assert report.notes == [] and pl.read_parquet(out)["x"].to_list() == [-1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_datetime_keys_fitted_from_parquet_find_the_rows_of_a_csv(tmp_path: Path, unit: str) -> None:
    """Polars writes a datetime key as '2024-03-31 01:30:00.250000' and a CSV as
    '2024-03-31T01:30:00.250000': transform and check read the CSV's text as the datetime it
    is. Every row used to take the pooled statistics. Reference: Polars over() on the datetimes."""
    from normcli.scaling.apply import transform
    from normcli.scaling.check import check_data

    stamps = [dt.datetime(2024, 3, 31, 1, 30, i % 3, 250_000 * (i % 2)) for i in range(12)]
    frame = pl.DataFrame({"t": stamps, "x": [float(i * i % 7) for i in range(12)]}).with_columns(pl.col("t").dt.cast_time_unit(unit))
    frame.write_parquet(tmp_path / "d.parquet")
    frame.write_csv(tmp_path / "d.csv")
    assert "T" in (tmp_path / "d.csv").read_text().splitlines()[1]
    stats = fit([str(tmp_path / "d.parquet")], by=["t"])
    report = transform([str(tmp_path / "d.csv")], stats=stats, output=str(tmp_path / "o.parquet"))
    assert report.notes == []
    reference = frame.select(((pl.col("x") - pl.col("x").mean().over("t")) / pl.col("x").std(ddof=0).over("t")).fill_nan(0.0))
    assert pl.read_parquet(tmp_path / "o.parquet")["x"].to_list() == pytest.approx(reference["x"].to_list(), abs=1e-15)
    assert check_data([str(tmp_path / "d.csv")], stats=stats).groups["unseen"]["groups"] == 0


def test_many_groups_match_polars(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 120_000
    frame = pl.DataFrame({"g": rng.integers(0, 10_000, n), "x": rng.normal(size=n) * 10 + 3})
    path = tmp_path / "m.parquet"
    frame.write_parquet(path)
    stats = fit([str(path)], by=["g"], ddof=1)
    expected = frame.group_by("g").agg(pl.col("x").mean().alias("mean"), pl.col("x").std(ddof=1).alias("std"), pl.len().alias("n")).sort("g")
    got = stats.groups
    assert [k[0] for k in got.keys] == expected["g"].to_list()
    np.testing.assert_array_equal(got.row_count, expected["n"].to_numpy())
    single = expected["n"].to_numpy() == 1  # too few for --ddof 1: no parameters, the pooled ones apply
    assert not got.columns["x"].fitted[single].any() and got.columns["x"].fitted[~single].all()
    x = got.columns["x"]
    assert (np.abs(x.mean[~single] - expected["mean"].to_numpy()[~single]) <= 1e-14 * x.std[~single]).all()
    np.testing.assert_allclose(got.columns["x"].std[~single], expected["std"].to_numpy()[~single], rtol=1e-12)


def test_exact_sums_keep_every_bit() -> None:
    """Terms from 2^-300 to 2^300 in random order: more than four floats per sum, so components
    spill into exact Dyadics; every total is still exact."""
    rng = random.Random(7)
    groups, rounds = 50, 60
    sums = ExactSums(2)
    exact = [[Fraction(0)] * groups for _ in range(2)]
    for _ in range(rounds):
        values = np.array([[rng.choice([1, -1]) * rng.random() * 2.0 ** rng.randint(-300, 300) for _ in range(groups)] for _ in range(2)])
        sums.grow(groups)
        sums.add(values)
        for q in range(2):
            for g in range(groups):
                exact[q][g] += Fraction(float(values[q, g]))
    assert sums.spilled  # the test reaches the spill path
    for q in range(2):
        assert [t.fraction() for t in sums.totals(q, groups)] == exact[q]


def test_groups_near_float64_limits_are_exact(tmp_path: Path) -> None:
    frame = pl.DataFrame({"g": ["big", "big", "big", "tiny", "tiny", "tiny"], "x": [1e300, -2e300, 5e299, 3e-310, 1e-305, -4e-306]})
    path = tmp_path / "l.parquet"
    frame.write_parquet(path)
    stats = fit([str(path)], by=["g"])
    index = group_index(stats)
    for key in ("big", "tiny"):
        values = frame.filter(pl.col("g") == key)["x"].to_numpy()
        mean, std = exact_mean_std(values)
        i = index[(key,)]
        assert stats.groups.columns["x"].mean[i] == pytest.approx(mean, rel=1e-15)
        assert stats.groups.columns["x"].std[i] == pytest.approx(std, rel=1e-15)


def test_grouped_stats_file_validates_round_trips_and_versions(parquet: str) -> None:
    import jsonschema

    stats = fit([parquet], by=["store"], weight="shelf", method_for={"y": "minmax"})
    text = dumps_stats(stats)
    doc = json.loads(text)
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    assert doc["version"] == 3 and doc["groups"]["keys"] == [[None], ["north"], ["o'hare"], ["south"]]
    assert dumps_stats(parse_stats(text)) == text
    doc["version"] = 4
    with pytest.raises(DataError, match="version 4 is newer than this normcli reads \\(version 3\\)"):
        parse_stats(json.dumps(doc))
    doc["version"] = 3
    doc["groups"]["columns"]["x"]["scale"][1] = -1.0
    with pytest.raises(DataError, match=r"groups.columns\['x'\].scale\[1\] must be positive"):
        parse_stats(json.dumps(doc))


def test_version_2_files_still_load(parquet: str) -> None:
    doc = json.loads(dumps_stats(fit([parquet], method_for={"y": "robust"})))
    doc["version"] = 2
    for key in ("quantile_range", "unit_variance", "by", "weight"):
        doc["options"].pop(key)
    doc["inputs"].pop("columns")
    robust = next(c for c in doc["columns"] if c["method"] == "robust")
    robust["q1"], robust["q3"] = robust.pop("q_low"), robust.pop("q_high")
    stats = parse_stats(json.dumps(doc))
    assert stats.by == () and stats.groups is None and stats.column("y").q_low == robust["q1"]
    assert stats.all_columns[:3] == ["shelf", "x", "y"]


def test_group_options_that_cannot_work(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("g,f,x\na,0.5,1\nb,1.5,2\n")
    with pytest.raises(UsageError, match="robust.*--by"):
        fit([str(path)], by=["g"], method="robust")
    with pytest.raises(DataError, match="--by column 'f' holds Float64 numbers"):
        fit([str(path)], by=["f"])
    with pytest.raises(UsageError, match="no column named 'nope'"):
        fit([str(path)], by=["nope"])
    with pytest.raises(UsageError, match="both --weight and --by"):
        fit([str(path)], by=["g"], weight="g")
    stats = fit([str(path)], by=["g"])
    with pytest.raises(DataError, match="group column 'g' of the stats"):
        from normcli.scaling.apply import apply_stats

        apply_stats(pl.LazyFrame({"f": [1.0], "x": [1.0]}), stats).collect()


def test_dyadic_totals_of_sums_are_exact_against_fractions() -> None:
    sums = ExactSums(1)
    sums.grow(1)
    values = [1e16, 1.0, -1e16, 2.0**-60, 3.0]
    for v in values:
        sums.add(np.array([[v]]))
    assert sums.totals(0, 1)[0] == Dyadic.from_expansion([4.0, 2.0**-60])


def test_keys_read_as_text_find_the_integer_groups_they_were_fitted_as(tmp_path: Path, monkeypatch) -> None:
    """CSV to CSV passes other columns through as text: '007' must still find the group 7."""
    monkeypatch.chdir(tmp_path)
    Path("k.csv").write_text("k,x\n007,1\n007,3\n8,10\n8,14\n")
    Path("new.csv").write_text("k,x\n007,2\n8,12\nabc,5\n")
    assert runner.invoke(app, ["fit", "k.csv", "--by", "k", "-o", "k.json", "-q"]).exit_code == 0
    assert parse_stats(Path("k.json").read_text()).groups.keys == ((7,), (8,))
    result = runner.invoke(app, ["transform", "new.csv", "-s", "k.json"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:3] == ["k,x", "007,0.0", "8,0.0"]  # the key passes through as written
    assert "1 row in 1 group not in the stats (k=abc)" in result.stderr


def test_an_input_without_the_by_or_weight_column_is_named_even_with_allow_missing_columns(tmp_path: Path) -> None:
    """--allow-missing-columns reads a missing *fitted* column as empty; a row without its group or
    its weight cannot be placed. It used to fail with Polars' 'unable to find column "g"'."""
    from normcli.scaling.check import check_data

    (tmp_path / "a.csv").write_text("g,x,w\na,1,1\na,3,2\nb,5,1\n")
    (tmp_path / "b.csv").write_text("x\n5\n7\n")
    paths = [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    with pytest.raises(DataError, match=r"b.csv: has no column 'g', which --by names"):
        fit(paths, by=["g"], allow_missing_columns=True, columns=["x"])
    with pytest.raises(DataError, match=r"b.csv: has no column 'w', which --weight names"):
        fit(paths, weight="w", allow_missing_columns=True, columns=["x"])
    stats = fit(paths[:1], by=["g"], weight="w", columns=["x"])
    report = check_data(paths, stats=stats)  # compared without groups and weights, and said so
    assert report.groups is None
    assert any("b.csv has no group column 'g'" in n for n in report.notes) and any("b.csv has no weight column 'w'" in n for n in report.notes)
    x = np.array([1.0, 3.0, 5.0, 5.0, 7.0])  # reference: the unweighted mean of all the new rows
    assert report.columns[0].mean_now == pytest.approx(x.mean())


def test_unknown_group_error_needs_parameters_only_for_values(tmp_path: Path) -> None:
    """A group whose column had no values when fitted has no parameters for it; its missing cells
    need none (they stay missing). Transforming the fitted data with --unknown-group error used
    to stop at the first such cell; a value in that group is still an error."""
    from normcli.scaling.apply import transform

    (tmp_path / "d.csv").write_text("g,x,y\na,1,1\na,3,2\nb,,5\nb,NA,6\n")
    stats = fit([str(tmp_path / "d.csv")], by=["g"])
    out = tmp_path / "o.csv"
    report = transform([str(tmp_path / "d.csv")], stats=stats, output=str(out), unknown_group="error")
    assert report.notes == []
    frame = pl.read_csv(tmp_path / "d.csv", null_values=["NA"])
    reference = frame.select(((pl.col("x") - pl.col("x").mean().over("g")) / pl.col("x").std(ddof=0).over("g")))
    assert pl.read_csv(out)["x"].to_list() == reference["x"].to_list() == [-1.0, 1.0, None, None]
    (tmp_path / "n.csv").write_text("g,x,y\nb,,5\nb,4,6\n")
    with pytest.raises(DataError, match="data row 2 is in the group g=b, which has no statistics for column 'x'"):
        transform([str(tmp_path / "n.csv")], stats=stats, output=str(out), unknown_group="error")
    report = transform([str(tmp_path / "n.csv")], stats=stats, output=str(out))
    assert report.notes == ["column 'x': 1 value in groups fitted without it got the pooled statistics"]
