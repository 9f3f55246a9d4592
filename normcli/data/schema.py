"""Column types of each input, and the one rule that unifies them across inputs.

Each input's types are inferred on its own (text formats from their first rows, Parquet from its
metadata). Then, for every column, in order of first appearance:

* a column with no values in an input's first rows (``Null``) takes its type from the others;
* integers in one input and floats in another are floats; two integer types are ``Int64``;
* numbers in one input and words in another is an error naming the file, column and first
  offending line;
* a column absent from an input is an error naming the file, unless ``--allow-missing-columns``,
  which reads it there as empty.

The same rule serves the fragments of a fit, ``merge`` and new data given to ``transform``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from normcli.data.diagnostics import _FileText, clip, polars_errors, repeated_header
from normcli.data.formats import INFER_SCHEMA_ROWS, ReadOptions
from normcli.data.inputs import MAX_COLUMNS, Source, check_header_width, raise_too_wide
from normcli.data.selection import select
from normcli.errors import DataError

if TYPE_CHECKING:
    import polars as pl

    from normcli.data.streams import StreamReader

ID_NAME = re.compile(
    r"(?i:^(id|idx|index|row|row_?id|row_?number|row_?names|uuid|unnamed: ?\d+)$)"
    r"|(?i:[_\-. ]id$)"
    r"|[a-z0-9](?:Id|ID)$"
)
"""Column names that say "row identifier" (case-insensitive but for the camel-case ``fooId``):
``id``, ``*_id`` (also ``*-id``, ``* id``, ``*Id``), ``index``, ``idx``, ``row``, ``row_id``,
``rownames``, ``uuid``, pandas' ``Unnamed: 0``. fit warns when it scales one; train leaves them out."""

NULL = "Null"
"""The type of a column with no values in the rows seen: it takes its type from the others."""


def unify_dtypes(a: str, b: str) -> str | None:
    """The type of a column that is ``a`` in some rows and ``b`` in others, or None if they conflict.

    ``Null`` (no values seen) takes the other type; any two numeric types become ``Float64``
    unless both are integers (then ``Int64``); other types must be equal. This is the one rule for
    fragments of a fit, for ``merge`` and for new data given to ``transform``.
    """
    if a == b or b == "Null":
        return a
    if a == "Null":
        return b
    if is_numeric_dtype(a) and is_numeric_dtype(b):
        integers = a.startswith(("Int", "UInt")) and b.startswith(("Int", "UInt"))
        return "Int64" if integers else "Float64"
    return None


def is_numeric_dtype(dtype: str) -> bool:
    """Integers, floats and decimals are scaled; booleans, dates and text are not."""
    return dtype.startswith(("Int", "UInt", "Float", "Decimal"))


