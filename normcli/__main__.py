"""The ``normcli`` entry point (console script and ``python -m normcli``).

``normcli --help`` is printed from ``help.txt`` without importing Typer: building the Typer app
costs about 50 ms, most of the 120 ms budget for a bare help. tests/test_cli.py checks that the
file matches what Typer renders (regenerate it as that test says).
"""

import sys
from pathlib import Path

ROOT_HELP = Path(__file__).with_name("help.txt")


def main() -> None:
    """Print the root help fast, or run the command line."""
    args = sys.argv[1:]
    if args in (["--help"], ["-h"], []):
        text = ROOT_HELP.read_text(encoding="utf-8")
        if args:
            sys.stdout.write(text)
            sys.exit(0)
        sys.stderr.write(text)  # no command at all: a usage error, the help on stderr
        sys.exit(2)
    from normcli.cli import main as run

    run()


if __name__ == "__main__":
    main()
