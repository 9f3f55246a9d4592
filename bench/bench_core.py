#!/usr/bin/env python
"""Benchmark normcli's core (fit, transform, pipes, latency, --help) against hand-written baselines.

One command measures, side by side in one run, on generated data (see gen_data.py):

  1. fit        `normcli fit IN -o stats.json` vs a hand-written Polars script doing the same work
                (the six default null tokens, numeric columns read as Float64, fixed 65,536-row
                blocks summed around each block's mean and combined exactly): target <= 1.00x;
                and faster than DuckDB's own aggregate query (target: DuckDB / normcli > 1),
                on the CSV and on its Parquet copy. pandas + scikit-learn are shown for reference.
  2. transform  `normcli transform IN --stats S -o out.parquet` vs the same in Polars (two-term
                centre, true division) <= 1.00x and vs DuckDB's COPY ... TO parquet (> 1),
                CSV->Parquet and Parquet->Parquet.
  3. pipe       fit and transform reading the CSV from a pipe (`cat | normcli ... -`): CPU
                within 1.10x of the same command on the file; peak RSS on a 4x larger pipe within
                +-10% of 1x; time to the first output row of transform < 1 s.
  4. scale      peak RSS of normcli fit/transform on a 4x larger file within +-10% of the 1x run.
  5. latency    a 10-row CSV: `normcli fit` and `transform` <= 1.10x a bare Polars script doing
                the same; `normcli inspect` must not import Polars.
  6. help       `normcli --help` median <= 120 ms over >= 10 runs (`python -c pass` as floor),
                and --help must not import polars or numpy.

Every contender runs in its own subprocess; wall time is measured around it and peak RSS /
CPU come from that child's own rusage (os.wait4; for pipes, the feeding `cat` is a sibling, so
its work is not counted). Contenders are interleaved round-robin over the repeats (the order
rotates each repeat) and medians are reported, because the benchmark machine is small, shared and
noisy.

Usage:
    python bench/bench_core.py [--rows N] [--repeats N] [--quick] [--skip-pandas]
                               [--pandas-repeats N] [--data-dir DIR] [--sections ...]
    bash bench/run ...          (runs this and bench/bench_train.py with the same arguments)

The baselines are also run by this file: `bench_core.py --worker NAME ARGS...` (internal).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
THIS = Path(__file__).resolve()

# Read options of the hand-written baselines: the same as normcli's defaults.
CSV_NULL_VALUES = ["NA", "N/A", "NaN", "nan", "null", "NULL"]
BLOCK_ROWS = 65_536
DDOF = 0  # normcli and scikit-learn default (population std)

TARGETS = {
    "fit_vs_polars_max": 1.00,
    "transform_vs_polars_max": 1.00,
    "duckdb_vs_normcli_min": 1.00,
    "pipe_cpu_max": 1.10,
    "first_row_max_s": 1.0,
    "latency_max": 1.10,
    "rss_scale_tolerance": 0.10,
    "help_max_s": 0.120,
}

SECTIONS = ("help", "latency", "fit", "transform", "pipe", "scale")


# =====================================================================================
# Workers: the baselines, each run as `python bench_core.py --worker NAME ...` in its own
# process. They import only what they need, so process startup is comparable to normcli's.
# =====================================================================================


def _is_parquet(path: str) -> bool:
    return path.endswith(".parquet")


def _scan(pl, path: str, numeric_as_float: bool = True):
    """The input as normcli reads it: the six null tokens, numeric CSV columns as Float64 (so a
    decimal far below integers parses), everything else as inferred."""
    if _is_parquet(path):
        return pl.scan_parquet(path)
    schema = pl.scan_csv(path, null_values=CSV_NULL_VALUES, infer_schema_length=10_000).collect_schema()
    types = {c: (pl.Float64 if t.is_numeric() and numeric_as_float else t) for c, t in schema.items()}
    return pl.scan_csv(path, null_values=CSV_NULL_VALUES, schema=types)


def worker_polars_fit(inp: str, out: str) -> None:
    """The hand-written baseline of normcli's fit, doing the same work: fixed 65,536-row blocks
    (collect_batches + rechunk), each summed around its own mean, combined exactly (Fractions)."""
    from fractions import Fraction

    import polars as pl

    lf = _scan(pl, inp)
    schema = lf.collect_schema()
    numeric = [(c, t) for c, t in schema.items() if t.is_numeric()]
    exprs = []
    for i, (c, t) in enumerate(numeric):
        col = pl.col(c)
        x = col.cast(pl.Float64).fill_nan(None) if t.is_float() else col.cast(pl.Float64)
        m = x.mean()
        d = x - m
        exprs += [
            m.alias(f"{i}:m"),
            x.count().alias(f"{i}:n"),
            col.null_count().alias(f"{i}:nulls"),
            (col.is_nan().sum() if t.is_float() else pl.lit(0)).alias(f"{i}:nans"),
            x.min().alias(f"{i}:min"),
            x.max().alias(f"{i}:max"),
            d.sum().alias(f"{i}:s1"),
            (d * d).sum().alias(f"{i}:s2"),
        ]
    acc = [{"n": 0, "nulls": 0, "nans": 0, "min": math.inf, "max": -math.inf, "p": None,
            "s1": Fraction(0), "s2": Fraction(0)} for _ in numeric]
    for block in lf.select([c for c, _ in numeric]).collect_batches(chunk_size=BLOCK_ROWS):
        row = block.rechunk().select(exprs).row(0)
        for i, a in enumerate(acc):
            m, n, nulls, nans, lo, hi, s1, s2 = row[8 * i: 8 * i + 8]
            a["nulls"] += nulls
            a["nans"] += nans
            if not n:
                continue
            a["min"], a["max"] = min(a["min"], lo), max(a["max"], hi)
            if a["p"] is None:
                a["p"] = Fraction(m)
            c = Fraction(m) - a["p"]
            a["s2"] += Fraction(s2) + 2 * c * Fraction(s1) + n * c * c
            a["s1"] += Fraction(s1) + n * c
            a["n"] += n
    columns = []
    for (c, t), a in zip(numeric, acc):
        n = a["n"]
        entry = {"name": c, "dtype": str(t), "count": n, "null_count": a["nulls"],
                 "nan_count": a["nans"], "min": a["min"] if n else 0.0, "max": a["max"] if n else 0.0}
        if n:
            mean = a["p"] + a["s1"] / n
            m2 = a["s2"] - a["s1"] ** 2 / n
            std = math.sqrt(m2 / (n - DDOF))
            if entry["min"] == entry["max"]:
                mean, std = Fraction(entry["min"]), 0.0
            center_hi = float(mean)
            entry.update(mean=center_hi, std=std, center=center_hi,
                         center_lo=float(mean - Fraction(center_hi)), scale=std or 1.0)
        else:
            entry.update(mean=0.0, std=0.0, center=0.0, center_lo=0.0, scale=1.0)
        columns.append(entry)
    _write_json(out, {"format": "bench-baseline", "columns": columns})


def worker_polars_transform(inp: str, stats: str, out: str) -> None:
    """Baseline of normcli's transform, doing the same work: ((x - c) - c_lo) / s with a true
    division (by a materialized column: Polars turns a scalar divisor into a reciprocal), fitted
    columns read as Float64, sunk to Parquet (temp file + rename)."""
    import polars as pl

    cols = json.loads(Path(stats).read_text())["columns"]
    lf = _scan(pl, inp)
    exprs = []
    for c in cols:
        x = pl.col(c["name"]).cast(pl.Float64)
        divisor = x.is_null().cast(pl.Float64) * 0.0 + c["scale"]
        exprs.append((((x - c["center"]) - c.get("center_lo", 0.0)) / divisor).alias(c["name"]))
    tmp = out + ".tmp"
    lf.with_columns(exprs).sink_parquet(tmp, engine="streaming")
    os.replace(tmp, out)


def _duckdb_source(inp: str) -> str:
    if _is_parquet(inp):
        return f"read_parquet('{inp}')"
    nulls = ", ".join(f"'{v}'" for v in CSV_NULL_VALUES + [""])
    return f"read_csv('{inp}', nullstr=[{nulls}], sample_size=10000)"


def _duckdb_numeric(con, source: str) -> list[str]:
    described = con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
    numeric = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "UBIGINT", "UINTEGER")
    return [name for name, dtype, *_ in described if dtype.startswith(numeric)]


def worker_duckdb_fit(inp: str, out: str) -> None:
    """DuckDB as a peer: one aggregate query (count, min, max, avg, stddev_pop per column)."""
    import duckdb

    con = duckdb.connect()
    source = _duckdb_source(inp)
    names = _duckdb_numeric(con, source)
    q = lambda n: '"' + n.replace('"', '""') + '"'  # noqa: E731
    parts = []
    for n in names:
        x = f"CAST({q(n)} AS DOUBLE)"
        x = f"CASE WHEN isnan({x}) THEN NULL ELSE {x} END"
        parts += [f"count({x})", f"min({x})", f"max({x})", f"avg({x})", f"stddev_pop({x})"]
    row = con.sql(f"SELECT {', '.join(parts)} FROM {source}").fetchall()[0]
    columns = []
    for i, n in enumerate(names):
        count, lo, hi, mean, std = row[5 * i: 5 * i + 5]
        columns.append({"name": n, "count": count, "min": lo, "max": hi, "mean": mean, "std": std,
                        "center": mean, "scale": std or 1.0})
    _write_json(out, {"format": "bench-duckdb", "columns": columns})


def worker_duckdb_transform(inp: str, stats: str, out: str) -> None:
    """DuckDB as a peer: COPY (SELECT * REPLACE ((x - c) / s AS x ...) FROM source) TO parquet."""
    import duckdb

    cols = json.loads(Path(stats).read_text())["columns"]
    q = lambda n: '"' + n.replace('"', '""') + '"'  # noqa: E731
    replace = ", ".join(
        f"((CAST({q(c['name'])} AS DOUBLE) - CAST({c['center']!r} AS DOUBLE)) - CAST({c.get('center_lo', 0.0)!r} AS DOUBLE)) "
        f"/ CAST({c['scale']!r} AS DOUBLE) AS {q(c['name'])}"
        for c in cols
    )
    tmp = out + ".tmp"
    duckdb.connect().execute(
        f"COPY (SELECT * REPLACE ({replace}) FROM {_duckdb_source(inp)}) TO '{tmp}' (FORMAT parquet)"
    )
    os.replace(tmp, out)


LATENCY_FIT = """
import json, sys, polars as pl
path, out = sys.argv[1], sys.argv[2]
nulls = ["NA", "N/A", "NaN", "nan", "null", "NULL"]
schema = pl.scan_csv(path, null_values=nulls).collect_schema()
lf = pl.scan_csv(path, null_values=nulls, schema={c: (pl.Float64 if t.is_numeric() else t) for c, t in schema.items()})
names = [c for c, t in schema.items() if t.is_numeric()]
exprs = [e.alias(f"{i}{k}") for i, c in enumerate(names) for k, e in enumerate((pl.col(c).mean(), pl.col(c).std(ddof=0), pl.col(c).min(), pl.col(c).max()))]
row = lf.select(exprs).collect().row(0)
json.dump({"columns": [{"name": c, "mean": row[4 * i], "std": row[4 * i + 1]} for i, c in enumerate(names)]}, open(out, "w"))
"""

LATENCY_TRANSFORM = """
import json, sys, polars as pl
path, stats = sys.argv[1], sys.argv[2]
cols = json.load(open(stats))["columns"]
nulls = ["NA", "N/A", "NaN", "nan", "null", "NULL"]
lf = pl.scan_csv(path, null_values=nulls, schema_overrides={c["name"]: pl.Float64 for c in cols})
lf.with_columns([((pl.col(c["name"]) - c["center"]) / c["scale"]).alias(c["name"]) for c in cols]).sink_csv(sys.stdout.buffer)
"""


def _pandas_read(inp: str):
    import pandas as pd

    if _is_parquet(inp):
        return pd.read_parquet(inp)
    return pd.read_csv(inp)


def worker_pandas_fit(inp: str, out: str) -> None:
    """Baseline: pandas read + scikit-learn StandardScaler and MinMaxScaler fit."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    df = _pandas_read(inp)
    num = df.select_dtypes(include="number")
    std = StandardScaler().fit(num)
    mm = MinMaxScaler().fit(num)
    columns = [
        {
            "name": c,
            "mean": float(std.mean_[i]),
            "std": float(std.scale_[i]),
            "min": float(mm.data_min_[i]),
            "max": float(mm.data_max_[i]),
        }
        for i, c in enumerate(num.columns)
    ]
    _write_json(out, {"format": "bench-pandas", "columns": columns})


