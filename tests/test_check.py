"""``normcli check``: new data against the stats, each measure computed independently with numpy.

Exit 0 within the thresholds and 1 beyond (so ``check && transform`` works in a script); the
table on stdout, the verdict on stderr; ``--json`` for machines.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import NORMCLI
from normcli.cli import app
from normcli.errors import UsageError
from normcli.scaling.check import Thresholds, check_data
from normcli.scaling.fit import fit

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    rng = np.random.default_rng(9)
    n = 20_000
    train = pl.DataFrame({
        "a": rng.normal(10, 2, n),
        "b": rng.exponential(3, n),
        "c": rng.integers(0, 100, n),
        "label": rng.choice(["x", "y"], n),
    })
    train.write_parquet(tmp_path / "train.parquet")
    same = pl.DataFrame({"a": rng.normal(10, 2, 5000), "b": rng.exponential(3, 5000), "c": rng.integers(0, 100, 5000), "label": "x"})
    same.write_parquet(tmp_path / "same.parquet")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["fit", "train.parquet", "-o", "stats.json", "-q"]).exit_code == 0
    return tmp_path


def check(*args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["check", *args, "-s", "stats.json", "--json"])
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_data_like_the_fit_pass(folder: Path) -> None:
    code, doc, stderr = check("same.parquet")
    assert code == 0 and doc["ok"] and "check passed" in stderr
    train = pl.read_parquet("train.parquet")
    same = pl.read_parquet("same.parquet")
    for column in doc["columns"]:
        name = column["name"]
        then, now = train[name].to_numpy().astype(float), same[name].to_numpy().astype(float)
        assert column["shift"] == pytest.approx((now.mean() - then.mean()) / then.std(), rel=1e-9, abs=1e-12)
        assert column["std_ratio"] == pytest.approx(now.std() / then.std(), rel=1e-12)
        outside = int(((now < then.min()) | (now > then.max())).sum())
        assert column["outside"] == {"count": outside, "share": outside / len(now)}
        assert column["count"] == {"then": 20_000, "now": 5000}
    assert doc["rows"] == {"then": 20_000, "now": 5000}


def test_each_kind_of_drift_fails_and_is_named(folder: Path) -> None:
    rng = np.random.default_rng(1)
    b = rng.exponential(3, 5000)
    b[:400] = np.nan  # 8% missing, none before
    drifted = pl.DataFrame({
        "a": rng.normal(11, 2, 5000),  # mean + 0.5 SD
        "b": pl.Series(b, nan_to_null=False),
        "c": rng.integers(0, 100, 5000) * 3,  # std x 3, two thirds out of range
        "label": "x",
    })
    drifted.write_parquet("drifted.parquet")
    code, doc, stderr = check("drifted.parquet")
    assert code == 1 and not doc["ok"] and "check failed" in stderr
    problems = {c["name"]: " ".join(c["problems"]) for c in doc["columns"]}
    assert "mean shifted +0.4" in problems["a"] or "mean shifted +0.5" in problems["a"]
    assert "missing 0.0% → 8.0%" in problems["b"]
    assert "std ratio 2.9" in problems["c"] and "outside the fitted range" in problems["c"]
    # thresholds are options
    code, doc, _ = check("drifted.parquet", "--max-shift", "4", "--max-null-rate-change", "0.1", "--max-std-ratio", "4", "--max-out-of-range", "0.9")
    assert code == 0, doc["verdict"]


def test_missing_new_and_retyped_columns(folder: Path) -> None:
    pl.DataFrame({"a": [1.0, 2.0], "b": ["p", "q"], "new": [1, 2]}).write_parquet("odd.parquet")
    code, doc, _ = check("odd.parquet")
    assert code == 1
    by_name = {c["name"]: c for c in doc["columns"]}
    assert by_name["c"]["problems"] == ["is missing"] and doc["missing_columns"] == ["c"]
    assert by_name["b"]["problems"] == ["is String now, not numeric"]
    assert doc["new_columns"] == ["new"]
    pl.DataFrame({"a": [9.0, 11.0], "b": [3.0, 2.0], "c": [40.5, 60.5], "label": ["x", "y"]}).write_parquet("floats.parquet")
    code, doc, _ = check("floats.parquet", "--max-shift", "10", "--max-std-ratio", "100", "--max-out-of-range", "1")
    c = next(col for col in doc["columns"] if col["name"] == "c")
    assert c["notes"] == ["type Int64 → Float64"] and code == 0



def test_infinite_values_are_named_not_taken_for_too_few_values(folder: Path) -> None:
    """An infinity among finite values is left out of the sums (fit refuses it): check used to
    report 'has too few values (or too little weight) for a standard deviation'."""
    pl.DataFrame({"a": [9.0, float("inf"), 11.0, float("-inf")], "b": [3.0, 2.0, 3.0, 2.0], "c": [40, 60, 50, 50], "label": "x"}).write_parquet("inf.parquet")
    code, doc, stderr = check("inf.parquet", "--max-shift", "10", "--max-std-ratio", "100", "--max-out-of-range", "1")
    a = next(col for col in doc["columns"] if col["name"] == "a")
    assert code == 1 and a["problems"] == ["holds 2 infinite values"]
    assert "a (holds 2 infinite values)" in stderr

def test_already_transformed_data_are_recognised(folder: Path) -> None:
    assert runner.invoke(app, ["transform", "same.parquet", "-s", "stats.json", "-o", "scaled.parquet", "-q"]).exit_code == 0
    code, doc, stderr = check("scaled.parquet")
    assert code == 1 and doc["transformed"]
    assert "already transformed" in stderr and "scale them twice" in doc["verdict"]


def test_the_table_is_the_default_and_a_pipe_reads_like_a_file(folder: Path) -> None:
    result = runner.invoke(app, ["check", "same.parquet", "-s", "stats.json"])
    assert result.exit_code == 0
    assert "OK: same.parquet (5000 rows) against stats.json (20000 rows)" in result.stdout
    assert "mean shift (SD)" in result.stdout and "[min, max]" in result.stdout
    pl.read_parquet("same.parquet").write_csv("same.csv")
    piped = subprocess.run([*NORMCLI, "check", "-s", "stats.json", "--json"], input=Path("same.csv").read_bytes(), capture_output=True, timeout=60)
    from_file = runner.invoke(app, ["check", "same.csv", "-s", "stats.json", "--json"])
    assert piped.returncode == 0
    piped_doc, file_doc = json.loads(piped.stdout), json.loads(from_file.stdout)
    piped_doc.pop("inputs"), file_doc.pop("inputs")
    assert piped_doc == file_doc


def test_check_in_a_script_gates_transform(folder: Path) -> None:
    pl.DataFrame({"a": [100.0], "b": [1.0], "c": [5], "label": ["x"]}).write_parquet("bad.parquet")
    script = (
        f"{' '.join(NORMCLI)} check bad.parquet -s stats.json -q > /dev/null && "
        f"{' '.join(NORMCLI)} transform bad.parquet -s stats.json -o out.parquet -q"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 1 and not Path("out.parquet").exists()


def test_groups_and_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    train = pl.DataFrame({"store": rng.choice(["a", "b"], 4000), "x": rng.normal(size=4000), "w": rng.integers(1, 3, 4000)})
    train.write_parquet(tmp_path / "t.parquet")
    stats = fit([str(tmp_path / "t.parquet")], by=["store"], weight="w")
    new = pl.DataFrame({"store": rng.choice(["a", "b", "c"], 3000), "x": rng.normal(size=3000)})
    new.write_parquet(tmp_path / "n.parquet")
    report = check_data([str(tmp_path / "n.parquet")], stats=stats)
    assert report.groups["unseen"] == {"groups": 1, "rows": int((new["store"] == "c").sum()), "keys": [["c"]]}
    assert any("n.parquet has no weight column 'w'" in note for note in report.notes)
    x = report.columns[0]
    assert x.worst_group is not None and x.worst_group[0].startswith("store=")


def test_bad_thresholds_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--max-std-ratio"):
        Thresholds(max_std_ratio=0.5)
    with pytest.raises(UsageError, match="--max-shift"):
        Thresholds(max_shift=-1)


def test_group_keys_are_read_as_transform_reads_them(tmp_path: Path) -> None:
    """Text keys that look like numbers ("007") stay text, and an integer column of a Parquet
    file finds the text keys "1" and "7": the groups check counts as unseen exactly the rows
    transform gives the pooled statistics (reference: the key sets compared in Python)."""
    (tmp_path / "t.csv").write_text("key,x\n1,10\n1,12\na,0\na,2\n007,100\n007,104\n")
    stats = fit([str(tmp_path / "t.csv")], by=["key"])
    assert sorted(k[0] for k in stats.groups.keys) == ["007", "1", "a"]
    (tmp_path / "n.csv").write_text("key,x\n1,10\n007,100\nNA,3\n")  # only numeric-looking keys, and a null
    report = check_data([str(tmp_path / "n.csv")], stats=stats)
    assert report.groups["unseen"] == {"groups": 1, "rows": 1, "keys": [[None]]}
    x = report.columns[0]
    group_1 = np.array([10.0, 12.0])
    assert x.worst_group == ("key=1", pytest.approx((10.0 - group_1.mean()) / group_1.std()))
    pl.DataFrame({"key": [1, 7], "x": [10.0, 100.0]}).write_parquet(tmp_path / "n.parquet")
    report = check_data([str(tmp_path / "n.parquet")], stats=stats)
    assert report.groups["unseen"] == {"groups": 1, "rows": 1, "keys": [["7"]]}
    assert report.groups["now"] == 2
    (tmp_path / "no-key.csv").write_text("x\n10\n11\n")  # no group column: checked without groups
    report = check_data([str(tmp_path / "no-key.csv")], stats=stats)
    assert report.groups is None and any("no-key.csv has no group column 'key'" in note for note in report.notes)


def test_a_single_row_is_judged_by_its_mean_not_by_a_spread_it_cannot_have(folder: Path) -> None:
    """One row's std is 0: the std ratio would always fail. Its shift still counts."""
    train = pl.read_parquet("train.parquet")
    near = {name: float(train[name].mean()) for name in ("a", "b", "c")}
    pl.DataFrame({**{k: [v] for k, v in near.items()}, "label": ["x"]}).write_csv("one.csv")
    code, doc, _ = check("one.csv")
    assert code == 0 and doc["ok"], doc
    assert all(c["std_ratio"] == 0 for c in doc["columns"] if c["name"] != "label")
    far = {**near, "a": near["a"] + 10 * float(train["a"].std(ddof=0))}  # 10 SD away
    pl.DataFrame({**{k: [v] for k, v in far.items()}, "label": ["x"]}).write_csv("far.csv")
    code, doc, _ = check("far.csv")
    assert code == 1
    problems = {c["name"]: c["problems"] for c in doc["columns"]}
    assert any("mean shifted" in p for p in problems["a"]) and not problems["b"]
