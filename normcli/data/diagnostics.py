"""Polars' read failures turned into one line that names the file, the column and the line.

Polars says *what* went wrong ("could not parse `oops` as dtype f64 at column 'a'") but rarely
*where*. On the error path only, normcli takes a second look — the file again, or the chunk of a
stream still in memory — with Python's csv module or a one-column Polars scan, and reports the
first offending line with a hint on how to fix it.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING

from normcli.data.formats import BOOLEAN_CARRIER, ReadOptions, cleaned_text
from normcli.data.inputs import Source, describe
from normcli.errors import WRITE_ERRNOS, DataError

if TYPE_CHECKING:
    import polars as pl

_PARSE_ERROR = re.compile(
    r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]+)` at column '(?P<column>.*?)'"
    r"|conversion from `str` to `(?P<dtype2>[^`]+)` failed in column '(?P<column2>.*?)' for \d+ out of \d+ values: \[\"(?P<value2>.*?)\"",
    re.DOTALL,
)
"""Polars' messages for a cell that is not of its column's type: from the CSV parser, or from the
cast of a trimmed numeric column (see :class:`~normcli.data.formats.ReadOptions`)."""
_STRUCTURE_WORDS = ("more fields", "not properly escaped", "malformed", "unterminated", "does not match number of columns")
_COMPRESSION_WORDS = (
    "unexpected end of file", "corrupt deflate", "decompress", "incomplete frame", "data corruption",
    "unknown frame descriptor", "checksum", "invalid gzip header",
)
_DTYPE_WORDS = {
    "f64": "a number", "f32": "a number", "i64": "an integer", "i32": "an integer", "i128": "a 128-bit integer",
    BOOLEAN_CARRIER: "true or false", "bool": "true or false",
}
_DTYPE_NAMES = {
    "f64": "Float64", "f32": "Float32", "i64": "Int64", "i32": "Int32", "u64": "UInt64", "i128": "Int128",
    "bool": "Boolean", BOOLEAN_CARRIER: "Boolean",
}
_WRITE_ERRNOS = WRITE_ERRNOS
_OS_ERROR_CODE = re.compile(r"\(os error (\d+)\)")


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return clip(line.strip(), 200)
    return "unknown error"


def write_failure(exc: BaseException) -> str | None:
    """What went wrong if ``exc`` is a failed write (disk full, file-size limit...), else None.

    Polars reports OS errors inside its own exceptions as text ending in ``(os error 28)``.
    """
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None:
        match = _OS_ERROR_CODE.search(str(exc))
        code = int(match.group(1)) if match else None
    return _WRITE_ERRNOS.get(code) if code is not None else None


def is_broken_pipe(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or "Broken pipe" in str(exc)


@contextlib.contextmanager
def polars_errors(sources: Sequence[Source], options: ReadOptions) -> Iterator[None]:
    """Turn Polars' parse and I/O errors while reading ``sources`` into a one-line DataError."""
    import polars as pl

    try:
        yield
    except (pl.exceptions.PolarsError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, pl.exceptions.PolarsError) and is_broken_pipe(exc):
            raise
        raise translate_read_error(exc, sources, options) from exc


# --------------------------------------------------------------------------- what went wrong


def translate_read_error(exc: BaseException, sources: Sequence[Source], options: ReadOptions) -> BaseException:
    """A user-facing error for a Polars failure while reading files."""
    files = [s for s in sources if s.path is not None]
    urls = [s.path for s in files if s.is_url and s.path is not None]
    if urls and isinstance(exc, OSError):  # the object store failed, not the data
        from normcli.data.storage import failure

        url = next((u for u in urls if u in str(exc)), urls[0] if len(urls) == 1 else describe(sources))
        located = failure(exc, url)
        if located is not None:
            return located
    return _translate(exc, describe(sources), options, [_FileText(s, options) for s in files])


def translate_chunk_error(
    exc: BaseException, source: Source, options: ReadOptions, names: list[str], chunk: bytes, line: int
) -> BaseException:
    """A user-facing error for a Polars failure on one chunk of a stream (still in memory)."""
    return _translate(exc, source.display, options, [_ChunkText(source, options, names, chunk, line)])


