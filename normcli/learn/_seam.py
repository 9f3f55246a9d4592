"""The one module of :mod:`normcli.learn` that imports normcli's statistics and I/O code.

Everything the learning code needs from reading, writing and fitting passes through these
names, so a reorganisation of ``normcli.io`` / ``normcli.stats`` / ``normcli.statsfile`` only
re-points the imports below.
"""

from normcli.io import (
    DEFAULT_NULL_VALUES,
    Inputs,
    ReadOptions,
    atomic_path,
    check_output_target,
    open_inputs,
    output_format,
    polars_errors,
    sink,
)
from normcli.stats import FitOptions, Stats, fit_frame
from normcli.statsfile import load_stats, stats_from_dict, stats_to_dict

__all__ = [
    "DEFAULT_NULL_VALUES",
    "FitOptions",
    "Inputs",
    "ReadOptions",
    "Stats",
    "atomic_path",
    "check_output_target",
    "fit_frame",
    "load_stats",
    "open_inputs",
    "output_format",
    "polars_errors",
    "sink",
    "stats_from_dict",
    "stats_to_dict",
]
