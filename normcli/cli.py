"""The ``normcli`` command line: parses options, calls the library, prints.

Each command is a thin wrapper over a function of the library (``normcli.scaling.fit.fit``,
``normcli.scaling.apply.transform``, ...). Errors become exit codes in one place, :func:`report_error`.
Heavy modules (polars, numpy, pyarrow, rich) are imported inside commands so that
``normcli --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from normcli import __version__
from normcli.errors import ExitStatus, NormcliError, UsageError

PROG = "normcli"


# --------------------------------------------------------------------------- environment


@dataclass
class Env:
    """The streams a command talks to and whether they are terminals (swapped in tests)."""

    stdin: IO[bytes]
    stdout: IO[bytes]
    stderr: IO[str]
    stdin_is_terminal: bool
    stderr_is_terminal: bool
    quiet: bool = False

    @classmethod
    def current(cls, quiet: bool = False) -> Env:
        """The process's real streams (under CliRunner, the runner's)."""
        return cls(
            stdin=sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin,  # type: ignore[arg-type]
            stdout=sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout,  # type: ignore[arg-type]
            stderr=sys.stderr,
            stdin_is_terminal=_isatty(sys.stdin),
            stderr_is_terminal=_isatty(sys.stderr),
            quiet=quiet,
        )

    def note(self, message: str) -> None:
        """An informational line on stderr, unless ``--quiet``."""
        if not self.quiet:
            print(f"{PROG}: {message}", file=self.stderr)

    def warn(self, message: str) -> None:
        """A warning line on stderr, unless ``--quiet``."""
        if not self.quiet:
            print(f"{PROG}: warning: {message}", file=self.stderr)

    def status(self, message: str) -> Any:
        """A spinner on stderr while work runs, only when stderr is a terminal."""
        import contextlib

        if self.quiet or not self.stderr_is_terminal:
            return contextlib.nullcontext()
        return self.console().status(message)

    def console(self) -> Any:
        """A rich console on stderr (colours unless NO_COLOR), for progress on a terminal."""
        from rich.console import Console

        return Console(file=self.stderr)

    def write_text(self, text: str) -> None:
        """Data on stdout."""
        self.stdout.write(text.encode())
        self.stdout.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- errors → exit codes


def _usage_hint(exc: BaseException) -> str:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or PROG
    return f"see '{path} --help'"


def report_error(exc: BaseException, stderr: IO[str], debug: bool) -> int:
    """Print ``exc`` as one line on stderr and return its exit code: the only such mapping."""
    if isinstance(exc, typer.Exit):
        return int(exc.exit_code)
    if debug:
        traceback.print_exception(exc, file=stderr)
    if isinstance(exc, NormcliError):
        print(f"{PROG}: error: {exc.one_line()}", file=stderr)
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt) and _TERMINATED.is_set():
        print(f"{PROG}: terminated", file=stderr)
        return int(ExitStatus.TERMINATED)
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        print(f"{PROG}: interrupted", file=stderr)
        return int(ExitStatus.INTERRUPTED)
    if isinstance(exc, typer.TyperException) and hasattr(exc, "format_message"):
        # click's usage errors (vendored by typer): bad option, missing argument, bad value
        message = " ".join(exc.format_message().split())
        code = int(getattr(exc, "exit_code", ExitStatus.USAGE_ERROR))
        hint = f" ({_usage_hint(exc)})" if code == ExitStatus.USAGE_ERROR else ""
        print(f"{PROG}: error: {message}{hint}", file=stderr)
        return code
    if isinstance(exc, BrokenPipeError) or "Broken pipe" in str(exc):
        _silence_stdout()
        return int(ExitStatus.OK)
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc)
        name = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {name}{what}", file=stderr)
        return int(ExitStatus.DATA_ERROR)
    first = " ".join(str(exc).split())[:300] or type(exc).__name__
    print(
        f"{PROG}: error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
        file=stderr,
    )
    return int(ExitStatus.DATA_ERROR)


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    _silence(sys.stdout)


def _silence(stream: IO[str]) -> None:
    """Point ``stream``'s file descriptor at /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass


