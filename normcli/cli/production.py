"""Commands for taking fitted statistics to production: check new data, export SQL or ONNX."""

from __future__ import annotations

from typing import Annotated

import typer

from normcli.cli.app import app
from normcli.cli.options import (
    Clip,
    Debug,
    Dtype,
    Force,
    Format,
    Impute,
    Inputs,
    NoHeaders,
    NullValues,
    Quiet,
    Separator,
    StorageOption,
    Text,
    UnknownGroup,
    _parse_storage_options,
    _reading,
    _run,
    _split_list,
)
from normcli.context import Env
from normcli.errors import ExitStatus, UsageError

# --------------------------------------------------------------------------- check


@app.command(short_help="Check new data against the fitted stats (drift: exit 1).")
def check(
    inputs: Inputs = None,
    stats: Annotated[str, typer.Option("--stats", "-s", help="Stats file the new data should match.")] = ...,  # type: ignore[assignment]
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
    max_shift: Annotated[float, typer.Option("--max-shift", help="Largest |mean shift| allowed, in fitted standard deviations.")] = 0.25,
    max_std_ratio: Annotated[float, typer.Option("--max-std-ratio", help="Largest std ratio allowed either way (now/then or then/now).")] = 1.5,
    max_null_rate_change: Annotated[float, typer.Option("--max-null-rate-change", help="Largest change of the share of missing values allowed (0.05 = 5 points).")] = 0.05,
    max_out_of_range: Annotated[float, typer.Option("--max-out-of-range", help="Largest share of values outside the fitted [min, max] allowed.")] = 0.01,
    null_values: NullValues = None,
    format: Format = None,
    separator: Separator = None,
    no_headers: NoHeaders = False,
    text: Text = None,
    dtype: Dtype = None,
    storage_option: StorageOption = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Check that new data still look like the data the stats were fitted on (exit 1 if not).

    Per fitted column: rows, missing share then and now, mean shift in fitted standard deviations,
    std ratio, share of values outside the fitted [min, max], type changes; missing and new
    columns. Exit 0 when everything is within the thresholds, 1 when not, so that
    'normcli check ... && normcli transform ...' works in a script. Data that were already
    transformed with these stats are recognised and reported as such (exit 1).

    Example:

    \b
        normcli check new.csv --stats stats.json && normcli transform new.csv -s stats.json -o out.csv
        normcli check 'day-*.parquet' -s stats.json --json | jq '.columns[] | select(.ok | not)'
    """

    def body(env: Env) -> None:
        import json

        from normcli.scaling.check import Thresholds, check_data

        thresholds = Thresholds(max_shift, max_std_ratio, max_null_rate_change, max_out_of_range)
        with env.progress("checking " + ", ".join(inputs or ["<stdin>"]), inputs) as progress:
            report = check_data(
                inputs or [],
                stats=stats,
                thresholds=thresholds,
                null_values=_split_list(null_values),
                format=format,
                **_reading(separator, no_headers, text, dtype),  # type: ignore[arg-type]
                storage=_parse_storage_options(storage_option),
                stdin=env.stdin,
                stdin_is_terminal=env.stdin_is_terminal,
                progress=progress.rows,
            )
        if json_output:
            env.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n")
        else:
            from normcli.report import check_table

            env.write_text(check_table(report, width=env.width()))
        for note in report.notes:
            env.note(note)
        if not report.ok:
            env.note(f"check failed: {report.verdict}")
            raise typer.Exit(int(ExitStatus.DATA_ERROR))
        env.note(f"check passed: {report.verdict}")

    _run(body, quiet)


# --------------------------------------------------------------------------- export


@app.command(short_help="Export stats as SQL (DuckDB, PostgreSQL, SQLite) or an ONNX model.")
def export(
    stats: Annotated[str, typer.Argument(help="Stats file to export.", show_default=False)],
    to: Annotated[str, typer.Option("--to", help="sql (a SELECT) or onnx (a model file).")] = ...,  # type: ignore[assignment]
    output: Annotated[str, typer.Option("--output", "-o", help="Output file ('-' for stdout; an ONNX model needs a file or an explicit '-').")] = "",
    dialect: Annotated[str, typer.Option("--dialect", help="SQL dialect: duckdb, postgres, sqlite.")] = "duckdb",
    table: Annotated[str, typer.Option("--table", help="Table (or view) the SELECT reads; schema.table is quoted part by part.")] = "data",
    inverse: Annotated[bool, typer.Option("--inverse", help="Undo the scaling: x = y · scale + center.")] = False,
    clip: Clip = False,
    impute: Impute = "keep",
    unknown_group: UnknownGroup = "pooled",
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Export stats as SQL (DuckDB, PostgreSQL, SQLite) or an ONNX model, computing what transform computes.

    The SQL is a SELECT over --table that scales the fitted columns and passes the others through;
    the ONNX model takes each fitted column as a float64 input (NaN = missing) and outputs
    <column>_scaled. Both give transform's float64 results bit for bit (the same operations, the
    same constants). ONNX needs 'pip install normcli[onnx]'.

    Example:

    \b
        normcli export stats.json --to sql --dialect duckdb --table events > scale.sql
        duckdb -c "CREATE VIEW data AS FROM 'new.parquet'; $(cat scale.sql)"
        normcli export stats.json --to onnx -o scaler.onnx
    """

    def body(env: Env) -> None:
        from normcli.scaling.apply import Impute as ImputeOption
        from normcli.scaling.export import TARGETS, ExportOptions, export_onnx, export_sql
        from normcli.scaling.statsfile import load_stats

        if to not in TARGETS:
            raise UsageError(f"unknown --to '{to}'", hint=f"choose one of: {', '.join(TARGETS)}")
        target = output or ("-" if to == "sql" else "")
        if not target:
            raise UsageError("--to onnx writes a binary model: name the file with -o", hint="e.g. -o scaler.onnx (or -o - for stdout)")
        if target == "-" and to == "onnx" and env.stdout_is_terminal:  # as transform refuses Parquet there
            raise UsageError("onnx output is binary and stdout is a terminal", hint="name a file with -o scaler.onnx, or redirect: ... > scaler.onnx")
        if target != "-":
            from normcli.data.outputs import check_output_target, check_replaceable
            from normcli.scaling.export import is_export_file

            check_output_target(target, [stats], plain=f"an {to.upper()} export")
            check_replaceable(target, is_export_file, "normcli export (SQL or ONNX)", force)
        loaded = load_stats(stats)
        options = ExportOptions(inverse=inverse, clip=clip, impute=ImputeOption.parse(impute), unknown_group=unknown_group)
        for warning in options.check(loaded).warnings:  # as transform warns (--clip that does nothing)
            env.warn(warning)
        if to == "sql":
            data: bytes = export_sql(loaded, dialect=dialect, table=table, options=options).encode()
        else:
            data = export_onnx(loaded, options=options)
        if target == "-":
            from normcli.data.outputs import stdout_stream, writing

            stream = stdout_stream(env.stdout)
            with writing("stdout"):
                stream.write(data)
                stream.flush()
        else:
            from normcli.data.outputs import atomic_path

            with atomic_path(target) as temp:
                temp.write_bytes(data)
            env.note(f"wrote {target} ({to}{f', {dialect}' if to == 'sql' else ''}: {len(loaded.columns)} columns)")

    _run(body, quiet)
