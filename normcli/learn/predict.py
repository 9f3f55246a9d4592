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
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

from normcli.errors import DataError, UsageError
from normcli.learn._seam import (
    DatasetWriter,
    Engine,
    Inputs,
    LocalEngine,
    Moments,
    PartInfo,
    ReadOptions,
    Source,
    atomic_path,
    check_output_columns,
    check_output_target,
    concurrently,
    dataset_format,
    exact_moments,
    is_dataset_target,
    is_text_input,
    open_inputs,
    output_format,
    read_errors,
    row_ranges,
    scan_source,
    select,
    sink,
    sqrt_correctly_rounded,
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

__all__ = ["MISSING_POLICIES", "UNKNOWN_POLICIES", "PredictReport", "Scorer", "load_encoder", "predict", "predict_part"]

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
    return select(keep, names, "--keep")


def _data_rows(mask: np.ndarray, first_row: int = 1, limit: int = 3) -> str:
    import numpy as np

    rows = (np.flatnonzero(mask)[:limit] + first_row).tolist()
    return ", ".join(map(str, rows)) + (", …" if int(mask.sum()) > limit else "")


@dataclass
class MetricSums:
    """What the metrics are computed from, mergeable across parts and exact (integer counts and
    :class:`Moments` of float values), so a run split into parts prints the same metrics."""

    task: str
    present: int = 0
    correct: int = 0
    unknown_labels: int = 0
    rows_without_target: int = 0
    losses: Moments | None = None  # classification: −log p of the true class, known labels only
    residuals: Moments | None = None  # regression: prediction − truth
    truth: Moments | None = None  # regression: the true values

    def merge(self, other: MetricSums) -> MetricSums:
        def both(a: Moments | None, b: Moments | None) -> Moments | None:
            return b if a is None else (a if b is None else a.combine(b))

        return MetricSums(
            self.task, self.present + other.present, self.correct + other.correct,
            self.unknown_labels + other.unknown_labels, self.rows_without_target + other.rows_without_target,
            both(self.losses, other.losses), both(self.residuals, other.residuals), both(self.truth, other.truth),
        )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """Accuracy and log-loss, or RMSE and R², each rounded once from its exact value."""
        from fractions import Fraction

        nan = float("nan")
        if self.task == "classification":
            losses = self.losses
            return {
                "accuracy": self.correct / self.present if self.present else nan,
                "log_loss": float(losses.mean()) if losses is not None and losses.count else nan,
                "unknown_labels": self.unknown_labels,
                "rows_without_target": self.rows_without_target,
            }
        residuals, truth = self.residuals, self.truth
        if residuals is None or truth is None or not residuals.count:
            return {"rmse": nan, "r2": nan, "rows_without_target": self.rows_without_target}
        squares = residuals.m2() + residuals.count * residuals.mean() ** 2  # Σ r², exactly
        total = truth.m2()
        return {
            "rmse": sqrt_correctly_rounded(squares / residuals.count),
            "r2": float(Fraction(1) - squares / total) if total > 0 else nan,
            "rows_without_target": self.rows_without_target,
        }


@dataclass
class Scored:
    """One frame's predictions and what scoring it found (merged across parts)."""

    rows: int
    imputed_rows: int = 0
    imputed_values: int = 0
    unknown: dict[str, tuple[int, list[Any]]] = field(default_factory=dict)
    sums: MetricSums | None = None

    def merge(self, other: Scored) -> Scored:
        unknown = dict(self.unknown)
        for name, (count, examples) in other.unknown.items():
            had, seen = unknown.get(name, (0, []))
            unknown[name] = (had + count, list(dict.fromkeys([*seen, *examples]))[:4])
        sums = other.sums if self.sums is None else (self.sums if other.sums is None else self.sums.merge(other.sums))
        return Scored(self.rows + other.rows, self.imputed_rows + other.imputed_rows,
                      self.imputed_values + other.imputed_values, unknown, sums)  # fmt: skip


@dataclass(frozen=True)
class Scorer:
    """A trained model ready to score frames of raw rows: the network, the stored encoding and
    the output columns. Plain data, so a Dask worker can score its part of the inputs."""

    network: Any
    encoder: FeatureEncoder
    task: str
    labels: list[Any] | None
    name: str
    kept: list[str]
    target: str | None
    missing: str
    unknown: str
    target_scaling: dict[str, float]

    def score(
        self, frame: pl.DataFrame, where: str, first_row: int = 1, row_start: int = 1, feedback: Feedback | None = None
    ) -> tuple[pl.DataFrame, Scored]:
        """The output rows of ``frame`` (whose first row is data row ``first_row`` of ``where``):
        kept columns (or the row number, from ``row_start``), the prediction, per-class
        probabilities."""
        import numpy as np
        import polars as pl

        encoded = self.encoder.encode(frame)
        if encoded.imputed_values and self.missing == "error":
            raise DataError(
                f"{where}: {int(encoded.imputed_rows.sum())} rows have missing feature values "
                f"(data rows {_data_rows(encoded.imputed_rows, first_row)})",
                hint="fill them, or leave out --missing error to impute them with the training mean",
            )
        if encoded.unknown and self.unknown == "error":
            raise DataError(f"{where}: categories not seen in training: {_show_unknown(encoded.unknown)}",
                            hint="leave out --unknown error to encode them as all-zero")  # fmt: skip
        scored = Scored(frame.height, int(encoded.imputed_rows.sum()), encoded.imputed_values, encoded.unknown)
        X = encoded.X.astype(self.network.config.dtype)
        del encoded
        outputs = []
        try:
            for start in range(0, max(len(X), 1), PREDICT_CHUNK_ROWS):
                chunk = X[start : start + PREDICT_CHUNK_ROWS]
                if len(chunk):
                    outputs.append(self.network.output(chunk))
                if feedback is not None and feedback.progress is not None:
                    feedback.progress("predicting", start + len(chunk))
        finally:
            if feedback is not None:
                feedback.progress_done()
        raw = np.concatenate(outputs) if outputs else np.zeros((0, self.network.config.output_dim))
        out = frame.select(self.kept) if self.kept else pl.DataFrame({"row": np.arange(row_start, row_start + frame.height)})
        if self.task == "classification":
            from normcli.nn import SoftmaxCrossEntropy

            labels = self.labels or []
            proba = SoftmaxCrossEntropy.probabilities(raw).astype(np.float64)
            predicted_index = proba.argmax(axis=1)
            out = out.with_columns(pl.Series(self.name, [labels[i] for i in predicted_index]))
            out = out.with_columns([pl.Series(f"prob_{label}", proba[:, i]) for i, label in enumerate(labels)])
            if self.target is not None:
                scored.sums = _classification_sums(frame[self.target], proba, labels)
        else:
            values = raw.astype(np.float64)[:, 0] * self.target_scaling["scale"] + self.target_scaling["center"]
            out = out.with_columns(pl.Series(self.name, values))
            if self.target is not None:
                scored.sums = _regression_sums(frame[self.target], values)
        return out, scored


def _show_unknown(unknown: dict[str, tuple[int, list[Any]]]) -> str:
    return "; ".join(
        f"'{n}': {count} rows ({', '.join(map(repr, examples[:3]))}{', …' if len(examples) > 3 else ''})"
        for n, (count, examples) in unknown.items()
    )


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
    storage: Sequence[tuple[str, str]] = (),
    engine: Engine | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> PredictReport:
    """Apply a trained model to raw data (see the module docstring).

    ``keep``: None (id-like columns, else a row number), ``"all"``, ``"none"`` or column
    names. With ``target`` present in the data, returns accuracy/log-loss (classification) or
    RMSE/R² (regression) over the rows whose target is not missing. Missing-value tokens default
    to those the model's normalization was fitted with. A folder output (``out/``), or a Dask
    ``engine``, writes a dataset: one part of predictions per input fragment.
    """
    import polars as pl

    from normcli.learn.modelfile import load_model

    if missing not in MISSING_POLICIES:
        raise UsageError(f"--missing takes {' or '.join(MISSING_POLICIES)}, not '{missing}'")
    if unknown not in UNKNOWN_POLICIES:
        raise UsageError(f"--unknown takes {' or '.join(UNKNOWN_POLICIES)}, not '{unknown}'")
    feedback = feedback or Feedback()
    engine = engine or LocalEngine()
    dataset = engine.distributed or is_dataset_target(output)
    if engine.distributed and not is_dataset_target(output):
        raise UsageError(f"on a cluster, -o names a dataset folder, not '{output}'", hint="end it with /, e.g. -o out/")
    if str(model) == "-":
        raise UsageError(
            "--model '-': a model is read from a file, not from stdin ('-')",
            hint="name the .npz file; to pipe one in, use --model /dev/stdin or --model <(...)",
        )
    network, meta = load_model(model)
    encoder = load_encoder(meta, model)
    task, trained_target, labels, scaling = check_metadata(network, meta, model)
    if network.config.input_dim != encoder.width:
        raise DataError(f"{model}: the network takes {network.config.input_dim} inputs, the encoding gives {encoder.width}")
    features = encoder.columns
    read = reading.options(_null_values(meta, model), storage=tuple(storage))
    if not dataset:
        out_format, compression = output_format(output, output_format_name)
    name = f"predicted_{trained_target}"
    with open_inputs(paths, read, stdin=stdin, stdin_is_terminal=stdin_is_terminal) as inputs:
        target_path = None if output == "-" or dataset else check_output_target(output, [*inputs.paths, model])
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
        if not dataset:
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
        scorer = Scorer(
            network, encoder, task, labels, name, kept, target, missing, unknown,
            {"center": scaling[0], "scale": scaling[1]},
        )  # fmt: skip
        passed_through = tuple(n for n in kept if n not in features and n != target)  # written as they are
        if dataset:
            scored = _predict_dataset(inputs, scorer, columns, overrides, output, output_format_name, engine, model, passed_through)
        else:
            frame = read_frame(inputs, columns, overrides, feedback, raw=passed_through)
            where = inputs.describe()
    if not dataset:
        out, scored = scorer.score(frame, where, feedback=feedback)
        lazy = out.lazy()
        if target_path is None:
            with writing("the output"):
                sink(lazy, stdout_stream(stdout), out_format, compression)
        else:
            with atomic_path(target_path) as temp:
                sink(lazy, temp, out_format, compression, read.storage)
    notes: list[str] = []
    if scored.imputed_values:
        notes.append(
            f"{scored.imputed_rows} of {scored.rows} rows had missing feature values, imputed "
            f"({scored.imputed_values} values: numbers with the training mean, categories as all-zero)"
        )
    if scored.unknown:
        notes.append(f"categories not seen in training, encoded as all-zero: {_show_unknown(scored.unknown)}")
    for note in notes:
        feedback.note(note)
    return PredictReport(
        rows=scored.rows, task=task, metrics=scored.sums.metrics() if scored.sums is not None else None, kept=kept,
        imputed_rows=scored.imputed_rows, unknown=scored.unknown, notes=notes,
    )  # fmt: skip


@dataclass(frozen=True)
class PredictPart:
    """One part of a predictions dataset: which rows of which input, how to read them, where to
    write the predictions. Plain data: a Dask worker runs :func:`predict_part` on it."""

    scorer: Scorer
    source: Source
    read: ReadOptions
    types: dict[str, pl.DataType]
    overrides: dict[str, pl.DataType]
    columns: list[str]
    rows: tuple[int, int] | None
    row_start: int
    format: Any
    target: str
    raw: tuple[str, ...] = ()
    """Kept text columns, written as they are (null tokens included)."""


def _fragment_rows(part: PredictPart) -> pl.LazyFrame:
    scan = scan_source(part.source, part.types, part.read, part.overrides, part.raw)
    return scan.slice(*part.rows) if part.rows is not None else scan


def count_part(part: PredictPart) -> int:
    """The rows of one fragment (to number the rows of the parts after it)."""
    import polars as pl

    with read_errors([part.source], part.read):
        return int(_fragment_rows(part).select(pl.len()).collect().item())


def predict_part(part: PredictPart) -> Scored:
    """Score one fragment and write its part (run by the engine, in a Dask worker or here)."""
    with read_errors([part.source], part.read):
        frame = _fragment_rows(part).select(part.columns).collect()
    first_row = (part.rows[0] if part.rows else 0) + 1
    out, scored = part.scorer.score(frame, part.source.display, first_row=first_row, row_start=part.row_start)
    sink(out.lazy(), part.target, part.format, None, part.read.storage)
    return scored


def _predict_dataset(
    inputs: Inputs, scorer: Scorer, columns: list[str], overrides: dict[str, pl.DataType],
    output: str, format_name: str | None, engine: Engine, model: str, raw: tuple[str, ...] = (),
) -> Scored:  # fmt: skip
    """Predictions as a dataset folder: one part per input fragment (see normcli.data.dataset).

    Row numbers (the ``row`` column, when no column is kept) continue across parts as in a local
    run, so the fragments' rows are counted first; messages about missing values and unseen
    categories name the input file and its own data rows.
    """
    from normcli import __version__

    fmt = dataset_format(format_name)
    read = inputs.options
    for source in inputs.sources:
        if source.is_stream:
            raise UsageError(f"{source.display}: a dataset folder is written from files or URLs, not a stream",
                             hint="name the input files, or write one output file")  # fmt: skip
    if output.rstrip("/") in [*inputs.paths, model]:
        raise UsageError(f"{output}: output is one of the inputs")
    with DatasetWriter(output, fmt.extensions[0].lstrip("."), read.storage) as writer:
        parts: list[PredictPart] = []
        infos: list[PartInfo] = []
        schemas = inputs.source_schemas()
        ranges = concurrently(lambda s: row_ranges(s.source, s.options), schemas, [s.source.path or "" for s in schemas])
        for schema, source_ranges in zip(schemas, ranges, strict=True):
            for rows in source_ranges:
                index = len(parts)
                parts.append(PredictPart(scorer, schema.source, schema.options, dict(schema.types), overrides, columns, rows, 1, fmt, writer.part(index), raw))
                infos.append(PartInfo(writer.part_name(index), schema.source.display, input_rows=rows))
        if not scorer.kept:  # the row column numbers rows across all inputs
            counts = engine.run(count_part, parts, name="count")
            starts = [1 + sum(counts[:i]) for i in range(len(parts))]
            parts = [replace(part, row_start=start) for part, start in zip(parts, starts, strict=True)]
        results = engine.run(predict_part, parts, name="part")
        total = Scored(0)
        for info, scored in zip(infos, results, strict=True):
            info.rows = scored.rows
            total = total.merge(scored)
        manifest = {"normcli": __version__, "command": "predict", "model": model, "format": fmt.name, "rows": total.rows}
        writer.commit(infos, manifest)
    return total


def _classification_sums(truth_column: pl.Series, proba: np.ndarray, labels: list[Any]) -> MetricSums:
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    truth = truth_column.to_list()
    present = np.array([t is not None for t in truth], dtype=bool)
    known = np.array([t in index for t in truth], dtype=bool)
    y = np.array([index.get(t, -1) for t in truth], dtype=np.int64)
    p = np.clip(proba[known, y[known]], 1e-15, 1.0)
    return MetricSums(
        "classification",
        present=int(present.sum()),
        correct=int((proba.argmax(axis=1)[present] == y[present]).sum()),
        unknown_labels=int((present & ~known).sum()),
        rows_without_target=int((~present).sum()),
        losses=exact_moments(-np.log(p)),
    )


def _regression_sums(truth_column: pl.Series, values: np.ndarray) -> MetricSums:
    import numpy as np
    import polars as pl

    truth = truth_column.cast(pl.Float64).fill_nan(None).to_numpy()
    present = ~np.isnan(truth)
    truth, values = truth[present], values[present]
    return MetricSums(
        "regression",
        rows_without_target=int((~present).sum()),
        residuals=exact_moments(values - truth),
        truth=exact_moments(truth),
    )