class _Escaped(Exception):
    """Carries an exception past Typer's own handling to :func:`report_error` (see ``invoke``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


_TERMINATED = threading.Event()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM (kill, timeout) like Ctrl-C, then exit 143 instead of 130.

    Polars aborts a running query promptly on SIGINT only (its own handler), and Python runs
    signal handlers only between bytecodes, so a Python SIGTERM handler would wait for the whole
    query. Instead Python's C-level handler writes the signal number to a wakeup pipe, and a
    watcher thread answers SIGTERM by sending SIGINT to this process: the query stops, the
    KeyboardInterrupt unwinds (temporary files are removed) and :func:`report_error` says
    "terminated". For the console script only: tests in-process keep their own handlers.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        while data := os.read(read_end, 64):
            if signal.SIGTERM in data and not _TERMINATED.is_set():
                _TERMINATED.set()
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=watch, name="normcli-sigterm", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGTERM, previous)
        os.close(write_end)  # ends the watcher


class NormcliGroup(TyperGroup):
    """Typer's group with normcli's error handling, so CliRunner and the console script agree."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command, passing Ctrl-C and closed pipes on to :func:`report_error`.

        Typer would turn KeyboardInterrupt into a silent exit 130 and a closed pipe into exit 1.
        """
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, OSError) as exc:
            raise _Escaped(exc) from exc

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args or bool(os.environ.get("NORMCLI_DEBUG"))
        try:
            result = super().main(
                args=args, prog_name=prog_name or PROG, complete_var=complete_var,
                standalone_mode=False, **extra,
            )
        except BaseException as exc:  # noqa: BLE001 - this is the one place errors become exits
            if isinstance(exc, SystemExit):
                raise
            if isinstance(exc, _Escaped):
                exc = exc.error
            code = report_error(exc, sys.stderr, debug)
            sys.exit(code)
        if isinstance(result, int) and standalone_mode:
            sys.exit(result)
        return result


app = typer.Typer(
    cls=NormcliGroup,
    name=PROG,
    help="Fit, save and apply scaling statistics to tabular data; train a numpy batch-norm MLP.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Fit, save and apply scaling statistics to tabular data; train a numpy batch-norm MLP.

    Data goes to stdout, messages to stderr. Exit codes: 0 success, 1 data error, 2 usage error.
    """


# --------------------------------------------------------------------------- shared options

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
    """Run a command body against the current environment."""
    action(Env.current(quiet=quiet))


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


# --------------------------------------------------------------------------- train and predict
# (kept together: options, parsing helpers, progress display and the two commands)


def _parse_ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{option} takes comma-separated integers, e.g. {option} 64,64; got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{option} needs positive sizes, got '{text}'")
    return values


def _parse_floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option} takes numbers, e.g. {option} 0.01,0.1; got '{text}'") from None
    if not values or any(not v > 0 for v in values):
        raise UsageError(f"{option} must be positive, got '{text}'")
    return values


def _parse_bn_momentum(text: str) -> float | None:
    if text.strip().lower() == "cumulative":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--bn-momentum takes a number in [0, 1] or 'cumulative', not '{text}'") from None
    if not 0.0 <= value <= 1.0:
        raise UsageError(
            f"--bn-momentum must be in [0, 1], not {text}",
            hint="PyTorch's convention: the weight of the new batch; 'cumulative' for a plain average",
        )
    return value


def _parse_keep(text: str | None) -> list[str] | str | None:
    if text is None:
        return None
    if text.strip().lower() in ("all", "none"):
        return text.strip().lower()
    names = _split_list(text)
    if not names:
        raise UsageError("--keep takes column names, 'all' or 'none'")
    return names


