"""``normcli predict``: a trained model applied to raw data, with its stored preparation.

The model file holds the feature encoding learned at training (normalization of numbers,
categories of categorical columns); it is applied to the new rows, then the network in eval
mode (batch-norm running statistics).

Output columns: the kept input columns (``keep``: default the id-like columns — those the
model left out as ids and any whose name says id — else ``row``, the 1-based data-row number),
then ``predicted_<target>`` and, for classification, ``prob_<label>`` per class.

Missing feature values are imputed (numbers with the training mean, categories as all-zero)
and the rows counted in a note, or refused with ``missing="error"``. Categories not seen in
training encode as all-zero and are counted, or refused with ``unknown="error"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from normcli.errors import DataError, UsageError
from normcli.learn._seam import (
    atomic_path,
    check_output_columns,
    check_output_target,
    is_text_input,
    open_inputs,
    output_format,
    sink,
    stats_from_dict,
    stdout_stream,
    writing,
)
from normcli.learn.columns import ID_NAME
from normcli.learn.dataset import Feedback, Reading, read_frame
from normcli.learn.features import FeatureEncoder, NumericFeature

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = ["MISSING_POLICIES", "UNKNOWN_POLICIES", "PredictReport", "load_encoder", "predict"]

MISSING_POLICIES = ("impute", "error")
UNKNOWN_POLICIES = ("zero", "error")
PREDICT_CHUNK_ROWS = 65_536


@dataclass
class PredictReport:
    """What ``predict`` wrote, what it had to fill in, and metrics when the data held the target."""

    rows: int
    task: str
    metrics: dict[str, float] | None
    kept: list[str] = field(default_factory=list)
    imputed_rows: int = 0
    unknown: dict[str, tuple[int, list[Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_encoder(meta: dict[str, Any], model: str) -> FeatureEncoder:
    """The feature encoding stored in a model's metadata (older models: numbers only)."""
    if meta.get("features") is not None:
        return FeatureEncoder.from_dict(meta["features"], model)
    try:
        stats = stats_from_dict(meta["input_stats"], f"{model} (input_stats)")
        columns = [stats.column(name) for name in meta["feature_columns"]]
    except (KeyError, TypeError) as exc:
        raise DataError(f"{model}: not a normcli model (metadata lacks {exc})", hint="train one with normcli train") from None
    return FeatureEncoder(tuple(NumericFeature(c.name, c.center, c.scale, c.mean) for c in columns))


def check_metadata(network: Any, meta: dict[str, Any], model: str) -> tuple[str, str, list[Any] | None, tuple[float, float]]:
    """(task, target, class labels, (center, scale) of the target) from a model's metadata,
    checked against its network: a tampered ``task`` (``clustering``, or ``regression`` on a
    classification network) or labels that do not match the outputs are refused, never used."""
    import math

    def bad(why: str) -> DataError:
        return DataError(f"{model}: inconsistent model metadata: {why}", hint="train the model again")

    task, target, labels = meta.get("task"), meta.get("target"), meta.get("class_labels")
    if task not in ("classification", "regression"):
        raise bad(f"task {task!r} is neither classification nor regression")
    if task != network.config.task:
        raise bad(f"it says {task} but the network was trained for {network.config.task}")
    if not isinstance(target, str) or not target:
        raise bad(f"target {target!r} is not a column name")
    outputs = network.config.output_dim
    scaling = (0.0, 1.0)
    if task == "classification":
        if not isinstance(labels, list) or len(labels) != outputs or len(labels) < 2:
            raise bad(f"{len(labels) if isinstance(labels, list) else 'no'} class labels for a network with {outputs} outputs")
        if any(isinstance(label, (list, dict)) for label in labels) or len({json.dumps(label) for label in labels}) != len(labels):
            raise bad("the class labels are not distinct values")
    else:
        if outputs != 1:
            raise bad(f"a regression network has one output, this one has {outputs}")
        given = meta.get("target_scaling")
        if given is not None:
            try:
                scaling = (float(given["center"]), float(given["scale"]))
            except (KeyError, TypeError, ValueError):
                raise bad("target_scaling needs a center and a scale") from None
            if not (math.isfinite(scaling[0]) and math.isfinite(scaling[1]) and scaling[1] > 0):
                raise bad(f"target_scaling {scaling} is not a finite center and a positive scale")
    return task, target, labels, scaling


