"""The statistics commands: fit, transform, inspect and merge."""

from __future__ import annotations

from typing import Annotated

import typer

from normcli.cli.app import app
from normcli.cli.options import (
    Debug,
    Format,
    Inputs,
    NullValues,
    Quiet,
    Separator,
    _parse_method_for,
    _parse_pair,
    _run,
    _split_list,
    _split_names,
)
from normcli.context import Env
from normcli.errors import UsageError


# --------------------------------------------------------------------------- fit


@app.command()
def fit(
    inputs: Inputs = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Stats file to write ('-' for stdout).")] = "stats.json",
    method: Annotated[str, typer.Option("--method", "-m", help="Default method: standard, minmax, robust, maxabs.")] = "standard",
    method_for: Annotated[
        list[str] | None, typer.Option("--method-for", help="COLUMN=METHOD for one column (repeatable).")
    ] = None,
    columns: Annotated[list[str] | None, typer.Option("--columns", "-c", help="Only these columns (comma-separated, repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", "-x", help="Leave out these columns (comma-separated, repeatable).")] = None,
    ddof: Annotated[int, typer.Option("--ddof", help="Delta degrees of freedom of std: 0 (as scikit-learn) or 1.")] = 0,
    feature_range: Annotated[str, typer.Option("--feature-range", help="LOW,HIGH target range of minmax.")] = "0,1",
    allow_missing_columns: Annotated[bool, typer.Option("--allow-missing-columns", help="A column absent from some inputs is read as empty there (default: an error).")] = False,
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help="Read a file given more than once (under any name) each time: its rows count twice (default: an error).")] = False,
    null_values: NullValues = None,
    format: Format = None,
    separator: Separator = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Fit scaling statistics over CSV/Parquet/NDJSON files (streaming) and save them as JSON.

    All numeric columns are fitted unless --columns/--exclude say otherwise; other columns are
    skipped and named. Empty cells and NA, N/A, NaN, nan, null, NULL are missing values.

    Example:

    \b
        normcli fit train.csv -o stats.json --method-for income=robust
        cat part-*.csv | normcli fit - --format csv -o - | jq .columns
    """

    def body(env: Env) -> None:
        from normcli.data.formats import DEFAULT_NULL_VALUES
        from normcli.data.inputs import named_files
        from normcli.data.outputs import check_output_target
        from normcli.scaling.fit import fit as fit_stats
        from normcli.scaling.statsfile import save_stats

        if output != "-":
            check_output_target(output, named_files(inputs or []))
        nulls = _split_list(null_values)
        with env.status("fitting statistics…"):
            stats = fit_stats(
                inputs or [],
                method=method,  # type: ignore[arg-type]
                method_for=_parse_method_for(method_for),  # type: ignore[arg-type]
                columns=_split_names(columns),
                exclude=_split_names(exclude) or (),
                ddof=ddof,
                feature_range=_parse_pair(feature_range, "--feature-range"),
                null_values=DEFAULT_NULL_VALUES if nulls is None else nulls,
                format=format,
                separator=separator,
                allow_missing_columns=allow_missing_columns,
                allow_overlap=allow_overlap,
                stdin=env.stdin,
                stdin_is_terminal=env.stdin_is_terminal,
            )
        for warning in stats.warnings:
            env.warn(warning)
        if output == "-":
            from normcli.scaling.statsfile import dumps_stats

            env.write_text(dumps_stats(stats))
        else:
            save_stats(stats, output)
            env.note(f"fitted {len(stats.columns)} columns over {stats.row_count} rows → {output}")

    _run(body, quiet)


# --------------------------------------------------------------------------- transform


@app.command()
def transform(
    inputs: Inputs = None,
    stats: Annotated[str, typer.Option("--stats", "-s", help="Stats file written by normcli fit.")] = ...,  # type: ignore[assignment]
    output: Annotated[str, typer.Option("--output", "-o", help="Output file ('-' for stdout).")] = "-",
    inverse: Annotated[bool, typer.Option("--inverse", help="Undo the scaling: x = y · scale + center.")] = False,
    clip: Annotated[bool, typer.Option("--clip", help="Clip minmax columns to their feature range.")] = False,
    float32: Annotated[bool, typer.Option("--float32", help="Write scaled columns as float32.")] = False,
    format: Format = None,
    output_format: Annotated[
        str | None, typer.Option("--output-format", help="csv, tsv, parquet, ndjson (default: by extension; csv on stdout).")
    ] = None,
    null_values: NullValues = None,
    separator: Separator = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Apply fitted statistics to files or a pipe; other columns pass through unchanged.

    Each fitted column becomes (x - center) / scale; nulls stay null and NaN stays NaN. The output is
    written to a temporary file and renamed into place only on success.

    Example:

    \b
        normcli transform new.csv --stats stats.json -o new-scaled.parquet
        normcli transform --stats stats.json < new.csv > scaled.csv
    """

    def body(env: Env) -> None:
        from normcli.scaling.apply import transform as run_transform

        with env.status("transforming…"):
            report = run_transform(
                inputs or [],
                stats=stats,
                output=output,
                inverse=inverse,
                clip=clip,
                float32=float32,
                format=format,
                output_format_name=output_format,
                separator=separator,
                null_values=_split_list(null_values),
                stdin=env.stdin,
                stdout=env.stdout,
                stdin_is_terminal=env.stdin_is_terminal,
            )
        for note in report.notes:
            env.note(note)
        if output != "-":
            env.note(f"wrote {output}")

    _run(body, quiet)