class _RowProgress:
    """'reading data.csv: 1,234,567 rows' on a terminal while data are read or predicted."""

    def __init__(self, env: Env, what: str) -> None:
        self._console = env.console()
        self._what = what
        self._status: Any = None

    def update(self, stage: str, rows: int) -> None:
        text = f"{stage} {self._what}: {rows:,} rows"
        if self._status is None:
            self._status = self._console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def done(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _feedback(env: Env, inputs: list[str] | None) -> Any:
    """Notes and warnings on stderr; row progress only when stderr is a terminal."""
    from normcli.learn.dataset import Feedback

    feedback = Feedback(note=env.note, warn=env.warn)
    if env.stderr_is_terminal and not env.quiet:
        progress = _RowProgress(env, ", ".join(inputs or ["<stdin>"]))
        feedback.progress, feedback.progress_done = progress.update, progress.done
    return feedback


@app.command()
def train(
    inputs: Inputs = None,
    target: Annotated[str, typer.Option("--target", "-t", help="Column to predict.")] = ...,  # type: ignore[assignment]
    stats: Annotated[str | None, typer.Option("--stats", "-s", help="Normalize numeric features with this stats file (default: fit standard stats on the training split).")] = None,
    features: Annotated[list[str] | None, typer.Option("--features", help="Feature columns (comma-separated; default: all but the target, id-like and unusable columns).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", "-x", help="Columns that are not features.")] = None,
    categorical: Annotated[list[str] | None, typer.Option("--categorical", help="One-hot encode these columns (default: text, boolean and integer columns with at most 10 values).")] = None,
    numeric: Annotated[list[str] | None, typer.Option("--numeric", help="Treat these integer columns as numbers, not categories.")] = None,
    max_categories: Annotated[int, typer.Option("--max-categories", help="One-hot columns per categorical feature at most; rarer categories share an <other> column.")] = 50,
    task: Annotated[str, typer.Option("--task", help="auto, classification or regression.")] = "auto",
    hidden: Annotated[str, typer.Option("--hidden", help="Hidden layer sizes.")] = "64,64",
    activation: Annotated[str, typer.Option("--activation", help="relu, tanh, gelu or leaky_relu.")] = "relu",
    bn_placement: Annotated[str, typer.Option("--bn-placement", help="Batch norm 'after' each activation or 'before' it (with --compare: one or both, e.g. before,after).")] = "after",
    bn_momentum: Annotated[str, typer.Option("--bn-momentum", help="Weight of each batch in the running statistics (PyTorch convention), or 'cumulative' for their plain average.")] = "0.1",
    no_batchnorm: Annotated[bool, typer.Option("--no-batchnorm", help="No batch normalization.")] = False,
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout probability after each hidden block.")] = 0.0,
    epochs: Annotated[int, typer.Option("--epochs", "-e", help="Epochs to train at most.")] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Mini-batch size.")] = 32,
    lr: Annotated[str, typer.Option("--lr", help="Learning rate (with --compare, a comma-separated list).")] = "0.003",
    optimizer: Annotated[str, typer.Option("--optimizer", help="adam, or sgd (with --momentum).")] = "adam",
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    nesterov: Annotated[bool, typer.Option("--nesterov", help="Nesterov momentum.")] = False,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="L2 weight decay.")] = 0.0,
    schedule: Annotated[str, typer.Option("--schedule", help="Learning-rate schedule: none, step or cosine.")] = "none",
    val_split: Annotated[float, typer.Option("--val-split", help="Fraction held out for validation (stratified for classes).")] = 0.2,
    early_stopping: Annotated[int, typer.Option("--early-stopping", help="Stop after this many epochs without a better val loss and keep the best epoch's weights (0: off; off without validation rows).")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, initialization and shuffling.")] = 0,
    float64: Annotated[bool, typer.Option("--float64", help="Compute in float64 (default float32).")] = False,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Model file (.npz; default model.npz). Not with --compare.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the metrics document on stdout.")] = False,
    metrics_out: Annotated[str | None, typer.Option("--metrics-out", help="Write the metrics document to this file.")] = None,
    plot: Annotated[str | None, typer.Option("--plot", help="Write learning curves to this PNG (needs normcli[plot]).")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Compare raw inputs, normalized inputs, and normalized + batch norm.")] = False,
    target_loss: Annotated[float | None, typer.Option("--target-loss", help="With --compare: the loss for 'epochs to target' (default: the median over runs of their best val loss).")] = None,
    null_values: NullValues = None,
    format: Format = None,
    separator: Separator = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train a numpy MLP with batch normalization on normalized features; save it as .npz.

    Numbers are normalized with --stats, or with standard stats fitted on the training split
    only; text, boolean and few-valued integer columns are one-hot encoded with the training
    split's categories; id-like columns are left out. With --compare, trains the same network on
    raw inputs, normalized inputs, and normalized inputs with batch norm (at each --lr) and
    prints what normalization changed.

    Example:

    \b
        normcli train train.csv --target species --epochs 30 -o model.npz
        normcli train train.csv --target price --stats stats.json --json > metrics.json
        normcli train train.csv --target species --compare --lr 0.01,0.1,1.0 --plot curves.png
    """

    def body(env: Env) -> None:
        from normcli.data.inputs import named_files
        from normcli.data.outputs import check_output_target
        from normcli.learn.dataset import DataOptions, Reading
        from normcli.nn import NetworkConfig, TrainConfig

        if plot is not None:
            from normcli.plots import require_matplotlib

            require_matplotlib()
        if compare and output is not None:
            raise UsageError("--compare writes no model, so -o/--output has no use there", hint="drop -o, or drop --compare")
        if output == "-":
            raise UsageError(
                "the model cannot go to stdout", hint="name a file with -o model.npz; --json prints the metrics"
            )
        read_files = [*named_files(inputs or []), *([Path(stats)] if stats else [])]
        for extra in (metrics_out, plot):  # checked now, not after training
            if extra is not None:
                check_output_target(extra, read_files)
        rates = _parse_floats(lr, "--lr")
        if len(rates) > 1 and not compare:
            raise UsageError("several --lr values need --compare")
        placements = _split_list(bn_placement) or []
        if len(placements) != 1 and not compare:
            raise UsageError("several --bn-placement values need --compare", hint="e.g. --compare --bn-placement before,after")
        nulls = _split_list(null_values)
        reading = Reading(format=format, separator=separator, null_values=tuple(nulls) if nulls is not None else None)
        data = DataOptions(
            target=target,
            features=tuple(_split_names(features)) if features else None,
            exclude=tuple(_split_names(exclude) or ()),
            categorical=tuple(_split_names(categorical) or ()),
            numeric=tuple(_split_names(numeric) or ()),
            max_categories=max_categories,
            task=task,
            val_split=val_split,
            seed=seed,
            stats_path=stats,
        )
        network = TrainConfig(
            network=NetworkConfig(
                hidden=_parse_ints(hidden, "--hidden"),
                activation=activation,
                bn_placement="none" if no_batchnorm else (placements[0] if not compare else "after"),
                bn_momentum=_parse_bn_momentum(bn_momentum),
                dropout=dropout,
                dtype="float64" if float64 else "float32",
            ),
            epochs=epochs,
            batch_size=batch_size,
            lr=rates[0],
            optimizer=optimizer,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            schedule=schedule,
            patience=early_stopping or None,
            seed=seed,
        )
        feedback = _feedback(env, inputs)
        full_numbers = not _isatty(sys.stdout)
        if compare:
            document, table = _run_compare(env, inputs, data, network, rates, placements, reading, feedback, full_numbers)
        else:
            document, table = _run_train(env, inputs, data, network, output or "model.npz", reading, feedback, full_numbers)
        document_text = json.dumps(document, indent=2, allow_nan=False) + "\n"
        if metrics_out is not None:
            from normcli.data.outputs import write_text_output

            write_text_output(document_text, metrics_out)
        if json_output:
            env.write_text(document_text)
        else:
            env.write_text(table)

    def _run_train(env, inputs, data, network, model_path, reading, feedback, full_numbers):  # noqa: ANN001, ANN202
        from normcli.learn.train import train as run_train
        from normcli.report import epoch_line, train_table

        progress = env.console() if env.stderr_is_terminal and not env.quiet else None

        def on_epoch(row: dict) -> None:
            if progress is not None:
                progress.print(epoch_line(row, network.epochs), highlight=True)

        trained = run_train(
            inputs or [], data, network, model_path=model_path, reading=reading, feedback=feedback,
            on_epoch=on_epoch, stdin=env.stdin, stdin_is_terminal=env.stdin_is_terminal,
        )
        if plot is not None:
            from normcli.plots import plot_history

            plot_history(trained.result.history, plot, f"{trained.prepared.target}")
        return trained.metrics, train_table(trained.metrics, full_numbers=full_numbers)

    def _run_compare(env, inputs, data, network, rates, placements, reading, feedback, full_numbers):  # noqa: ANN001, ANN202
        from normcli.learn.compare import compare as run_compare
        from normcli.report import compare_table

        if no_batchnorm:
            raise UsageError("--compare trains with and without batch norm itself", hint="drop --no-batchnorm")

        def on_run(row) -> None:  # noqa: ANN001
            if env.stderr_is_terminal and not env.quiet:
                state = f"diverged ({row.diverged_because})" if row.diverged else f"val loss {row.final_val_loss:.4g}"
                env.note(f"lr {row.lr:g}, {row.setting}: {row.epochs_run} epochs, {state}")

        report = run_compare(
            inputs or [], data, network, learning_rates=rates, placements=placements, target_loss=target_loss,
            reading=reading, feedback=feedback, on_run=on_run, stdin=env.stdin, stdin_is_terminal=env.stdin_is_terminal,
        )
        if plot is not None:
            from normcli.plots import plot_comparison

            plot_comparison(report.rows, plot, target_loss=report.target_loss)
        return report.document(), compare_table(report, full_numbers=full_numbers)

    _run(body, quiet)


@app.command()
def predict(
    inputs: Inputs = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model file written by normcli train.")] = ...,  # type: ignore[assignment]
    output: Annotated[str, typer.Option("--output", "-o", help="Predictions file ('-' for stdout).")] = "-",
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column with true values: also print metrics.")] = None,
    keep: Annotated[str | None, typer.Option("--keep", help="Input columns to write beside the predictions: names, 'all' or 'none' (default: id-like columns, else a 1-based row number).")] = None,
    missing: Annotated[str, typer.Option("--missing", help="Missing feature values: 'impute' (training mean; all-zero categories) or 'error'.")] = "impute",
    unknown: Annotated[str, typer.Option("--unknown", help="Categories not seen in training: 'zero' (all-zero one-hot) or 'error'.")] = "zero",
    output_format: Annotated[str | None, typer.Option("--output-format", help="csv, tsv, parquet, ndjson.")] = None,
    null_values: NullValues = None,
    format: Format = None,
    separator: Separator = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Predict with a trained model on raw data (its normalization and encoding are applied).

    Writes the kept columns (default: id-like columns, else a row number), the prediction, and
    per-class probabilities. Missing feature values are imputed and counted (--missing error
    refuses them); unseen categories are counted (--unknown error refuses them).

    Example:

    \b
        normcli predict new.csv --model model.npz -o predictions.csv
        normcli predict new.csv --model model.npz --keep all --missing error > scored.csv
        normcli predict labelled.csv --model model.npz --target species > /dev/null
    """

    def body(env: Env) -> None:
        from normcli.learn.dataset import Reading
        from normcli.learn.predict import predict as run_predict

        nulls = _split_list(null_values)
        report = run_predict(
            inputs or [], model=model, output=output, target=target, output_format_name=output_format,
            reading=Reading(format=format, separator=separator, null_values=tuple(nulls) if nulls is not None else None),
            keep=_parse_keep(keep), missing=missing, unknown=unknown, feedback=_feedback(env, inputs),
            stdin=env.stdin, stdout=env.stdout, stdin_is_terminal=env.stdin_is_terminal,
        )
        if report.metrics is not None:
            env.note("metrics on " + ", ".join(inputs or ["<stdin>"]) + ": " + ", ".join(f"{k} {v:.4g}" for k, v in report.metrics.items()))
        if output != "-":
            env.note(f"wrote {report.rows} predictions to {output}")

    _run(body, quiet)


def main() -> NoReturn:
    """Console-script entry point."""
    try:
        with _sigterm_as_interrupt():
            app()
    except SystemExit as exc:
        if exc.code in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
            # Polars' worker threads may still print a panic while they wind down: not our output.
            sys.stderr.flush()
            _silence(sys.stderr)
        raise
    sys.exit(0)