@dataclass
class SourceSchema:
    """One input's columns and types as inferred, and which columns had no values in its sample."""

    source: Source
    types: dict[str, pl.DataType]
    options: ReadOptions
    """How this input is read: the command's options, plus what inference found (``trimmed``)."""
    sample: pl.DataFrame | None = None  # the first rows of a stream, kept for second looks
    _empty: dict[str, bool] = field(default_factory=dict)
    _head: pl.DataFrame | None = None

    @property
    def names(self) -> list[str]:
        return list(self.types)

    def dtype(self, name: str) -> str:
        """The column's type name; ``Null`` when it had no values in the sample."""
        dtype = self.types[name]
        name_of = _dtype_name(dtype)
        if name_of == "String" and self.source.format.text and self.is_empty(name):
            return NULL
        return name_of

    def is_empty(self, name: str) -> bool:
        """Whether the column has no values among the first rows (every text column of the input
        is probed at once, on first use)."""
        if name not in self._empty:
            self._empty.update(self._probe_empty())
        return self._empty.get(name, False)

    def _probe_empty(self) -> dict[str, bool]:
        import polars as pl

        text = [n for n, t in self.types.items() if t == pl.String]
        head = self.head()
        return {name: head[name].null_count() == head.height for name in text if name in head.columns}

    def head(self) -> pl.DataFrame:
        """The first rows (up to :data:`INFER_SCHEMA_ROWS`) of the text columns, as read (kept:
        read once for every look at them)."""
        import polars as pl

        if self._head is None:
            text = [n for n, t in self.types.items() if t == pl.String]
            if self.sample is not None:
                self._head = self.sample.select(text)
            elif self.source.compression is None and self.source.format.name in ("csv", "tsv"):
                self._head = self._first_rows(text).head(INFER_SCHEMA_ROWS)  # whole chunks: a few more
            else:
                assert self.source.path is not None
                with polars_errors([self.source], self.options):
                    scan = self.source.format.scan(self.source.path, self.options, self.types)
                    self._head = scan.select(text).head(INFER_SCHEMA_ROWS).collect()
        return self._head

    def fix_types(self, wanted: Sequence[str] | None = None) -> None:
        """Apply ``--text`` and ``--dtype``, then read numbers written with surrounding spaces or a
        leading ``+`` as numbers (see :class:`~normcli.data.formats.ReadOptions`): among the
        ``wanted`` columns only, if given (transform needs its fitted columns; every other
        column passes through as text, and a file's first rows need not be read again)."""
        import polars as pl

        names = list(self.types)
        fixed: set[str] = set()
        if self.options.text:
            for name in select(self.options.text, names, "--text"):
                self.types[name] = pl.String
                fixed.add(name)
        for name in self.options.text_if_present:
            if name in self.types:
                self.types[name] = pl.String
                fixed.add(name)
        for pattern, type_name in self.options.dtypes:
            for name in select([pattern], names, "--dtype"):
                self.types[name] = getattr(pl, type_name)
                fixed.add(name)
        trimmed: set[str] = set()
        if self.source.format.name in ("csv", "tsv"):
            padded = self._padded_numbers(fixed, wanted)
            self.types.update(padded)
            # columns --dtype declares numeric accept padded numbers too (and a word is an error)
            trimmed = set(padded) | {name for name in fixed if self.types[name].is_numeric()}
        if fixed or trimmed:
            self.options = replace(self.options, fixed=frozenset(fixed), trimmed=frozenset(trimmed))

    def _padded_numbers(self, fixed: set[str], wanted: Sequence[str] | None) -> dict[str, pl.DataType]:
        """Text columns whose every value is a number once trimmed of spaces, with at least one
        value that needed it (or a leading ``+``): Int64 if all are integers, else Float64."""
        import polars as pl

        candidates = [
            n for n, t in self.types.items() if t == pl.String and n not in fixed and (wanted is None or n in wanted)
        ]  # fmt: skip
        if not candidates:
            return {}
        head = self.head()
        found: dict[str, pl.DataType] = {}
        for name in candidates:
            values = head[name].drop_nulls()
            stripped = values.str.strip_chars()
            present = stripped.filter(~stripped.is_in([*self.options.null_values, ""]))
            if not len(present) or not ((stripped != values) | values.str.starts_with("+")).any():
                continue
            for dtype in (pl.Int64, pl.Float64):
                if present.cast(dtype, strict=False).null_count() == 0:
                    found[name] = dtype
                    break
        return found

    def mostly_numbers(self, name: str) -> tuple[int, str] | None:
        """For a text column most of whose first values are numbers (trimmed of spaces): the line
        and value of the first that is not, which made it text; else None."""
        import polars as pl

        if self.types.get(name) != pl.String or name not in self.head().columns:
            return None
        values = self.head()[name].drop_nulls().str.strip_chars()
        values = values.filter(~values.is_in([*self.options.null_values, ""]))
        if not len(values) or values.cast(pl.Float64, strict=False).null_count() * 2 > len(values):
            return None
        return self.first_word(name)

    def _first_rows(self, columns: list[str]) -> pl.DataFrame:
        """The first rows of a plain CSV file, from its first bytes (a full scan's start-up costs
        more than the whole probe on a big file)."""
        from normcli.data.streams import first_records

        assert self.source.path is not None
        if self.source.is_url:
            from normcli.data.storage import open_url

            opened = open_url(self.source.path, self.options.storage)
        else:
            opened = open(self.source.path, "rb")  # noqa: SIM115 - closed just below
        with opened as handle:
            records = first_records(handle, INFER_SCHEMA_ROWS, self.source.format.name != "ndjson", self.options.has_header)
        with polars_errors([self.source], self.options):
            return self.source.format.parse(records, list(self.types), self.options, self.types, columns=columns, infer=False)

    def first_word(self, name: str) -> tuple[int, str] | None:
        """(line, value) of the first value of a text column that is not a number (trimmed)."""
        import polars as pl

        if self.sample is not None:
            column = self.sample[name]
            stripped = column.cast(pl.String).str.strip_chars()
            bad = column.is_not_null() & ~stripped.is_in([*self.options.null_values, ""]) & stripped.cast(pl.Float64, strict=False).is_null()
            rows = bad.arg_true()
            first_line = 2 if self.options.has_header else 1
            return (int(rows[0]) + first_line, str(column[int(rows[0])])) if len(rows) else None
        located = _FileText(self.source, self.options).unparsable(name, "f64", trimmed=True)
        return (located[1], located[2]) if located else None


