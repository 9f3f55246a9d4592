"""Where outputs go, with real processes: devices, FIFOs, descriptors, links, permissions, long names,
and a command's files committed together (issue 10, docs/errors.md "Outputs").

Device nodes are made with mknod inside the test's folder where the system allows it (root), so a
regression can never replace the machine's /dev/null. Where mknod is refused the test uses /dev/null
itself, which is then safe: only root may rename files into /dev.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import DATA, NORMCLI, snapshot

CHARACTER_DEVICES = {"null": (1, 3), "full": (1, 7)}


def character_device(folder: Path, kind: str) -> Path:
    """A character device like /dev/<kind> inside ``folder`` (or /dev/<kind> where mknod is refused)."""
    path = folder / f"dev-{kind}"
    major, minor = CHARACTER_DEVICES[kind]
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    except PermissionError:
        assert os.geteuid() != 0 or not os.access("/dev", os.W_OK), "refusing to test on the real /dev as root"
        return Path(f"/dev/{kind}")
    return path


def run(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*NORMCLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, **kwargs)


def assert_one_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("normcli: error: "), result.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """ok.csv (columns a, b), stats.json fitted on it, and what transform writes for it (expected.csv)."""
    shutil.copy(DATA / "plain-two-columns.csv", tmp_path / "ok.csv")
    assert run(["fit", "ok.csv", "-o", "stats.json", "-q"], tmp_path).returncode == 0
    assert run(["transform", "ok.csv", "-s", "stats.json", "-o", "expected.csv", "-q"], tmp_path).returncode == 0
    return tmp_path


def no_temporary_files(folder: Path) -> bool:
    return not list(folder.rglob("*.normcli-tmp"))


# --------------------------------------------------------------------------- devices, FIFOs, descriptors


@pytest.mark.parametrize(
    "args",
    [
        ["transform", "ok.csv", "-s", "stats.json", "-o"],
        ["fit", "ok.csv", "-o"],
        ["merge", "stats.json", "again.json", "--allow-overlap", "-o"],
    ],
)
def test_a_character_device_is_written_not_replaced(folder: Path, args: list[str]) -> None:
    shutil.copy(folder / "stats.json", folder / "again.json")
    null = character_device(folder, "null")
    result = run([*args, str(null)], folder)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert no_temporary_files(folder)


def test_a_full_device_is_a_clean_error_and_stays_a_device(folder: Path) -> None:
    full = character_device(folder, "full")
    before = snapshot(folder)
    result = run(["transform", "ok.csv", "-s", "stats.json", "-o", str(full)], folder)
    assert_one_error(result, 1, "cannot write", "no space left")
    assert stat.S_ISCHR(os.stat(full).st_mode)
    assert snapshot(folder) == before


def test_a_fifo_target_is_written_into_and_stays_a_fifo(folder: Path) -> None:
    fifo = folder / "out.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = run(["transform", "ok.csv", "-s", "stats.json", "-o", "out.fifo", "--output-format", "csv"], folder)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert received == [(folder / "expected.csv").read_bytes()]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_dev_stdout_is_stdout_whatever_it_is(folder: Path) -> None:
    """-o /dev/stdout into a pipe, and into a file the shell opened (which is written, not replaced)."""
    piped = run(["transform", "ok.csv", "-s", "stats.json", "-o", "/dev/stdout", "-q"], folder)
    assert piped.returncode == 0 and piped.stdout == (folder / "expected.csv").read_text()
    with open(folder / "redirected.csv", "wb") as handle:
        done = subprocess.run([*NORMCLI, "transform", "ok.csv", "-s", "stats.json", "-o", "/dev/stdout", "-q"], cwd=folder, stdout=handle, timeout=120)
    assert done.returncode == 0
    assert (folder / "redirected.csv").read_bytes() == (folder / "expected.csv").read_bytes()
    assert no_temporary_files(folder)


def test_a_descriptor_the_shell_opened_is_written(folder: Path) -> None:
    result = subprocess.run(
        ["bash", "-c", f"{' '.join(NORMCLI)} transform ok.csv -s stats.json -o /dev/fd/3 -q 3> fd3.csv"],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (folder / "fd3.csv").read_bytes() == (folder / "expected.csv").read_bytes()


@pytest.mark.parametrize("target", ["/dev/fd/7", "/dev/stdout", "/proc/self/fd/1"])
def test_a_descriptor_the_shell_did_not_open_is_refused(folder: Path, target: str) -> None:
    """Above all with stdout closed: descriptor 1 then belongs to whatever normcli opened first
    (an input, say), which writing to /dev/stdout would truncate."""
    before = snapshot(folder)
    result = subprocess.run(
        ["bash", "-c", f"{' '.join(NORMCLI)} transform ok.csv -s stats.json -o {target} >&-"],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )
    assert_one_error(result, 1, "descriptor", "did not open")
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "command",
    [
        "fit ok.csv -o -",
        "transform ok.csv -s stats.json",
        "inspect stats.json",
        "merge stats.json again.json --allow-overlap -o -",
    ],
)
def test_closed_stdout_is_a_clean_error(folder: Path, command: str) -> None:
    shutil.copy(folder / "stats.json", folder / "again.json")
    before = snapshot(folder)
    result = subprocess.run(["bash", "-c", f"{' '.join(NORMCLI)} {command} >&-"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert_one_error(result, 1, "stdout", "closed")
    assert snapshot(folder) == before


@pytest.mark.parametrize("command", ["fit ok.csv -o -", "transform ok.csv -s stats.json", "inspect stats.json"])
def test_a_full_stdout_is_a_clean_error(folder: Path, command: str) -> None:
    full = character_device(folder, "full")
    with open(full, "wb") as handle:
        result = subprocess.run([*NORMCLI, *command.split()], cwd=folder, stdout=handle, stderr=subprocess.PIPE, text=True, timeout=120)
    assert_one_error(result, 1, "cannot write", "no space left")


# --------------------------------------------------------------------------- links, folders, names


def test_a_symlink_is_followed_and_stays_a_link(folder: Path) -> None:
    (folder / "real.csv").write_text("previous\n")
    (folder / "link.csv").symlink_to("real.csv")
    result = run(["transform", "ok.csv", "-s", "stats.json", "-o", "link.csv"], folder)
    assert result.returncode == 0, result.stderr
    assert (folder / "link.csv").is_symlink() and os.readlink(folder / "link.csv") == "real.csv"
    assert (folder / "real.csv").read_bytes() == (folder / "expected.csv").read_bytes()
    assert no_temporary_files(folder)


def test_a_dangling_symlink_creates_the_file_it_points_to(folder: Path) -> None:
    (folder / "sub").mkdir()
    (folder / "link.json").symlink_to("sub/new.json")
    assert run(["fit", "ok.csv", "-o", "link.json", "-q"], folder).returncode == 0
    assert (folder / "link.json").is_symlink()
    assert (folder / "sub" / "new.json").read_bytes() == (folder / "stats.json").read_bytes()


def test_a_symlink_to_an_input_is_refused(folder: Path) -> None:
    (folder / "alias.csv").symlink_to("ok.csv")
    before = snapshot(folder)
    result = run(["transform", "ok.csv", "-s", "stats.json", "-o", "alias.csv"], folder)
    assert_one_error(result, 2, "output is one of the inputs")
    assert snapshot(folder) == before


@pytest.mark.parametrize("target", ["newdir/", "ok.csv/"])
def test_a_name_ending_in_a_slash_is_refused(folder: Path, target: str) -> None:
    before = snapshot(folder)
    result = run(["fit", "ok.csv", "-o", target], folder)
    assert_one_error(result, 2, "ends in '/'", "names a folder")
    assert snapshot(folder) == before and not (folder / "newdir").exists()


def test_a_long_output_name_is_written(folder: Path) -> None:
    """Names up to the file system's limit work: the temporary name is shortened, not refused."""
    name = "x" * (255 - len(".csv")) + ".csv"
    result = run(["transform", "ok.csv", "-s", "stats.json", "-o", name], folder)
    assert result.returncode == 0, result.stderr
    assert (folder / name).read_bytes() == (folder / "expected.csv").read_bytes()
    multibyte = "é" * 120 + ".json"  # 245 bytes
    assert run(["fit", "ok.csv", "-o", multibyte, "-q"], folder).returncode == 0
    assert (folder / multibyte).read_bytes() == (folder / "stats.json").read_bytes()
    assert no_temporary_files(folder)


