"""The ``normcli`` entry point (console script and ``python -m normcli``).

``normcli --help`` is printed from ``help.txt`` without importing Typer: building the Typer app
costs about 50 ms, most of the 120 ms budget for a bare help. tests/test_cli.py checks that the
file matches what Typer renders (regenerate it as that test says).

Ctrl-C while the command line is still being imported ends the process like Ctrl-C later on
(``normcli: interrupted``, death by SIGINT), not with a KeyboardInterrupt traceback.
"""

import os
import sys
from pathlib import Path

from normcli.errors import ExitStatus
from normcli.process import exit_process, guard_stderr, write_stdout

ROOT_HELP = Path(__file__).with_name("help.txt")
COMPLETE_VAR = "_NORMCLI_COMPLETE"
"""Set by the shell completion scripts (``normcli --show-completion``): the request goes to Typer."""


def main() -> None:
    """Print the root help fast, or run the command line."""
    try:
        guard_stderr()
        args = sys.argv[1:]
        if args in (["--help"], ["-h"], []) and COMPLETE_VAR not in os.environ:
            text = ROOT_HELP.read_text(encoding="utf-8")
            if args:
                write_stdout(text)
                exit_process(ExitStatus.OK)
            sys.stderr.write(text)  # no command at all: a usage error, the help on stderr
            exit_process(ExitStatus.USAGE_ERROR)
        from normcli.cli import main as run
    except KeyboardInterrupt:
        print("normcli: interrupted", file=sys.stderr)
        exit_process(ExitStatus.INTERRUPTED)
    run()


if __name__ == "__main__":
    main()
