"""Options shared by several commands, and the parsers of their values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from normcli.context import Env
from normcli.errors import UsageError


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No notes or warnings on stderr.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
Format = Annotated[
    str | None,
    typer.Option("--format", help="Input format: csv, tsv, parquet, ndjson (default: by extension; csv for stdin)."),
]
Separator = Annotated[str | None, typer.Option("--separator", help="CSV field separator (default ',' or tab for .tsv).")]
NullValues = Annotated[
    str | None,
    typer.Option(
        "--null-values",
        help="Comma-separated cell texts read as missing (replaces the default NA,N/A,NaN,nan,null,NULL; '' for none).",
    ),
]
Inputs = Annotated[list[str] | None, typer.Argument(help="Input files or globs; '-' or nothing for stdin.", show_default=False)]


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [item for item in (part.strip() for part in text.split(",")) if item]


def _split_names(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [name for value in values for name in (_split_list(value) or [])]


def _parse_pair(text: str, option: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise UsageError(f"{option} takes LOW,HIGH, e.g. {option} 0,1; got '{text}'") from None
    return low, high


def _parse_method_for(values: list[str] | None) -> dict[str, str]:
    from normcli.scaling.methods import METHODS

    result: dict[str, str] = {}
    for value in values or []:
        column, sep, method = value.rpartition("=")
        if not sep or not column:
            raise UsageError(
                f"--method-for takes COLUMN=METHOD, got '{value}'",
                hint=f"methods: {', '.join(METHODS)}",
            )
        result[column] = method
    return result


def _run(action: Callable[[Env], None], quiet: bool) -> None:
    """Run a command body against the current environment; the files it writes are put in place
    together at its end, after its stdout, or none of them (see :mod:`normcli.data.outputs`)."""
    from normcli.data.outputs import committed_together

    with committed_together():
        action(Env.current(quiet=quiet))
