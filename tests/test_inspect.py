"""normcli inspect: stats files (table, CSV, JSON) and model files (a description)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from normcli.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A model trained by the command (classes, a categorical feature, an id column) and the
    metrics train printed."""
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(3)
    n = 300
    x1, x2 = rng.normal(size=n) * 10 + 50, rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n)
    label = np.where(x1 + 10 * x2 > 50, "yes", "no")
    pl.DataFrame({"row_id": np.arange(n), "x1": x1, "x2": x2, "colour": colour, "label": label}).write_csv(folder / "d.csv")
    result = runner.invoke(
        app, ["train", str(folder / "d.csv"), "--target", "label", "--epochs", "4", "-o", str(folder / "m.npz"), "--json", "-q"]
    )
    assert result.exit_code == 0, result.stderr
    return folder / "m.npz", json.loads(result.stdout)


def test_inspect_a_model_describes_it(trained) -> None:
    model, metrics = trained
    result = runner.invoke(app, ["inspect", str(model)])
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert f"{model}: a classification model of 'label' (2 classes: no, yes)" in text
    assert "network: 5 → 64 → 64 → 2 (relu, batch norm after each activation); float32;" in text
    parameters = 5 * 64 + 64 + 2 * 64 + 64 * 64 + 64 + 2 * 64 + 64 * 2 + 2  # W, b and gamma, beta of each layer
    assert f"{parameters:,} parameters" in text
    assert "training: adam, lr 0.003, batch 32, up to 4 epochs (early stopping 20), seed 0" in text
    final = metrics["final"]
    assert f"val_accuracy {final['val_accuracy']:.6g}" in text and f"val_loss {final['val_loss']:.6g}" in text
    assert f"{metrics['rows']['train']:,} training rows, {metrics['rows']['validation']:,} validation rows" in text
    assert "left out as ids: row_id" in text
    assert "blue, green, red" in text  # the one-hot categories, sorted as train learned them


def test_inspect_a_model_as_json_and_csv(trained) -> None:
    model, metrics = trained
    doc = json.loads(runner.invoke(app, ["inspect", str(model), "--json"]).stdout)
    assert doc["format"] == "normcli-mlp" and doc["target"] == "label" and doc["class_labels"] == ["no", "yes"]
    assert doc["metrics"]["final"] == metrics["final"] and doc["metrics"]["epochs_run"] == metrics["epochs_run"]
    assert doc["config"]["hidden"] == [64, 64]
    with np.load(model, allow_pickle=False) as arrays:  # the parameters, counted independently
        counted = sum(arrays[n].size for n in arrays.files if n.rsplit(".", 1)[-1] in ("W", "b", "gamma", "beta"))
    assert doc["parameters"] == counted
    table = pl.read_csv(runner.invoke(app, ["inspect", str(model), "--csv"]).stdout.encode())
    assert table["feature"].to_list() == metrics["features"]
    numeric = {f["name"]: f for f in doc["features"] if f["kind"] == "numeric"}
    for row in table.filter(pl.col("kind") == "numeric").iter_rows(named=True):
        assert (row["center"], row["scale"]) == (numeric[row["feature"]]["center"], numeric[row["feature"]]["scale"])
    assert table.filter(pl.col("feature") == "colour")["categories"].to_list() == ["blue|green|red"]


def test_a_model_piped_to_inspect_dash_is_named_with_the_way_to_pipe_one(trained, tmp_path: Path) -> None:
    """'-' carries stats only; a model there used to be "the stats are not UTF-8 text"."""
    import subprocess

    from conftest import NORMCLI

    done = subprocess.run([*NORMCLI, "inspect", "-"], input=trained[0].read_bytes(), capture_output=True, cwd=tmp_path)
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "holds a zip archive (a model?), not stats" in lines[0] and "<(cat model.npz)" in lines[0]
    assert done.stdout == b"" and list(tmp_path.iterdir()) == []


def test_json_and_csv_together_are_a_usage_error(trained) -> None:
    model, _ = trained
    result = runner.invoke(app, ["inspect", str(model), "--json", "--csv"])
    assert result.exit_code == 2 and "--json and --csv cannot be combined" in result.stderr


def test_a_model_from_an_older_normcli_says_its_outcome_was_not_stored(trained, tmp_path: Path) -> None:
    from normcli.learn.modelfile import load_model, save_model

    model, extra = load_model(trained[0])
    del extra["metrics"]
    save_model(model, tmp_path / "old.npz", extra=extra)
    result = runner.invoke(app, ["inspect", str(tmp_path / "old.npz")])
    assert result.exit_code == 0 and "outcome: not stored in this model file" in result.stdout
