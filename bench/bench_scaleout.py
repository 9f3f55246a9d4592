#!/usr/bin/env python
"""Scale-out benchmark: normcli on a local Dask cluster vs the local engine, and the numbers the
performance model of docs/scale-out.md is built from.

    python bench/bench_scaleout.py            # 5,000,000 rows in 16 Parquet files, 3 repeats
    python bench/bench_scaleout.py --quick    # 500,000 rows, 1 repeat

What it does, side by side in one run:

1. Splits the core benchmark's Parquet file (``gen_data.py``; made if missing) into 16 Parquet
   files (cached next to it).
2. Starts ``dask scheduler`` and two ``dask worker --nthreads 1`` on 127.0.0.1 and times the
   start-up (scheduler file + both workers seen by a client); start-up is then excluded.
3. Warms the cluster up with one fit (the workers import normcli and Polars once).
4. Interleaves, ``--repeats`` times: ``normcli fit 16 files`` locally and with ``--scheduler-file``,
   and ``normcli transform 16 files -o DIR/`` (a dataset) locally and on the cluster. Each is a
   process, as a user runs it. Reported: medians, the cluster's overhead in seconds and as a ratio.
   The stats files are checked byte-identical.
5. Measures, in-process: the fragment function's time on one file (seconds, rows/s and MB/s of
   Parquet), the scheduler's per-task overhead (a no-op mapped over 2,000 tasks), the client's
   planning cost per file (schema and footer) and its merge cost per fragment.

The machine is shared and has 2 cores: the two workers and the local engine's Polars threads
compete for the same cores, so treat the numbers as indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
NORMCLI = [sys.executable, "-m", "normcli"]
FILES = 16


def data_dir(given: str | None) -> Path:
    return Path(given or os.environ.get("NORMCLI_BENCH_DIR") or "/work/bench-data")


def split_files(folder: Path, rows: int) -> list[Path]:
    """The bench's Parquet file split into FILES files of equal rows (cached)."""
    import polars as pl

    source = folder / f"core_{rows}.parquet"
    if not source.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_data.py"), "--rows", str(rows), "--data-dir", str(folder)], check=True)
    target = folder / f"scaleout_{rows}x{FILES}"
    files = [target / f"part-{i:02d}.parquet" for i in range(FILES)]
    if all(f.exists() for f in files):
        return files
    target.mkdir(exist_ok=True)
    frame = pl.read_parquet(source)
    size = -(-frame.height // FILES)
    for index, path in enumerate(files):
        temp = path.with_suffix(".tmp")
        frame.slice(index * size, size).write_parquet(temp)
        os.replace(temp, path)
    return files


class Cluster:
    """A scheduler and two single-threaded workers on 127.0.0.1, started and stopped by PID."""

    def __init__(self, folder: Path) -> None:
        from distributed import Client

        self.file = folder / "scheduler.json"
        started = time.perf_counter()
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--scheduler-file", str(self.file), "--dashboard-address", ":0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        ]  # fmt: skip
        while not (self.file.exists() and self.file.stat().st_size):
            time.sleep(0.02)
        for _ in range(2):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(self.file), "--nthreads", "1", "--no-dashboard"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        self.client = Client(scheduler_file=str(self.file), set_as_default=False)
        self.client.wait_for_workers(2, timeout=120)
        self.startup = time.perf_counter() - started

    def close(self) -> None:
        self.client.close()
        for process in self.processes:
            os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=60)


