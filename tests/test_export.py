"""``normcli export``: SQL run in DuckDB, SQLite and PostgreSQL, and ONNX run in onnxruntime, give
``normcli transform``'s float64 results bit for bit.

The data are awkward on purpose: nulls, NaN, a 1e12 offset (where a one-term centre or a float32
constant would be far off), column names with spaces, quotes and non-ASCII letters, and group keys
with quotes and nulls. PostgreSQL runs from the ``pgserver`` wheel (a real server, started here).
"""

from __future__ import annotations

import csv as csv_module
import io
import json
import sqlite3
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from normcli.cli import app
from normcli.errors import DataError, UsageError
from normcli.scaling.export import ExportOptions, SQLite, export_onnx, export_sql
from normcli.scaling.fit import fit
from normcli.scaling.statsfile import load_stats

runner = CliRunner()
ROWS = 3000
NAMES = ['we"ird x', "ünï code", "with space", "i", "mm"]

# fit options, then transform/export options
VARIANTS = {
    "plain": ([], []),
    "groups-clip-impute-mean": (["--by", "grp key", "--method-for", "mm=minmax"], ["--clip", "--impute", "mean"]),
    "groups-null-impute-zero": (["--by", "grp key"], ["--unknown-group", "null", "--impute", "zero"]),
    "maxabs-clip": (["--method-for", "mm=maxabs", "--method-for", "i=minmax"], ["--clip"]),
    "inverse": ([], ["--inverse"]),
    "weighted-constant": (["--weight", "w"], ["--impute", "constant=-7.5"]),
    "int-groups": (["--by", "i"], []),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(17)
    x = 1e12 + rng.normal(size=ROWS)
    x[rng.random(ROWS) < 0.05] = np.nan
    frame = pl.DataFrame(
        {
            "row": np.arange(ROWS),
            "grp key": pl.Series(rng.choice(["a", "b", "c'q", "NULL"], ROWS).tolist()).replace("NULL", None),
            'we"ird x': pl.Series(x, nan_to_null=False),
            "ünï code": rng.normal(size=ROWS) * 1e-3 + 5,
            "with space": rng.exponential(size=ROWS) * 1e5,
            "i": rng.integers(-5, 5, ROWS),
            "mm": rng.exponential(size=ROWS),
            "w": rng.integers(0, 4, ROWS),
            "text": rng.choice(["p", 'q"r', "s,t"], ROWS),
        }
    ).with_columns(pl.when(pl.Series(rng.random(ROWS) < 0.05)).then(None).otherwise(pl.col("ünï code")).alias("ünï code"))
    frame.write_parquet(folder / "data.parquet")
    # new data: unseen groups, values beyond the fitted range
    new = frame.with_columns(
        pl.when(pl.col("row") % 7 == 0).then(pl.lit("unseen")).otherwise(pl.col("grp key")).alias("grp key"),
        pl.when(pl.col("row") % 11 == 0).then(pl.col("mm") * 5).otherwise(pl.col("mm")).alias("mm"),
        pl.when(pl.col("row") % 13 == 0).then(pl.lit(77)).otherwise(pl.col("i")).alias("i"),
    )
    new.write_parquet(folder / "new.parquet")
    return folder


def cli(folder: Path, *args: str) -> str:
    import os

    before = os.getcwd()
    os.chdir(folder)
    try:
        result = runner.invoke(app, list(args))
    finally:
        os.chdir(before)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def prepared(data: Path, variant: str) -> tuple[pl.DataFrame, list[str]]:
    """transform's output on new.parquet for a variant, and the export options."""
    fit_args, options = VARIANTS[variant]
    cli(data, "fit", "data.parquet", "-o", f"{variant}.json", "-q", "--exclude", "row", *fit_args)
    cli(data, "transform", "new.parquet", "-s", f"{variant}.json", "-o", f"{variant}.out.parquet", "-q", *options)
    return pl.read_parquet(data / f"{variant}.out.parquet"), options


def assert_bits(expected: pl.DataFrame, got: dict[str, np.ndarray], where: str) -> None:
    """Every fitted column identical bit for bit (NaN to NaN, null to null)."""
    for name in NAMES:
        if name not in got:
            continue
        want = expected[name].cast(pl.Float64)
        have = got[name]
        nulls = want.is_null().to_numpy()
        want = want.fill_null(0.0).to_numpy()
        assert (np.isnan(have) == nulls | np.isnan(want)).all() if where == "sqlite" else True
        same = (want.view(np.int64) == have.view(np.int64)) | (np.isnan(want) & np.isnan(have)) | (nulls & np.isnan(have))
        assert same.all(), (where, name, int((~same).sum()), want[~same][:3], have[~same][:3])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_duckdb_runs_the_sql_bit_for_bit(data: Path, variant: str) -> None:
    expected, options = prepared(data, variant)
    sql = cli(data, "export", f"{variant}.json", "--to", "sql", "--dialect", "duckdb", "--table", "main.new data", *options)
    con = duckdb.connect()
    con.sql(f"CREATE VIEW \"new data\" AS SELECT * FROM '{data / 'new.parquet'}'")
    got = con.sql(f"SELECT * FROM ({sql.rstrip().rstrip(';')}) ORDER BY \"row\"").pl()
    assert got.columns == expected.columns  # every column passes through, in place
    assert got["text"].equals(expected["text"]) and got["grp key"].equals(expected["grp key"])
    assert_bits(expected, {n: got[n].cast(pl.Float64).fill_null(float("nan")).to_numpy() for n in NAMES}, "duckdb")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sqlite_runs_the_sql_bit_for_bit(data: Path, variant: str) -> None:
    expected, options = prepared(data, variant)
    sql = cli(data, "export", f"{variant}.json", "--to", "sql", "--dialect", "sqlite", "--table", "new", *options)
    db = sqlite3.connect(":memory:")
    new = pl.read_parquet(data / "new.parquet")
    db.execute("CREATE TABLE new (" + ", ".join('"' + c.replace('"', '""') + '"' for c in new.columns) + ")")
    db.executemany(f"INSERT INTO new VALUES ({', '.join('?' * new.width)})", new.rows())  # NaN is stored as NULL
    cursor = db.execute(f"SELECT * FROM ({sql.rstrip().rstrip(';')}) ORDER BY \"row\"")
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    got = {n: np.array([np.nan if r[columns.index(n)] is None else r[columns.index(n)] for r in rows], dtype=float) for n in NAMES if n in columns}
    # SQLite has no NaN: a NaN cell is NULL there, before and after
    assert_bits(expected.with_columns(pl.col(NAMES).fill_nan(None)), got, "sqlite")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    import os

    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))  # pgserver's platformdirs
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.mark.parametrize("variant", ["plain", "groups-clip-impute-mean", "groups-null-impute-zero", "int-groups"])
def test_postgres_runs_the_sql_bit_for_bit(data: Path, postgres, variant: str) -> None:
    expected, options = prepared(data, variant)
    sql = cli(data, "export", f"{variant}.json", "--to", "sql", "--dialect", "postgres", "--table", "new", *options)
    new = pl.read_parquet(data / "new.parquet")
    csv = data / "new.csv"
    new.write_csv(csv)  # shortest round-trip floats, NaN as NaN, null as empty
    types = {pl.Int64: "bigint", pl.Float64: "double precision", pl.String: "text"}
    columns = ", ".join('"' + c.replace('"', '""') + f'" {types[t]}' for c, t in new.schema.items())
    script = (
        "\\set ON_ERROR_STOP on\n\\set QUIET on\n"
        f"DROP TABLE IF EXISTS new; CREATE TABLE new ({columns});\n"
        f"\\copy new FROM '{csv}' WITH (FORMAT csv, HEADER true)\n"
        f"COPY (SELECT * FROM ({sql.rstrip().rstrip(';')}) AS q ORDER BY \"row\") TO STDOUT WITH (FORMAT csv, HEADER true);\n"
    )
    rows = list(csv_module.reader(io.StringIO(postgres.psql(script))))  # Polars keeps "" in CSV headers
    header, body = rows[0], rows[1:]
    got = {n: np.array([float(r[header.index(n)]) if r[header.index(n)] else np.nan for r in body]) for n in NAMES}
    assert_bits(expected, got, "postgres")
    assert [r[header.index("text")] for r in body] == new["text"].to_list()


