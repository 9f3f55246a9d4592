"""The column-selection language (normcli/data/selection.py) and the options that use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import snapshot
from normcli.cli import app
from normcli.data.selection import named, select, split_items
from normcli.errors import UsageError

runner = CliRunner()
NAMES = ["id", "a,b", "f_1", "f_2", "f_text", "sensor_1", "sensor_x", "2020", "x*", " padded "]


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ('"a,b",c', ["a,b", "c"]),
        (' "q""uote" , x', ['q"uote', "x"]),
        ('" padded "', [" padded "]),
        ("a,,b,", ["a", "b"]),
        ("re:^x\\d{1,3}$", ["re:^x\\d{1", "3}$"]),  # a comma inside a regex needs quotes...
        ('"re:^x\\d{1,3}$"', ["re:^x\\d{1,3}$"]),  # ...like this
    ],
)
def test_items_split_at_commas_outside_quotes(text: str, items: list[str]) -> None:
    assert split_items(text, "--columns") == items


@pytest.mark.parametrize("text", ['"a,b', 'a,"b"c'])
def test_bad_quoting_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--columns"):
        split_items(text, "--columns")


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["f_*"], ["f_1", "f_2", "f_text"]),
        (["re:^sensor_\\d+$"], ["sensor_1"]),
        (["re:_\\d"], ["f_1", "f_2", "sensor_1"]),  # searched, not matched whole
        (["2-4"], ["a,b", "f_1", "f_2"]),
        (["7-"], ["sensor_x", "2020", "x*", " padded "]),
        (["3"], ["f_1"]),
        (["a,b"], ["a,b"]),
        (["2020"], ["2020"]),  # an exact name wins over an index
        (["x*"], ["x*"]),  # and over a glob
        ([" padded "], [" padded "]),
        (["f_2", "f_*", "1"], ["f_2", "f_1", "f_text", "id"]),  # order of the items; each column once
    ],
)
def test_select(patterns: list[str], expected: list[str]) -> None:
    assert select(patterns, NAMES, "--columns") == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("nope", "--columns: no column named 'nope'"),
        ("g_*", "--columns: 'g_*' matches no column"),
        ("re:^zz", "--columns: 're:^zz' matches no column"),
        ("11", "--columns: column 11 is out of range (there are 10 columns)"),
        ("0", "--columns: '0' is not a range of column numbers"),
        ("4-2", "--columns: '4-2' is not a range of column numbers"),
        ("re:(", "--columns: 're:(' is not a valid regular expression"),
    ],
)
def test_an_item_that_matches_nothing_is_an_error_naming_it(pattern: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        select([pattern], NAMES, "--columns")
    assert caught.value.message.startswith(message)
    if "matches no column" in message or "no column named" in message:
        assert caught.value.hint.startswith('columns are: id, "a,b", f_1')


def test_named_are_the_exact_names_only() -> None:
    assert named(["f_*", "id", "3", "2020"], NAMES, "--columns") == {"id", "2020"}


# --------------------------------------------------------------------------- through the commands


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(5)
    frame = pl.DataFrame(
        {
            "id": np.arange(1, 41),
            "a,b": rng.normal(size=40) * 3 + 1,
            "f_1": rng.normal(size=40),
            "f_2": rng.integers(0, 100, 40),
            "f_text": ["x", "y"] * 20,
            "sensor_1": rng.normal(size=40) * 1e3,
            "sensor_x": rng.normal(size=40),
            "y": (rng.normal(size=40) > 0).astype(int),
        }
    )
    frame.write_csv(tmp_path / "d.csv")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fit_doc(*args: str) -> dict:
    result = runner.invoke(app, ["fit", "d.csv", "-o", "-", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_fit_columns_by_glob_skips_the_text_columns_it_matches(data: Path) -> None:
    doc = fit_doc("--columns", "f_*")
    assert [c["name"] for c in doc["columns"]] == ["f_1", "f_2"]
    assert [s["name"] for s in doc["skipped_columns"]] == ["f_text"]
    frame = pl.read_csv(data / "d.csv")
    for column in doc["columns"]:
        values = frame[column["name"]].to_numpy().astype(float)
        assert column["mean"] == pytest.approx(values.mean(), rel=1e-15)
        assert column["std"] == pytest.approx(values.std(), rel=1e-15)


def test_fit_a_name_with_a_comma_in_quotes(data: Path) -> None:
    doc = fit_doc("--columns", '"a,b",sensor_1')
    assert [c["name"] for c in doc["columns"]] == ["a,b", "sensor_1"]
    values = pl.read_csv(data / "d.csv")["a,b"].to_numpy()
    assert doc["columns"][0]["std"] == pytest.approx(values.std(), rel=1e-15)


def test_fit_regex_range_exclude_and_method_for_patterns(data: Path) -> None:
    doc = fit_doc("--columns", "re:^sensor_", "--columns", "2-3", "--method-for", "sensor_*=minmax")
    assert [c["name"] for c in doc["columns"]] == ["a,b", "f_1", "sensor_1", "sensor_x"]
    assert {c["name"]: c["method"] for c in doc["columns"]} == {
        "a,b": "standard", "f_1": "standard", "sensor_1": "minmax", "sensor_x": "minmax",
    }
    doc = fit_doc("--exclude", "re:^(id|y)$,f_*")
    assert [c["name"] for c in doc["columns"]] == ["a,b", "sensor_1", "sensor_x"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "d.csv", "--columns", "g_*", "-o", "out.json"], "--columns: 'g_*' matches no column"),
        (["fit", "d.csv", "--exclude", "re:^zz", "-o", "out.json"], "--exclude: 're:^zz' matches no column"),
        (["fit", "d.csv", "--columns", "12", "-o", "out.json"], "--columns: column 12 is out of range (there are 8 columns)"),
        (["fit", "d.csv", "--columns", "f_text", "-o", "out.json"], "column 'f_text' is not numeric"),
        (["train", "d.csv", "--target", "y", "--features", "q*", "-o", "m.npz"], "--features: 'q*' matches no column"),
        (["train", "d.csv", "--target", "y", "--features", "y,f_1", "-o", "m.npz"], "'y' is both the target and a feature"),
    ],
)
def test_an_empty_match_is_an_error_and_writes_nothing(data: Path, args: list[str], message: str) -> None:
    before = snapshot(data)
    result = runner.invoke(app, args)
    assert result.exit_code in (1, 2) and result.stdout == ""
    assert result.stderr.startswith(f"normcli: error: {message}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert snapshot(data) == before


def test_train_features_and_predict_keep_by_pattern(data: Path) -> None:
    result = runner.invoke(
        app, ["train", "d.csv", "--target", "y", "--features", "re:^(f|sensor)_\\d", "--epochs", "1", "-o", "m.npz", "--json", "-q"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["features"] == ["f_1", "f_2", "sensor_1"]
    predicted = runner.invoke(app, ["predict", "d.csv", "--model", "m.npz", "--keep", '1,"a,b"', "-q"])
    assert predicted.exit_code == 0, predicted.stderr
    assert predicted.stdout.splitlines()[0] == 'id,"a,b",predicted_y,prob_0,prob_1'
