"""``normcli train``: prepare the data, train the network, save the model with its preparation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import IO, TYPE_CHECKING, Any

from normcli import __version__
from normcli.errors import DataError
from normcli.learn._seam import check_output_target, open_inputs, stats_to_dict
from normcli.learn.dataset import DataOptions, Feedback, Prepared, Reading, load_given_stats, prepare

if TYPE_CHECKING:
    from pathlib import Path

    from normcli.nn import TrainConfig, TrainResult

__all__ = ["TrainReport", "train", "default_config", "metrics_document", "fitted_config"]


DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 3e-3,
    "batch_size": 32,
    "epochs": 200,
    "patience": 20,
}
"""What ``normcli train`` uses unless told otherwise (the network: :class:`~normcli.nn.NetworkConfig`'s
defaults). Chosen on held-out R² of small real regression tables against scikit-learn
(bench/bench_regression.py): Adam with early stopping on the validation split (the best epoch's
weights are kept) instead of 20 epochs of SGD, which under-trained small tables (R² 0.28 where
scikit-learn's MLP reaches 0.47 on diabetes)."""



def is_metrics_file(path: Path) -> bool:
    """Whether ``path`` looks like metrics train wrote (``--metrics-out``): JSON whose first key is
    ``normcli_version``. A quick look for :func:`~normcli.data.outputs.check_replaceable`."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    return b'"normcli_version"' in head and head.lstrip().startswith(b"{")


def is_plot_file(path: Path) -> bool:
    """Whether ``path`` is a PNG image (what ``--plot`` writes), for ``check_replaceable``."""
    try:
        with open(path, "rb") as handle:
            return handle.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def default_config(seed: int = 0) -> TrainConfig:
    """The settings ``normcli train`` uses when none are given (:data:`DEFAULTS`)."""
    from normcli.nn import TrainConfig

    return TrainConfig(seed=seed, **DEFAULTS)


def fitted_config(network: TrainConfig, prepared: Prepared) -> TrainConfig:
    """``network`` completed with what only the data tells: task, classes, target scaling.

    Early stopping needs validation rows; without them (``--val-split 0``) it is off.
    """
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


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 12) if isinstance(v, float) else v) for k, v in row.items()}


def metrics_document(prepared: Prepared, result: TrainResult, model_path: str | None) -> dict[str, Any]:
    """The ``--json`` / ``--metrics-out`` document: task, final metrics, per-epoch history.

    ``kernels`` says what computed the training steps: 'numpy' or 'numba' (normcli[fast]).
    """
    final = result.final or {}
    wanted = ["train_loss", "val_loss"] + (
        ["val_accuracy"] if prepared.task == "classification" else ["val_rmse", "val_r2"]
    )
    return {
        "normcli_version": __version__,
        "task": prepared.task,
        "target": prepared.target,
        "features": prepared.features,
        "encoded_features": prepared.encoder.output_names,
        "classes": prepared.classes,
        "rows": {
            "train": len(prepared.y_train),
            "validation": 0 if prepared.y_val is None else len(prepared.y_val),
            "dropped_missing_target": prepared.rows_without_target,
        },
        "final": {key: final.get(key) for key in wanted},
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "kernels": result.kernels,
        "history": [clean_row(row) for row in result.history],
        "notes": prepared.notes,
        "model": model_path,
    }


def divergence_error(result: TrainResult, config: TrainConfig) -> DataError:
    """The error of a run whose loss or gradients became non-finite, with a hint that fits it."""
    hint = f"lower --lr (now {config.lr:g})"
    if config.network.bn_placement == "none":
        hint += ", or turn batch norm back on (drop --no-batchnorm)"
    elif config.optimizer == "sgd":
        hint += ", or try --optimizer adam"
    return DataError(str(result.divergence_message), hint=hint)


def model_metadata(prepared: Prepared, config: TrainConfig, result: TrainResult | None = None) -> dict[str, Any]:
    """What the model file keeps besides the weights (see :mod:`normcli.learn.modelfile`); with
    ``result``, also the training's outcome (final metrics, rows, epochs: ``normcli inspect``
    shows them), without the per-epoch history."""
    import numpy as np

    outcome = None
    if result is not None:
        document = metrics_document(prepared, result, None)
        outcome = {key: document[key] for key in ("final", "rows", "epochs_run", "best_epoch", "stopped_early")}
    return {
        "metrics": outcome,
        "normcli_version": __version__,
        "numpy_version": np.__version__,
        "task": prepared.task,
        "target": prepared.target,
        "feature_columns": prepared.features,
        "features": prepared.encoder.to_dict(),
        "encoded_features": prepared.encoder.output_names,
        "id_columns": prepared.id_columns,
        "null_values": list(prepared.null_values),
        "class_labels": prepared.classes,
        "input_stats": stats_to_dict(prepared.stats) if prepared.stats is not None else None,
        "input_stats_fitted_on_training_split": prepared.stats_fitted_on_split,
        "target_scaling": {"center": prepared.y_center, "scale": prepared.y_scale} if prepared.task == "regression" else None,
        "training": {
            key: value
            for key, value in asdict(config).items()
            if key not in ("task", "num_classes", "y_center", "y_scale")
        }
        | ({"kernels": result.kernels} if result is not None else {}),  # the kernels that ran
    }


def train(
    paths: Sequence[str],
    data: DataOptions,
    network: TrainConfig | None = None,
    *,
    model_path: str | None = "model.npz",
    reading: Reading = Reading(),
    feedback: Feedback | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> TrainReport:
    """Train a batch-norm MLP on files and save it (weights, encoding, labels) to ``model_path``.

    ``reading.null_values=None`` reads missing values as the ``--stats`` file does (or with
    normcli's defaults). Raises :class:`DataError` if training diverges (the loss or a gradient
    becomes non-finite); nothing is written then.

    Example::

        report = train(["train.csv"], DataOptions(target="species"), TrainConfig(epochs=30))
        report.metrics["final"]["val_accuracy"]
    """
    from normcli.learn.modelfile import save_model
    from normcli.nn import train_network

    network = network if network is not None else default_config(data.seed)
    if model_path is not None:
        check_output_target(model_path)
    stats = load_given_stats(data.stats_path, paths, stdin, stdin_is_terminal)
    read = reading.options(stats.null_values if stats is not None else None)
    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        if model_path is not None:
            stats_file = [data.stats_path] if data.stats_path else []
            check_output_target(model_path, [*inputs.paths, *stats_file])
        prepared = prepare(inputs, data, stats=stats, feedback=feedback)
    prepared.frame_train = prepared.frame_val = None  # encoded already: free the data frames
    import numpy as np

    config = fitted_config(network, prepared)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is detected, not warned
        result = train_network(
            prepared.X_train, prepared.y_train, prepared.X_val, prepared.y_val, config, on_epoch=on_epoch
        )
    if result.diverged:
        raise divergence_error(result, config)
    if model_path is not None:
        save_model(result.model, model_path, extra=model_metadata(prepared, config, result))
    return TrainReport(prepared, result, metrics_document(prepared, result, model_path), model_path)
