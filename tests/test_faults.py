"""Faults while writing, with real processes: signals, a full disk, a file-size limit, two writers
racing for one target, and a reader that closes the pipe. The target either does not exist or
holds a previous complete file; temporary files are removed (or, after SIGKILL, clearly named).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import NORMCLI, previous_output, snapshot

ROWS = 4_000_000
"""About 170 MB of CSV: a transform takes over a second, long enough to be interrupted mid-way."""


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory):
    """A folder holding big.csv, its stats (stats.json) and a second stats file (other.json)."""
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(7)
    frame = pl.DataFrame(
        {"a": rng.normal(size=ROWS), "b": rng.integers(0, 1000, ROWS), "c": rng.normal(size=ROWS) * 1e3}
    )
    frame.write_csv(folder / "big.csv")
    frame.head(1000).write_csv(folder / "head.csv")
    for stats, source in (("stats.json", "big.csv"), ("other.json", "head.csv")):
        done = subprocess.run([*NORMCLI, "fit", source, "-o", stats, "-q"], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    yield folder
    shutil.rmtree(folder)  # 170 MB: not worth keeping among pytest's last three runs


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.normcli-tmp"))


def start_transform(folder: Path, target: str, stats: str = "stats.json", inputs: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [*NORMCLI, "transform", *["big.csv"] * inputs, "-s", stats, "-o", target],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_writing(process: subprocess.Popen, folder: Path, target: str, timeout: float = 60) -> None:
    """Wait until the process has written part of its temporary file (it is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for temp in folder.glob(f".{target}.*.normcli-tmp"):
            with contextlib.suppress(FileNotFoundError):
                if temp.stat().st_size > 100_000:
                    return
        assert process.poll() is None, f"finished before it could be interrupted: {process.communicate()}"
        time.sleep(0.005)
    pytest.fail("the transform never started writing")


@pytest.fixture
def previous(big: Path):
    """Put a previous complete output at out.csv; yield its bytes; clean the folder afterwards."""
    target = big / "out.csv"
    target.write_bytes(b"a,b,c\n1,2,3\n")
    yield target.read_bytes()
    target.unlink(missing_ok=True)
    for temp in temp_files(big):
        temp.unlink()


@pytest.mark.parametrize("existing", [False, True])
def test_sigkill_mid_transform_leaves_no_partial_target(big: Path, existing: bool) -> None:
    target = big / "killed.csv"
    if existing:
        target.write_bytes(b"a,b,c\n1,2,3\n")
    process = start_transform(big, "killed.csv", inputs=2)
    wait_for_writing(process, big, "killed.csv")
    process.kill()
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    if existing:
        assert target.read_bytes() == b"a,b,c\n1,2,3\n"
    else:
        assert not target.exists()
    leftovers = temp_files(big)  # nothing can clean up after SIGKILL: the leftover is named so
    assert [t.name.startswith(".killed.csv.") for t in leftovers] == [True] * len(leftovers)
    for temp in leftovers:
        temp.unlink()
    target.unlink(missing_ok=True)


@pytest.mark.parametrize(("sent", "word"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_signal_mid_transform_dies_by_it_promptly_and_cleans_up(big: Path, previous: bytes, sent, word) -> None:
    before = snapshot(big)
    process = start_transform(big, "out.csv", inputs=3)
    wait_for_writing(process, big, "out.csv")
    process.send_signal(sent)
    start = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    waited = time.monotonic() - start
    assert process.returncode == -sent, stderr  # death by the signal, after cleaning up
    assert stderr == f"normcli: {word}\n"  # no traceback, no panic text from Polars' threads
    assert stdout == ""
    assert waited < 3.0, f"took {waited:.1f}s to stop"  # the whole transform takes several seconds
    assert (big / "out.csv").read_bytes() == previous
    assert snapshot(big) == before


def feed_until_consumed(process: subprocess.Popen, header: bytes, total: int = 4 << 20) -> None:
    """Write CSV rows into the process's stdin until ``total`` bytes have gone in, keeping it open.

    A pipe holds 64 KiB: once several MiB have been written the process has provably started and
    is reading its input. The pipe stays open, so the process cannot have finished: it is mid-read
    when the test signals it (a readiness signal, not a guess about timing).
    """
    rows = b"".join(b"%d,%d,%d\n" % (i, i * 7 % 1000, -i) for i in range(4096))
    process.stdin.write(header)
    written = len(header)
    while written < total:
        process.stdin.write(rows)
        written += len(rows)
    process.stdin.flush()


@pytest.mark.parametrize(
    "args",
    [["fit", "-", "-o", "out.json"], ["transform", "-", "-s", "stats.json", "-o", "out.csv"]],
)
def test_sigint_mid_read_of_a_pipe_dies_by_it_and_leaves_nothing(tmp_path: Path, args: list[str]) -> None:
    """SIGINT while normcli reads a pipe: death by SIGINT, one line, and no file left anywhere,
    $TMPDIR included."""
    (tmp_path / "seed.csv").write_bytes(b"a,b,c\n1,2,3\n4,5,7\n")
    assert subprocess.run([*NORMCLI, "fit", "seed.csv", "-o", "stats.json", "-q"], cwd=tmp_path).returncode == 0
    (tmp_path / "seed.csv").unlink()
    before = snapshot(tmp_path)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [*NORMCLI, *args], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    feed_until_consumed(process, b"a,b,c\n")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT and stderr == b"normcli: interrupted\n" and stdout == b""
    assert snapshot(tmp_path) == before


def _children(pid: int, timeout: float = 30) -> list[int]:
    """The child processes of ``pid`` (Linux /proc), waiting until there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                return [int(c) for c in children]
        time.sleep(0.005)
    pytest.fail(f"process {pid} started no child")


def test_ctrl_c_stops_a_shell_loop(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during the first
    iteration ends the loop: bash stops only when its child died of SIGINT, not when it exited 130."""
    script = f'for i in 1 2 3; do {" ".join(NORMCLI)} fit - -o out.json; echo "after $i"; done; echo end'
    process = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )
    feed_until_consumed(process, b"a,b,c\n")  # the first normcli is mid-read (the pipe stays open)
    os.killpg(process.pid, signal.SIGINT)
    process.stdin.close()
    process.stdin = None
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT  # bash itself stopped, by SIGINT
    assert stdout == b""  # no "after 1": the next iteration never started
    assert stderr == b"normcli: interrupted\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("sent", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_shell_reports_death_by_signal_as_128_plus_its_number(tmp_path: Path, sent, status) -> None:
    process = subprocess.Popen(
        ["bash", "-c", f'{" ".join(NORMCLI)} fit - -o out.json; echo "status $?"'], cwd=tmp_path,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    [child] = _children(process.pid)
    feed_until_consumed(process, b"a,b,c\n")
    os.kill(child, sent)  # normcli only: bash carries on and reports the status
    process.stdin.close()
    process.stdin = None
    stdout, stderr = process.communicate(timeout=60)
    assert stdout == f"status {status}\n".encode()
    if sent == signal.SIGINT:
        assert stderr == b"normcli: interrupted\n"
    else:  # bash itself reports a child killed by SIGTERM ("... Terminated")
        first, *rest = stderr.decode().splitlines()
        assert first == "normcli: terminated" and len(rest) == 1 and "Terminated" in rest[0]


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # the default SIGXFSZ action
        # stays: CPython itself ignores SIGXFSZ, so the write fails with EFBIG and normcli cleans up

    return apply


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (["transform", "head.csv", "-s", "stats.json", "-o", "out.csv"], "out.csv"),
        (["transform", "head.csv", "-s", "stats.json", "-o", "out.parquet"], "out.parquet"),
        (["fit", "head.csv", "-o", "out.json"], "out.json"),
        (["train", "head.csv", "--target", "c", "--epochs", "1", "-o", "out.npz"], "out.npz"),
    ],
)
def test_file_size_limit_fails_cleanly_and_keeps_the_target(big: Path, args: list[str], target: str) -> None:
    path = big / target
    path.write_bytes(previous_output(target))
    before = snapshot(big)
    try:
        result = subprocess.run(
            [*NORMCLI, *args], cwd=big, capture_output=True, text=True, timeout=120,
            preexec_fn=_limit_file_size(1000),
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"normcli: error: cannot write {target}: file too large")
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
        assert snapshot(big) == before
    finally:
        path.unlink()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 256 KiB tmpfs (needs root and mount); skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("target", ["out.csv", "out.parquet"])
def test_full_disk_fails_cleanly_and_keeps_the_target(big: Path, small_disk: Path, target: str) -> None:
    (small_disk / target).write_bytes(b"previous\n")
    before = snapshot(small_disk)
    result = subprocess.run(
        [*NORMCLI, "transform", "big.csv", "-s", "stats.json", "-o", str(small_disk / target)],
        cwd=big, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr == f"normcli: error: cannot write {small_disk / target}: no space left on the device (free some space or choose another output; nothing was changed)\n"
    assert snapshot(small_disk) == before


def test_full_disk_on_stdout_is_a_clean_error(big: Path, small_disk: Path) -> None:
    with open(small_disk / "redirected.csv", "wb") as sink:
        result = subprocess.run(
            [*NORMCLI, "transform", "big.csv", "-s", "stats.json"], cwd=big, stdout=sink,
            stderr=subprocess.PIPE, text=True, timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr == "normcli: error: cannot write the output: no space left on the device\n"


def test_concurrent_transforms_to_one_target_leave_one_complete_file(big: Path) -> None:
    """Two writers with different stats race for out-race.csv: the result is one of their outputs."""
    expected = {}
    for stats in ("stats.json", "other.json"):
        done = subprocess.run(
            [*NORMCLI, "transform", "big.csv", "-s", stats, "-o", f"alone-{stats}.csv"], cwd=big, capture_output=True
        )
        assert done.returncode == 0
        expected[stats] = hashlib.sha256((big / f"alone-{stats}.csv").read_bytes()).hexdigest()
        (big / f"alone-{stats}.csv").unlink()
    assert len(set(expected.values())) == 2
    for _ in range(2):
        first = start_transform(big, "out-race.csv", "stats.json")
        second = start_transform(big, "out-race.csv", "other.json")
        assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
        first.communicate(), second.communicate()
        digest = hashlib.sha256((big / "out-race.csv").read_bytes()).hexdigest()
        assert digest in expected.values()
        assert temp_files(big) == []
    (big / "out-race.csv").unlink()


@pytest.mark.parametrize(
    "args",
    [
        ["transform", "big.csv", "-s", "stats.json"],
        ["transform", "big.csv", "-s", "stats.json", "--output-format", "ndjson"],
        ["fit", "big.csv", "-o", "-"],
        ["inspect", "wide.json", "--json"],
    ],
)
def test_closed_pipe_exits_quietly(big: Path, args: list[str]) -> None:
    if "wide.json" in args and not (big / "wide.json").exists():
        names = [f"c{i}" for i in range(300)]
        pl.DataFrame(np.random.default_rng(1).normal(size=(3, 300)), schema=names, orient="row").write_csv(big / "wide.csv")
        assert subprocess.run([*NORMCLI, "fit", "wide.csv", "-o", "wide.json", "-q"], cwd=big).returncode == 0
    process = subprocess.Popen([*NORMCLI, *args], cwd=big, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.read(10)
    process.stdout.close()  # like `| head -c 10`
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 0
    assert stderr == b""


def test_shell_pipeline_into_head(big: Path) -> None:
    result = subprocess.run(
        f"{' '.join(NORMCLI)} transform big.csv -s stats.json | head -1; echo \"status ${{PIPESTATUS[0]}}\"",
        shell=True, executable="/bin/bash", cwd=big, capture_output=True, text=True, timeout=60,
    )
    assert result.stdout == "a,b,c\nstatus 0\n"
    assert result.stderr == ""