@pytest.mark.parametrize("variant", ["plain", "groups-clip-impute-mean", "groups-null-impute-zero", "maxabs-clip", "inverse", "weighted-constant", "int-groups"])
def test_onnxruntime_runs_the_model_bit_for_bit(data: Path, variant: str) -> None:
    import onnx
    import onnxruntime

    expected, options = prepared(data, variant)
    cli(data, "export", f"{variant}.json", "--to", "onnx", "-o", f"{variant}.onnx", "-q", *options)
    model = onnx.load(data / f"{variant}.onnx")
    assert "Scaler" not in {node.op_type for node in model.graph.node}  # float32 offsets: never
    assert all(t.data_type == onnx.TensorProto.DOUBLE for t in model.graph.initializer)
    session = onnxruntime.InferenceSession(str(data / f"{variant}.onnx"))
    new = pl.read_parquet(data / "new.parquet")
    feeds = {}
    for spec in session.get_inputs():
        column = new[spec.name]
        if spec.type == "tensor(string)":
            feeds[spec.name] = np.array(column.fill_null("<no key>").to_list(), dtype=object)
        elif spec.type == "tensor(int64)":
            feeds[spec.name] = column.to_numpy()
        else:
            feeds[spec.name] = column.cast(pl.Float64).fill_null(float("nan")).to_numpy()  # NaN = missing
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    got = {name: outputs[f"{name}_scaled"] for name in NAMES if f"{name}_scaled" in outputs}
    if "--by" in VARIANTS[variant][0] and "grp key" in VARIANTS[variant][0]:
        # a null key cannot be fed to a model: compare the rows that have a key
        keep = new["grp key"].is_not_null().to_numpy()
        expected = expected.filter(pl.Series(keep))
        got = {n: v[keep] for n, v in got.items()}
    assert_bits(expected, got, "onnx")


