"""Scale-out (issue 8): fit and transform on a real Dask cluster, and data on object storage.

A session fixture starts a real ``dask scheduler`` (port 0, scheduler file, no dashboard) and two
``dask worker`` processes on 127.0.0.1, and stops them by PID at the end; another starts a real
S3-compatible server (moto) on loopback. The references are local runs of normcli (whose own
exactness is checked in test_engine.py against exact arithmetic) and Polars reading the same data.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import NORMCLI

distributed = pytest.importorskip("distributed", reason="the dask extra is part of the test extra")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*NORMCLI, *args], capture_output=True, env=env, cwd=cwd, input=input, timeout=300)


def wait_until(condition, timeout: float = 60.0, what: str = "condition"):
    """Poll ``condition`` (a readiness signal) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def kill_worker_running(client, pids: dict, prefix: str) -> str:
    """Wait until a worker runs a task whose key starts with ``prefix`` (normcli's fragment or part
    tasks), SIGKILL that worker's process and return its address."""

    def busy_worker():
        processing = client.processing()
        return next((w for w, keys in processing.items() if any(str(k).startswith(prefix) for k in keys)), None)

    victim = wait_until(busy_worker, timeout=120, what=f"a worker running a {prefix} task")
    os.kill(pids[victim], signal.SIGKILL)
    return victim


# --------------------------------------------------------------------------- the Dask cluster


