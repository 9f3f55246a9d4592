"""The statistics commands: fit, transform, inspect and merge."""

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
    UnknownGroup,
    Inputs,
    NoHeaders,
    NullValues,
    Quiet,
    Scheduler,
    SchedulerFile,
    Separator,
    StorageOption,
    Text,
    _parse_method_for,
    _parse_pair,
    _parse_storage_options,
    _reading,
    _refuse_binary_on_terminal,
    _run,
    _split_list,
    _split_names,
)
from normcli.context import Env
from normcli.errors import UsageError


# --------------------------------------------------------------------------- fit


@app.command(short_help="Fit scaling statistics over files or a pipe; save them as JSON.")
def fit(
    inputs: Inputs = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Stats file to write ('-' for stdout).")] = "stats.json",
    method: Annotated[str, typer.Option("--method", "-m", help="Default method: standard, minmax, robust, maxabs.")] = "standard",
    method_for: Annotated[
        list[str] | None, typer.Option("--method-for", help="COLUMN=METHOD for a column or a pattern of them (repeatable).")
    ] = None,
    columns: Annotated[list[str] | None, typer.Option("--columns", "-c", help="Only these columns: names, globs ('f_*'), re:REGEX, 1-based ranges (1-3); comma-separated, repeatable.")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", "-x", help="Leave out these columns (same patterns as --columns).")] = None,
    ddof: Annotated[int, typer.Option("--ddof", help="Delta degrees of freedom of std: 0 (as scikit-learn) or 1.")] = 0,
    feature_range: Annotated[str, typer.Option("--feature-range", help="LOW,HIGH target range of minmax.")] = "0,1",
    quantile_range: Annotated[str, typer.Option("--quantile-range", help="LOW,HIGH percentiles whose spread scales robust columns (scikit-learn's quantile_range).")] = "25,75",
    unit_variance: Annotated[bool, typer.Option("--unit-variance", help="Robust: divide the spread by that of a normal distribution, as RobustScaler(unit_variance=True).")] = False,
    by: Annotated[list[str] | None, typer.Option("--by", help="Also fit per group of these columns (comma-separated): each group's statistics, plus the pooled ones.")] = None,
    weight: Annotated[str | None, typer.Option("--weight", help="Column of frequency weights: a row of weight w counts as w rows (n = sum of weights).")] = None,
    allow_missing_columns: Annotated[bool, typer.Option("--allow-missing-columns", help="A column absent from some inputs is read as empty there (default: an error).")] = False,
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help="Read a file given more than once (under any name) each time: its rows count twice (default: an error).")] = False,
    force: Force = False,
    null_values: NullValues = None,
    format: Format = None,
    separator: Separator = None,
    no_headers: NoHeaders = False,
    text: Text = None,
    dtype: Dtype = None,
    scheduler: Scheduler = None,
    scheduler_file: SchedulerFile = None,
    storage_option: StorageOption = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Fit scaling statistics over CSV/Parquet/NDJSON files (streaming) and save them as JSON.

    All numeric columns are fitted unless --columns/--exclude say otherwise; other columns are
    skipped and named. Empty cells and NA, N/A, NaN, nan, null, NULL are missing values. With
    --scheduler the fragments are summarized by Dask workers: the stats file is byte-identical.
    With --by, every column is also fitted within each group (transform then applies each row's
    group); with --weight, statistics are frequency-weighted.

    Example:

    \b
        normcli fit train.csv -o stats.json --method-for income=robust
        normcli fit 'part-*.csv' --columns 'f_*' -o - | jq .columns
        zcat big.csv.gz | normcli fit - -d ';' -o stats.json
        normcli fit 's3://bucket/data/*.parquet' --scheduler tcp://10.0.0.5:8786 -o stats.json
        normcli fit sales.parquet --by store -o per-store.json
        normcli fit survey.csv --weight freq --ddof 1
    """

    def body(env: Env) -> None:
        from normcli.data.formats import DEFAULT_NULL_VALUES
        from normcli.data.inputs import named_files
        from normcli.data.outputs import check_output_target, check_replaceable
        from normcli.scaling.engine import engine_for
        from normcli.scaling.fit import fit as fit_stats
        from normcli.scaling.statsfile import is_stats_file, save_stats

        if output != "-":
            check_output_target(output, named_files(inputs or []), plain="a stats file")
            check_replaceable(output, is_stats_file, "normcli stats file", force)
        nulls = _split_list(null_values)
        storage = _parse_storage_options(storage_option)
        by_names = _split_names(by, "--by")
        if by_names == []:  # --by "" (an unset shell variable): not a silent fit without groups
            raise UsageError("--by needs at least one column name", hint="e.g. --by store, or --by store,day")
        with (
            engine_for(scheduler, scheduler_file) as engine,
            env.progress("fitting " + ", ".join(inputs or ["<stdin>"]), inputs) as progress,
        ):
            stats = fit_stats(
                inputs or [],
                method=method,  # type: ignore[arg-type]
                method_for=_parse_method_for(method_for),  # type: ignore[arg-type]
                columns=_split_names(columns, "--columns"),
                exclude=_split_names(exclude, "--exclude") or (),
                ddof=ddof,
                feature_range=_parse_pair(feature_range, "--feature-range"),
                quantile_range=_parse_pair(quantile_range, "--quantile-range"),
                unit_variance=unit_variance,
                by=by_names or (),
                weight=weight,
                null_values=DEFAULT_NULL_VALUES if nulls is None else nulls,
                format=format,
                **_reading(separator, no_headers, text, dtype),  # type: ignore[arg-type]
                allow_missing_columns=allow_missing_columns,
                allow_overlap=allow_overlap,
                storage=storage,
                stdin=env.stdin,
                stdin_is_terminal=env.stdin_is_terminal,
                engine=engine,
                progress=progress.rows,
            )
        for warning in stats.warnings:
            env.warn(warning)
        groups = f" in {len(stats.groups)} groups" if stats.groups is not None else ""
        if output == "-":
            from normcli.scaling.statsfile import dumps_stats

            env.write_text(dumps_stats(stats))
        else:
            save_stats(stats, output, storage=storage)
            env.note(f"fitted {len(stats.columns)} columns over {stats.row_count} rows{groups} → {output}")

    _run(body, quiet)


# --------------------------------------------------------------------------- transform


@app.command(short_help="Apply fitted statistics to files or a pipe.")
def transform(
    inputs: Inputs = None,
    stats: Annotated[str, typer.Option("--stats", "-s", help="Stats file written by normcli fit ('-': stdin, when the data are files).")] = ...,  # type: ignore[assignment]
    output: Annotated[str, typer.Option("--output", "-o", help="Output file ('-' for stdout).")] = "-",
    inverse: Annotated[bool, typer.Option("--inverse", help="Undo the scaling: x = y · scale + center.")] = False,
    clip: Clip = False,
    impute: Impute = "keep",
    unknown_group: UnknownGroup = "pooled",
    float32: Annotated[bool, typer.Option("--float32", help="Write scaled columns as float32.")] = False,
    format: Format = None,
    output_format: Annotated[
        str | None, typer.Option("--output-format", help="csv, tsv, parquet, ndjson (default: by extension; csv on stdout).")
    ] = None,
    null_values: NullValues = None,
    separator: Separator = None,
    no_headers: NoHeaders = False,
    text: Text = None,
    dtype: Dtype = None,
    scheduler: Scheduler = None,
    scheduler_file: SchedulerFile = None,
    storage_option: StorageOption = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Apply fitted statistics to files or a pipe; other columns pass through unchanged.

    Each fitted column becomes (x - center) / scale; nulls stay null and NaN stays NaN (unless
    --impute). With stats fitted --by groups, each row gets its group's center and scale. The output
    is written to a temporary file and renamed into place only on success. A folder (-o out/), and
    any output with --scheduler, gets a dataset: one part-NNNNN file per input fragment and a
    _SUCCESS manifest written last.

    Example:

    \b
        normcli transform new.csv --stats stats.json -o new-scaled.parquet
        normcli transform --stats stats.json < new.csv > scaled.csv
        normcli transform 's3://bucket/new/*.parquet' --stats stats.json --scheduler tcp://10.0.0.5:8786 -o s3://bucket/scaled/
        normcli transform new.csv -s per-store.json --unknown-group error --impute zero -o out.csv
    """

    def body(env: Env) -> None:
        from normcli.scaling.apply import transform as run_transform
        from normcli.scaling.engine import engine_for

        _refuse_binary_on_terminal(env, output, output_format)
        with (
            engine_for(scheduler, scheduler_file) as engine,
            env.progress("transforming " + ", ".join(inputs or ["<stdin>"]), inputs) as progress,
        ):
            report = run_transform(
                inputs or [],
                stats=stats,
                output=output,
                inverse=inverse,
                clip=clip,
                float32=float32,
                impute=impute,
                unknown_group=unknown_group,
                format=format,
                output_format_name=output_format,
                null_values=_split_list(null_values),
                **_reading(separator, no_headers, text, dtype),  # type: ignore[arg-type]
                storage=_parse_storage_options(storage_option),
                engine=engine,
                stdin=env.stdin,
                stdout=env.stdout,
                stdin_is_terminal=env.stdin_is_terminal,
                progress=progress.rows,
            )
        for warning in report.warnings:
            env.warn(warning)
        for note in report.notes:
            env.note(note)
        if report.parts is not None:
            env.note(f"wrote {report.parts} part{'s' if report.parts != 1 else ''} and _SUCCESS → {output}")
        elif output != "-":
            env.note(f"wrote {output}")

    _run(body, quiet)


