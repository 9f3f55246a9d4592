"""Object storage: inputs and outputs named by URL (``s3://``, ``gs://``, ``az://``, ``http(s)://``).

Polars reads and writes such URLs itself; this module does what Polars does not expose: expand a
glob by listing the bucket, look at an object's first bytes (format sniffing, the error path's
second look), read a Parquet footer, and put, rename, list and delete objects for outputs. It
uses `obstore`, the Python binding of the same Rust ``object_store`` crate Polars uses, so both
read the providers' standard environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_ACCOUNT_NAME``...) and the same
``--storage-option KEY=VALUE`` keys.

URLs stay strings throughout: ``Path("s3://b/k")`` would be ``s3:/b/k``. Every failure of the
store becomes one line naming the URL: no such object or bucket, access denied (403), an empty
glob, a store that cannot be reached.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from normcli.errors import DataError, UsageError

if TYPE_CHECKING:
    import pyarrow.parquet as pq

T = TypeVar("T")
R = TypeVar("R")

StorageOptions = tuple[tuple[str, str], ...]
"""``--storage-option KEY=VALUE`` pairs: hashable and picklable, so they travel with a fragment."""

SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "adl", "http", "https")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")

CLIENT_KEYS = frozenset(
    {
        "allow_http", "allow_invalid_certificates", "connect_timeout", "default_content_type",
        "http1_only", "http2_only", "http2_keep_alive_interval", "http2_keep_alive_timeout",
        "http2_keep_alive_while_idle", "http2_max_frame_size", "pool_idle_timeout",
        "pool_max_idle_per_host", "proxy_url", "proxy_ca_certificate", "proxy_excludes",
        "timeout", "user_agent", "randomize_addresses",
    }
)  # fmt: skip
"""HTTP client settings (object_store's ``ClientConfigKey``), as opposed to a provider's keys."""

CREDENTIAL_HINT = {
    "s3": "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, or pass --storage-option",
    "gcs": "check GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT, or pass --storage-option",
    "azure": "check AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY (or a SAS token), or pass --storage-option",
    "http": "check that the server allows this request",
}


def is_url(name: str | Any) -> bool:
    """Whether an input or output name is a URL (any ``scheme://``; unknown schemes are refused
    by :func:`check_scheme`, so that ``ftp://x`` is not taken for a local file)."""
    return isinstance(name, str) and _URL.match(name) is not None


def check_scheme(url: str) -> str:
    """The URL's scheme, if normcli can read it; else a usage error listing those it can."""
    match = _URL.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme not in SCHEMES:
        raise UsageError(f"{url}: unsupported URL scheme '{scheme}://'", hint=f"use one of: {', '.join(s + '://' for s in SCHEMES)}")
    return scheme


def split_url(url: str) -> tuple[str, str]:
    """``(root, key)``: the bucket (or host) part and the object key, e.g. ``("s3://b", "d/x.csv")``."""
    check_scheme(url)
    scheme, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    return f"{scheme}://{bucket}", key


def join_url(root: str, key: str) -> str:
    return f"{root}/{key}"


PROVIDER_PREFIX = {"s3": "aws_", "gcs": "google_", "azure": "azure_"}


def options_for(url: str, storage: StorageOptions) -> StorageOptions:
    """The pairs that concern ``url``'s provider: its own keys (``aws_...`` for S3), the HTTP client
    keys, and unprefixed keys; another provider's keys are left out, so one command can read
    from one cloud and write to another."""
    own = PROVIDER_PREFIX.get(_kind(url))
    others = tuple(p for p in PROVIDER_PREFIX.values() if p != own)
    return tuple((k, v) for k, v in storage if not k.lower().startswith(others))


def polars_options(path: str, storage: StorageOptions) -> dict[str, str] | None:
    """The ``storage_options`` argument of Polars' readers and writers for ``path`` (None: the
    environment's settings only, and always for local files)."""
    if not storage or not is_url(path):
        return None
    return dict(options_for(path, storage)) or None


# --------------------------------------------------------------------------- failures


def failure(exc: BaseException, url: str) -> DataError | None:
    """A one-line error for a store failure at ``url`` (from obstore or Polars), or None if
    ``exc`` is not one."""
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    kind = _kind(url)
    try:
        import obstore.exceptions as oe

        denied: tuple[type, ...] = (PermissionError, oe.PermissionDeniedError, oe.UnauthenticatedError)
        missing: tuple[type, ...] = (FileNotFoundError, oe.NotFoundError)
        store_error: tuple[type, ...] = (oe.BaseError,)
    except ImportError:  # pragma: no cover - obstore is a dependency
        denied, missing, store_error = (PermissionError,), (FileNotFoundError,), ()
    if isinstance(exc, denied) or " 403 " in text or "403 Forbidden" in text:
        return DataError(f"{url}: access denied (403)", hint=CREDENTIAL_HINT.get(kind, "check the credentials"))
    if " 401 " in text or "401 Unauthorized" in text:
        return DataError(f"{url}: not authenticated (401)", hint=CREDENTIAL_HINT.get(kind, "check the credentials"))
    if isinstance(exc, missing) or "404 Not Found" in text:
        return DataError(f"{url}: no such object", hint="check the URL (bucket and key)")
    if isinstance(exc, store_error) or "object-store error" in text or "error sending request" in text.lower():
        return DataError(f"{url}: the store failed: {_shorten(first)}", hint="check the URL, the endpoint and the network")
    return None


def _shorten(text: str, limit: int = 200) -> str:
    text = re.sub(r"^object-store error: ", "", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    return {"s3a": "s3", "gs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure", "adl": "azure", "https": "http"}.get(scheme, scheme)


@contextlib.contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Turn a store failure while working on ``url`` into a one-line :class:`DataError`."""
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        error = failure(exc, url)
        if error is None:
            raise
        raise error from exc


# --------------------------------------------------------------------------- the store


class Store:
    """One bucket (or HTTP host) of an object store, configured from the environment and the
    ``--storage-option`` pairs; keys are relative to the bucket."""

    def __init__(self, root: str, storage: StorageOptions = ()) -> None:
        from obstore.store import from_url

        self.root = root
        config: dict[str, str] = {}
        client: dict[str, str] = {}
        for key, value in options_for(root, storage):
            bare = re.sub(r"^(aws|google|azure)_", "", key.lower())
            if bare in CLIENT_KEYS:
                client[bare] = value
            else:
                config[key.lower()] = value
        try:
            self._store = from_url(root, client_options=client or None, **config)
        except BaseException as exc:  # obstore panics (a BaseException) on some foreign keys
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise UsageError(
                f"--storage-option: not valid for {root}: {_shorten(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}",
                hint="use the keys of the store's provider, e.g. aws_endpoint_url, aws_region, allow_http",
            ) from None

    @classmethod
    def of(cls, url: str, storage: StorageOptions = ()) -> tuple[Store, str]:
        """The store holding ``url``, and the key of ``url`` in it."""
        root, key = split_url(url)
        return cls(root, storage), key

    def url(self, key: str) -> str:
        return join_url(self.root, key)

    def size(self, key: str) -> int:
        """The object's size in bytes (a missing object or bucket, or a denial, is a DataError)."""
        import obstore

        with store_errors(self.url(key)):
            try:
                return int(obstore.head(self._store, key)["size"])
            except FileNotFoundError:
                raise self._missing(key) from None

    def _missing(self, key: str) -> DataError:
        """No such object: say whether the bucket itself is missing (one listing, error path only)."""
        import obstore

        try:
            next(iter(obstore.list(self._store, None, chunk_size=1)), None)
        except Exception as exc:  # noqa: BLE001 - any failure to list the bucket
            if "404" in str(exc) or isinstance(exc, FileNotFoundError):
                bucket = self.root.split("://", 1)[1]
                return DataError(f"{self.url(key)}: no such bucket '{bucket}'", hint="check the bucket name and the endpoint")
        return DataError(f"{self.url(key)}: no such object", hint="check the URL (bucket and key)")

    def head_bytes(self, key: str, count: int) -> bytes:
        """The object's first ``count`` bytes (fewer if it is shorter)."""
        import obstore

        size = self.size(key)
        if size == 0:
            return b""
        with store_errors(self.url(key)):
            return bytes(obstore.get_range(self._store, key, start=0, end=min(count, size)))

    def open(self, key: str) -> IO[bytes]:
        """A seekable binary file of the object (ranged requests, buffered), usable by gzip,
        io.TextIOWrapper and pyarrow."""
        import obstore

        with store_errors(self.url(key)):
            return io.BufferedReader(_RawObject(obstore.open_reader(self._store, key)), buffer_size=1 << 20)

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a listing; an empty list if there is none)."""
        import obstore

        with store_errors(self.url(prefix)):
            return sorted(meta["path"] for batch in obstore.list(self._store, prefix or None) for meta in batch)

    def put(self, key: str, data: bytes) -> None:
        """Write one object in a single request: visible whole or not at all."""
        import obstore

        with store_errors(self.url(key)):
            obstore.put(self._store, key, data)

    def rename(self, source: str, target: str) -> None:
        """Move an object (a server-side copy and a delete on S3 and GCS)."""
        import obstore

        with store_errors(self.url(source)):
            obstore.rename(self._store, source, target)

    def delete(self, keys: Sequence[str]) -> None:
        import obstore

        if keys:
            with store_errors(self.url(keys[0])):
                obstore.delete(self._store, list(keys))


class _RawObject(io.RawIOBase):
    """obstore's ReadableFile as a standard raw binary file (it is neither a context manager nor
    an io.IOBase)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = bytes(self._handle.read(len(buffer)))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._handle.seek(offset, whence))

    def tell(self) -> int:
        return int(self._handle.tell())

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


