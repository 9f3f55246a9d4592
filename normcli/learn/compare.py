"""``normcli train --compare``: what input normalization and batch norm change, on the user's data.

The same network (same seed, epochs, optimizer, batch order) is trained per learning rate in
these settings, in order:

* ``raw`` — raw numbers (missing ones imputed with the training mean), no batch norm;
* ``normalized`` — numbers normalized with normcli's statistics, no batch norm;
* ``normalized+bn`` — normalized, with batch norm placed ``after`` each activation (the
  background text's claim) and/or ``before`` it (Ioffe & Szegedy), one run per placement asked.

Categorical features are one-hot in every setting. Two rules decide what the table says:

* **target loss** (for "epochs to target"), unless given: the *median over all runs of each
  run's best validation loss* (training loss without validation rows). A single run cannot
  move a median far, so a lucky dip of one unstable run does not set a target only it reaches.
* **diverged**: a run diverged if training stopped because the loss or a gradient became
  non-finite, or if its last validation loss is more than :data:`DIVERGENCE_FACTOR` times the
  validation loss of its initial weights (without validation rows: the first epoch's training
  loss stands in for both).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

from normcli import __version__
from normcli.errors import UsageError
from normcli.learn._seam import open_inputs
from normcli.learn.dataset import DataOptions, Feedback, Prepared, Reading, load_given_stats, prepare

if TYPE_CHECKING:
    import numpy as np

    from normcli.nn import TrainConfig, TrainResult

__all__ = [
    "DIVERGENCE_FACTOR",
    "CompareReport",
    "ComparisonRow",
    "compare",
    "compare_settings",
    "default_target_loss",
    "divergence",
    "epochs_to_target",
]

DIVERGENCE_FACTOR = 10.0
"""A run whose last validation loss exceeds this multiple of its initial one has diverged."""


def _watched(row: dict[str, Any]) -> float:
    return row["val_loss"] if row.get("val_loss") is not None else row["train_loss"]


def divergence(result: TrainResult, factor: float = DIVERGENCE_FACTOR) -> str | None:
    """Why a run counts as diverged (see the module docstring), or None."""
    if result.diverged:
        return "non-finite loss or gradient" + (f" in epoch {len(result.history) + 1}")
    if not result.history:
        return None
    last = _watched(result.history[-1])
    initial = result.initial_val_loss if result.history[-1].get("val_loss") is not None else result.history[0]["train_loss"]
    if initial is not None and math.isfinite(initial) and last > factor * initial:
        return f"last loss {last:.4g} > {factor:g} × initial {initial:.4g}"
    return None


def epochs_to_target(history: Sequence[dict[str, Any]], target: float) -> int | None:
    """The first epoch whose validation (else training) loss is ≤ ``target``."""
    for row in history:
        if _watched(row) <= target:
            return int(row["epoch"])
    return None


@dataclass
class ComparisonRow:
    """One run of the comparison.

    ``final_*`` and the metrics are those of the last epoch run; ``best_val_loss`` /
    ``best_epoch`` the lowest validation (else training) loss and its epoch; ``initial_val_loss``
    the validation loss of the initial weights. ``grad_norm_first_layer`` is the mean over
    completed epochs of the per-epoch mean first-layer gradient norm.
    """

    setting: str
    inputs: str
    batchnorm: str
    lr: float
    epochs_run: int
    initial_val_loss: float | None
    final_train_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    best_epoch: int | None
    val_accuracy: float | None
    val_rmse: float | None
    val_r2: float | None
    diverged: bool
    diverged_because: str | None
    divergence_message: str | None
    grad_norm_first_layer: float | None
    epochs_to_target: int | None = None
    result: TrainResult = field(repr=False, default=None)  # type: ignore[assignment]

    def as_dict(self) -> dict[str, Any]:
        """All fields except the full ``result`` (JSON-ready)."""
        return {k: v for k, v in self.__dict__.items() if k != "result"}

    @classmethod
    def from_result(cls, setting: str, inputs: str, batchnorm: str, result: TrainResult) -> ComparisonRow:
        last = result.history[-1] if result.history else {}
        best = min(result.history, key=_watched) if result.history else None
        norms = [r["grad_norm_first_layer"] for r in result.history]
        because = divergence(result)
        return cls(
            setting=setting,
            inputs=inputs,
            batchnorm=batchnorm,
            lr=result.config.lr,
            epochs_run=result.epochs_run,
            initial_val_loss=result.initial_val_loss,
            final_train_loss=last.get("train_loss"),
            final_val_loss=last.get("val_loss"),
            best_val_loss=_watched(best) if best else None,
            best_epoch=int(best["epoch"]) if best else None,
            val_accuracy=last.get("val_accuracy"),
            val_rmse=last.get("val_rmse"),
            val_r2=last.get("val_r2"),
            diverged=because is not None,
            diverged_because=because,
            divergence_message=result.divergence_message,
            grad_norm_first_layer=sum(norms) / len(norms) if norms else None,
            result=result,
        )


def default_target_loss(rows: Sequence[ComparisonRow]) -> float | None:
    """The median over runs of each run's best loss (runs with no completed epoch left out)."""
    bests = [r.best_val_loss for r in rows if r.best_val_loss is not None and math.isfinite(r.best_val_loss)]
    return float(statistics.median(bests)) if bests else None


