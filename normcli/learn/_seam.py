"""The one module of :mod:`normcli.learn` that imports normcli's data and scaling code.

Everything the learning code needs from reading, writing and fitting passes through these
names, so a reorganisation of ``normcli.data`` / ``normcli.scaling`` only re-points the imports
below.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING, Any

from normcli.data.formats import DEFAULT_NULL_VALUES, ReadOptions
from normcli.data.outputs import atomic_path, check_output_columns, check_output_target, output_format, stdout_stream, writing
from normcli.data.inputs import check_distinct_inputs
from normcli.data.table import Inputs, open_inputs
from normcli.scaling.fit import fit_frame
from normcli.scaling.model import FitOptions, Stats
from normcli.scaling.statsfile import load_stats, stats_from_dict, stats_to_dict

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DEFAULT_NULL_VALUES",
    "FitOptions",
    "Inputs",
    "ReadOptions",
    "Stats",
    "atomic_path",
    "check_distinct_inputs",
    "check_output_columns",
    "check_output_target",
    "fit_frame",
    "is_text_input",
    "load_stats",
    "open_inputs",
    "output_format",
    "polars_errors",
    "sink",
    "stats_from_dict",
    "stats_to_dict",
    "stdout_stream",
    "writing",
]


def polars_errors(inputs: Inputs) -> AbstractContextManager[None]:
    """Polars read errors of ``inputs`` as one-line DataErrors naming file and line."""
    return inputs.errors()


def is_text_input(inputs: Inputs) -> bool:
    """Whether some input is a text format (CSV/TSV/NDJSON), whose column types are inferred."""
    return any(source.format.text for source in inputs.sources)


def sink(frame: pl.LazyFrame, target: Any | IO[bytes], fmt: Any, compression: str | None = None) -> None:
    """Stream ``frame`` into ``target`` in the output format ``fmt`` (from :func:`output_format`)."""
    fmt.sink(frame, target, compression)
