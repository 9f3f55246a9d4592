"""The Typer application, and the one place where exceptions become exit codes.

:func:`report_error` maps every exception to an exit status and one line on stderr; signals are
handled here too (SIGTERM is answered like Ctrl-C). The commands live in
:mod:`normcli.cli.scaling` and :mod:`normcli.cli.learn`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from typing import IO, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from normcli import __version__
from normcli.context import PROG
from normcli.errors import WRITE_ERRNOS, ExitStatus, NormcliError
from normcli.process import exit_process, guard_stderr, silence, write_stdout


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
    if isinstance(exc, MemoryError):
        print(
            f"{PROG}: error: out of memory (a smaller input or fewer columns may fit; see 'Memory' in docs/errors.md)",
            file=stderr,
        )
        return int(ExitStatus.DATA_ERROR)
    if isinstance(exc, BrokenPipeError) or "Broken pipe" in str(exc):
        silence(sys.stdout)  # the interpreter's final flush must be quiet too
        return int(ExitStatus.OK)
    if isinstance(exc, OSError) and not exc.filename and exc.errno in (errno.ENOSPC, errno.EFBIG):
        # help or --version into a full disk: the stream is stdout (a file would have a name)
        print(f"{PROG}: error: cannot write stdout: {WRITE_ERRNOS[exc.errno]}", file=stderr)
        return int(ExitStatus.DATA_ERROR)
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        name = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {name}{what}", file=stderr)
        return int(ExitStatus.DATA_ERROR)
    first = " ".join(str(exc).split())[:300] or type(exc).__name__
    print(
        f"{PROG}: error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
        file=stderr,
    )
    return int(ExitStatus.DATA_ERROR)


class _Escaped(Exception):
    """Carries an exception past Typer's own handling to :func:`report_error` (see ``invoke``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


_TERMINATED = threading.Event()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM (kill, timeout) like Ctrl-C; the process then dies by SIGTERM, not SIGINT.

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
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, PowerShell)
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        write_stdout(f"{PROG} {__version__}\n")  # a closed pipe is not an error (typer would exit 1)
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


@contextlib.contextmanager
def _only_the_command(args: Sequence[str]) -> Iterator[None]:
    """Register only the command named by ``args[0]`` while the console script runs it.

    Typer builds every command's click parameters from its signature before it parses anything:
    about 20 ms for the eight commands, a tenth of a one-file fit. A command line that starts with
    a command's name needs only that command (click's "lazily loading subcommands" idea); its help,
    errors and completion are the same. Anything else (root options, a misspelt command, the
    shell's completion requests) sees them all.
    """
    from typer.main import get_command_name

    commands = app.registered_commands
    named = [c for c in commands if args and c.callback and args[0] == (c.name or get_command_name(c.callback.__name__))]
    if len(named) != 1 or "_NORMCLI_COMPLETE" in os.environ:
        yield
        return
    app.registered_commands = named
    try:
        yield
    finally:
        app.registered_commands = commands


def main() -> NoReturn:
    """Console-script entry point: run the command, then end as :func:`exit_process` says
    (after Ctrl-C or SIGTERM, by that signal once everything is cleaned up)."""
    guard_stderr()
    try:
        with _sigterm_as_interrupt(), _only_the_command(sys.argv[1:]):
            app()
        status = int(ExitStatus.OK)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt as exc:  # a Ctrl-C outside the commands (between Typer's steps)
        status = report_error(exc, sys.stderr, debug=False)
    exit_process(status)
