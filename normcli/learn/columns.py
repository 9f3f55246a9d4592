"""What a column is to the learning code: a row identifier, a number, a category, or neither.

Pure rules on a column's name, type and a few counts. Nothing here reads files. The name rule
(:data:`~normcli.data.schema.ID_NAME`) is shared with ``fit``, which warns about id-like columns
it scales.

Rules (documented in the README, "train"):

* **id-like** (:func:`is_id_like`): the name is ``id``, ``*_id`` (also ``*-id``, ``* id``,
  camel-case ``*Id``/``*ID``), ``index``, ``idx``, ``row``, ``row_id``, ``rownames``, ``uuid``,
  or pandas' ``Unnamed: 0``; or a text column holds a distinct value on every row; or an
  integer column holds a distinct value on every row *in sequence* (consecutive values, or
  strictly increasing or decreasing in file order) — a row number. A distinct integer on every
  row that is not in sequence (incomes in dollars on a few hundred rows) is a number.
* **categorical** (:func:`column_kind`): text, boolean and categorical columns, and integer
  columns with at most :data:`MAX_INTEGER_CATEGORIES` distinct values.
* **numeric**: other integer, float and decimal columns.
* anything else (dates, times, lists, structs) is not a feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from normcli.data.schema import ID_NAME

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "MAX_INTEGER_CATEGORIES",
    "ID_NAME",
    "Kind",
    "column_kind",
    "id_like_columns",
    "is_id_like",
    "is_text",
]

MAX_INTEGER_CATEGORIES = 10
"""An integer feature with at most this many distinct values (in the training split) is a category."""

Kind = Literal["numeric", "categorical"]


def is_text(dtype: pl.DataType) -> bool:
    """Text-like: String, Categorical or Enum."""
    import polars as pl

    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


def is_id_like(
    name: str,
    dtype: pl.DataType,
    n_unique: int,
    n_rows: int,
    *,
    sequential: bool | None = None,
) -> str | None:
    """Why column ``name`` looks like a row identifier, as a few words for a note; else None.

    ``n_unique`` counts the distinct non-missing values of ``n_rows`` rows (a column with
    missing values is never unique on every row: pass ``n_unique < n_rows`` then).
    ``sequential`` says whether an integer column's values are consecutive or strictly
    monotonic in file order; ``None`` (unknown) takes a distinct integer on every row as an
    identifier, which suits a warning but not the choice of features.
    """
    if ID_NAME.search(name):
        return "its name"
    if n_rows < 2 or n_unique != n_rows:
        return None
    if is_text(dtype):
        return "a distinct text on every row"
    if dtype.is_integer() and sequential is not False:
        return "a distinct integer on every row" + (", in sequence" if sequential else "")
    return None


def column_kind(
    dtype: pl.DataType, n_unique: int | None = None, *, max_integer_categories: int = MAX_INTEGER_CATEGORIES
) -> Kind | None:
    """'numeric', 'categorical' or None (not a feature) for a column of this type.

    ``n_unique`` (distinct non-missing values, in the training split) decides for integers;
    without it an integer column is numeric.
    """
    import polars as pl

    if is_text(dtype) or dtype == pl.Boolean:
        return "categorical"
    if dtype.is_integer():
        if n_unique is not None and n_unique <= max_integer_categories:
            return "categorical"
        return "numeric"
    if dtype.is_numeric():
        return "numeric"
    return None


def id_like_columns(frame: pl.LazyFrame | pl.DataFrame, names: Sequence[str] | None = None) -> dict[str, str]:
    """The id-like columns among ``names`` (default: all) of ``frame``, each with its reason.

    One query: distinct counts, missing counts and, for integers, whether the values are in
    sequence. Columns whose name already says "id" are not scanned.
    """
    import polars as pl

    lazy = frame.lazy()
    schema = lazy.collect_schema()
    names = list(schema.names() if names is None else names)
    found = {name: "its name" for name in names if ID_NAME.search(name)}
    scanned = [n for n in names if n not in found and (is_text(schema[n]) or schema[n].is_integer())]
    if not scanned:
        return found
    exprs = [pl.len().alias("__rows")]
    for i, name in enumerate(scanned):
        column = pl.col(name)
        exprs += [
            column.drop_nulls().n_unique().alias(f"u{i}"),
            column.null_count().alias(f"n{i}"),
        ]
        if schema[name].is_integer():
            step = column.diff().drop_nulls()
            exprs += [
                (column.max() - column.min() + 1).alias(f"r{i}"),
                ((step > 0).all() | (step < 0).all()).alias(f"m{i}"),
            ]
    row = lazy.select(exprs).collect().row(0, named=True)
    rows = int(row["__rows"])
    for i, name in enumerate(scanned):
        unique = int(row[f"u{i}"]) if int(row[f"n{i}"]) == 0 else -1
        sequential = None
        if schema[name].is_integer():
            sequential = row[f"r{i}"] == rows or bool(row[f"m{i}"])
        reason = is_id_like(name, schema[name], unique, rows, sequential=sequential)
        if reason:
            found[name] = reason
    return {name: found[name] for name in names if name in found}