def _dtype_name(dtype: pl.DataType) -> str:
    return re.sub(r"\(.*", "", str(dtype)) if str(dtype).startswith(("Datetime", "Duration", "Decimal")) else str(dtype)


def read_schema(
    source: Source, options: ReadOptions, reader: StreamReader | None = None, wanted: Sequence[str] | None = None
) -> SourceSchema:
    """Infer one input's schema (a file's first rows or metadata, or a stream's first chunk);
    ``wanted``: the only columns that will be read as numbers, if known (see :meth:`SourceSchema.fix_types`)."""
    if reader is not None:
        sample = reader.sample()
        schema = SourceSchema(source, dict(sample.schema), options, sample=sample)
        names = reader.names or sample.columns
    else:
        assert source.path is not None
        check_header_width(source, options)
        with polars_errors([source], options):
            types = dict(source.format.scan(source.path, options, infer=True).collect_schema())
        schema = SourceSchema(source, types, options)
        names = list(types)
    if len(names) > MAX_COLUMNS:  # Parquet, NDJSON
        raise_too_wide(source, len(names))
    check_column_names(names, source)
    check_separator(names, source, options)
    check_repeated_header(schema)
    schema.fix_types(wanted)
    if reader is not None:
        reader.options = schema.options  # the stream's chunks are read as inference decided
    return schema


def check_repeated_header(schema: SourceSchema) -> None:
    """Refuse a data line equal to the header line among the first rows: CSV files concatenated
    with their headers (``cat part-*.csv``) turn every column into text. Later repeats are found
    when they fail to parse (:func:`normcli.data.diagnostics.repeated_header`)."""
    import polars as pl

    options = schema.options
    if schema.source.format.name not in ("csv", "tsv") or not options.has_header or not schema.types:
        return
    if any(dtype != pl.String for dtype in schema.types.values()):
        return
    names = list(schema.types)
    head = schema.head()
    repeats = head.select(pl.all_horizontal([pl.col(n) == n for n in names])).to_series().arg_true()
    if len(repeats):
        raise repeated_header(schema.source.display, int(repeats[0]) + 2)


def check_column_names(names: list[str], source: Source) -> None:
    """Refuse empty and duplicate column names (Polars renames duplicates ``a_duplicated_0``)."""
    seen: set[str] = set()
    for name in names:
        if name == "":
            raise DataError(f"{source.display}: a column has an empty name", hint="give every column a header name")
        match = re.fullmatch(r"(.*)_duplicated_\d+", name, re.DOTALL)
        duplicate = name if name in seen else (match.group(1) if match and match.group(1) in names else None)
        if duplicate is not None:
            raise DataError(
                f"{source.display}: duplicate column name '{duplicate}'",
                hint="rename the columns so each header is unique",
            )
        seen.add(name)


