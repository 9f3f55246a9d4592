"""Learning from files: dataset preparation, training, comparison, prediction, the model file.

* :mod:`normcli.learn.columns` — what a column is (id-like, numeric, categorical): pure rules
* :mod:`normcli.learn.features` — the feature encoding (scaling, one-hot) stored in a model
* :mod:`normcli.learn.dataset` — reading, choosing features, encoding the target, splitting
* :mod:`normcli.learn.train` — ``normcli train``
* :mod:`normcli.learn.compare` — ``normcli train --compare``
* :mod:`normcli.learn.predict` — ``normcli predict``
* :mod:`normcli.learn.modelfile` — the model ↔ ``.npz``

The network itself is :mod:`normcli.nn` (pure numpy). Names below are imported lazily, so
``import normcli.learn`` stays cheap and imports nothing else of normcli: the statistics code
may use ``normcli.learn.columns.is_id_like`` without an import cycle. The functions ``train``,
``compare`` and ``predict`` share their modules' names: import them from those modules
(``from normcli.learn.train import train``).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "is_id_like": "normcli.learn.columns",
    "id_like_columns": "normcli.learn.columns",
    "column_kind": "normcli.learn.columns",
    "DataOptions": "normcli.learn.dataset",
    "Feedback": "normcli.learn.dataset",
    "Reading": "normcli.learn.dataset",
    "Prepared": "normcli.learn.dataset",
    "prepare": "normcli.learn.dataset",
    "split_indices": "normcli.learn.dataset",
    "FeatureEncoder": "normcli.learn.features",
    "TrainReport": "normcli.learn.train",
    "CompareReport": "normcli.learn.compare",
    "ComparisonRow": "normcli.learn.compare",
    "PredictReport": "normcli.learn.predict",
    "save_model": "normcli.learn.modelfile",
    "load_model": "normcli.learn.modelfile",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'normcli.learn' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