def timed(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run([*NORMCLI, *args, "-q"], cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"failed: normcli {' '.join(args)}\n{result.stderr.decode()}")
    return elapsed


def in_process_numbers(files: list[Path], cluster: Cluster) -> dict[str, float]:
    """Per-fragment time, per-task overhead, planning per file and merge per fragment."""
    import copy

    from normcli.data.formats import ReadOptions
    from normcli.data.inputs import open_sources
    from normcli.data.schema import read_schema, unify
    from normcli.scaling.fit import select_columns
    from normcli.scaling.fragments import Fragment, fragment_stats, row_ranges
    from normcli.scaling.merge import Fold
    from normcli.scaling.model import FitOptions

    read = ReadOptions()
    with open_sources([str(f) for f in files], read) as sources:
        started = time.perf_counter()
        schemas = [read_schema(s, read) for s in sources]
        ranges = [row_ranges(s, read) for s in sources]
        planning = (time.perf_counter() - started) / len(sources)
        specs = select_columns(unify(schemas), FitOptions()).specs
        fragment = Fragment(0, sources[0], read, tuple(specs), rows=ranges[0][0])
        fragment_stats(fragment)  # warm
        times = []
        for _ in range(3):
            started = time.perf_counter()
            result = fragment_stats(fragment)
            times.append(time.perf_counter() - started)
    per_fragment = statistics.median(times)
    size = files[0].stat().st_size
    results = [copy.deepcopy(result) for _ in range(2000)]
    started = time.perf_counter()
    fold = Fold(inputs=[])
    for item in results:
        fold.rows += item.rows
        for name, partial in item.columns.items():
            fold.add_numbers(name, partial)
    merge = (time.perf_counter() - started) / len(results)
    client = cluster.client
    client.gather(client.map(abs, range(200), pure=False))  # warm
    started = time.perf_counter()
    client.gather(client.map(abs, range(2000), pure=False))
    per_task = (time.perf_counter() - started) / 2000
    return {
        "fragment_s": per_fragment,
        "fragment_rows": result.rows,
        "fragment_bytes": size,
        "fragment_columns": len(specs),
        "rows_per_s": result.rows / per_fragment,
        "mb_per_s": size / per_fragment / 1e6,
        "task_overhead_s": per_task,
        "planning_per_file_s": planning,
        "merge_per_fragment_s": merge,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500,000 rows, 1 repeat")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    rows = args.rows or (500_000 if args.quick else 5_000_000)
    repeats = args.repeats or (1 if args.quick else 3)
    folder = data_dir(args.data_dir)
    files = split_files(folder, rows)
    names = [str(f) for f in files]
    with tempfile.TemporaryDirectory(prefix="normcli-bench-scaleout-", dir=folder) as scratch:
        work = Path(scratch)
        cluster = Cluster(work)
        try:
            dask = ["--scheduler-file", str(cluster.file)]
            started = time.perf_counter()
            timed(["fit", *names, "-o", str(work / "warm.json"), *dask], work)
            first = time.perf_counter() - started
            samples: dict[str, list[float]] = {k: [] for k in ("fit_local", "fit_dask", "transform_local", "transform_dask")}
            for repeat in range(repeats):
                samples["fit_local"].append(timed(["fit", *names, "-o", str(work / "local.json")], work))
                samples["fit_dask"].append(timed(["fit", *names, "-o", str(work / "dask.json"), *dask], work))
                stats = str(work / "local.json")
                samples["transform_local"].append(timed(["transform", *names, "-s", stats, "-o", str(work / f"tl{repeat}") + "/"], work))
                samples["transform_dask"].append(timed(["transform", *names, "-s", stats, "-o", str(work / f"td{repeat}") + "/", *dask], work))
            identical = (work / "local.json").read_bytes() == (work / "dask.json").read_bytes()
            numbers = in_process_numbers(files, cluster)
        finally:
            cluster.close()
    medians = {k: statistics.median(v) for k, v in samples.items()}
    print(f"\nnormcli scale-out benchmark: {rows:,} rows in {FILES} Parquet files, 2 workers × 1 thread, "
          f"{repeats} interleaved repeats (medians; a shared 2-core machine: indicative)\n")  # fmt: skip
    print(f"cluster start-up (excluded below): {cluster.startup:.2f} s; first fit on a fresh cluster: {first:.2f} s")
    print(f"stats file byte-identical local vs cluster: {identical}\n")
    print("| command | local (s) | cluster (s) | overhead (s) | ratio |")
    print("|---|---|---|---|---|")
    for command in ("fit", "transform"):
        local, remote = medians[f"{command}_local"], medians[f"{command}_dask"]
        print(f"| {command} | {local:.2f} | {remote:.2f} | {remote - local:+.2f} | {remote / local:.2f}× |")
    print("\n| measured in-process | value |")
    print("|---|---|")
    print(f"| fragment function, one file ({numbers['fragment_rows']:,} rows, {numbers['fragment_columns']} columns, "
          f"{numbers['fragment_bytes'] / 1e6:.1f} MB) | {numbers['fragment_s'] * 1e3:.0f} ms = "
          f"{numbers['rows_per_s'] / 1e6:.2f} M rows/s = {numbers['mb_per_s']:.0f} MB/s of Parquet per core |")  # fmt: skip
    print(f"| scheduler overhead per task (no-op, 2,000 tasks) | {numbers['task_overhead_s'] * 1e3:.2f} ms |")
    print(f"| client planning per file (schema + footer) | {numbers['planning_per_file_s'] * 1e3:.2f} ms |")
    print(f"| client merge per fragment result | {numbers['merge_per_fragment_s'] * 1e3:.3f} ms |")
    out = folder / "results" / "bench_scaleout.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "files": FILES, "repeats": repeats, "startup_s": cluster.startup,
                               "first_fit_s": first, "samples": samples, "medians": medians, "identical": identical,
                               **numbers}, indent=2))  # fmt: skip
    print(f"\nraw numbers: {out}")


if __name__ == "__main__":
    main()