def worker_pandas_transform(inp: str, stats: str, out: str) -> None:
    """Baseline: pandas read + scikit-learn StandardScaler.transform + DataFrame.to_parquet."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    cols = json.loads(Path(stats).read_text())["columns"]
    df = _pandas_read(inp)
    names = [c["name"] for c in cols if c["name"] in df.columns]
    by_name = {c["name"]: c for c in cols}
    scaler = StandardScaler()
    scaler.mean_ = np.array([by_name[n]["center"] for n in names], dtype=np.float64)
    scaler.scale_ = np.array([by_name[n]["scale"] for n in names], dtype=np.float64)
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = len(names)
    scaler.n_samples_seen_ = len(df)
    df[names] = scaler.transform(df[names].to_numpy(dtype=np.float64))
    tmp = out + ".tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, out)


def worker_validate(baseline_stats: str, normcli_stats: str, baseline_out: str, normcli_out: str) -> None:
    """Check normcli computed the same statistics and output as the baseline (prints JSON)."""
    import polars as pl

    report: dict = {"stats": [], "output": []}
    if baseline_stats and normcli_stats:
        base = {c["name"]: c for c in json.loads(Path(baseline_stats).read_text())["columns"]}
        mine = {c["name"]: c for c in json.loads(Path(normcli_stats).read_text())["columns"]}
        if set(base) != set(mine):
            report["stats"].append(
                f"column sets differ: only baseline {sorted(set(base) - set(mine))}, "
                f"only normcli {sorted(set(mine) - set(base))}"
            )
        for name in sorted(set(base) & set(mine)):
            b, m = base[name], mine[name]
            for key in ("count", "min", "max", "mean", "std"):
                bv, mv = b.get(key), m.get(key)
                if bv is None or mv is None:
                    continue
                # the same algorithm: equal up to the final rounding of the square root
                tol = 0.0 if key in ("count", "min", "max") else 2e-16 * abs(bv)
                if key == "mean":  # relative to the spread
                    tol = max(tol, 1e-15 * b.get("std", 0.0))
                if abs(bv - mv) > tol:
                    report["stats"].append(f"{name}.{key}: baseline {bv!r} normcli {mv!r}")
            missing_b = b.get("null_count", 0) + b.get("nan_count", 0)
            missing_m = m.get("null_count", 0) + m.get("nan_count", 0)
            if missing_b != missing_m:
                report["stats"].append(
                    f"{name}: missing (null+NaN) baseline {missing_b} normcli {missing_m}"
                )
    if baseline_out and normcli_out:
        a = pl.scan_parquet(baseline_out)
        b = pl.scan_parquet(normcli_out)
        sa, sb = a.collect_schema(), b.collect_schema()
        if sa.names() != sb.names():
            report["output"].append(f"columns differ: {sa.names()} vs {sb.names()}")
        for name in sa.names():
            if name in sb and sa[name] != sb[name]:
                report["output"].append(f"{name}: dtype baseline {sa[name]} normcli {sb[name]}")
        na = a.select(pl.len()).collect().item()
        nb = b.select(pl.len()).collect().item()
        if na != nb:
            report["output"].append(f"row count baseline {na} normcli {nb}")
        common = [n for n in sa.names() if n in sb and sa[n].is_numeric() and sb[n].is_numeric()]
        if common and na == nb:
            k = min(na, 200_000)
            da = a.head(k).select(common).collect()
            db = b.head(k).select(common).collect()
            for n in common:
                diff = (da[n].cast(pl.Float64) - db[n].cast(pl.Float64)).abs().max()
                if diff is not None and not (diff <= 1e-12):
                    report["output"].append(f"{n}: max |baseline - normcli| = {diff!r} (first {k} rows)")
    print(json.dumps(report))


def _write_json(path: str, doc: dict) -> None:
    tmp = path + ".tmp"
    Path(tmp).write_text(json.dumps(doc, indent=1, allow_nan=True))
    os.replace(tmp, path)


WORKERS = {
    "polars-fit": worker_polars_fit,
    "polars-transform": worker_polars_transform,
    "duckdb-fit": worker_duckdb_fit,
    "duckdb-transform": worker_duckdb_transform,
    "pandas-fit": worker_pandas_fit,
    "pandas-transform": worker_pandas_transform,
    "validate": worker_validate,
}


# =====================================================================================
# Measurement
# =====================================================================================


@dataclass
class Run:
    wall_s: float
    rss_mib: float
    cpu_s: float
    rc: int
    other_cpu_s: float = 0.0  # CPU used by other processes on the machine meanwhile


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_cpu_s() -> float | None:
    """Machine-wide busy CPU seconds so far (user+nice+system+irq+softirq+steal), or None."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


