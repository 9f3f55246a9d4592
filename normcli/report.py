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
    console.print(renderable, crop=False)
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


_STATS_FIELDS: tuple[tuple[str, str, int], ...] = (
    # header, attribute of ColumnStats, rank: columns with the highest rank go first when the
    # table is too wide for the terminal (column, method, center and scale always stay)
    ("column", "name", 0), ("dtype", "dtype", 11), ("method", "method", 0), ("count", "count", 4),
    ("nulls", "null_count", 10), ("NaN", "nan_count", 12), ("mean", "mean", 5), ("std", "std", 6),
    ("min", "min", 8), ("max", "max", 7), ("center", "center", 0), ("scale", "scale", 0),
)  # fmt: skip
NAME_MIN_WIDTH = 12
"""Column names longer than this wrap inside their cell rather than push numbers off the line."""


def table_width(widths: list[int]) -> int:
    """Width of a rich table (the default box, padding 1) whose columns hold ``widths`` characters."""
    return sum(w + 2 for w in widths) + len(widths) + 1


def stats_table(stats: Stats, source: str = "", width: int | None = None) -> str:
    """The statistics of every fitted column as a table, with the inputs and options as a caption.

    ``width`` is the terminal's: the least needed columns are left out (and named in the caption)
    until the table fits, so numbers are never cut; ``None`` (not a terminal) shows every column
    at its natural width.
    """
    from rich.table import Table

    cells = {
        header: [_cell(getattr(c, attribute)) for c in stats.columns] for header, attribute, _ in _STATS_FIELDS
    }  # fmt: skip
    natural = {h: max([len(h), *(len(v) for v in values)]) for h, values in cells.items()}
    shown = [h for h, _, _ in _STATS_FIELDS]
    if width is not None:
        by_rank = sorted((rank, index, h) for index, (h, _, rank) in enumerate(_STATS_FIELDS) if rank)

        def needed(headers: list[str]) -> int:
            return table_width([min(natural[h], NAME_MIN_WIDTH) if h == "column" else natural[h] for h in headers])

        while needed(shown) > width and by_rank:
            shown.remove(by_rank.pop()[2])
    left_out = [h for h, _, _ in _STATS_FIELDS if h not in shown]
    caption = (
        f"inputs: {', '.join(stats.inputs) or '-'}; ddof={stats.ddof}; y = (x - center) / scale"
        + (f"; skipped: {', '.join(s.name for s in stats.skipped)}" if stats.skipped else "")
        + (f"; not shown here: {', '.join(left_out)} (a wider terminal, or --csv)" if left_out else "")
    )
    table = Table(title=f"{source or 'stats'}: {len(stats.columns)} columns, {stats.row_count} rows", caption=caption)
    for header in shown:
        if header == "column":
            table.add_column(header, overflow="fold", min_width=min(natural[header], NAME_MIN_WIDTH))
        elif header in ("dtype", "method"):
            table.add_column(header, no_wrap=True, min_width=natural[header])
        else:
            table.add_column(header, justify="right", no_wrap=True, min_width=natural[header])
    for row in range(len(stats.columns)):
        table.add_row(*(cells[h][row] for h in shown))
    if width is None:
        return _plain(table)
    return _render(table, width)


def _cell(value: object) -> str:
    return _number(value) if isinstance(value, float) else str(value)


CSV_FIELDS = (
    "name", "dtype", "method", "count", "null_count", "nan_count", "mean", "m2", "std", "min", "max",
    "center", "center_lo", "scale", "median", "q1", "q3", "max_abs", "range_low", "range_high",
)  # fmt: skip


