"""Engines run a function over a plan's fragments and return the results in fragment order.

The local engine runs fragments one after another in this process (Polars uses every core
inside each). The Dask engine maps the same function — :func:`~normcli.scaling.fragments.fragment_stats`
for a fit, a part writer for a transform — over the workers of a running ``distributed``
scheduler. Since the merge that follows is exact and in fragment order, every engine gives
byte-identical statistics, and a transform's parts hold the same rows.

``distributed`` is an optional dependency (``pip install 'normcli[dask]'``), imported only when a
scheduler is named.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from normcli.errors import DataError, UsageError
from normcli.scaling.fragments import Fragment, FragmentStats, fragment_stats

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")

SCHEDULER_ENV = "NORMCLI_SCHEDULER"
WORKER_WAIT_SECONDS = 60.0
"""How long to wait for a scheduler without workers to get one before giving up."""
POLL_SECONDS = 0.01
"""How often the client looks for finished tasks."""
WATCH_SECONDS = 1.0
"""How often, while no task finishes, the client asks the scheduler whether it still has workers."""


class Engine:
    """Maps a function over work items, returning the results in the items' order."""

    distributed = False
    """Whether the work runs in other processes (which must be able to read the inputs)."""
    splits_files = True
    """Whether a fit cuts a large Parquet file into several fragments (ranges of its row groups,
    at block boundaries, so the statistics are the same either way): worth a footer read where
    fragments run in parallel."""

    def run(
        self, function: Callable[[T], R], items: Sequence[T], *, name: str = "task", done: Callable[[R], None] | None = None
    ) -> list[R]:
        """``function`` of each item, in the items' order; ``done`` is told each result as it
        arrives (in order here, as completed on a cluster)."""
        raise NotImplementedError

    def map(self, fragments: Sequence[Fragment], progress: Callable[[int], None] | None = None) -> list[FragmentStats]:
        """The fragment function over ``fragments``: the partial statistics of each, in order.
        ``progress`` is told the rows done so far, as each fragment finishes."""
        return self.run(fragment_stats, fragments, name="fragment", done=_row_counter(progress))

    def close(self) -> None:
        """Release what the engine holds (a cluster connection)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _row_counter(progress: Callable[[int], None] | None) -> Callable[[FragmentStats], None] | None:
    """A ``done`` callback telling ``progress`` the rows of the fragments finished so far."""
    if progress is None:
        return None
    total = 0

    def count(result: FragmentStats) -> None:
        nonlocal total
        total += result.rows
        progress(total)

    return count


class LocalEngine(Engine):
    """Items in order, in this process. Files are not cut into fragments, as one process would
    only read the pieces one after another; ``split_files`` cuts them as a cluster does (the same
    statistics, byte for byte: the tests show it with this)."""

    def __init__(self, *, split_files: bool = False) -> None:
        self.splits_files = split_files

    def run(
        self, function: Callable[[T], R], items: Sequence[T], *, name: str = "task", done: Callable[[R], None] | None = None
    ) -> list[R]:
        results = []
        for item in items:
            results.append(function(item))
            if done is not None:
                done(results[-1])
        return results

    def map(self, fragments: Sequence[Fragment], progress: Callable[[int], None] | None = None) -> list[FragmentStats]:
        """As :meth:`Engine.map`, with ``progress`` told the rows after every block (a fragment
        may be a whole file)."""
        if progress is None:
            return super().map(fragments)
        total = 0

        def block_done(rows: int) -> None:
            nonlocal total
            total += rows
            progress(total)

        return [fragment_stats(fragment, block_done) for fragment in fragments]


class DaskEngine(Engine):
    """Items as tasks on a Dask ``distributed`` cluster; results gathered in order.

    The scheduler is a ``tcp://host:port`` address or a scheduler file (as ``dask scheduler
    --scheduler-file`` writes). On connecting, the engine waits for a worker and checks that every
    worker runs this normcli version (same code, same bits). Tasks whose worker dies are retried
    by Dask (``distributed.scheduler.allowed-failures`` times); if one still fails, the remaining
    tasks are cancelled and the error is reported as one line.
    """

    distributed = True

    def __init__(self, address: str | None = None, scheduler_file: str | None = None, *, client: Client | None = None) -> None:
        """Connect (lazily) to ``address`` or ``scheduler_file``; or use a ``client`` the caller
        made (a dask-gateway or dask-kubernetes cluster's ``get_client()``), left open on close."""
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UsageError(
                "--scheduler needs Dask's distributed package, which is not installed",
                hint="pip install 'normcli[dask]'",
            ) from None
        self.address = address
        self.scheduler_file = scheduler_file
        self.where = address or (f"scheduler file {scheduler_file}" if scheduler_file else str(getattr(client, "scheduler", "")))
        self._client: Client | None = client
        self._owned = client is None
        self._checked = False

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._connect()
        elif not self._checked:
            self._check_versions(self._client)
        self._checked = True
        return self._client

    def _connect(self) -> Client:
        from distributed import Client

        if self.scheduler_file is not None and not os.path.isfile(self.scheduler_file):
            raise DataError(f"{self.scheduler_file}: no such scheduler file", hint="start one with: dask scheduler --scheduler-file PATH")
        try:
            client = Client(self.address, scheduler_file=self.scheduler_file, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise DataError(
                f"cannot reach the Dask scheduler at {self.where}: {reason}",
                hint="check that the scheduler runs and the address is right",
            ) from None
        try:
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except TimeoutError:
                raise DataError(
                    f"the Dask scheduler at {self.where} has no workers (waited {WORKER_WAIT_SECONDS:.0f} s)",
                    hint="start some: dask worker ADDRESS",
                ) from None
            self._check_versions(client)
        except BaseException:
            client.close()
            raise
        return client

    def _check_versions(self, client: Client) -> None:
        from normcli import __version__

        try:
            versions = client.run(worker_version)
        except Exception as exc:  # noqa: BLE001 - a worker that cannot even load normcli
            raise DataError(
                f"the Dask workers at {self.where} cannot run normcli: {' '.join(str(exc).split())[:160]}",
                hint=f"install normcli {__version__} on every worker: pip install 'normcli[dask]=={__version__}'",
            ) from None
        here = worker_version()
        other = {worker: v for worker, v in versions.items() if tuple(v) != here}
        if other:
            worker, version = next(iter(other.items()))
            raise DataError(
                f"Dask worker {worker} runs normcli {version[0]} with Polars {version[1]}; "
                f"this client runs normcli {here[0]} with Polars {here[1]}",
                hint="install the same normcli and Polars versions on the client and every worker",
            )

    def run(
        self, function: Callable[[T], R], items: Sequence[T], *, name: str = "task", done: Callable[[R], None] | None = None
    ) -> list[R]:
        from distributed import as_completed
        from distributed.client import FutureCancelledError

        if not items:
            return []
        client = self.client
        run = uuid.uuid4().hex[:8]
        keys = [f"normcli-{name}-{run}-{index:05d}" for index in range(len(items))]
        futures = client.map(function, items, key=keys, pure=False)
        index_of = {future.key: index for index, future in enumerate(futures)}
        results: list[Any] = [None] * len(items)
        pending = as_completed(futures, loop=client.loop)
        workerless_since: float | None = None
        watched = time.monotonic()
        try:
            while pending.count():
                batch = pending.next_batch(block=False)
                if not batch:
                    if time.monotonic() - watched > WATCH_SECONDS:
                        workerless_since = self._watch_workers(workerless_since, name)
                        watched = time.monotonic()
                    time.sleep(POLL_SECONDS)
                    continue
                for future in batch:
                    index = index_of[future.key]
                    if future.status == "error":
                        raise self._failure(future.exception(), name, index, items[index])
                    results[index] = future.result()
                    if done is not None:
                        done(results[index])
        except FutureCancelledError:
            raise DataError(f"the Dask cluster at {self.where} cancelled the work", hint="check the scheduler's logs") from None
        finally:
            client.cancel([f for f in futures if not f.done()])
        return results

    def _failure(self, error: BaseException, name: str, index: int, item: object) -> BaseException:
        """What a failed task means for the user: a worker-side DataError as it is; a task that
        killed its workers (OOM, a crash) as one line naming the fragment."""
        from distributed.scheduler import KilledWorker

        if isinstance(error, KilledWorker):
            deaths = error.allowed_failures + 1
            return DataError(
                f"running {name} {index} ({_describe(item)}) killed {deaths} Dask worker{'s' if deaths > 1 else ''}",
                hint="check the workers' memory and logs (a fragment too big for a worker?); nothing was written",
            )
        return error

    def _watch_workers(self, since: float | None, name: str) -> float | None:
        """Give up when the cluster has had no worker for :data:`WORKER_WAIT_SECONDS` (tasks would
        wait for one forever); returns since when it has had none."""
        if self.client.nthreads():
            return None
        now = time.monotonic()
        if since is None:
            return now
        if now - since > WORKER_WAIT_SECONDS:
            raise DataError(
                f"every Dask worker at {self.where} left while running {name}s, and none came back "
                f"within {WORKER_WAIT_SECONDS:.0f} s",
                hint="check the workers' logs and memory; nothing was written",
            )
        return since

    def close(self) -> None:
        if self._client is not None and self._owned:
            self._client.close()
        self._client = None

    def map(self, fragments: Sequence[Fragment], progress: Callable[[int], None] | None = None) -> list[FragmentStats]:
        check_shippable(fragments)
        return super().map(fragments, progress)


def check_shippable(fragments: Sequence[Fragment]) -> None:
    """Refuse work a cluster cannot do: streams (read once, here) and quantile columns (every
    value would travel to the client; medians and IQRs do not merge exactly)."""
    for fragment in fragments:
        if fragment.reader is not None or fragment.data is not None or fragment.source.path is None:
            raise UsageError(
                f"{fragment.source.display}: a stream cannot be read by Dask workers",
                hint="name files or URLs the workers can read, or leave out --scheduler",
            )
    robust = list(dict.fromkeys(c.name for f in fragments for c in f.columns if c.keep_values))
    if robust:
        names = ", ".join(f"'{n}'" for n in robust[:10]) + (" …" if len(robust) > 10 else "")
        raise UsageError(
            f"robust (median/IQR) cannot be fitted on a cluster: column{'s' if len(robust) > 1 else ''} {names}",
            hint="quantiles do not merge exactly; fit them without --scheduler, or choose another --method-for",
        )


def _describe(item: object) -> str:
    source = getattr(item, "source", None) or getattr(getattr(item, "fragment", None), "source", None)
    if source is None:
        return "?"
    rows = getattr(item, "rows", None) or getattr(getattr(item, "fragment", None), "rows", None)
    return source.display + (f", rows {rows[0]}–{rows[0] + rows[1] - 1}" if rows else "")


def worker_version() -> tuple[str, str]:
    """The normcli and Polars versions a worker runs (checked against the client's: the same code
    reads and sums the same bits)."""
    from importlib.metadata import version

    from normcli import __version__

    return __version__, version("polars")


def engine_for(scheduler: str | None = None, scheduler_file: str | None = None) -> Engine:
    """The engine for the command line: Dask if a scheduler is named (``--scheduler``,
    ``--scheduler-file`` or ``NORMCLI_SCHEDULER``), else local.

    ``scheduler`` is an address (``tcp://host:8786``, ``tls://...``) or the path of a scheduler
    file; giving both options is a usage error.
    """
    if scheduler and scheduler_file:
        raise UsageError("give --scheduler or --scheduler-file, not both")
    if scheduler is None and scheduler_file is None:
        scheduler = os.environ.get(SCHEDULER_ENV) or None
    if scheduler_file is not None:
        return DaskEngine(scheduler_file=scheduler_file)
    if scheduler is None:
        return LocalEngine()
    if "://" in scheduler or not (os.path.isfile(scheduler) or scheduler.endswith(".json")):
        return DaskEngine(address=scheduler)
    return DaskEngine(scheduler_file=scheduler)