# --------------------------------------------------------------------------- operations on URLs

PLANNING_THREADS = 32
"""Requests in flight while planning (sniffing, schemas, footers): a store answers each in tens of
milliseconds, so 10,000 objects one after another would take minutes."""


def concurrently(function: Callable[[T], R], items: Sequence[T], names: Sequence[str]) -> list[R]:
    """``function`` over ``items`` in order; in a thread pool when some of ``names`` (the items'
    paths) are URLs, whose latency is worth overlapping. The first failure in order is raised."""
    if len(items) < 2 or not any(is_url(n) for n in names):
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(PLANNING_THREADS, len(items)), thread_name_prefix="normcli-plan") as pool:
        return list(pool.map(function, items))



def expand_url(pattern: str, storage: StorageOptions = ()) -> list[str]:
    """A URL glob expanded by listing the bucket (sorted), or the URL itself.

    ``*`` and ``?`` stay within one path segment, ``**`` crosses segments, ``[...]`` is a set,
    as in Polars' own globbing. An empty match is a :class:`DataError`.
    """
    if not _has_magic(pattern):
        return [pattern]
    if pattern.split("://", 1)[0].lower() in ("http", "https"):
        raise UsageError(f"{pattern}: an HTTP server cannot be listed, so globs do not work there", hint="name each URL")
    store, key = Store.of(pattern, storage)
    literal = re.split(r"[*?\[]", key, maxsplit=1)[0]
    prefix = literal[: literal.rfind("/") + 1]
    matcher = re.compile(_glob_regex(key))
    matches = [store.url(k) for k in store.keys(prefix) if matcher.fullmatch(k)]
    if not matches:
        raise DataError(f"no object matches '{pattern}'", hint="check the pattern, the bucket and the prefix")
    return matches