@dataclass
class Cluster:
    folder: Path
    scheduler_file: Path
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def client(self):
        return distributed.Client(scheduler_file=str(self.scheduler_file), set_as_default=False)

    def start_worker(self) -> subprocess.Popen:
        index = len(self.workers)
        log = open(self.folder / f"worker-{index}.log", "wb")  # noqa: SIM115 - closed with the process
        worker = subprocess.Popen(
            # no nanny: a worker killed by PID stays dead (a nanny would restart it under a new address)
            [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(self.scheduler_file),
             "--nthreads", "1", "--no-dashboard", "--no-nanny", "--name", f"w{index}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[subprocess.Popen]:
        return [w for w in self.workers if w.poll() is None]

    def worker_pids(self, client) -> dict[str, int]:
        return client.run(os.getpid)

    def executed(self, client) -> dict[int, list[str]]:
        """Worker PID → the normcli task keys it has executed (from its transition log)."""
        logs = client.run(
            lambda dask_worker: (os.getpid(), [e[0] for e in dask_worker.state.log if isinstance(e[0], str) and e[0].startswith("normcli-") and e[1:3] == ("executing", "memory")])
        )  # fmt: skip
        return {pid: keys for pid, keys in logs.values()}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers on 127.0.0.1, as Dask's own CLI starts them."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    log = open(folder / "scheduler.log", "wb")  # noqa: SIM115
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--scheduler-file", str(scheduler_file), "--dashboard-address", ":0"],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder,
    )  # fmt: skip
    state = Cluster(folder, scheduler_file, scheduler)
    try:
        wait_until(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, what="the scheduler file")
        for _ in range(2):
            state.start_worker()
        with state.client() as client:
            client.wait_for_workers(2, timeout=120)
        yield state
    finally:
        for process in [*state.workers, scheduler]:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in [*state.workers, scheduler]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def write_inputs(folder: Path, rng: np.random.Generator) -> list[str]:
    """Several CSV, gzip CSV and Parquet files with awkward values: a 1e9 offset, nulls, NaN,
    an integer column, a text column, a constant."""
    names = []
    for index in range(4):
        n = 3000 + 700 * index
        frame = pl.DataFrame(
            {
                "id": np.arange(n) + 10_000 * index,
                "offset": 1e9 + rng.normal(size=n),
                "wide": rng.normal(size=n) * 10.0 ** rng.integers(-5, 5, n),
                "count": rng.integers(0, 1000, n),
                "gaps": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
                "const": np.full(n, 7.0),
                "city": rng.choice(["Oslo", "Lima", "Pune"], n),
            }
        ).with_columns(pl.when(pl.col("id") % 17 == 0).then(None).otherwise(pl.col("offset")).alias("offset"))
        if index % 3 == 0:
            name = f"part{index}.parquet"
            frame.write_parquet(folder / name)
        elif index % 3 == 1:
            name = f"part{index}.csv"
            frame.write_csv(folder / name)
        else:
            name = f"part{index}.csv.gz"
            (folder / name).write_bytes(gzip.compress(frame.write_csv().encode()))
        names.append(name)
    return names


def late_word_csv(source: Path, target: Path) -> None:
    """``source``'s rows five times over, with the word 'oops' in column 'offset' three rows from
    the end: past the rows types are inferred from, so it fails only once the data are read."""
    frame = pl.concat([pl.read_csv(source)] * 5).with_columns(pl.col("offset").cast(pl.String))
    assert frame.height > 10_000
    word = pl.int_range(pl.len()) == frame.height - 3
    frame.with_columns(pl.when(word).then(pl.lit("oops")).otherwise(pl.col("offset")).alias("offset")).write_csv(target)


# --------------------------------------------------------------------------- fit on the cluster


@pytest.mark.parametrize("method", ["standard", "minmax", "maxabs"])
def test_fit_on_the_cluster_is_byte_identical_to_a_local_fit_and_runs_in_the_workers(cluster, tmp_path, method) -> None:
    names = write_inputs(tmp_path, np.random.default_rng(8))
    local = run("fit", *names, "-m", method, "--method-for", "count=minmax", "-o", "local.json", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    with cluster.client() as client:
        before = cluster.executed(client)
        process = subprocess.Popen(
            [*NORMCLI, "fit", *names, "-m", method, "--method-for", "count=minmax", "-o", "dask.json",
             "--scheduler-file", str(cluster.scheduler_file)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        after = cluster.executed(client)
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    ran = {pid: [k for k in keys if k not in before.get(pid, []) and k.startswith("normcli-fragment-")] for pid, keys in after.items()}
    assert sum(len(keys) for keys in ran.values()) == len(names)  # one task per file, all in the workers
    workers = {pid for pid, keys in ran.items() if keys}
    assert workers and process.pid not in workers and os.getpid() not in workers


def test_the_scheduler_can_come_from_the_environment_or_an_address(cluster, tmp_path) -> None:
    names = write_inputs(tmp_path, np.random.default_rng(3))
    assert run("fit", *names, "-o", "local.json", cwd=tmp_path).returncode == 0
    env = {**os.environ, "NORMCLI_SCHEDULER": str(cluster.scheduler_file)}
    assert run("fit", *names, "-o", "env.json", cwd=tmp_path, env=env).returncode == 0
    address = json.loads(cluster.scheduler_file.read_text())["address"]
    result = run("fit", *names, "-o", "address.json", "--scheduler", address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("env.json", "address.json"):
        assert (tmp_path / name).read_bytes() == (tmp_path / "local.json").read_bytes()


def test_robust_is_refused_on_a_cluster_naming_the_columns(cluster, tmp_path) -> None:
    names = write_inputs(tmp_path, np.random.default_rng(4))
    result = run("fit", *names, "--method-for", "wide=robust", "--method-for", "gaps=robust", "-o", "s.json",
                 "--scheduler-file", str(cluster.scheduler_file), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    line = result.stderr.decode().strip()
    assert line.count("\n") == 0 and "robust" in line and "'wide', 'gaps'" in line
    assert not (tmp_path / "s.json").exists()


def test_a_stream_is_refused_on_a_cluster(cluster, tmp_path) -> None:
    result = run("fit", "-", "-o", "s.json", "--scheduler-file", str(cluster.scheduler_file), input=b"a\n1\n2\n", cwd=tmp_path)
    assert result.returncode == 2
    assert "a stream cannot be read by Dask workers" in result.stderr.decode()


def test_an_unreachable_scheduler_or_missing_file_is_one_line_exit_1(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("fit", "a.csv", "-o", "s.json", "--scheduler", f"tcp://127.0.0.1:{port}", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"normcli: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    assert result.stderr.decode().count("\n") == 1
    result = run("fit", "a.csv", "-o", "s.json", "--scheduler-file", "nowhere.json", cwd=tmp_path)
    assert result.returncode == 1 and "nowhere.json: no such scheduler file" in result.stderr.decode()
    result = run("fit", "a.csv", "--scheduler", "tcp://x:1", "--scheduler-file", "f.json", cwd=tmp_path)
    assert result.returncode == 2
    assert not (tmp_path / "s.json").exists()


def test_workers_running_other_versions_are_refused_before_any_work(cluster, monkeypatch, tmp_path) -> None:
    """The client pretends to be another normcli; the workers report their real versions."""
    from normcli.errors import DataError
    from normcli.scaling import engine as engines

    import normcli

    real = engines.worker_version()
    monkeypatch.setattr(normcli, "__version__", "0.0.9")  # here only: the workers import their own
    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    with pytest.raises(DataError, match=rf"runs normcli {real[0]} with Polars {real[1]}; this client runs normcli 0.0.9"):
        with engines.DaskEngine(scheduler_file=str(cluster.scheduler_file)) as engine:
            from normcli.scaling.fit import fit

            fit([str(tmp_path / "a.csv")], engine=engine)


def test_without_the_dask_extra_scheduler_is_a_usage_error_naming_it(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    code = "import sys; sys.modules['distributed'] = None; from normcli.__main__ import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "fit", "a.csv", "--scheduler", "tcp://127.0.0.1:1", "-o", "s.json"],
        capture_output=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "pip install 'normcli[dask]'" in result.stderr.decode()


def test_normcli_without_a_scheduler_does_not_import_dask(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    code = (
        "import sys; from normcli.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('distributed' in sys.modules, 'dask' in sys.modules, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code, "fit", "a.csv", "-o", "s.json"], capture_output=True, cwd=tmp_path, timeout=60)
    assert result.stderr.decode().strip().endswith("False False")


# --------------------------------------------------------------------------- fragments of large Parquet files


def test_split_rows_cuts_at_row_group_ends_rounded_down_to_blocks() -> None:
    from normcli.scaling.fragments import BLOCK_ROWS, split_rows

    # row groups of 92,846 rows (as Polars' sink writes them), fragments of >= 4 blocks
    groups = [92_846] * 10
    ranges = split_rows(groups, target=4 * BLOCK_ROWS)
    # ends: 92846·k; cut when floor(end/65536)·65536 − last ≥ 262144
    expected_cuts = [0]
    end = 0
    for g in groups[:-1]:
        end += g
        cut = end - end % BLOCK_ROWS
        if cut - expected_cuts[-1] >= 4 * BLOCK_ROWS:
            expected_cuts.append(cut)
    expected_cuts.append(sum(groups))
    assert ranges == [(a, b - a) for a, b in zip(expected_cuts, expected_cuts[1:], strict=False)]
    assert all(offset % BLOCK_ROWS == 0 for offset, _ in ranges)
    assert sum(length for _, length in ranges) == sum(groups)
    assert split_rows([1000] * 5, target=4 * BLOCK_ROWS) is None  # too small to split
    assert split_rows([10 * BLOCK_ROWS], target=BLOCK_ROWS) is None  # one row group: one fragment


@pytest.fixture
def big_parquet(tmp_path) -> Path:
    """A Parquet file of 300,000 rows in row groups of 40,000 (not multiples of a block)."""
    rng = np.random.default_rng(11)
    n = 300_000
    frame = pl.DataFrame(
        {
            "offset": 1e12 + rng.normal(size=n),
            "count": rng.integers(-5, 5, n),
            "gaps": np.where(rng.random(n) < 0.01, np.nan, rng.lognormal(size=n)),
        }
    )
    path = tmp_path / "big.parquet"
    frame.write_parquet(path, row_group_size=40_000)
    frame.write_csv(tmp_path / "big.csv")
    return path


def test_a_files_statistics_do_not_depend_on_how_it_is_split_into_fragments(big_parquet, monkeypatch) -> None:
    from normcli.data.formats import ReadOptions
    from normcli.data.inputs import open_sources
    from normcli.scaling import fragments
    from normcli.scaling.engine import LocalEngine
    from normcli.scaling.fit import fit
    from normcli.scaling.statsfile import dumps_stats

    monkeypatch.setattr(fragments, "SPLIT_MIN_BYTES", 0)
    outputs = {}
    for target in (fragments.BLOCK_ROWS, 2 * fragments.BLOCK_ROWS, 10**9):
        monkeypatch.setattr(fragments, "FRAGMENT_ROWS", target)
        with open_sources([str(big_parquet)], ReadOptions()) as sources:
            ranges = fragments.row_ranges(sources[0], ReadOptions())
        outputs[target] = (len(ranges), dumps_stats(fit([str(big_parquet)], method="standard", engine=LocalEngine(split_files=True))))
    assert [count for count, _ in outputs.values()] == [5, 3, 1]  # cuts at 65,536·k after groups of 40,000
    assert len({text for _, text in outputs.values()}) == 1
    # and the CSV of the same values (one fragment, read as text) gives the same numbers
    csv = json.loads(dumps_stats(fit([str(big_parquet.with_suffix(".csv"))])))
    parquet = json.loads(outputs[10**9][1])
    assert [c["sums"] for c in csv["columns"]] == [c["sums"] for c in parquet["columns"]]


def test_split_fragments_on_the_cluster_give_the_local_bytes_and_one_part_each(cluster, big_parquet, monkeypatch, tmp_path) -> None:
    from normcli.scaling import fragments
    from normcli.scaling.apply import transform
    from normcli.scaling.engine import DaskEngine, LocalEngine
    from normcli.scaling.fit import fit
    from normcli.scaling.statsfile import dumps_stats

    monkeypatch.setattr(fragments, "SPLIT_MIN_BYTES", 0)
    monkeypatch.setattr(fragments, "FRAGMENT_ROWS", 2 * fragments.BLOCK_ROWS)
    with DaskEngine(scheduler_file=str(cluster.scheduler_file)) as engine:
        remote = fit([str(big_parquet)], engine=engine)
        transform([str(big_parquet)], stats=remote, output=str(tmp_path / "dask") + "/", engine=engine)
    local = fit([str(big_parquet)], engine=LocalEngine())
    assert dumps_stats(remote) == dumps_stats(local)
    transform([str(big_parquet)], stats=local, output=str(tmp_path / "local") + "/")
    manifest = json.loads((tmp_path / "dask" / "_SUCCESS").read_text())
    assert [p["input_rows"] for p in manifest["parts"]] == [[0, 131072], [131072, 131072], [262144, 37856]]
    assert [p["rows"] for p in manifest["parts"]] == [131072, 131072, 37856]
    for part in manifest["parts"]:
        assert (tmp_path / "dask" / part["name"]).read_bytes() == (tmp_path / "local" / part["name"]).read_bytes()
    whole = tmp_path / "whole.parquet"
    transform([str(big_parquet)], stats=local, output=str(whole))
    assert pl.read_parquet(tmp_path / "dask" / "part-*.parquet").equals(pl.read_parquet(whole))


# --------------------------------------------------------------------------- transform on the cluster


def local_parts(names: list[str], folder: Path, fmt: str = "parquet") -> list[pl.DataFrame]:
    """The reference of each part: a local transform of its input alone, to one file."""
    read = pl.read_parquet if fmt == "parquet" else pl.read_csv
    frames = []
    for index, name in enumerate(names):
        result = run("transform", name, "--stats", "s.json", "-o", f"ref-{index}.{fmt}", cwd=folder)
        assert result.returncode == 0, result.stderr
        frames.append(read(folder / f"ref-{index}.{fmt}"))
    return frames


def test_transform_on_the_cluster_writes_a_dataset_equal_to_a_local_transform(cluster, tmp_path) -> None:
    names = write_inputs(tmp_path, np.random.default_rng(5))
    assert run("fit", *names, "-o", "s.json", cwd=tmp_path).returncode == 0
    for fmt in ("parquet", "csv"):
        result = run("transform", *names, "--stats", "s.json", "-o", f"out-{fmt}/", "--output-format", fmt,
                     "--scheduler-file", str(cluster.scheduler_file), cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        folder = tmp_path / f"out-{fmt}"
        assert sorted(p.name for p in folder.iterdir()) == ["_SUCCESS", *[f"part-{i:05d}.{fmt}" for i in range(len(names))]]
        manifest = json.loads((folder / "_SUCCESS").read_text())
        assert [p["input"] for p in manifest["parts"]] == names
        read = pl.read_parquet if fmt == "parquet" else pl.read_csv
        for part, expected in zip(manifest["parts"], local_parts(names, tmp_path, fmt), strict=True):
            assert read(folder / part["name"]).equals(expected)
        if fmt == "parquet":
            assert manifest["rows"] == sum(p["rows"] for p in manifest["parts"]) == sum(3000 + 700 * i for i in range(4))
    # inputs of one format: the dataset's rows are those of one local transform to one file
    text = [n for n in names if ".csv" in n]
    assert run("transform", *text, "--stats", "s.json", "-o", "text.parquet", cwd=tmp_path).returncode == 0
    assert run("transform", *text, "--stats", "s.json", "-o", "text/", "--scheduler-file", str(cluster.scheduler_file), cwd=tmp_path).returncode == 0
    assert pl.read_parquet(tmp_path / "text" / "part-*.parquet").equals(pl.read_parquet(tmp_path / "text.parquet"))
    # the same dataset written locally (-o DIR/ without a scheduler) has the same bytes
    assert run("transform", *names, "--stats", "s.json", "-o", "out-local/", cwd=tmp_path).returncode == 0
    for index in range(len(names)):
        name = f"part-{index:05d}.parquet"
        assert (tmp_path / "out-local" / name).read_bytes() == (tmp_path / "out-parquet" / name).read_bytes()


def test_a_failing_dataset_leaves_nothing_and_a_full_folder_is_refused(cluster, tmp_path) -> None:
    names = write_inputs(tmp_path, np.random.default_rng(6))
    assert run("fit", *names, "-o", "s.json", cwd=tmp_path).returncode == 0
    late_word_csv(tmp_path / names[1], tmp_path / "zz-bad.csv")
    result = run("transform", *names, "zz-bad.csv", "--stats", "s.json", "-o", "out/",
                 "--scheduler-file", str(cluster.scheduler_file), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    message = result.stderr.decode()
    assert message.count("\n") == 1 and "zz-bad.csv: column 'offset' has the value 'oops'" in message
    assert not (tmp_path / "out").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = run("transform", *names, "--stats", "s.json", "-o", "full/", "--scheduler-file", str(cluster.scheduler_file), cwd=tmp_path)
    assert result.returncode == 1 and "full/: folder is not empty" in result.stderr.decode()
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    result = run("transform", *names, "--stats", "s.json", "-o", "one.parquet", "--scheduler-file", str(cluster.scheduler_file), cwd=tmp_path)
    assert result.returncode == 2 and "names a dataset folder" in result.stderr.decode()


# --------------------------------------------------------------------------- predict on the cluster


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A classifier and a regressor trained on a small table with a categorical column, and new
    data in three CSV files and a Parquet file (some missing values, an unseen category)."""
    folder = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(21)
    n = 12_000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    kind = rng.choice(["a", "b", "c"], n)
    frame = pl.DataFrame({
        "id": np.arange(n), "x1": x1, "x2": np.where(np.arange(n) % 97 == 0, np.nan, x2), "kind": kind,
        "label": np.where(x1 + 0.5 * x2 + (kind == "a") > 0.3, "yes", "no"), "value": 3 * x1 + x2 + rng.normal(size=n) * 0.1,
    }).with_columns(pl.col("x2").fill_nan(None))  # fmt: skip
    frame.head(8000).write_csv(folder / "train.csv")
    new = frame.slice(8000).with_columns(pl.when(pl.col("id") == 9000).then(pl.lit("zzz")).otherwise(pl.col("kind")).alias("kind"))
    for index in range(3):
        new.slice(index * 1100, 1100).write_csv(folder / f"new{index}.csv")
    new.slice(3300).write_csv(folder / "new3.csv")
    for target, drop in (("label", "value"), ("value", "label")):
        result = run("train", "train.csv", "--target", target, "--exclude", f"{drop},id", "--epochs", "2", "--seed", "1",
                     "-o", f"{target}.npz", "-q", cwd=folder)  # fmt: skip
        assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.parametrize("target", ["label", "value"])
def test_predict_on_the_cluster_equals_a_local_predict_rows_and_metrics(cluster, models, target) -> None:
    news = ["new0.csv", "new1.csv", "new2.csv", "new3.csv"]
    local = run("predict", *news, "--model", f"{target}.npz", "--target", target, "--keep", "none", "-o", f"{target}-local.parquet", cwd=models)
    assert local.returncode == 0, local.stderr
    remote = run("predict", *news, "--model", f"{target}.npz", "--target", target, "--keep", "none", "-o", f"{target}-dask/",
                 "--scheduler-file", str(cluster.scheduler_file), cwd=models)  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    # the same notes (imputed values, the unseen category) and the same metrics, digit for digit
    assert remote.stderr.decode().splitlines()[:-1] == local.stderr.decode().splitlines()[:-1]
    assert "metrics on" in local.stderr.decode()
    parts = pl.read_parquet(models / f"{target}-dask" / "part-*.parquet")
    expected = pl.read_parquet(models / f"{target}-local.parquet")
    assert parts.equals(expected)  # the row numbers run on across parts; predictions bit for bit
    assert parts["row"].to_list() == list(range(1, 4001))
    manifest = json.loads((models / f"{target}-dask" / "_SUCCESS").read_text())
    assert [p["rows"] for p in manifest["parts"]] == [1100, 1100, 1100, 700] and manifest["rows"] == 4000


def test_predict_metrics_are_those_of_scikit_learn(models) -> None:
    from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score

    news = ["new0.csv", "new1.csv", "new2.csv", "new3.csv"]
    truth = pl.concat([pl.read_csv(models / n) for n in news])
    for target in ("label", "value"):
        result = run("predict", *news, "--model", f"{target}.npz", "--target", target, "--keep", "none", "-o", "out/", cwd=models / ".")
        assert result.returncode == 0, result.stderr
        scored = pl.read_parquet(models / "out" / "part-*.parquet")
        line = next(x for x in result.stderr.decode().splitlines() if "metrics on" in x)
        shown = dict(item.rsplit(" ", 1) for item in line.split(": ", 2)[2].split(", "))
        if target == "label":
            proba = scored.select("prob_no", "prob_yes").to_numpy()
            proba = proba / proba.sum(axis=1, keepdims=True)  # float64 read back: sums within an ulp of 1
            assert float(shown["accuracy"]) == pytest.approx(accuracy_score(truth["label"], scored["predicted_label"]), abs=5e-5)
            assert float(shown["log_loss"]) == pytest.approx(log_loss(truth["label"], proba, labels=["no", "yes"]), rel=1e-3)
        else:
            rmse = mean_squared_error(truth["value"], scored["predicted_value"]) ** 0.5
            assert float(shown["rmse"]) == pytest.approx(rmse, rel=1e-3)
            assert float(shown["r2"]) == pytest.approx(r2_score(truth["value"], scored["predicted_value"]), rel=1e-3)
        import shutil

        shutil.rmtree(models / "out")


# --------------------------------------------------------------------------- a worker dies


def test_a_worker_killed_mid_run_is_survived_with_identical_results(cluster, tmp_path) -> None:
    rng = np.random.default_rng(9)
    names = []
    for index in range(8):
        n = 400_000
        pl.DataFrame({"a": 1e6 + rng.normal(size=n), "b": rng.lognormal(size=n)}).write_csv(tmp_path / f"f{index}.csv")
        names.append(f"f{index}.csv")
    assert run("fit", *names, "-o", "local.json", cwd=tmp_path).returncode == 0
    with cluster.client() as client:
        pids = cluster.worker_pids(client)
        process = subprocess.Popen(
            [*NORMCLI, "fit", *names, "-o", "dask.json", "--scheduler-file", str(cluster.scheduler_file)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

        victim = kill_worker_running(client, pids, "normcli-fragment-")
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()
        wait_until(lambda: victim not in client.scheduler_info()["workers"], what="the scheduler to drop the killed worker")
        # the session goes on with two workers
        cluster.start_worker()
        client.wait_for_workers(2, timeout=120)


def test_a_task_that_kills_its_workers_fails_cleanly_with_nothing_written(cluster, tmp_path) -> None:
    """With allowed-failures 0 (for this test), the first death of a worker running a part marks
    that part as a killer: normcli exits 1 with one line and removes the dataset."""
    rng = np.random.default_rng(13)
    names = []
    for index in range(4):
        pl.DataFrame({"a": rng.normal(size=1_000_000)}).write_parquet(tmp_path / f"k{index}.parquet")
        names.append(f"k{index}.parquet")
    assert run("fit", *names, "-o", "s.json", cwd=tmp_path).returncode == 0
    with cluster.client() as client:
        before = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
        client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
        try:
            pids = cluster.worker_pids(client)
            process = subprocess.Popen(
                [*NORMCLI, "transform", *names, "-s", "s.json", "-o", "out/", "--output-format", "csv",
                 "--scheduler-file", str(cluster.scheduler_file)],
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip

            victim = kill_worker_running(client, pids, "normcli-part-")
            _, err = process.communicate(timeout=180)
        finally:
            client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", before))
        assert process.returncode == 1, err
        message = err.decode()
        assert message.count("\n") == 1 and "killed 1 Dask worker" in message and "(k" in message, message
        assert "nothing was written" in message
        assert not (tmp_path / "out").exists()
        wait_until(lambda: victim not in client.scheduler_info()["workers"], what="the scheduler to drop the killed worker")
        cluster.start_worker()
        client.wait_for_workers(2, timeout=120)


# --------------------------------------------------------------------------- object storage (moto)


@dataclass
class S3:
    endpoint: str
    bucket: str
    env: dict[str, str]
    options: list[str]  # the same settings as --storage-option flags

    def set_auth(self, enforced: bool) -> None:
        """Make moto check credentials (403 for unknown keys), or accept any."""
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=b"0" if enforced else b"inf", method="POST",
            headers={"Content-Type": "text/plain"},
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=10).read()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server on 127.0.0.1 (a free port), with one bucket; stopped at the end."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket="normcli-data")  # fmt: skip
        settings = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
        options = [
            f"aws_endpoint_url={endpoint}", "aws_access_key_id=test", "aws_secret_access_key=test",
            "aws_region=us-east-1", "allow_http=true",
        ]  # fmt: skip
        yield S3(endpoint, "normcli-data", {**os.environ, **settings}, options)
    finally:
        server.stop()


@pytest.fixture
def s3_inputs(s3, tmp_path) -> tuple[str, list[str]]:
    """The inputs of write_inputs, uploaded under a fresh prefix; returns (prefix URL, names)."""
    names = write_inputs(tmp_path, np.random.default_rng(12))
    prefix = f"s3://{s3.bucket}/{tmp_path.name}"
    client = s3.client()
    for name in names:
        client.upload_file(str(tmp_path / name), s3.bucket, f"{tmp_path.name}/data/{name}")
    return prefix, names


def columns_of(path: Path) -> list[dict]:
    return json.loads(path.read_text())["columns"]


def test_fit_and_transform_read_and_write_s3_with_globs(s3, s3_inputs, tmp_path) -> None:
    prefix, names = s3_inputs
    assert run("fit", *names, "-o", "local.json", cwd=tmp_path).returncode == 0
    result = run("fit", f"{prefix}/data/part*", "-o", f"{prefix}/stats.json", cwd=tmp_path, env=s3.env)
    assert result.returncode == 0, result.stderr
    remote = json.loads(s3.read(f"{tmp_path.name}/stats.json"))
    local = json.loads((tmp_path / "local.json").read_text())
    assert remote["inputs"]["files"] == [f"{prefix}/data/{n}" for n in names]  # the glob, sorted
    assert remote["columns"] == local["columns"]  # the same numbers, bit for bit (exact sums included)
    # transform from the bucket with the stats in the bucket, to a file and to a dataset in the bucket
    parquet = [n for n in names if n.endswith(".parquet")]
    assert run("transform", *parquet, "--stats", "local.json", "-o", "local.parquet", cwd=tmp_path).returncode == 0
    result = run("transform", f"{prefix}/data/*.parquet", "--stats", f"{prefix}/stats.json",
                 "-o", f"{prefix}/scaled.parquet", cwd=tmp_path, env=s3.env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = run("transform", f"{prefix}/data/*", "--stats", f"{prefix}/stats.json", "-o", f"{prefix}/scaled/", cwd=tmp_path, env=s3.env)
    assert result.returncode == 0, result.stderr
    keys = s3.keys(f"{tmp_path.name}/scaled/")
    assert keys == [f"{tmp_path.name}/scaled/{n}" for n in ["_SUCCESS", *[f"part-{i:05d}.parquet" for i in range(4)]]]
    env_options = {k.lower(): v for k, v in s3.env.items() if k.startswith("AWS_")}
    (tmp_path / "local.json").rename(tmp_path / "s.json")
    for index, expected in enumerate(local_parts(names, tmp_path)):
        assert pl.read_parquet(f"{prefix}/scaled/part-{index:05d}.parquet", storage_options=env_options).equals(expected)
    single = pl.read_parquet(f"{prefix}/scaled.parquet", storage_options=env_options)
    assert single.equals(pl.read_parquet(tmp_path / "local.parquet"))


def test_storage_options_on_the_command_line_replace_the_environment(s3, s3_inputs, tmp_path) -> None:
    prefix, names = s3_inputs
    assert run("fit", *names, "-o", "local.json", cwd=tmp_path).returncode == 0
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    flags = [arg for option in s3.options for arg in ("--storage-option", option)]
    result = run("fit", f"{prefix}/data/*", "-o", "remote.json", *flags, cwd=tmp_path, env=bare)
    assert result.returncode == 0, result.stderr
    assert columns_of(tmp_path / "remote.json") == columns_of(tmp_path / "local.json")
    result = run("fit", f"{prefix}/data/*", "--storage-option", "nonsense", cwd=tmp_path, env=bare)
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr.decode()


def test_dask_workers_read_from_the_bucket_with_the_commands_storage_options(cluster, s3, s3_inputs, tmp_path) -> None:
    """The workers were started without any AWS settings: the options travel with the fragments."""
    prefix, names = s3_inputs
    assert run("fit", *names, "-o", "local.json", cwd=tmp_path).returncode == 0
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    flags = [arg for option in s3.options for arg in ("--storage-option", option)]
    result = run("fit", f"{prefix}/data/*", "-o", "remote.json", "--scheduler-file", str(cluster.scheduler_file), *flags, cwd=tmp_path, env=bare)
    assert result.returncode == 0, result.stderr
    assert columns_of(tmp_path / "remote.json") == columns_of(tmp_path / "local.json")
    result = run("transform", f"{prefix}/data/*", "--stats", "local.json", "-o", f"{prefix}/dask-out/",
                 "--scheduler-file", str(cluster.scheduler_file), *flags, cwd=tmp_path, env=bare)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (tmp_path / "local.json").rename(tmp_path / "s.json")
    env_options = {k.lower(): v for k, v in s3.env.items() if k.startswith("AWS_")}
    for index, expected in enumerate(local_parts(names, tmp_path)):
        assert pl.read_parquet(f"{prefix}/dask-out/part-{index:05d}.parquet", storage_options=env_options).equals(expected)
    assert f"{tmp_path.name}/dask-out/_SUCCESS" in s3.keys(f"{tmp_path.name}/dask-out/")


def test_store_errors_are_one_line(s3, s3_inputs, tmp_path) -> None:
    prefix, names = s3_inputs

    def error(*args: str, env=s3.env) -> str:
        result = run(*args, cwd=tmp_path, env=env)
        assert result.returncode == 1, result.stderr
        text = result.stderr.decode()
        assert text.count("\n") == 1 and text.startswith("normcli: error: "), text
        return text

    assert "no such object" in error("fit", f"{prefix}/data/missing.csv", "-o", "s.json")
    assert "no such bucket 'no-such-bucket'" in error("fit", "s3://no-such-bucket/a.csv", "-o", "s.json")
    assert f"no object matches '{prefix}/nothing/*.csv'" in error("fit", f"{prefix}/nothing/*.csv", "-o", "s.json")
    assert "no such object" in error("transform", names[1], "--stats", f"{prefix}/none.json", "-o", "x.csv")
    denied = {**s3.env, "AWS_ACCESS_KEY_ID": "AKIAWRONG", "AWS_SECRET_ACCESS_KEY": "wrong"}
    s3.set_auth(True)
    try:
        assert "access denied (403)" in error("fit", f"{prefix}/data/{names[1]}", "-o", "s.json", env=denied)
    finally:
        s3.set_auth(False)
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "x.csv").exists()
    for args, words in (
        (("fit", "ftp://host/x.csv"), "unsupported URL scheme 'ftp://'"),
        (("fit", "https://example.invalid/data/*.csv"), "an HTTP server cannot be listed"),
        (("fit", f"{prefix}/data/*", "--storage-option", "aws_no_such_key=1"), "--storage-option: not valid for s3://"),
    ):
        result = run(*args, "-o", "s.json", cwd=tmp_path, env=s3.env)
        assert result.returncode == 2 and words in result.stderr.decode(), result.stderr
        assert result.stderr.decode().count("\n") == 1


def test_a_failed_write_to_the_bucket_leaves_no_object(s3, s3_inputs, tmp_path) -> None:
    prefix, names = s3_inputs
    assert run("fit", *names, "-o", "s.json", cwd=tmp_path).returncode == 0
    late_word_csv(tmp_path / names[1], tmp_path / "bad.csv")
    for target in (f"{prefix}/bad.parquet", f"{prefix}/bad-out/"):
        result = run("transform", "bad.csv", "--stats", "s.json", "-o", target, cwd=tmp_path, env=s3.env)
        assert result.returncode == 1 and "'oops'" in result.stderr.decode()
    assert [k for k in s3.keys(tmp_path.name) if "bad" in k] == []
    # a bad value in an object: the second look reads the object to name the line, as for a file
    s3.client().upload_file(str(tmp_path / "bad.csv"), s3.bucket, f"{tmp_path.name}/in/bad.csv")
    local = run("fit", "bad.csv", "-o", "s2.json", cwd=tmp_path)
    remote = run("fit", f"{prefix}/in/bad.csv", "-o", "s2.json", cwd=tmp_path, env=s3.env)
    assert local.returncode == remote.returncode == 1
    assert remote.stderr.decode() == local.stderr.decode().replace("bad.csv", f"{prefix}/in/bad.csv")
    assert "at line 18499" in local.stderr.decode()


def test_ctrl_c_on_the_client_cancels_the_tasks_and_leaves_no_dataset(cluster, tmp_path) -> None:
    rng = np.random.default_rng(10)
    names = []
    for index in range(8):
        pl.DataFrame({"a": 1e6 + rng.normal(size=300_000), "b": rng.lognormal(size=300_000)}).write_csv(tmp_path / f"g{index}.csv")
        names.append(f"g{index}.csv")
    assert run("fit", *names, "-o", "s.json", cwd=tmp_path).returncode == 0
    with cluster.client() as client:
        process = subprocess.Popen(
            [*NORMCLI, "transform", *names, "-s", "s.json", "-o", "out/", "--scheduler-file", str(cluster.scheduler_file)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

        def running_parts():
            return any(str(k).startswith("normcli-part-") for keys in client.processing().values() for k in keys)

        wait_until(running_parts, timeout=120, what="parts running on the workers")
        os.kill(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=120)
        assert process.returncode == -signal.SIGINT, err  # death by SIGINT (130 to a shell)
        assert err.decode().strip().splitlines()[-1] == "normcli: interrupted"
        # the scheduler forgets the run's tasks: none left queued or running
        wait_until(lambda: not any(str(k).startswith("normcli-part-") for k in client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.tasks))), timeout=60, what="the run's tasks to be released")  # fmt: skip
        # a task that was already running may still end: wait for the workers to be idle
        wait_until(lambda: not any(client.processing().values()), timeout=60, what="idle workers")
    leftovers = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else []
    assert not any(name.endswith("_SUCCESS") or name.startswith("out/part-") for name in leftovers), leftovers


# --------------------------------------------------------------------------- groups and weights (issue 12)


def test_grouped_weighted_fit_on_the_cluster_is_byte_identical_to_a_local_fit(cluster, tmp_path) -> None:
    """The group dimension of the partials (--by) and the weights travel to the workers and back."""
    names = write_inputs(tmp_path, np.random.default_rng(12))
    options = ["--by", "city", "--weight", "count", "--method-for", "wide=maxabs"]
    local = run("fit", *names, *options, "-o", "local.json", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    remote = run("fit", *names, *options, "-o", "dask.json", "--scheduler-file", str(cluster.scheduler_file), cwd=tmp_path)
    assert remote.returncode == 0, remote.stderr
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    doc = json.loads((tmp_path / "local.json").read_text())
    assert doc["groups"]["keys"] == [["Lima"], ["Oslo"], ["Pune"]] and doc["options"]["weight"] == "count"
    # a grouped transform on the cluster writes what a local one does, part by part
    result = run("transform", *names, "--stats", "local.json", "-o", "out/", "--scheduler-file", str(cluster.scheduler_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for index, name in enumerate(names):
        assert run("transform", name, "--stats", "local.json", "-o", f"ref-{index}.parquet", cwd=tmp_path).returncode == 0
        assert pl.read_parquet(tmp_path / "out" / f"part-{index:05d}.parquet").equals(pl.read_parquet(tmp_path / f"ref-{index}.parquet"))


def test_grouped_statistics_do_not_depend_on_how_a_file_is_split_into_fragments(big_parquet, monkeypatch) -> None:
    from normcli.scaling import fragments
    from normcli.scaling.engine import LocalEngine
    from normcli.scaling.fit import fit
    from normcli.scaling.statsfile import dumps_stats

    monkeypatch.setattr(fragments, "SPLIT_MIN_BYTES", 0)
    texts = set()
    for target in (fragments.BLOCK_ROWS, 2 * fragments.BLOCK_ROWS, 10**9):
        monkeypatch.setattr(fragments, "FRAGMENT_ROWS", target)
        texts.add(dumps_stats(fit([str(big_parquet)], by=["count"], weight="offset", engine=LocalEngine(split_files=True))))
    assert len(texts) == 1
