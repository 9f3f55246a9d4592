"""The error catalogue of docs/errors.md, case by case.

Every failing case checks the same contract: the documented exit code, exactly one
``normcli: error: ...`` line on stderr holding the case's key words, no traceback, nothing on stdout,
and the working folder byte-for-byte as it was (inputs untouched, no output or temporary file
created, an existing output left as it was). Cases that succeed are checked against numpy.
The case numbers are those of docs/errors.md.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import DATA, NORMCLI, previous_output, snapshot
from normcli.cli import app

runner = CliRunner()
PREVIOUS = b"a previous, complete output\n"


# --------------------------------------------------------------------------- helpers


def invoke(folder: Path, *args: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(folder)
    return runner.invoke(app, list(args))


def assert_clean_error(code: int, stdout: str, stderr: str, expected: int, words: tuple[str, ...]) -> None:
    """Exit code, one error line with the key words, no traceback, nothing on stdout."""
    assert code == expected, stderr
    assert "Traceback" not in stderr and "panicked" not in stderr
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("normcli: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert all(line.startswith("normcli: ") for line in lines), stderr
    for word in words:
        assert word.lower() in errors[0].lower(), f"{word!r} not in {errors[0]!r}"
    assert stdout == ""


def fitted(folder: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Fit ``args`` to stdout and return the stats document (asserting success)."""
    result = invoke(folder, "fit", *args, "-o", "-", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the stats JSON"))


def column(doc: dict, name: str) -> dict:
    return next(c for c in doc["columns"] if c["name"] == name)


def numpy_reference(values) -> dict:
    x = np.asarray(values, dtype=np.float64)
    return {"mean": x.mean(), "std": x.std(), "min": x.min(), "max": x.max()}


# --------------------------------------------------------------------------- builders of inputs


def stray_word_at_row_500000(folder: Path) -> None:
    """600,000 numbers with the word 'oops' as data row 500,000 (line 500,001)."""
    n = 600_000
    values = pl.Series("a", np.arange(n, dtype=np.float64) / 8).cast(pl.String)
    values = values.scatter(499_999, "oops")
    pl.DataFrame({"a": values, "b": np.arange(n)}).write_csv(folder / "stray.csv")


def invoke_plain(folder: Path, *args: str) -> None:
    """Run a command that must succeed, in ``folder`` (to build a case's inputs)."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert runner.invoke(app, [*args, "-q"]).exit_code == 0
    finally:
        os.chdir(cwd)


def stats_doc(folder: Path) -> dict:
    return json.loads((folder / "stats.json").read_text())


def tampered(change: Callable[[dict], None], name: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        doc = stats_doc(folder)
        change(doc)
        (folder / name).write_text(json.dumps(doc))  # json.dumps writes NaN/Infinity literals

    return make


def tampered_groups(change: Callable[[dict], None], name: str = "bad.json") -> Callable[[Path], None]:
    """A per-group stats file (g.csv fitted --by g, an integer column k kept as a second key) changed."""

    def make(folder: Path) -> None:
        (folder / "g.csv").write_text("g,k,x\na,1,1\na,1,3\nb,2,5\nb,2,9\n")
        invoke_plain(folder, "fit", "g.csv", "--by", "g,k", "-o", "g.json")
        doc = json.loads((folder / "g.json").read_text())
        change(doc)
        (folder / name).write_text(json.dumps(doc))

    return make


def set_group(path: tuple, value) -> Callable[[dict], None]:
    """Set ``doc['groups'][path...]`` (the last step may index a list)."""

    def change(doc: dict) -> None:
        place = doc["groups"]
        for step in path[:-1]:
            place = place[step]
        place[path[-1]] = value

    return change


def twice_the_rows(folder: Path) -> None:
    """stats.json claiming 2^63 - 1 rows, and a grouped one whose first group claims as many."""
    doc = stats_doc(folder)
    doc["inputs"]["row_count"] = 2**63 - 1
    (folder / "huge.json").write_text(json.dumps(doc))
    tampered_groups(set_group(("row_count", 0), 2**63 - 1), "huge-group.json")(folder)


def set_first(field: str, value) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc["columns"][0][field] = value

    return change


def text_file(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def classes_csv(folder: Path) -> None:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=300), rng.normal(size=300)
    pl.DataFrame({"x1": x1, "x2": x2, "y": (x1 + x2 > 0).astype(int)}).write_csv(folder / "classes.csv")
    pl.DataFrame({"x1": x1, "x2": x2, "y": np.ones(300, dtype=int)}).write_csv(folder / "one-class.csv")
    y = pl.Series("y", (x1 + x2 > 0).astype(int)).scatter([3, 50], None)
    pl.DataFrame({"x1": x1, "x2": x2, "y": y}).write_csv(folder / "null-target.csv")
    pl.DataFrame({"x1": x1, "x2": x2, "y": [None] * 300}, schema_overrides={"y": pl.Int64}).write_csv(
        folder / "all-null-target.csv"
    )
    pl.DataFrame({"x1": x1 * 1e6, "x2": x2, "y": x1 * 3 + 1e3}).write_csv(folder / "regression.csv")
    pl.DataFrame({"x1": x1[:2], "x2": x2[:2], "y": [0, 1]}).write_csv(folder / "two-rows.csv")
    pl.DataFrame({"x1": x1}).write_csv(folder / "no-x2.csv")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained once by the real command (cases 40 and 41 start from it)."""
    folder = tmp_path_factory.mktemp("model")
    classes_csv(folder)
    result = subprocess.run(
        [*NORMCLI, "train", "classes.csv", "--target", "y", "--epochs", "2", "-o", "model.npz", "-q"],
        cwd=folder, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return folder / "model.npz"


def model_with_object_array(folder: Path) -> None:
    arrays = dict(np.load(folder / "model.npz"))
    first = next(iter(arrays))
    arrays[first] = np.array([{"pickled": True}], dtype=object)
    np.savez(folder / "object-array.npz", **arrays)


def truncated_model(folder: Path) -> None:
    data = (folder / "model.npz").read_bytes()
    (folder / "truncated-model.npz").write_bytes(data[: len(data) // 2])


# --------------------------------------------------------------------------- builders of issue 10's inputs


def npz_entries(path: Path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_npz(path: Path, entries: dict[str, bytes], compressed: frozenset[str] = frozenset()) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in compressed else zipfile.ZIP_STORED)


def npy(array) -> bytes:
    import io as _io

    buffer = _io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def model_metadata(folder: Path) -> dict:
    return json.loads(str(np.load(folder / "model.npz")["metadata"]))


def tampered_model(change: Callable[[dict], None], name: str = "bad.npz") -> Callable[[Path], None]:
    """model.npz with its metadata changed by ``change`` (the arrays as they were)."""

    def make(folder: Path) -> None:
        classes_csv(folder)
        metadata = model_metadata(folder)
        change(metadata)
        entries = npz_entries(folder / "model.npz")
        entries["metadata.npy"] = npy(np.array(json.dumps(metadata)))
        write_npz(folder / name, entries)

    return make


def set_in(path: tuple[str, ...], value) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value

    return change


def model_with_unused_huge_entry(folder: Path) -> None:
    """A valid model plus an entry of 2 GB of zeros, compressed to 2 MB, that nothing needs."""
    import zipfile
    import zlib

    classes_csv(folder)
    entries = npz_entries(folder / "model.npz")
    write_npz(folder / "padded.npz", entries)
    with zipfile.ZipFile(folder / "padded.npz", "a") as archive:
        info = zipfile.ZipInfo("unused.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as handle:
            zeros = bytes(1 << 24)
            for _ in range(128):
                handle.write(zeros)
    del zlib


def model_with_lying_header(folder: Path) -> None:
    """layers.0.W's .npy header claims a billion values in an entry of the right size."""
    classes_csv(folder)
    entries = npz_entries(folder / "model.npz")
    data = entries["layers.0.W.npy"]
    shape = np.load(folder / "model.npz")["layers.0.W"].shape
    lie = data.replace(repr(shape).encode(), b"(1000000000,)", 1)
    entries["layers.0.W.npy"] = lie[: len(data)] if len(lie) >= len(data) else lie + b" " * (len(data) - len(lie))
    write_npz(folder / "lying.npz", entries)


def model_with_compressed_metadata_bomb(folder: Path) -> None:
    """Metadata that claims 400 MB (100 M characters of UTF-32, compressed to 400 KB): refused before it is read."""
    classes_csv(folder)
    entries = npz_entries(folder / "model.npz")
    entries["metadata.npy"] = npy(np.array(" " * (100 << 20)))
    write_npz(folder / "bomb.npz", entries, compressed=frozenset({"metadata.npy"}))


def wide_header(columns: int, name: str = "wide.csv") -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(",".join(f"c{i}" for i in range(columns)) + "\n" + ",".join("1" for _ in range(columns)) + "\n")


def utf16(name: str, encoding: str = "utf-16") -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes((folder / "ok.csv").read_text().encode(encoding))


def gzipped(source: str, name: str) -> Callable[[Path], None]:
    import gzip

    return lambda folder: (folder / name).write_bytes(gzip.compress((folder / source).read_bytes()))


def zstd_cut(name: str, keep: float) -> Callable[[Path], None]:
    """A .csv.zst of 200,000 rows cut to ``keep`` of its bytes (or, keep < 0: its frame header damaged)."""

    def make(folder: Path) -> None:
        import pyarrow as pa

        csv = pl.DataFrame({"a": np.arange(200_000), "b": np.arange(200_000) / 4}).write_csv().encode()
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, "zstd") as stream:
            stream.write(csv)
        data = bytearray(sink.getvalue().to_pybytes())
        if keep < 0:  # the frame header (a frame without a checksum damaged in its data may decompress
            data[4:12] = b"\xff" * 8  # to wrong bytes that still parse: no reader can tell, docs/errors.md)
        else:
            data = data[: int(len(data) * keep)]
        (folder / name).write_bytes(bytes(data))

    return make


def nested_parquet(folder: Path) -> None:
    pl.DataFrame({"a": [1.0, 2.0, 4.0], "l": [[1, 2], [3], []]}).write_parquet(folder / "nested.parquet")
    invoke_plain(folder, "fit", "nested.parquet", "-o", "nested.json")


def stats_with(change: Callable[[dict], None], name: str = "bad.json") -> Callable[[Path], None]:
    return tampered(change, name)


def deep_json(folder: Path) -> None:
    (folder / "deep.json").write_text('{"format": "normcli-stats", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")


def huge_stats(folder: Path) -> None:
    with open(folder / "huge.json", "w") as handle:
        handle.write('{"format": "normcli-stats", "pad": "')
        for _ in range(129):
            handle.write("x" * (1 << 20))
        handle.write('"}')


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Case:
    """One bad input: the command, the expected exit code and key words, and what it needs."""

    id: str
    args: tuple[str, ...]
    code: int
    words: tuple[str, ...]
    files: tuple[str, ...] = ()
    make: Callable[[Path], None] | None = None
    output: str | None = None
    model: bool = False


CASES = [
    # paths and streams
    Case("01-input-missing", ("fit", "missing.csv", "-o", "out.json"), 1, ("missing.csv", "no such file"), output="out.json"),
    Case("01-input-missing-transform", ("transform", "missing.csv", "-s", "stats.json", "-o", "out.csv"), 1, ("missing.csv", "no such file"), output="out.csv"),
    Case("02-glob-matches-nothing", ("fit", "nothing-*.csv", "-o", "out.json"), 1, ("no file matches", "nothing-*.csv"), output="out.json"),
    Case("03-input-is-a-directory", ("fit", "folder", "-o", "out.json"), 1, ("folder", "is a directory"), make=lambda d: (d / "folder").mkdir(), output="out.json"),
    Case("05-output-folder-missing", ("fit", "ok.csv", "-o", "no-such-folder/out.json"), 1, ("does not exist", "no-such-folder")),
    Case("05-output-folder-missing-transform", ("transform", "ok.csv", "-s", "stats.json", "-o", "no-such-folder/out.csv"), 1, ("does not exist",)),
    Case("06-output-is-a-directory", ("transform", "ok.csv", "-s", "stats.json", "-o", "folder"), 1, ("is a directory",), make=lambda d: (d / "folder").mkdir()),
    Case("06-output-cannot-be-created", ("fit", "ok.csv", "-o", "/proc/normcli-out.json"), 1, ("cannot write", "/proc/normcli-out.json")),
    Case("07-fit-output-is-an-input", ("fit", "ok.csv", "-o", "ok.csv"), 2, ("output is one of the inputs",)),
    Case("07-fit-output-is-a-globbed-input", ("fit", "o*.csv", "-o", "ok.csv"), 2, ("output is one of the inputs",)),
    Case("07-transform-output-is-an-input", ("transform", "ok.csv", "-s", "stats.json", "-o", "ok.csv"), 2, ("output is one of the inputs",)),
    Case("07-transform-output-is-the-stats-file", ("transform", "ok.csv", "-s", "stats.json", "-o", "stats.json", "--output-format", "csv"), 2, ("stats.json", "output is one of the inputs")),
    Case("07-predict-output-is-the-model", ("predict", "classes.csv", "--model", "model.npz", "-o", "model.npz", "--output-format", "csv"), 2, ("output is one of the inputs",), make=classes_csv, model=True),
    Case("07-train-model-is-the-stats-file", ("train", "ok.csv", "--target", "a", "--stats", "stats.json", "-o", "stats.json"), 2, ("output is one of the inputs",)),
    Case("07-train-metrics-out-is-an-input", ("train", "classes.csv", "--target", "y", "--metrics-out", "classes.csv", "-o", "out.npz"), 2, ("classes.csv", "output is one of the inputs"), make=classes_csv, output="out.npz"),
    Case("07-train-plot-is-an-input", ("train", "classes.csv", "--target", "y", "--plot", "classes.csv", "-o", "out.npz"), 2, ("output is one of the inputs",), make=classes_csv, output="out.npz"),
    Case("07-merge-output-is-an-input", ("merge", "stats.json", "copy.json", "-o", "stats.json"), 2, ("output is one of the inputs",), make=lambda d: shutil.copy(d / "stats.json", d / "copy.json")),
    Case("09-unknown-extension", ("fit", "data.xlsx", "-o", "out.json"), 2, ("data.xlsx", "cannot tell the format", "--format"), make=lambda d: shutil.copy(d / "ok.csv", d / "data.xlsx"), output="out.json"),
    Case("09-unknown-output-extension", ("transform", "ok.csv", "-s", "stats.json", "-o", "out.xlsx"), 2, ("out.xlsx", "--output-format")),
    Case("09-unknown-output-format", ("transform", "ok.csv", "-s", "stats.json", "--output-format", "xlsx"), 2, ("unknown output format", "csv, tsv, parquet, ndjson")),
    Case("10-parquet-named-csv", ("fit", "parquet-named.csv", "-o", "out.json"), 1, ("is a Parquet file", "--format parquet"), files=("parquet-named.csv",), output="out.json"),
    Case("10-csv-named-parquet", ("fit", "csv-named.parquet", "-o", "out.json"), 1, ("not a Parquet file", "--format csv"), files=("csv-named.parquet",), output="out.json"),
    Case("10-gzip-without-extension", ("fit", "gzip-without-gz-extension.csv", "-o", "out.json"), 1, ("gzip-compressed", ".csv.gz"), files=("gzip-without-gz-extension.csv",), output="out.json"),
    # CSV content
    Case("11-empty-ndjson", ("fit", "e.ndjson", "-o", "out.json"), 1, ("file is empty",), make=text_file("e.ndjson", ""), output="out.json"),
    Case("14-ndjson-bad-line", ("fit", "bad.ndjson", "-o", "out.json"), 1, ("line 2", "not valid JSON"), make=text_file("bad.ndjson", '{"a": 1, "b": 2}\n{"a": 3,\n'), output="out.json"),
    Case("14-ndjson-line-not-an-object", ("transform", "arr.ndjson", "-s", "stats.json", "-o", "out.csv"), 1, ("line 2", "not a JSON object"), make=text_file("arr.ndjson", '{"a": 1, "b": 2}\n[1, 2]\n'), output="out.csv"),
    Case("11-empty-file", ("fit", "empty-0-bytes.csv", "-o", "out.json"), 1, ("empty-0-bytes.csv", "empty"), files=("empty-0-bytes.csv",), output="out.json"),
    Case("12-header-only", ("fit", "header-only.csv", "-o", "out.json"), 1, ("no data rows",), files=("header-only.csv",), output="out.json"),
    Case("12-header-only-transform", ("transform", "header-only.csv", "-s", "stats.json", "-o", "out.csv"), 1, ("no data rows",), files=("header-only.csv",), output="out.csv"),
    Case("13-ragged-row", ("fit", "ragged-row-line-3.csv", "-o", "out.json"), 1, ("line 3", "3 fields", "header has 2"), files=("ragged-row-line-3.csv",), output="out.json"),
    Case("13-ragged-row-transform", ("transform", "ragged-row-line-3.csv", "-s", "stats.json", "-o", "out.csv"), 1, ("line 3", "3 fields"), files=("ragged-row-line-3.csv",), output="out.csv"),
    Case("14-unclosed-quote", ("fit", "unclosed-quote-line-3.csv", "-o", "out.json"), 1, ("quote", "line 3", "never closed"), files=("unclosed-quote-line-3.csv",), output="out.json"),
    Case("14-unclosed-quote-first-row", ("fit", "q.csv", "-o", "out.json"), 1, ("quote", "line 2", "never closed"), make=text_file("q.csv", 'a,b\n1,"2\n3,4\n'), output="out.json"),
    Case("15-not-utf8", ("fit", "latin1-byte-line-3.csv", "-o", "out.json"), 1, ("not valid UTF-8", "iconv"), files=("latin1-byte-line-3.csv",), output="out.json"),
    Case("18-duplicate-column-names", ("fit", "duplicate-header.csv", "-o", "out.json"), 1, ("duplicate column name 'a'",), files=("duplicate-header.csv",), output="out.json"),
    Case("19-empty-column-name", ("fit", "empty-column-name.csv", "-o", "out.json"), 1, ("empty name",), files=("empty-column-name.csv",), output="out.json"),
    Case("20-semicolon-separated", ("fit", "semicolon-separated.csv", "-o", "out.json"), 1, ("semicolon-separated", "-d ';'"), files=("semicolon-separated.csv",), output="out.json"),
    Case("20-tab-separated-named-csv", ("fit", "t.csv", "-o", "out.json"), 1, ("tab-separated", "--format tsv"), make=text_file("t.csv", "a\tb\n1\t2\n"), output="out.json"),
    Case("21-stray-word-at-row-500000", ("fit", "stray.csv", "-o", "out.json"), 1, ("stray.csv", "'oops'", "line 500001", "not a number"), make=stray_word_at_row_500000, output="out.json"),
    Case("21-stray-word-at-row-500000-transform", ("transform", "stray.csv", "-s", "stats.json", "-o", "out.csv"), 1, ("'oops'", "line 500001"), make=stray_word_at_row_500000, output="out.csv"),
    Case("24-truncated-csv-gz", ("fit", "truncated.csv.gz", "-o", "out.json"), 1, ("truncated",), files=("truncated.csv.gz",), output="out.json"),
    Case("25-truncated-parquet", ("fit", "truncated.parquet", "-o", "out.json"), 1, ("not a complete Parquet file", "truncated"), files=("truncated.parquet",), output="out.json"),
    Case("25-truncated-parquet-transform", ("transform", "truncated.parquet", "-s", "stats.json", "-o", "out.parquet"), 1, ("Parquet",), files=("truncated.parquet",), output="out.parquet"),
    # values
    Case("27-single-row-ddof-1", ("fit", "single-row.csv", "--ddof", "1", "-o", "out.json"), 1, ("1 value", "--ddof 1", "at least 2"), files=("single-row.csv",), output="out.json"),
    Case("28-infinite-values", ("fit", "inf-in-column-b.csv", "-o", "out.json"), 1, ("column 'b'", "2 infinite values", "--exclude 'b'"), files=("inf-in-column-b.csv",), output="out.json"),
    # stats files
    Case("33-stats-file-missing", ("transform", "ok.csv", "-s", "nope.json", "-o", "out.csv"), 1, ("nope.json", "no such stats file", "normcli fit"), output="out.csv"),
    Case("33-stats-file-missing-inspect", ("inspect", "nope.json"), 1, ("no such stats file",)),
    Case("33-stats-file-is-a-directory", ("inspect", "folder"), 1, ("is a directory",), make=lambda d: (d / "folder").mkdir()),
    Case("33-merge-stats-file-missing", ("merge", "stats.json", "nope.json", "-o", "out.json"), 1, ("nope.json", "no such stats file"), output="out.json"),
    Case("33-merge-single-file", ("merge", "stats.json", "-o", "out.json"), 2, ("at least two",), output="out.json"),
    Case("37-merge-robust-columns", ("merge", "r1.json", "r2.json", "-o", "out.json"), 1, ("robust", "do not merge"), make=lambda d: (invoke_plain(d, "fit", "ok.csv", "--method", "robust", "-o", "r1.json"), shutil.copy(d / "r1.json", d / "r2.json")), output="out.json"),
    Case("34-stats-not-json", ("transform", "ok.csv", "-s", "hello.json", "-o", "out.csv"), 1, ("not valid stats JSON",), make=text_file("hello.json", "hello\n"), output="out.csv"),
    Case("34-stats-truncated-json", ("inspect", "cut.json"), 1, ("not valid stats JSON",), make=lambda d: (d / "cut.json").write_bytes((d / "stats.json").read_bytes()[:150])),
    Case("34-stats-not-utf8", ("inspect", "latin.json"), 1, ("not a normcli stats file",), make=lambda d: (d / "latin.json").write_bytes(b'{"format": "\xe9"}')),
    Case("35-json-of-another-tool", ("transform", "ok.csv", "-s", "package.json", "-o", "out.csv"), 1, ("not a normcli stats file", '"format"'), make=text_file("package.json", '{"name": "x", "version": "1.0.0"}'), output="out.csv"),
    Case("35-json-array", ("inspect", "array.json"), 1, ("not a normcli stats file",), make=text_file("array.json", "[1, 2]")),
    Case("36-future-version", ("inspect", "future.json"), 1, ("version 7", "newer", "upgrade normcli"), make=tampered(lambda doc: doc.update(version=7), "future.json")),
    Case("37-scale-zero", ("transform", "ok.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("scale", "positive"), make=tampered(set_first("scale", 0), "bad.json"), output="out.csv"),
    Case("37-negative-std", ("transform", "ok.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("std", "negative"), make=tampered(set_first("std", -1.0), "bad.json"), output="out.csv"),
    Case("37-nan-literal", ("transform", "ok.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("NaN", "not allowed"), make=tampered(set_first("scale", float("nan")), "bad.json"), output="out.csv"),
    Case("37-infinity-literal", ("transform", "ok.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("Infinity", "not allowed"), make=tampered(set_first("center", float("inf")), "bad.json"), output="out.csv"),
    Case("37-scale-is-a-string", ("inspect", "bad.json"), 1, ("scale", "finite number"), make=tampered(set_first("scale", "1"), "bad.json")),
    Case("37-min-above-max", ("inspect", "bad.json"), 1, ("min", "greater than max"), make=tampered(set_first("min", 1e9), "bad.json")),
    Case("38-stats-column-absent", ("transform", "ok.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("'zz'", "not found"), make=tampered(set_first("name", "zz"), "bad.json"), output="out.csv"),
    Case("39-stats-column-now-text", ("transform", "column-a-is-text.csv", "-s", "stats.json", "-o", "out.csv"), 1, ("column 'a'", "String", "fitted as"), files=("column-a-is-text.csv",), output="out.csv"),
    # models
    Case("40-model-missing", ("predict", "classes.csv", "--model", "nope.npz", "-o", "out.csv"), 1, ("nope.npz", "does not exist"), make=classes_csv, output="out.csv", model=True),
    Case("40-model-not-npz", ("predict", "classes.csv", "--model", "junk.npz", "-o", "out.csv"), 1, ("not a normcli model file",), make=lambda d: (classes_csv(d), (d / "junk.npz").write_text("junk")), output="out.csv", model=True),
    Case("40-model-is-csv", ("predict", "classes.csv", "--model", "classes.csv", "-o", "out.csv"), 1, ("not a normcli model file",), make=classes_csv, output="out.csv", model=True),
    Case("40-model-truncated", ("predict", "classes.csv", "--model", "truncated-model.npz", "-o", "out.csv"), 1, ("not a normcli model file",), make=lambda d: (classes_csv(d), truncated_model(d)), output="out.csv", model=True),
    Case("40-model-object-array", ("predict", "classes.csv", "--model", "object-array.npz", "-o", "out.csv"), 1, ("not a normcli model file", "object"), make=lambda d: (classes_csv(d), model_with_object_array(d)), output="out.csv", model=True),
    Case("41-model-feature-missing", ("predict", "no-x2.csv", "--model", "model.npz", "-o", "out.csv"), 1, ("'x2'", "not found"), make=classes_csv, output="out.csv", model=True),
    # options
    Case("42-feature-range-reversed", ("fit", "ok.csv", "--feature-range", "1,0", "-o", "out.json"), 2, ("--feature-range", "LOW < HIGH"), output="out.json"),
    Case("42-feature-range-not-numbers", ("fit", "ok.csv", "--feature-range", "a,b", "-o", "out.json"), 2, ("--feature-range", "LOW,HIGH"), output="out.json"),
    Case("42-ddof-negative", ("fit", "ok.csv", "--ddof", "-1", "-o", "out.json"), 2, ("--ddof", "0 or 1"), output="out.json"),
    Case("42-method-unknown", ("fit", "ok.csv", "--method", "foo", "-o", "out.json"), 2, ("'foo'", "standard, minmax, robust, maxabs"), output="out.json"),
    Case("42-method-for-unknown-method", ("fit", "ok.csv", "--method-for", "a=foo", "-o", "out.json"), 2, ("'foo'", "standard, minmax, robust, maxabs"), output="out.json"),
    Case("42-method-for-absent-column", ("fit", "ok.csv", "--method-for", "zz=robust", "-o", "out.json"), 2, ("'zz'", "columns are: a, b"), output="out.json"),
    Case("42-columns-absent", ("fit", "ok.csv", "--columns", "zz", "-o", "out.json"), 2, ("'zz'", "columns are: a, b"), output="out.json"),
    Case("42-unknown-option", ("fit", "ok.csv", "--nope", "-o", "out.json"), 2, ("--nope", "--help"), output="out.json"),
    Case("42-unknown-format", ("fit", "ok.csv", "--format", "xlsx", "-o", "out.json"), 2, ("unknown format", "csv, tsv, parquet, ndjson"), output="out.json"),
    Case("42-separator-two-characters", ("fit", "ok.csv", "--separator", ";;", "-o", "out.json"), 2, ("--delimiter", "one character"), output="out.json"),
    Case("42-clip-with-inverse", ("transform", "ok.csv", "-s", "stats.json", "--clip", "--inverse", "-o", "out.csv"), 2, ("--clip", "--inverse"), output="out.csv"),
    Case("42-transform-without-stats", ("transform", "ok.csv", "-o", "out.csv"), 2, ("--stats",), output="out.csv"),
    # training data
    Case("42-train-model-to-stdout", ("train", "classes.csv", "--target", "y", "-o", "-"), 2, ("cannot go to stdout",), make=classes_csv),
    Case("43-target-missing", ("train", "classes.csv", "--target", "nope", "-o", "out.npz"), 2, ("'nope'", "columns are"), make=classes_csv, output="out.npz"),
    Case("43-target-single-class", ("train", "one-class.csv", "--target", "y", "-o", "out.npz"), 1, ("single class",), make=classes_csv, output="out.npz"),
    Case("43-target-all-missing", ("train", "all-null-target.csv", "--target", "y", "-o", "out.npz"), 1, ("target 'y' has no values",), make=classes_csv, output="out.npz"),
    Case("44-too-few-rows-for-split", ("train", "two-rows.csv", "--target", "y", "-o", "out.npz"), 1, ("too few", "--val-split"), make=classes_csv, output="out.npz"),
    Case("44-val-split-out-of-range", ("train", "classes.csv", "--target", "y", "--val-split", "1", "-o", "out.npz"), 2, ("--val-split",), make=classes_csv, output="out.npz"),
    Case("44-batch-size-one", ("train", "classes.csv", "--target", "y", "--batch-size", "1", "-o", "out.npz"), 2, ("batch_size", ">= 2"), make=classes_csv, output="out.npz"),
    Case("45-learning-rate-diverges", ("train", "regression.csv", "--target", "y", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "5", "-o", "out.npz"), 1, ("diverged", "learning rate"), make=classes_csv, output="out.npz"),
    # issue 10: outputs
    Case("51-output-names-a-folder", ("fit", "ok.csv", "-o", "newdir/"), 2, ("ends in '/'", "names a folder")),
    Case("51-parquet-gz-output", ("transform", "ok.csv", "-s", "stats.json", "-o", "out.parquet.gz"), 2, ("parquet", "compressed"), output="out.parquet.gz"),
    Case("51-nested-columns-to-csv", ("transform", "nested.parquet", "-s", "nested.json", "-o", "out.csv"), 2, ("column 'l'", "List", "CSV cannot hold nested values", "parquet"), make=nested_parquet, output="out.csv"),
    Case("52-train-outputs-the-same-file", ("train", "classes.csv", "--target", "y", "-o", "m.npz", "--metrics-out", "m.npz"), 2, ("-o and --metrics-out both name m.npz",), make=classes_csv, output="m.npz"),
    Case("52-train-plot-and-metrics-the-same-file", ("train", "classes.csv", "--target", "y", "--metrics-out", "x.png", "--plot", "x.png", "-o", "m.npz"), 2, ("--metrics-out and --plot both name x.png",), make=classes_csv, output="x.png"),
    Case("52-train-plot-to-stdout", ("train", "classes.csv", "--target", "y", "--plot", "-", "-o", "m.npz"), 2, ("plot", "stdout"), make=classes_csv, output="m.npz"),
    # issue 10: inputs named twice
    Case("53-fit-same-file-twice", ("fit", "ok.csv", "./ok.csv", "-o", "out.json"), 2, ("'ok.csv' and './ok.csv' are the same file", "--allow-overlap"), output="out.json"),
    Case("53-fit-glob-and-its-match", ("fit", "o*.csv", "ok.csv", "-o", "out.json"), 2, ("'ok.csv' is given twice", "--allow-overlap"), output="out.json"),
    Case("53-train-same-file-twice", ("train", "classes.csv", "classes.csv", "--target", "y", "-o", "m.npz"), 2, ("given twice", "validation split"), make=classes_csv, output="m.npz"),
    # issue 10: limits
    Case("54-too-many-columns", ("fit", "wide.csv", "-o", "out.json"), 1, ("100,001 columns", "at most 100,000"), make=wide_header(100_001), output="out.json"),
    Case("54-too-many-columns-gz", ("fit", "wide.csv.gz", "-o", "out.json"), 1, ("100,001 columns",), make=lambda d: (wide_header(100_001)(d), gzipped("wide.csv", "wide.csv.gz")(d)), output="out.json"),
    Case("54-first-line-too-long", ("fit", "long.csv", "-o", "out.json"), 1, ("first line is longer than 32 MiB",), make=lambda d: (d / "long.csv").write_bytes(b"a" * (33 << 20)), output="out.json"),
    Case("54-stats-file-too-large", ("inspect", "huge.json"), 1, ("larger than 128 MiB",), make=huge_stats),
    Case("55-model-metadata-claims-a-huge-network", ("predict", "classes.csv", "--model", "bad.npz", "-o", "out.csv"), 1, ("bad.npz", "layers.0.W", "architecture in its metadata needs float32[30000, 2]"), make=tampered_model(set_in(("config", "hidden"), [30000, 30000])), output="out.csv", model=True),
    Case("55-model-npy-header-lies", ("predict", "classes.csv", "--model", "lying.npz", "-o", "out.csv"), 1, ("lying.npz", "layers.0.W", "claims"), make=model_with_lying_header, output="out.csv", model=True),
    Case("55-model-metadata-bomb", ("predict", "classes.csv", "--model", "bomb.npz", "-o", "out.csv"), 1, ("bomb.npz", "metadata", "at most 64 MiB"), make=model_with_compressed_metadata_bomb, output="out.csv", model=True),
    # issue 10: tampered models
    Case("56-model-task-clustering", ("predict", "classes.csv", "--model", "bad.npz", "-o", "out.csv"), 1, ("inconsistent model metadata", "clustering"), make=tampered_model(set_in(("extra", "task"), "clustering")), output="out.csv", model=True),
    Case("56-model-task-regression-on-a-classifier", ("predict", "classes.csv", "--model", "bad.npz", "-o", "out.csv"), 1, ("inconsistent model metadata", "regression", "trained for classification"), make=tampered_model(set_in(("extra", "task"), "regression")), output="out.csv", model=True),
    Case("56-model-labels-do-not-match-outputs", ("predict", "classes.csv", "--model", "bad.npz", "-o", "out.csv"), 1, ("3 class labels", "2 outputs"), make=tampered_model(set_in(("extra", "class_labels"), [0, 1, 2])), output="out.csv", model=True),
    Case("56-model-null-values-not-texts", ("predict", "classes.csv", "--model", "bad.npz", "-o", "out.csv"), 1, ("null_values",), make=tampered_model(set_in(("extra", "null_values"), 5)), output="out.csv", model=True),
    Case("56-model-features-not-a-list", ("predict", "classes.csv", "--model", "bad.npz", "-o", "out.csv"), 1, ("malformed feature description",), make=tampered_model(set_in(("extra", "features"), 5)), output="out.csv", model=True),
    Case("56-model-config-task-unknown", ("predict", "classes.csv", "--model", "bad.npz", "-o", "out.csv"), 1, ("invalid architecture", "task"), make=tampered_model(set_in(("config", "task"), "clustering")), output="out.csv", model=True),
    # issue 10: what used to end in the "TypeName: ... (rerun with --debug)" fallback
    Case("57-stats-number-of-401-digits", ("inspect", "bad.json"), 1, ("column 'a'.mean", "finite number", "401 characters"), make=stats_with(set_first("mean", int("9" * 401)))),
    Case("57-stats-count-beyond-2-pow-63", ("transform", "ok.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("count", "integer from 0 to"), make=stats_with(set_first("count", 10**30)), output="out.csv"),
    Case("57-stats-nested-too-deeply", ("inspect", "deep.json"), 1, ("nested too deeply",), make=deep_json),
    Case("57-predict-text-target-on-a-regression", ("predict", "regression.csv", "--model", "reg.npz", "--target", "word", "-o", "out.csv"), 2, ("--target 'word' is String", "regression"), make=lambda d: (classes_csv(d), (d / "regression.csv").write_text(pl.read_csv(d / "regression.csv").with_columns(word=pl.lit("w")).write_csv()), invoke_plain(d, "train", "regression.csv", "--target", "y", "--epochs", "1", "--exclude", "word", "-o", "reg.npz")), output="out.csv"),
    Case("57-target-loss-nan", ("train", "classes.csv", "--target", "y", "--compare", "--epochs", "1", "--target-loss", "nan"), 2, ("--target-loss", "finite"), make=classes_csv),
    Case("57-features-named-twice", ("train", "classes.csv", "--target", "y", "--features", "x1,x1", "-o", "m.npz"), 2, ("--features names 'x1' more than once",), make=classes_csv, output="m.npz"),
    Case("57-features-name-the-target", ("train", "classes.csv", "--target", "y", "--features", "x1,y", "-o", "m.npz"), 2, ("'y' is both the target and a feature",), make=classes_csv, output="m.npz"),
    Case("58-early-stopping-without-validation", ("train", "classes.csv", "--target", "y", "--val-split", "0", "--early-stopping", "5", "-o", "m.npz"), 2, ("--early-stopping", "--val-split 0"), make=classes_csv, output="m.npz"),
    # issue 10: wrong diagnoses
    Case("59-utf16-with-bom", ("fit", "u16.csv", "-o", "out.json"), 1, ("UTF-16LE", "iconv -f UTF-16"), make=utf16("u16.csv"), output="out.json"),
    Case("59-utf16-big-endian-without-bom", ("fit", "u16.csv", "-o", "out.json"), 1, ("UTF-16BE",), make=utf16("u16.csv", "utf-16-be"), output="out.json"),
    Case("59-utf16-gzipped", ("transform", "u16.csv.gz", "-s", "stats.json", "-o", "out.csv"), 1, ("UTF-16",), make=lambda d: (utf16("u16.csv")(d), gzipped("u16.csv", "u16.csv.gz")(d)), output="out.csv"),
    Case("59-nul-bytes", ("fit", "zeros.csv", "-o", "out.json"), 1, ("NUL bytes", "binary"), make=lambda d: (d / "zeros.csv").write_bytes(bytes(5000)), output="out.json"),
    Case("59-cr-only-line-breaks", ("fit", "cr.csv", "-o", "out.json"), 1, ("CR-only line breaks", "tr"), make=lambda d: (d / "cr.csv").write_bytes(b"a,b\r1,2\r3,4\r"), output="out.json"),
    Case("59-truncated-zst", ("fit", "cut.csv.zst", "-o", "out.json"), 1, ("compressed data ends unexpectedly or is corrupt",), make=zstd_cut("cut.csv.zst", 0.5), output="out.json"),
    Case("59-corrupt-zst", ("transform", "bad.csv.zst", "-s", "stats.json", "-o", "out.csv"), 1, ("compressed data ends unexpectedly or is corrupt",), make=zstd_cut("bad.csv.zst", -1), output="out.csv"),
    Case("59-gzipped-parquet", ("fit", "p.parquet.gz", "-o", "out.json"), 1, ("gzip-compressed", "decompress"), make=lambda d: (pl.read_csv(d / "ok.csv").write_parquet(d / "p.parquet"), gzipped("p.parquet", "p.parquet.gz")(d)), output="out.json"),
    Case("59-plain-file-named-gz", ("fit", "plain.csv.gz", "-o", "out.json"), 1, ("named as gzip-compressed but is not",), make=lambda d: shutil.copy(d / "ok.csv", d / "plain.csv.gz"), output="out.json"),
    Case("59-ndjson-number-beyond-float64", ("fit", "big.ndjson", "-o", "out.json"), 1, ("line 2", "1e400", "beyond"), make=text_file("big.ndjson", '{"a": 1}\n{"a": 1e400}\n'), output="out.json"),
    Case("59-ndjson-integer-of-400-digits", ("fit", "big.ndjson", "-o", "out.json"), 1, ("line 2", "beyond"), make=text_file("big.ndjson", '{"a": ' + "9" * 30 + '}\n{"a": ' + "9" * 400 + '}\n'), output="out.json"),
    Case("45-learning-rate-diverges-no-batchnorm", ("train", "classes.csv", "--target", "y", "--optimizer", "sgd", "--lr", "1e9", "--no-batchnorm", "--epochs", "5", "-o", "out.npz"), 1, ("diverged",), make=classes_csv, output="out.npz"),
    # issue 11: shells and scripts (numbers 11.N are the items of docs/errors.md's section for it)
    Case("11.1-fit-default-output-is-not-stats", ("fit", "ok.csv"), 2, ("stats.json", "not a normcli stats file", "--force"), make=lambda d: shutil.copy(d / "ok.csv", d / "stats.json")),
    Case("11.1-fit-output-is-not-stats", ("fit", "ok.csv", "-o", "data.json"), 2, ("data.json", "not a normcli stats file"), make=text_file("data.json", '{"rows": [1, 2]}\n')),
    Case("11.1-merge-output-is-not-stats", ("merge", "stats.json", "copy.json", "-o", "notes.txt"), 2, ("notes.txt", "not a normcli stats file"), make=lambda d: (shutil.copy(d / "stats.json", d / "copy.json"), (d / "notes.txt").write_text("mine\n"))),
    Case("11.1-train-output-is-a-stats-file", ("train", "classes.csv", "--target", "y", "-o", "p.json"), 2, ("p.json", "not a normcli model file", "--force"), make=lambda d: (classes_csv(d), shutil.copy(d / "stats.json", d / "p.json"))),
    Case("11.2-stats-and-data-both-from-stdin", ("transform", "-s", "-", "-o", "out.csv"), 2, ("stdin", "both the data and the stats"), output="out.csv"),
    Case("11.2-stdin-twice-in-merge", ("merge", "-", "-", "-o", "out.json"), 2, ("stdin", "only once"), output="out.json"),
    Case("11.3-concatenated-csv-files", ("fit", "cat.csv", "-o", "out.json"), 1, ("line 4 repeats the header line", "awk"), make=text_file("cat.csv", "a,b\n1,2\n3,4\na,b\n5,6\n"), output="out.json"),
    Case("11.4-bad-delimiter", ("fit", "ok.csv", "-d", "ab", "-o", "out.json"), 2, ("--delimiter", "one character"), output="out.json"),
    Case("11.4-no-headers-on-parquet", ("fit", "csv-named.parquet", "--no-headers", "--format", "parquet", "-o", "out.json"), 2, ("--no-headers", "CSV and TSV"), files=("csv-named.parquet",), output="out.json"),
    Case("11.5-pattern-matches-nothing", ("fit", "ok.csv", "--columns", "f_*", "-o", "out.json"), 2, ("--columns", "'f_*' matches no column", "columns are: a, b"), output="out.json"),
    Case("11.5-index-out-of-range", ("fit", "ok.csv", "--exclude", "3", "-o", "out.json"), 2, ("--exclude", "column 3 is out of range"), output="out.json"),
    Case("11.5-bad-regex", ("fit", "ok.csv", "--columns", "re:(", "-o", "out.json"), 2, ("not a valid regular expression",), output="out.json"),
    Case("11.6-dtype-unknown-type", ("fit", "ok.csv", "--dtype", "a=decimal", "-o", "out.json"), 2, ("unknown type 'decimal'", "text, int, float"), output="out.json"),
    Case("11.6-dtype-int-holds-a-decimal", ("fit", "f.csv", "--dtype", "a=int", "-o", "out.json"), 1, ("column 'a'", "'2.5'", "line 3", "not an integer"), make=text_file("f.csv", "a,b\n1,2\n2.5,3\n"), output="out.json"),
    Case("11.6-word-among-padded-numbers", ("fit", "p.csv", "--dtype", "a=float", "-o", "out.json"), 1, ("column 'a'", "' x '", "line 3"), make=text_file("p.csv", "a,b\n 1 ,2\n x ,3\n" + "".join(f" {i} ,{i}\n" for i in range(20_000))), output="out.json"),
    Case("11.7-inspect-json-and-csv", ("inspect", "stats.json", "--json", "--csv"), 2, ("--json and --csv",)),
    # from fit to production: weights, groups, scaler options, check, export (101-)
    Case("101-weight-negative", ("fit", "w.csv", "--weight", "w", "-o", "out.json"), 1, ("weight column 'w'", "-1.0", "data row 2", "non-negative"), make=text_file("w.csv", "x,w\n1,1\n2,-1\n3,1\n"), output="out.json"),
    Case("101-weight-missing", ("fit", "w.csv", "--weight", "w", "-o", "out.json"), 1, ("weight column 'w'", "no value", "data row 3"), make=text_file("w.csv", "x,w\n1,1\n2,1\n3,\n"), output="out.json"),
    Case("102-weight-not-numeric", ("fit", "w.csv", "--weight", "w", "-o", "out.json"), 1, ("weight column 'w' is not numeric",), make=text_file("w.csv", "x,w\n1,a\n2,b\n"), output="out.json"),
    Case("102-weights-all-zero", ("fit", "w.csv", "--weight", "w", "-o", "out.json"), 1, ("column 'x'", "only values of weight 0"), make=text_file("w.csv", "x,w\n1,0\n2,0\n"), output="out.json"),
    Case("103-weight-with-robust", ("fit", "w.csv", "--weight", "w", "--method", "robust", "-o", "out.json"), 2, ("robust", "--weight", "--method-for"), make=text_file("w.csv", "x,w\n1,1\n2,1\n"), output="out.json"),
    Case("103-by-with-robust", ("fit", "ok.csv", "--by", "a", "--method", "robust", "-o", "out.json"), 2, ("robust", "--by"), output="out.json"),
    Case("104-by-float-column", ("fit", "f.csv", "--by", "f", "-o", "out.json"), 1, ("--by column 'f'", "Float64", "labels"), make=text_file("f.csv", "f,x\n0.5,1\n1.5,2\n"), output="out.json"),
    Case("104-by-absent-column", ("fit", "ok.csv", "--by", "zz", "-o", "out.json"), 2, ("no column named 'zz'",), output="out.json"),
    Case("104-by-empty", ("fit", "ok.csv", "--by", "", "-o", "out.json"), 2, ("--by needs at least one column name",), output="out.json"),
    Case("104-by-and-weight-same-column", ("fit", "ok.csv", "--by", "a", "--weight", "a", "-o", "out.json"), 2, ("both --weight and --by",), output="out.json"),
    Case("105-quantile-range-reversed", ("fit", "ok.csv", "--method", "robust", "--quantile-range", "75,25", "-o", "out.json"), 2, ("--quantile-range", "LOW < HIGH"), output="out.json"),
    Case("105-unit-variance-needs-inner-percentiles", ("fit", "ok.csv", "--method", "robust", "--quantile-range", "0,100", "--unit-variance", "-o", "out.json"), 2, ("0 < LOW < HIGH < 100",), output="out.json"),
    Case("106-unknown-group-error", ("transform", "new.csv", "-s", "g.json", "--unknown-group", "error", "-o", "out.csv"), 1, ("new.csv", "data row 2", "group g=zz", "--unknown-group pooled"), make=lambda d: ((d / "g.csv").write_text("g,x\na,1\na,3\n"), (d / "new.csv").write_text("g,x\na,2\nzz,5\n"), invoke_plain(d, "fit", "g.csv", "--by", "g", "-o", "g.json")), output="out.csv"),
    Case("106-group-column-absent-in-data", ("transform", "x.csv", "-s", "g.json", "-o", "out.csv"), 1, ("group column 'g'", "not found"), make=lambda d: ((d / "g.csv").write_text("g,x\na,1\na,3\n"), (d / "x.csv").write_text("x\n2\n"), invoke_plain(d, "fit", "g.csv", "--by", "g", "-o", "g.json")), output="out.csv"),
    Case("106-unknown-group-option", ("transform", "ok.csv", "-s", "stats.json", "--unknown-group", "skip", "-o", "out.csv"), 2, ("--unknown-group", "pooled, null, error"), output="out.csv"),
    Case("107-impute-unknown", ("transform", "ok.csv", "-s", "stats.json", "--impute", "average", "-o", "out.csv"), 2, ("unknown --impute 'average'", "constant=V"), output="out.csv"),
    Case("107-impute-median-without-medians", ("transform", "ok.csv", "-s", "stats.json", "--impute", "median", "-o", "out.csv"), 2, ("--impute median", "robust"), output="out.csv"),
    Case("107-impute-with-inverse", ("transform", "ok.csv", "-s", "stats.json", "--impute", "zero", "--inverse", "-o", "out.csv"), 2, ("--impute", "--inverse"), output="out.csv"),
    Case("108-merge-different-by", ("merge", "g1.json", "g2.json", "-o", "out.json"), 1, ("--by", "(none)"), make=lambda d: ((d / "g.csv").write_text("g,x\na,1\nb,3\n"), (d / "h.csv").write_text("g,x\na,2\nb,5\n"), invoke_plain(d, "fit", "g.csv", "--by", "g", "-o", "g1.json"), invoke_plain(d, "fit", "h.csv", "-o", "g2.json", "--exclude", "g")), output="out.json"),
    Case("108-merge-key-kinds", ("merge", "g1.json", "g2.json", "-o", "out.json"), 1, ("group column 'g' holds integer keys in g1.json but text keys in g2.json", "--dtype 'g=text'"), make=lambda d: ((d / "g.csv").write_text("g,x\n1,1\n2,3\n"), (d / "h.csv").write_text("g,x\n1,2\nb,5\n"), invoke_plain(d, "fit", "g.csv", "--by", "g", "-o", "g1.json"), invoke_plain(d, "fit", "h.csv", "--by", "g", "-o", "g2.json")), output="out.json"),
    Case("109-group-stats-tampered", ("inspect", "bad.json"), 1, ("groups.columns['x'].scale[0]", "positive"), make=lambda d: ((d / "g.csv").write_text("g,x\na,1\na,3\n"), invoke_plain(d, "fit", "g.csv", "--by", "g", "-o", "g.json"), (d / "bad.json").write_text((d / "g.json").read_text().replace('"scale": [\n', '"scale": [').replace('"scale": [1.0]', '"scale": [-1.0]')))),
    Case("110-export-empty-table-part", ("export", "stats.json", "--to", "sql", "--table", "main."), 2, ("--table needs a name", "schema.table", "'main.' has an empty part")),
    Case("110-export-table-with-an-empty-middle-part", ("export", "stats.json", "--to", "sql", "--table", "main..data", "-o", "out.sql"), 2, ("--table needs a name", "'main..data' has an empty part")),
    Case("110-export-unknown-target", ("export", "stats.json", "--to", "xml"), 2, ("unknown --to 'xml'", "sql, onnx")),
    Case("110-export-unknown-dialect", ("export", "stats.json", "--to", "sql", "--dialect", "oracle"), 2, ("unknown --dialect 'oracle'", "duckdb, postgres, sqlite")),
    Case("110-export-onnx-needs-a-file", ("export", "stats.json", "--to", "onnx"), 2, ("binary model", "-o")),
    Case("110-export-unknown-group-error", ("export", "stats.json", "--to", "sql", "--unknown-group", "error"), 2, ("cannot be exported", "pooled or null")),
    Case("110-export-onnx-two-group-columns", ("export", "g2.json", "--to", "onnx", "-o", "m.onnx"), 2, ("one --by column", "--to sql"), make=lambda d: ((d / "g.csv").write_text("g,h,x\na,1,1\na,1,3\n"), invoke_plain(d, "fit", "g.csv", "--by", "g,h", "-o", "g2.json")), output="m.onnx"),
    Case("110-export-output-is-the-stats", ("export", "stats.json", "--to", "sql", "-o", "stats.json"), 2, ("output is one of the inputs",)),
    Case("111-check-stats-missing", ("check", "ok.csv", "-s", "nope.json"), 1, ("nope.json", "no such stats file")),
    Case("111-check-bad-threshold", ("check", "ok.csv", "-s", "stats.json", "--max-std-ratio", "0.5"), 2, ("--max-std-ratio", "≥ 1")),
    Case("112-train-with-group-stats", ("train", "classes.csv", "--target", "y", "--stats", "g.json", "-o", "out.npz"), 2, ("per group", "--by", "without --by"), make=lambda d: (classes_csv(d), (d / "g.csv").write_text("y,x1,x2\n0,1,2\n0,3,4\n"), invoke_plain(d, "fit", "g.csv", "--by", "y", "-o", "g.json")), output="out.npz"),

    # review of issue 10 on the merged code: tampered per-group stats and merges past 2^63 rows
    Case("113-group-row-count-beyond-int64", ("transform", "g.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("bad.json", "groups.row_count[0]", "integer from 0 to 9223372036854775807"), make=tampered_groups(set_group(("row_count", 0), 10**30)), output="out.csv"),
    Case("113-group-count-beyond-int64", ("merge", "bad.json", "g.json", "--allow-overlap", "-o", "out.json"), 1, ("bad.json", "groups.columns['x'].count[1]", "integer from 0"), make=tampered_groups(set_group(("columns", "x", "count", 1), 2**64)), output="out.json"),
    Case("113-group-mean-of-401-digits", ("export", "bad.json", "--to", "sql", "-o", "out.sql"), 1, ("bad.json", "groups.columns['x'].mean[0]", "finite number"), make=tampered_groups(set_group(("columns", "x", "mean", 0), 10**400)), output="out.sql"),
    Case("113-group-key-of-401-digits", ("transform", "g.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("bad.json", "groups.keys[0]", "'k'", "Int64"), make=tampered_groups(set_group(("keys", 0, 1), 10**400)), output="out.csv"),
    Case("113-group-key-beyond-int64", ("transform", "g.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("groups.keys[1]", "9223372036854775808", "Int64"), make=tampered_groups(set_group(("keys", 1, 1), 2**63)), output="out.csv"),
    Case("113-group-key-of-the-wrong-type", ("transform", "g.csv", "-s", "bad.json", "-o", "out.csv"), 1, ("groups.keys[0]", "True", "'g'", "String"), make=tampered_groups(set_group(("keys", 0, 0), True)), output="out.csv"),
    Case("113-group-key-text-for-an-integer-column", ("check", "g.csv", "-s", "bad.json"), 1, ("groups.keys[0]", "'1'", "'k'", "Int64"), make=tampered_groups(set_group(("keys", 0, 1), "1"))),
    Case("113-group-column-not-fitted", ("inspect", "bad.json"), 1, ("groups.columns['zz']", "not one of the fitted columns"), make=tampered_groups(lambda doc: doc["groups"]["columns"].update(zz=doc["groups"]["columns"]["x"]))),
    Case("115-export-over-data", ("export", "stats.json", "--to", "sql", "-o", "ok.csv"), 2, ("ok.csv", "not a normcli export (SQL or ONNX)", "--force")),
    Case("115-export-over-other-stats", ("export", "stats.json", "--to", "onnx", "-o", "other.json"), 2, ("other.json", "not a normcli export", "--force"), make=lambda d: shutil.copy(d / "stats.json", d / "other.json")),
    Case("115-export-through-a-link-to-stats", ("export", "stats.json", "--to", "sql", "-o", "link.sql"), 2, ("link.sql", "not a normcli export"), make=lambda d: (shutil.copy(d / "stats.json", d / "other.json"), os.symlink("other.json", d / "link.sql"))),
    Case("115-train-metrics-over-stats", ("train", "classes.csv", "--target", "y", "--epochs", "1", "-o", "out.npz", "--metrics-out", "stats.json"), 2, ("stats.json", "not a normcli metrics file", "--force"), make=classes_csv, output="out.npz"),
    Case("115-train-plot-over-data", ("train", "classes.csv", "--target", "y", "--epochs", "1", "-o", "out.npz", "--plot", "ok.csv"), 2, ("ok.csv", "not a PNG image", "--force"), make=classes_csv, output="out.npz"),
    Case("113-sums-beyond-float64", ("merge", "bad.json", "stats.json", "--allow-overlap", "-o", "out.json"), 1, ("bad.json", "sums.s1", "finite number", "beyond float64"), make=tampered(lambda doc: doc["columns"][0]["sums"].update(s1=[1e308, 1e308]), "bad.json"), output="out.json"),
    Case("113-group-sums-beyond-float64", ("merge", "bad.json", "g.json", "--allow-overlap", "-o", "out.json"), 1, ("bad.json", "groups.columns['x'].sums[0].s1", "beyond float64"), make=tampered_groups(set_group(("columns", "x", "sums", "s1", 0), [1e308, 1e308])), output="out.json"),
    Case("117-nul-named-column-with-group-stats", ("transform", "nul.parquet", "-s", "g.json", "-o", "out.parquet"), 1, ("nul.parquet", "column '\\x00known'", "NUL character", "rename"), make=lambda d: ((d / "g.csv").write_text("g,x\na,1\na,3\n"), invoke_plain(d, "fit", "g.csv", "--by", "g", "-o", "g.json"), pl.DataFrame({"g": ["a", "a"], "x": [1.0, 2.0], "\x00known": [1, 2]}).write_parquet(d / "nul.parquet")), output="out.parquet"),
    Case("117-nul-named-column-with-inverse-of-integers", ("transform", "nul.parquet", "-s", "n.json", "--inverse", "-o", "out.parquet"), 1, ("nul.parquet", "column '\\x000'", "NUL character", "--inverse"), make=lambda d: (pl.DataFrame({"n": [1, 2, 3]}).write_csv(d / "n.csv"), invoke_plain(d, "fit", "n.csv", "-o", "n.json"), pl.DataFrame({"n": [0.5, 1.0, 1.5], "\x000": ["keep", "me", "!"]}).write_parquet(d / "nul.parquet")), output="out.parquet"),
    Case("119-predict-model-from-stdin-dash", ("predict", "classes.csv", "--model", "-", "-o", "out.csv"), 2, ("--model '-'", "--model /dev/stdin"), make=classes_csv, output="out.csv"),
    Case("113-group-weight-beyond-what-fit-accepts", ("merge", "bad.json", "bad.json", "--allow-overlap", "-o", "out.json"), 1, ("bad.json", "sums.w[0]", "below 2^1000"), make=lambda d: ((d / "w.csv").write_text("g,x,w\na,1,1\na,3,2\n"), invoke_plain(d, "fit", "w.csv", "--by", "g", "--weight", "w", "-o", "gw.json"), (d / "bad.json").write_text((d / "gw.json").read_text().replace('"w": [[3.0]]', '"w": [[1.7e+308]]'))), output="out.json"),
    Case("114-merge-beyond-int64-rows", ("merge", "huge.json", "stats.json", "--allow-overlap", "-o", "out.json"), 1, ("cannot merge", "the rows would count 9,223,372,036,854,775,810", "2^63 - 1"), make=twice_the_rows, output="out.json"),
    Case("114-merge-group-beyond-int64-rows", ("merge", "huge-group.json", "g.json", "--allow-overlap", "-o", "out.json"), 1, ("cannot merge", "the group g=a, k=1", "2^63 - 1"), make=twice_the_rows, output="out.json"),
]


def _params():
    for case in CASES:
        yield pytest.param(case, False, id=case.id)
        if case.output is not None:
            yield pytest.param(case, True, id=f"{case.id}-over-existing")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with ok.csv (columns a, b) and stats.json fitted on it."""
    shutil.copy(DATA / "plain-two-columns.csv", tmp_path / "ok.csv")
    result = invoke(tmp_path, "fit", "ok.csv", "-o", "stats.json", "-q", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    return tmp_path


@pytest.mark.parametrize(("case", "existing"), list(_params()))
def test_catalogue(case: Case, existing: bool, workdir: Path, monkeypatch: pytest.MonkeyPatch, request) -> None:
    if case.model:
        shutil.copy(request.getfixturevalue("model_file"), workdir / "model.npz")
    for name in case.files:
        shutil.copy(DATA / name, workdir / name)
    if case.make is not None:
        case.make(workdir)
    if existing:
        (workdir / case.output).write_bytes(previous_output(case.output))
    before = snapshot(workdir)
    result = invoke(workdir, *case.args, monkeypatch=monkeypatch)
    assert_clean_error(result.exit_code, result.stdout, result.stderr, case.code, case.words)
    assert snapshot(workdir) == before
    if existing:
        assert (workdir / case.output).read_bytes() == previous_output(case.output)


# --------------------------------------------------------------------------- cases that need a real process


DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
"""Root ignores file modes; without these two capabilities they apply to root too (a real check,
not a mocked ``os.access``)."""


def _file_modes_apply() -> bool:
    """Whether a child process can be made to obey file modes: not root, or root via setpriv."""
    if os.geteuid() != 0:
        return True
    if shutil.which("setpriv") is None:
        return False
    return subprocess.run([*DROP_DAC, "true"], capture_output=True).returncode == 0


needs_permissions = pytest.mark.skipif(
    not _file_modes_apply(), reason="root without a setpriv that can drop capabilities"
)


def run_without_dac(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    prefix = DROP_DAC if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *NORMCLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_permissions
def test_04_input_not_readable(workdir: Path) -> None:
    secret = workdir / "secret.csv"
    shutil.copy(DATA / "plain-two-columns.csv", secret)
    secret.chmod(0)
    before = snapshot(workdir)
    result = run_without_dac(["fit", "secret.csv", "-o", "out.json"], workdir)
    assert_clean_error(result.returncode, result.stdout, result.stderr, 1, ("secret.csv", "permission denied"))
    assert snapshot(workdir) == before


@needs_permissions
@pytest.mark.parametrize("existing", [False, True])
def test_06_output_folder_not_writable(workdir: Path, existing: bool) -> None:
    folder = workdir / "read-only"
    folder.mkdir()
    if existing:
        (folder / "out.csv").write_bytes(PREVIOUS)
    folder.chmod(0o555)
    before = snapshot(workdir)
    result = run_without_dac(["transform", "ok.csv", "-s", "stats.json", "-o", "read-only/out.csv"], workdir)
    assert_clean_error(result.returncode, result.stdout, result.stderr, 1, ("not writable",))
    assert snapshot(workdir) == before


@needs_permissions
def test_06_output_file_not_writable(workdir: Path) -> None:
    (workdir / "out.json").write_bytes(PREVIOUS)
    (workdir / "out.json").chmod(0o444)
    before = snapshot(workdir)
    result = run_without_dac(["fit", "ok.csv", "-o", "out.json"], workdir)
    assert_clean_error(result.returncode, result.stdout, result.stderr, 1, ("out.json", "not writable"))
    assert snapshot(workdir) == before


@pytest.mark.parametrize("command", [["fit", "-o", "out.json"], ["transform", "-s", "stats.json", "-o", "out.csv"], ["train", "--target", "a", "-o", "out.npz"]])
def test_08_no_input_and_stdin_is_a_terminal(workdir: Path, command: list[str]) -> None:
    primary, secondary = pty.openpty()
    try:
        before = snapshot(workdir)
        result = subprocess.run(
            [*NORMCLI, *command], cwd=workdir, stdin=secondary, capture_output=True, text=True, timeout=60
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert_clean_error(result.returncode, result.stdout, result.stderr, 2, ("stdin is a terminal", "pipe data in"))
    assert snapshot(workdir) == before


# --------------------------------------------------------------------------- the process: signals, pipes, closed streams


HOLD_IMPORT = """
import os, sys, time

class HoldTyper:
    \"\"\"Stops the import of typer (normcli's start-up) until a signal comes.\"\"\"
    def find_spec(self, name, path=None, target=None):
        if name == "typer" and "normcli" in " ".join(sys.argv + sys.orig_argv):
            os.write(int(os.environ["NORMCLI_TEST_READY_FD"]), b"importing")
            time.sleep(60)
        return None

sys.meta_path.insert(0, HoldTyper())
"""


def test_10_11_ctrl_c_during_start_up_imports(tmp_path: Path) -> None:
    """SIGINT while the command line is still being imported: the same one line and death by
    SIGINT as later on, not a KeyboardInterrupt traceback. A sitecustomize holds the import of
    typer until the test has sent the signal (a readiness signal, not a guess about timing)."""
    (tmp_path / "sitecustomize.py").write_text(HOLD_IMPORT)
    read, write = os.pipe()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ['PYTHONPATH']}", "NORMCLI_TEST_READY_FD": str(write)}
    process = subprocess.Popen(
        [*NORMCLI, "fit", "x.csv"], cwd=tmp_path, env=env, pass_fds=(write,),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    os.close(write)
    try:
        assert os.read(read, 100) == b"importing"
    finally:
        os.close(read)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT
    assert (stdout, stderr) == ("", "normcli: interrupted\n")


def run_into_closed_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run normcli with stdout a pipe whose reader is already gone (``normcli ... | true``, but
    without the race of ``true`` ending before or after normcli writes)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([*NORMCLI, *args], cwd=cwd, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [["--help"], ["-h"], ["--version"], ["fit", "--help"], ["transform", "-h"], ["fit", "ok.csv", "-o", "-"],
     ["inspect", "stats.json"], ["transform", "ok.csv", "-s", "stats.json"]],
    ids=lambda args: " ".join(args),
)
def test_10_11_a_closed_pipe_is_not_an_error(workdir: Path, args: list[str]) -> None:
    before = snapshot(workdir)
    result = run_into_closed_pipe(args, workdir)
    assert (result.returncode, result.stderr) == (0, "")
    assert snapshot(workdir) == before


def test_10_11_an_error_into_a_closed_pipe_keeps_its_code(workdir: Path) -> None:
    result = run_into_closed_pipe(["fit", "missing.csv", "-o", "-"], workdir)
    assert_clean_error(result.returncode, "", result.stderr, 1, ("missing.csv", "no such file"))


@pytest.mark.parametrize(
    ("args", "output"),
    [(["fit", "const.csv", "-o", "-"], None), (["fit", "const.csv", "-o", "out.json"], "out.json"),
     (["transform", "blank.csv", "-s", "stats.json"], None)],
    ids=["fit-to-stdout", "fit-to-file", "transform-to-stdout"],
)
def test_10_12_with_stderr_closed_messages_never_reach_stdout(workdir: Path, args: list[str], output: str | None) -> None:
    """``2>&-``: Python would print warnings and notes (``print(file=None)``) on stdout, into the data."""
    (workdir / "const.csv").write_text("a,b\n1,5\n2,5\n4,5\n")  # b is constant: a warning
    (workdir / "blank.csv").write_text("a,b\n,5\n,6\n")  # a has no values: a note
    with_stderr = subprocess.run([*NORMCLI, *args, *(["-o", "ref.json"] if output else [])], cwd=workdir, capture_output=True, text=True)
    assert with_stderr.returncode == 0 and "normcli: " in with_stderr.stderr  # there is something to say
    closed = subprocess.run([*NORMCLI, *args], cwd=workdir, stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(2))
    assert closed.returncode == 0
    if output is None:
        assert closed.stdout == with_stderr.stdout and "normcli:" not in closed.stdout
    else:
        assert closed.stdout == "" and (workdir / output).read_text() == (workdir / "ref.json").read_text()


def test_10_12_with_stderr_closed_errors_keep_their_exit_code(workdir: Path) -> None:
    closed = subprocess.run([*NORMCLI, "fit", "missing.csv", "-o", "-"], cwd=workdir, capture_output=True, text=True,
                            preexec_fn=lambda: os.close(2))
    assert (closed.returncode, closed.stdout) == (1, "")


# --------------------------------------------------------------------------- cases that succeed


def test_ndjson_input_is_read(workdir: Path, monkeypatch) -> None:
    """NDJSON input used to fail on every file (a Polars 1 keyword argument Polars 2 dropped)."""
    (workdir / "rows.ndjson").write_text('{"a": 1, "b": 2}\n{"a": 3, "b": 5}\n{"a": 8, "b": 5}\n')
    doc = fitted(workdir, "rows.ndjson", monkeypatch=monkeypatch)
    assert column(doc, "a")["mean"] == pytest.approx(4.0, rel=1e-15)
    assert column(doc, "b")["std"] == pytest.approx(np.std([2, 5, 5]), rel=1e-15)


def test_column_names_like_internal_ones_work(workdir: Path, monkeypatch) -> None:
    """A column called "__rows__" (found by the fuzzer) crashed fit with KeyError."""
    (workdir / "names.csv").write_text("__rows__,b\n1,2\n3,5\n")
    doc = fitted(workdir, "names.csv", monkeypatch=monkeypatch)
    assert doc["inputs"]["row_count"] == 2
    assert [(c["name"], c["mean"]) for c in doc["columns"]] == [("__rows__", 2.0), ("b", 3.5)]


def test_16_utf8_bom_is_not_part_of_the_first_name(workdir: Path, monkeypatch) -> None:
    shutil.copy(DATA / "utf8-bom.csv", workdir / "bom.csv")
    doc = fitted(workdir, "bom.csv", monkeypatch=monkeypatch)
    assert [c["name"] for c in doc["columns"]] == ["a", "b"]
    result = invoke(workdir, "transform", "bom.csv", "-s", "stats.json", monkeypatch=monkeypatch)
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == "a,b"


def test_17_crlf_line_endings(workdir: Path, monkeypatch) -> None:
    shutil.copy(DATA / "crlf-line-endings.csv", workdir / "crlf.csv")
    doc = fitted(workdir, "crlf.csv", monkeypatch=monkeypatch)
    for name, values in {"a": [1, 3, 5], "b": [2, 4, 7]}.items():
        ref = numpy_reference(values)
        for key, value in ref.items():
            assert column(doc, name)[key] == pytest.approx(value, rel=1e-15)
    scaled = invoke(workdir, "transform", "crlf.csv", "-s", "stats.json", monkeypatch=monkeypatch)
    assert scaled.exit_code == 0
    out = pl.read_csv(scaled.stdout.encode())
    np.testing.assert_allclose(out["b"].to_numpy(), (np.array([2, 4, 7]) - 13 / 3) / np.std([2, 4, 7]), rtol=1e-14)


def test_22_integers_then_a_float_far_down(workdir: Path, monkeypatch) -> None:
    n = 600_000
    values = np.arange(n, dtype=np.float64)
    values[550_000] = 0.5
    text = pl.Series("a", values.astype(np.int64)).cast(pl.String).scatter(550_000, "0.5")
    pl.DataFrame({"a": text}).write_csv(workdir / "int-then-float.csv")
    doc = fitted(workdir, "int-then-float.csv", monkeypatch=monkeypatch)
    ref = numpy_reference(values)
    for key, value in ref.items():
        assert column(doc, "a")[key] == pytest.approx(value, rel=1e-13)


_MEASURE = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)\n"
)
"""Runs a command and prints its exit code and peak RSS. A child's ru_maxrss starts from its
parent's RSS at fork, and pytest's process is large: this small process is the parent instead."""


def rss_of(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in bytes) of one normcli process, measured with wait4."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *NORMCLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    code, rss = (int(v) for v in done.stdout.split())
    return code, done.stderr, rss


def test_23_ten_thousand_columns_in_bounded_memory(workdir: Path) -> None:
    """Memory linear in the header: 10,000 columns used to take 1.4 GB (one select of 80,000
    expressions); in groups of 256 columns it stays near 0.3 GB."""
    rng = np.random.default_rng(23)
    data = rng.normal(size=(4, 10_000))
    pl.DataFrame(data, schema=[f"c{i}" for i in range(10_000)], orient="row").write_csv(workdir / "wide.csv")
    code, stderr, rss = rss_of(["fit", "wide.csv", "-o", "wide.json", "-q"], workdir)
    assert code == 0, stderr
    assert rss < 700 << 20, f"peak RSS {rss >> 20} MiB"
    doc = json.loads((workdir / "wide.json").read_text())
    assert len(doc["columns"]) == 10_000
    stds = np.array([c["std"] for c in doc["columns"]])
    np.testing.assert_allclose(stds, data.std(axis=0), rtol=1e-13)


def test_a_model_with_an_unused_huge_entry_is_read_in_bounded_memory(workdir: Path, model_file: Path) -> None:
    """Only the entries the architecture needs are read: a 2 GB entry of zeros (2 MB compressed)
    that used to be decompressed whole costs nothing."""
    shutil.copy(model_file, workdir / "model.npz")
    model_with_unused_huge_entry(workdir)
    assert (workdir / "padded.npz").stat().st_size < 16 << 20
    code, stderr, rss = rss_of(["predict", "classes.csv", "--model", "padded.npz", "-o", "padded.csv"], workdir)
    assert code == 0, stderr
    assert rss < 600 << 20, f"peak RSS {rss >> 20} MiB"
    assert run_plain(workdir, "predict", "classes.csv", "--model", "model.npz", "-o", "plain.csv")
    assert (workdir / "padded.csv").read_bytes() == (workdir / "plain.csv").read_bytes()


def run_plain(folder: Path, *args: str) -> bool:
    return subprocess.run([*NORMCLI, *args, "-q"], cwd=folder, capture_output=True, timeout=300).returncode == 0


def test_out_of_memory_in_python_is_a_clean_error(workdir: Path, monkeypatch) -> None:
    """A Python MemoryError (numpy failing to allocate) is exit 1 with one line; Polars' own
    allocation failures abort the process (exit 134), which docs/errors.md documents."""
    import normcli.scaling.fit as fit_module

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(fit_module, "fit_sources", no_memory)
    result = invoke(workdir, "fit", "ok.csv", "-o", "out.json", monkeypatch=monkeypatch)
    assert_clean_error(result.exit_code, result.stdout, result.stderr, 1, ("out of memory",))


def test_a_stream_record_longer_than_the_limit_is_refused(workdir: Path, monkeypatch) -> None:
    """An unclosed quote makes the rest of a stream one record: refused past MAX_RECORD_BYTES
    (256 MiB; 1 MiB here) instead of held in memory while its end is awaited."""
    import normcli.data.streams as streams

    monkeypatch.setattr(streams, "MAX_RECORD_BYTES", 1 << 20)
    data = b"a,b\n1,2\n3,\"" + b"x" * (6 << 20)  # past the first 4 MiB chunk, still open
    monkeypatch.chdir(workdir)
    result = runner.invoke(app, ["fit", "-o", "out.json"], input=data)
    assert_clean_error(result.exit_code, result.stdout, result.stderr, 1, ("record at line 3", "longer than 1 MiB", "quote"))
    assert not (workdir / "out.json").exists()


@pytest.mark.parametrize(("args", "words"), [(["fit", "-o", "out.json"], ("has no data rows",)), (["transform", "-s", "stats.json", "-o", "out.csv"], ("has no data rows",))])
def test_12_header_only_stream(workdir: Path, monkeypatch, args: list[str], words: tuple[str, ...]) -> None:
    """As for a file (case 12); it used to say 'no numeric column' and 'columns not found'."""
    before = snapshot(workdir)
    monkeypatch.chdir(workdir)
    result = runner.invoke(app, args, input=b"a,b\n")
    assert_clean_error(result.exit_code, result.stdout, result.stderr, 1, words)
    assert snapshot(workdir) == before


def test_fit_allow_overlap_counts_a_file_twice(workdir: Path, monkeypatch) -> None:
    doc = fitted(workdir, "ok.csv", "ok.csv", "--allow-overlap", monkeypatch=monkeypatch)
    assert doc["inputs"]["row_count"] == 6
    x = np.array([1, 3, 5, 1, 3, 5], dtype=float)
    assert column(doc, "a")["std"] == pytest.approx(x.std(), rel=1e-15)


def test_predict_warns_when_the_target_is_not_the_trained_one(workdir: Path, model_file: Path, monkeypatch) -> None:
    classes_csv(workdir)
    shutil.copy(model_file, workdir / "model.npz")
    result = invoke(workdir, "predict", "classes.csv", "--model", "model.npz", "--target", "x1", "-o", "out.csv", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    assert "warning: --target 'x1' is not the column the model was trained to predict ('y')" in result.stderr


def test_val_split_0_says_there_is_no_early_stopping(workdir: Path, monkeypatch) -> None:
    classes_csv(workdir)
    result = invoke(workdir, "train", "classes.csv", "--target", "y", "--val-split", "0", "--epochs", "3", "-o", "m.npz", "--json", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    assert "--val-split 0: no validation rows, so no early stopping: all 3 epochs run" in result.stderr
    assert json.loads(result.stdout)["epochs_run"] == 3


def test_26_all_null_column_is_skipped_and_named(workdir: Path, monkeypatch) -> None:
    """A CSV column with no values: skipped as having none (not as text), and named."""
    shutil.copy(DATA / "all-null-column-b.csv", workdir / "nulls.csv")
    result = invoke(workdir, "fit", "nulls.csv", "-o", "out.json", monkeypatch=monkeypatch)
    assert result.exit_code == 0 and "column 'b' has no values; skipped" in result.stderr
    assert "non-numeric" not in result.stderr
    doc = json.loads((workdir / "out.json").read_text())
    assert [c["name"] for c in doc["columns"]] == ["a"]
    assert [(s["name"], s["dtype"], s["reason"]) for s in doc["skipped_columns"]] == [("b", "Null", "no values (all missing)")]
    before = snapshot(workdir)
    only = invoke(workdir, "fit", "nulls.csv", "--columns", "b", "-o", "out2.json", monkeypatch=monkeypatch)
    assert_clean_error(only.exit_code, only.stdout, only.stderr, 1, ("column 'b'",))
    assert snapshot(workdir) == before


def test_26_all_null_float_column_is_skipped_as_having_no_values(workdir: Path, monkeypatch) -> None:
    pl.DataFrame({"a": [1.0, 2.0, 4.0], "b": pl.Series([None, None, None], dtype=pl.Float64)}).write_parquet(
        workdir / "nulls.parquet"
    )
    result = invoke(workdir, "fit", "nulls.parquet", "-o", "-", monkeypatch=monkeypatch)
    assert result.exit_code == 0 and "column 'b' has no values; skipped" in result.stderr
    doc = json.loads(result.stdout)
    assert [c["name"] for c in doc["columns"]] == ["a"]
    assert [(s["name"], s["reason"]) for s in doc["skipped_columns"]] == [("b", "no values (all missing)")]


def test_27_single_row_has_std_zero_and_scale_one(workdir: Path, monkeypatch) -> None:
    shutil.copy(DATA / "single-row.csv", workdir / "one.csv")
    doc = fitted(workdir, "one.csv", monkeypatch=monkeypatch)
    assert column(doc, "a")["std"] == 0.0 and column(doc, "a")["scale"] == 1.0
    assert column(doc, "a")["mean"] == 1.5


def test_29_values_near_1e300_have_a_finite_correct_std(workdir: Path, monkeypatch) -> None:
    shutil.copy(DATA / "values-near-1e300.csv", workdir / "huge.csv")
    doc = fitted(workdir, "huge.csv", monkeypatch=monkeypatch)  # fails on NaN/Infinity literals
    values = np.array([1e300, -1e300, 1.5e300, 1.7976931348623157e308])
    scaled = values / 2.0**1000  # exact: a power of two
    assert column(doc, "a")["mean"] == pytest.approx(scaled.mean() * 2.0**1000, rel=1e-15)
    assert column(doc, "a")["std"] == pytest.approx(scaled.std() * 2.0**1000, rel=1e-15)


@pytest.mark.parametrize("values", [[0.0, 5.055288136530356e-215], [0.0, 2.225073858507e-311], [1e-320, 2.225073858507e-311]])
def test_29_tiny_and_subnormal_values_keep_their_spread(workdir: Path, monkeypatch, values) -> None:
    """Squares of such values underflow to 0 (numpy's own std of the first pair is 0)."""
    (workdir / "tiny.csv").write_text("a\n" + "\n".join(repr(v) for v in values) + "\n")
    doc = fitted(workdir, "tiny.csv", monkeypatch=monkeypatch)
    x = np.array(values)
    assert column(doc, "a")["std"] == pytest.approx(np.std(x * 2.0**1000) / 2.0**1000, rel=1e-15)
    assert column(doc, "a")["std"] > 0
    (workdir / "tiny.json").write_text(json.dumps(doc))
    result = invoke(workdir, "transform", "tiny.csv", "-s", "tiny.json", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    assert pl.read_csv(result.stdout.encode())["a"].to_list() == [-1.0, 1.0]


def test_30_integers_above_2_pow_53_warn_and_match_float64(workdir: Path, monkeypatch) -> None:
    shutil.copy(DATA / "ints-above-2-pow-53.csv", workdir / "big.csv")
    result = invoke(workdir, "fit", "big.csv", "-o", "-", monkeypatch=monkeypatch)
    assert result.exit_code == 0 and "beyond 2^53" in result.stderr
    values = np.array([9007199254740993, 9007199254740995, 1, -9007199254740997], dtype=np.float64)
    doc = json.loads(result.stdout)
    assert column(doc, "a")["mean"] == pytest.approx(values.mean(), rel=1e-15)
    assert column(doc, "a")["std"] == pytest.approx(values.std(), rel=1e-15)


@pytest.mark.parametrize("name", ["bool-date-datetime.csv", "bool-date-datetime.parquet"])
def test_31_boolean_date_datetime_columns_are_skipped(workdir: Path, monkeypatch, name: str) -> None:
    shutil.copy(DATA / name, workdir / name)
    result = invoke(workdir, "fit", name, "-o", "-", monkeypatch=monkeypatch)
    assert result.exit_code == 0
    assert "skipped non-numeric columns: flag, day, stamp" in result.stderr
    doc = json.loads(result.stdout)
    assert [c["name"] for c in doc["columns"]] == ["x"]
    assert [s["name"] for s in doc["skipped_columns"]] == ["flag", "day", "stamp"]
    assert all(s["reason"].startswith("non-numeric") for s in doc["skipped_columns"])


def test_32_nan_as_text_is_missing_by_default_and_nan_on_request(workdir: Path, monkeypatch) -> None:
    shutil.copy(DATA / "nan-as-text.csv", workdir / "nan.csv")
    default = column(fitted(workdir, "nan.csv", monkeypatch=monkeypatch), "a")
    assert (default["count"], default["null_count"], default["nan_count"]) == (3, 2, 0)
    as_nan = column(fitted(workdir, "nan.csv", "--null-values", "", monkeypatch=monkeypatch), "a")
    assert (as_nan["count"], as_nan["null_count"], as_nan["nan_count"]) == (3, 0, 2)
    for doc in (default, as_nan):
        assert doc["mean"] == pytest.approx(np.mean([1, 3, 8]), rel=1e-15)
        assert doc["std"] == pytest.approx(np.std([1, 3, 8]), rel=1e-15)


def test_short_row_reads_its_missing_cells_as_null(workdir: Path, monkeypatch) -> None:
    shutil.copy(DATA / "short-row-line-3.csv", workdir / "short.csv")
    doc = fitted(workdir, "short.csv", monkeypatch=monkeypatch)
    assert (column(doc, "b")["count"], column(doc, "b")["null_count"]) == (2, 1)
    assert column(doc, "b")["mean"] == 4.0


def test_44_batch_size_above_the_row_count_trains_on_full_batches(workdir: Path, monkeypatch) -> None:
    classes_csv(workdir)
    result = invoke(
        workdir, "train", "classes.csv", "--target", "y", "--batch-size", "1000", "--epochs", "2",
        "-o", "model.npz", "--json", monkeypatch=monkeypatch,
    )
    assert result.exit_code == 0, result.stderr
    assert (workdir / "model.npz").exists()
    metrics = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in metrics"))
    assert metrics


def test_45_divergence_prints_no_nan_table(workdir: Path, monkeypatch) -> None:
    classes_csv(workdir)
    result = invoke(
        workdir, "train", "regression.csv", "--target", "y", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "5", "-o", "m.npz",
        monkeypatch=monkeypatch,
    )
    assert result.exit_code == 1
    assert "nan" not in result.stdout.lower() and result.stdout == ""
    assert not (workdir / "m.npz").exists()
