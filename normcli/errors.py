"""Errors that normcli reports to users, and the exit codes they map to.

Library code raises :class:`DataError` or :class:`UsageError` with a message written for a person
("column 'age' is not numeric in new.csv") and, where there is one, a hint saying how to fix it.
Only ``normcli.cli`` turns them into a one-line ``normcli: error: ...`` on stderr and an exit code.
"""

from __future__ import annotations

import errno
from enum import IntEnum

WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EFBIG: "file too large (a file-size limit, ulimit -f, was reached)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}
"""How a failed write is described, by errno (a full disk, a file-size limit...)."""


class ExitStatus(IntEnum):
    """The process exit codes normcli uses, as documented in docs/errors.md."""

    OK = 0
    DATA_ERROR = 1  # bad input data, files, stats or model
    USAGE_ERROR = 2  # bad options or arguments
    INTERRUPTED = 130  # SIGINT (Ctrl-C), as shells report it
    TERMINATED = 143  # SIGTERM (kill, timeout), as shells report it


class NormcliError(Exception):
    """Base of every error normcli reports to a user; carries an exit code and an optional hint."""

    exit_code: ExitStatus = ExitStatus.DATA_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and hint as a single line (newlines folded), ready for stderr."""
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class DataError(NormcliError):
    """The input data, a stats file or a model file is wrong or unreadable (exit 1)."""

    exit_code = ExitStatus.DATA_ERROR


class UsageError(NormcliError):
    """The command line asks for something impossible or contradictory (exit 2)."""

    exit_code = ExitStatus.USAGE_ERROR
