"""Feature encoding: data-frame columns → the matrix the network sees, learned once, repeated.

A :class:`FeatureEncoder` is an ordered list of features, each one input column:

* :class:`NumericFeature` — one output column, ``(x − center) / scale`` with the center and
  scale of normcli's statistics (fitted on the training split, or given with ``--stats``). A
  missing value is imputed with the training mean (its scaled value).
* :class:`CategoricalFeature` — one-hot: one output column per category learned on the
  training split (sorted; a missing value is a category of its own, ``<missing>``, when the
  training split has missing values), then an ``<other>`` column when rare categories were
  folded (``max_categories``). Values 0 or 1, never scaled. A value not seen in training
  (nor folded) encodes as all zeros and is counted; so is a missing value when ``<missing>``
  was not learned.

The encoder is stored in the model file (:meth:`FeatureEncoder.to_dict`) so that ``predict``
encodes new data exactly as the training data were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from normcli.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "MISSING",
    "OTHER",
    "CategoricalFeature",
    "Encoded",
    "FeatureEncoder",
    "NumericFeature",
    "learn_categories",
]

MISSING = "<missing>"
OTHER = "<other>"
_MISSING_CODE = -2  # a missing value without a <missing> category
_UNKNOWN_CODE = -1  # a value not seen in training


@dataclass(frozen=True)
class NumericFeature:
    """A number, scaled as ``(x − center) / scale``; ``mean`` (raw units) imputes a missing value."""

    name: str
    center: float
    scale: float
    mean: float

    @property
    def outputs(self) -> list[str]:
        return [self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "numeric", "center": self.center, "scale": self.scale, "mean": self.mean}


@dataclass(frozen=True)
class CategoricalFeature:
    """A category, one-hot encoded.

    ``categories`` are the values with a column of their own, in output order (``None`` stands
    for a missing value); ``folded`` the rarer training values sharing the ``<other>`` column
    (none: no such column). ``value_type`` ('text', 'number' or 'bool') says how to read the
    column at prediction, whatever type the new file gives it.
    """

    name: str
    categories: tuple[Any, ...]
    value_type: str = "text"
    folded: tuple[Any, ...] = ()

    @property
    def outputs(self) -> list[str]:
        names = [f"{self.name}={MISSING if value is None else _show(value)}" for value in self.categories]
        return names + ([f"{self.name}={OTHER}"] if self.folded else [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "categorical",
            "value_type": self.value_type,
            "categories": list(self.categories),
            "folded": list(self.folded),
        }

    def _cast(self, column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
        import polars as pl

        if self.value_type == "number":
            return column if dtype == pl.Float64 else column.cast(pl.Float64, strict=False)
        if self.value_type == "bool":
            if dtype == pl.Boolean:
                return column
            text = column.cast(pl.String).str.to_lowercase()
            return pl.when(text == "true").then(True).when(text == "false").then(False).otherwise(None)
        return column if dtype == pl.String else column.cast(pl.String)

    def codes(self, frame: pl.DataFrame) -> np.ndarray:
        """Per row: the output column (0-based), −1 for an unseen value, −2 for missing-not-learned."""
        import polars as pl

        known = [v for v in self.categories if v is not None]
        folded = [v for v in self.folded if v is not None]
        old = known + folded
        new = list(range(len(known))) + [len(self.categories)] * len(folded)
        if None in self.categories:
            missing_code = self.categories.index(None)
        elif None in self.folded:
            missing_code = len(self.categories)
        else:
            missing_code = _MISSING_CODE
        column = self._cast(pl.col(self.name), frame.schema[self.name])
        if self.value_type == "number":
            column = column.fill_nan(None)
        if old:
            coded = column.replace_strict(old, new, default=_UNKNOWN_CODE, return_dtype=pl.Int32)
        else:
            coded = pl.lit(_UNKNOWN_CODE, dtype=pl.Int32)
        expr = pl.when(column.is_null()).then(pl.lit(missing_code, dtype=pl.Int32)).otherwise(coded)
        return frame.select(expr.alias("code")).to_series().to_numpy()

    def unknown_examples(self, frame: pl.DataFrame, codes: np.ndarray, limit: int = 3) -> list[Any]:
        """A few of the unseen values (for a note); one more than ``limit`` says there are more."""
        import numpy as np
        import polars as pl

        rows = np.flatnonzero(codes == _UNKNOWN_CODE)
        values = frame[self.name].gather(rows).unique(maintain_order=True).head(limit + 1)
        return [_show(v) for v in values.cast(pl.String).to_list()]


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Encoded:
    """An encoded matrix and what the encoding had to fill in.

    ``imputed_rows``: rows with at least one value filled in (a missing number, or a missing
    category without a ``<missing>`` column); ``imputed_values``: how many values that was;
    ``unknown``: per categorical feature, (rows with an unseen value, a few of those values).
    """

    X: np.ndarray
    imputed_rows: np.ndarray
    imputed_values: int
    unknown: dict[str, tuple[int, list[Any]]] = field(default_factory=dict)

    @property
    def unknown_rows(self) -> int:
        return int(sum(count for count, _ in self.unknown.values()))


@dataclass(frozen=True)
class FeatureEncoder:
    """Ordered features (see the module docstring)."""

    features: tuple[NumericFeature | CategoricalFeature, ...]

    @property
    def columns(self) -> list[str]:
        """The input columns, in order."""
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[NumericFeature]:
        return [f for f in self.features if isinstance(f, NumericFeature)]

    @property
    def categorical(self) -> list[CategoricalFeature]:
        return [f for f in self.features if isinstance(f, CategoricalFeature)]

    @property
    def output_names(self) -> list[str]:
        """The names of the encoded columns, in order (``island=Biscoe``, ...)."""
        return [name for f in self.features for name in f.outputs]

    @property
    def width(self) -> int:
        return len(self.output_names)

    def encode(self, frame: pl.DataFrame, *, scaled: bool = True) -> Encoded:
        """The matrix (rows × :attr:`width`, float64) of ``frame``'s rows.

        ``scaled=False`` leaves numbers in their own units (missing ones imputed with the
        training mean): the "raw inputs" of ``train --compare``.
        """
        import numpy as np
        import polars as pl

        rows = frame.height
        X = np.zeros((rows, self.width), dtype=np.float64)
        imputed_rows = np.zeros(rows, dtype=bool)
        imputed_values = 0
        unknown: dict[str, tuple[int, list[Any]]] = {}
        column = 0
        for feature in self.features:
            if isinstance(feature, NumericFeature):
                values = frame.select(
                    pl.col(feature.name).cast(pl.Float64).fill_nan(None).alias("v")
                ).to_series().to_numpy().astype(np.float64, copy=False)
                holes = np.isnan(values)
                if scaled:
                    values = (values - feature.center) / feature.scale
                    fill = (feature.mean - feature.center) / feature.scale
                else:
                    fill = feature.mean
                X[:, column] = np.where(holes, fill, values)
                imputed_rows |= holes
                imputed_values += int(holes.sum())
                column += 1
                continue
            codes = feature.codes(frame)
            hit = codes >= 0
            X[np.flatnonzero(hit), column + codes[hit]] = 1.0
            holes = codes == _MISSING_CODE
            imputed_rows |= holes
            imputed_values += int(holes.sum())
            unseen = int((codes == _UNKNOWN_CODE).sum())
            if unseen:
                unknown[feature.name] = (unseen, feature.unknown_examples(frame, codes))
            column += len(feature.outputs)
        return Encoded(X, imputed_rows, imputed_values, unknown)

    def to_dict(self) -> list[dict[str, Any]]:
        """JSON-ready description, stored in the model file."""
        return [f.to_dict() for f in self.features]

    @classmethod
    def from_dict(cls, entries: Sequence[Mapping[str, Any]], source: str = "model") -> FeatureEncoder:
        """Inverse of :meth:`to_dict`; a malformed entry raises :class:`DataError`."""
        features: list[NumericFeature | CategoricalFeature] = []
        try:
            for entry in entries:
                if entry["kind"] == "numeric":
                    numbers = [float(entry[key]) for key in ("center", "scale", "mean")]
                    if not all(math.isfinite(v) for v in numbers) or numbers[1] == 0:
                        raise ValueError(f"bad scaling of '{entry['name']}'")
                    features.append(NumericFeature(str(entry["name"]), *numbers))
                elif entry["kind"] == "categorical":
                    features.append(
                        CategoricalFeature(
                            str(entry["name"]),
                            tuple(entry["categories"]),
                            str(entry.get("value_type", "text")),
                            tuple(entry.get("folded", ())),
                        )
                    )
                else:
                    raise ValueError(f"unknown feature kind {entry['kind']!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{source}: malformed feature description ({exc})",
                hint="train the model again with this normcli",
            ) from None
        return cls(tuple(features))


def learn_categories(
    values: pl.Series, max_categories: int | None
) -> tuple[tuple[Any, ...], tuple[Any, ...], str]:
    """(categories, folded, value_type) of a training column (see :class:`CategoricalFeature`).

    With more than ``max_categories`` distinct values (a missing value counts as one), the
    ``max_categories − 1`` most frequent keep a column (ties: smaller value first) and the rest
    are folded into ``<other>``: ``max_categories`` columns in all, as scikit-learn's
    ``OneHotEncoder(max_categories=...)``.
    """
    import polars as pl

    dtype = values.dtype
    if dtype == pl.Boolean:
        value_type = "bool"
    elif dtype.is_numeric():
        value_type = "number"
        values = values.cast(pl.Float64).fill_nan(None)
    else:
        value_type = "text"
        values = values.cast(pl.String)
    counts = values.value_counts(sort=False, name="count")
    entries = [(v, int(c)) for v, c in zip(counts[values.name].to_list(), counts["count"].to_list(), strict=True)]
    if value_type == "number":
        entries = [(int(v) if v is not None and float(v).is_integer() else v, c) for v, c in entries]

    def order(value: Any) -> tuple[int, Any]:
        return (1, 0) if value is None else (0, value)

    entries.sort(key=lambda e: order(e[0]))
    folded: list[Any] = []
    if max_categories is not None and len(entries) > max_categories:
        by_count = sorted(entries, key=lambda e: (-e[1], order(e[0])))
        keep = {order(v) for v, _ in by_count[: max(max_categories - 1, 0)]}
        folded = [v for v, _ in entries if order(v) not in keep]
        entries = [(v, c) for v, c in entries if order(v) in keep]
    return tuple(v for v, _ in entries), tuple(folded), value_type
