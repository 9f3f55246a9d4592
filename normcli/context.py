"""The environment a command runs in: its streams, whether they are terminals, and --quiet.

The CLI builds one :class:`Env` per command and hands it to whatever talks to the user, so
nothing else asks ``sys.stdout.isatty()`` on its own and tests can swap the streams.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import IO, Any

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
    stdout_is_terminal: bool = False

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
            stdout_is_terminal=_isatty(sys.stdout),
        )

    def width(self) -> int | None:
        """The terminal's width in columns when stdout is a terminal (tables fit it), else None
        (tables keep their natural width: nothing is cut for a pipe or a file)."""
        if not self.stdout_is_terminal:
            return None
        import shutil

        return shutil.get_terminal_size((80, 24)).columns

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
