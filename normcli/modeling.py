"""Training, comparing and predicting from files: the data side of ``normcli train`` and ``predict``.

The network itself lives in :mod:`normcli.nn` and knows nothing of files. This module reads the
data with the same readers as ``fit``, chooses the feature columns, encodes the target, splits
train/validation (stratified, seeded), normalizes the features with normcli statistics — given
with ``stats``, or fitted on the training split only so nothing leaks from validation — and keeps
everything needed to repeat that on new data inside the model file.

Missing feature values are imputed with the training mean (0 after standardization, in general
the mean's scaled value), so rows are never dropped silently; the count is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from normcli import __version__
from normcli.errors import DataError, UsageError
from normcli.data.formats import ReadOptions
from normcli.data.outputs import atomic_path, check_output_target, output_format
from normcli.data.table import Inputs, open_inputs
from normcli.scaling.fit import fit_frame
from normcli.scaling.model import FitOptions, Stats
from normcli.scaling.statsfile import load_stats, stats_from_dict, stats_to_dict

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from normcli.nn import ComparisonRow, TrainConfig, TrainResult

TASKS = ("auto", "classification", "regression")
MAX_AUTO_CLASSES = 20
"""An integer target with at most this many distinct values is taken as class labels."""
MAX_CLASSES = 1000
ID_COLUMN = re.compile(r"(?i)^(id|key|uuid|row_?id|index)$|_id$|^id_")


@dataclass(frozen=True)
class DataOptions:
    """Which data to learn from: target, features, task, split and normalization."""

    target: str
    features: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    task: str = "auto"
    val_split: float = 0.2
    seed: int = 0
    stats_path: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown task '{self.task}'", hint=f"choose one of: {', '.join(TASKS)}")
        if not 0.0 <= self.val_split < 1.0:
            raise UsageError(f"--val-split must be in [0, 1), not {self.val_split}")


@dataclass
class Prepared:
    """Training data ready for the network, and what is needed to repeat the preparation."""

    task: str
    target: str
    features: list[str]
    classes: list[Any] | None
    stats: Stats
    X_raw_train: np.ndarray
    X_raw_val: np.ndarray | None
    X_train: np.ndarray
    X_val: np.ndarray | None
    y_train: np.ndarray
    y_val: np.ndarray | None
    y_center: float = 0.0
    y_scale: float = 1.0
    notes: list[str] = field(default_factory=list)
    stats_fitted_on_split: bool = False


# --------------------------------------------------------------------------- feature scaling


def scale_features(X: np.ndarray, stats: Stats, features: Sequence[str]) -> np.ndarray:
    """(X − center) / scale per feature, missing (NaN) values imputed with the scaled mean."""
    import numpy as np

    columns = [stats.column(name) for name in features]
    center = np.array([c.center for c in columns])
    scale = np.array([c.scale for c in columns])
    impute = np.array([(c.mean - c.center) / c.scale for c in columns])
    scaled = (X - center) / scale
    return np.where(np.isnan(scaled), impute, scaled)


def impute_raw(X: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Raw features with missing values replaced by the training means (the 'raw' comparison)."""
    import numpy as np

    return np.where(np.isnan(X), means, X)


# --------------------------------------------------------------------------- reading


def _feature_columns(schema: pl.Schema, options: DataOptions, stats: Stats | None) -> tuple[list[str], list[str]]:
    """The feature columns, and the columns left out (for a note)."""
    names = schema.names()
    available = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
    if options.target not in schema:
        raise UsageError(f"no target column named '{options.target}'", hint=f"columns are: {available}")
    for name in [*(options.features or ()), *options.exclude]:
        if name not in schema:
            raise UsageError(f"no column named '{name}'", hint=f"columns are: {available}")
    if options.features is not None:
        features = [n for n in options.features if n not in options.exclude]
        bad = [f"{n} ({schema[n]})" for n in features if not schema[n].is_numeric()]
        if bad:
            raise DataError(
                f"non-numeric feature column{'s' if len(bad) > 1 else ''}: {', '.join(bad)}",
                hint="leave them out of --features (one-hot encoding is not done by normcli)",
            )
        if options.target in features:
            raise UsageError(f"'{options.target}' is both the target and a feature")
        left_out: list[str] = []
    elif stats is not None:
        features = [n for n in stats.names if n != options.target and n not in options.exclude]
        left_out = []
    else:
        candidates = [n for n in names if n != options.target and n not in options.exclude]
        features = [n for n in candidates if schema[n].is_numeric()]
        left_out = [f"{n} ({schema[n]})" for n in candidates if not schema[n].is_numeric()]
    if not features:
        raise DataError("no numeric feature columns", hint="name them with --features")
    if stats is not None:
        missing = [n for n in features if n not in stats.names]
        if missing:
            raise DataError(
                f"feature column{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in the stats file",
                hint="fit them too, or choose --features among the fitted columns",
            )
    return features, left_out


