"""Dataset folders: an output written as one part per fragment, published all at once.

``-o out/`` (a folder, or a prefix in a bucket: ``s3://b/out/``) receives ``part-00000.parquet``,
``part-00001.parquet``… — one per input fragment, numbered in fragment order — and a ``_SUCCESS``
manifest. The protocol is the one Spark and Hadoop users know:

1. the target must not exist or be empty (nothing is overwritten);
2. every part is written under ``out/_temporary/<run>/`` (by whichever process or Dask worker
   computes it; readers skip names starting with ``_``);
3. when every part is written, each is moved to ``out/part-NNNNN.<ext>`` (a rename on a file
   system; a server-side copy and delete on an object store, 32 at a time);
4. ``_SUCCESS`` is written last: a JSON manifest of the parts, their rows and inputs.

A failed or interrupted run removes what it wrote (temporary and moved parts, the folder if it
made it), so there is never a ``_SUCCESS`` beside a half dataset. A run killed with SIGKILL
cannot clean up: it leaves ``_temporary/`` (or, if killed while moving parts, some parts) but
never ``_SUCCESS``, and the non-empty folder is refused by the next run until it is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normcli.data.storage import StorageOptions, Store, is_url, split_url
from normcli.errors import DataError, UsageError

SUCCESS = "_SUCCESS"
TEMPORARY = "_temporary"


def is_dataset_target(output: str) -> bool:
    """Whether ``-o`` names a dataset folder: it ends with ``/`` (an existing folder named without
    it stays an error, as for any output file)."""
    return output.endswith("/")


@dataclass
class PartInfo:
    """One written part: its name in the folder, its rows (if known) and where they came from."""

    name: str
    input: str
    rows: int | None = None
    input_rows: tuple[int, int] | None = None


@dataclass
class DatasetWriter:
    """Writes a dataset folder by the protocol of this module's docstring.

    Use as a context manager: :meth:`part` gives each part's temporary location, :meth:`commit`
    publishes them; leaving the block by an exception (or Ctrl-C) before :meth:`commit` finishes
    removes everything written.
    """

    target: str
    extension: str
    storage: StorageOptions = ()
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _created: bool = False
    _moved: list[str] = field(default_factory=list)
    _committed: bool = False

    def __post_init__(self) -> None:
        self.target = self.target.rstrip("/") or "/"
        self.url = is_url(self.target)
        # absolute, so that Dask workers in other folders write into the same one
        self.location = self.target if self.url else os.path.abspath(self.target)

    # ------------------------------------------------------------------ locations

    def _join(self, *names: str) -> str:
        return "/".join([self.location, *names])

    def part_name(self, index: int) -> str:
        return f"part-{index:05d}.{self.extension}"

    def part(self, index: int) -> str:
        """The temporary location of part ``index`` (a path or a URL), for its writer."""
        return self._join(TEMPORARY, self.run, self.part_name(index))

    # ------------------------------------------------------------------ protocol

    def __enter__(self) -> DatasetWriter:
        self._check_empty()
        if not self.url:
            if not os.path.isdir(self.location):
                parent = os.path.dirname(self.target) or "."
                if not os.path.isdir(parent):
                    raise DataError(f"{self.target}/: output folder '{parent}' does not exist", hint="create it first")
                try:
                    os.mkdir(self.location)
                except OSError as exc:
                    raise DataError(f"cannot create {self.target}/: {exc.strerror or exc}", hint="choose another -o") from None
                self._created = True
            os.makedirs(self._join(TEMPORARY, self.run), exist_ok=True)
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if kind is not None or not self._committed:
            self.abort()

    def _check_empty(self) -> None:
        if self.url:
            store, key = Store.of(self.target, self.storage)
            if store.keys(key + "/"):
                raise DataError(f"{self.target}/: already holds objects", hint="write to a new prefix, or delete it first")
            return
        if os.path.exists(self.target) and not os.path.isdir(self.target):
            raise DataError(f"{self.target}: is a file, not a folder", hint="name a new folder, ending in /")
        if os.path.isdir(self.target) and os.listdir(self.target):
            raise DataError(f"{self.target}/: folder is not empty", hint="write to a new folder, or remove it first")

    def commit(self, parts: Sequence[PartInfo], manifest: dict[str, Any]) -> None:
        """Move every part into place, in order, then write ``_SUCCESS`` (the manifest) last."""
        if self.url:
            store, base = Store.of(self.target, self.storage)
            moves = [(split_url(self.part(index))[1], f"{base}/{part.name}") for index, part in enumerate(parts)]
            self._moved.extend(target for _, target in moves)  # before moving: abort deletes them all
            from concurrent.futures import ThreadPoolExecutor

            from normcli.data.storage import PLANNING_THREADS

            with ThreadPoolExecutor(max_workers=PLANNING_THREADS, thread_name_prefix="normcli-commit") as pool:
                list(pool.map(lambda move: store.rename(*move), moves))
        else:
            for index, part in enumerate(parts):
                os.replace(self.part(index), self._join(part.name))
                self._moved.append(self._join(part.name))
            shutil.rmtree(self._join(TEMPORARY), ignore_errors=True)
        document = {**manifest, "parts": [_part_json(p) for p in parts]}
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if self.url:
            store.put(f"{base}/{SUCCESS}", text.encode())
        else:
            from normcli.data.outputs import atomic_write_bytes

            atomic_write_bytes(self._join(SUCCESS), text.encode())
        self._committed = True

    def abort(self) -> None:
        """Remove what this run wrote: temporary parts, moved parts, the folder if it made it."""
        try:
            if self.url:
                store, base = Store.of(self.target, self.storage)
                store.delete([*store.keys(f"{base}/{TEMPORARY}/{self.run}/"), *self._moved])
            else:
                shutil.rmtree(self._join(TEMPORARY, self.run), ignore_errors=True)
                for path in self._moved:
                    Path(path).unlink(missing_ok=True)
                temporary = self._join(TEMPORARY)
                if os.path.isdir(temporary) and not os.listdir(temporary):
                    os.rmdir(temporary)
                if self._created and os.path.isdir(self.location) and not os.listdir(self.location):
                    os.rmdir(self.location)
        except Exception:  # noqa: BLE001 - cleaning up must not hide the error that caused it
            pass
        self._moved.clear()


def _part_json(part: PartInfo) -> dict[str, Any]:
    return {
        "name": part.name,
        "rows": part.rows,
        "input": part.input,
        "input_rows": list(part.input_rows) if part.input_rows else None,
    }


def check_dataset_format(name: str | None) -> str:
    """The format of a dataset's parts: ``--output-format``, else Parquet."""
    from normcli.data.formats import FORMATS

    if name is not None and name not in FORMATS:
        raise UsageError(f"unknown output format '{name}'", hint=f"choose one of: {', '.join(FORMATS)}")
    return name or "parquet"