def test_sqlite_constants_are_exact_where_its_decimal_parser_is_not() -> None:
    db = sqlite3.connect(":memory:")
    rng = np.random.default_rng(0)
    values = (rng.normal(size=400) * 10.0 ** rng.integers(-300, 300, 400)).tolist() + [5e-324, 1.7976931348623157e308, -0.0, 0.1]
    for value in values:
        assert db.execute(f"SELECT {SQLite().number(value)}").fetchone()[0] == value


def test_identifiers_are_quoted_and_checked(data: Path) -> None:
    stats = load_stats(data / "plain.json") if (data / "plain.json").exists() else fit([str(data / "data.parquet")])
    sql = export_sql(stats, dialect="postgres", table='s."t"')
    assert 'FROM "s"."""t""" AS t' in sql and '"we""ird x"' in sql
    with pytest.raises(UsageError, match="unknown --dialect"):
        export_sql(stats, dialect="oracle")
    for table in ("", "main.", "a..b"):  # "main." used to give FROM "main"."", which no database reads
        with pytest.raises(UsageError, match="--table needs a name"):
            export_sql(stats, table=table)
    with pytest.raises(UsageError, match="cannot be exported"):
        export_sql(stats, options=ExportOptions(unknown_group="error"))
    bad = pl.DataFrame({"a\x00b": [1.0, 2.0]})
    path = data / "nul.parquet"
    bad.write_parquet(path)
    with pytest.raises(DataError, match="NUL"):
        export_sql(fit([str(path)]))