def _read_frame(inputs: Inputs, features: list[str], others: Sequence[str]) -> pl.DataFrame:
    """Features (as Float64, NaN as null) and the ``others`` columns as they are, in memory."""
    import polars as pl

    overrides = {name: pl.Float64 for name in features}
    if all(s.format == "parquet" for s in inputs.sources):
        overrides = {}
    others = [n for n in others if n not in features]
    with inputs.errors():
        frame = inputs.scan(overrides or None).select([*features, *others]).collect()
    return frame.with_columns([pl.col(n).cast(pl.Float64).fill_nan(None) for n in features])


def _detect_task(target: pl.Series, requested: str) -> str:
    import polars as pl

    if requested != "auto":
        return requested
    dtype = target.dtype
    if dtype == pl.String or dtype == pl.Boolean or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return "classification"
    if dtype.is_integer() and target.n_unique() <= MAX_AUTO_CLASSES:
        return "classification"
    if dtype.is_numeric():
        return "regression"
    raise DataError(
        f"target '{target.name}' has type {dtype}, which is neither labels nor numbers",
        hint="pass --task, or choose another --target",
    )


def _encode_classes(target: pl.Series) -> tuple[np.ndarray, list[Any]]:
    """Class indices 0..K−1 (labels sorted) and the labels, as JSON-able Python values."""
    import numpy as np

    labels = sorted(target.unique().to_list(), key=lambda v: (str(type(v)), v))
    if len(labels) < 2:
        raise DataError(
            f"target '{target.name}' has a single class ({labels[0]!r})",
            hint="classification needs at least two classes",
        )
    if len(labels) > MAX_CLASSES:
        raise DataError(
            f"target '{target.name}' has {len(labels)} distinct values: too many classes",
            hint="use --task regression for a numeric target",
        )
    index = {label: i for i, label in enumerate(labels)}
    encoded = np.array([index[v] for v in target.to_list()], dtype=np.int64)
    return encoded, labels