def test_a_name_past_the_limit_is_a_clean_error(folder: Path) -> None:
    before = snapshot(folder)
    result = run(["fit", "ok.csv", "-o", "y" * 256 + ".json"], folder)
    assert_one_error(result, 1, "too long", "261 bytes")
    assert snapshot(folder) == before


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604])
def test_a_replaced_file_keeps_its_mode(folder: Path, mode: int) -> None:
    target = folder / "out.csv"
    target.write_text("previous\n")
    target.chmod(mode)
    assert run(["transform", "ok.csv", "-s", "stats.json", "-o", "out.csv"], folder).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_bytes() == (folder / "expected.csv").read_bytes()


def test_a_new_file_gets_the_umask_mode(folder: Path) -> None:
    result = subprocess.run(
        ["bash", "-c", f"umask 027 && {' '.join(NORMCLI)} fit ok.csv -o new.json -q"], cwd=folder, timeout=120
    )
    assert result.returncode == 0
    assert stat.S_IMODE((folder / "new.json").stat().st_mode) == 0o640


def test_a_replaced_file_keeps_its_owner_group_and_attributes(folder: Path) -> None:
    target = folder / "out.json"
    shutil.copy(folder / "stats.json", target)  # fit replaces only stats files (without --force)
    owner = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(target, *owner)
    try:
        os.setxattr(target, "user.origin", b"kept")
        has_xattrs = True
    except OSError as exc:  # a file system without user attributes (tmpfs before 6.6, some overlays)
        assert exc.errno in (errno.ENOTSUP, errno.EPERM), exc
        has_xattrs = False
    assert run(["fit", "ok.csv", "-o", "out.json", "-q"], folder).returncode == 0
    info = target.stat()
    assert (info.st_uid, info.st_gid) == owner
    if has_xattrs:
        assert os.getxattr(target, "user.origin") == b"kept"


