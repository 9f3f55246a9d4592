"""normcli: fit, save and apply scaling statistics; train a numpy batch-norm MLP.

The public Python API mirrors the commands. Names are imported lazily, so ``import normcli`` (and
``normcli --help``) stays fast and does not load Polars or numpy until a function is used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "fit": "normcli.scaling.fit",
    "Stats": "normcli.scaling.model",
    "ColumnStats": "normcli.scaling.model",
    "merge_stats": "normcli.scaling.merge",
    "save_stats": "normcli.scaling.statsfile",
    "load_stats": "normcli.scaling.statsfile",
    "transform": "normcli.scaling.apply",
    "apply_stats": "normcli.scaling.apply",
    "check_data": "normcli.scaling.check",
    "export_sql": "normcli.scaling.export",
    "export_onnx": "normcli.scaling.export",
    "DataError": "normcli.errors",
    "UsageError": "normcli.errors",
    "NormcliError": "normcli.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'normcli' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
