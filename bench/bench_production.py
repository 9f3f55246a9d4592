#!/usr/bin/env python
"""Benchmark normcli's production commands against hand-written baselines, in one run.

On the bench's generated data (gen_data.py; 5,000,000 rows by default, Parquet):

  1. fit --by   `normcli fit IN --by g100` (100 groups) and `--by g10000` (10,000 groups) vs a plain
                `normcli fit IN`, and vs one hand-written Polars query computing the same numbers
                per group (count, nulls, mean, std, min, max of every numeric column; streaming).
  2. check      `normcli check IN --stats S` vs `normcli fit IN` and vs a hand-written Polars query
                for the same numbers (count, nulls, mean, std and values outside [min, max] per
                column).
  3. export     `normcli export S --to sql` run by DuckDB (`COPY (SELECT ...) TO out.parquet`) vs
                `normcli transform IN --stats S -o out.parquet`, on the same Parquet file; the two
                outputs are then compared bit for bit.

The group columns are added to a copy of the data (g100 = i_small mod 100, g10000 = i_small),
cached beside it. Every contender runs in its own process, interleaved round-robin over the repeats,
medians reported (the machine is small, shared and noisy); the measurement code is bench_core.py's.

Usage:
    python bench/bench_production.py [--rows N] [--repeats N] [--quick] [--data-dir DIR]
                                     [--production-sections fit_by,check,export] [--csv]
    bash bench/run ...          (runs it after bench_core.py, with the same arguments)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
THIS = Path(__file__).resolve()
sys.path.insert(0, str(HERE))

NULL_VALUES = ["NA"]
KEYS = ("g100", "g10000")
SECTIONS = ("fit_by", "check", "export")


# =====================================================================================
# Workers (run as `python bench_production.py --worker NAME ...`)
# =====================================================================================


def _scan(pl, path: str):
    if path.endswith(".parquet"):
        return pl.scan_parquet(path)
    return pl.scan_csv(path, null_values=NULL_VALUES)


def _numeric(pl, lazy, exclude=()):
    schema = lazy.collect_schema()
    return [n for n, t in schema.items() if t.is_numeric() and n not in exclude]


def worker_polars_groups(inp: str, key: str, out: str) -> None:
    """Per group: count, nulls, mean, std, min and max of every numeric column (one query)."""
    import polars as pl

    lazy = _scan(pl, inp)
    columns = _numeric(pl, lazy, exclude=KEYS)
    aggs = [pl.len().alias("rows")]
    for c in columns:
        x = pl.col(c).cast(pl.Float64).fill_nan(None)
        aggs += [
            x.count().alias(f"{c}:count"), x.null_count().alias(f"{c}:nulls"), x.mean().alias(f"{c}:mean"),
            x.std(ddof=0).alias(f"{c}:std"), x.min().alias(f"{c}:min"), x.max().alias(f"{c}:max"),
        ]
    result = lazy.group_by(key).agg(aggs).collect(engine="streaming")
    Path(out).write_text(json.dumps({"groups": result.height}))


def worker_polars_check(inp: str, stats: str, out: str) -> None:
    """Per fitted column: count, nulls, mean, std and values outside the fitted [min, max]."""
    import polars as pl

    doc = json.loads(Path(stats).read_text())
    aggs = []
    for column in doc["columns"]:
        x = pl.col(column["name"]).cast(pl.Float64).fill_nan(None)
        name = column["name"]
        aggs += [
            x.count().alias(f"{name}:count"), x.null_count().alias(f"{name}:nulls"), x.mean().alias(f"{name}:mean"),
            x.std(ddof=0).alias(f"{name}:std"), ((x < column["min"]) | (x > column["max"])).sum().alias(f"{name}:outside"),
        ]
    result = _scan(pl, inp).select(aggs).collect(engine="streaming")
    Path(out).write_text(json.dumps(result.row(0, named=True)))


def worker_duckdb_export(sql_file: str, inp: str, out: str) -> None:
    """DuckDB runs the exported SELECT over a view of the Parquet file and writes Parquet."""
    import duckdb

    sql = Path(sql_file).read_text().rstrip().rstrip(";")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW data AS SELECT * FROM read_parquet('{inp}')")
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")


WORKERS = {
    "polars-groups": worker_polars_groups,
    "polars-check": worker_polars_check,
    "duckdb-export": worker_duckdb_export,
}


def with_groups(source: Path, log) -> Path:  # noqa: ANN001
    """The data with g100 and g10000 added (cached beside it; rebuilt if the source is newer)."""
    import polars as pl

    target = source.with_name(source.stem + "_groups" + source.suffix)
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    log(f"  writing {target}")
    tmp = target.with_name(target.name + ".tmp")
    lazy = _scan(pl, str(source)).with_columns((pl.col("i_small") % 100).alias("g100"), pl.col("i_small").alias("g10000"))
    if source.suffix == ".parquet":
        lazy.sink_parquet(tmp)
    else:
        lazy.sink_csv(tmp)
    os.replace(tmp, target)
    return target


def compare_outputs(a: Path, b: Path, stats: Path) -> str:
    """Bit for bit over the fitted columns (NaN to NaN, null to null)."""
    import numpy as np
    import polars as pl

    names = [c["name"] for c in json.loads(stats.read_text())["columns"]]
    left, right = pl.read_parquet(a), pl.read_parquet(b)
    if left.height != right.height:
        return f"DIFFERENT: {left.height} vs {right.height} rows"
    for name in names:
        x = left[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        y = right[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        same = (x.view(np.int64) == y.view(np.int64)) | (np.isnan(x) & np.isnan(y))
        if not same.all():
            return f"DIFFERENT in {name}: {int((~same).sum())} values"
    return f"bit-identical ({len(names)} columns x {left.height} rows)"


# =====================================================================================
# Main
# =====================================================================================


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        WORKERS[argv[1]](*argv[2:])
        return 0
    from bench_core import Contender, find_normcli, fmt_s, log, med, run_capture, run_round_robin, table, warm_files
    from gen_data import DEFAULT_ROWS, ensure_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="500,000 rows, 1 repeat")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--production-sections", dest="sections", default=",".join(SECTIONS), help="fit_by,check,export")
    ap.add_argument("--csv", action="store_true", help="also run fit --by and check on the CSV file")
    args, _ = ap.parse_known_args(argv)  # bench/run passes bench_core's options too
    if args.quick:
        args.rows, args.repeats = 500_000, 1
    sections = [s for s in args.sections.split(",") if s]
    paths = ensure_data(args.rows, args.data_dir, scale=False, log=log)
    normcli, _ = find_normcli()
    worker = [sys.executable, str(THIS), "--worker"]
    out = Path(tempfile.mkdtemp(prefix="normcli-bench-production-"))
    formats = ["parquet", "csv"] if args.csv else ["parquet"]
    inputs = {fmt: with_groups(paths[fmt], log) for fmt in formats}
    warm_files(list(inputs.values()))
    contenders: list[Contender] = []
    ratios: list[tuple[str, str, str]] = []  # (label, numerator key, denominator key)
    nulls = ["--null-values", "NA"]

    stats = out / "stats.json"
    setup = run_capture(normcli + ["fit", str(inputs["parquet"]), "--exclude", ",".join(KEYS), *nulls, "-o", str(stats), "-q"])
    if setup.returncode != 0:
        log(setup.stderr)
        return 1

    for fmt in formats:
        data = str(inputs[fmt])
        if "fit_by" in sections:
            group = f"fit --by ({fmt})"
            fit_key = f"fit_{fmt}"
            contenders.append(Contender(fit_key, group, "normcli fit", normcli + ["fit", data, "--exclude", ",".join(KEYS), *nulls, "-o", str(out / "f.json"), "-q"], [out / "f.json"]))
            for key, other in (("g100", "g10000"), ("g10000", "g100")):
                contenders.append(Contender(f"by_{key}_{fmt}", group, f"normcli fit --by {key}", normcli + ["fit", data, "--by", key, "--exclude", other, *nulls, "-o", str(out / f"{key}.json"), "-q"], [out / f"{key}.json"]))
                contenders.append(Contender(f"polars_{key}_{fmt}", group, f"polars group_by {key}", worker + ["polars-groups", data, key, str(out / f"p{key}.json")], [out / f"p{key}.json"]))
                ratios.append((f"fit --by {key} ({fmt}) / fit", f"by_{key}_{fmt}", fit_key))
                ratios.append((f"fit --by {key} ({fmt}) / polars group_by", f"by_{key}_{fmt}", f"polars_{key}_{fmt}"))
        if "check" in sections:
            group = f"check ({fmt})"
            fit_key = f"check_fit_{fmt}"
            if "fit_by" not in sections:
                contenders.append(Contender(fit_key, group, "normcli fit", normcli + ["fit", data, "--exclude", ",".join(KEYS), *nulls, "-o", str(out / "f2.json"), "-q"], [out / "f2.json"]))
            else:
                fit_key = f"fit_{fmt}"
            contenders.append(Contender(f"check_{fmt}", group, "normcli check", normcli + ["check", data, "-s", str(stats), *nulls, "--json", "-q"]))
            contenders.append(Contender(f"polars_check_{fmt}", group, "polars check query", worker + ["polars-check", data, str(stats), str(out / "pc.json")], [out / "pc.json"]))
            ratios.append((f"check ({fmt}) / fit", f"check_{fmt}", fit_key))
            ratios.append((f"check ({fmt}) / polars query", f"check_{fmt}", f"polars_check_{fmt}"))
    if "export" in sections:
        sql = out / "scale.sql"
        done = run_capture(normcli + ["export", str(stats), "--to", "sql", "--dialect", "duckdb", "-o", str(sql), "-q"])
        if done.returncode != 0:
            log(done.stderr)
            return 1
        data = str(inputs["parquet"])
        group = "transform vs exported SQL (parquet -> parquet)"
        contenders.append(Contender("transform", group, "normcli transform", normcli + ["transform", data, "-s", str(stats), *nulls, "-o", str(out / "t.parquet"), "-q"], [out / "t.parquet"]))
        contenders.append(Contender("duckdb", group, "duckdb: export --to sql", worker + ["duckdb-export", str(sql), data, str(out / "d.parquet")], [out / "d.parquet"]))
        ratios.append(("export --to sql in DuckDB / transform", "duckdb", "transform"))

    log(f"benchmark: {args.rows:,} rows, {args.repeats} repeats, outputs in {out}")
    run_round_robin(contenders, args.repeats, "production")
    by_key = {c.key: c for c in contenders}
    print()
    print(table(contenders))
    print()
    print(f"{'ratio (medians)':48s} {'value':>8s}   numerator / denominator")
    print("-" * 100)
    for label, num, den in ratios:
        a, b = med(by_key.get(num)), med(by_key.get(den))
        value = "n/a" if a is None or b is None else f"{a / b:.2f}x"
        print(f"{label:48s} {value:>8s}   {fmt_s(a)} / {fmt_s(b)}")
    if "export" in sections:
        # once more, outside the timing, to compare the outputs
        run_capture(by_key["transform"].cmd)
        run_capture(by_key["duckdb"].cmd)
        print()
        print(f"DuckDB output vs normcli transform: {compare_outputs(out / 't.parquet', out / 'd.parquet', stats)}")
        for p in (out / "t.parquet", out / "d.parquet"):
            p.unlink(missing_ok=True)
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the end (noisy if above ~0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