# --------------------------------------------------------------------------- inspect


@app.command()
def inspect(
    stats: Annotated[str, typer.Argument(help="Stats file to show.", show_default=False)],
    json_output: Annotated[bool, typer.Option("--json", help="Print the validated JSON instead of a table.")] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Show a stats file as a table (or, with --json, its validated content).

    Example:

    \b
        normcli inspect stats.json
        normcli inspect stats.json --json | jq '.columns[] | {name, center, scale}'
    """

    def body(env: Env) -> None:
        from normcli.scaling.statsfile import dumps_stats, load_stats

        loaded = load_stats(stats)
        if json_output:
            env.write_text(dumps_stats(loaded))
            return
        from normcli.report import stats_table

        env.write_text(stats_table(loaded, source=stats))

    _run(body, quiet)


# --------------------------------------------------------------------------- merge


@app.command()
def merge(
    stats_files: Annotated[list[str], typer.Argument(help="Stats files fitted on disjoint shards.", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="Merged stats file ('-' for stdout).")] = "stats.json",
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help="Merge shards that list the same input file (its rows count twice).")] = False,
    allow_missing_columns: Annotated[bool, typer.Option("--allow-missing-columns", help="A column absent from a shard counts as empty there.")] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Merge stats fitted on disjoint shards into the stats of all rows, without reading the data.

    Uses each column's count, mean, m2, min and max (robust columns cannot be merged).

    Example:

    \b
        normcli fit day1.csv -o day1.json && normcli fit day2.csv -o day2.json
        normcli merge day1.json day2.json -o both.json
    """

    def body(env: Env) -> None:
        from normcli.scaling.merge import merge_stats
        from normcli.scaling.statsfile import dumps_stats, load_stats, save_stats

        if len(stats_files) < 2:
            raise UsageError("merge needs at least two stats files")
        if output != "-":
            from normcli.data.outputs import check_output_target

            check_output_target(output, stats_files)
        merged = merge_stats(
            [load_stats(path) for path in stats_files], names=stats_files,
            allow_overlap=allow_overlap, allow_missing_columns=allow_missing_columns,
        )
        for warning in merged.warnings:
            env.warn(warning)
        if output == "-":
            env.write_text(dumps_stats(merged))
        else:
            save_stats(merged, output)
            env.note(f"merged {len(stats_files)} stats files ({merged.row_count} rows) → {output}")

    _run(body, quiet)