def _translate(exc: BaseException, where: str, options: ReadOptions, texts: list[_Text]) -> BaseException:
    text = str(exc)
    if is_broken_pipe(exc):
        return BrokenPipeError(text)
    if write_failure(exc) is not None:
        return exc  # a failed write, not a bad read: whoever writes names the output
    lowered = text.lower()
    match = _PARSE_ERROR.search(text)
    reported = (match.group("value") if match.group("value") is not None else match.group("value2")) if match else ""
    if any(word in lowered for word in _STRUCTURE_WORDS) or any(c in reported for c in "\"\n"):
        for candidate in texts:
            structural = candidate.structure()
            if structural is not None:
                if candidate.compression is not None:  # deflate is checked only at its end: garbage parses first
                    structural.hint = f"{structural.hint}; or the compressed file is damaged (gzip -t checks it)"
                return structural
    if match:
        column = match.group("column") if match.group("column") is not None else match.group("column2")
        value = reported
        dtype = match.group("dtype") or match.group("dtype2")
        place = "(line unknown)"
        for candidate in texts:
            located = candidate.unparsable(column, dtype, value)
            if located is not None:
                where, line, value, repeats_header = located
                if repeats_header:
                    return repeated_header(where, line)
                place = f"at line {line}"
                break
        return DataError(
            f"{where}: column '{column}' has the value '{clip(value)}' {place}, "
            f"which is not {_DTYPE_WORDS.get(dtype, dtype)}",
            hint=f"fix or blank that cell, add '{clip(value)}' to --null-values, or --exclude '{column}'",
        )
    first = first_line(text)
    if "more fields than defined" in lowered or "found more fields" in lowered:
        return DataError(f"{where}: a row has more fields than the header", hint="check for ragged rows or a wrong --delimiter")
    if "invalid utf-8" in lowered or "invalid utf8" in lowered:
        return DataError(f"{where}: is not valid UTF-8", hint="convert it first, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv")
    if "empty csv" in lowered or _is_no_data(exc):
        return DataError(f"{where}: file is empty", hint="expected a header row and data")
    if "unterminated" in lowered or "quote" in lowered or "malformed" in lowered:
        return DataError(f"{where}: malformed CSV: {first}", hint="check the CSV quoting")
    for candidate in texts:
        located = candidate.bad_json()
        if located is not None:
            return located
    if any(word in lowered for word in _COMPRESSION_WORDS):
        return DataError(
            f"{where}: compressed data ends unexpectedly or is corrupt",
            hint="the file is probably truncated; copy or download it again",
        )
    if "out of specification" in lowered or "parquet" in lowered:
        return DataError(
            f"{where}: not a complete Parquet file ({first})",
            hint="the file is probably truncated or corrupt; write or copy it again",
        )
    return DataError(f"{where}: cannot read: {first}")


def repeated_header(where: str, line: int) -> DataError:
    """A data line that repeats the header: CSV files concatenated with their header lines."""
    return DataError(
        f"{where}: line {line} repeats the header line: CSV files concatenated with their headers?",
        hint="name the files (or a glob such as 'part-*.csv') instead of concatenating them, "
        "or keep the first header only: awk 'FNR > 1 || NR == 1' part-*.csv",
    )


def _first_unparsable(
    cells: pl.LazyFrame, column: str, dtype: str, value: str | None, options: ReadOptions, trimmed: bool | None = None
) -> tuple[int, str, list[str]] | None:
    """(row index, the cell, the whole row) of the first cell of ``column`` (read as text, no null
    tokens) that is not of type ``dtype`` as normcli reads it, or that is the ``value`` Polars
    reported. A trimmed column (``' 5 '``, ``+5``; ``trimmed`` None: if inference made it one)
    converts with spaces stripped both sides; any other one as Polars' CSV reader parses a number:
    leading spaces and tabs skipped, trailing not."""
    import polars as pl

    text = pl.col(column)
    if column in options.trimmed if trimmed is None else trimmed:
        cleaned = text.str.strip_chars()
        cleaned = pl.when(~cleaned.is_in([*options.null_values, ""])).then(cleaned)
    else:
        cleaned = cleaned_text(column, options.null_values)
    if _DTYPE_NAMES.get(dtype) == "Boolean":
        parsed = cleaned.str.to_lowercase().is_in(["true", "false"])
    else:
        parsed = cleaned.cast(getattr(pl, _DTYPE_NAMES.get(dtype, "Float64")), strict=False).is_not_null()
    bad = (cleaned.is_not_null() & ~parsed) | (text == value if value is not None else pl.lit(False))
    row = "\x00row"
    found = cells.with_row_index(row).filter(text.is_not_null() & bad).head(1).collect()
    if not found.height:
        return None
    values = found.row(0)
    return int(values[0]), str(found[column][0]), [str(v) for v in values[1:]]


