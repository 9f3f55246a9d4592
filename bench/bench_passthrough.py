#!/usr/bin/env python
"""What it costs transform to keep text columns byte for byte (issue 10, item 3).

Polars applies ``null_values`` to every column of a CSV alike, so reading a file the fast way
empties a text cell ``NA`` (Namibia) or ``null`` (a word) in a column that is only passed through.
normcli therefore reads a CSV that has text columns as text and parses the typed columns itself
(:func:`normcli.data.formats.typed_from_text`). This compares ways of doing that, side by side,
interleaved, medians of CPU and wall time, as ratios to the fast (but lossy) reading:

  native        scan_csv with the typed schema and null_values (what transform did: lossy)
  normcli       the text scan + typed_from_text (a plain cast, the exact parser only where it fails)
  slow-path     the text scan + the exact emulation of the reader on every cell
  two-scans     a native scan of the typed columns + a text scan of the text columns, side by side

on CSV -> Parquet and CSV -> CSV, with 11 numeric columns and 1 text column (the bench_core data
shape). Each contender runs in its own subprocess.

    python bench/bench_passthrough.py [--rows 2000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
TOKENS = ["NA", "N/A", "NaN", "nan", "null", "NULL"]
CONTENDERS = ("native", "normcli", "slow-path", "two-scans")


def generate(path: Path, rows: int) -> None:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(10)
    columns = {f"f{i}": rng.normal(size=rows) * 10**i for i in range(8)}
    columns |= {f"i{i}": rng.integers(-(10**6), 10**6, rows) for i in range(3)}
    frame = pl.DataFrame(columns).with_columns(
        pl.when(pl.col("f1") > 15).then(None).otherwise(pl.col("f1")).alias("f1"),
        pl.Series("country", rng.choice(["NA", "DE", "FR", "null", "N/A", "BR"], rows)),
    )
    frame.write_csv(path, null_value="NA")


def plan(name: str, path: str):
    import polars as pl

    sys.path.insert(0, str(ROOT))
    from normcli.data.formats import cleaned_text, typed_from_text

    schema = pl.scan_csv(path, null_values=TOKENS, infer_schema_length=10_000).collect_schema()
    typed = {n: (pl.Float64 if t != pl.String else t) for n, t in schema.items()}
    text = dict.fromkeys(schema, pl.String)
    numbers = [n for n, t in typed.items() if t != pl.String]
    if name == "native":
        return pl.scan_csv(path, schema=typed, null_values=TOKENS)
    if name == "normcli":
        return pl.scan_csv(path, schema=text).with_columns(typed_from_text(typed, TOKENS))
    if name == "slow-path":
        return pl.scan_csv(path, schema=text).with_columns([cleaned_text(n, TOKENS).cast(pl.Float64) for n in numbers])
    left = pl.scan_csv(path, schema=typed, null_values=TOKENS).select(numbers)
    right = pl.scan_csv(path, schema=text).select([n for n in schema if n not in numbers])
    return pl.concat([left, right], how="horizontal").select(list(schema))


def worker(name: str, source: str, target: str) -> None:
    frame = plan(name, source)
    if target.endswith(".parquet"):
        frame.sink_parquet(target)
    else:
        frame.sink_csv(target)


def run(name: str, source: Path, target: Path) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(HERE), "--worker", name, str(source), str(target)])
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{name} failed (status {status})")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.generate:
        generate(Path(args.generate[0]), int(args.generate[1]))
        return
    with tempfile.TemporaryDirectory(prefix="normcli-bench-") as folder:
        source = Path(folder) / "data.csv"
        subprocess.run([sys.executable, str(HERE), "--generate", str(source), str(args.rows)], check=True)  # keeps this process small
        print(f"{args.rows:,} rows, {source.stat().st_size / 1e6:.0f} MB of CSV; {args.repeats} interleaved repeats; "
              f"{os.cpu_count()} cores (a shared, noisy machine: go by the CPU ratios)\n")
        print(f"{'output':8} {'contender':10} {'cpu median':>11} {'ratio':>7} {'wall median':>12} {'ratio':>7}")
        for suffix in (".parquet", ".csv"):
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in CONTENDERS}
            for repeat in range(args.repeats):
                order = CONTENDERS[repeat % len(CONTENDERS):] + CONTENDERS[: repeat % len(CONTENDERS)]
                for name in order:
                    times[name].append(run(name, source, Path(folder) / f"out{suffix}"))
            base_cpu = statistics.median(c for c, _ in times["native"])
            base_wall = statistics.median(w for _, w in times["native"])
            for name in CONTENDERS:
                cpu = statistics.median(c for c, _ in times[name])
                wall = statistics.median(w for _, w in times[name])
                print(f"{suffix[1:]:8} {name:10} {cpu:10.3f}s {cpu / base_cpu:6.2f}x {wall:11.3f}s {wall / base_wall:6.2f}x")


if __name__ == "__main__":
    main()