@dataclass
class Contender:
    key: str  # unique id, e.g. "fit_csv/normcli"
    group: str  # table section, e.g. "fit CSV"
    label: str  # e.g. "normcli"
    cmd: list[str]
    cleanup: list[Path] = field(default_factory=list)
    max_runs: int | None = None  # e.g. pandas: only the first repeat(s)
    stdin_file: Path | None = None  # fed through a pipe by a sibling `cat` (not counted)
    runs: list[Run] = field(default_factory=list)
    error: str | None = None
    discarded: int = 0  # runs redone because other processes were busy
    noisy: int = 0  # kept runs during which other processes were still busy


def run_once(cmd: list[str], stdin_file: Path | None = None) -> tuple[Run, str]:
    """Run cmd in its own process; wall time around it, peak RSS and CPU from its rusage.

    With ``stdin_file``, a sibling ``cat`` pipes the file into cmd's stdin: cmd reads a real pipe,
    and cat's own CPU is not charged to cmd (its rusage is separate)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0 = busy_cpu_s()
        t0 = time.perf_counter()
        feeder = subprocess.Popen(["cat", str(stdin_file)], stdout=subprocess.PIPE) if stdin_file else None
        proc = subprocess.Popen(cmd, stdin=feeder.stdout if feeder else subprocess.DEVNULL, stdout=out, stderr=err)
        if feeder:
            feeder.stdout.close()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if feeder:
            feeder.wait()
        busy1 = busy_cpu_s()
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        text = ""
        if rc != 0:
            err.seek(0)
            out.seek(0)
            text = (err.read().decode(errors="replace") or out.read().decode(errors="replace"))
    cpu = ru.ru_utime + ru.ru_stime
    other = max(0.0, busy1 - busy0 - cpu) if busy0 is not None and busy1 is not None else 0.0
    # Linux reports ru_maxrss in KiB.
    return Run(wall, ru.ru_maxrss / 1024.0, cpu, rc, other), text


def run_capture(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)


def warm_files(paths: list[Path]) -> None:
    """Read files once so every contender starts with the same (warm) page cache."""
    buf = bytearray(1 << 20)  # small and reused: this process's RSS is its children's floor
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def remove(paths: list[Path]) -> None:
    for p in paths:
        for q in (p, Path(str(p) + ".tmp")):
            try:
                q.unlink()
            except FileNotFoundError:
                pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


NOISE = {"threshold": 0.25, "retries": 2, "max_wait": 10.0}  # from --noise-* options


def wait_for_quiet() -> None:
    """Wait (up to NOISE["max_wait"] s) until other processes use under the threshold of CPU."""
    if NOISE["threshold"] == float("inf"):
        return
    deadline = time.perf_counter() + NOISE["max_wait"]
    while True:
        b0, t0 = busy_cpu_s(), time.perf_counter()
        time.sleep(0.3)
        b1, t1 = busy_cpu_s(), time.perf_counter()
        if b0 is None or b1 is None or (b1 - b0) / (t1 - t0) <= NOISE["threshold"]:
            return
        if t1 >= deadline:
            return


def run_round_robin(contenders: list[Contender], repeats: int, title: str) -> None:
    """Repeat r runs every contender once, starting at a rotated position, so each sees the
    machine's drift equally; outputs are deleted (and flushed) between runs. A run during which
    other processes used more than NOISE["threshold"] cores on average is discarded and redone
    (up to NOISE["retries"] times; the last attempt is kept and counted as noisy)."""
    for r in range(repeats):
        order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
        for c in order:
            if c.error or (c.max_runs is not None and len(c.runs) >= c.max_runs):
                continue
            for attempt in range(NOISE["retries"] + 1):
                wait_for_quiet()
                run, text = run_once(c.cmd, c.stdin_file)
                remove(c.cleanup)
                os.sync()
                noisy = run.other_cpu_s > NOISE["threshold"] * run.wall_s
                if run.rc != 0 or not noisy:
                    break
                if attempt < NOISE["retries"]:
                    c.discarded += 1
                    log(f"  [{title} {r + 1}/{repeats}] {c.group} / {c.label}: other processes used "
                        f"{run.other_cpu_s / run.wall_s:.2f} cores meanwhile; discarded, retrying")
                else:
                    c.noisy += 1
            if run.rc != 0:
                c.error = f"exit {run.rc}: {text.strip()[-2000:]}"
                log(f"  [{title} {r + 1}/{repeats}] {c.group} / {c.label}: FAILED {c.error}")
                log(f"    command: {shlex.join(c.cmd)}")
                continue
            c.runs.append(run)
            log(
                f"  [{title} {r + 1}/{repeats}] {c.group + ' / ' + c.label:56s} {run.wall_s:8.3f}s "
                f"{run.rss_mib:7.0f} MiB  cpu {run.cpu_s:7.2f}s  others {run.other_cpu_s:6.2f}s"
            )


def med(c: Contender | None, attr: str = "wall_s") -> float | None:
    if c is None or not c.runs:
        return None
    return statistics.median(getattr(r, attr) for r in c.runs)


# =====================================================================================
# normcli discovery
# =====================================================================================


def find_normcli() -> tuple[list[str], str | None]:
    """The installed console script next to sys.executable (not a pyenv/asdf shim, whose own
    startup would be charged to normcli), else the one on PATH, else `python -m normcli`."""
    beside = Path(sys.executable).parent / "normcli"
    on_path = shutil.which("normcli")
    if beside.exists() and os.access(beside, os.X_OK):
        cmd = [str(beside)]
    elif on_path:
        cmd = [on_path]
    else:
        cmd = [sys.executable, "-m", "normcli"]
    shim = on_path if on_path and Path(on_path).resolve() != beside.resolve() else None
    return cmd, shim


def normcli_ready(normcli: list[str]) -> tuple[bool, str]:
    for sub in ("fit", "transform"):
        p = run_capture(normcli + [sub, "--help"])
        if p.returncode != 0:
            return False, f"`{shlex.join(normcli + [sub, '--help'])}` exited {p.returncode}: " + (
                (p.stderr or p.stdout).strip().splitlines() or [""]
            )[-1]
    return True, ""


# =====================================================================================
# Sections
# =====================================================================================


def worker_cmd(name: str, *args: str | Path) -> list[str]:
    return [sys.executable, str(THIS), "--worker", name, *map(str, args)]


def section_help(args, normcli: list[str], shim: str | None, have_normcli: bool) -> dict:
    runs = max(10, args.help_runs)
    cs = []
    if have_normcli:
        cs.append(Contender("help/normcli", "help", "normcli --help", normcli + ["--help"]))
    cs.append(Contender("help/python_pass", "help", "python -c pass", [sys.executable, "-c", "pass"]))
    cs.append(
        Contender(
            "help/import_polars", "help", "python -c 'import polars'",
            [sys.executable, "-c", "import polars"],
        )
    )
    if have_normcli and shim:
        cs.append(Contender("help/normcli_shim", "help", f"{shim} --help", [shim, "--help"]))
    log(f"== help: {runs} runs each, interleaved")
    run_round_robin(cs, runs, "help")

    # Which heavy modules does --help import? (in-process check, one extra run)
    imports = None
    if have_normcli:
        code = (
            "import sys\n"
            "sys.argv = ['normcli', '--help']\n"
            "from normcli.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('polars', 'numpy', 'pandas', 'pyarrow', 'sklearn') "
            "if m in sys.modules)\n"
            "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
        )
        p = run_capture([sys.executable, "-c", code])
        line = [ln for ln in p.stderr.splitlines() if ln.startswith("HEAVY=")]
        imports = line[-1][len("HEAVY="):].split(",") if line else None
        if imports == [""]:
            imports = []
    return {"contenders": cs, "heavy_imports": imports}


def section_fit(args, data: dict, outdir: Path, normcli: list[str], have_normcli: bool) -> list[Contender]:
    cs = []
    for fmt in ("csv", "parquet"):
        inp = data[fmt]
        group = f"fit {fmt.upper() if fmt == 'csv' else 'Parquet'}"
        if have_normcli:
            o = outdir / f"fit_{fmt}_normcli.json"
            cs.append(Contender(f"fit_{fmt}/normcli", group, "normcli fit",
                                normcli + ["fit", str(inp), "-o", str(o)], [o]))
        o = outdir / f"fit_{fmt}_polars.json"
        cs.append(Contender(f"fit_{fmt}/polars", group, "polars baseline",
                            worker_cmd("polars-fit", inp, o), [o]))
        o = outdir / f"fit_{fmt}_duckdb.json"
        cs.append(Contender(f"fit_{fmt}/duckdb", group, "duckdb",
                            worker_cmd("duckdb-fit", inp, o), [o]))
        if not args.skip_pandas:
            o = outdir / f"fit_{fmt}_pandas.json"
            cs.append(Contender(f"fit_{fmt}/pandas", group, "pandas+sklearn",
                                worker_cmd("pandas-fit", inp, o), [o], max_runs=args.pandas_repeats))
    return cs


def section_transform(args, data: dict, outdir: Path, normcli: list[str], have_normcli: bool,
                      stats: dict) -> list[Contender]:
    cs = []
    for fmt in ("csv", "parquet"):
        inp = data[fmt]
        group = f"transform {'CSV' if fmt == 'csv' else 'Parquet'}->Parquet"
        if have_normcli:
            o = outdir / f"tr_{fmt}_normcli.parquet"
            cs.append(Contender(f"transform_{fmt}/normcli", group, "normcli transform",
                                normcli + ["transform", str(inp), "--stats", str(stats["normcli"]),
                                           "-o", str(o)], [o]))
        o = outdir / f"tr_{fmt}_polars.parquet"
        cs.append(Contender(f"transform_{fmt}/polars", group, "polars baseline",
                            worker_cmd("polars-transform", inp, stats["baseline"], o), [o]))
        o = outdir / f"tr_{fmt}_duckdb.parquet"
        cs.append(Contender(f"transform_{fmt}/duckdb", group, "duckdb",
                            worker_cmd("duckdb-transform", inp, stats["baseline"], o), [o]))
        if not args.skip_pandas:
            o = outdir / f"tr_{fmt}_pandas.parquet"
            cs.append(Contender(f"transform_{fmt}/pandas", group, "pandas+sklearn",
                                worker_cmd("pandas-transform", inp, stats["baseline"], o), [o],
                                max_runs=args.pandas_repeats))
    return cs


def section_pipe(args, data: dict, outdir: Path, normcli: list[str], have_normcli: bool,
                 stats: dict) -> list[Contender]:
    """fit and transform of the CSV from a pipe next to the same command on the file; fit of the
    4x CSV from a pipe (memory must not grow)."""
    if not have_normcli:
        return []
    cs = []
    for label, inp in (("file", data["csv"]), ("pipe", None)):
        o = outdir / f"pipe_fit_{label}.json"
        cmd = normcli + ["fit", str(inp) if inp else "-", "-o", str(o)]
        cs.append(Contender(f"pipe_fit/{label}", "fit CSV: file vs pipe", f"normcli fit ({label})",
                            cmd, [o], stdin_file=None if inp else data["csv"]))
        o = outdir / f"pipe_tr_{label}.csv"
        cmd = normcli + ["transform", str(inp) if inp else "-", "--stats", str(stats["normcli"]), "-o", str(o)]
        cs.append(Contender(f"pipe_transform/{label}", "transform CSV->CSV: file vs pipe",
                            f"normcli transform ({label})", cmd, [o], stdin_file=None if inp else data["csv"]))
    if "csv_x4" in data and data["csv_x4"].exists():
        o = outdir / "pipe_fit_x4.json"
        cs.append(Contender("pipe_fit/pipe_x4", "fit CSV: file vs pipe", "normcli fit (pipe, 4x)",
                            normcli + ["fit", "-", "-o", str(o)], [o], stdin_file=data["csv_x4"]))
    return cs


def first_row_seconds(normcli: list[str], csv: Path, stats: Path, runs: int) -> list[float]:
    """Seconds from start until transform, reading ``csv`` from a pipe, writes its first data row."""
    times = []
    for _ in range(runs):
        wait_for_quiet()
        t0 = time.perf_counter()
        feeder = subprocess.Popen(["cat", str(csv)], stdout=subprocess.PIPE)
        proc = subprocess.Popen(normcli + ["transform", "-s", str(stats)], stdin=feeder.stdout,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        feeder.stdout.close()
        proc.stdout.readline()  # the header
        proc.stdout.readline()  # the first row
        times.append(time.perf_counter() - t0)
        proc.kill()
        feeder.kill()
        proc.wait()
        feeder.wait()
    return times


def section_latency(args, outdir: Path, normcli: list[str], have_normcli: bool) -> list[Contender]:
    """Per-invocation cost on a 10-row CSV, as a script calling normcli once per file feels it."""
    tiny = outdir / "tiny.csv"
    tiny.write_text("a,b,c\n" + "".join(f"{i},{i * 0.5},x{i}\n" for i in range(10)))
    stats = outdir / "tiny_stats.json"
    cs = []
    if have_normcli:
        subprocess.run(normcli + ["fit", str(tiny), "-o", str(stats), "-q"], check=True)
        o = outdir / "tiny_fit_normcli.json"
        cs.append(Contender("latency_fit/normcli", "latency: fit 10 rows", "normcli fit",
                            normcli + ["fit", str(tiny), "-o", str(o), "-q"], [o]))
        cs.append(Contender("latency_transform/normcli", "latency: transform 10 rows", "normcli transform",
                            normcli + ["transform", str(tiny), "-s", str(stats)]))
        cs.append(Contender("latency_inspect/normcli", "latency: inspect", "normcli inspect",
                            normcli + ["inspect", str(stats)]))
    o = outdir / "tiny_fit_polars.json"
    cs.append(Contender("latency_fit/polars", "latency: fit 10 rows", "bare polars script",
                        [sys.executable, "-c", LATENCY_FIT, str(tiny), str(o)], [o]))
    if have_normcli:
        cs.append(Contender("latency_transform/polars", "latency: transform 10 rows", "bare polars script",
                            [sys.executable, "-c", LATENCY_TRANSFORM, str(tiny), str(stats)]))
    cs.append(Contender("latency_inspect/python", "latency: inspect", "python -c 'import json'",
                        [sys.executable, "-c", "import json"]))
    return cs


def inspect_imports_polars(normcli: list[str], stats: Path) -> bool | None:
    code = (
        "import sys\n"
        f"sys.argv = ['normcli', 'inspect', {str(stats)!r}]\n"
        "from normcli.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('POLARS=' + str('polars' in sys.modules) + '\\n')\n"
    )
    p = run_capture([sys.executable, "-c", code])
    line = [ln for ln in p.stderr.splitlines() if ln.startswith("POLARS=")]
    return None if not line else line[-1] == "POLARS=True"


def section_scale(args, data: dict, outdir: Path, normcli: list[str], have_normcli: bool,
                  stats: dict) -> list[Contender]:
    cs = []
    for fmt in ("csv", "parquet"):
        inp = data[f"{fmt}_x4"]
        name = "CSV" if fmt == "csv" else "Parquet"
        o = outdir / f"x4_fit_{fmt}_normcli.json"
        ob = outdir / f"x4_fit_{fmt}_polars.json"
        if have_normcli:
            cs.append(Contender(f"x4_fit_{fmt}/normcli", f"4x fit {name}", "normcli fit",
                                normcli + ["fit", str(inp), "-o", str(o)], [o]))
        if args.scale_baseline:
            cs.append(Contender(f"x4_fit_{fmt}/polars", f"4x fit {name}", "polars baseline",
                                worker_cmd("polars-fit", inp, ob), [ob]))
    for fmt in ("csv", "parquet"):
        inp = data[f"{fmt}_x4"]
        name = "CSV" if fmt == "csv" else "Parquet"
        t = outdir / f"x4_tr_{fmt}_normcli.parquet"
        tb = outdir / f"x4_tr_{fmt}_polars.parquet"
        if have_normcli:
            cs.append(Contender(f"x4_transform_{fmt}/normcli", f"4x transform {name}->Parquet",
                                "normcli transform",
                                normcli + ["transform", str(inp), "--stats", str(stats["normcli"]),
                                           "-o", str(t)], [t]))
        if args.scale_baseline:
            cs.append(Contender(f"x4_transform_{fmt}/polars", f"4x transform {name}->Parquet",
                                "polars baseline",
                                worker_cmd("polars-transform", inp, stats["baseline"], tb), [tb]))
    return cs


# =====================================================================================
# Report
# =====================================================================================


def fmt_s(x: float | None) -> str:
    return "n/a" if x is None else (f"{x * 1000:.1f} ms" if x < 1 else f"{x:.3f} s")


def table(contenders: list[Contender]) -> str:
    lines = [
        f"{'section':30s} {'contender':28s} {'n':>3s} {'median':>11s} {'min':>11s} "
        f"{'max':>11s} {'cpu':>9s} {'peak RSS':>10s} {'others':>8s}",
        "-" * 130,
    ]
    order = list(dict.fromkeys(c.group for c in contenders))
    contenders = sorted(contenders, key=lambda c: order.index(c.group))
    last = None
    for c in contenders:
        if last is not None and c.group != last:
            lines.append("")
        last = c.group
        if not c.runs:
            lines.append(f"{c.group:30s} {c.label:28s} {0:3d} {'FAILED' if c.error else 'n/a':>11s}")
            continue
        walls = [r.wall_s for r in c.runs]
        lines.append(
            f"{c.group:30s} {c.label:28s} {len(c.runs):3d} {fmt_s(med(c)):>11s} "
            f"{fmt_s(min(walls)):>11s} {fmt_s(max(walls)):>11s} "
            f"{med(c, 'cpu_s'):8.2f}s {med(c, 'rss_mib'):6.0f} MiB {med(c, 'other_cpu_s'):7.2f}s"
            + (f"  ({c.noisy} noisy)" if c.noisy else "")
        )
    return "\n".join(lines)


@dataclass
class Check:
    name: str
    value: str
    limit: str
    status: str  # PASS / FAIL / SKIP


def ratio_check(name: str, num: Contender | None, den: Contender | None, limit: float | None, kind: str,
                ref: tuple[Contender | None, Contender | None] | None = None, attr: str = "wall_s") -> Check:
    """num/den of median wall (or ``attr``) times against limit; also shows the CPU-time ratio
    (less sensitive to other load on the machine) or, with ref, the same ratio for a reference
    pair. A ``limit`` of None is information only."""
    if limit is None:
        lim = "info"
    else:
        lim = f"{'<=' if kind == 'max' else '>='} {limit:.2f}x" if kind != "over" else f"> {limit:.2f}x"
    a, b = med(num, attr), med(den, attr)
    if a is None or b is None or b == 0:
        return Check(name, "n/a", lim, "SKIP")
    r = a / b
    if limit is None:
        ok = True
    elif kind == "over":
        ok = r > limit
    else:
        ok = r <= limit if kind == "max" else r >= limit
    extra = ""
    if ref is not None:
        ra, rb = med(ref[0]), med(ref[1])
        if ra is not None and rb:
            extra = f" (polars {ra / rb:.2f}x)"
    elif attr == "wall_s":
        ca, cb = med(num, "cpu_s"), med(den, "cpu_s")
        if ca is not None and cb:
            extra = f" (cpu {ca / cb:.2f}x)"
    status = "info" if limit is None else ("PASS" if ok else "FAIL")
    return Check(name, f"{r:.2f}x{extra}", lim, status)


def evaluate(by_key: dict[str, Contender], help_info: dict | None, extra: dict) -> list[Check]:
    g = by_key.get
    checks = []
    for op in ("fit", "transform"):
        for fmt, name in (("csv", "CSV"), ("parquet", "Parquet")):
            label = f"{op} {name}" + ("->Parquet" if op == "transform" else "")
            checks.append(ratio_check(f"{label}: normcli / polars (same work)",
                                      g(f"{op}_{fmt}/normcli"), g(f"{op}_{fmt}/polars"),
                                      TARGETS[f"{op}_vs_polars_max"], "max"))
            checks.append(ratio_check(f"{label}: duckdb / normcli (speedup)",
                                      g(f"{op}_{fmt}/duckdb"), g(f"{op}_{fmt}/normcli"),
                                      TARGETS["duckdb_vs_normcli_min"], "over"))
            checks.append(ratio_check(f"{label}: pandas+sklearn / normcli (speedup)",
                                      g(f"{op}_{fmt}/pandas"), g(f"{op}_{fmt}/normcli"), None, "min",
                                      ref=(g(f"{op}_{fmt}/pandas"), g(f"{op}_{fmt}/polars"))))
    for op in ("fit", "transform"):
        checks.append(ratio_check(f"{op} CSV from a pipe: cpu pipe / file",
                                  g(f"pipe_{op}/pipe"), g(f"pipe_{op}/file"),
                                  TARGETS["pipe_cpu_max"], "max", attr="cpu_s"))
    tol = TARGETS["rss_scale_tolerance"]
    lim = f"{1 - tol:.2f}..{1 + tol:.2f}"
    pairs = [("peak RSS 4x/1x: normcli fit CSV from a pipe", g("pipe_fit/pipe_x4"), g("pipe_fit/pipe"))]
    for op in ("fit", "transform"):
        for fmt, name in (("csv", "CSV"), ("parquet", "Parquet")):
            pairs.append((f"peak RSS 4x/1x: normcli {op} {name}", g(f"x4_{op}_{fmt}/normcli"), g(f"{op}_{fmt}/normcli")))
    for label, big, small in pairs:
        a, b = med(big, "rss_mib"), med(small, "rss_mib")
        if a is None or b is None:
            checks.append(Check(label, "n/a", lim, "SKIP"))
            continue
        r = a / b
        checks.append(Check(label, f"{r:.2f} ({b:.0f}->{a:.0f} MiB)", lim,
                            "PASS" if abs(r - 1) <= tol + 1e-12 else "FAIL"))
    first = extra.get("first_row_s")
    checks.append(Check("transform from a pipe: first output row", fmt_s(first),
                        f"< {TARGETS['first_row_max_s']:.0f} s",
                        "SKIP" if first is None else ("PASS" if first < TARGETS["first_row_max_s"] else "FAIL")))
    for op in ("fit", "transform"):
        checks.append(ratio_check(f"latency, 10-row CSV: normcli {op} / bare polars script",
                                  g(f"latency_{op}/normcli"), g(f"latency_{op}/polars"),
                                  TARGETS["latency_max"], "max"))
    polars_in_inspect = extra.get("inspect_imports_polars")
    checks.append(Check("normcli inspect imports no polars",
                        "n/a" if polars_in_inspect is None else ("polars" if polars_in_inspect else "none"),
                        "none", "SKIP" if polars_in_inspect is None else ("FAIL" if polars_in_inspect else "PASS")))
    h = med(g("help/normcli"))
    hc = med(g("help/normcli"), "cpu_s")
    checks.append(Check("normcli --help median", fmt_s(h) + (f" (cpu {fmt_s(hc)})" if hc else ""),
                        f"<= {TARGETS['help_max_s'] * 1000:.0f} ms",
                        "SKIP" if h is None else ("PASS" if h <= TARGETS["help_max_s"] else "FAIL")))
    if help_info is not None:
        heavy = help_info.get("heavy_imports")
        checks.append(Check("normcli --help imports no polars/numpy",
                            "n/a" if heavy is None else (", ".join(heavy) or "none"), "none",
                            "SKIP" if heavy is None else
                            ("FAIL" if {"polars", "numpy"} & set(heavy) else "PASS")))
    return checks


def checks_table(checks: list[Check]) -> str:
    w = max(len(c.name) for c in checks)
    v = max(24, max(len(c.value) for c in checks))
    lines = [f"{'target':{w}s}  {'measured':>{v}s}  {'limit':>12s}  result", "-" * (w + v + 26)]
    lines += [f"{c.name:{w}s}  {c.value:>{v}s}  {c.limit:>12s}  {c.status}" for c in checks]
    return "\n".join(lines)


# =====================================================================================
# Main
# =====================================================================================


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Benchmark normcli fit/transform/--help against Polars and pandas baselines.",
    )
    ap.add_argument("--rows", type=int, default=None, help="rows of the 1x data (default 5,000,000)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 500,000 rows, 1 repeat, 10 --help runs")
    ap.add_argument("--skip-pandas", action="store_true", help="do not run the pandas contenders")
    ap.add_argument("--pandas-repeats", type=int, default=1,
                    help="runs of each (slow) pandas contender, within the first repeats (default 1)")
    ap.add_argument("--help-runs", type=int, default=None, help="--help runs (>= 10; default 20)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="where data and outputs go (default $NORMCLI_BENCH_DIR or /work/bench-data)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--no-scale-baseline", dest="scale_baseline", action="store_false",
                    help="in the 4x section run only normcli (not the Polars baselines)")
    ap.add_argument("--no-validate", dest="validate", action="store_false",
                    help="skip checking normcli's stats/output against the baseline's")
    ap.add_argument("--noise-threshold", type=float, default=0.25,
                    help="redo a run if other processes used more than this many cores on "
                    "average meanwhile (default 0.25; a negative value disables)")
    ap.add_argument("--noise-retries", type=int, default=2,
                    help="times a noisy run is redone before it is kept anyway (default 2)")
    ap.add_argument("--noise-wait", type=float, default=10.0,
                    help="before each run, wait up to this many seconds for other processes to "
                    "quiet down (default 10)")
    ap.add_argument("--strict", action="store_true", help="exit 1 if any target FAILs")
    ap.add_argument("--json", type=Path, default=None,
                    help="also write results here (default: <data-dir>/results/)")
    ap.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rows is None:
        args.rows = 500_000 if args.quick else 5_000_000
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.help_runs is None:
        args.help_runs = 10 if args.quick else 20
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = set(args.sections) - set(SECTIONS)
    if bad:
        ap.error(f"unknown sections: {', '.join(sorted(bad))}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        name, *rest = args.worker
        WORKERS[name](*rest)
        return 0

    NOISE["threshold"] = args.noise_threshold if args.noise_threshold >= 0 else float("inf")
    NOISE["retries"] = max(0, args.noise_retries)
    NOISE["max_wait"] = max(0.0, args.noise_wait)
    sys.path.insert(0, str(HERE))
    import gen_data

    data_dir = args.data_dir or gen_data.default_data_dir()
    outdir = data_dir / "out"
    outdir.mkdir(parents=True, exist_ok=True)

    normcli, shim = find_normcli()
    have_normcli, why = normcli_ready(normcli)
    log(f"normcli: {shlex.join(normcli)} -> {'ready' if have_normcli else 'NOT READY: ' + why}")
    if not have_normcli:
        log("  (running the baselines only; normcli rows and targets show n/a / SKIP)")

    need_data = any(s in args.sections for s in ("fit", "transform", "scale", "pipe"))
    data = {}
    if need_data:
        scale = "scale" in args.sections or "pipe" in args.sections
        data = gen_data.paths_for(args.rows, data_dir)
        if not gen_data.manifest_ok(data, args.rows, scale):
            # In a subprocess: this process must stay small, because a child's ru_maxrss starts
            # from its parent's RSS at spawn (fork/vfork + exec) on Linux.
            cmd = [sys.executable, str(HERE / "gen_data.py"), "--rows", str(args.rows),
                   "--data-dir", str(data_dir)] + ([] if scale else ["--no-scale"])
            if subprocess.run(cmd, stdout=sys.stderr).returncode != 0:
                raise SystemExit("data generation failed")
    sizes = {k: v.stat().st_size for k, v in data.items() if k != "manifest" and v.exists()}

    all_cs: list[Contender] = []
    help_info = None
    notes: list[str] = []
    t_start = time.perf_counter()
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)

    extra: dict = {}
    if "help" in args.sections:
        help_info = section_help(args, normcli, shim, have_normcli)
        all_cs += help_info["contenders"]

    if "latency" in args.sections:
        cs = section_latency(args, outdir, normcli, have_normcli)
        runs = max(10, args.help_runs)
        log(f"== latency: {runs} runs each, interleaved")
        run_round_robin(cs, runs, "latency")
        all_cs += cs
        if have_normcli:
            extra["inspect_imports_polars"] = inspect_imports_polars(normcli, outdir / "tiny_stats.json")

    stats = {}
    if any(s in args.sections for s in ("transform", "scale", "pipe")) or (args.validate and "fit" in args.sections):
        # Untimed preparation (also warms caches): the stats files transform needs, and one
        # transform by each side to check they produce the same thing.
        log("== prepare: stats for transform (untimed)")
        warm_files([data["csv"], data["parquet"]])
        stats["baseline"] = outdir / "prep_stats_baseline.json"
        run, text = run_once(worker_cmd("polars-fit", data["csv"], stats["baseline"]))
        if run.rc:
            raise SystemExit(f"baseline fit failed: {text}")
        if have_normcli:
            stats["normcli"] = outdir / "prep_stats_normcli.json"
            run, text = run_once(normcli + ["fit", str(data["csv"]), "-o", str(stats["normcli"])])
            if run.rc:
                log(f"  normcli fit failed (exit {run.rc}): {text.strip()[-2000:]}")
                have_normcli = False
        if have_normcli and args.validate:
            ob, on = outdir / "prep_tr_baseline.parquet", outdir / "prep_tr_normcli.parquet"
            rb, _ = run_once(worker_cmd("polars-transform", data["csv"], stats["baseline"], ob))
            rn, tn = run_once(normcli + ["transform", str(data["csv"]), "--stats",
                                         str(stats["normcli"]), "-o", str(on)])
            if rn.rc:
                notes.append(f"normcli transform failed in preparation (exit {rn.rc}): {tn.strip()[-500:]}")
            p = run_capture(worker_cmd("validate", stats["baseline"], stats["normcli"],
                                       ob if rb.rc == 0 else "", on if rn.rc == 0 else ""))
            remove([ob, on])
            try:
                rep = json.loads(p.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                rep = {"stats": [f"validation crashed: {p.stderr.strip()[-500:]}"], "output": []}
            for k in ("stats", "output"):
                for msg in rep[k]:
                    notes.append(f"validation ({k}): {msg}")
            log(f"  validation: {len(rep['stats'])} stats / {len(rep['output'])} output differences")

    if "fit" in args.sections:
        cs = section_fit(args, data, outdir, normcli, have_normcli)
        log(f"== fit: {args.repeats} repeats, interleaved")
        warm_files([data["csv"], data["parquet"]])
        run_round_robin(cs, args.repeats, "fit")
        all_cs += cs

    if "transform" in args.sections:
        cs = section_transform(args, data, outdir, normcli, have_normcli, stats)
        log(f"== transform: {args.repeats} repeats, interleaved")
        warm_files([data["csv"], data["parquet"]])
        run_round_robin(cs, args.repeats, "transform")
        all_cs += cs

    if "pipe" in args.sections:
        cs = section_pipe(args, data, outdir, normcli, have_normcli, stats)
        log(f"== pipe: {args.repeats} repeats, interleaved")
        warm_files([data["csv"]])
        run_round_robin(cs, args.repeats, "pipe")
        all_cs += cs
        if have_normcli:
            times = first_row_seconds(normcli, data["csv"], stats["normcli"], max(3, args.repeats))
            extra["first_row_s"] = statistics.median(times)
            log(f"  first output row of transform from a pipe: {', '.join(fmt_s(t) for t in times)}")

    if "scale" in args.sections:
        cs = section_scale(args, data, outdir, normcli, have_normcli, stats)
        log(f"== scale: 4x input ({4 * args.rows:,} rows), {args.repeats} repeats, interleaved")
        warm_files([data["csv_x4"], data["parquet_x4"]])
        run_round_robin(cs, args.repeats, "4x")
        all_cs += cs

    by_key = {c.key: c for c in all_cs}
    checks = evaluate(by_key, help_info, extra)
    elapsed = time.perf_counter() - t_start

    import platform

    header = [
        f"normcli core benchmark: {args.rows:,} rows x 12 cols "
        + (f"(CSV {sizes['csv'] / 1e9:.2f} GB, Parquet {sizes['parquet'] / 1e9:.2f} GB); "
           if "csv" in sizes else "")
        + f"{args.repeats} interleaved repeat(s), pandas x{0 if args.skip_pandas else args.pandas_repeats}; "
        + f"{os.cpu_count()} CPUs; python {platform.python_version()}; "
        + f"polars {_version('polars')}, pandas {_version('pandas')}, "
        + f"scikit-learn {_version('scikit-learn')}; took {elapsed:.0f} s",
        f"normcli: {shlex.join(normcli)}" + ("" if have_normcli else f"  (NOT READY: {why})"),
    ]
    import resource

    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    header.append(
        f"peak RSS floor: {floor:.0f} MiB (a child's ru_maxrss starts at this harness's RSS; "
        "python -c pass itself needs ~13 MiB)"
    )
    if floor > 64:
        notes.append(f"the harness grew to {floor:.0f} MiB: peak RSS values below that are wrong")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    header.append(
        f"load average at start {load0[0]:.2f}, at end {load[0]:.2f}; 'others' = median CPU seconds "
        "used by other processes during each run (0 on a quiet machine)"
    )
    discarded = sum(c.discarded for c in all_cs)
    noisy = sum(c.noisy for c in all_cs)
    if discarded or noisy:
        notes.append(
            f"other processes were busy: {discarded} run(s) discarded and redone, {noisy} kept "
            f"although noisy (marked in the table); wall-time ratios of noisy rows are unreliable, "
            "the cpu ratios in the targets table much less so"
        )
    print()
    print("\n".join(header))
    print()
    print(table(all_cs))
    print()
    print(checks_table(checks))
    failed = [c for c in all_cs if c.error]
    for c in failed:
        notes.append(f"{c.key} failed: {c.error.splitlines()[0] if c.error else ''}")
    if notes:
        print()
        print("notes:")
        for n in notes:
            print(f"  - {n}")

    results = {
        "rows": args.rows,
        "repeats": args.repeats,
        "sizes": sizes,
        "normcli": normcli,
        "normcli_ready": have_normcli,
        "elapsed_s": elapsed,
        "contenders": [
            {**{k: v for k, v in asdict(c).items() if k not in ("cleanup",)},
             "cmd": c.cmd, "median_s": med(c), "median_rss_mib": med(c, "rss_mib")}
            for c in all_cs
        ],
        "checks": [asdict(c) for c in checks],
        "notes": notes,
    }
    out = args.json or (data_dir / "results" / f"bench_core_{args.rows}_{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nresults: {out}")
    if args.strict and any(c.status == "FAIL" for c in checks):
        return 1
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "-"


if __name__ == "__main__":
    sys.exit(main())