# --------------------------------------------------------------------------- one command, several outputs


@pytest.fixture
def classes(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=200), rng.normal(size=200)
    pl.DataFrame({"x1": x1, "x2": x2, "y": (x1 + x2 > 0).astype(int)}).write_csv(folder / "classes.csv")
    return folder


TRAIN = ["train", "classes.csv", "--target", "y", "--epochs", "2"]


def previous_model(folder: Path) -> None:
    """m.npz: a model from an earlier run (train replaces only models without --force)."""
    assert run([*TRAIN, "--epochs", "1", "-o", "m.npz", "-q"], folder).returncode == 0


@pytest.mark.parametrize(
    "outputs",
    [
        ["-o", "m.npz", "--metrics-out", "m.npz"],
        ["-o", "m.npz", "--plot", "m.npz"],
        ["--metrics-out", "model.npz"],  # the default -o
        ["-o", "m.npz", "--metrics-out", "alias.npz"],  # a link to m.npz
        ["-o", "m.npz", "--metrics-out", "./sub/../m.npz"],
        ["-o", "x.json", "--metrics-out", "x.json", "--plot", "y.png"],
    ],
)
def test_one_commands_outputs_must_be_distinct(classes: Path, outputs: list[str]) -> None:
    (classes / "sub").mkdir()
    (classes / "m.npz").write_bytes(b"previous model\n")
    (classes / "alias.npz").symlink_to("m.npz")
    before = snapshot(classes)
    result = run([*TRAIN, *outputs], classes)
    assert_one_error(result, 2, "both name", "its own file")
    assert snapshot(classes) == before


def test_the_plot_cannot_go_to_stdout(classes: Path) -> None:
    """It used to be written to a file named '-'."""
    before = snapshot(classes)
    assert_one_error(run([*TRAIN, "-o", "m.npz", "--plot", "-"], classes), 2, "plot", "stdout")
    assert snapshot(classes) == before


def test_a_failing_stdout_leaves_the_model_as_it_was(classes: Path) -> None:
    """train used to replace model.npz and then fail on stdout (exit 1): now nothing is replaced."""
    previous_model(classes)
    (classes / "m.json").write_bytes(b'{"normcli_version": "0.0.1", "note": "previous metrics"}\n')  # metrics train may replace
    full = character_device(classes, "full")
    before = snapshot(classes)
    with open(full, "wb") as handle:
        result = subprocess.run(
            [*NORMCLI, *TRAIN, "-o", "m.npz", "--metrics-out", "m.json"], cwd=classes, stdout=handle,
            stderr=subprocess.PIPE, text=True, timeout=120,
        )
    assert result.returncode == 1 and "no space left" in result.stderr
    assert snapshot(classes) == before


def test_a_failing_second_output_leaves_the_first_as_it_was(classes: Path) -> None:
    previous_model(classes)
    full = character_device(classes, "full")
    before = snapshot(classes)
    result = run([*TRAIN, "-o", "m.npz", "--metrics-out", str(full)], classes)
    assert_one_error(result, 1, "cannot write", "no space left")
    assert snapshot(classes) == before


def test_all_outputs_appear_together_when_the_command_succeeds(classes: Path) -> None:
    result = run([*TRAIN, "-o", "m.npz", "--metrics-out", "m.json", "--json", "-q"], classes)
    assert result.returncode == 0, result.stderr
    assert (classes / "m.npz").stat().st_size > 0 and (classes / "m.json").read_text() == result.stdout
    assert no_temporary_files(classes)


