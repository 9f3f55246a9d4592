"""train / train --compare / predict end to end through the CLI, on generated data files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from normcli.cli import app
from normcli.learn.dataset import split_indices

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    """Three well-separated Gaussian classes, features on wildly different scales, some NAs."""
    rng = np.random.default_rng(0)
    n = 1500
    labels = rng.choice(["setosa", "versicolor", "virginica"], n)
    centers = {"setosa": (0.0, 0.0, 0.0), "versicolor": (4.0, 0.0, 4.0), "virginica": (0.0, 4.0, -4.0)}
    base = np.array([centers[label] for label in labels]) + rng.normal(0, 0.7, (n, 3))
    frame = pl.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "length_mm": base[:, 0] * 1000 + 20_000,
            "width": base[:, 1] * 0.001,
            "depth": base[:, 2],
            "species": labels,
        }
    )
    path = tmp_path_factory.mktemp("blobs") / "blobs.csv"
    frame.write_csv(path)
    text = path.read_text().splitlines()
    text[5] = text[5].replace(text[5].split(",")[3], "NA", 1)  # one missing feature value
    path.write_text("\n".join(text) + "\n")
    return path


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    n = 2000
    x = rng.normal(size=(n, 4)) * np.array([1.0, 10.0, 0.1, 5.0]) + np.array([0, 100, 0, -50])
    y = 3 * x[:, 0] - 0.2 * x[:, 1] + 15 * x[:, 2] + 0.4 * x[:, 3] + 1000 + rng.normal(0, 0.1, n)
    path = tmp_path_factory.mktemp("linear") / "linear.parquet"
    pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "price": y}).write_parquet(path)
    return path


def test_classification_reaches_095_and_predicts_labels(blobs: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.npz"
    result = invoke("train", str(blobs), "--target", "species", "--epochs", "15", "-o", str(model), "--json", "-q")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["task"] == "classification"
    assert doc["classes"] == ["setosa", "versicolor", "virginica"]
    assert doc["features"] == ["length_mm", "width", "depth"]  # sample_id is text: not a feature
    assert doc["final"]["val_accuracy"] >= 0.95
    assert doc["epochs_run"] == 15 and len(doc["history"]) == 15
    assert set(doc["history"][0]) >= {"epoch", "train_loss", "val_loss", "val_accuracy"}
    preds = tmp_path / "preds.csv"
    predicted = invoke("predict", str(blobs), "--model", str(model), "-o", str(preds), "--target", "species")
    assert predicted.exit_code == 0, predicted.stderr
    out = pl.read_csv(preds)
    assert out.columns == ["sample_id", "predicted_species", "prob_setosa", "prob_versicolor", "prob_virginica"]
    truth = pl.read_csv(blobs)["species"]
    assert (out["predicted_species"] == truth).mean() >= 0.95
    np.testing.assert_allclose(out.select(pl.sum_horizontal(pl.col("^prob_.*$"))).to_series().to_numpy(), 1.0, rtol=1e-5)
    assert "accuracy" in predicted.stderr


def test_regression_reaches_r2_090_in_original_units(linear: Path, tmp_path: Path) -> None:
    model = tmp_path / "reg.npz"
    result = invoke(
        "train", str(linear), "--target", "price", "--epochs", "40", "--lr", "0.01", "--optimizer", "adam",
        "-o", str(model), "--json", "-q",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["task"] == "regression"
    assert doc["final"]["val_r2"] >= 0.9
    y = pl.read_parquet(linear)["price"].to_numpy()
    assert doc["final"]["val_rmse"] < 0.5 * y.std()  # RMSE is in price units, not scaled ones
    predicted = invoke("predict", str(linear), "--model", str(model), "--target", "price", "-q")
    assert predicted.exit_code == 0
    out = pl.read_csv(predicted.stdout.encode())
    assert out.columns == ["row", "predicted_price"]
    residual = out["predicted_price"].to_numpy() - y
    assert 1 - np.sum(residual**2) / np.sum((y - y.mean()) ** 2) >= 0.9


def test_same_seed_gives_identical_metrics_and_model_bytes(blobs: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        model = tmp_path / f"{name}.npz"
        result = invoke("train", str(blobs), "--target", "species", "--epochs", "3", "--seed", "7", "-o", str(model), "--json", "-q")
        assert result.exit_code == 0
        doc = json.loads(result.stdout)
        doc.pop("model")
        runs.append((doc, model.read_bytes()))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    other = invoke("train", str(blobs), "--target", "species", "--epochs", "3", "--seed", "8", "-o", str(tmp_path / "c.npz"), "--json", "-q")
    assert json.loads(other.stdout)["history"] != runs[0][0]["history"]


def test_stats_are_fitted_on_the_training_split_only(blobs: Path, tmp_path: Path) -> None:
    from normcli.learn.modelfile import load_model

    model = tmp_path / "m.npz"
    assert invoke("train", str(blobs), "--target", "species", "--epochs", "1", "--val-split", "0.3", "-o", str(model), "-q").exit_code == 0
    _, meta = load_model(model)
    assert meta["input_stats_fitted_on_training_split"] is True
    assert meta["input_stats"]["inputs"]["row_count"] == 1050  # 70 % of 1500, not all rows


def test_given_stats_are_applied_and_stored(blobs: Path, tmp_path: Path) -> None:
    from normcli.learn.modelfile import load_model

    stats = tmp_path / "s.json"
    assert invoke("fit", str(blobs), "--method", "minmax", "-o", str(stats), "-q").exit_code == 0
    model = tmp_path / "m.npz"
    assert invoke("train", str(blobs), "--target", "species", "--stats", str(stats), "--epochs", "1", "-o", str(model), "-q").exit_code == 0
    _, meta = load_model(model)
    assert meta["input_stats"] == json.loads(stats.read_text())


def test_stratified_split_keeps_class_proportions_and_is_seeded() -> None:
    y = np.array([0] * 80 + [1] * 20)
    train, val = split_indices(y, 0.25, seed=3, stratify=True)
    assert len(val) == 25 and (y[val] == 1).sum() == 5
    assert not set(train) & set(val) and len(train) + len(val) == 100
    again = split_indices(y, 0.25, seed=3, stratify=True)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(split_indices(y, 0.25, seed=4, stratify=True)[1], val)


def test_compare_shows_three_settings_per_learning_rate(blobs: Path, tmp_path: Path) -> None:
    plot = tmp_path / "curves.png"
    result = invoke(
        "train", str(blobs), "--target", "species", "--compare", "--lr", "0.01,0.5", "--epochs", "4",
        "--json", "-q", "--plot", str(plot),
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    settings = [(run["lr"], run["inputs"], run["batchnorm"]) for run in doc["runs"]]
    assert settings == [
        (0.01, "raw", "none"), (0.01, "normalized", "none"), (0.01, "normalized", "after"),
        (0.5, "raw", "none"), (0.5, "normalized", "none"), (0.5, "normalized", "after"),
    ]
    for run in doc["runs"]:
        for row in run["history"]:
            assert all(np.isfinite(v) for v in row.values() if isinstance(v, float))
    raw, normalized = doc["runs"][0], doc["runs"][1]
    # features in the tens of thousands: raw inputs give huge first-layer gradients
    assert raw["grad_norm_first_layer"] > 100 * normalized["grad_norm_first_layer"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = invoke("train", str(blobs), "--target", "species", "--compare", "--epochs", "2", "-q")
    assert "epochs to target" in table.stdout and "normalized" in table.stdout


def test_divergence_stops_with_a_clear_error_and_no_model(linear: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    result = invoke("train", str(linear), "--target", "price", "--features", "a,b", "--stats", "/dev/null", "-o", str(model))
    assert result.exit_code == 1  # /dev/null is not a stats file
    result = invoke("train", str(linear), "--target", "price", "--optimizer", "sgd", "--lr", "1e6", "--no-batchnorm", "-o", str(model), "--epochs", "3")
    assert result.exit_code == 1
    assert "diverged" in result.stderr and "--lr" in result.stderr
    assert "nan" not in result.stdout.lower()
    assert not model.exists()


def test_data_errors_name_the_problem(blobs: Path, tmp_path: Path) -> None:
    missing = invoke("train", str(blobs), "--target", "colour")
    assert missing.exit_code == 2 and "no target column named 'colour'" in missing.stderr
    one_class = tmp_path / "one.csv"
    one_class.write_text("x,y\n1,a\n2,a\n3,a\n4,a\n")
    single = invoke("train", str(one_class), "--target", "y", "-o", str(tmp_path / "m.npz"))
    assert single.exit_code == 1 and "single class" in single.stderr
    holes = tmp_path / "holes.csv"
    holes.write_text("x,y\n,\n,\n")
    nulls = invoke("train", str(holes), "--target", "y", "-o", str(tmp_path / "m.npz"))
    assert nulls.exit_code == 1 and "target 'y' has no values" in nulls.stderr
    model = tmp_path / "m.npz"
    assert invoke("train", str(blobs), "--target", "species", "--epochs", "1", "-o", str(model), "-q").exit_code == 0
    no_features = tmp_path / "no_features.csv"
    no_features.write_text("sample_id,length_mm\ns1,20000\n")
    result = invoke("predict", str(no_features), "--model", str(model))
    assert result.exit_code == 1 and "'width', 'depth'" in result.stderr
