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
Separator = Annotated[
    str | None,
    typer.Option(
        "--delimiter", "-d", "--separator",
        help="CSV field delimiter: ',' ';' '|' or tab ('\\t' or 'tab') (default ',', tab for .tsv).",
    ),
]  # fmt: skip
NoHeaders = Annotated[
    bool, typer.Option("--no-headers", help="CSV without a header line: the columns are column_1, column_2, ...")
]
Text = Annotated[
    list[str] | None,
    typer.Option("--text", help="Read these columns as text, never as numbers (zip codes such as 00501); patterns as --columns."),
]
Dtype = Annotated[
    list[str] | None,
    typer.Option("--dtype", help="COLUMN=TYPE: read a column (or pattern) as text, int, float, bool, date or datetime (repeatable)."),
]
NullValues = Annotated[
    str | None,
    typer.Option(
        "--null-values",
        help="Comma-separated cell texts read as missing (replaces the default NA,N/A,NaN,nan,null,NULL; '' for none).",
    ),
]
Force = Annotated[
    bool, typer.Option("--force", help="Replace the output file even if it is not one normcli wrote (stats, model or export).")
]
Inputs = Annotated[
    list[str] | None,
    typer.Argument(help="Input files, URLs (s3://, gs://, az://, https://) or globs; '-' or nothing for stdin.", show_default=False),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run on a Dask cluster: its scheduler's address (tcp://host:8786) or scheduler file "
        "(default: $NORMCLI_SCHEDULER; needs pip install 'normcli[dask]').",
    ),
]
SchedulerFile = Annotated[
    str | None, typer.Option("--scheduler-file", help="Run on the Dask cluster whose scheduler wrote this file.")
]
StorageOption = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        help="KEY=VALUE for inputs and outputs named by URL, e.g. aws_region=eu-west-1, "
        "aws_endpoint_url=http://host:9000 (repeatable; default: the provider's environment variables).",
    ),
]
Clip = Annotated[
    bool, typer.Option("--clip", help="Clamp bounded columns to their range: minmax to --feature-range, maxabs to [-1, 1].")
]
Impute = Annotated[
    str,
    typer.Option(
        "--impute",
        help="Fill missing values (null, NaN) after scaling: keep, mean (what the fitted mean becomes), zero, "
        "median (robust columns), constant=V.",
    ),
]
UnknownGroup = Annotated[
    str,
    typer.Option(
        "--unknown-group",
        help="Rows of a group the stats lack (--by): pooled (the pooled statistics, with a note), null, or error.",
    ),
]


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [item for item in (part.strip() for part in text.split(",")) if item]


def _split_names(values: list[str] | None, option: str) -> list[str] | None:
    """Column-selection items of an option given one or more times (names, globs, ``re:``,
    ranges; double quotes around a name with a comma), see :mod:`normcli.data.selection`."""
    if values is None:
        return None
    from normcli.data.selection import split_items

    return [item for value in values for item in split_items(value, option)]


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
        column = column.strip()
        if len(column) > 1 and column[0] == column[-1] == '"':
            column = column[1:-1].replace('""', '"')
        if not sep or not column:
            raise UsageError(
                f"--method-for takes COLUMN=METHOD, got '{value}'",
                hint=f"methods: {', '.join(METHODS)}",
            )
        result[column] = method
    return result


def _reading(separator: str | None, no_headers: bool, text: list[str] | None, dtype: list[str] | None) -> dict[str, object]:
    """The reading options every command shares, as keyword arguments of the library's functions."""
    from normcli.data.formats import parse_dtype

    return {
        "separator": separator,
        "has_header": not no_headers,
        "text": tuple(_split_names(text, "--text") or ()),
        "dtypes": tuple(parse_dtype(value) for value in dtype or ()),
    }


def _refuse_binary_on_terminal(env: Env, output: str, output_format: str | None) -> None:
    """Parquet is not for a terminal: refuse it on stdout there, before any work (as xsv does)."""
    if output == "-" and env.stdout_is_terminal:
        from normcli.data.outputs import output_format as resolve

        fmt, _ = resolve(output, output_format)
        if not fmt.text:
            raise UsageError(
                f"{fmt.name} output is binary and stdout is a terminal",
                hint=f"name a file with -o out.{fmt.name}, or redirect: ... > out.{fmt.name}",
            )


def _parse_storage_options(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values or []:
        key, sep, setting = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--storage-option takes KEY=VALUE, got '{value}'", hint="e.g. --storage-option aws_region=us-east-1")
        pairs.append((key.strip(), setting))
    return tuple(pairs)


def _run(action: Callable[[Env], None], quiet: bool) -> None:
    """Run a command body against the current environment; the files it writes are put in place
    together at its end, after its stdout, or none of them (see :mod:`normcli.data.outputs`)."""
    from normcli.data.outputs import committed_together

    with committed_together():
        action(Env.current(quiet=quiet))
