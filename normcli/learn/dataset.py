"""Training data from files: columns chosen and encoded, target encoded, rows split.

``prepare`` reads the data with the same readers as ``fit`` and, in this order:

1. drops the rows whose target is missing (with a note giving the count);
2. detects the task (``--task auto``: classification for text, boolean or integer targets with
   at most :data:`MAX_AUTO_CLASSES` values, regression for other numbers) and encodes the
   target (class labels sorted; a regression target standardized with training-split
   statistics);
3. splits train/validation (stratified by class, seeded);
4. chooses the features (see :mod:`normcli.learn.columns`): every column but the target and
   ``exclude``, less id-like columns and columns that are neither numbers nor categories, each
   left out with a note; ``features`` names them explicitly instead (id-like columns included);
5. learns the encoding on the **training split only** (:mod:`normcli.learn.features`): the
   numeric features' standard statistics are fitted on it (or taken from ``--stats``), the
   categories come from it;
6. encodes both splits. Missing numbers are imputed with the training mean and counted.

Notes go to the caller's :class:`Feedback` as soon as they are known (before any training).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

from normcli.errors import DataError, UsageError
from normcli.learn._seam import (
    DEFAULT_NULL_VALUES,
    FitOptions,
    Inputs,
    ReadOptions,
    Stats,
    check_distinct_inputs,
    fit_frame,
    is_text_input,
    load_stats,
    named,
    polars_errors,
    select,
    shown_names,
)
from normcli.learn.columns import MAX_INTEGER_CATEGORIES, column_kind, is_id_like, is_text
from normcli.learn.features import (
    CategoricalFeature,
    Encoded,
    FeatureEncoder,
    NumericFeature,
    learn_categories,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "DataOptions",
    "Feedback",
    "Prepared",
    "Reading",
    "prepare",
    "read_frame",
    "split_indices",
]

TASKS = ("auto", "classification", "regression")
MAX_AUTO_CLASSES = 20
"""An integer target with at most this many distinct values is taken as class labels."""
MAX_CLASSES = 1000
DEFAULT_MAX_CATEGORIES = 50
"""One-hot columns per categorical feature at most (rarer categories share an ``<other>`` column)."""
TRANSFORMED_TOLERANCE = 0.1
"""How close to the statistics of transformed data the data must be to look transformed already."""


def _ignore(*_: Any) -> None:
    return None


@dataclass
class Feedback:
    """Where the learning code reports while it works (the CLI prints; a notebook may ignore).

    ``note`` and ``warn`` take one line each, as soon as it is known; ``progress`` is called
    with a stage ('reading', 'predicting', ...) and the rows done so far (None: no progress
    wanted, so data are read in one go); ``progress_done`` ends a progress display.
    """

    note: Callable[[str], None] = _ignore
    warn: Callable[[str], None] = _ignore
    progress: Callable[[str, int], None] | None = None
    progress_done: Callable[[], None] = _ignore


@dataclass(frozen=True)
class Reading:
    """How to read the input files: format, CSV delimiter and header, missing-value tokens, and
    columns of fixed type (``--text``, ``--dtype``: pattern → type, as ``normcli fit`` takes them).

    ``null_values=None`` means the tokens of the statistics the data go with (a ``--stats``
    file, a model's normalization) or, without those, normcli's defaults.
    """

    format: str | None = None
    separator: str | None = None
    null_values: tuple[str, ...] | None = None
    has_header: bool = True
    text: tuple[str, ...] = ()
    dtypes: tuple[tuple[str, str], ...] = ()

    def options(self, default_null_values: Sequence[str] | None = None, storage: tuple[tuple[str, str], ...] = ()) -> ReadOptions:
        return ReadOptions.of(
            format=self.format, null_values=self.null_values,
            default_null_values=default_null_values if default_null_values is not None else DEFAULT_NULL_VALUES,
            separator=self.separator, has_header=self.has_header, text=self.text, dtypes=self.dtypes, storage=storage,
        )  # fmt: skip


@dataclass(frozen=True)
class DataOptions:
    """Which data to learn from: target, features, task, split, encoding and normalization.

    ``categorical`` / ``numeric`` override the automatic kind of those columns (an integer
    column with few values is categorical unless named in ``numeric``; a numeric column named
    in ``categorical`` is one-hot encoded). ``max_categories`` caps the one-hot columns of each
    categorical feature (None: no cap).
    """

    target: str
    features: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    task: str = "auto"
    val_split: float = 0.2
    seed: int = 0
    stats_path: str | None = None
    max_categories: int | None = DEFAULT_MAX_CATEGORIES

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown task '{self.task}'", hint=f"choose one of: {', '.join(TASKS)}")
        if not 0.0 <= self.val_split < 1.0:
            raise UsageError(f"--val-split must be in [0, 1), not {self.val_split}")
        if self.max_categories is not None and self.max_categories < 2:
            raise UsageError(f"--max-categories must be at least 2, not {self.max_categories}")
        both = sorted(set(self.categorical) & set(self.numeric))
        if both:
            raise UsageError(f"{', '.join(both)}: both --categorical and --numeric")
        twice = sorted({name for name in self.features or () if (self.features or ()).count(name) > 1})
        if twice:
            raise UsageError(f"--features names '{twice[0]}' more than once", hint="name each feature column once")



@dataclass
class Prepared:
    """Training data ready for the network, and what is needed to repeat the preparation."""

    task: str
    target: str
    encoder: FeatureEncoder
    classes: list[Any] | None
    stats: Stats | None
    X_train: np.ndarray
    X_val: np.ndarray | None
    y_train: np.ndarray
    y_val: np.ndarray | None
    y_center: float = 0.0
    y_scale: float = 1.0
    notes: list[str] = field(default_factory=list)
    stats_fitted_on_split: bool = False
    id_columns: list[str] = field(default_factory=list)
    null_values: tuple[str, ...] = DEFAULT_NULL_VALUES
    rows_without_target: int = 0
    frame_train: pl.DataFrame | None = field(default=None, repr=False)
    frame_val: pl.DataFrame | None = field(default=None, repr=False)

    @property
    def features(self) -> list[str]:
        """The input columns used as features."""
        return self.encoder.columns

    def raw(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Train and validation matrices with numbers unscaled (missing ones imputed with the
        training mean) and categories one-hot as usual: the "raw inputs" of ``--compare``."""
        assert self.frame_train is not None
        train = self.encoder.encode(self.frame_train, scaled=False).X
        val = self.encoder.encode(self.frame_val, scaled=False).X if self.frame_val is not None else None
        return train, val


# --------------------------------------------------------------------------- reading


def read_frame(
    inputs: Inputs,
    columns: Sequence[str],
    overrides: dict[str, pl.DataType] | None,
    feedback: Feedback,
    stage: str = "reading",
    raw: Sequence[str] = (),
) -> pl.DataFrame:
    """``columns`` of the inputs in memory; rows read are reported to ``feedback.progress``.
    Text columns named in ``raw`` keep null tokens as written (see :meth:`Inputs.scan`)."""
    import polars as pl

    with polars_errors(inputs):
        lazy = inputs.scan(overrides or None, raw=raw).select(list(columns))
        if feedback.progress is None:
            return lazy.collect()
        batches = []
        rows = 0
        try:
            for batch in lazy.collect_batches():
                batches.append(batch)
                rows += batch.height
                feedback.progress(stage, rows)
        finally:
            feedback.progress_done()
        if not batches:
            return lazy.head(0).collect()
        return pl.concat(batches, rechunk=True)


def _float_overrides(inputs: Inputs, schema: pl.Schema, names: Sequence[str]) -> dict[str, pl.DataType]:
    """Numeric columns of text inputs read as Float64, so a decimal far down still parses."""
    import polars as pl

    if not is_text_input(inputs):
        return {}
    return {n: pl.Float64 for n in names if schema[n].is_numeric()}


def _data_rows(mask: np.ndarray, limit: int = 3) -> str:
    import numpy as np

    rows = (np.flatnonzero(mask)[:limit] + 1).tolist()
    more = ", …" if int(mask.sum()) > limit else ""
    return ", ".join(map(str, rows)) + more


# --------------------------------------------------------------------------- the target


def _detect_task(target: pl.Series, requested: str) -> str:
    import polars as pl

    if requested != "auto":
        return requested
    dtype = target.dtype
    if is_text(dtype) or dtype == pl.Boolean:
        return "classification"
    if dtype.is_integer() and target.n_unique() <= MAX_AUTO_CLASSES:
        return "classification"
    if dtype.is_numeric():
        return "regression"
    raise DataError(
        f"target '{target.name}' has type {dtype}, which is neither labels nor numbers",
        hint="pass --task, or choose another --target",
    )


def _encode_classes(target: pl.Series) -> tuple[np.ndarray, list[Any]]:
    """Class indices 0..K−1 (labels sorted) and the labels, as JSON-able Python values."""
    import numpy as np
    import polars as pl

    labels = sorted(target.unique().to_list(), key=lambda v: (str(type(v)), v))
    if len(labels) < 2:
        raise DataError(
            f"target '{target.name}' has a single class ({labels[0]!r})",
            hint="classification needs at least two classes",
        )
    if len(labels) > MAX_CLASSES:
        raise DataError(
            f"target '{target.name}' has {len(labels)} distinct values: too many classes",
            hint="use --task regression for a numeric target",
        )
    encoded = target.replace_strict(labels, list(range(len(labels))), return_dtype=pl.Int64)
    return encoded.to_numpy().astype(np.int64), labels


def split_indices(y: np.ndarray, val_split: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation row indices; per class when ``stratify``.

    Each class with at least two rows keeps at least one row on each side.
    """
    import numpy as np

    rng = np.random.default_rng([seed, 1])
    rows = len(y)
    if val_split == 0:
        return np.arange(rows), np.arange(0)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(rows)]
    train, val = [], []
    for group in groups:
        order = rng.permutation(group)
        n_val = int(round(val_split * len(order)))
        if len(order) >= 2:
            n_val = min(max(n_val, 1), len(order) - 1)
        else:
            n_val = 0
        val.append(order[:n_val])
        train.append(order[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


# --------------------------------------------------------------------------- choosing features


def _resolve_names(schema: pl.Schema, options: DataOptions) -> DataOptions:
    """``options`` with every column pattern resolved to the columns it selects (see
    :mod:`normcli.data.selection`: an item matching nothing is an error), and the names checked."""
    names = schema.names()
    if options.target not in schema:
        raise UsageError(f"no target column named '{options.target}'", hint=f"columns are: {shown_names(names)}")
    features = None
    if options.features is not None:
        if options.target in named(options.features, names, "--features"):
            raise UsageError(f"'{options.target}' is both the target and a feature")
        features = tuple(n for n in select(options.features, names, "--features") if n != options.target)
    resolved = replace(
        options,
        features=features,
        exclude=tuple(select(options.exclude, names, "--exclude")),
        categorical=tuple(select(options.categorical, names, "--categorical")),
        numeric=tuple(select(options.numeric, names, "--numeric")),
    )
    for name in resolved.numeric:
        if not schema[name].is_numeric():
            raise UsageError(f"--numeric names '{name}', which is {schema[name]}, not numbers")
    return resolved


def _candidates(schema: pl.Schema, options: DataOptions, feedback: Feedback, notes: list[str]) -> list[str]:
    """Columns that may be features: named ones, or all but the target/excluded/unusable."""
    if options.features is not None:
        chosen = [n for n in options.features if n not in options.exclude]
        unusable = [
            f"{n} ({schema[n]})" for n in chosen
            if n not in options.categorical and column_kind(schema[n]) is None
        ]  # fmt: skip
        if unusable:
            raise DataError(
                f"feature column{'s' if len(unusable) > 1 else ''} neither numbers nor categories: "
                f"{', '.join(unusable)}",
                hint="leave them out of --features, or name them in --categorical",
            )
        return chosen
    chosen, left_out = [], []
    for name in schema.names():
        if name == options.target or name in options.exclude:
            continue
        if name in options.categorical or column_kind(schema[name]) is not None:
            chosen.append(name)
        else:
            left_out.append(f"{name} ({schema[name]})")
    if left_out:
        _say(feedback.note, notes, f"not used as features (neither numbers nor categories): {', '.join(left_out)}")
    return chosen


def _say(channel: Callable[[str], None], notes: list[str], text: str) -> None:
    notes.append(text)
    channel(text)


def _id_reasons(frame: pl.DataFrame, names: Sequence[str], schema: pl.Schema) -> dict[str, str]:
    """id-like columns among ``names`` of the (target-complete) frame, with the reason."""
    import polars as pl

    rows = frame.height
    exprs = []
    for i, name in enumerate(names):
        column = pl.col(name)
        exprs += [column.drop_nulls().n_unique().alias(f"u{i}"), column.null_count().alias(f"n{i}")]
        if schema[name].is_integer():
            step = column.diff().drop_nulls()
            exprs += [
                (column.max() - column.min() + 1).alias(f"r{i}"),
                ((step > 0).all() | (step < 0).all()).alias(f"m{i}"),
            ]
    stats = frame.select(exprs).row(0, named=True) if exprs else {}
    found = {}
    for i, name in enumerate(names):
        unique = int(stats[f"u{i}"]) if int(stats[f"n{i}"]) == 0 else -1
        sequential = None
        if schema[name].is_integer():
            span = stats[f"r{i}"]
            sequential = (span is not None and int(span) == rows) or bool(stats[f"m{i}"])
        reason = is_id_like(name, schema[name], unique, rows, sequential=sequential)
        if reason:
            found[name] = reason
    return found


def _looks_like_dates(values: pl.Series) -> bool:
    """Whether a text column's values (the first 1,000 present) all parse as dates or times."""
    sample = values.drop_nulls().head(1000)
    if sample.len() == 0 or not sample.str.contains(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    parsed = sample.str.to_datetime(strict=False)
    return parsed.null_count() == 0


def _kinds(
    names: Sequence[str], schema: pl.Schema, train: pl.DataFrame, options: DataOptions
) -> tuple[dict[str, str], list[str]]:
    """The kind of each candidate ('numeric'/'categorical'), and date-like text columns."""
    import polars as pl

    counts: dict[str, int] = {}
    integers = [n for n in names if schema[n].is_integer() and n not in options.categorical and n not in options.numeric]
    if integers:
        row = train.select([pl.col(n).drop_nulls().n_unique().alias(n) for n in integers]).row(0, named=True)
        counts = {n: int(row[n]) for n in integers}
    kinds: dict[str, str] = {}
    dates = []
    for name in names:
        if name in options.categorical:
            kinds[name] = "categorical"
        elif name in options.numeric:
            kinds[name] = "numeric"
        elif is_text(schema[name]) and options.features is None and _looks_like_dates(train[name].cast(pl.String)):
            dates.append(name)
        else:
            kind = column_kind(schema[name], counts.get(name), max_integer_categories=MAX_INTEGER_CATEGORIES)
            assert kind is not None
            kinds[name] = kind
    return kinds, dates


# --------------------------------------------------------------------------- preparing


def _fit_numeric(
    names: list[str], train: pl.DataFrame, where: str, input_names: Sequence[str], null_values: Sequence[str]
) -> Stats:
    import polars as pl

    numbers = train.select([pl.col(n).cast(pl.Float64).fill_nan(None) for n in names])
    return fit_frame(
        numbers,
        FitOptions(columns=tuple(names)),
        schema=train.select(names).schema,
        where=f"{where} (training split)",
        input_names=[f"{name} (training split)" for name in input_names],
        null_values=null_values,
    )


def _transformed_warning(stats: Stats, train: pl.DataFrame, names: Sequence[str]) -> str | None:
    """A warning when every numeric feature looks like the *output* of ``stats`` already.

    A column looks transformed when its mean is within 0.1 standard deviations of the mean the
    transform would produce, (mean − center)/scale, and its std within 10 % of the std it would
    produce, std/scale; the warning needs every column to look so while at least one does not
    also look like the raw data the stats were fitted on (for stats near center 0, scale 1
    both are the same and nothing is said).
    """
    import polars as pl

    if not names:
        return None
    tol = TRANSFORMED_TOLERANCE
    row = train.select(
        [pl.col(n).cast(pl.Float64).fill_nan(None).mean().alias(f"m{i}") for i, n in enumerate(names)]
        + [pl.col(n).cast(pl.Float64).fill_nan(None).std(ddof=0).alias(f"s{i}") for i, n in enumerate(names)]
    ).row(0, named=True)
    transformed, raw = [], []
    for i, name in enumerate(names):
        column = stats.column(name)
        mean, std = row[f"m{i}"], row[f"s{i}"]
        if mean is None or std is None or column.std == 0:
            return None
        t_mean, t_std = (column.mean - column.center) / column.scale, column.std / abs(column.scale)
        transformed.append(abs(mean - t_mean) <= tol * t_std and abs(std / t_std - 1) <= tol)
        raw.append(abs(mean - column.mean) <= tol * column.std and abs(std / column.std - 1) <= tol)
    if all(transformed) and not all(raw):
        return (
            f"the data already look transformed by these stats (every fitted feature column has the "
            f"mean and std that transforming with them gives, e.g. '{names[0]}' mean {row['m0']:.3g}, "
            f"std {row['s0']:.3g}); they would be scaled twice: train on the raw data, or without --stats"
        )
    return None


def prepare(
    inputs: Inputs,
    options: DataOptions,
    *,
    stats: Stats | None = None,
    feedback: Feedback | None = None,
) -> Prepared:
    """Read, choose and encode features, encode the target and split (see the module docstring).

    ``stats`` are the loaded ``--stats`` (None: fit standard stats on the training split). A file
    given twice is refused: its rows would count twice and land in both splits.
    """
    import numpy as np
    import polars as pl

    check_distinct_inputs(inputs.sources, hint="name each input once: repeated rows would land in both the training and the validation split")

    feedback = feedback or Feedback()
    notes: list[str] = []
    schema = inputs.schema()
    options = _resolve_names(schema, options)
    candidates = _candidates(schema, options, feedback, notes)
    where = inputs.describe()
    frame = read_frame(inputs, [*candidates, options.target], _float_overrides(inputs, schema, candidates), feedback)

    # 1. the target
    target = frame[options.target]
    if target.dtype.is_float():
        target = target.fill_nan(None)
    missing_target = target.is_null().to_numpy()
    dropped = int(missing_target.sum())
    if dropped == frame.height:
        raise DataError(f"{where}: target '{options.target}' has no values", hint="choose another --target")
    if dropped:
        _say(
            feedback.note, notes,
            f"dropped {dropped} of {frame.height} rows whose target '{options.target}' is missing "
            f"(data rows {_data_rows(missing_target)})",
        )  # fmt: skip
        keep = pl.Series(~missing_target)
        frame, target = frame.filter(keep), target.filter(keep)
    task = _detect_task(target, options.task)
    classes = None
    if task == "classification":
        y, classes = _encode_classes(target)
    else:
        if not target.dtype.is_numeric():
            raise DataError(f"{where}: target '{options.target}' is {target.dtype}, not numeric", hint="use --task classification")
        y = target.cast(pl.Float64).to_numpy()
        if not np.all(np.isfinite(y)):
            raise DataError(f"{where}: target '{options.target}' has infinite values", hint="drop those rows")

    # 2. the split
    train_idx, val_idx = split_indices(y, options.val_split, options.seed, task == "classification")
    if len(train_idx) < 2 or (options.val_split > 0 and len(val_idx) == 0):
        raise DataError(
            f"{where}: {frame.height} rows are too few for a validation split of {options.val_split} "
            f"(train {len(train_idx)}, validation {len(val_idx)})",
            hint="use more rows, or --val-split 0",
        )
    train_frame = frame[train_idx]
    val_frame = frame[val_idx] if len(val_idx) else None

    # 3. the features
    named = set(options.features or ()) | set(options.categorical) | set(options.numeric)
    ids = _id_reasons(frame, [n for n in candidates if n not in named], schema)
    if ids:
        shown = ", ".join(f"{n} ({why})" for n, why in ids.items())
        _say(feedback.note, notes, f"left out id-like columns: {shown} (name them in --features to use them)")
    candidates = [n for n in candidates if n not in ids]
    kinds, dates = _kinds(candidates, schema, train_frame, options)
    if dates:
        _say(feedback.note, notes, f"not used as features (dates): {', '.join(dates)}")
    numeric = [n for n in candidates if kinds.get(n) == "numeric"]
    categorical = [n for n in candidates if kinds.get(n) == "categorical"]

    empty = [n for n in numeric if train_frame[n].cast(pl.Float64).fill_nan(None).null_count() == train_frame.height]
    empty += [n for n in categorical if train_frame[n].null_count() == train_frame.height]
    if empty:
        if options.features is not None:
            raise DataError(f"{where}: feature column(s) {', '.join(empty)} have no values in the training split")
        _say(feedback.note, notes, f"not used as features (no values in the training split): {', '.join(empty)}")
        numeric = [n for n in numeric if n not in empty]
        categorical = [n for n in categorical if n not in empty]
    if stats is not None:
        missing = [n for n in numeric if n not in stats.names]
        if missing and (options.features is not None or set(missing) & set(options.numeric)):
            raise DataError(
                f"feature column{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in the stats file",
                hint="fit them too, or choose --features among the fitted columns",
            )
        if missing:
            _say(feedback.note, notes, f"not used as features (not in the stats file): {', '.join(missing)}")
            numeric = [n for n in numeric if n not in missing]
    if not numeric and not categorical:
        raise DataError(f"{where}: no feature columns", hint="name them with --features")

    # 4. the encoding, learned on the training split
    fitted_on_split = False
    if stats is None and numeric:
        stats = _fit_numeric(numeric, train_frame, where, inputs.names, inputs.options.null_values)
        for warning in stats.warnings:
            _say(feedback.note, notes, warning)
        fitted_on_split = True
    elif stats is not None:
        warning = _transformed_warning(stats, train_frame, numeric)
        if warning:
            notes.append(f"warning: {warning}")
            feedback.warn(warning)
    features: list[NumericFeature | CategoricalFeature] = []
    folded_notes = []
    for name in candidates:
        if name in numeric:
            column = stats.column(name)  # type: ignore[union-attr]
            features.append(NumericFeature(name, column.center, column.scale, column.mean))
        elif name in categorical:
            categories, folded, value_type = learn_categories(train_frame[name], options.max_categories)
            features.append(CategoricalFeature(name, categories, value_type, folded))
            if folded:
                folded_notes.append(f"{name} ({len(categories) + len(folded)} values: {len(folded)} folded into <other>)")
    encoder = FeatureEncoder(tuple(features))
    if categorical:
        shown = ", ".join(f"{f.name} ({len(f.outputs)})" for f in encoder.categorical)
        _say(feedback.note, notes, f"one-hot encoded: {shown} (categories of the training split)")
    if folded_notes:
        _say(feedback.note, notes, f"rare categories folded (--max-categories {options.max_categories}): {', '.join(folded_notes)}")

    encoded_train = encoder.encode(train_frame)
    encoded_val = encoder.encode(val_frame) if val_frame is not None else None
    _imputation_notes(encoded_train, encoded_val, feedback, notes)

    prepared = Prepared(
        task=task,
        target=options.target,
        encoder=encoder,
        classes=classes,
        stats=stats,
        X_train=encoded_train.X,
        X_val=encoded_val.X if encoded_val is not None else None,
        y_train=y[train_idx],
        y_val=y[val_idx] if len(val_idx) else None,
        notes=notes,
        stats_fitted_on_split=fitted_on_split,
        id_columns=list(ids),
        null_values=inputs.options.null_values,
        rows_without_target=dropped,
        frame_train=train_frame,
        frame_val=val_frame,
    )
    if task == "regression":
        # the target is standardized with training-split statistics; metrics come back in its units
        y_stats = fit_frame(pl.DataFrame({options.target: prepared.y_train}), FitOptions())
        column = y_stats.column(options.target)
        prepared.y_center, prepared.y_scale = column.center, column.scale
        prepared.y_train = (prepared.y_train - column.center) / column.scale
        if prepared.y_val is not None:
            prepared.y_val = (prepared.y_val - column.center) / column.scale
    return prepared


def _imputation_notes(train: Encoded, val: Encoded | None, feedback: Feedback, notes: list[str]) -> None:
    parts = [(name, encoded) for name, encoded in (("training", train), ("validation", val)) if encoded is not None]
    imputed = [
        f"{encoded.imputed_values} in {int(encoded.imputed_rows.sum())} {name} rows"
        for name, encoded in parts if encoded.imputed_values
    ]  # fmt: skip
    if imputed:
        _say(
            feedback.note, notes,
            f"imputed missing feature values ({'; '.join(imputed)}): numbers with the training mean, "
            "categories as all-zero",
        )  # fmt: skip
    if val is not None and val.unknown:
        shown = "; ".join(
            f"{name}: {count} rows ({', '.join(map(repr, examples[:3]))}{', …' if len(examples) > 3 else ''})"
            for name, (count, examples) in val.unknown.items()
        )
        _say(feedback.note, notes, f"validation rows with categories not in the training split (encoded as all-zero): {shown}")


def load_given_stats(
    path: str | None, data: Sequence[str] = (), stdin: IO[bytes] | None = None, stdin_is_terminal: bool = False
) -> Stats | None:
    """The ``--stats`` file (``-``: stdin, when the ``data`` come from files), loaded and
    validated; None without one. Per-group stats (``--by``) are refused: a model normalizes every
    row alike."""
    if not path:
        return None
    stats = load_stats(path, stdin=stdin, stdin_is_terminal=stdin_is_terminal, data=data)
    if stats.groups is not None:
        raise UsageError(
            f"{path}: stats fitted per group (--by {','.join(stats.by)}) cannot normalize a model's features",
            hint="fit the stats without --by, or train without --stats",
        )
    return stats