def test_onnx_export_refusals(data: Path, tmp_path: Path, monkeypatch) -> None:
    two = fit([str(data / "data.parquet")], by=["grp key", "i"])
    with pytest.raises(UsageError, match="one --by column"):
        export_onnx(two)
    monkeypatch.chdir(data)
    result = runner.invoke(app, ["export", "plain.json", "--to", "onnx"])
    assert result.exit_code == 2 and "-o" in result.stderr
    result = runner.invoke(app, ["export", "plain.json", "--to", "xml"])
    assert result.exit_code == 2 and "unknown --to 'xml'" in result.stderr


def test_export_writes_a_file_atomically_and_never_an_input(data: Path, monkeypatch) -> None:
    monkeypatch.chdir(data)
    cli(data, "fit", "data.parquet", "-o", "plain.json", "-q", "--exclude", "row")
    result = runner.invoke(app, ["export", "plain.json", "--to", "sql", "-o", "plain.json"])
    assert result.exit_code == 2 and "output is one of the inputs" in result.stderr
    result = runner.invoke(app, ["export", "plain.json", "--to", "sql", "-o", "scale.sql"])
    assert result.exit_code == 0 and "wrote scale.sql" in result.stderr
    assert (data / "scale.sql").read_text().startswith("-- normcli")
    doc = json.loads((data / "plain.json").read_text())
    assert all(f"CAST('{c['center']!r}' AS DOUBLE)" in (data / "scale.sql").read_text() for c in doc["columns"])


@pytest.fixture(scope="module")
def datetimes(tmp_path_factory) -> Path:
    """Group keys that are datetimes: naive (µs, ms, ns) and with a time zone."""
    import datetime as dt

    folder = tmp_path_factory.mktemp("datetimes")
    rng = np.random.default_rng(5)
    n = 90
    stamps = pl.Series([dt.datetime(2024, 3, 31, 1, 30, i % 3, 250_000 * (i % 2)) for i in range(n)])
    pl.DataFrame({
        "row": np.arange(n),
        "us": stamps,
        "ms": stamps.dt.cast_time_unit("ms"),
        "ns": stamps.dt.cast_time_unit("ns"),
        "zoned": stamps.dt.replace_time_zone("Europe/Paris"),
        "x": rng.normal(size=n) * np.arange(1, n + 1) + 1e12,
    }).write_parquet(folder / "data.parquet")
    return folder


@pytest.mark.parametrize("key", ["us", "ms", "ns", "zoned"])
def test_duckdb_matches_datetime_keys_as_timestamps(datetimes: Path, key: str) -> None:
    """DuckDB's text of a timestamp ('2024-03-31 01:30:00') is not Polars' ('… 01:30:00.000000'),
    in which the stats keep the keys: the query compares timestamps. It used to compare texts, and
    every row took the pooled statistics."""
    cli(datetimes, "fit", "data.parquet", "-o", f"{key}.json", "-q", "--by", key, "--columns", "x")
    cli(datetimes, "transform", "data.parquet", "-s", f"{key}.json", "-o", f"{key}.out.parquet", "-q")
    expected = pl.read_parquet(datetimes / f"{key}.out.parquet")
    sql = cli(datetimes, "export", f"{key}.json", "--to", "sql", "--dialect", "duckdb")
    con = duckdb.connect()
    con.sql(f"CREATE VIEW data AS SELECT * FROM '{datetimes / 'data.parquet'}'")
    got = con.sql(f"SELECT * FROM ({sql.rstrip().rstrip(';')}) ORDER BY \"row\"").pl()
    # reference: each row's group mean and std by Polars over(), on x − 1e12 (exact: the same grid)
    frame = pl.read_parquet(datetimes / "data.parquet").with_columns(pl.col("x") - 1e12)
    reference = frame.select(((pl.col("x") - pl.col("x").mean().over(key)) / pl.col("x").std(ddof=0).over(key)).alias("x"))
    assert np.abs(got["x"].to_numpy() - reference["x"].to_numpy()).max() < 1e-9
    assert (got["x"].to_numpy().view(np.int64) == expected["x"].to_numpy().view(np.int64)).all()