def _is_no_data(exc: BaseException) -> bool:
    import polars as pl

    return isinstance(exc, pl.exceptions.NoDataError)


# --------------------------------------------------------------------------- second looks


class _Text:
    """The text of one input for a second look: lines of a file, or of a stream's chunk."""

    display: str
    format_name: str
    options: ReadOptions
    compression: str | None = None
    first_line_number: int = 1
    has_header: bool = True

    def open(self) -> IO[str] | None:
        raise NotImplementedError

    def separator(self) -> str:
        raise NotImplementedError

    def structure(self) -> DataError | None:
        """The first structural CSV problem (a long row, an unclosed quote) with its line."""
        import csv

        if self.format_name not in ("csv", "tsv") or self.compression not in (None, "gzip"):
            return None
        try:
            handle = self.open()
            if handle is None:
                return None
            with handle:
                csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # long cells are data, not faults
                reader = csv.reader(handle, delimiter=self.separator(), strict=True)
                width = None if self.has_header else self.width()
                offset = self.first_line_number - 1
                while True:
                    start = reader.line_num + 1 + offset
                    try:
                        row = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:
                        if "end of data" in str(exc) or "EOF" in str(exc):
                            return DataError(
                                f"{self.display}: the quote opened at line {start} is never closed",
                                hint="close or escape the quote (\"\" inside a quoted value)",
                            )
                        return DataError(
                            f"{self.display}: malformed CSV at line {reader.line_num + offset}: {exc}",
                            hint="check the quoting of that line",
                        )
                    if not row:
                        continue
                    if width is None:
                        width = len(row)
                    elif len(row) > width:
                        return DataError(
                            f"{self.display}: line {start} has {len(row)} fields but the header has {width}",
                            hint="fix that row, quote values that contain the delimiter, or check --delimiter",
                        )
        except (OSError, EOFError, csv.Error, UnicodeDecodeError):
            return None
        return None

    def width(self) -> int | None:
        return None

    def unparsable(
        self, column: str, dtype: str, value: str | None = None, trimmed: bool | None = None
    ) -> tuple[str, int, str, bool] | None:
        """(input, line, value, whether that line repeats the header) of the first cell of
        ``column`` that is not of type ``dtype``: the cell Polars reported (``value``), or one
        that does not convert (trimmed of spaces if ``trimmed``; see :func:`_first_unparsable`)."""
        return None

    def _first_bad_cell(
        self, cells_of: Callable[[], pl.LazyFrame], column: str, dtype: str, value: str | None, trimmed: bool | None, first_line: int
    ) -> tuple[str, int, str, bool] | None:
        """:meth:`unparsable` among the text cells ``cells_of()`` reads, whose first row is at line
        ``first_line``; None if there is no such cell, or if the cells cannot be read."""
        import polars as pl

        try:
            cells = cells_of()
            found = _first_unparsable(cells, column, dtype, value, self.options, trimmed)
            if found is None:
                return None
            header = cells.collect_schema().names()
        except (pl.exceptions.PolarsError, OSError):
            return None
        index, cell, row = found
        return self.display, first_line + index, cell, self.options.has_header and row == header

    def bad_json(self) -> DataError | None:
        """The first line of an NDJSON input that is not a JSON object."""
        import json

        if self.format_name != "ndjson" or self.compression not in (None, "gzip"):
            return None
        try:
            handle = self.open()
            if handle is None:
                return None
            with handle:
                for number, line in enumerate(handle, start=self.first_line_number):
                    if not line.strip():
                        continue
                    try:
                        value = json.loads(line.strip(), parse_float=_float64, parse_int=_int64)
                    except json.JSONDecodeError as exc:
                        problem = f"is not valid JSON ({exc.msg} at column {exc.colno})"
                    except _OutOfRange as exc:
                        return DataError(
                            f"{self.display}: line {number} has the number {clip(str(exc))}, beyond what a float64 holds",
                            hint="write it as a string, or as null",
                        )
                    except RecursionError:
                        problem = "is nested too deeply"
                    else:
                        if isinstance(value, dict):
                            continue
                        problem = "is not a JSON object"
                    return DataError(f"{self.display}: line {number} {problem}", hint="NDJSON needs one JSON object per line")
        except (OSError, EOFError, UnicodeDecodeError):
            return None
        return None


