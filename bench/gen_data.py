#!/usr/bin/env python
"""Deterministic benchmark data for normcli's core benchmark.

Generates (and caches, keyed by row count) in the bench data directory:

    core_<rows>.csv          <rows> rows x 12 columns (~160 bytes/row, ~0.8 GB at 5M)
    core_<rows>.parquet      Parquet copy of the CSV (same values, "NA" -> null)
    core_<rows>x4.csv        4x the rows: header + 4 copies of the CSV body
    core_<rows>x4.parquet    Parquet copy of the 4x CSV

Columns (11 numeric + 1 string):

    row_id       int64   sequential id
    f_normal     float64 N(0, 1), full precision, ~2% empty cells (null)
    f_uniform    float64 U(0, 1000), full precision, ~1% literal "NA" (null)
    f_lognormal  float64 lognormal(3, 1), full precision
    f_nan        float64 N(50, 10), ~1% NaN and ~1% empty cells
    f_offset     float64 1e9 + N(0, 1) -- catastrophic-cancellation test for naive sums
    f_exp        float64 exponential(scale=100), full precision
    i_small      int64   0..9999
    i_large      int64   +/-1e15, ~0.5% empty cells
    i_binary     int64   0/1
    const        int64   constant 7
    s_category   string  5 region names, ~1% empty cells, ~1% "NA"

Readers must pass ``null_values=["NA"]`` (Polars) for f_uniform to be numeric;
pandas treats "NA" and empty cells as missing by default.

Data are generated with numpy in fixed-size chunks (each chunk seeded from
(SEED, chunk_index)), so the content depends only on the row count, and are
written with Polars ``write_csv`` chunk by chunk: memory stays at one chunk.
Files are written to a temp name and renamed into place, so an interrupted
run never leaves a truncated file in the cache.

Usage:
    python bench/gen_data.py [--rows N] [--data-dir DIR] [--no-scale] [--force]

The data directory defaults to $NORMCLI_BENCH_DIR, else /work/bench-data
(outside the repository: never commit generated data).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

SEED = 20240607
CHUNK_ROWS = 500_000
GEN_VERSION = 1  # bump when the generated content changes: invalidates the cache
SCALE_FACTOR = 4
CSV_NULL_VALUES = ["NA"]
DEFAULT_ROWS = 5_000_000


def default_data_dir() -> Path:
    env = os.environ.get("NORMCLI_BENCH_DIR")
    if env:
        return Path(env)
    return Path("/work/bench-data")


def paths_for(rows: int, data_dir: Path) -> dict[str, Path]:
    base = data_dir / f"core_{rows}"
    return {
        "csv": Path(f"{base}.csv"),
        "parquet": Path(f"{base}.parquet"),
        "csv_x4": Path(f"{base}x{SCALE_FACTOR}.csv"),
        "parquet_x4": Path(f"{base}x{SCALE_FACTOR}.parquet"),
        "manifest": Path(f"{base}.json"),
    }


def _chunk_frame(start: int, n: int, chunk_index: int):
    import numpy as np
    import polars as pl

    rng = np.random.default_rng([SEED, chunk_index])

    def mask(p: float):
        return pl.Series(rng.random(n) < p)

    f_normal = pl.Series("f_normal", rng.standard_normal(n))
    f_uniform = pl.Series("f_uniform", rng.uniform(0.0, 1000.0, n))
    f_lognormal = pl.Series("f_lognormal", rng.lognormal(3.0, 1.0, n))
    f_nan_vals = rng.normal(50.0, 10.0, n)
    f_nan_vals[rng.random(n) < 0.01] = np.nan
    f_nan = pl.Series("f_nan", f_nan_vals, nan_to_null=False)
    f_offset = pl.Series("f_offset", 1e9 + rng.standard_normal(n))
    f_exp = pl.Series("f_exp", rng.exponential(100.0, n))
    i_small = pl.Series("i_small", rng.integers(0, 10_000, n, dtype=np.int64))
    i_large = pl.Series(
        "i_large", rng.integers(-(10**15), 10**15, n, dtype=np.int64)
    )
    i_binary = pl.Series("i_binary", rng.integers(0, 2, n, dtype=np.int64))
    cats = np.array(
        ["north-america", "europe", "asia-pacific", "latin-america", "middle-east-africa"]
    )
    s_category = pl.Series("s_category", cats[rng.integers(0, len(cats), n)])

    m_normal = mask(0.02)
    m_uniform = mask(0.01)
    m_nan = mask(0.01)
    m_large = mask(0.005)
    m_cat_null = mask(0.01)
    m_cat_na = mask(0.01)

    df = pl.DataFrame(
        [
            pl.Series("row_id", np.arange(start, start + n, dtype=np.int64)),
            f_normal,
            f_uniform,
            f_lognormal,
            f_nan,
            f_offset,
            f_exp,
            i_small,
            i_large,
            i_binary,
            pl.Series("const", np.full(n, 7, dtype=np.int64)),
            s_category,
        ]
    )
    null = pl.lit(None)
    df = df.with_columns(
        pl.when(m_normal).then(null).otherwise(pl.col("f_normal")).alias("f_normal"),
        # Literal "NA" cells: write the column as text.
        pl.when(m_uniform)
        .then(pl.lit("NA"))
        .otherwise(pl.col("f_uniform").cast(pl.String))
        .alias("f_uniform"),
        pl.when(m_nan).then(null).otherwise(pl.col("f_nan")).alias("f_nan"),
        pl.when(m_large).then(null).otherwise(pl.col("i_large")).alias("i_large"),
        pl.when(m_cat_null)
        .then(null)
        .when(m_cat_na)
        .then(pl.lit("NA"))
        .otherwise(pl.col("s_category"))
        .alias("s_category"),
    )
    return df


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + f".tmp{os.getpid()}")


def generate_csv(rows: int, path: Path, log=print) -> None:
    t0 = time.perf_counter()
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as fh:
            chunk_index = 0
            for start in range(0, rows, CHUNK_ROWS):
                n = min(CHUNK_ROWS, rows - start)
                df = _chunk_frame(start, n, chunk_index)
                df.write_csv(fh, include_header=(chunk_index == 0))
                chunk_index += 1
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    log(
        f"  generated {path} ({path.stat().st_size / 1e9:.2f} GB) "
        f"in {time.perf_counter() - t0:.1f}s"
    )


def concat_csv(src: Path, dst: Path, copies: int, log=print) -> None:
    """dst = header of src + `copies` copies of src's body (byte copy, fast)."""
    t0 = time.perf_counter()
    tmp = _tmp(dst)
    try:
        with open(src, "rb") as fin:
            header = fin.readline()
            body_start = fin.tell()
        with open(tmp, "wb") as fout:
            fout.write(header)
            for _ in range(copies):
                with open(src, "rb") as fin:
                    fin.seek(body_start)
                    shutil.copyfileobj(fin, fout, 16 << 20)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    log(
        f"  wrote {dst} ({dst.stat().st_size / 1e9:.2f} GB) "
        f"in {time.perf_counter() - t0:.1f}s"
    )