def split_indices(y: np.ndarray, val_split: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation row indices; per class when ``stratify``.

    Each class with at least two rows keeps at least one row on each side.
    """
    import numpy as np

    rng = np.random.default_rng([seed, 1])
    rows = len(y)
    if val_split == 0:
        return np.arange(rows), np.arange(0)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(rows)]
    train, val = [], []
    for group in groups:
        order = rng.permutation(group)
        n_val = int(round(val_split * len(order)))
        if len(order) >= 2:
            n_val = min(max(n_val, 1), len(order) - 1)
        else:
            n_val = 0
        val.append(order[:n_val])
        train.append(order[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def prepare(inputs: Inputs, options: DataOptions) -> Prepared:
    """Read, encode, split and normalize the training data (see the module docstring)."""
    import numpy as np
    import polars as pl

    given_stats = load_stats(options.stats_path) if options.stats_path else None
    schema = inputs.schema()
    features, left_out = _feature_columns(schema, options, given_stats)
    frame = _read_frame(inputs, features, [options.target])
    where = inputs.describe()
    target = frame[options.target]
    if target.null_count():
        rows = (np.flatnonzero(target.is_null().to_numpy())[:3] + 1).tolist()
        raise DataError(
            f"{where}: target '{options.target}' has {target.null_count()} missing value(s) "
            f"(data rows {', '.join(map(str, rows))}{', …' if target.null_count() > 3 else ''})",
            hint="drop those rows or fill them before training",
        )
    task = _detect_task(target, options.task)
    classes = None
    if task == "classification":
        y, classes = _encode_classes(target)
    else:
        if not target.dtype.is_numeric():
            raise DataError(f"{where}: target '{options.target}' is {target.dtype}, not numeric", hint="use --task classification")
        y = target.cast(pl.Float64).to_numpy()
        if not np.all(np.isfinite(y)):
            raise DataError(f"{where}: target '{options.target}' has NaN or infinite values", hint="drop those rows")
    train_idx, val_idx = split_indices(y, options.val_split, options.seed, task == "classification")
    if len(train_idx) < 2 or (options.val_split > 0 and len(val_idx) == 0):
        raise DataError(
            f"{where}: {frame.height} rows are too few for a validation split of {options.val_split} "
            f"(train {len(train_idx)}, validation {len(val_idx)})",
            hint="use more rows, or --val-split 0",
        )
    X = frame.select(features).to_numpy().astype(np.float64)
    X_raw_train = X[train_idx]
    X_raw_val = X[val_idx] if len(val_idx) else None
    notes: list[str] = []
    if left_out:
        notes.append(f"not used as features (non-numeric): {', '.join(left_out)}")
    if given_stats is not None:
        stats, fitted_on_split = given_stats, False
    else:
        train_frame = pl.DataFrame(X_raw_train, schema=features, orient="row").fill_nan(None)
        stats = fit_frame(
            train_frame,
            FitOptions(columns=tuple(features)),
            schema=frame.select(features).schema,
            where=f"{where} (training split)",
            input_names=[f"{name} (training split)" for name in inputs.names],
            null_values=inputs.options.null_values,
        )
        notes.extend(stats.warnings)
        fitted_on_split = True
    missing = int(np.isnan(X).sum())
    if missing:
        notes.append(f"imputed {missing} missing feature value(s) with the training mean")
    prepared = Prepared(
        task=task,
        target=options.target,
        features=features,
        classes=classes,
        stats=stats,
        X_raw_train=X_raw_train,
        X_raw_val=X_raw_val,
        X_train=scale_features(X_raw_train, stats, features),
        X_val=scale_features(X_raw_val, stats, features) if X_raw_val is not None else None,
        y_train=y[train_idx],
        y_val=y[val_idx] if len(val_idx) else None,
        notes=notes,
        stats_fitted_on_split=fitted_on_split,
    )
    if task == "regression":
        # the target is standardized with training-split statistics; metrics come back in its units
        y_stats = fit_frame(pl.DataFrame({options.target: prepared.y_train}), FitOptions())
        column = y_stats.column(options.target)
        prepared.y_center, prepared.y_scale = column.center, column.scale
        prepared.y_train = (prepared.y_train - column.center) / column.scale
        if prepared.y_val is not None:
            prepared.y_val = (prepared.y_val - column.center) / column.scale
    return prepared


# --------------------------------------------------------------------------- training


def _fitted_config(network: TrainConfig, prepared: Prepared) -> TrainConfig:
    """``network`` completed with what only the data tells: task, classes, target scaling.

    Early stopping needs validation rows; without them (``--val-split 0``) it is off.
    """
    from dataclasses import replace

    return replace(
        network,
        task=prepared.task,
        num_classes=len(prepared.classes) if prepared.classes else None,
        y_center=prepared.y_center,
        y_scale=prepared.y_scale,
        patience=network.patience if prepared.y_val is not None else None,
    )


@dataclass
class TrainReport:
    """What ``train`` did: the prepared data's description, the training result, the metrics."""

    prepared: Prepared
    result: TrainResult
    metrics: dict[str, Any]
    model_path: str | None


def _clean_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 12) if isinstance(v, float) else v) for k, v in row.items()}


def metrics_document(prepared: Prepared, result: TrainResult, model_path: str | None) -> dict[str, Any]:
    """The ``--json`` / ``--metrics-out`` document: task, final metrics, per-epoch history."""
    final = result.final or {}
    wanted = ["train_loss", "val_loss"] + (
        ["val_accuracy"] if prepared.task == "classification" else ["val_rmse", "val_r2"]
    )
    return {
        "normcli_version": __version__,
        "task": prepared.task,
        "target": prepared.target,
        "features": prepared.features,
        "classes": prepared.classes,
        "rows": {"train": len(prepared.y_train), "validation": 0 if prepared.y_val is None else len(prepared.y_val)},
        "final": {key: final.get(key) for key in wanted},
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "history": [
            _clean_row(row) for row in result.history
        ],
        "model": model_path,
    }


def _divergence_error(result: TrainResult, lr: float) -> DataError:
    return DataError(
        str(result.divergence_message),
        hint=f"lower --lr (now {lr:g}), normalize the inputs, or keep batch norm on",
    )


def _model_metadata(prepared: Prepared, config: TrainConfig) -> dict[str, Any]:
    import numpy as np

    return {
        "normcli_version": __version__,
        "numpy_version": np.__version__,
        "task": prepared.task,
        "target": prepared.target,
        "feature_columns": prepared.features,
        "class_labels": prepared.classes,
        "input_stats": stats_to_dict(prepared.stats),
        "input_stats_fitted_on_training_split": prepared.stats_fitted_on_split,
        "target_scaling": {"center": prepared.y_center, "scale": prepared.y_scale} if prepared.task == "regression" else None,
        "training": {
            key: value
            for key, value in asdict(config).items()
            if key not in ("task", "num_classes", "y_center", "y_scale")
        },
    }


