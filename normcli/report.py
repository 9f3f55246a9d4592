"""Human-readable tables of what normcli fitted or trained, rendered with rich as plain text."""

from __future__ import annotations

import io
import shutil

from normcli.stats import Stats


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
