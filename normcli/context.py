"""The environment a command runs in: its streams, whether they are terminals, and --quiet.

The CLI builds one :class:`Env` per command and hands it to whatever talks to the user, so
nothing else asks ``sys.stdout.isatty()`` on its own and tests can swap the streams.
"""

from __future__ import annotations

import sys
import time
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

    def progress(self, what: str, inputs: list[str] | None = None) -> Progress:
        """A progress line on stderr while work runs (a no-op unless stderr is a terminal):
        ``what`` (e.g. 'fitting data.csv'), rows done as the work reports them, bytes of the
        ``inputs`` read so far (of their total size, for files), and the time elapsed."""
        return Progress(self, what, inputs or [], enabled=self.stderr_is_terminal and not self.quiet)

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


class Progress:
    """One line on stderr, refreshed several times a second: ``fitting data.csv · 1,234,567 rows ·
    0:04``, or where rows are not counted (transform's files are written by Polars in one query)
    ``transforming data.csv · 412 MB of 780 MB (53%) · 0:04``. Use as a context manager;
    :meth:`rows` takes the rows done (from the core's progress callbacks, any thread). Bytes come
    from the kernel's count of bytes this process has read (Linux ``/proc/self/io``), so they need
    no hook in Polars' readers; elsewhere that part is left out. Disabled (not a terminal,
    ``--quiet``), it does nothing.
    """

    def __init__(self, env: Env, what: str, inputs: list[str], enabled: bool = True) -> None:
        self.env = env
        self.what = what
        self.enabled = enabled
        self.stage = ""
        self._rows: int | None = None
        self._total = _total_size(inputs)
        self._read_at_start = _bytes_read()
        self._started = time.monotonic()
        self._status: Any = None

    def rows(self, done: int, stage: str | None = None) -> None:
        """Rows done so far (``stage`` replaces the words before them, e.g. 'predicting')."""
        self._rows = done
        if stage is not None:
            self.stage = stage

    def text(self, width: int | None = None) -> str:
        """The line as it stands now; within ``width`` columns, the name is shortened at its start."""
        parts = [f"{self.stage} {self.what}".strip()]
        read = _bytes_read()
        if self._rows is not None:  # rows, when the work counts them; else the bytes read
            parts.append(f"{self._rows:,} rows")
        elif read is not None and self._read_at_start is not None:
            done = read - self._read_at_start
            if self._total:
                parts.append(f"{_size(min(done, self._total))} of {_size(self._total)} ({min(done, self._total) / self._total:.0%})")
            elif done:
                parts.append(f"{_size(done)} read")
        elapsed = int(time.monotonic() - self._started)
        parts.append(f"{elapsed // 60}:{elapsed % 60:02d}")
        line = " · ".join(parts)
        if width is not None and len(line) > width:  # shorten the inputs' names, keep the numbers
            keep = max(len(self.what) - (len(line) - width) - 1, 0)
            parts[0] = f"{self.stage} …{self.what[len(self.what) - keep :]}".strip()
            line = " · ".join(parts)
        return line

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        yield Text(self.text(options.max_width), no_wrap=True, overflow="ellipsis")

    def start(self) -> None:
        """Show the line (once; the clock starts then)."""
        if self.enabled and self._status is None:
            self._started = time.monotonic()
            self._status = self.env.console().status(self, refresh_per_second=4)
            self._status.start()

    def stop(self) -> None:
        """Take the line away."""
        if self._status is not None:
            self._status.stop()
            self._status = None

    def report(self, stage: str, done: int) -> None:
        """The learning code's ``Feedback.progress`` (stage, rows): shows the line on first use."""
        self.start()
        self.rows(done, stage)

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bytes_read() -> int | None:
    """Bytes this process has read from files and pipes so far (Linux), else None."""
    try:
        with open("/proc/self/io", "rb") as handle:
            for line in handle:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _total_size(inputs: list[str]) -> int | None:
    """The total size of the input files (globs expanded); None if one is a stream or missing."""
    import glob
    import os
    import stat

    total = 0
    for pattern in inputs or ["-"]:
        names = sorted(glob.glob(pattern)) if glob.has_magic(pattern) and not os.path.exists(pattern) else [pattern]
        for name in names:
            try:
                info = os.stat(name)
            except OSError:
                return None
            if name == "-" or not stat.S_ISREG(info.st_mode):
                return None
            total += info.st_size
    return total or None


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return f"{count} B"