def train(
    paths: Sequence[str],
    data: DataOptions,
    network: TrainConfig | None = None,
    *,
    model_path: str | None = "model.npz",
    read: ReadOptions = ReadOptions(),
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> TrainReport:
    """Train a batch-norm MLP on files and save it (weights, normalization, labels) to ``model_path``.

    Raises :class:`DataError` if training diverges (the loss or a gradient becomes non-finite);
    nothing is written then.

    Example::

        report = normcli.train(["train.csv"], DataOptions(target="species"), TrainConfig(epochs=30))
        report.metrics["final"]["val_accuracy"]
    """
    from normcli.nn import TrainConfig, save_model, train_network

    network = network if network is not None else TrainConfig(seed=data.seed)

    if model_path is not None:
        check_output_target(model_path)
    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        if model_path is not None:
            stats_file = [Path(data.stats_path)] if data.stats_path else []
            check_output_target(model_path, [*inputs.paths, *stats_file])
        prepared = prepare(inputs, data)
    import numpy as np

    config = _fitted_config(network, prepared)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is detected, not warned
        result = train_network(
            prepared.X_train, prepared.y_train, prepared.X_val, prepared.y_val, config, on_epoch=on_epoch
        )
    if result.diverged:
        raise _divergence_error(result, config.lr)
    if model_path is not None:
        save_model(result.model, model_path, extra=_model_metadata(prepared, config))
    return TrainReport(prepared, result, metrics_document(prepared, result, model_path), model_path)


# --------------------------------------------------------------------------- comparing


@dataclass
class CompareReport:
    """The rows of ``train --compare`` and the loss used for 'epochs to target'."""

    prepared: Prepared
    rows: list[ComparisonRow]
    target_loss: float | None
    epochs_to_target: list[int | None]

    def document(self) -> dict[str, Any]:
        """The ``--json`` document of the comparison."""
        return {
            "normcli_version": __version__,
            "task": self.prepared.task,
            "target": self.prepared.target,
            "target_loss": self.target_loss,
            "runs": [
                {
                    **{k: (round(v, 12) if isinstance(v, float) else v) for k, v in row.as_dict().items()},
                    "epochs_to_target": reached,
                    "history": [_clean_row(h) for h in row.result.history],
                }
                for row, reached in zip(self.rows, self.epochs_to_target, strict=True)
            ],
        }


def _first_epoch_at_or_below(history: list[dict[str, Any]], target: float) -> int | None:
    for row in history:
        loss = row["val_loss"] if row.get("val_loss") is not None else row["train_loss"]
        if loss <= target:
            return int(row["epoch"])
    return None


def compare(
    paths: Sequence[str],
    data: DataOptions,
    network: TrainConfig | None = None,
    *,
    learning_rates: Sequence[float] = (),
    target_loss: float | None = None,
    read: ReadOptions = ReadOptions(),
    on_run: Callable[[ComparisonRow], None] | None = None,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> CompareReport:
    """Train the same network three ways — raw inputs, normalized inputs, normalized + batch norm.

    Same seed, epochs and optimizer; once per learning rate. ``target_loss`` defaults to 1.1 × the
    lowest validation loss any run reached, so 'epochs to target' compares speed of convergence.
    """
    import numpy as np

    from normcli.nn import TrainConfig, compare_normalization

    network = network if network is not None else TrainConfig(seed=data.seed)

    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        prepared = prepare(inputs, data)
    means = np.nanmean(prepared.X_raw_train, axis=0)  # every feature has training values (fit checks)
    raw_train = impute_raw(prepared.X_raw_train, means)
    raw_val = impute_raw(prepared.X_raw_val, means) if prepared.X_raw_val is not None else None
    placement = network.bn_placement if network.bn_placement != "none" else "after"
    config = _fitted_config(network, prepared)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is a result here
        rows = compare_normalization(
            raw_train, prepared.X_train, prepared.y_train, raw_val, prepared.X_val, prepared.y_val,
            config, learning_rates=list(learning_rates) or [network.lr], bn_placement=placement,
            on_run=on_run,
        )
    if target_loss is None:
        best = [r.best_val_loss if r.best_val_loss is not None else r.final_train_loss for r in rows]
        finite = [b for b in best if b is not None and np.isfinite(b)]
        target_loss = 1.1 * min(finite) if finite else None
    reached = [
        _first_epoch_at_or_below(r.result.history, target_loss) if target_loss is not None else None
        for r in rows
    ]
    return CompareReport(prepared, rows, target_loss, reached)


# --------------------------------------------------------------------------- predicting


@dataclass
class PredictReport:
    """What ``predict`` wrote, and metrics when the data held the target."""

    rows: int
    task: str
    metrics: dict[str, float] | None


def _id_columns(names: Sequence[str], exclude: Sequence[str]) -> list[str]:
    return [n for n in names if ID_COLUMN.search(n) and n not in exclude]


def predict(
    paths: Sequence[str],
    *,
    model: str,
    output: str = "-",
    target: str | None = None,
    output_format_name: str | None = None,
    format: str | None = None,
    separator: str | None = None,
    null_values: Sequence[str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> PredictReport:
    """Apply a trained model to raw data: the stored normalization, then the network in eval mode.

    Writes id-like columns (``id``, ``*_id``, ...) or a ``row`` index, then ``predicted_<target>``
    and, for classification, ``prob_<label>`` per class. With ``target`` present in the data,
    returns accuracy/log-loss (classification) or RMSE/R² (regression) too. Missing-value tokens
    default to those the model's normalization was fitted with.
    """
    import numpy as np
    import polars as pl

    from normcli.nn import load_model

    network, meta = load_model(model)
    try:
        features = list(meta["feature_columns"])
        stats = stats_from_dict(meta["input_stats"], f"{model} (input_stats)")
        task, trained_target, labels = meta["task"], meta["target"], meta.get("class_labels")
    except (KeyError, TypeError) as exc:
        raise DataError(f"{model}: not a normcli model (metadata lacks {exc})", hint="train one with normcli train") from None
    read = ReadOptions(
        format=format,
        null_values=tuple(null_values) if null_values is not None else stats.null_values,
        separator=separator,
    )
    out_format, compression = output_format(output, output_format_name)
    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        target_path = None if output == "-" else check_output_target(output, [*inputs.paths, Path(model)])
        schema = inputs.schema()
        missing = [n for n in features if n not in schema]
        if missing:
            raise DataError(
                f"{inputs.describe()}: feature column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)} of the model not found",
                hint="predict on data with the columns the model was trained on",
            )
        bad = [f"{n} ({schema[n]})" for n in features if not schema[n].is_numeric()]
        if bad:
            raise DataError(f"{inputs.describe()}: feature columns not numeric: {', '.join(bad)}")
        if target is not None and target not in schema:
            raise UsageError(f"no target column named '{target}' in the data")
        ids = _id_columns(schema.names(), features)
        frame = _read_frame(inputs, features, [*ids, *([target] if target else [])])
    X = frame.select(features).to_numpy().astype(np.float64)
    X = scale_features(X, stats, features)
    X = X.astype(network.config.dtype)
    out = pl.DataFrame({n: frame[n] for n in ids}) if ids else pl.DataFrame({"row": np.arange(len(X))})
    name = f"predicted_{trained_target}"
    metrics = None
    if task == "classification":
        proba = network.predict_proba(X).astype(np.float64)
        predicted = [labels[i] for i in proba.argmax(axis=1)]
        out = out.with_columns(pl.Series(name, predicted))
        out = out.with_columns([pl.Series(f"prob_{label}", proba[:, i]) for i, label in enumerate(labels)])
        if target is not None:
            index = {label: i for i, label in enumerate(labels)}
            truth = frame[target].to_list()
            known = np.array([t in index for t in truth])
            y = np.array([index.get(t, -1) for t in truth])
            p = np.clip(proba[known, y[known]], 1e-15, 1.0)
            metrics = {
                "accuracy": float(np.mean(proba.argmax(axis=1) == y)),
                "log_loss": float(-np.mean(np.log(p))) if known.any() else float("nan"),
                "unknown_labels": int((~known).sum()),
            }
    else:
        scaling = meta.get("target_scaling") or {"center": 0.0, "scale": 1.0}
        values = network.output(X).astype(np.float64)[:, 0] * scaling["scale"] + scaling["center"]
        out = out.with_columns(pl.Series(name, values))
        if target is not None:
            truth = frame[target].cast(pl.Float64).to_numpy()
            residual = values - truth
            total = truth - truth.mean()
            metrics = {
                "rmse": float(np.sqrt(np.mean(residual**2))),
                "r2": float(1 - np.sum(residual**2) / np.sum(total**2)) if np.sum(total**2) > 0 else float("nan"),
            }
    lazy = out.lazy()
    if target_path is None:
        import sys

        out_format.sink(lazy, stdout if stdout is not None else sys.stdout.buffer, compression)
    else:
        with atomic_path(target_path) as temp:
            out_format.sink(lazy, temp, compression)
    return PredictReport(rows=len(X), task=task, metrics=metrics)
