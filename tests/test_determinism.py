"""The stats file is a deterministic function of the ordered inputs and the options.

2,000,000 rows, so Polars splits the work into many morsels. A fit is the exact merge, in input
order, of per-fragment statistics computed in fixed blocks of rows (docs/stats-format.md,
"Determinism"), so the file is byte-identical run to run, across Polars thread counts, whether the
rows come from a file or a pipe, as CSV or as Parquet, and when shard fits are merged instead of
fitting the shards together. One file versus the same rows split into several files differs only in
how rows fall into blocks: the numbers agree to 1e-15 of the column's spread — and split at block
boundaries (multiples of 65,536 rows) they are byte-identical. All of this holds for per-group
(``--by``) and weighted (``--weight``) statistics too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import NORMCLI

ROWS = 2_000_000
OPTIONS = ["--method-for", "c=robust", "--method-for", "d=minmax", "--exclude", "g,w"]
GROUPED = ["--by", "g", "--weight", "w", "--method-for", "d=minmax"]
BLOCK_CUTS = [(0, 10 * 65_536), (10 * 65_536, 17 * 65_536), (17 * 65_536, ROWS)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("determinism")
    rng = np.random.default_rng(2024)
    d = rng.exponential(size=ROWS) * 1e6
    d[rng.random(ROWS) < 0.1] = np.nan
    frame = pl.DataFrame(
        {
            "a": rng.normal(size=ROWS),
            "b": 1e9 + rng.normal(size=ROWS) * 1e-3,
            "c": rng.integers(-1000, 1000, ROWS),
            "d": d,
            "e": 1e12 + rng.normal(size=ROWS),
            "f": np.full(ROWS, 5.0) + rng.normal(size=ROWS) * 1e-3,
            "g": rng.integers(0, 100, ROWS),
            "w": rng.integers(0, 5, ROWS),
        }
    )
    frame.write_csv(folder / "all.csv")
    frame.write_parquet(folder / "all.parquet")
    for index, (start, stop) in enumerate([(0, 700_000), (700_000, 1_300_001), (1_300_001, ROWS)]):
        frame[start:stop].write_csv(folder / f"part-{index}.csv")
    for index, (start, stop) in enumerate(BLOCK_CUTS):
        frame[start:stop].write_parquet(folder / f"block-{index}.parquet")
    yield folder
    shutil.rmtree(folder)


def run(folder: Path, *args: str, threads: int | None = None, stdin: Path | None = None) -> bytes:
    env = dict(os.environ)
    env.pop("POLARS_MAX_THREADS", None)
    if threads is not None:
        env["POLARS_MAX_THREADS"] = str(threads)
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as feed:
        done = subprocess.run([*NORMCLI, *args, "-q"], cwd=folder, env=env, stdin=feed, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fit(folder: Path, *inputs: str, threads: int | None = None, stdin: Path | None = None) -> bytes:
    return run(folder, "fit", *inputs, *OPTIONS, "-o", "-", threads=threads, stdin=stdin)


def numbers(text: bytes) -> dict:
    """The stats document without the input file names."""
    doc = json.loads(text)
    doc["inputs"].pop("files")
    return doc


def test_same_run_twice_is_byte_identical(data: Path) -> None:
    assert fit(data, "all.csv") == fit(data, "all.csv")


def test_thread_counts_give_byte_identical_stats(data: Path) -> None:
    one = fit(data, "all.parquet", threads=1)
    assert fit(data, "all.parquet", threads=2) == one
    assert fit(data, "all.parquet") == one
    assert fit(data, "all.csv", threads=1) == fit(data, "all.csv", threads=2)


def test_a_pipe_gives_the_bytes_of_the_file(data: Path) -> None:
    from_file = numbers(fit(data, "all.csv"))
    from_pipe = numbers(fit(data, "-", stdin=data / "all.csv"))
    assert from_pipe == from_file


def test_parquet_and_csv_of_the_same_rows_are_identical(data: Path) -> None:
    csv_doc = numbers(fit(data, "all.csv"))
    parquet_doc = numbers(fit(data, "all.parquet"))
    for doc in (csv_doc, parquet_doc):
        for column in doc["columns"]:
            # NaN is written to CSV as the text NaN, which reads back as missing: same total
            column["missing"] = column.pop("null_count") + column.pop("nan_count")
            column.pop("dtype")  # Int64 in both, but c's Parquet type is the generator's
    assert csv_doc == parquet_doc


def test_merge_of_shard_fits_is_the_fit_of_the_shards(data: Path) -> None:
    parts = ["part-0.csv", "part-1.csv", "part-2.csv"]
    options = ["--method-for", "d=minmax"]  # robust columns do not merge
    for index, part in enumerate(parts):
        (data / f"shard-{index}.json").write_bytes(run(data, "fit", part, *options, "-o", "-"))
    merged = run(data, "merge", *[f"shard-{i}.json" for i in range(3)], "-o", "-")
    assert merged == run(data, "fit", *parts, *options, "-o", "-")


def test_split_files_agree_with_one_file_within_1e_15(data: Path) -> None:
    whole = json.loads(fit(data, "all.csv"))
    split = json.loads(fit(data, "part-0.csv", "part-1.csv", "part-2.csv"))
    assert split["inputs"]["files"] == ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert split["inputs"]["row_count"] == whole["inputs"]["row_count"]
    for a, b in zip(whole["columns"], split["columns"], strict=True):
        spread = a["std"] or 1.0
        for key in ("count", "null_count", "nan_count", "min", "max", "median", "q_low", "q_high"):
            assert a.get(key) == b.get(key), (a["name"], key)
        for key in ("mean", "center"):  # relative to the column's spread: 1e9 + N(0, 1e-3) too
            assert abs(a[key] - b[key]) <= 1e-15 * spread, (a["name"], key, a[key], b[key])
        for key in ("std", "m2", "scale"):
            assert abs(a[key] - b[key]) <= 1e-15 * abs(a[key]), (a["name"], key, a[key], b[key])


# --------------------------------------------------------------------------- groups and weights


def test_grouped_weighted_stats_are_byte_identical_across_threads_and_pipes(data: Path) -> None:
    def grouped(*inputs: str, threads: int | None = None, stdin: Path | None = None) -> bytes:
        return run(data, "fit", *inputs, *GROUPED, "-o", "-", threads=threads, stdin=stdin)

    one = grouped("all.parquet", threads=1)
    assert grouped("all.parquet", threads=2) == one
    csv = numbers(grouped("all.csv", threads=1))
    assert numbers(grouped("all.csv", threads=2)) == csv
    assert numbers(grouped("-", stdin=data / "all.csv")) == csv


def test_files_split_at_block_boundaries_give_the_bytes_of_one_file(data: Path) -> None:
    """What lets an engine cut a file into row ranges (fragments) without changing a bit."""
    parts = [f"block-{i}.parquet" for i in range(len(BLOCK_CUTS))]
    for options in (["--method-for", "d=minmax", "--exclude", "g,w"], GROUPED):
        whole = numbers(run(data, "fit", "all.parquet", *options, "-o", "-"))
        assert numbers(run(data, "fit", *parts, *options, "-o", "-")) == whole


def test_merge_of_grouped_weighted_shards_is_the_fit_of_the_shards(data: Path) -> None:
    parts = ["part-0.csv", "part-1.csv", "part-2.csv"]
    for index, part in enumerate(parts):
        (data / f"gshard-{index}.json").write_bytes(run(data, "fit", part, *GROUPED, "-o", "-"))
    merged = run(data, "merge", *[f"gshard-{i}.json" for i in range(3)], "-o", "-")
    assert merged == run(data, "fit", *parts, *GROUPED, "-o", "-")
