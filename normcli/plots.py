"""Learning-curve figures (matplotlib, the optional extra ``normcli[plot]``), written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from normcli.errors import UsageError
from normcli.data.outputs import atomic_path, check_output_target

if TYPE_CHECKING:
    from normcli.nn import ComparisonRow


def require_matplotlib() -> None:
    """Fail early, before any training, when --plot cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, which is not installed",
            hint="pip install 'normcli[plot]'",
        ) from None


def _figure(columns: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=(5.5 * columns, 4.2), squeeze=False)
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


def plot_comparison(rows: Sequence[ComparisonRow], path: str) -> None:
    """One panel per learning rate: validation loss per epoch of each setting (log scale)."""
    rates = sorted({row.lr for row in rows})
    fig, axes = _figure(len(rates))
    for ax, lr in zip(axes, rates, strict=True):
        for row in (r for r in rows if r.lr == lr):
            history = row.result.history
            losses = [h["val_loss"] if h.get("val_loss") is not None else h["train_loss"] for h in history]
            label = row.setting + (" (diverged)" if row.diverged else "")
            ax.plot([h["epoch"] for h in history], losses, marker="o" if len(history) < 3 else None, label=label)
        ax.set(xlabel="epoch", ylabel="validation loss", title=f"lr = {lr:g}", yscale="log")
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