def stats_csv(stats: Stats) -> str:
    """One CSV row per fitted column with every field at full precision (floats as the shortest
    text that reads back to the same number); fields a method does not have are empty."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for c in stats.columns:
        low, high = c.feature_range if c.feature_range is not None else (None, None)
        values = {**{f: getattr(c, f, None) for f in CSV_FIELDS}, "range_low": low, "range_high": high}
        writer.writerow(["" if values[f] is None else repr(values[f]) if isinstance(values[f], float) else values[f] for f in CSV_FIELDS])
    return buffer.getvalue()


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


# --------------------------------------------------------------------------- models


def _metric_text(values: dict) -> str:
    return ", ".join(f"{key} {_number(value)}" for key, value in values.items() if value is not None)


def model_summary(document: dict, width: int | None = None) -> str:
    """What ``normcli inspect model.npz`` prints: the task, network, training and its outcome,
    the normalization, then one row per feature (``document`` is
    :func:`normcli.learn.modelfile.describe_model`'s)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    config, task = document["config"], document.get("task", document["config"].get("task"))
    classes = document.get("class_labels")
    lines = [f"{document['file']}: a {task} model of '{document.get('target', '?')}'"
             + (f" ({len(classes)} classes: {', '.join(map(str, classes))})" if classes else "")]  # fmt: skip
    placement = config.get("bn_placement", "none")
    batch_norm = "no batch norm" if placement == "none" else f"batch norm {placement} each activation"
    sizes = " → ".join(str(n) for n in [config["input_dim"], *config["hidden"], config["output_dim"]])
    lines.append(
        f"network: {sizes} ({config['activation']}, {batch_norm}"
        + (f", dropout {config['dropout']:g}" if config.get("dropout") else "")
        + f"); {config['dtype']}; {document['parameters']:,} parameters"
    )
    training = document.get("training") or {}
    if training:
        stopping = f"early stopping {training['patience']}" if training.get("patience") else "no early stopping"
        lines.append(
            f"training: {training.get('optimizer')}, lr {training.get('lr'):g}, batch {training.get('batch_size')}, "
            f"up to {training.get('epochs')} epochs ({stopping}), seed {training.get('seed')}"
        )
    outcome = document.get("metrics")
    if outcome:
        rows = outcome.get("rows") or {}
        best = f", best epoch {outcome['best_epoch']} kept" if outcome.get("stopped_early") else ""
        lines.append(
            f"outcome: {outcome.get('epochs_run')} epochs run{best}; {_metric_text(outcome.get('final') or {})} "
            f"({rows.get('train', 0):,} training rows, {rows.get('validation', 0):,} validation rows)"
        )
    else:
        lines.append("outcome: not stored in this model file (trained by an older normcli)")
    features = document.get("features") or []
    numeric = [f for f in features if f.get("kind") == "numeric"]
    if numeric:
        origin = "fitted on the training split" if document.get("input_stats_fitted_on_training_split") else "from a --stats file"
        lines.append(f"normalization: y = (x - center) / scale, {origin}; a missing number becomes the mean")
    if document.get("null_values") is not None:
        lines.append("missing values: empty cells and " + (", ".join(document["null_values"]) or "nothing else"))
    if document.get("id_columns"):
        lines.append(f"left out as ids: {', '.join(document['id_columns'])}")
    table = Table(title=f"{len(features)} features → {config['input_dim']} network inputs", title_justify="left")
    table.add_column("feature", overflow="fold", min_width=min(NAME_MIN_WIDTH, max([7, *(len(f["name"]) for f in features)])))
    table.add_column("kind", no_wrap=True)
    for header in ("center", "scale", "mean"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("categories", overflow="fold")
    for feature in features:
        if feature.get("kind") == "numeric":
            table.add_row(feature["name"], "numeric", *(_number(feature[k]) for k in ("center", "scale", "mean")), "")
        else:
            categories = ["<missing>" if c is None else str(c) for c in feature.get("categories", [])]
            other = " + <other>" if feature.get("folded") else ""
            table.add_row(feature["name"], "one-hot", "", "", "", ", ".join(categories) + other)
    group = Group(*(Text(line) for line in lines), Text(""), table)
    return _plain(group) if width is None else _render(group, width)


MODEL_CSV_FIELDS = ("feature", "kind", "center", "scale", "mean", "categories")


def model_csv(document: dict) -> str:
    """One CSV row per feature of a model: numbers at full precision, categories joined by '|'."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MODEL_CSV_FIELDS)
    for feature in document.get("features") or []:
        if feature.get("kind") == "numeric":
            writer.writerow([feature["name"], "numeric", *(repr(float(feature[k])) for k in ("center", "scale", "mean")), ""])
        else:
            categories = ["" if c is None else str(c) for c in feature.get("categories", [])]
            writer.writerow([feature["name"], "one-hot", "", "", "", "|".join(categories)])
    return buffer.getvalue()
