"""Finding, sniffing and lazily scanning tabular inputs; writing outputs atomically.

Everything that touches the file system for data lives here, so the rest of normcli works on
Polars ``LazyFrame`` objects and never worries about globs, stdin, formats or partial files.

* Inputs are paths, globs or ``-`` (stdin). Stdin is spooled to a temporary file first, because a
  streaming scan needs a seekable source; memory stays bounded either way.
* The format comes from the extension (``.csv .tsv .parquet .ndjson .jsonl`` and ``.csv.gz``,
  ``.csv.zst`` ...) unless ``--format`` says otherwise; the first bytes are checked, so a Parquet
  file named ``.csv`` is reported instead of parsed as garbage.
* Outputs go to a temporary file in the target's folder and are renamed into place only when the
  whole write succeeded (:func:`atomic_path`), so an interrupted run never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from normcli.errors import DataError, UsageError

if TYPE_CHECKING:
    import polars as pl

FORMATS = ("csv", "tsv", "parquet", "ndjson")
"""Formats normcli reads and writes; compression of text formats is told by the extension."""

DEFAULT_NULL_VALUES = ("NA", "N/A", "NaN", "nan", "null", "NULL")
"""Cell texts read as missing by default, besides the empty cell."""

INFER_SCHEMA_ROWS = 10_000
"""Rows read to infer CSV column types; later surprises are caught and reported, never ignored."""

TEMP_SUFFIX = ".normcli-tmp"
"""Suffix of the temporary files written next to a target before the final rename."""

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
_COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_FLOAT_WORDS = ("nan", "NaN", "NAN", "inf", "-inf", "+inf", "Inf", "-Inf", "infinity", "-infinity")
_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PARSE_ERROR = re.compile(
    r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]+)` at column '(?P<column>.*?)'"
    r".*?offset in the file is (?P<offset>\d+) bytes",
    re.DOTALL,
)


@dataclass(frozen=True)
class ReadOptions:
    """How to read inputs: the format override, missing-value tokens and CSV separator."""

    format: str | None = None
    null_values: tuple[str, ...] = DEFAULT_NULL_VALUES
    separator: str | None = None

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise UsageError(
                f"unknown format '{self.format}'", hint=f"choose one of: {', '.join(FORMATS)}"
            )
        if self.separator is not None and len(self.separator.encode()) != 1:
            raise UsageError(
                f"--separator must be a single one-byte character, not '{self.separator}'"
            )


@dataclass(frozen=True)
class Source:
    """One input: where it is, what the user called it, and how to parse it."""

    path: Path
    display: str
    format: str
    compression: str | None = None


@dataclass
class Inputs:
    """The resolved inputs of one command, with helpers to infer their schema and scan them."""

    sources: list[Source]
    options: ReadOptions
    _temp_files: list[Path] = field(default_factory=list, repr=False)
    _inferred: pl.Schema | None = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        """The inputs as the user named them (``<stdin>`` for a pipe)."""
        return [s.display for s in self.sources]

    @property
    def paths(self) -> list[Path]:
        """The files actually read (stdin's spool file included)."""
        return [s.path for s in self.sources]

    def describe(self) -> str:
        """A short name of the inputs for messages: the file, or the first file and a count."""
        if len(self.sources) == 1:
            return self.sources[0].display
        return f"{self.sources[0].display} (+{len(self.sources) - 1} more)"

    def scan(
        self,
        schema_overrides: dict[str, pl.DataType] | None = None,
        *,
        for_inference: bool = False,
    ) -> pl.LazyFrame:
        """A lazy frame over all inputs, concatenated in order.

        ``schema_overrides`` forces the types of CSV columns (numeric columns are read as Float64 so a
        column that starts with integers and has a decimal at row 500,000 still parses).
        """
        import polars as pl

        options = self.options
        full_schema = None
        if for_inference:
            extra = tuple(t for t in _FLOAT_WORDS if t not in options.null_values)
            options = replace(options, null_values=options.null_values + extra)
        elif self._inferred is not None and self._is_text():
            # types are known from schema(): spare Polars inferring them again on every query
            overrides = schema_overrides or {}
            full_schema = {name: overrides.get(name, dtype) for name, dtype in self._inferred.items()}
        frames = [
            _scan_one(group, options, schema_overrides, full_schema) for group in _by_format(self)
        ]
        if len(frames) == 1:
            return frames[0]
        return pl.concat(frames, how="vertical_relaxed")

    def _is_text(self) -> bool:
        return all(s.format in ("csv", "tsv") for s in self.sources)

    def schema(self) -> pl.Schema:
        """Column names and types as Polars infers them (from the first rows for text formats).

        Words that are valid floats (``nan``, ``inf``) do not make a text column look non-numeric:
        they are ignored for inference, and parse as NaN/inf once the column is read as Float64.
        """
        with polars_errors(self):
            schema = self.scan(for_inference=True).collect_schema()
            # read as text: a typed head() may still parse (and fail on) rows far below
            as_text = {name: _string_type() for name in schema.names()} if self._is_text() else None
            self._inferred = schema
            has_rows = self.scan(as_text).head(1).collect().height > 0
        _check_column_names(schema.names(), self)
        _check_separator(schema.names(), self)
        if not has_rows:  # an unclosed quote in the first row swallows the file: say so
            raise _locate_structure(self) or DataError(
                f"{self.describe()}: has no data rows", hint="expected at least one row below the header"
            )
        return schema


def _string_type() -> pl.DataType:
    import polars as pl

    return pl.String


def _by_format(inputs: Inputs) -> list[list[Source]]:
    """Consecutive runs of sources sharing format and compression, scanned together."""
    groups: list[list[Source]] = []
    for source in inputs.sources:
        if groups and (groups[-1][0].format, groups[-1][0].compression) == (
            source.format,
            source.compression,
        ):
            groups[-1].append(source)
        else:
            groups.append([source])
    return groups


def _scan_one(
    sources: list[Source],
    options: ReadOptions,
    schema_overrides: dict[str, pl.DataType] | None,
    full_schema: dict[str, pl.DataType] | None = None,
) -> pl.LazyFrame:
    import polars as pl

    paths = [str(s.path) for s in sources]
    fmt = sources[0].format
    if fmt == "parquet":
        return pl.scan_parquet(paths, glob=False)
    if fmt == "ndjson":
        return pl.scan_ndjson(paths, infer_schema_length=INFER_SCHEMA_ROWS)
    separator = options.separator or ("\t" if fmt == "tsv" else ",")
    return pl.scan_csv(
        paths,
        separator=separator,
        null_values=list(options.null_values),
        infer_schema_length=INFER_SCHEMA_ROWS,
        schema=full_schema,
        schema_overrides=None if full_schema else (schema_overrides or None),
        glob=False,
        raise_if_empty=True,
    )


def _check_column_names(names: list[str], inputs: Inputs) -> None:
    where = inputs.describe()
    for name in names:
        if name == "":
            raise DataError(
                f"{where}: a column has an empty name",
                hint="give every column a header name",
            )
        match = re.fullmatch(r"(.*)_duplicated_\d+", name, re.DOTALL)
        if match and match.group(1) in names:
            raise DataError(
                f"{where}: duplicate column name '{match.group(1)}'",
                hint="rename the columns so each header is unique",
            )


_SEPARATOR_WORDS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


def _check_separator(names: list[str], inputs: Inputs) -> None:
    """Refuse a lone column whose name holds another usual separator: the file was split wrongly.

    ``--separator`` given explicitly turns the check off (a one-column file may contain ';').
    """
    if len(names) != 1 or inputs.options.separator is not None:
        return
    if not all(s.format in ("csv", "tsv") for s in inputs.sources):
        return
    used = "\t" if inputs.sources[0].format == "tsv" else ","
    for candidate, word in _SEPARATOR_WORDS.items():
        if candidate != used and len([p for p in names[0].split(candidate) if p]) >= 2:
            raise DataError(
                f"{inputs.describe()}: found one column named '{_clip(names[0])}'; "
                f"the file looks {word}-separated",
                hint="pass --format tsv" if candidate == "\t" else f"pass --separator '{candidate}'",
            )


def detect_format(
    name: str, override: str | None, option: str = "--format"
) -> tuple[str, str | None]:
    """The (format, compression) of a file from its extension, or the ``--format`` override."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    compression = None
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        compression = _COMPRESSIONS[suffixes.pop()]
    if override is not None:
        return override, compression
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]], compression
    raise UsageError(
        f"{name}: cannot tell the format from the extension",
        hint=f"pass {option} ({', '.join(FORMATS)})",
    )


def expand_patterns(patterns: Sequence[str]) -> list[str]:
    """Paths from the user's arguments: globs expanded (sorted), ``-`` kept, order preserved."""
    paths: list[str] = []
    for pattern in patterns:
        if pattern != "-" and glob.has_magic(pattern) and not os.path.exists(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise DataError(f"no file matches '{pattern}'", hint="check the pattern and folder")
            paths.extend(matches)
        else:
            paths.append(pattern)
    return paths


def named_files(patterns: Sequence[str]) -> list[Path]:
    """The files among the user's input arguments (globs expanded, ``-`` left out)."""
    return [Path(name) for name in expand_patterns(patterns) if name != "-"]


def _sniff(path: Path, display: str, fmt: str, compression: str | None) -> None:
    """Refuse a file whose first bytes contradict its format, before Polars misreads it."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    is_parquet = head == _PARQUET_MAGIC
    if not head:
        hint = {"parquet": "expected a Parquet file", "ndjson": "expected one JSON object per line"}.get(
            fmt, "expected a header row and data"
        )
        raise DataError(f"{display}: file is empty", hint=hint)
    if fmt == "parquet" and not is_parquet:
        raise DataError(
            f"{display}: not a Parquet file (no PAR1 header)",
            hint="if it is CSV, rename it or pass --format csv",
        )
    if fmt != "parquet" and is_parquet:
        raise DataError(
            f"{display}: is a Parquet file, not {fmt.upper()}",
            hint="rename it to .parquet or pass --format parquet",
        )
    if compression is None and (head[:2] == _GZIP_MAGIC or head == _ZSTD_MAGIC):
        kind = "gzip" if head[:2] == _GZIP_MAGIC else "zstd"
        raise DataError(
            f"{display}: is {kind}-compressed but has no compressed extension",
            hint=f"rename it to end in .{fmt}.{'gz' if kind == 'gzip' else 'zst'}",
        )


def _check_readable(path: Path, display: str) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataError(f"{display}: no such file", hint="check the path") from None
    except PermissionError:
        raise DataError(f"{display}: permission denied", hint="check the file's permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{display}: is a directory", hint="name the files inside it, or a glob")
    if not os.access(path, os.R_OK):
        raise DataError(f"{display}: permission denied", hint="check the file's permissions")


@contextlib.contextmanager
def open_inputs(
    patterns: Sequence[str],
    options: ReadOptions,
    *,
    stdin: IO[bytes] | None = None,
    stdin_is_terminal: bool = False,
) -> Iterator[Inputs]:
    """Resolve the user's input arguments into :class:`Inputs`; spool stdin and clean up after.

    No arguments means stdin. A terminal on stdin with no input is a usage error rather than a hang.
    """
    patterns = list(patterns) or ["-"]
    temp_files: list[Path] = []
    try:
        sources = []
        for name in expand_patterns(patterns):
            if name == "-":
                if stdin_is_terminal:
                    raise UsageError(
                        "no input given and stdin is a terminal",
                        hint="name an input file, or pipe data in: normcli ... < data.csv",
                    )
                fmt = options.format or "csv"
                spool = _spool_stdin(stdin if stdin is not None else sys.stdin.buffer)
                temp_files.append(spool)
                sources.append(Source(spool, "<stdin>", fmt, None))
                continue
            path = Path(name)
            _check_readable(path, name)
            fmt, compression = detect_format(name, options.format)
            _sniff(path, name, fmt, compression)
            sources.append(Source(path, name, fmt, compression))
        yield Inputs(sources, options, temp_files)
    finally:
        for path in temp_files:
            path.unlink(missing_ok=True)


def _spool_stdin(stream: IO[bytes]) -> Path:
    fd, name = tempfile.mkstemp(prefix="normcli-stdin-", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as spool:
            shutil.copyfileobj(stream, spool, length=1 << 20)
    except BaseException:  # Ctrl-C mid-copy: the caller never learns the name, so remove it here
        os.unlink(name)
        raise
    return Path(name)


# --------------------------------------------------------------------------- Polars errors


@contextlib.contextmanager
def polars_errors(inputs: Inputs) -> Iterator[None]:
    """Turn Polars' parse and I/O errors into one-line :class:`DataError` naming file and row."""
    import polars as pl

    try:
        yield
    except (pl.exceptions.PolarsError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, pl.exceptions.PolarsError):
            if _is_broken_pipe(exc):
                raise
        raise translate_read_error(exc, inputs) from exc


_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EFBIG: "file too large (a file-size limit, ulimit -f, was reached)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}
_OS_ERROR_CODE = re.compile(r"\(os error (\d+)\)")


def write_failure(exc: BaseException) -> str | None:
    """What went wrong if ``exc`` is a failed write (disk full, file-size limit...), else None.

    Polars reports OS errors inside its own exceptions as text ending in ``(os error 28)``.
    """
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None:
        match = _OS_ERROR_CODE.search(str(exc))
        code = int(match.group(1)) if match else None
    return _WRITE_ERRNOS.get(code) if code is not None else None


def _is_broken_pipe(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or "Broken pipe" in str(exc)


def translate_read_error(exc: BaseException, inputs: Inputs) -> DataError | BaseException:
    """A user-facing error for a Polars failure while reading ``inputs``."""
    text = str(exc)
    if _is_broken_pipe(exc):
        return BrokenPipeError(text)
    failure = write_failure(exc)
    if failure is not None:
        return DataError(f"cannot write the output: {failure}")
    where = inputs.describe()
    lowered = text.lower()
    match = _PARSE_ERROR.search(text)
    if any(word in lowered for word in _STRUCTURE_WORDS) or (
        match and any(c in match.group("value") for c in "\"\n")
    ):
        structural = _locate_structure(inputs)
        if structural is not None:
            return structural
    if match:
        column, value = match.group("column"), match.group("value")
        located = _locate_unparsable(inputs, column, match.group("dtype"))
        if located is not None:
            where, line, value = located
            place = f"at line {line}"
        else:
            place = "(line unknown)"
        return DataError(
            f"{where}: column '{column}' has the value '{_clip(value)}' {place}, "
            f"which is not {_DTYPE_WORDS.get(match.group('dtype'), match.group('dtype'))}",
            hint=f"fix or blank that cell, add '{_clip(value)}' to --null-values, "
            f"or --exclude '{column}'",
        )
    first = _first_line(text)
    if "more fields than defined" in lowered or "found more fields" in lowered:
        return DataError(
            f"{where}: a row has more fields than the header",
            hint="check for ragged rows or a wrong --separator",
        )
    if "invalid utf-8" in lowered or "invalid utf8" in lowered:
        return DataError(
            f"{where}: is not valid UTF-8",
            hint="convert it first, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv",
        )
    if "empty csv" in lowered or isinstance(exc, _no_data_error()):
        return DataError(f"{where}: file is empty", hint="expected a header row and data")
    if "unterminated" in lowered or "quote" in lowered or "malformed" in lowered:
        return DataError(f"{where}: malformed CSV: {first}", hint="check the CSV quoting")
    if any(s.format == "ndjson" for s in inputs.sources):
        located = _locate_bad_json_line(inputs)
        if located is not None:
            return located
    if "unexpected end of file" in lowered or "corrupt deflate" in lowered:
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


_STRUCTURE_WORDS = ("more fields", "not properly escaped", "malformed", "unterminated")


def _locate_bad_json_line(inputs: Inputs) -> DataError | None:
    """The first line of an NDJSON input that is not a JSON object (error path only)."""
    import gzip
    import json

    for source in inputs.sources:
        if source.format != "ndjson" or source.compression not in (None, "gzip"):
            continue
        opener = gzip.open if source.compression == "gzip" else open
        try:
            with opener(source.path, "rt", encoding="utf-8", errors="replace") as lines:
                for number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        value = json.loads(line.strip())
                    except json.JSONDecodeError as exc:
                        problem = f"is not valid JSON ({exc.msg} at column {exc.colno})"
                    else:
                        if isinstance(value, dict):
                            continue
                        problem = "is not a JSON object"
                    return DataError(
                        f"{source.display}: line {number} {problem}",
                        hint="NDJSON needs one JSON object per line",
                    )
        except (OSError, EOFError):
            continue
    return None


def _locate_structure(inputs: Inputs) -> DataError | None:
    """The first structural CSV problem (a long row, an unclosed quote) with its file and line.

    Polars says what is wrong but not where; this second look, only on the error path, reads the
    text inputs with Python's csv module (plain or gzip) and stops at the first problem.
    """
    import csv
    import gzip

    for source in inputs.sources:
        if source.format not in ("csv", "tsv") or source.compression not in (None, "gzip"):
            continue
        separator = inputs.options.separator or ("\t" if source.format == "tsv" else ",")
        opener = gzip.open if source.compression == "gzip" else open
        try:
            with opener(source.path, "rt", encoding="utf-8-sig", errors="replace", newline="") as f:
                reader = csv.reader(f, delimiter=separator, strict=True)
                width = None
                while True:
                    start = reader.line_num + 1
                    try:
                        row = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:
                        if "end of data" in str(exc) or "EOF" in str(exc):
                            return DataError(
                                f"{source.display}: the quote opened at line {start} is never closed",
                                hint="close or escape the quote (\"\" inside a quoted value)",
                            )
                        return DataError(
                            f"{source.display}: malformed CSV at line {reader.line_num}: {exc}",
                            hint="check the quoting of that line",
                        )
                    if not row:
                        continue
                    if width is None:
                        width = len(row)
                    elif len(row) > width:
                        return DataError(
                            f"{source.display}: line {start} has {len(row)} fields but the header "
                            f"has {width}",
                            hint="fix that row, quote values that contain the separator, "
                            "or check --separator",
                        )
        except (OSError, EOFError, csv.Error):
            continue
    return None


def _no_data_error() -> type[BaseException]:
    import polars as pl

    return pl.exceptions.NoDataError


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return _clip(line.strip(), 200)
    return "unknown error"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_DTYPE_WORDS = {"f64": "a number", "f32": "a number", "i64": "an integer", "i32": "an integer"}
_DTYPE_NAMES = {"f64": "Float64", "f32": "Float32", "i64": "Int64", "i32": "Int32", "u64": "UInt64"}


def _locate_unparsable(inputs: Inputs, column: str, dtype: str) -> tuple[str, int, str] | None:
    """(file, line, value) of the first cell of ``column`` that does not parse as ``dtype``.

    Polars' parse error names the column but not the row; this second look (only on the error
    path) reads that one column as text and finds the first cell the cast rejects. The line number
    assumes no quoted field spans lines before it.
    """
    import polars as pl

    target = getattr(pl, _DTYPE_NAMES.get(dtype, "Float64"))
    for source in inputs.sources:
        if source.format not in ("csv", "tsv"):
            continue
        try:
            cells = pl.scan_csv(
                str(source.path),
                separator=inputs.options.separator or ("\t" if source.format == "tsv" else ","),
                null_values=list(inputs.options.null_values),
                infer_schema=False,
                glob=False,
            ).select(pl.col(column)).with_row_index("__row__")
            text = pl.col(column)
            bad = (
                cells.filter(text.is_not_null() & text.cast(target, strict=False).is_null())
                .head(1)
                .collect()
            )
        except (pl.exceptions.PolarsError, OSError):
            return None
        if bad.height:
            return source.display, int(bad["__row__"][0]) + 2, str(bad[column][0])
    return None


# --------------------------------------------------------------------------- writing


def output_format(path: str | None, override: str | None) -> tuple[str, str | None]:
    """Format and compression for an output: ``--output-format``, else the extension, else CSV."""
    if override is not None and override not in FORMATS:
        raise UsageError(
            f"unknown output format '{override}'", hint=f"choose one of: {', '.join(FORMATS)}"
        )
    if path is None or path == "-":
        return override or "csv", None
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory", hint="name an output file")
    return detect_format(path, override, "--output-format")


def check_output_target(target: str, inputs: Sequence[Path] = ()) -> Path:
    """Check before any work that ``target`` can be written and is none of the inputs."""
    path = Path(target)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(f"{target}: output folder '{folder}' does not exist", hint="create it first")
    if path.is_dir():
        raise DataError(f"{target}: is a directory", hint="name an output file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{target}: folder '{folder}' is not writable", hint="choose another -o")
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(f"{target}: is not writable", hint="choose another -o or fix permissions")
    for source in inputs:
        if path.exists() and source.exists() and os.path.samefile(path, source):
            raise UsageError(
                f"{target}: output is one of the inputs",
                hint="write to a new file; normcli never overwrites its inputs",
            )
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` only if the block succeeds.

    The temporary file is named ``.<target>.<random>.normcli-tmp`` so a leftover after SIGKILL is
    recognisable. On any exception (or KeyboardInterrupt) it is removed and ``target`` is untouched;
    a failed write (disk full, file-size limit) becomes a :class:`DataError` naming ``target``.
    """
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent or Path(".")
        )
    except OSError as exc:
        raise DataError(
            f"cannot write {target}: {exc.strerror or exc}", hint="choose another output"
        ) from None
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        _match_default_permissions(temp)
        os.replace(temp, target)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        failure = write_failure(exc)
        if failure is not None:
            raise DataError(
                f"cannot write {target}: {failure}",
                hint="free some space or choose another output; nothing was changed",
            ) from exc
        raise


def _match_default_permissions(path: Path) -> None:
    """mkstemp creates 0600 files; give the final file the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (temporary file in the same folder, then rename)."""
    with atomic_path(target) as temp:
        temp.write_bytes(data)


def write_text_output(text: str, target: str, stdout: IO[str] | None = None) -> None:
    """Write ``text`` to ``target`` atomically, or to stdout when ``target`` is ``-``."""
    if target == "-":
        stream = stdout if stdout is not None else sys.stdout
        stream.write(text)
        stream.flush()
        return
    check_output_target(target)
    atomic_write_bytes(target, text.encode())


def sink(
    frame: pl.LazyFrame,
    target: Path | IO[bytes],
    fmt: str,
    compression: str | None = None,
) -> None:
    """Stream ``frame`` into ``target`` (a path or a binary stream) in format ``fmt``."""
    if fmt == "parquet":
        frame.sink_parquet(target)
    elif fmt == "ndjson":
        frame.sink_ndjson(target)
    else:
        frame.sink_csv(
            target,
            separator="\t" if fmt == "tsv" else ",",
            compression=compression or "uncompressed",
            check_extension=False,
        )
