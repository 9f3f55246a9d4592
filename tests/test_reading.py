"""Reading options xsv/csvkit/Miller users reach for: -d/--delimiter, --no-headers, --text and
--dtype, numbers written with spaces or a '+', and CSV files concatenated with their headers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import NORMCLI, snapshot
from normcli.cli import app

runner = CliRunner()
ROWS = [(1.5, 10, "x"), (-2.25, 20, "y;z"), (4.0, 35, "w")]
A = np.array([r[0] for r in ROWS])
B = np.array([r[1] for r in ROWS], dtype=float)


def invoke(folder: Path, *args: str, input: bytes | None = None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(folder)
    return runner.invoke(app, list(args), input=input)


def delimited(delimiter: str, header: bool = True) -> str:
    def cell(value: object) -> str:
        text = str(value)
        return f'"{text}"' if delimiter in text else text

    lines = [delimiter.join(["a", "b", "t"])] if header else []
    lines += [delimiter.join(cell(v) for v in row) for row in ROWS]
    return "\n".join(lines) + "\n"


def assert_fitted_like_numpy(doc: dict, names: tuple[str, str] = ("a", "b")) -> None:
    columns = {c["name"]: c for c in doc["columns"]}
    assert list(columns) == list(names)
    for name, values in zip(names, (A, B), strict=True):
        assert columns[name]["mean"] == pytest.approx(values.mean(), rel=1e-15)
        assert columns[name]["std"] == pytest.approx(values.std(), rel=1e-15)


# --------------------------------------------------------------------------- -d / --delimiter


@pytest.mark.parametrize(
    ("option", "delimiter"),
    [(",", ","), (";", ";"), ("|", "|"), ("\\t", "\t"), ("tab", "\t"), ("TAB", "\t"), ("\t", "\t"), ("semicolon", ";")],
)
def test_delimiter_from_a_file_and_a_pipe(tmp_path: Path, monkeypatch, option: str, delimiter: str) -> None:
    (tmp_path / "d.csv").write_text(delimited(delimiter))
    for args, data in ((["d.csv"], None), (["-"], delimited(delimiter).encode())):
        result = invoke(tmp_path, "fit", *args, "-d", option, "-o", "-", input=data, monkeypatch=monkeypatch)
        assert result.exit_code == 0, result.stderr
        assert_fitted_like_numpy(json.loads(result.stdout))


def test_separator_is_kept_as_an_alias(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "d.csv").write_text(delimited("\t"))
    result = invoke(tmp_path, "fit", "d.csv", "--separator", "\\t", "-o", "-", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    assert_fitted_like_numpy(json.loads(result.stdout))


@pytest.mark.parametrize("source", ["file", "pipe"])
def test_transform_writes_csv_with_the_inputs_delimiter(tmp_path: Path, monkeypatch, source: str) -> None:
    (tmp_path / "d.csv").write_text(delimited(";"))
    assert invoke(tmp_path, "fit", "d.csv", "-d", ";", "-o", "s.json", "-q", monkeypatch=monkeypatch).exit_code == 0
    args, data = (["d.csv"], None) if source == "file" else ([], delimited(";").encode())
    result = invoke(tmp_path, "transform", *args, "-d", ";", "-s", "s.json", input=data, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "a;b;t"
    assert lines[2].endswith(';"y;z"')  # passed through, quoted as the delimiter needs
    scaled = pl.read_csv(result.stdout.encode(), separator=";")
    np.testing.assert_allclose(scaled["a"].to_numpy(), (A - A.mean()) / A.std(), rtol=1e-15)
    tsv = invoke(tmp_path, "transform", "d.csv", "-d", ";", "-s", "s.json", "--output-format", "tsv", monkeypatch=monkeypatch)
    assert tsv.stdout.splitlines()[0] == "a\tb\tt"


@pytest.mark.parametrize("bad", [";;", "", "\\n", '"', "tabs"])
def test_a_bad_delimiter_is_a_usage_error(tmp_path: Path, monkeypatch, bad: str) -> None:
    (tmp_path / "d.csv").write_text(delimited(","))
    before = snapshot(tmp_path)
    result = invoke(tmp_path, "fit", "d.csv", "-d", bad, "-o", "out.json", monkeypatch=monkeypatch)
    assert result.exit_code == 2 and result.stderr.startswith("normcli: error: --delimiter must be one character")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- --no-headers


@pytest.mark.parametrize("source", ["file", "pipe"])
def test_no_headers_names_columns_from_1_and_writes_no_header(tmp_path: Path, monkeypatch, source: str) -> None:
    text = delimited(",", header=False)
    (tmp_path / "d.csv").write_text(text)
    args, data = (["d.csv"], None) if source == "file" else (["-"], text.encode())
    fitted = invoke(tmp_path, "fit", *args, "--no-headers", "-o", "-", input=data, monkeypatch=monkeypatch)
    assert fitted.exit_code == 0, fitted.stderr
    doc = json.loads(fitted.stdout)
    assert_fitted_like_numpy(doc, ("column_1", "column_2"))
    assert doc["inputs"]["row_count"] == 3  # the first line is data
    (tmp_path / "s.json").write_text(fitted.stdout)
    scaled = invoke(tmp_path, "transform", *args, "--no-headers", "-s", "s.json", input=data, monkeypatch=monkeypatch)
    assert scaled.exit_code == 0, scaled.stderr
    out = pl.read_csv(scaled.stdout.encode(), has_header=False)
    assert out.height == 3  # no header line written
    np.testing.assert_allclose(out[:, 1].to_numpy(), (B - B.mean()) / B.std(), rtol=1e-15)
    assert out[:, 2].to_list() == ["x", "y;z", "w"]
    only = invoke(tmp_path, "fit", *args, "--no-headers", "--columns", "2", "-o", "-", input=data, monkeypatch=monkeypatch)
    assert [c["name"] for c in json.loads(only.stdout)["columns"]] == ["column_2"]


def test_no_headers_on_parquet_is_a_usage_error(tmp_path: Path, monkeypatch) -> None:
    pl.DataFrame({"a": A}).write_parquet(tmp_path / "d.parquet")
    result = invoke(tmp_path, "fit", "d.parquet", "--no-headers", "-o", "out.json", monkeypatch=monkeypatch)
    assert result.exit_code == 2 and "--no-headers applies to CSV and TSV, not parquet" in result.stderr
    assert not (tmp_path / "out.json").exists()


# --------------------------------------------------------------------------- --text, --dtype


ZIPS = "zip,amount\n00501,5\n02134,6\n90210,7\n"


def test_text_keeps_a_zip_code_unscaled_and_unchanged(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "z.csv").write_text(ZIPS)
    default = invoke(tmp_path, "fit", "z.csv", "-o", "-", monkeypatch=monkeypatch)
    assert [c["name"] for c in json.loads(default.stdout)["columns"]] == ["zip", "amount"]  # the problem
    for option in (["--text", "zip"], ["--dtype", "zip=text"], ["--text", "1"]):
        result = invoke(tmp_path, "fit", "z.csv", *option, "-o", "s.json", monkeypatch=monkeypatch)
        assert result.exit_code == 0, result.stderr
        doc = json.loads((tmp_path / "s.json").read_text())
        assert [c["name"] for c in doc["columns"]] == ["amount"]
        assert [(s["name"], s["dtype"]) for s in doc["skipped_columns"]] == [("zip", "String")]
    out = invoke(tmp_path, "transform", "z.csv", "-s", "s.json", monkeypatch=monkeypatch)
    assert [line.split(",")[0] for line in out.stdout.splitlines()] == ["zip", "00501", "02134", "90210"]


def test_dtype_reads_integers_as_floats_and_refuses_a_non_integer(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "z.csv").write_text(ZIPS)
    doc = json.loads(invoke(tmp_path, "fit", "z.csv", "--dtype", "amount=float", "-o", "-", monkeypatch=monkeypatch).stdout)
    assert {c["name"]: c["dtype"] for c in doc["columns"]}["amount"] == "Float64"
    (tmp_path / "f.csv").write_text("a,b\n1,2\n2,3\n2.5,4\n")
    before = snapshot(tmp_path)
    bad = invoke(tmp_path, "fit", "f.csv", "--dtype", "a=int", "-o", "out.json", monkeypatch=monkeypatch)
    assert bad.exit_code == 1
    assert "column 'a' has the value '2.5' at line 4, which is not an integer" in bad.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--dtype", "amount=decimal"], "--dtype: unknown type 'decimal'"), (["--dtype", "amount"], "--dtype takes COLUMN=TYPE"),
     (["--text", "nope"], "--text: no column named 'nope'")],
)
def test_bad_type_options_are_usage_errors(tmp_path: Path, monkeypatch, args: list[str], message: str) -> None:
    (tmp_path / "z.csv").write_text(ZIPS)
    result = invoke(tmp_path, "fit", "z.csv", *args, "-o", "out.json", monkeypatch=monkeypatch)
    assert result.exit_code == 2 and result.stderr.startswith(f"normcli: error: {message}"), result.stderr
    assert not (tmp_path / "out.json").exists()


# --------------------------------------------------------------------------- padded and signed numbers


PADDED = 'a,b,c\n 5 ,+1, x \n6,-2.5,y\n" 7",3,z\n'


@pytest.mark.parametrize("source", ["file", "pipe"])
def test_numbers_with_spaces_or_a_plus_are_numbers(tmp_path: Path, monkeypatch, source: str) -> None:
    (tmp_path / "p.csv").write_text(PADDED)
    args, data = (["p.csv"], None) if source == "file" else (["-"], PADDED.encode())
    result = invoke(tmp_path, "fit", *args, "-o", "-", input=data, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    columns = {c["name"]: c for c in doc["columns"]}
    assert {n: c["dtype"] for n, c in columns.items()} == {"a": "Int64", "b": "Float64"}
    for name, values in (("a", [5, 6, 7]), ("b", [1, -2.5, 3])):
        assert columns[name]["mean"] == pytest.approx(np.mean(values), rel=1e-15)
        assert columns[name]["std"] == pytest.approx(np.std(values), rel=1e-15)
    (tmp_path / "s.json").write_text(result.stdout)
    scaled = invoke(tmp_path, "transform", *args, "-s", "s.json", input=data, monkeypatch=monkeypatch)
    assert scaled.exit_code == 0, scaled.stderr
    out = pl.read_csv(scaled.stdout.encode())
    np.testing.assert_allclose(out["a"].to_numpy(), (np.array([5, 6, 7]) - 6) / np.std([5, 6, 7]), rtol=1e-15)
    assert scaled.stdout.splitlines()[1].endswith(", x ")  # text passes through as written


def test_a_word_after_padded_numbers_is_an_error_naming_its_line(tmp_path: Path, monkeypatch) -> None:
    rows = [f" {i} " for i in range(12_000)]
    rows[11_000] = " oops "
    (tmp_path / "p.csv").write_text("a\n" + "\n".join(rows) + "\n")
    before = snapshot(tmp_path)
    for args, data in ((["p.csv"], None), (["-"], (tmp_path / "p.csv").read_bytes())):
        result = invoke(tmp_path, "fit", *args, "-o", "out.json", input=data, monkeypatch=monkeypatch)
        assert result.exit_code == 1, result.stderr
        assert "column 'a' has the value ' oops ' at line 11002, which is not a number" in result.stderr
        assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- concatenated CSV files


def shards(folder: Path, rows: int) -> list[Path]:
    paths = []
    rng = np.random.default_rng(rows)
    for k in range(3):
        path = folder / f"part-{k}.csv"
        pl.DataFrame({"x": rng.normal(size=rows), "n": rng.integers(0, 9, rows)}).write_csv(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("rows", [5, 12_000])  # the repeat inside the first rows, or far below
@pytest.mark.parametrize("command", ["fit", "transform"])
def test_concatenated_csv_files_are_named_with_the_fix(tmp_path: Path, rows: int, command: str) -> None:
    paths = shards(tmp_path, rows)
    assert subprocess.run([*NORMCLI, "fit", "part-0.csv", "-o", "s.json", "-q"], cwd=tmp_path).returncode == 0
    (tmp_path / "all.csv").write_bytes(b"".join(p.read_bytes() for p in paths))
    args = ["-o", "out.json"] if command == "fit" else ["-s", "s.json", "-o", "out.csv"]
    before = snapshot(tmp_path)
    for cmd, stdin in ((f"cat part-*.csv | {' '.join(NORMCLI)} {command} - {' '.join(args)}", None),
                       (f"{' '.join(NORMCLI)} {command} all.csv {' '.join(args)}", None)):  # fmt: skip
        done = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, stdin=stdin)
        assert done.returncode == 1
        assert f"line {rows + 2} repeats the header line" in done.stderr
        assert "awk 'FNR > 1 || NR == 1'" in done.stderr and len(done.stderr.splitlines()) == 1
        assert snapshot(tmp_path) == before


def test_the_fixes_the_message_gives_work(tmp_path: Path) -> None:
    shards(tmp_path, 50)
    glob = subprocess.run([*NORMCLI, "fit", "part-*.csv", "-o", "-"], cwd=tmp_path, capture_output=True, text=True)
    piped = subprocess.run(
        f"awk 'FNR > 1 || NR == 1' part-*.csv | {' '.join(NORMCLI)} fit - -o -",
        shell=True, cwd=tmp_path, capture_output=True, text=True,
    )
    assert glob.returncode == 0 and piped.returncode == 0, piped.stderr
    by_glob, by_pipe = json.loads(glob.stdout), json.loads(piped.stdout)
    assert by_glob["inputs"]["row_count"] == by_pipe["inputs"]["row_count"] == 150
    for a, b in zip(by_glob["columns"], by_pipe["columns"], strict=True):
        assert (a["name"], a["count"], a["min"], a["max"]) == (b["name"], b["count"], b["min"], b["max"])
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-14) and a["std"] == pytest.approx(b["std"], rel=1e-14)


def test_a_word_that_makes_a_number_column_text_is_named(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "w.csv").write_text("a,b\n 1 ,2\n x ,3\n5,4\n")
    result = invoke(tmp_path, "fit", "w.csv", "-o", "-", monkeypatch=monkeypatch)
    assert result.exit_code == 0
    assert "normcli: warning: column 'a' is skipped as text, but most of its values are numbers: ' x ' at line 3 of w.csv" in result.stderr
    assert "--dtype 'a=float'" in result.stderr
    forced = invoke(tmp_path, "fit", "w.csv", "--dtype", "a=float", "--null-values", "x", "-o", "-", monkeypatch=monkeypatch)
    assert forced.exit_code == 0, forced.stderr
    a = next(c for c in json.loads(forced.stdout)["columns"] if c["name"] == "a")
    assert (a["count"], a["null_count"], a["mean"]) == (2, 1, 3.0)


def test_text_and_dtype_on_parquet(tmp_path: Path, monkeypatch) -> None:
    pl.DataFrame({"zip": [501, 2134, 90210], "amount": [5, 6, 7]}).write_parquet(tmp_path / "z.parquet")
    doc = json.loads(invoke(tmp_path, "fit", "z.parquet", "--text", "zip", "--dtype", "amount=float", "-o", "-", monkeypatch=monkeypatch).stdout)
    assert [(c["name"], c["dtype"]) for c in doc["columns"]] == [("amount", "Float64")]
    assert [(s["name"], s["dtype"]) for s in doc["skipped_columns"]] == [("zip", "String")]
    (tmp_path / "s.json").write_text(json.dumps(doc))
    out = invoke(tmp_path, "transform", "z.parquet", "-s", "s.json", "--text", "zip", "-o", "out.parquet", monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.stderr
    back = pl.read_parquet(tmp_path / "out.parquet")
    assert back["zip"].dtype == pl.String and back["zip"].to_list() == ["501", "2134", "90210"]
