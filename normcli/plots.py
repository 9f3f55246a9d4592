"""Learning-curve figures (matplotlib, the optional extra ``normcli[plot]``), written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from normcli.errors import UsageError
from normcli.data.outputs import atomic_path, check_output_target

if TYPE_CHECKING:
    from normcli.learn.compare import ComparisonRow


def require_matplotlib() -> None:
    """Fail early, before any training, when --plot cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, which is not installed",
            hint="pip install 'normcli[plot]'",
        ) from None


def _figure(columns: int, sharey: bool = False, height: float = 4.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=(5.5 * columns, height), squeeze=False, sharey=sharey)
    return fig, axes[0]


def _save(fig: Any, path: str) -> None:
    import matplotlib.pyplot as plt

    check_output_target(path)
    with atomic_path(path) as temp:
        # fixed metadata so the same curves give the same bytes
        fig.savefig(temp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def plot_history(history: Sequence[dict[str, Any]], path: str, title: str) -> None:
    """Train/validation loss per epoch, and the validation metric, side by side."""
    fig, (loss_ax, metric_ax) = _figure(2)
    epochs = [row["epoch"] for row in history]
    loss_ax.plot(epochs, [row["train_loss"] for row in history], label="train loss")
    if history and history[0].get("val_loss") is not None:
        loss_ax.plot(epochs, [row["val_loss"] for row in history], label="validation loss")
    loss_ax.set(xlabel="epoch", ylabel="loss", title=title)
    loss_ax.legend()
    metric = "val_accuracy" if history and "val_accuracy" in history[0] else "val_r2"
    if history and history[0].get(metric) is not None:
        metric_ax.plot(epochs, [row[metric] for row in history], color="tab:green")
    metric_ax.set(xlabel="epoch", ylabel=metric.replace("_", " "), title=metric.replace("_", " "))
    fig.tight_layout()
    _save(fig, path)


_SETTING_COLORS = {
    "raw": "tab:red",
    "normalized": "tab:blue",
    "normalized+bn": "tab:green",
    "normalized+bn-before": "tab:purple",
}


def _run_curve(row: ComparisonRow) -> tuple[list[int], list[float]]:
    """Epochs and losses of a run, from epoch 0 (the initial weights) when that loss is known."""
    history = row.result.history
    epochs = [int(h["epoch"]) for h in history]
    losses = [h["val_loss"] if h.get("val_loss") is not None else h["train_loss"] for h in history]
    if row.initial_val_loss is not None and (not history or history[0].get("val_loss") is not None):
        epochs, losses = [0, *epochs], [row.initial_val_loss, *losses]
    return epochs, losses


def _y_limits(rows: Sequence[ComparisonRow]) -> tuple[float, float]:
    """A log range that shows every run that did not diverge; diverged ones are clipped to it."""
    import math

    def values(selected: Sequence[ComparisonRow]) -> list[float]:
        return [v for r in selected for v in _run_curve(r)[1] if math.isfinite(v) and v > 0]

    shown = values([r for r in rows if not r.diverged]) or values(rows) or [1.0]
    low, high = min(shown), max(shown)
    if high / low < 10:
        middle = math.sqrt(low * high)
        low, high = middle / math.sqrt(10), middle * math.sqrt(10)
    return low / 2, high * 2


def comparison_figure(rows: Sequence[ComparisonRow], target_loss: float | None = None) -> Any:
    """The figure of ``train --compare`` (see :func:`plot_comparison`)."""
    rates = sorted({row.lr for row in rows})
    fig, axes = _figure(len(rates), sharey=True, height=5.2)
    low, high = _y_limits(rows)
    for ax, lr in zip(axes, rates, strict=True):
        for row in (r for r in rows if r.lr == lr):
            color = _SETTING_COLORS.get(row.setting, None)
            epochs, losses = _run_curve(row)
            drawn = [min(max(v, low), high) if v == v else high for v in losses]
            label = row.setting
            if row.diverged:
                label += f" (diverged, epoch {row.epochs_run + 1 if row.result.diverged else row.epochs_run})"
            ax.plot(epochs, drawn, color=color, marker="o" if len(epochs) < 3 else None, markersize=4, label=label)
            below = [(e, low) for e, v in zip(epochs, losses) if v < low]  # zeros too
            above = [(e, high) for e, v in zip(epochs, losses) if v > high]
            if below:
                ax.scatter(*zip(*below), marker="v", color=color, s=30, zorder=3, clip_on=False)
            if above:
                ax.scatter(*zip(*above), marker="^", color=color, s=30, zorder=3, clip_on=False)
            if row.best_epoch is not None and row.best_val_loss is not None:
                best = min(max(row.best_val_loss, low), high)
                ax.scatter([row.best_epoch], [best], marker="*", s=140, color=color, edgecolors="black",
                           linewidths=0.6, zorder=4)  # fmt: skip
            if row.diverged:
                if row.result.diverged:  # stopped: non-finite in the epoch after the last one drawn
                    where = (epochs[-1] + 1 if epochs else 1, high)
                    ax.plot([epochs[-1], where[0]] if epochs else [where[0]], [drawn[-1], high] if epochs else [high],
                            color=color, linestyle=":")  # fmt: skip
                else:
                    where = (epochs[-1], drawn[-1])
                ax.scatter([where[0]], [where[1]], marker="X", s=110, color=color, edgecolors="black",
                           linewidths=0.6, zorder=5, clip_on=False)  # fmt: skip
        if target_loss is not None and low < target_loss < high:
            ax.axhline(target_loss, color="gray", linestyle="--", linewidth=1, label="target loss")
        ax.set(xlabel="epoch", title=f"lr = {lr:g}", yscale="log", ylim=(low, high))
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    axes[0].set_ylabel("validation loss (log)")
    fig.suptitle("validation loss per epoch: ★ best epoch, ✕ diverged, ▲▼ beyond the axis", fontsize="medium")
    fig.tight_layout()
    return fig


def plot_comparison(rows: Sequence[ComparisonRow], path: str, target_loss: float | None = None) -> None:
    """One panel per learning rate: each setting's validation loss per epoch from epoch 0.

    All panels share one log-scale y axis, ranged to show every run that did not diverge; values
    beyond it are drawn at the edge with ▲/▼ (a loss of 0 too). Each run's best epoch is a
    star; a diverged run is drawn up to its divergence and ends in an ✕ (at the top edge when
    its loss became non-finite). A dashed line marks the target loss.
    """
    _save(comparison_figure(rows, target_loss), path)