# --------------------------------------------------------------------------- formats of outputs


@pytest.mark.parametrize("name", ["x.parquet.gz", "x.parquet.zst", "x.pq.gz"])
def test_compressed_parquet_names_are_refused(folder: Path, name: str) -> None:
    before = snapshot(folder)
    assert_one_error(run(["transform", "ok.csv", "-s", "stats.json", "-o", name], folder), 2, "parquet", "compress")
    assert snapshot(folder) == before


@pytest.mark.parametrize(("name", "magic"), [("x.ndjson.zst", b"\x28\xb5\x2f\xfd"), ("x.ndjson.gz", b"\x1f\x8b"), ("x.tsv.gz", b"\x1f\x8b"), ("x.csv.zst", b"\x28\xb5\x2f\xfd")])
def test_compressed_text_outputs_are_compressed(folder: Path, name: str, magic: bytes) -> None:
    for source in (["ok.csv"], []):  # a file, and stdin
        stdin = (folder / "ok.csv").read_bytes() if not source else None
        result = subprocess.run([*NORMCLI, "transform", *source, "-s", "stats.json", "-o", name], cwd=folder, input=stdin, capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
        data = (folder / name).read_bytes()
        assert data.startswith(magic)
        frame = pl.read_ndjson(data) if "ndjson" in name else pl.read_csv(data, separator="\t" if "tsv" in name else ",")
        assert frame.equals(pl.read_csv(folder / "expected.csv"))


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["fit", "ok.csv", "-o", "new.json.gz"], "a stats file"),
        (["merge", "stats.json", "again.json", "--allow-overlap", "-o", "new.json.zst"], "a stats file"),
        (["export", "stats.json", "--to", "sql", "-o", "new.sql.gz"], "an SQL export"),
        (["export", "stats.json", "--to", "onnx", "-o", "new.onnx.zst"], "an ONNX export"),
        (["train", "ok.csv", "--target", "b", "--epochs", "1", "-o", "new.npz.gz"], "a model file"),
        (["train", "ok.csv", "--target", "b", "--epochs", "1", "-o", "new.npz", "--metrics-out", "new.json.gz"], "the metrics file"),
        (["train", "ok.csv", "--target", "b", "--epochs", "1", "-o", "new.npz", "--plot", "new.png.GZ"], "the plot"),
    ],
    ids=["fit", "merge", "export-sql", "export-onnx", "train-model", "train-metrics", "train-plot"],
)
def test_compressed_names_of_outputs_written_uncompressed_are_refused(folder: Path, args: list[str], what: str) -> None:
    """Stats, models, exports, metrics and plots are never compressed: a .gz/.zst name would lie
    about the bytes (it used to be written uncompressed under it), so it is refused before any work."""
    shutil.copy(folder / "stats.json", folder / "again.json")
    before = snapshot(folder)
    assert_one_error(run(args, folder), 2, what, "written uncompressed", "name it without the")
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "args",
    [
        ["export", "stats.json", "--to", "sql"],
        ["export", "stats.json", "--to", "onnx", "-o", "-"],
        ["fit", "ok.csv", "-o", "-"],
        ["inspect", "stats.json"],
        ["check", "ok.csv", "-s", "stats.json", "--json"],
    ],
    ids=["export-sql", "export-onnx", "fit", "inspect", "check"],
)
def test_stdout_on_a_full_device_is_a_clean_error_naming_stdout(folder: Path, args: list[str]) -> None:
    """export wrote its bytes to stdout bare: a full disk ended in 'No space left on device'
    without saying where (the generic OSError line); now as the other commands say it."""
    full = character_device(folder, "full")
    before = snapshot(folder)
    with open(full, "wb") as sink:
        result = subprocess.run([*NORMCLI, *args, "-q"], cwd=folder, stdout=sink, stderr=subprocess.PIPE, text=True, timeout=120)
    assert_one_error(result, 1, "cannot write stdout", "no space left")
    assert snapshot(folder) == before


# --------------------------------------------------------------------------- FIFOs and other streams as inputs


