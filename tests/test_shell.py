"""normcli in the shell, with real processes: pipelines between normcli commands, shell completion,
and what a terminal sees (emulated with a pseudo-terminal)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import NORMCLI, modules_loaded, snapshot

SAMPLE = Path(__file__).parents[1] / "sample_data"


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has a ``normcli`` command running this working tree (completion
    scripts call the program by name)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "normcli"
    script.write_text(f"#!/bin/sh\nexec {shlex.join(NORMCLI)} \"$@\"\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def bash(script: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- stats through a pipe


def test_fit_to_stdout_piped_into_transform_inspect_merge_and_train(tmp_path: Path, shim) -> None:
    train, new = SAMPLE / "checkups.csv", SAMPLE / "checkups_new.csv"
    done = bash(
        f"normcli fit {train} -o - -q | normcli transform {new} -s - > piped.csv && "
        f"normcli fit {train} -o stats.json -q && normcli transform {new} -s stats.json > filed.csv && "
        f"normcli fit {train} -o - -q | normcli inspect - --json > inspected.json && "
        f"normcli fit {train} -o - -q | normcli merge - stats.json --allow-overlap -o - -q > merged.json",
        tmp_path, shim,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert (tmp_path / "piped.csv").read_bytes() == (tmp_path / "filed.csv").read_bytes()
    assert json.loads((tmp_path / "inspected.json").read_text()) == json.loads((tmp_path / "stats.json").read_text())
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["inputs"]["row_count"] == 2 * 4000
    trained = bash(
        f"normcli fit {train} -o - -q -x hba1c | normcli train {train} -s - --target risk -x hba1c --epochs 1 -o m.npz -q --json",
        tmp_path, shim,
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["task"] == "classification"


@pytest.mark.parametrize(
    "command",
    ["normcli transform -s - < data.csv", "normcli transform - -s - < data.csv", "cat data.csv | normcli transform /dev/stdin -s -",
     "normcli train --target a -s - < data.csv"],
)
def test_stats_and_data_cannot_both_come_from_stdin(tmp_path: Path, shim, command: str) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,5\n")
    before = snapshot(tmp_path)
    done = bash(command, tmp_path, shim)
    assert done.returncode == 2
    assert done.stderr == "normcli: error: stdin ('-') cannot carry both the data and the stats (name the data files, or give the stats as a file)\n"
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- completion


NAMED_SHELL = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
"""Typer detects the user's shell (shellingham, from the parent processes); with this variable the
completion options take the shell's name instead, so a test can ask for zsh from bash."""


