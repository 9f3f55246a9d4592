"""Human-readable tables of what normcli fitted or trained, rendered with rich as plain text."""

from __future__ import annotations

import io
import shutil

from normcli.scaling.model import Stats


def _render(renderable: object, width: int | None = None) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width or max(100, shutil.get_terminal_size((120, 24)).columns),
        no_color=True,
        color_system=None,
        highlight=False,
    )
    console.print(renderable)
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def stats_table(stats: Stats, source: str = "") -> str:
    """The statistics of every fitted column as a table, with the inputs and options as a caption."""
    from rich.table import Table

    table = Table(
        title=f"{source or 'stats'}: {len(stats.columns)} columns, {stats.row_count} rows",
        caption=(
            f"inputs: {', '.join(stats.inputs) or '-'}; ddof={stats.ddof}; "
            f"y = (x - center) / scale"
            + (f"; weighted by {stats.weight}" if stats.weight else "")
            + (f"; {len(stats.groups)} groups by {', '.join(stats.by)} (pooled statistics shown)" if stats.groups is not None else "")
            + (f"; skipped: {', '.join(s.name for s in stats.skipped)}" if stats.skipped else "")
        ),
    )
    for header in ("column", "dtype", "method", "count", "nulls", "NaN", "mean", "std", "min", "max", "center", "scale"):
        numeric = header not in ("column", "dtype", "method")
        table.add_column(header, justify="right" if numeric else "left")
    for c in stats.columns:
        table.add_row(
            c.name, c.dtype, c.method, str(c.count), str(c.null_count), str(c.nan_count),
            _number(c.mean), _number(c.std), _number(c.min), _number(c.max),
            _number(c.center), _number(c.scale),
        )
    return _render(table)


def _full(value: float | None) -> str:
    """Every digit, in one format: Python's shortest repr that reads back to the same float."""
    return "" if value is None else repr(float(value))


