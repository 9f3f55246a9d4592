"""What a practitioner meets around the network: features, ids, targets, stats, predict, compare.

Each behaviour is checked against a reference computed here independently (counts from the
data, chance level from the class frequencies, medians of hand-made histories).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from normcli.cli import app
from normcli.learn.columns import id_like_columns, is_id_like
from normcli.learn.compare import (
    DIVERGENCE_FACTOR,
    ComparisonRow,
    default_target_loss,
    divergence,
    epochs_to_target,
)
from normcli.learn.modelfile import load_model
from normcli.nn import MLP, MLPConfig, TrainConfig, TrainResult

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def train_json(*args: str) -> dict:
    result = invoke("train", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- data sets


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    """The class is a function of a text category only; the numbers are noise."""
    rng = np.random.default_rng(3)
    n = 800
    colour = rng.choice(["red", "green", "blue", "amber"], n)
    label = np.where(np.isin(colour, ["red", "blue"]), "yes", "no")
    frame = pl.DataFrame({"colour": colour, "noise1": rng.normal(size=n), "noise2": rng.normal(size=n) * 50, "label": label})
    path = tmp_path_factory.mktemp("colours") / "colours.csv"
    frame.write_csv(path)
    return path


@pytest.fixture(scope="module")
def sorted_with_id(tmp_path_factory) -> Path:
    """Rows sorted by class with a row number (named and unnamed): the penguins trap."""
    rng = np.random.default_rng(4)
    n = 600
    label = np.sort(rng.choice(["a", "b", "c"], n))
    centers = {"a": 0.0, "b": 0.6, "c": 1.2}
    x = np.array([centers[v] for v in label]) + rng.normal(0, 1.0, n)
    frame = pl.DataFrame(
        {"id": np.arange(1, n + 1), "seq": np.arange(1000, 1000 + n) * 3, "x": x, "income": rng.integers(10_000, 10_000_000, n), "label": label}
    )
    path = tmp_path_factory.mktemp("ids") / "sorted.csv"
    frame.write_csv(path)
    return path


# --------------------------------------------------------------------------- categorical features


def test_one_hot_category_gives_accuracy_one_and_chance_without(colours: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    doc = train_json(colours, "--target", "label", "--epochs", "15", "-o", model, "-q")
    assert doc["features"] == ["colour", "noise1", "noise2"]
    assert {"colour=amber", "colour=blue", "colour=green", "colour=red"} <= set(doc["encoded_features"])
    assert doc["final"]["val_accuracy"] == 1.0
    without = train_json(colours, "--target", "label", "--exclude", "colour", "--epochs", "15", "-o", tmp_path / "n.npz", "-q")
    labels = pl.read_csv(colours)["label"].to_numpy()
    chance = max(np.mean(labels == "yes"), np.mean(labels == "no"))
    assert without["final"]["val_accuracy"] < chance + 0.1
    _, meta = load_model(model)
    stored = {f["name"]: f for f in meta["features"]}
    assert stored["colour"]["kind"] == "categorical"
    assert stored["colour"]["categories"] == ["amber", "blue", "green", "red"]


def test_categories_come_from_the_training_split_only(tmp_path: Path) -> None:
    from normcli.learn.dataset import DataOptions, prepare
    from normcli.learn._seam import ReadOptions, open_inputs

    rng = np.random.default_rng(5)
    n = 200
    colour = rng.choice(["red", "green"], n).astype(object)
    colour[-1] = "violet"  # one row with a category of its own
    path = tmp_path / "c.csv"
    pl.DataFrame({"colour": colour, "x": rng.normal(size=n), "y": rng.normal(size=n)}).write_csv(path)
    held_out = 0
    for seed in range(6):
        with open_inputs([str(path)], ReadOptions()) as inputs:
            prepared = prepare(inputs, DataOptions(target="y", val_split=0.5, seed=seed))
        categories = set(prepared.encoder.categorical[0].categories)
        assert categories == set(prepared.frame_train["colour"].to_list())
        held_out += "violet" in set(prepared.frame_val["colour"].to_list())
        assert ("violet" in categories) != ("violet" in set(prepared.frame_val["colour"].to_list()))
    assert held_out  # at least one split kept the lone category out of training


def test_max_categories_folds_the_rare_ones_into_other(tmp_path: Path) -> None:
    from normcli.learn.features import learn_categories

    values = pl.Series("c", ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"] + [None] * 2)
    categories, folded, kind = learn_categories(values, max_categories=3)
    assert kind == "text" and categories == ("a", "b") and set(folded) == {"c", "d", "e", None}
    assert learn_categories(values, None)[0] == ("a", "b", "c", "d", "e", None)
    assert learn_categories(pl.Series("i", [3, 1, 3, None]), None) == ((1, 3, None), (), "number")


def test_integer_columns_with_few_values_are_categories(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    n = 300
    code = rng.integers(1, 6, n)
    path = tmp_path / "codes.csv"
    pl.DataFrame({"code": code, "amount": rng.integers(0, 10_000, n), "y": np.isin(code, [2, 4]).astype(int)}).write_csv(path)
    doc = train_json(path, "--target", "y", "--epochs", "10", "-o", tmp_path / "m.npz", "-q")
    assert "code=2" in doc["encoded_features"] and "amount" in doc["encoded_features"]
    forced = train_json(path, "--target", "y", "--numeric", "code", "--epochs", "1", "-o", tmp_path / "n.npz", "-q")
    assert "code" in forced["encoded_features"]


# --------------------------------------------------------------------------- id-like columns


def test_is_id_like_rules() -> None:
    assert is_id_like("id", pl.Float64, 3, 10) == "its name"
    assert is_id_like("PassengerId", pl.Int64, 3, 10) == "its name"
    assert is_id_like("valid", pl.Int64, 3, 10) is None
    assert is_id_like("name", pl.String, 10, 10) is not None
    assert is_id_like("name", pl.String, 9, 10) is None
    assert is_id_like("n", pl.Int64, 10, 10, sequential=True) is not None
    assert is_id_like("income", pl.Int64, 10, 10, sequential=False) is None
    assert is_id_like("income", pl.Int64, 10, 10) is not None  # unknown order: say so (a warning)
    assert is_id_like("x", pl.Float64, 10, 10) is None


def test_id_like_columns_one_query(sorted_with_id: Path) -> None:
    found = id_like_columns(pl.scan_csv(sorted_with_id))
    assert set(found) == {"id", "seq"}


def test_sorted_id_column_is_not_a_feature(sorted_with_id: Path, tmp_path: Path) -> None:
    result = invoke("train", sorted_with_id, "--target", "label", "--epochs", "5", "-o", tmp_path / "m.npz", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["features"] == ["x", "income"]
    assert re.search(r"left out id-like columns: id \(its name\), seq \(", result.stderr)
    # the trap it avoids: the sorted id alone predicts the class almost perfectly
    leaky = train_json(sorted_with_id, "--target", "label", "--features", "id", "--epochs", "30", "-o", tmp_path / "l.npz", "-q")
    assert leaky["final"]["val_accuracy"] > doc["final"]["val_accuracy"] + 0.2
    predicted = invoke("predict", sorted_with_id, "--model", tmp_path / "m.npz", "-q")
    assert predicted.exit_code == 0
    assert pl.read_csv(predicted.stdout.encode()).columns[:2] == ["id", "seq"]


# --------------------------------------------------------------------------- targets and stats


def test_rows_with_a_missing_target_are_dropped_with_a_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 200
    x = rng.normal(size=n)
    y = pl.Series("y", np.where(x > 0, "p", "n")).scatter([3, 10, 11], None)
    path = tmp_path / "t.csv"
    pl.DataFrame({"x": x, "y": y}).write_csv(path)
    result = invoke("train", path, "--target", "y", "--epochs", "2", "-o", tmp_path / "m.npz", "--json")
    assert result.exit_code == 0, result.stderr
    assert "dropped 3 of 200 rows whose target 'y' is missing (data rows 4, 11, 12)" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["rows"]["train"] + doc["rows"]["validation"] == 197
    assert doc["rows"]["dropped_missing_target"] == 3


def test_train_stats_reads_missing_values_with_the_stats_files_tokens(tmp_path: Path) -> None:
    from normcli.learn.dataset import DataOptions
    from normcli.learn.train import train

    rng = np.random.default_rng(8)
    n = 300
    x = rng.normal(10, 2, n).round(3)
    text = [str(v) for v in x]
    for i in (5, 17, 40, 41):
        text[i] = "-999"
    path = tmp_path / "d.csv"
    pl.DataFrame({"x": text, "z": rng.normal(size=n), "y": (x > 10).astype(int)}).write_csv(path)
    stats = tmp_path / "s.json"
    assert invoke("fit", path, "--exclude", "y", "--null-values", "-999", "-o", stats, "-q").exit_code == 0
    report = train([str(path)], DataOptions(target="y", stats_path=str(stats), val_split=0.0), model_path=None)
    expected = sum(1 for t in text if t == "-999")
    imputed = [note for note in report.prepared.notes if note.startswith("imputed")]
    assert imputed and f"imputed missing feature values ({expected} in {expected} training rows" in imputed[0]
    # the -999 cells are not numbers to the network: no value far below the others
    assert report.prepared.X_train[:, 0].min() > -10


def test_already_transformed_data_warn_with_stats(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    n = 400
    raw = tmp_path / "raw.csv"
    pl.DataFrame({"a": rng.normal(50, 10, n), "b": rng.normal(-3, 0.1, n), "y": rng.integers(0, 2, n)}).write_csv(raw)
    stats = tmp_path / "s.json"
    assert invoke("fit", raw, "--exclude", "y", "-o", stats, "-q").exit_code == 0
    scaled = tmp_path / "scaled.csv"
    assert invoke("transform", raw, "--stats", stats, "-o", scaled, "-q").exit_code == 0
    twice = invoke("train", scaled, "--target", "y", "--stats", stats, "--epochs", "1", "-o", tmp_path / "m.npz")
    assert twice.exit_code == 0 and "warning: the data already look transformed" in twice.stderr
    once = invoke("train", raw, "--target", "y", "--stats", stats, "--epochs", "1", "-o", tmp_path / "n.npz")
    assert once.exit_code == 0 and "already look transformed" not in once.stderr


# --------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def colour_model(colours: Path, tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("cm") / "m.npz"
    assert invoke("train", colours, "--target", "label", "--epochs", "5", "-o", model, "-q").exit_code == 0
    return model


def test_predict_keep_columns(colours: Path, colour_model: Path) -> None:
    default = pl.read_csv(invoke("predict", colours, "--model", colour_model, "-q").stdout.encode())
    assert default.columns[0] == "row" and default["row"].to_list()[:3] == [1, 2, 3]
    everything = pl.read_csv(invoke("predict", colours, "--model", colour_model, "--keep", "all", "-q").stdout.encode())
    source = pl.read_csv(colours)
    assert everything.columns[: source.width] == source.columns
    assert everything.select(source.columns).equals(source)
    some = pl.read_csv(invoke("predict", colours, "--model", colour_model, "--keep", "noise1,colour", "-q").stdout.encode())
    assert some.columns[:3] == ["noise1", "colour", "predicted_label"]
    bad = invoke("predict", colours, "--model", colour_model, "--keep", "nope")
    assert bad.exit_code == 2 and "--keep: no column named 'nope'" in bad.stderr


def test_predict_counts_imputed_rows_and_can_refuse_them(colours: Path, colour_model: Path, tmp_path: Path) -> None:
    frame = pl.read_csv(colours).head(50)
    frame = frame.with_columns(
        pl.Series("noise1", frame["noise1"]).scatter([2, 7], None),
        pl.Series("noise2", frame["noise2"]).scatter([7, 9], None),
    )
    holes = tmp_path / "holes.csv"
    frame.write_csv(holes)
    rows_with_holes = int(frame.select(pl.any_horizontal(pl.col("noise1", "noise2").is_null())).to_series().sum())
    result = invoke("predict", holes, "--model", colour_model)
    assert result.exit_code == 0
    assert f"{rows_with_holes} of 50 rows had missing feature values, imputed (4 values" in result.stderr
    refused = invoke("predict", holes, "--model", colour_model, "--missing", "error")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert f"{rows_with_holes} rows have missing feature values (data rows 3, 8, 10)" in refused.stderr
    assert refused.stderr.count("\n") == 1


def test_unseen_categories_encode_as_zero_or_are_refused(colours: Path, colour_model: Path, tmp_path: Path) -> None:
    frame = pl.read_csv(colours).head(20)
    frame = frame.with_columns(pl.Series("colour", frame["colour"]).scatter([0, 5, 6], "violet"))
    path = tmp_path / "new.csv"
    frame.write_csv(path)
    result = invoke("predict", path, "--model", colour_model, "--keep", "colour")
    assert result.exit_code == 0
    assert "categories not seen in training, encoded as all-zero: 'colour': 3 rows ('violet')" in result.stderr
    refused = invoke("predict", path, "--model", colour_model, "--unknown", "error")
    assert refused.exit_code == 1 and "'colour': 3 rows" in refused.stderr


# --------------------------------------------------------------------------- compare rules


def fake_result(val_losses: list[float], initial: float | None, stopped: bool = False) -> TrainResult:
    model = MLP(MLPConfig(2, 2, hidden=(2,)))
    history = [
        {"epoch": i + 1, "lr": 0.1, "train_loss": v, "val_loss": v, "grad_norm_first_layer": 1.0, "val_accuracy": 0.5}
        for i, v in enumerate(val_losses)
    ]
    result = TrainResult(model=model, config=TrainConfig(lr=0.1), history=history, diverged=stopped,
                         divergence_message="diverged" if stopped else None, initial_val_loss=initial)  # fmt: skip
    result.model_epoch = len(history)
    return result


def row(name: str, val_losses: list[float], initial: float | None = 1.0, stopped: bool = False) -> ComparisonRow:
    return ComparisonRow.from_result(name, "normalized", "none", fake_result(val_losses, initial, stopped))


def test_one_runs_dip_cannot_set_the_target_loss() -> None:
    steady = [row("a", [0.9, 0.5, 0.4, 0.35]), row("b", [0.8, 0.6, 0.45, 0.42])]
    dipper = row("c", [0.7, 1e-6, 3.0, 51.0])
    target = default_target_loss([*steady, dipper])
    assert target == float(np.median([0.35, 0.42, 1e-6]))
    # the old rule, 1.1 x the lowest loss, would be reached by the dipping run only
    assert [epochs_to_target(r.result.history, target) for r in [*steady, dipper]] == [4, None, 2]
    assert sum(epochs_to_target(r.result.history, 1.1 * 1e-6) is not None for r in [*steady, dipper]) == 1


def test_divergence_rule() -> None:
    grew = row("g", [0.9, 2.0, 4.6e21], initial=1.1)
    assert grew.diverged and grew.diverged_because.startswith("last loss")
    assert divergence(fake_result([0.9, 10.9], initial=1.1)) is None  # 9.9 x: not yet
    assert divergence(fake_result([0.9, 11.1], initial=1.1)) is not None  # above 10 x
    assert DIVERGENCE_FACTOR == 10.0
    stopped = row("s", [0.9], stopped=True)
    assert stopped.diverged and "non-finite" in stopped.diverged_because
    assert not row("ok", [0.9, 0.5]).diverged
    assert row("zero", [0.5, 0.0]).best_val_loss == 0.0


def test_compare_output_option_is_a_usage_error(colours: Path, tmp_path: Path) -> None:
    result = invoke("train", colours, "--target", "label", "--compare", "-o", tmp_path / "m.npz")
    assert result.exit_code == 2 and "--compare writes no model" in result.stderr
    assert not (tmp_path / "m.npz").exists()


def test_compare_sweeps_bn_placement_and_prints_full_numbers_when_piped(colours: Path) -> None:
    result = invoke("train", colours, "--target", "label", "--compare", "--epochs", "3",
                    "--lr", "0.01,2000", "--bn-placement", "before,after", "-q", "--metrics-out", "-")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc, end = json.JSONDecoder().raw_decode(result.stdout)
    table = result.stdout[end:]
    assert [(r["lr"], r["inputs"], r["batchnorm"]) for r in doc["runs"]] == [
        (lr, inputs, bn) for lr in (0.01, 2000.0)
        for inputs, bn in [("raw", "none"), ("normalized", "none"), ("normalized", "before"), ("normalized", "after")]
    ]  # fmt: skip
    bests = [r["best_val_loss"] for r in doc["runs"] if r["best_val_loss"] is not None]
    assert doc["target_loss"] == pytest.approx(float(np.median(bests)), rel=1e-12)
    assert "…" not in table
    for run in doc["runs"]:  # every number whole (the JSON rounds to 12 digits, the table does not)
        if run["final_val_loss"] is not None:
            shown = re.findall(r"[-+]?\d[\d.]*(?:e[-+]?\d+)?", table)
            assert any(math.isclose(float(s), run["final_val_loss"], rel_tol=1e-11, abs_tol=1e-12) for s in shown)


# --------------------------------------------------------------------------- plots


def test_comparison_plot_shares_one_log_axis_and_marks_runs(tmp_path: Path) -> None:
    from normcli.plots import comparison_figure, plot_comparison

    rows = [row("raw", [5.0, 4.0, 3.0]), row("normalized", [0.8, 0.4, 0.0]), row("normalized+bn", [0.9, 2.0, 4.6e21], initial=1.1)]
    for r, lr in zip(rows, (0.1, 0.1, 1.0)):
        r.lr = lr
    rows.append(row("normalized+bn", [0.9], stopped=True))
    rows[-1].lr = 1.0
    fig = comparison_figure(rows, target_loss=0.5)
    axes = fig.axes
    assert len(axes) == 2
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    assert all(ax.get_yscale() == "log" for ax in axes)
    low, high = axes[0].get_ylim()
    assert axes[1].get_ylim() == (low, high)
    assert low > 0 and high < 1e3  # the 4.6e21 of the diverged run does not flatten the others
    lines = {line.get_label(): line for line in axes[1].get_lines()}
    diverged = next(line for label, line in lines.items() if "diverged" in label and "epoch 3" in label)
    assert list(diverged.get_xdata()) == [0, 1, 2, 3]  # drawn up to its divergence
    stopped = next(line for label, line in lines.items() if "diverged, epoch 2" in label)
    assert len(stopped.get_xdata()) == 2  # epoch 0 and 1: never an empty legend entry
    path = tmp_path / "c.png"
    plot_comparison(rows, str(path), target_loss=0.5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- settings and hints


@pytest.mark.parametrize(
    "args,words",
    [
        (("--bn-momentum", "2"), "--bn-momentum must be in [0, 1]"),
        (("--bn-momentum", "fast"), "--bn-momentum takes a number"),
        (("--dropout", "1.5"), "dropout must be in [0, 1)"),
        (("--activation", "swish"), "activation must be one of"),
        (("--max-categories", "1"), "--max-categories must be at least 2"),
        (("--bn-placement", "before,after"), "need --compare"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(colours: Path, tmp_path: Path, args, words) -> None:
    result = invoke("train", colours, "--target", "label", *args, "-o", tmp_path / "m.npz")
    assert result.exit_code == 2, result.stderr
    assert words in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_bn_momentum_cumulative_reaches_the_model(colours: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    assert invoke("train", colours, "--target", "label", "--bn-momentum", "cumulative", "--epochs", "1", "--batch-size", "64", "-o", model, "-q").exit_code == 0
    network, meta = load_model(model)
    assert network.config.bn_momentum is None
    batches = math.ceil(640 / 64)  # 800 rows, 20 % held out, batch 64
    assert [int(bn.num_batches_tracked) for bn in network.batchnorms] == [batches, batches]


def test_divergence_hint_fits_the_batch_norm_setting(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(300, 2))
    path = tmp_path / "r.csv"
    pl.DataFrame({"a": x[:, 0] * 1e6, "b": x[:, 1], "y": x[:, 0] * 3 + 1e3}).write_csv(path)
    with_bn = invoke("train", path, "--target", "y", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "5", "-o", tmp_path / "m.npz")
    assert with_bn.exit_code == 1 and "diverged" in with_bn.stderr
    assert "batch norm" not in with_bn.stderr
    without = invoke("train", path, "--target", "y", "--optimizer", "sgd", "--lr", "1e9", "--no-batchnorm", "--epochs", "5", "-o", tmp_path / "m.npz")
    assert without.exit_code == 1 and "turn batch norm back on" in without.stderr


def test_command_defaults_are_the_documented_defaults() -> None:
    import inspect

    from normcli.cli.learn import train
    from normcli.learn.train import DEFAULTS, default_config

    options = inspect.signature(train).parameters
    assert options["optimizer"].default == DEFAULTS["optimizer"]
    assert float(options["lr"].default) == DEFAULTS["lr"]
    assert options["batch_size"].default == DEFAULTS["batch_size"]
    assert options["epochs"].default == DEFAULTS["epochs"]
    assert options["early_stopping"].default == DEFAULTS["patience"]
    assert default_config().patience == DEFAULTS["patience"]


# --------------------------------------------------------------------------- progress


def run_with_terminal_stderr(*args: str, cwd: Path) -> tuple[str, bytes]:
    """Run normcli with stderr on a pseudo-terminal; return (stderr as text, stdout bytes)."""
    import os
    import pty
    import select
    import subprocess
    import sys

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "normcli", *args], stdout=subprocess.PIPE, stderr=slave, cwd=cwd)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    stdout = process.stdout.read()
    assert process.wait(timeout=120) == 0, seen
    os.close(master)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode()), stdout


def test_progress_on_a_terminal_and_notes_before_training(colours: Path, tmp_path: Path) -> None:
    text, _ = run_with_terminal_stderr("train", str(colours), "--target", "label", "--epochs", "2", "-o", "m.npz", cwd=tmp_path)
    assert re.search(r"reading .*colours\.csv · 800 rows · 0:\d\d", text)
    assert text.index("one-hot encoded") < text.index("epoch   1/2")
    text, out = run_with_terminal_stderr("predict", str(colours), "--model", "m.npz", cwd=tmp_path)
    assert re.search(r"predicting .* · 800 rows · 0:\d\d", text)
    assert len(out.decode().splitlines()) == 801


def test_no_progress_when_stderr_is_not_a_terminal(colours: Path, tmp_path: Path) -> None:
    result = invoke("train", colours, "--target", "label", "--epochs", "2", "-o", tmp_path / "m.npz")
    assert result.exit_code == 0
    assert all(line.startswith("normcli: ") for line in result.stderr.splitlines())
    assert "rows" not in result.stderr.replace("training rows", "").replace("validation rows", "")


def test_predict_on_a_csv_whose_numeric_feature_column_is_empty(colours: Path, colour_model: Path, tmp_path: Path) -> None:
    frame = pl.read_csv(colours).head(5).with_columns(pl.lit(None, dtype=pl.Float64).alias("noise1"))
    path = tmp_path / "empty-column.csv"
    frame.write_csv(path)  # the column is inferred as text: every cell is empty
    result = invoke("predict", path, "--model", colour_model)
    assert result.exit_code == 0, result.stderr
    assert "5 of 5 rows had missing feature values, imputed (5 values" in result.stderr
