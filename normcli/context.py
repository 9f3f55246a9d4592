"""The environment a command runs in: its streams, whether they are terminals, and --quiet.

The CLI builds one :class:`Env` per command and hands it to whatever talks to the user, so
nothing else asks ``sys.stdout.isatty()`` on its own and tests can swap the streams.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import IO, Any

from normcli.errors import DataError

PROG = "normcli"


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
            stdout=_binary(sys.stdout),
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
        """Data on stdout (a full disk behind it is a clean error; a closed pipe is passed on)."""
        from normcli.data.outputs import writing

        with writing("stdout"):
            self.stdout.write(text.encode())
            self.stdout.flush()


class ClosedStdout(io.RawIOBase):
    """Stands for a stdout the shell closed (``>&-``): writing data to it is a clean error."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        raise DataError("cannot write to stdout: it is closed", hint="redirect it, e.g. > out.csv, or name an output file with -o")


def _binary(stream: Any) -> IO[bytes]:
    """The binary side of a text stream; :class:`ClosedStdout` for one the shell closed."""
    if stream is None:
        return ClosedStdout()  # type: ignore[return-value]
    return stream.buffer if hasattr(stream, "buffer") else stream


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
