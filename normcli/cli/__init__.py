"""The ``normcli`` command line: parses options, calls the library, prints.

Each command is a thin wrapper over one function of the library (``normcli.scaling.fit.fit``,
``normcli.scaling.apply.transform``, ``normcli.learn.train``, ...). Errors become exit codes in one
place, :func:`normcli.cli.app.report_error`. Heavy modules (polars, numpy, pyarrow, rich) are
imported inside commands so that ``normcli --help`` stays fast.
"""

from normcli.cli import scaling  # noqa: F401  (registers fit, transform, inspect, merge)
from normcli.cli import production  # noqa: F401,I001  (then check, export)
from normcli.cli import learn  # noqa: F401,I001  (then train, predict: the order of --help)
from normcli.cli.app import app, main

__all__ = ["app", "main"]
