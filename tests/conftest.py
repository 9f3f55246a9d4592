"""Helpers shared by the error catalogue, fault, fuzz, determinism and network tests (imported from
here: pytest puts this folder on sys.path)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
NORMCLI = [sys.executable, "-m", "normcli"]
"""The command line as a real process (the installed console script may not be on PATH)."""

# Subprocesses run the working tree, never a stale installed copy: `python -m normcli` in a test's
# folder would otherwise import whatever `pip install .` put in site-packages.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) with the SHA-256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def previous_output(name: str) -> bytes:
    """The bytes of "a previous, complete output" named ``name``, of the kind normcli may replace:
    a stats file for ``.json`` (fit and merge refuse to replace anything else without --force), a
    model archive for ``.npz`` (likewise for train), an export for ``.sql`` and ``.onnx`` (likewise
    for export), else plain text."""
    import io
    import zipfile

    if name.endswith(".json"):
        return b'{"format": "normcli-stats", "note": "a previous, complete output"}\n'
    if name.endswith(".npz"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:  # a fixed date: the same bytes every time
            archive.writestr(zipfile.ZipInfo("metadata.npy", date_time=(1980, 1, 1, 0, 0, 0)), b"a previous, complete output")
        return buffer.getvalue()
    if name.endswith(".sql"):
        return b"-- normcli: a previous, complete output\n"
    if name.endswith(".onnx"):
        return b"\x08\x08\x12\x07normcli: a previous, complete output"
    return b"a previous, complete output\n"


def rel_err(a, b) -> float:  # noqa: ANN001 - numpy arrays (numpy is imported by the callers)
    """‖a − b‖ / max(‖a‖ + ‖b‖, tiny)."""
    import numpy as np

    a, b = np.ravel(a), np.ravel(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def numeric_grad(f, x, h: float = 1e-6):  # noqa: ANN001, ANN201
    """Central differences of the scalar function f() with respect to the array x (changed in
    place and restored): the independent reference for every backward pass."""
    import numpy as np

    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def step_with_torch(model, loss_fn, ours, twin, theirs, x, y, tol: float) -> None:  # noqa: ANN001
    """One training step of our network and of its torch twin on the same batch (softmax
    cross-entropy), asserting that the two losses agree within ``tol``."""
    import pytest
    import torch

    loss = loss_fn.forward(model.forward(x, training=True), y)
    model.backward(loss_fn.backward())
    ours.step()
    theirs.zero_grad()
    torch_loss = torch.nn.functional.cross_entropy(twin(torch.tensor(x)), torch.tensor(y))
    torch_loss.backward()
    theirs.step()
    assert loss == pytest.approx(torch_loss.item(), rel=tol, abs=tol)


def modules_loaded(argv: list[str], modules: tuple[str, ...], entry: str = "normcli.__main__") -> tuple[list[str], str]:
    """Run ``main()`` of ``entry`` with ``argv`` in a fresh interpreter (the working tree) and
    return which of ``modules`` it imported, and its stdout (for the command's own output)."""
    import subprocess

    code = (
        f"import sys; sys.argv={['normcli', *argv]!r}\n"
        f"from {entry} import main\n"
        "try: main()\n"
        "except SystemExit: pass\n"
        f"print('LOADED', [m for m in {modules!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line = next(line for line in reversed(out.splitlines()) if line.startswith("LOADED "))
    import ast

    return ast.literal_eval(line.removeprefix("LOADED ")), out