# --------------------------------------------------------------------------- inspect


@app.command(short_help="Show a stats file or a model file as a table, CSV or JSON.")
def inspect(
    file: Annotated[str, typer.Argument(help="Stats file ('-' for stdin) or model file (.npz) to show.", show_default=False)],
    json_output: Annotated[bool, typer.Option("--json", help="Print the validated document as JSON.")] = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="Print one CSV row per column (per feature of a model), every digit.")] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Show a stats file as a table of its columns, or describe a model file: task, network,
    training and its outcome, normalization, features and classes.

    On a terminal the table fits its width (less needed columns are left out, and named); into a
    pipe or a file it is shown whole. --csv and --json give every digit.

    Example:

    \b
        normcli inspect stats.json
        normcli inspect stats.json --csv | xsv table
        normcli inspect model.npz
        normcli inspect stats.json --json | jq '.columns[] | {name, center, scale}'
    """

    def body(env: Env) -> None:
        if json_output and csv_output:
            raise UsageError("--json and --csv cannot be combined", hint="choose one")
        streamed = None
        if file != "-":  # a FIFO or <(…) can be read only once: read it whole, then tell what it is
            from normcli.data.inputs import MAX_STREAMED_MODEL_BYTES, read_if_stream
            from normcli.scaling.statsfile import MAX_STATS_BYTES

            def limit(head: bytes) -> int:  # a stats file's own limit: no need to read past it
                return MAX_STREAMED_MODEL_BYTES if head == b"PK\x03\x04" else MAX_STATS_BYTES

            streamed = read_if_stream(file, limit, "stats or model file")
        if file != "-" and (streamed.startswith(b"PK\x03\x04") if streamed is not None else _is_model_file(file)):
            import json

            from normcli.learn.modelfile import describe_model
            from normcli.report import model_csv, model_summary

            document = describe_model(file, streamed)
            if json_output:
                env.write_text(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
            else:
                env.write_text(model_csv(document) if csv_output else model_summary(document, env.width()))
            return
        from normcli.data.inputs import STDIN
        from normcli.report import stats_csv, stats_table
        from normcli.scaling.statsfile import dumps_stats, load_stats

        if streamed is not None:
            from normcli.scaling.statsfile import stats_from_bytes

            loaded = stats_from_bytes(streamed, file)
        else:
            loaded = load_stats(file, stdin=env.stdin, stdin_is_terminal=env.stdin_is_terminal)
        if json_output:
            env.write_text(dumps_stats(loaded))
        elif csv_output:
            env.write_text(stats_csv(loaded))
        else:
            env.write_text(stats_table(loaded, source=STDIN if file == "-" else file, width=env.width()))

    _run(body, quiet)


def _is_model_file(path: str) -> bool:
    """Whether ``inspect`` was given a model (an ``.npz`` name, or a zip archive's first bytes)
    rather than a stats file; checked without importing numpy, which a stats file does not need."""
    if path.lower().endswith(".npz"):
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


# --------------------------------------------------------------------------- merge


@app.command(short_help="Merge stats fitted on disjoint shards (no data read).")
def merge(
    stats_files: Annotated[list[str], typer.Argument(help="Stats files fitted on disjoint shards (one may be '-', stdin).", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="Merged stats file ('-' for stdout).")] = "stats.json",
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help="Merge shards that list the same input file (its rows count twice).")] = False,
    allow_missing_columns: Annotated[bool, typer.Option("--allow-missing-columns", help="A column absent from a shard counts as empty there.")] = False,
    force: Force = False,
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
        from normcli.data.inputs import STDIN
        from normcli.scaling.merge import merge_stats
        from normcli.scaling.statsfile import dumps_stats, load_stats, save_stats

        if len(stats_files) < 2:
            raise UsageError("merge needs at least two stats files")
        if stats_files.count("-") > 1:
            raise UsageError("stdin ('-') can be read only once", hint="name it once among the stats files")
        if output != "-":
            from normcli.data.outputs import check_output_target, check_replaceable
            from normcli.scaling.statsfile import is_stats_file

            check_output_target(output, stats_files, plain="a stats file")
            check_replaceable(output, is_stats_file, "normcli stats file", force)
        merged = merge_stats(
            [load_stats(path, stdin=env.stdin, stdin_is_terminal=env.stdin_is_terminal) for path in stats_files],
            names=[STDIN if path == "-" else path for path in stats_files],
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