def _settings(placements: Sequence[str]) -> list[tuple[str, str, str]]:
    """(setting, inputs, batch norm) of each run at one learning rate."""
    runs = [("raw", "raw", "none"), ("normalized", "normalized", "none")]
    names = {"after": "normalized+bn", "before": "normalized+bn-before"}
    for placement in placements:
        if placement not in names:
            raise UsageError(
                f"--bn-placement with --compare takes after and/or before, not '{placement}'",
                hint="e.g. --bn-placement before,after",
            )
        runs.append((names[placement], "normalized", placement))
    return runs


def compare_settings(
    X_raw_train: np.ndarray,
    X_norm_train: np.ndarray,
    y_train: np.ndarray,
    X_raw_val: np.ndarray | None,
    X_norm_val: np.ndarray | None,
    y_val: np.ndarray | None,
    config: TrainConfig,
    *,
    learning_rates: Sequence[float] | None = None,
    placements: Sequence[str] = ("after",),
    on_run: Callable[[ComparisonRow], None] | None = None,
) -> list[ComparisonRow]:
    """Train the same network in every setting (see the module docstring), per learning rate.

    ``learning_rates`` defaults to ``[config.lr]``; rows come lr by lr, settings in order. The
    caller normalizes and passes both versions of the features. ``on_run`` is called with each
    row as soon as its run ends. A diverging run is a result, not an error.
    """
    import numpy as np

    from normcli.nn import train_network

    runs = _settings(list(dict.fromkeys(placements)))
    rows = []
    for lr in learning_rates if learning_rates is not None else [config.lr]:
        for setting, inputs, batchnorm in runs:
            run_config = replace(config, lr=float(lr)).with_network(bn_placement=batchnorm)
            X_train, X_val = (X_raw_train, X_raw_val) if inputs == "raw" else (X_norm_train, X_norm_val)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                result = train_network(X_train, y_train, X_val, y_val, run_config)
            row = ComparisonRow.from_result(setting, inputs, batchnorm, result)
            rows.append(row)
            if on_run is not None:
                on_run(row)
    return rows


@dataclass
class CompareReport:
    """The rows of ``train --compare`` and the loss used for 'epochs to target'."""

    prepared: Prepared
    rows: list[ComparisonRow]
    target_loss: float | None
    target_loss_rule: str

    @property
    def epochs_to_target(self) -> list[int | None]:
        return [row.epochs_to_target for row in self.rows]

    def document(self) -> dict[str, Any]:
        """The ``--json`` document of the comparison."""
        from normcli.learn.train import clean_row

        return {
            "normcli_version": __version__,
            "task": self.prepared.task,
            "target": self.prepared.target,
            "features": self.prepared.features,
            "notes": self.prepared.notes,
            "target_loss": self.target_loss,
            "target_loss_rule": self.target_loss_rule,
            "divergence_rule": (
                f"non-finite loss or gradient, or last validation loss > {DIVERGENCE_FACTOR:g} x "
                "the initial weights' validation loss"
            ),
            "runs": [
                {
                    **{k: (round(v, 12) if isinstance(v, float) else v) for k, v in row.as_dict().items()},
                    "history": [clean_row(h) for h in row.result.history],
                }
                for row in self.rows
            ],
        }


def compare(
    paths: Sequence[str],
    data: DataOptions,
    network: TrainConfig | None = None,
    *,
    learning_rates: Sequence[float] = (),
    placements: Sequence[str] = ("after",),
    target_loss: float | None = None,
    reading: Reading = Reading(),
    feedback: Feedback | None = None,
    on_run: Callable[[ComparisonRow], None] | None = None,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> CompareReport:
    """Train the same network raw, normalized, and normalized with batch norm (per placement).

    Same seed, epochs and optimizer; once per learning rate. See the module docstring for the
    settings, the target-loss rule and what counts as diverged.
    """
    from normcli.learn.train import default_config, fitted_config

    network = network if network is not None else default_config(data.seed)
    _settings(placements)  # bad placements fail before any reading
    stats = load_given_stats(data.stats_path, paths, stdin, stdin_is_terminal)
    read = reading.options(stats.null_values if stats is not None else None)
    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        prepared = prepare(inputs, data, stats=stats, feedback=feedback)
    raw_train, raw_val = prepared.raw()
    prepared.frame_train = prepared.frame_val = None
    config = fitted_config(network, prepared)
    rows = compare_settings(
        raw_train, prepared.X_train, prepared.y_train, raw_val, prepared.X_val, prepared.y_val,
        config, learning_rates=list(learning_rates) or [network.lr], placements=placements, on_run=on_run,
    )  # fmt: skip
    if target_loss is None:
        target_loss = default_target_loss(rows)
        rule = "median over runs of each run's best validation loss"
    else:
        rule = "given with --target-loss"
    for row in rows:
        row.epochs_to_target = epochs_to_target(row.result.history, target_loss) if target_loss is not None else None
    return CompareReport(prepared, rows, target_loss, rule)
