"""The one module of :mod:`normcli.learn` that imports normcli's data and scaling code.

Everything the learning code needs from reading, writing and fitting passes through these
names, so a reorganisation of ``normcli.data`` / ``normcli.scaling`` only re-points the imports
below.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING, Any

from normcli.data.dataset import DatasetWriter, PartInfo, is_dataset_target
from normcli.data.diagnostics import polars_errors as read_errors
from normcli.data.formats import DEFAULT_NULL_VALUES, Format, ReadOptions
from normcli.data.inputs import Source, check_distinct_inputs
from normcli.data.outputs import atomic_path, check_output_columns, check_output_target, output_format, stdout_stream, writing
from normcli.data.selection import named, select, shown_names
from normcli.data.storage import concurrently
from normcli.data.table import Inputs, open_inputs, scan_source
from normcli.scaling.engine import Engine, LocalEngine
from normcli.scaling.exact import Moments, sqrt_correctly_rounded
from normcli.scaling.fit import fit_frame
from normcli.scaling.fragments import row_ranges
from normcli.scaling.model import FitOptions, Stats
from normcli.scaling.statsfile import load_stats, stats_from_dict, stats_to_dict

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DEFAULT_NULL_VALUES",
    "DatasetWriter",
    "Engine",
    "FitOptions",
    "Inputs",
    "LocalEngine",
    "Moments",
    "PartInfo",
    "ReadOptions",
    "Source",
    "Stats",
    "atomic_path",
    "check_distinct_inputs",
    "check_output_columns",
    "check_output_target",
    "concurrently",
    "dataset_format",
    "exact_moments",
    "fit_frame",
    "is_text_input",
    "load_stats",
    "named",
    "open_inputs",
    "output_format",
    "is_dataset_target",
    "polars_errors",
    "read_errors",
    "row_ranges",
    "scan_source",
    "select",
    "shown_names",
    "sink",
    "sqrt_correctly_rounded",
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


def sink(frame: pl.LazyFrame, target: Any | IO[bytes], fmt: Any, compression: str | None = None, storage: tuple = ()) -> None:
    """Stream ``frame`` into ``target`` in the output format ``fmt`` (from :func:`output_format`)."""
    fmt.sink(frame, target, compression, storage)


def dataset_format(name: str | None) -> Format:
    """The format of a dataset's parts: ``--output-format``, else Parquet."""
    from normcli.data.dataset import check_dataset_format
    from normcli.data.formats import FORMATS

    return FORMATS[check_dataset_format(name)]


def exact_moments(values: Any) -> Moments:
    """The exact count, mean and m2 of float values (no NaN), mergeable with others exactly: the
    fit's own fragment function over one column."""
    import polars as pl

    from normcli.scaling.fragments import BLOCK_ROWS, ColumnSpec, reblock, summarize

    frame = pl.DataFrame({"v": values}, schema={"v": pl.Float64})
    return summarize(reblock([frame], BLOCK_ROWS), [ColumnSpec("v", "Float64")]).columns["v"].moments
