"""The command line through CliRunner (stdout, stderr and exit codes apart) and as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from normcli import __version__
from conftest import modules_loaded
from normcli.cli import app

SAMPLE = Path(__file__).parents[1] / "sample_data"
runner = CliRunner()


def invoke(*args: str, input: bytes | str | None = None):
    return runner.invoke(app, list(args), input=input)


def test_fit_writes_stats_and_names_skipped_columns_on_stderr(tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    result = invoke("fit", str(SAMPLE / "checkups.csv"), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "skipped non-numeric columns: patient_id, visit_date, region, risk" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["format"] == "normcli-stats" and doc["version"] == 3
    assert doc["inputs"]["row_count"] == 4000
    assert [c["name"] for c in doc["columns"]][:3] == ["age", "height_cm", "weight_kg"]


def test_quiet_silences_notes_and_warnings(tmp_path: Path) -> None:
    result = invoke("fit", str(SAMPLE / "checkups.csv"), "-o", str(tmp_path / "s.json"), "-q")
    assert result.exit_code == 0 and result.stderr == ""


def test_fit_to_stdout_then_inspect_json(tmp_path: Path) -> None:
    result = invoke("fit", str(SAMPLE / "checkups.csv"), "-o", "-", "--method", "minmax", "--method-for", "income=robust", "-q")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    methods = {c["name"]: c["method"] for c in doc["columns"]}
    assert methods["income"] == "robust" and methods["age"] == "minmax"
    stats = tmp_path / "s.json"
    stats.write_text(result.stdout)
    shown = invoke("inspect", str(stats), "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout) == doc
    table = invoke("inspect", str(stats))
    assert table.exit_code == 0 and "income" in table.stdout and "robust" in table.stdout


def test_transform_pipe_stdin_to_stdout(tmp_path: Path) -> None:
    stats = tmp_path / "s.json"
    assert invoke("fit", str(SAMPLE / "checkups.csv"), "-o", str(stats), "-q").exit_code == 0
    result = invoke("transform", "--stats", str(stats), input=(SAMPLE / "checkups_new.csv").read_bytes())
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == (SAMPLE / "checkups_new.csv").read_text().splitlines()[0]
    assert len(lines) == 1001


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["fit", "no-such-file.csv"], 1, "no such file"),
        (["fit", str(SAMPLE / "checkups.csv"), "--method", "zscore"], 2, "choose one of: standard, minmax, robust, maxabs"),
        (["fit", str(SAMPLE / "checkups.csv"), "--ddof", "-1"], 2, "--ddof must be 0 or 1"),
        (["fit", str(SAMPLE / "checkups.csv"), "--feature-range", "1,0"], 2, "--feature-range"),
        (["fit", str(SAMPLE / "checkups.csv"), "--method-for", "nope=minmax"], 2, "no column named 'nope'"),
        (["fit", str(SAMPLE / "checkups.csv"), "--bogus"], 2, "No such option: --bogus"),
        (["transform", str(SAMPLE / "checkups.csv")], 2, "Missing option '--stats'"),
        (["inspect", "missing.json"], 1, "no such stats file"),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(args, code, words) -> None:
    result = invoke(*args)
    assert result.exit_code == code
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("normcli: error: ")
    assert words in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback() -> None:
    result = invoke("fit", "no-such-file.csv", "--debug")
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_version_and_examples_in_every_help() -> None:
    assert invoke("--version").stdout.strip() == f"normcli {__version__}"
    for command in ("fit", "transform", "inspect"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout and "normcli " + command in result.stdout


def _installed_normcli() -> str:
    """The console script next to this interpreter (not a shell shim), installed by pip."""
    candidate = Path(sys.executable).parent / "normcli"
    return str(candidate) if candidate.exists() else shutil.which("normcli") or "normcli"


def test_help_imports_neither_polars_nor_numpy() -> None:
    loaded, _ = modules_loaded(["--help"], ("polars", "numpy", "pyarrow", "rich"), entry="normcli.cli")
    assert loaded == []


def test_inspect_of_a_stats_file_imports_neither_polars_nor_numpy(tmp_path: Path) -> None:
    """inspect is what a script calls to look at a stats file: python and json, no data stack."""
    stats = tmp_path / "s.json"
    assert runner.invoke(app, ["fit", str(SAMPLE / "checkups.csv"), "-o", str(stats), "-q"]).exit_code == 0
    loaded, out = modules_loaded(["inspect", str(stats)], ("polars", "numpy", "pyarrow"), entry="normcli.cli")
    assert loaded == [] and "glucose" in out, out


def test_installed_command_in_a_shell_pipeline(tmp_path: Path) -> None:
    normcli = _installed_normcli()
    script = (
        f'"{normcli}" fit "{SAMPLE / "checkups.csv"}" -o stats.json -q && '
        f'"{normcli}" transform --stats stats.json < "{SAMPLE / "checkups_new.csv"}" | head -3 > head.csv && '
        f'"{normcli}" transform --stats stats.json < "{SAMPLE / "checkups_new.csv"}" > out.csv'
    )
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len((tmp_path / "head.csv").read_text().splitlines()) == 3
    out = pl.read_csv(tmp_path / "out.csv")
    assert out.height == 1000
    assert abs(out["age"].mean()) < 0.2  # new data from the same source: roughly centred


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "normcli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"normcli {__version__}"


def test_no_input_on_a_terminal_is_a_usage_error_not_a_hang() -> None:
    import pty

    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [_installed_normcli(), "fit", "-o", "-"], stdin=secondary, capture_output=True, text=True, timeout=30,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert done.returncode == 2
    assert "stdin is a terminal" in done.stderr


def test_merge_of_shard_stats_matches_one_fit(tmp_path: Path) -> None:
    rows = (SAMPLE / "checkups.csv").read_text().splitlines()
    (tmp_path / "a.csv").write_text("\n".join(rows[:1501]) + "\n")
    (tmp_path / "b.csv").write_text("\n".join([rows[0], *rows[1501:]]) + "\n")
    for name in ("a", "b"):
        assert invoke("fit", str(tmp_path / f"{name}.csv"), "-o", str(tmp_path / f"{name}.json"), "-q").exit_code == 0
    merged = invoke("merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", "-")
    whole = invoke("fit", str(SAMPLE / "checkups.csv"), "-o", "-", "-q")
    assert merged.exit_code == 0, merged.stderr
    got, want = json.loads(merged.stdout), json.loads(whole.stdout)
    assert got["inputs"]["row_count"] == want["inputs"]["row_count"] == 4000
    for a, b in zip(got["columns"], want["columns"], strict=True):
        assert a["count"] == b["count"] and a["min"] == b["min"] and a["max"] == b["max"]
        assert a["std"] == pytest.approx(b["std"], rel=1e-12) and a["mean"] == pytest.approx(b["mean"], rel=1e-12)
    assert invoke("merge", str(tmp_path / "a.json")).exit_code == 2


def test_fast_root_help_matches_what_typer_renders(monkeypatch) -> None:
    """`normcli --help` is served from normcli/help.txt; it must say what Typer would.

    If this fails after changing commands, regenerate the file:
    COLUMNS=80 python -c "from typer.testing import CliRunner; from normcli.cli import app; \
open('normcli/help.txt', 'w').write(CliRunner().invoke(app, ['--help']).stdout)"
    """
    from normcli.__main__ import ROOT_HELP

    monkeypatch.setenv("COLUMNS", "80")
    rendered = invoke("--help")
    assert rendered.exit_code == 0
    assert ROOT_HELP.read_text(encoding="utf-8") == rendered.stdout
    done = subprocess.run([_installed_normcli(), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == rendered.stdout
    bare = subprocess.run([_installed_normcli()], capture_output=True, text=True)
    assert bare.returncode == 2 and bare.stdout == "" and "Commands:" in bare.stderr


def test_console_script_help_imports_no_typer() -> None:
    loaded, _ = modules_loaded(["--help"], ("typer", "polars", "numpy", "rich"))
    assert loaded == []
