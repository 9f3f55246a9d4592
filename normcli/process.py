"""How normcli starts and ends as a process: standard streams, closed pipes and death by signal.

Shell scripts judge a program by how it ends. Three manners live here (standard library only, so
the fast ``--help`` path can use them without importing Typer):

* **Death by signal.** After Ctrl-C (SIGINT) or ``kill`` (SIGTERM) normcli cleans up, says
  ``normcli: interrupted``/``terminated``, then restores the default action and sends itself the
  same signal. The parent sees death by that signal, not an exit status: a bash ``for`` loop stops
  at once (bash stops a loop only when its child died of SIGINT), and the shell still reports the
  status as 130/143.
* **Closed pipes are quiet.** When the reader of stdout went away (``| head``, ``| true``), the
  output is pointed at /dev/null and the exit status is what it would have been: no
  BrokenPipeError, no "Exception ignored" at shutdown.
* **A closed stderr stays closed.** With ``2>&-`` Python sets ``sys.stderr`` to None and
  ``print(file=None)`` writes to *stdout*, so warnings would corrupt data there (``fit -o -``);
  and the next file opened would take descriptor 2, where Polars writes its panics. /dev/null is
  opened on descriptor 2 instead: messages are discarded, as with ``2>/dev/null``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import IO, NoReturn

from normcli.errors import WRITE_ERRNOS, ExitStatus

SIGNAL_OF_STATUS = {ExitStatus.INTERRUPTED: signal.SIGINT, ExitStatus.TERMINATED: signal.SIGTERM}
"""The exit statuses that stand for death by a signal (as shells report it: 128 + the number)."""


def guard_stderr() -> None:
    """If descriptor 2 is closed, open /dev/null on it and make ``sys.stderr`` write there."""
    try:
        os.fstat(2)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 2:
            os.dup2(fd, 2)
            os.close(fd)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


def silence(stream: IO[str] | None) -> None:
    """Point ``stream``'s file descriptor at /dev/null (its pending bytes then go nowhere)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())  # type: ignore[union-attr]
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def flush_quietly(stream: IO[str] | None) -> bool:
    """Flush ``stream``; False (and the stream silenced) if its reader closed the pipe."""
    if stream is None:
        return True
    try:
        stream.flush()
    except BrokenPipeError:
        silence(stream)
        return False
    except (OSError, ValueError):
        pass
    return True


def write_stdout(text: str) -> None:
    """Print ``text`` on stdout; a reader that closed the pipe is not an error, a full disk is
    (``normcli --help > /dev/full``: one error line and exit 1, not a traceback), and so is a
    stdout the shell closed (``>&-``), as for the commands' data."""
    if sys.stdout is None:
        print("normcli: error: cannot write to stdout: it is closed (redirect it, e.g. > out.txt)", file=sys.stderr)
        exit_process(ExitStatus.DATA_ERROR)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence(sys.stdout)
    except OSError as exc:
        silence(sys.stdout)
        what = WRITE_ERRNOS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
        print(f"normcli: error: cannot write stdout: {what}", file=sys.stderr)
        exit_process(ExitStatus.DATA_ERROR)


def exit_process(status: int) -> NoReturn:
    """End the process with ``status``: by the signal it stands for (130, 143), else by exit.

    The output is flushed first (a closed pipe is silenced). After a signal, stderr is pointed at
    /dev/null once the message is out: Polars' worker threads may print an internal panic while
    they wind down, which is not normcli's output.
    """
    flush_quietly(sys.stdout)
    signum = SIGNAL_OF_STATUS.get(status)
    if signum is None:
        flush_quietly(sys.stderr)
        sys.exit(status)
    flush_quietly(sys.stderr)
    silence(sys.stderr)
    die_by_signal(signum)


def die_by_signal(signum: int) -> NoReturn:
    """Restore the default action of ``signum`` and send it to this process (it ends at once)."""
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # not reached: the signal's default action ends the process