class _OutOfRange(ValueError):
    """A JSON number Polars' reader refuses: beyond float64 range."""


def _float64(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _OutOfRange(text)
    return value


def _int64(text: str) -> int:
    """Polars reads integers beyond 64 bits as floats: only those beyond float64 fail. (Only the
    line's structure is looked at, so the value is not built: Python limits int() to 4,300 digits.)"""
    if len(text) > 300 and float(text) in (float("inf"), float("-inf")):
        raise _OutOfRange(text)
    return 0


class _FileText(_Text):
    def __init__(self, source: Source, options: ReadOptions) -> None:
        self.source = source
        self.options = options
        self.display = source.display
        self.format_name = source.format.name
        self.compression = source.compression

    def separator(self) -> str:
        return self.source.format.delimiter(self.options)

    def open(self) -> IO[str]:
        import gzip

        assert self.source.path is not None
        if self.source.is_url:
            from normcli.data.storage import open_url

            raw = open_url(self.source.path, self.options.storage)
            binary = gzip.open(raw) if self.compression == "gzip" else raw
            return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")  # type: ignore[arg-type]
        if self.compression == "gzip":
            return gzip.open(self.source.path, "rt", encoding="utf-8-sig", errors="replace", newline="")
        return open(self.source.path, encoding="utf-8-sig", errors="replace", newline="")

    def unparsable(
        self, column: str, dtype: str, value: str | None = None, trimmed: bool | None = None
    ) -> tuple[str, int, str, bool] | None:
        """See :meth:`_Text.unparsable`. Reads the file as text (one Polars scan) and finds the
        first such cell. The line number assumes no quoted field spans lines before it."""
        if self.format_name not in ("csv", "tsv"):
            return None
        return self._first_bad_cell(
            lambda: self.source.format.scan_text(self.source.path, self.options, raw=True),  # type: ignore[arg-type]
            column, dtype, value, trimmed, 2 if self.options.has_header else 1,
        )


class _ChunkText(_Text):
    def __init__(self, source: Source, options: ReadOptions, names: list[str], chunk: bytes, line: int) -> None:
        self.source = source
        self.options = options
        self.names = names
        self.chunk = chunk
        self.display = source.display
        self.format_name = source.format.name
        self.first_line_number = line
        self.has_header = False

    def separator(self) -> str:
        return self.source.format.delimiter(self.options)

    def width(self) -> int | None:
        return len(self.names) or None

    def open(self) -> IO[str]:
        return io.StringIO(self.chunk.decode("utf-8", errors="replace"), newline="")

    def unparsable(
        self, column: str, dtype: str, value: str | None = None, trimmed: bool | None = None
    ) -> tuple[str, int, str, bool] | None:
        """See :meth:`_Text.unparsable`: the chunk, still in memory, read as text by Polars."""
        import polars as pl

        if self.format_name not in ("csv", "tsv") or column not in self.names:
            return None
        return self._first_bad_cell(
            lambda: pl.read_csv(
                self.chunk, has_header=False, new_columns=self.names, separator=self.separator(),
                schema=dict.fromkeys(self.names, pl.String), raise_if_empty=False,
            ).lazy(),
            column, dtype, value, trimmed, self.first_line_number,
        )