def _plain(renderable: object) -> str:
    """Render at the table's natural width: nothing cut, whatever the terminal (for pipes)."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=100_000, no_color=True, color_system=None, highlight=False)
    console.print(renderable, crop=False, soft_wrap=False)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def _metric_cells(task: str, row: dict, number=_number) -> list[str]:  # noqa: ANN001
    if task == "classification":
        return [number(row.get("val_accuracy"))]
    return [number(row.get("val_rmse")), number(row.get("val_r2"))]


def train_table(metrics: dict, full_numbers: bool = False) -> str:
    """The final summary of ``normcli train``: data, epochs and the final metrics.

    ``full_numbers`` (stdout is not a terminal): every digit, and nothing cut to a width.
    """
    from rich.table import Table

    number = _full if full_numbers else _number
    task = metrics["task"]
    table = Table(
        title=f"trained a {task} model of '{metrics['target']}' on {len(metrics['features'])} features",
        caption=(
            f"rows: {metrics['rows']['train']} train, {metrics['rows']['validation']} validation; "
            f"epochs run: {metrics['epochs_run']}"
            + (f"; best epoch {metrics['best_epoch']} restored (early stopping)" if metrics["stopped_early"] else "")
            + (f"; model: {metrics['model']}" if metrics.get("model") else "")
        ),
        min_width=72,
    )
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for key, value in metrics["final"].items():
        table.add_row(key, number(value))
    return _plain(table) if full_numbers else _render(table)


def compare_table(report, full_numbers: bool = False) -> str:  # noqa: ANN001
    """The table of ``normcli train --compare``: one row per setting and learning rate.

    ``full_numbers`` (stdout is not a terminal): every digit, and nothing cut to a width.
    """
    from rich.table import Table

    from normcli.learn.compare import DIVERGENCE_FACTOR

    number = _full if full_numbers else _number
    task = report.prepared.task
    metric_headers = ["val acc"] if task == "classification" else ["val RMSE", "val R²"]
    target = "none" if report.target_loss is None else number(report.target_loss)
    table = Table(
        title=f"what normalization does: '{report.prepared.target}' ({task})",
        caption=(
            f"same network, seed and epochs; 'epochs to target' = first epoch with val loss <= {target} "
            f"({report.target_loss_rule}); final = last epoch; diverged = non-finite, or last val loss > "
            f"{DIVERGENCE_FACTOR:g} x initial; grad norm = mean ||dL/dW|| of the first layer"
        ),
    )
    headers = ("lr", "inputs", "batch norm", "epochs", "best val loss", "best epoch", "final val loss",
               *metric_headers, "epochs to target", "diverged", "grad norm")  # fmt: skip
    for header in headers:
        table.add_column(header, justify="left" if header in ("inputs", "batch norm", "diverged") else "right", no_wrap=True)
    for row in report.rows:
        metrics = {"val_accuracy": row.val_accuracy, "val_rmse": row.val_rmse, "val_r2": row.val_r2}
        table.add_row(
            f"{row.lr:g}", row.inputs, row.batchnorm, str(row.epochs_run), number(row.best_val_loss),
            "-" if row.best_epoch is None else str(row.best_epoch), number(row.final_val_loss),
            *_metric_cells(task, metrics, number), "-" if row.epochs_to_target is None else str(row.epochs_to_target),
            "yes" if row.diverged else "no", number(row.grad_norm_first_layer),
        )
    return _plain(table) if full_numbers else _render(table)


def epoch_line(row: dict, epochs: int) -> str:
    """One line of per-epoch progress."""
    parts = [f"epoch {row['epoch']:>3}/{epochs}", f"train_loss {row['train_loss']:.4f}"]
    for key in ("val_loss", "val_accuracy", "val_rmse", "val_r2"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    return "  ".join(parts)


def check_table(report, full_numbers: bool = False) -> str:  # noqa: ANN001 - a normcli.scaling.check.CheckReport
    """The table of ``normcli check``: one row per fitted column, its numbers then and now.

    ``full_numbers`` (stdout is not a terminal): nothing cut to a width.
    """
    import math

    from rich.table import Table

    t = report.thresholds
    status = "OK" if report.ok else ("ALREADY TRANSFORMED" if report.transformed else "FAILED")
    caption = [
        f"thresholds: |mean shift| <= {t.max_shift:g} SD, std ratio within {1 / t.max_std_ratio:.3g}..{t.max_std_ratio:g}, "
        f"missing share change <= {t.max_null_rate_change:g}, outside [min, max] <= {t.max_out_of_range:g}",
    ]
    if report.new_columns:
        caption.append(f"new columns: {', '.join(report.new_columns)}")
    if report.groups is not None:
        unseen = report.groups["unseen"]
        caption.append(
            f"groups ({', '.join(report.groups['by'])}): {report.groups['then']} fitted, {report.groups['now']} now, "
            f"{unseen['groups']} unseen ({unseen['rows']} rows)"
        )
    from rich.markup import escape

    table = Table(
        title=escape(f"{status}: {', '.join(report.inputs)} ({report.rows_now} rows) against {report.stats} ({report.rows_then} rows)"),
        caption=escape("; ".join(caption)),
    )
    headers = ["column", "type", "values", "missing then", "missing now", "mean shift (SD)", "std ratio", "outside", "status"]
    if report.groups is not None:
        headers.insert(-1, "worst group shift")
    for header in headers:
        table.add_column(header, justify="left" if header in ("column", "type", "status", "worst group shift") else "right")

    def share(value: float | None) -> str:
        return "" if value is None else f"{value:.2%}"

    def number(value: float | None) -> str:
        if value is None:
            return ""
        return f"{value:+.3g}" if math.isfinite(value) else ("+inf" if value > 0 else "-inf")

    for c in report.columns:
        dtype = c.dtype_then if c.dtype_now in (None, c.dtype_then) else f"{c.dtype_then} → {c.dtype_now}"
        cells = [
            c.name, dtype, str(c.count_now), share(c.missing_then), share(c.missing_now), number(c.shift),
            "" if c.std_ratio is None else (f"{c.std_ratio:.3g}" if math.isfinite(c.std_ratio) else "inf"),
            share(c.outside_share),
        ]
        if report.groups is not None:
            cells.append("" if c.worst_group is None else f"{c.worst_group[0]}: {number(c.worst_group[1])}")
        cells.append("ok" if c.ok else "; ".join(c.problems))
        table.add_row(*(escape(cell) for cell in cells))
    return _plain(table) if full_numbers else _render(table)