def _has_magic(text: str) -> bool:
    return re.search(r"[*?\[]", text.split("://", 1)[-1]) is not None


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def read_head(url: str, count: int, storage: StorageOptions = ()) -> bytes:
    """The first ``count`` bytes of the object at ``url`` (checks it exists and may be read)."""
    store, key = Store.of(url, storage)
    return store.head_bytes(key, count)


def open_url(url: str, storage: StorageOptions = ()) -> IO[bytes]:
    store, key = Store.of(url, storage)
    return store.open(key)


def write_url(url: str, data: bytes, storage: StorageOptions = ()) -> None:
    """Write ``data`` to ``url`` in one request: readers see the old object or the new, never a part."""
    store, key = Store.of(url, storage)
    store.put(key, data)


def upload_file(url: str, path: str, storage: StorageOptions = ()) -> None:
    """Upload a local file to ``url`` (multipart when large; published only once complete)."""
    import obstore

    store, key = Store.of(url, storage)
    with store_errors(url):
        obstore.put(store._store, key, Path(path))


def read_url(url: str, storage: StorageOptions = ()) -> bytes:
    """The whole object at ``url`` (for small ones: a stats file)."""
    store, key = Store.of(url, storage)
    store.size(key)  # a missing object or bucket, or a denial, named as such
    with store_errors(url), store.open(key) as handle:
        return bytes(handle.read())


def parquet_metadata(url: str, storage: StorageOptions = ()) -> pq.FileMetaData:
    """A Parquet file's footer (row groups, row counts), read with two ranged requests."""
    import pyarrow.parquet as pq

    with store_errors(url), open_url(url, storage) as handle:
        return pq.read_metadata(handle)