def _null_values(meta: dict[str, Any], model: str) -> tuple[str, ...] | None:
    if meta.get("null_values") is not None:
        tokens = meta["null_values"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{model}: inconsistent model metadata: null_values is not a list of texts", hint="train the model again")
        return tuple(tokens)
    if meta.get("input_stats") is not None:
        return stats_from_dict(meta["input_stats"], f"{model} (input_stats)").null_values
    return None


def _kept_columns(keep: Sequence[str] | str | None, schema: pl.Schema, meta: dict[str, Any], features: list[str]) -> list[str]:
    names = schema.names()
    if keep is None:
        ids = set(meta.get("id_columns") or ())
        return [n for n in names if (n in ids or ID_NAME.search(n)) and n not in features]
    if keep == "all":
        return names
    if keep == "none":
        return []
    keep = list(keep)
    absent = [n for n in keep if n not in schema]
    if absent:
        available = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
        raise UsageError(f"--keep names no column '{absent[0]}'", hint=f"columns are: {available}")
    return list(dict.fromkeys(keep))


def _data_rows(mask: np.ndarray, limit: int = 3) -> str:
    import numpy as np

    rows = (np.flatnonzero(mask)[:limit] + 1).tolist()
    return ", ".join(map(str, rows)) + (", …" if int(mask.sum()) > limit else "")


def predict(
    paths: Sequence[str],
    *,
    model: str,
    output: str = "-",
    target: str | None = None,
    output_format_name: str | None = None,
    reading: Reading = Reading(),
    keep: Sequence[str] | str | None = None,
    missing: str = "impute",
    unknown: str = "zero",
    feedback: Feedback | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> PredictReport:
    """Apply a trained model to raw data (see the module docstring).

    ``keep``: None (id-like columns, else a row number), ``"all"``, ``"none"`` or column
    names. With ``target`` present in the data, returns accuracy/log-loss (classification) or
    RMSE/R² (regression) over the rows whose target is not missing. Missing-value tokens default
    to those the model's normalization was fitted with.
    """
    import numpy as np
    import polars as pl

    from normcli.learn.modelfile import load_model

    if missing not in MISSING_POLICIES:
        raise UsageError(f"--missing takes {' or '.join(MISSING_POLICIES)}, not '{missing}'")
    if unknown not in UNKNOWN_POLICIES:
        raise UsageError(f"--unknown takes {' or '.join(UNKNOWN_POLICIES)}, not '{unknown}'")
    feedback = feedback or Feedback()
    network, meta = load_model(model)
    encoder = load_encoder(meta, model)
    task, trained_target, labels, scaling = check_metadata(network, meta, model)
    if network.config.input_dim != encoder.width:
        raise DataError(f"{model}: the network takes {network.config.input_dim} inputs, the encoding gives {encoder.width}")
    features = encoder.columns
    read = reading.options(_null_values(meta, model))
    out_format, compression = output_format(output, output_format_name)
    name = f"predicted_{trained_target}"
    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        target_path = None if output == "-" else check_output_target(output, [*inputs.paths, model])
        schema = inputs.schema()
        absent = [n for n in features if n not in schema]
        if absent:
            raise DataError(
                f"{inputs.describe()}: feature column{'s' if len(absent) > 1 else ''} "
                f"{', '.join(repr(m) for m in absent)} of the model not found",
                hint="predict on data with the columns the model was trained on",
            )
        numeric = [f.name for f in encoder.numeric]
        text_input = is_text_input(inputs)
        # a text column of a CSV may hold no value at all (then it reads as String): it is
        # read as Float64, and a cell that is not a number is reported with its row
        bad = [
            f"{n} ({schema[n]})" for n in numeric
            if not schema[n].is_numeric() and not (text_input and schema[n] == pl.String)
        ]  # fmt: skip
        if bad:
            raise DataError(
                f"{inputs.describe()}: feature columns not numeric: {', '.join(bad)}",
                hint="the model was trained on numbers there",
            )
        if target is not None and target not in schema:
            raise UsageError(f"no target column named '{target}' in the data")
        if target is not None and task == "regression" and not (schema[target].is_numeric() or schema[target] == pl.Null):
            raise UsageError(
                f"--target '{target}' is {schema[target]}, but the model predicts numbers (a regression of '{trained_target}')",
                hint="name the column of true values",
            )
        if target is not None and target != trained_target:
            feedback.warn(f"--target '{target}' is not the column the model was trained to predict ('{trained_target}')")
        kept = _kept_columns(keep, schema, meta, features)
        check_output_columns({n: schema[n] for n in kept}, out_format, hint="or leave the column out of --keep")
        outputs = [name] + ([f"prob_{label}" for label in labels] if task == "classification" and labels else [])
        clash = [n for n in kept if n in outputs]
        if clash:
            raise UsageError(
                f"kept column '{clash[0]}' has the name of an output column",
                hint="leave it out of --keep, or rename it",
            )
        overrides = {n: pl.Float64 for n in numeric} if text_input else {}
        columns = list(dict.fromkeys([*features, *kept, *([target] if target else [])]))
        passed_through = [n for n in kept if n not in features and n != target]  # written as they are
        frame = read_frame(inputs, columns, overrides, feedback, raw=passed_through)
        where = inputs.describe()
    encoded = encoder.encode(frame)
    notes: list[str] = []
    if encoded.imputed_values:
        if missing == "error":
            raise DataError(
                f"{where}: {int(encoded.imputed_rows.sum())} rows have missing feature values "
                f"(data rows {_data_rows(encoded.imputed_rows)})",
                hint="fill them, or leave out --missing error to impute them with the training mean",
            )
        notes.append(
            f"{int(encoded.imputed_rows.sum())} of {frame.height} rows had missing feature values, imputed "
            f"({encoded.imputed_values} values: numbers with the training mean, categories as all-zero)"
        )
    if encoded.unknown:
        shown = "; ".join(
            f"'{n}': {count} rows ({', '.join(map(repr, examples[:3]))}{', …' if len(examples) > 3 else ''})"
            for n, (count, examples) in encoded.unknown.items()
        )
        if unknown == "error":
            raise DataError(
                f"{where}: categories not seen in training: {shown}",
                hint="leave out --unknown error to encode them as all-zero",
            )
        notes.append(f"categories not seen in training, encoded as all-zero: {shown}")
    for note in notes:
        feedback.note(note)

    imputed_rows, unknown_found = int(encoded.imputed_rows.sum()), encoded.unknown
    X = encoded.X.astype(network.config.dtype)
    del encoded
    outputs_list = []
    try:
        for start in range(0, max(len(X), 1), PREDICT_CHUNK_ROWS):
            chunk = X[start : start + PREDICT_CHUNK_ROWS]
            if len(chunk):
                outputs_list.append(network.output(chunk))
            if feedback.progress is not None:
                feedback.progress("predicting", start + len(chunk))
    finally:
        feedback.progress_done()
    raw = np.concatenate(outputs_list) if outputs_list else np.zeros((0, network.config.output_dim))

    out = frame.select(kept) if kept else pl.DataFrame({"row": np.arange(1, frame.height + 1)})
    metrics = None
    if task == "classification":
        from normcli.nn import SoftmaxCrossEntropy

        proba = SoftmaxCrossEntropy.probabilities(raw).astype(np.float64)
        predicted_index = proba.argmax(axis=1)
        out = out.with_columns(pl.Series(name, [labels[i] for i in predicted_index]))
        out = out.with_columns([pl.Series(f"prob_{label}", proba[:, i]) for i, label in enumerate(labels)])
        if target is not None:
            metrics = _classification_metrics(frame[target], proba, labels)
    else:
        values = raw.astype(np.float64)[:, 0] * scaling[1] + scaling[0]
        out = out.with_columns(pl.Series(name, values))
        if target is not None:
            metrics = _regression_metrics(frame[target], values)
    lazy = out.lazy()
    if target_path is None:
        with writing("the output"):
            sink(lazy, stdout_stream(stdout), out_format, compression)
    else:
        with atomic_path(target_path) as temp:
            sink(lazy, temp, out_format, compression)
    return PredictReport(
        rows=frame.height, task=task, metrics=metrics, kept=kept,
        imputed_rows=imputed_rows, unknown=unknown_found, notes=notes,
    )  # fmt: skip


def _classification_metrics(truth_column: pl.Series, proba: np.ndarray, labels: list[Any]) -> dict[str, float]:
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    truth = truth_column.to_list()
    present = np.array([t is not None for t in truth])
    known = np.array([t in index for t in truth])
    y = np.array([index.get(t, -1) for t in truth])
    p = np.clip(proba[known, y[known]], 1e-15, 1.0)
    rows = int(present.sum())
    return {
        "accuracy": float(np.mean(proba.argmax(axis=1)[present] == y[present])) if rows else float("nan"),
        "log_loss": float(-np.mean(np.log(p))) if known.any() else float("nan"),
        "unknown_labels": int((present & ~known).sum()),
        "rows_without_target": int((~present).sum()),
    }


def _regression_metrics(truth_column: pl.Series, values: np.ndarray) -> dict[str, float]:
    import numpy as np
    import polars as pl

    truth = truth_column.cast(pl.Float64).fill_nan(None).to_numpy()
    present = ~np.isnan(truth)
    truth, values = truth[present], values[present]
    residual = values - truth
    total = truth - truth.mean() if len(truth) else truth
    return {
        "rmse": float(np.sqrt(np.mean(residual**2))) if len(truth) else float("nan"),
        "r2": float(1 - np.sum(residual**2) / np.sum(total**2)) if np.sum(total**2) > 0 else float("nan"),
        "rows_without_target": int((~present).sum()),
    }