@pytest.mark.parametrize("key", ["us", "zoned"])
def test_postgres_matches_datetime_keys_as_timestamps(datetimes: Path, postgres, key: str) -> None:
    cli(datetimes, "fit", "data.parquet", "-o", f"{key}.json", "-q", "--by", key, "--columns", "x")
    cli(datetimes, "transform", "data.parquet", "-s", f"{key}.json", "-o", f"{key}.out.parquet", "-q")
    expected = pl.read_parquet(datetimes / f"{key}.out.parquet")
    sql = cli(datetimes, "export", f"{key}.json", "--to", "sql", "--dialect", "postgres")
    frame = pl.read_parquet(datetimes / "data.parquet")
    csv = datetimes / f"{key}.csv"
    frame.with_columns(pl.col(key).dt.to_string("%Y-%m-%d %H:%M:%S%.f%:z" if key == "zoned" else "%Y-%m-%d %H:%M:%S%.f")).write_csv(csv)
    kind = "timestamptz" if key == "zoned" else "timestamp"
    script = (
        "\\set ON_ERROR_STOP on\n\\set QUIET on\n"
        "DROP TABLE IF EXISTS data; CREATE TABLE data (\"row\" bigint, "
        + ", ".join(f"\"{name}\" {kind if name == key else 'text'}" for name in ("us", "ms", "ns", "zoned"))
        + ", x double precision);\n"
        f"\\copy data FROM '{csv}' WITH (FORMAT csv, HEADER true)\n"
        f"COPY (SELECT * FROM ({sql.rstrip().rstrip(';')}) AS q ORDER BY \"row\") TO STDOUT WITH (FORMAT csv, HEADER true);\n"
    )
    rows = list(csv_module.reader(io.StringIO(postgres.psql(script))))
    header, body = rows[0], rows[1:]
    got = np.array([float(r[header.index("x")]) for r in body])
    assert (got.view(np.int64) == expected["x"].to_numpy().view(np.int64)).all()


def test_export_clip_warns_when_it_does_nothing_as_transform_does(data: Path) -> None:
    cli(data, "fit", "data.parquet", "-o", "standard-only.json", "-q", "--exclude", "row")
    stats = json.loads((data / "standard-only.json").read_text())
    assert {c["method"] for c in stats["columns"]} == {"standard"}  # nothing bounded to clip
    for command in (["export", "standard-only.json", "--to", "sql"], ["transform", "data.parquet", "-s", "standard-only.json", "-o", "clip.csv"]):
        import os

        before = os.getcwd()
        os.chdir(data)
        try:
            result = runner.invoke(app, [*command, "--clip"])
        finally:
            os.chdir(before)
        assert result.exit_code == 0, result.stderr
        assert "--clip does nothing here" in result.stderr, command


def test_export_replaces_its_own_exports_and_other_files_only_with_force(tmp_path: Path, monkeypatch) -> None:
    """export -o had no check_replaceable: it replaced a data file or a stats file with SQL."""
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text("a,b\n1,2\n3,5\n")
    cli(tmp_path, "fit", "d.csv", "-o", "s.json", "-q")
    for to, name in (("sql", "x.sql"), ("onnx", "x.onnx")):
        cli(tmp_path, "export", "s.json", "--to", to, "-o", name, "-q")
        first = Path(name).read_bytes()
        cli(tmp_path, "export", "s.json", "--to", to, "-o", name, "-q")  # its own export: replaced
        assert Path(name).read_bytes() == first
    data = Path("d.csv").read_bytes()
    result = runner.invoke(app, ["export", "s.json", "--to", "sql", "-o", "d.csv"])
    assert result.exit_code == 2 and "not a normcli export" in result.stderr
    assert Path("d.csv").read_bytes() == data
    cli(tmp_path, "export", "s.json", "--to", "sql", "-o", "d.csv", "--force", "-q")
    assert Path("d.csv").read_text().startswith("-- normcli")