_SEPARATOR_WORDS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


def check_separator(names: list[str], source: Source, options: ReadOptions) -> None:
    """Refuse a lone column whose name holds another usual separator: the file was split wrongly.

    ``-d/--delimiter`` given explicitly turns the check off (a one-column file may contain ';').
    """
    if len(names) != 1 or options.separator is not None or not options.has_header or source.format.name not in ("csv", "tsv"):
        return
    used = source.format.delimiter(options)
    for candidate, word in _SEPARATOR_WORDS.items():
        if candidate != used and len([p for p in names[0].split(candidate) if p]) >= 2:
            raise DataError(
                f"{source.display}: found one column named '{clip(names[0])}'; the file looks {word}-separated",
                hint="pass -d tab (or --format tsv)" if candidate == "\t" else f"pass -d '{candidate}'",
            )


@dataclass
class TableSchema:
    """The unified schema of several inputs: every column's name and type, in first-seen order."""

    dtypes: dict[str, str]
    inputs: list[SourceSchema]

    @property
    def names(self) -> list[str]:
        return list(self.dtypes)

    def missing(self, index: int) -> list[str]:
        """Columns that input ``index`` does not have (allowed by --allow-missing-columns)."""
        have = self.inputs[index].types
        return [name for name in self.dtypes if name not in have]

    def lacking(self, name: str) -> SourceSchema | None:
        """The first input without column ``name`` (None: every input has it)."""
        return next((schema for schema in self.inputs if name not in schema.types), None)


def unify(inputs: Sequence[SourceSchema], allow_missing_columns: bool = False) -> TableSchema:
    """The one schema of all inputs, by the rule in this module's docstring."""
    order: dict[str, None] = {}
    for schema in inputs:
        order.update(dict.fromkeys(schema.names))
    dtypes: dict[str, str] = {}
    for name in order:
        holders = [s for s in inputs if name in s.types]
        if len(holders) < len(inputs) and not allow_missing_columns:
            absent = next(s for s in inputs if name not in s.types)
            raise DataError(
                f"{absent.source.display}: has no column '{name}' (the other inputs have it)",
                hint="give every input the same columns, or pass --allow-missing-columns to read it as empty there",
            )
        dtypes[name] = _unify_column(name, holders)
    return TableSchema(dtypes, list(inputs))


def _unify_column(name: str, holders: list[SourceSchema]) -> str:
    raw = {_dtype_name(s.types[name]) for s in holders}
    if len(raw) == 1 and raw != {"String"}:
        return raw.pop()
    dtype = NULL
    for schema in holders:
        this = schema.dtype(name)
        unified = unify_dtypes(dtype, this)
        if unified is None:
            raise _conflict(name, holders, schema, dtype, this)
        dtype = unified
    return dtype


def _conflict(name: str, holders: list[SourceSchema], schema: SourceSchema, before: str, this: str) -> DataError:
    """Numbers in one input, something else in another: name the file, column and line."""
    numeric_here = is_numeric_dtype(this)
    other = next(s for s in holders if s is not schema and s.dtype(name) != NULL)
    words_in, numbers_in = (other, schema) if numeric_here else (schema, other)
    words_type = words_in.dtype(name)
    if words_type == "String":
        located = words_in.first_word(name)
        where = f" has the value '{clip(located[1])}' at line {located[0]}, which is not a number," if located else " holds text"
        return DataError(
            f"{words_in.source.display}: column '{name}'{where} but holds numbers in {numbers_in.source.display}",
            hint=f"fix or blank that cell, add it to --null-values, or --exclude '{name}'",
        )
    return DataError(
        f"{schema.source.display}: column '{name}' is {this} here but {before} in {other.source.display}",
        hint=f"give it one type in every input, or --exclude '{name}'",
    )