def wait_until_reading(fifo: Path, timeout: float = 60) -> int:
    """Open the FIFO's write end once the process has opened its read end (readiness, not a guess):
    a non-blocking open for writing succeeds only when a reader is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            assert exc.errno == errno.ENXIO
        time.sleep(0.005)
    pytest.fail("normcli never opened the FIFO")


@pytest.mark.parametrize(("sent", "word"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
@pytest.mark.parametrize("command", [["fit", "in.csv", "-o", "out.json"], ["transform", "in.csv", "-s", "stats.json", "-o", "out.csv"]])
def test_a_signal_while_waiting_on_a_fifo_stops_normcli(folder: Path, sent, word: str, command: list[str]) -> None:
    """Death by the signal (after cleaning up), as for any other read: the FIFO is not special."""
    fifo = folder / "in.csv"
    os.mkfifo(fifo)
    before = snapshot(folder)
    process = subprocess.Popen([*NORMCLI, *command], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = wait_until_reading(fifo)
    try:
        os.write(writer, b"a,b\n1,2\n")  # a header and a row, then nothing: normcli waits for more
        process.send_signal(sent)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(writer)
    assert (process.returncode, stderr, stdout) == (-sent, f"normcli: {word}\n", "")
    assert snapshot(folder) == before


def test_process_substitution_and_dev_stdin_are_read(folder: Path) -> None:
    """Read as streams (they cannot be memory-mapped): the statistics are those of the file."""
    expected = json.loads((folder / "stats.json").read_text())
    for source in ("<(cat ok.csv)", "/dev/stdin < ok.csv"):
        result = subprocess.run(["bash", "-c", f"{' '.join(NORMCLI)} fit {source} -o - -q"], cwd=folder, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["inputs"]["files"][0].startswith("/dev/")
        assert doc["columns"] == expected["columns"]


@pytest.fixture
def model_folder(folder: Path) -> Path:
    """``folder`` with model.npz trained (by the real command) to predict b from a."""
    result = run(["train", "ok.csv", "--target", "b", "--features", "a", "--epochs", "1", "--val-split", "0", "-o", "model.npz", "-q"], folder)
    assert result.returncode == 0, result.stderr
    return folder


def test_models_and_stats_from_pipes_are_read_like_their_files(model_folder: Path) -> None:
    """A model is a zip archive, read from its end: from ``<(…)`` or a pipe behind ``/dev/stdin``
    it used to fail with 'not a readable .npz archive'; and ``inspect <(cat stats.json)`` failed
    with 'not valid stats JSON', because telling a model from stats consumed the pipe's first bytes."""
    folder = model_folder
    shell = " ".join(NORMCLI)
    expected = run(["predict", "ok.csv", "--model", "model.npz", "-q"], folder)
    assert expected.returncode == 0, expected.stderr
    for command in (
        f"{shell} predict ok.csv --model <(cat model.npz) -q",
        f"cat model.npz | {shell} predict ok.csv --model /dev/stdin -q",
    ):
        result = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stderr, result.stdout) == (0, "", expected.stdout), command
    for name in ("model.npz", "stats.json"):
        direct = json.loads(run(["inspect", name, "--json"], folder).stdout)
        piped = subprocess.run(["bash", "-c", f"{shell} inspect <(cat {name}) --json"], cwd=folder, capture_output=True, text=True, timeout=120)
        assert (piped.returncode, piped.stderr) == (0, ""), name
        document = json.loads(piped.stdout)
        document.pop("file", None), direct.pop("file", None)
        assert document == direct


def test_a_piped_model_or_stats_file_without_end_is_refused_at_its_limit(folder: Path) -> None:
    """Read whole into memory, a pipe must end: past the limit of what it claims to be, it is refused
    (a stats file's 128 MiB without reading the rest of the stream)."""
    before = snapshot(folder)
    result = subprocess.run(["bash", "-c", f"{' '.join(NORMCLI)} inspect <(cat /dev/zero)"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert_one_error(result, 1, "/dev/fd/", "more than 128 MiB")
    assert snapshot(folder) == before


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], ["export", "--help"]])
def test_help_and_version_into_a_full_disk_or_a_closed_stdout_are_one_error_line(tmp_path: Path, args: list[str]) -> None:
    """``normcli --help > /dev/full`` and ``normcli --help >&-`` printed a traceback, ``--version >&-``
    the generic AttributeError fallback, ``export --help > /dev/full`` the bare OSError text."""
    full = character_device(tmp_path, "full")
    with open(full, "wb") as sink:
        result = subprocess.run([*NORMCLI, *args], cwd=tmp_path, stdout=sink, stderr=subprocess.PIPE, text=True, timeout=120)
    assert_one_error(result, 1, "cannot write stdout", "no space left on the device")
    if args[0] != "export":  # click prints a subcommand's help into a closed stdout as into nothing
        shell = f"{' '.join(NORMCLI)} {' '.join(args)} >&-"
        closed = subprocess.run(["bash", "-c", shell], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert_one_error(closed, 1, "cannot write to stdout: it is closed")