def csv_to_parquet(src: Path, dst: Path, log=print) -> None:
    import polars as pl

    t0 = time.perf_counter()
    tmp = _tmp(dst)
    try:
        pl.scan_csv(src, null_values=CSV_NULL_VALUES).sink_parquet(
            tmp, engine="streaming"
        )
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    log(
        f"  wrote {dst} ({dst.stat().st_size / 1e9:.2f} GB) "
        f"in {time.perf_counter() - t0:.1f}s"
    )


def manifest_ok(p: dict[str, Path], rows: int, need_scale: bool) -> bool:
    try:
        meta = json.loads(p["manifest"].read_text())
    except (OSError, ValueError):
        return False
    if meta.get("version") != GEN_VERSION or meta.get("rows") != rows:
        return False
    if meta.get("seed") != SEED or meta.get("chunk_rows") != CHUNK_ROWS:
        return False
    keys = ["csv", "parquet"] + (["csv_x4", "parquet_x4"] if need_scale else [])
    sizes = meta.get("sizes", {})
    return all(p[k].exists() and sizes.get(k) == p[k].stat().st_size for k in keys)


def ensure_data(
    rows: int = DEFAULT_ROWS,
    data_dir: Path | None = None,
    scale: bool = True,
    force: bool = False,
    log=print,
) -> dict[str, Path]:
    """Create (or reuse cached) benchmark files; return their paths."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    p = paths_for(rows, data_dir)
    if not force and manifest_ok(p, rows, scale):
        return p

    # Rough disk check: ~180 B/row CSV, Parquet ~half of that; x(1+4).
    need = rows * 180 * 1.6 * (1 + (SCALE_FACTOR if scale else 0))
    free = shutil.disk_usage(data_dir).free
    if free < need * 1.2:
        raise SystemExit(
            f"not enough disk in {data_dir}: need ~{need / 1e9:.1f} GB, "
            f"have {free / 1e9:.1f} GB free (use --data-dir or NORMCLI_BENCH_DIR)"
        )

    log(f"generating benchmark data: {rows:,} rows in {data_dir}")
    try:
        old = json.loads(p["manifest"].read_text())
    except (OSError, ValueError):
        old = {}
    same_gen = (
        not force
        and old.get("version") == GEN_VERSION
        and old.get("rows") == rows
        and old.get("seed") == SEED
        and old.get("chunk_rows") == CHUNK_ROWS
    )
    sizes = dict(old.get("sizes", {})) if same_gen else {}

    def fresh(key: str) -> bool:
        return p[key].exists() and sizes.get(key) == p[key].stat().st_size

    if not fresh("csv"):
        generate_csv(rows, p["csv"], log=log)
        sizes = {"csv": p["csv"].stat().st_size}
    if not fresh("parquet"):
        csv_to_parquet(p["csv"], p["parquet"], log=log)
        sizes["parquet"] = p["parquet"].stat().st_size
    if scale:
        if not fresh("csv_x4"):
            concat_csv(p["csv"], p["csv_x4"], SCALE_FACTOR, log=log)
            sizes["csv_x4"] = p["csv_x4"].stat().st_size
            sizes.pop("parquet_x4", None)
        if not fresh("parquet_x4"):
            csv_to_parquet(p["csv_x4"], p["parquet_x4"], log=log)
            sizes["parquet_x4"] = p["parquet_x4"].stat().st_size
    meta = {
        "version": GEN_VERSION,
        "rows": rows,
        "seed": SEED,
        "chunk_rows": CHUNK_ROWS,
        "scale_factor": SCALE_FACTOR,
        "csv_null_values": CSV_NULL_VALUES,
        "sizes": sizes,
    }
    tmp = _tmp(p["manifest"])
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, p["manifest"])
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--no-scale", action="store_true", help="skip the 4x files")
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args(argv)
    p = ensure_data(args.rows, args.data_dir, scale=not args.no_scale, force=args.force)
    for k, v in p.items():
        if v.exists() and (k == "manifest" or k in json.loads(p["manifest"].read_text())["sizes"]):
            print(f"{k:11s} {v}  ({v.stat().st_size / 1e6:,.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
