"""The same data and options give the same stats.json: run to run, across Polars thread counts, and
whether the rows come as one file or several (2,000,000 rows, so Polars splits them into many
morsels).

Run to run with the same thread count the file is byte-identical. Across thread counts and file
splits it is not: Polars adds the per-morsel partial sums in an order that depends on how the rows
were split, and float addition is not associative. The numbers then agree to ~1e-14 relative
(the mean of a column centred on 0 moves by up to 64 ulps, the std by 1-2 ulps); that is asserted
here with 1e-12, and the byte-identity across thread counts is kept as a strict expected failure
so that a fix (see docs/errors.md, "Determinism") makes it fail loudly and gets it removed.
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
OPTIONS = ["--method-for", "c=robust", "--method-for", "d=minmax"]


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
        }
    )
    frame.write_csv(folder / "all.csv")
    frame.write_parquet(folder / "all.parquet")
    for index, (start, stop) in enumerate([(0, 700_000), (700_000, 1_300_001), (1_300_001, ROWS)]):
        frame[start:stop].write_csv(folder / f"part-{index}.csv")
    yield folder
    shutil.rmtree(folder)


def fit(folder: Path, *inputs: str, threads: int | None = None, output: str) -> bytes:
    env = dict(os.environ)
    env.pop("POLARS_MAX_THREADS", None)
    if threads is not None:
        env["POLARS_MAX_THREADS"] = str(threads)
    done = subprocess.run(
        [*NORMCLI, "fit", *inputs, *OPTIONS, "-o", output, "-q"], cwd=folder, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return (folder / output).read_bytes()


def numbers(text: bytes) -> dict:
    """The stats document without the input file names."""
    doc = json.loads(text)
    doc["inputs"].pop("files")
    return doc


def assert_close(left: dict, right: dict, rel: float = 1e-12) -> None:
    """Same structure; every number equal within ``rel`` of its column's spread."""
    assert left["inputs"] == right["inputs"] and left["options"] == right["options"]
    assert [c["name"] for c in left["columns"]] == [c["name"] for c in right["columns"]]
    for a, b in zip(left["columns"], right["columns"]):
        spread = max(abs(a["min"]), abs(a["max"]), 1.0)
        scales = {"m2": abs(a["m2"] or 0), "std": abs(a["std"]), "scale": abs(a["scale"]), "shifted_sum": a["count"] * spread}
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                tolerance = rel * scales.get(key, spread)
                assert abs(value - b[key]) <= tolerance, (a["name"], key, value, b[key])
            else:
                assert value == b[key], (a["name"], key)


def test_same_run_twice_is_byte_identical(data: Path) -> None:
    assert fit(data, "all.csv", output="one.json") == fit(data, "all.csv", output="two.json")


def test_thread_counts_agree_within_1e_12(data: Path) -> None:
    single = fit(data, "all.csv", threads=1, output="t1.json")
    default = fit(data, "all.csv", output="default.json")
    assert_close(numbers(single), numbers(default))


@pytest.mark.xfail(
    strict=True,
    reason="per-morsel float sums are added in a thread-dependent order: mean/std/shifted_sum "
    "differ by 1-64 ulps between 1 and 2 threads (docs/errors.md, Determinism)",
)
def test_thread_counts_give_byte_identical_stats(data: Path) -> None:
    assert fit(data, "all.csv", threads=1, output="b1.json") == fit(data, "all.csv", threads=2, output="b2.json")


def test_split_files_agree_with_one_file_within_1e_12(data: Path) -> None:
    whole = numbers(fit(data, "all.csv", output="whole.json"))
    split = fit(data, "part-0.csv", "part-1.csv", "part-2.csv", output="split.json")
    assert json.loads(split)["inputs"]["files"] == ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert_close(whole, numbers(split))


def test_parquet_and_csv_of_the_same_rows_agree_within_1e_12(data: Path) -> None:
    csv_doc = numbers(fit(data, "all.csv", output="csv.json"))
    parquet_doc = numbers(fit(data, "all.parquet", output="parquet.json"))
    for doc in (csv_doc, parquet_doc):
        for column in doc["columns"]:
            # NaN is written to CSV as the text NaN, which reads back as missing: same total
            column["missing"] = column.pop("null_count") + column.pop("nan_count")
    assert_close(csv_doc, parquet_doc)