def test_show_completion_prints_the_script_of_the_users_shell(tmp_path: Path, shim) -> None:
    done = bash("normcli --show-completion", tmp_path, shim)  # run from bash: detected
    assert done.returncode == 0 and done.stderr == ""
    assert "complete -o default -F _normcli_completion normcli" in done.stdout
    for shell, line in (("bash", "complete -o default -F _normcli_completion normcli"), ("zsh", "compdef _normcli_completion normcli")):
        done = bash(f"normcli --show-completion {shell}", tmp_path, {**shim, **NAMED_SHELL})
        assert done.returncode == 0 and done.stderr == ""
        assert line in done.stdout and "_NORMCLI_COMPLETE=complete_" + shell in done.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["normcli", "tr"], ["transform", "train"]),
        (["normcli", "fit", "--co"], ["--columns"]),
        (["normcli", "transform", "--no-h"], ["--no-headers"]),
        (["normcli", "inspect", "--c"], ["--csv"]),
    ],
)
def test_bash_completes_commands_and_options(tmp_path: Path, shim, words: list[str], expected: list[str]) -> None:
    """The script `normcli --show-completion bash` prints, sourced in a real bash and called as bash
    calls it on <TAB>."""
    script = (
        "source <(normcli --show-completion bash)\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_normcli_completion normcli\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = bash(script, tmp_path, shim)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected


def test_zsh_completion_protocol(tmp_path: Path, shim) -> None:
    """What the zsh script evaluates: `_TYPER_COMPLETE_ARGS=... _NORMCLI_COMPLETE=complete_zsh normcli`
    (run directly, zsh itself need not be installed)."""
    env = {**shim, "_TYPER_COMPLETE_ARGS": "normcli tr", "_NORMCLI_COMPLETE": "complete_zsh"}
    done = subprocess.run(["normcli"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("_arguments '*: :((")
    assert '"transform":"Apply fitted statistics to files or a pipe."' in done.stdout
    assert '"train":' in done.stdout and '"fit":' not in done.stdout


def test_install_completion_writes_the_script_into_the_users_shell_setup(tmp_path: Path, shim) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**shim, **NAMED_SHELL, "HOME": str(home)}
    done = subprocess.run(["normcli", "--install-completion", "bash"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "complete -o default -F _normcli_completion normcli" in (home / ".bash_completions" / "normcli.sh").read_text()
    assert "source" in (home / ".bashrc").read_text()


def test_root_help_stays_fast_and_light_with_completion_on() -> None:
    loaded, out = modules_loaded(["--help"], ("typer", "polars", "numpy", "rich", "shellingham"))
    assert loaded == []
    assert "--install-completion" in out and "--show-completion" in out


# --------------------------------------------------------------------------- on a terminal


def run_on_terminal(
    args: list[str], cwd: Path, *, columns: int = 80, stream: str = "stdout", stdin: int | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    """Run normcli with ``stream`` (stdout or stderr) on a pseudo-terminal ``columns`` wide; returns
    the exit status, what the terminal received, and the other stream."""
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
    env["TERM"] = "xterm-256color"
    other = subprocess.PIPE
    process = subprocess.Popen(
        [*NORMCLI, *args], cwd=cwd, env=env, stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=secondary if stream == "stdout" else other, stderr=secondary if stream == "stderr" else other,
    )
    os.close(secondary)
    received = bytearray()
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not data:
            break
        received += data
    os.close(primary)
    out = (process.stderr if stream == "stdout" else process.stdout).read().decode()
    status = process.wait(timeout=timeout)
    return status, received.decode().replace("\r\n", "\n"), out


@pytest.fixture(scope="module")
def wide_stats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stats of columns with long names and numbers of every size (391839, 1e+15, -0.000123...)."""
    folder = tmp_path_factory.mktemp("wide")
    rng = np.random.default_rng(11)
    frame = pl.DataFrame(
        {
            "customer_lifetime_value_in_euros": rng.normal(size=500) * 1e5 + 391839,
            "x": rng.integers(-5, 5, 500),
            "tiny": rng.normal(size=500) * 1e-4,
            "huge": rng.normal(size=500) * 1e15,
            "city": ["Lyon", "Graz"] * 250,
        }
    )
    frame.write_csv(folder / "wide.csv")
    assert subprocess.run([*NORMCLI, "fit", "wide.csv", "-o", "stats.json", "-q", "--method-for", "x=minmax"], cwd=folder).returncode == 0
    return folder


@pytest.mark.parametrize("columns", [80, 60, 120])
def test_inspect_fits_the_terminal_and_never_cuts_a_number(wide_stats: Path, columns: int) -> None:
    status, shown, stderr = run_on_terminal(["inspect", "stats.json"], wide_stats, columns=columns)
    assert status == 0 and stderr == ""
    lines = shown.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= columns, shown
    assert "…" not in shown and "..." not in shown
    doc = json.loads((wide_stats / "stats.json").read_text())
    for column in doc["columns"]:  # every shown centre and scale whole, as %.6g
        for field in ("center", "scale"):
            assert f"{column[field]:.6g}" in shown
    names = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))  # folded names, whole
    assert names == "customer_lifetime_value_in_euros" + "x" + "tiny" + "huge"
    if columns < 120:
        assert "not shown here:" in " ".join(shown.split())


def test_inspect_into_a_pipe_shows_every_column(wide_stats: Path) -> None:
    done = subprocess.run([*NORMCLI, "inspect", "stats.json"], cwd=wide_stats, capture_output=True, text=True, env={**os.environ, "COLUMNS": "40"})
    assert done.returncode == 0
    header = next(line for line in done.stdout.splitlines() if "column" in line and "scale" in line)
    assert [h for h in header.replace("┃", " ").split()] == ["column", "dtype", "method", "count", "nulls", "NaN", "mean", "std", "min", "max", "center", "scale"]
    assert "not shown here" not in done.stdout


def test_inspect_csv_has_every_digit(wide_stats: Path) -> None:
    done = subprocess.run([*NORMCLI, "inspect", "stats.json", "--csv"], cwd=wide_stats, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pl.read_csv(done.stdout.encode())
    doc = json.loads((wide_stats / "stats.json").read_text())
    assert table["name"].to_list() == [c["name"] for c in doc["columns"]]
    for row, column in zip(table.iter_rows(named=True), doc["columns"], strict=True):
        for field in ("count", "null_count", "mean", "std", "min", "max", "center", "center_lo", "scale"):
            assert row[field] == column[field], field  # read back bit for bit
        assert row["method"] == column["method"]
    x = table.row(by_predicate=pl.col("name") == "x", named=True)
    assert (x["range_low"], x["range_high"]) == (0.0, 1.0) and x["median"] is None


def test_onnx_to_a_terminal_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,5\n")
    assert subprocess.run([*NORMCLI, "fit", "d.csv", "-o", "s.json", "-q"], cwd=tmp_path, capture_output=True).returncode == 0
    before = snapshot(tmp_path)
    status, shown, stderr = run_on_terminal(["export", "s.json", "--to", "onnx", "-o", "-"], tmp_path)
    assert (status, shown) == (2, "")
    assert stderr.startswith("normcli: error: onnx output is binary and stdout is a terminal")
    assert snapshot(tmp_path) == before
    status, shown, _ = run_on_terminal(["export", "s.json", "--to", "sql"], tmp_path)  # SQL is text: fine
    assert status == 0 and "SELECT" in shown


@pytest.mark.parametrize("command", ["transform", "predict"])
def test_parquet_to_a_terminal_is_refused(tmp_path: Path, command: str) -> None:
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,5,1\n4,4,0\n6,1,1\n")
    prepare = ["fit", "d.csv", "-o", "s.json", "-q"] if command == "transform" else ["train", "d.csv", "--target", "y", "--epochs", "1", "--val-split", "0", "-o", "m.npz", "-q"]
    assert subprocess.run([*NORMCLI, *prepare], cwd=tmp_path, capture_output=True).returncode == 0
    args = ["transform", "d.csv", "-s", "s.json"] if command == "transform" else ["predict", "d.csv", "--model", "m.npz"]
    before = snapshot(tmp_path)
    status, shown, stderr = run_on_terminal([*args, "--output-format", "parquet"], tmp_path)
    assert (status, shown) == (2, "")
    assert stderr == "normcli: error: parquet output is binary and stdout is a terminal (name a file with -o out.parquet, or redirect: ... > out.parquet)\n"
    assert snapshot(tmp_path) == before
    status, shown, _ = run_on_terminal(args, tmp_path)  # CSV is fine
    assert status == 0 and (shown.startswith("a,b,y\n") if command == "transform" else "predicted_y,prob_0" in shown.splitlines()[0])


def _frames_of(terminal_text: str) -> list[str]:
    """The successive states of a progress line, control sequences removed."""
    import re

    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal_text)
    return [line.strip() for line in plain.replace("\r", "\n").split("\n") if line.strip()]


@pytest.fixture(scope="module")
def rows_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("progress")
    rng = np.random.default_rng(2)
    pl.DataFrame({"a": rng.normal(size=200_000), "b": rng.integers(0, 9, 200_000), "y": rng.integers(0, 2, 200_000)}).write_csv(folder / "d.csv")
    assert subprocess.run([*NORMCLI, "fit", "d.csv", "-o", "s.json", "-q"], cwd=folder).returncode == 0
    return folder


def test_fit_shows_rows_and_time_on_a_terminal(rows_csv: Path) -> None:
    status, shown, stdout = run_on_terminal(["fit", "d.csv", "-o", "out.json"], rows_csv, stream="stderr")
    assert status == 0 and stdout == ""
    frames = _frames_of(shown)
    assert any(f.endswith("fitting d.csv · 200,000 rows · 0:00") or "fitting d.csv · 200,000 rows · 0:0" in f for f in frames), frames
    assert frames[-1] == "normcli: fitted 2 columns over 200000 rows → out.json" or "normcli: fitted" in frames[-1]


def test_transform_of_a_file_shows_the_bytes_read(rows_csv: Path) -> None:
    status, shown, _ = run_on_terminal(["transform", "d.csv", "-s", "s.json", "-o", "out.csv"], rows_csv, stream="stderr")
    assert status == 0
    size = (rows_csv / "d.csv").stat().st_size / 1e6
    assert any(f"transforming d.csv · {size:.1f} MB of {size:.1f} MB (100%) · 0:0" in f for f in _frames_of(shown)), _frames_of(shown)


def test_transform_of_a_pipe_shows_rows(rows_csv: Path) -> None:
    with open(rows_csv / "d.csv", "rb") as data:
        status, shown, _ = run_on_terminal(["transform", "-s", "s.json", "-o", "out.csv"], rows_csv, stream="stderr", stdin=data.fileno())
    assert status == 0
    assert any("transforming <stdin> · 200,000 rows · 0:0" in f for f in _frames_of(shown)), _frames_of(shown)


def test_predict_shows_rows_on_a_terminal(rows_csv: Path) -> None:
    assert subprocess.run([*NORMCLI, "train", "d.csv", "--target", "y", "--epochs", "1", "-o", "m.npz", "-q"], cwd=rows_csv).returncode == 0
    status, shown, _ = run_on_terminal(["predict", "d.csv", "--model", "m.npz", "-o", "p.csv"], rows_csv, stream="stderr")
    assert status == 0
    frames = _frames_of(shown)
    assert any("predicting d.csv · 200,000 rows · 0:0" in f for f in frames), frames


def test_no_progress_when_stderr_is_not_a_terminal(rows_csv: Path) -> None:
    for args in (["fit", "d.csv", "-o", "out.json"], ["transform", "d.csv", "-s", "s.json", "-o", "out.csv"]):
        done = subprocess.run([*NORMCLI, *args], cwd=rows_csv, capture_output=True, text=True)
        assert done.returncode == 0
        assert all(line.startswith("normcli: ") for line in done.stderr.splitlines()), done.stderr
        assert "\x1b" not in done.stderr and " rows ·" not in done.stderr


def test_progress_counts_the_bytes_this_process_reads(tmp_path: Path) -> None:
    """The bytes part measures real reads (Linux /proc/self/io), not a guess."""
    from normcli.context import Env, Progress

    if not Path("/proc/self/io").exists():
        pytest.skip("no /proc/self/io on this system")
    (tmp_path / "f.bin").write_bytes(b"x" * 3_000_000)
    progress = Progress(Env.current(), "reading f.bin", [str(tmp_path / "f.bin")], enabled=False)
    assert " B of 3.0 MB (0%)" in progress.text()  # reading /proc/self/io itself counts a few bytes
    with open(tmp_path / "f.bin", "rb") as handle:
        handle.read(1_500_000)
        assert "1.5 MB of 3.0 MB (50%)" in progress.text()
        handle.read()
    assert "3.0 MB of 3.0 MB (100%)" in progress.text()
    progress.rows(1234)
    assert progress.text().startswith("reading f.bin · 1,234 rows · 0:")
