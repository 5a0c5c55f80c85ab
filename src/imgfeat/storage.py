"""Where bytes live: local paths or URLs (``s3://``, ``gs://``, ``az://``, ``https://``) via fsspec.

The one home of URL handling. Local paths never touch fsspec (it is imported lazily, only for a
URL) and keep temp-file + rename; object stores get whole-object writes, so a reader sees an
object entirely or not at all. Transient errors (connection resets, throttling, 5xx) are retried
with backoff; what still fails raises :class:`StorageUnavailableError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

from .errors import ConfigError, StoreError

T = TypeVar("T")

#: scheme -> (pip extra, the fsspec back-end it installs)
BACKENDS = {"s3": ("s3", "s3fs"), "s3a": ("s3", "s3fs"), "gs": ("gcs", "gcsfs"),
            "gcs": ("gcs", "gcsfs"), "az": ("azure", "adlfs"), "abfs": ("azure", "adlfs"),
            "abfss": ("azure", "adlfs"), "http": ("http", "aiohttp"), "https": ("http", "aiohttp")}
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
#: errno values and message fragments of errors worth another try
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ECONNRESET,
                     errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE}
_TRANSIENT_WORDS = ("slowdown", "slow down", "throttl", "toomanyrequests", "too many requests",
                    "serviceunavailable", "service unavailable", "internalerror",
                    "internal error", "timed out", "timeout", "connection", "503", "500", "429")
RETRIES = 5
BACKOFF_S = 0.2
TMP_PREFIX = ".tmp-"


class StorageUnavailableError(StoreError):
    """Storage still failing after retries: the shard is left for ``--resume``, not recorded."""


def is_url(path: object) -> bool:
    """True for ``scheme://…`` strings other than ``file://`` (local paths stay local)."""
    if not isinstance(path, str):
        return False
    m = _URL.match(path)
    return bool(m) and m.group(1).lower() != "file"


def local_path(path: str | os.PathLike) -> Path:
    """A local path, accepting ``file://`` URLs."""
    s = os.fspath(path)
    return Path(s[len("file://"):] if s.startswith("file://") else s)


def join(base: str | os.PathLike, *parts: str) -> str:
    """Join with ``/`` for URLs (``Path`` would collapse ``s3://`` to ``s3:/``), os rules locally."""
    if is_url(base):
        out = str(base)
        for p in parts:
            out = out.rstrip("/") + "/" + p.lstrip("/") if p else out
        return out
    return str(Path(base, *parts))


def resolve(base: str, ref: str) -> str:
    """``ref`` (a relative key, an absolute URL or path) resolved against the folder URL ``base``."""
    if is_url(ref) or ref.startswith("file://"):
        return ref
    if not is_url(base):
        p = Path(ref)
        return str(p if p.is_absolute() else Path(base) / p)
    scheme, rest = base.split("://", 1)
    if ref.startswith("/"):  # absolute key: the same bucket or host
        host = rest.split("/", 1)[0]
        return f"{scheme}://{host}{posixpath.normpath(ref)}"
    return f"{scheme}://{posixpath.normpath(posixpath.join(rest, ref))}"


def parent(url: str) -> str:
    """The folder holding ``url``."""
    if is_url(url):
        scheme, rest = url.rstrip("/").split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest)}"
    return str(local_path(url).parent)


def options_for(scheme: str, storage_options: dict | None) -> dict:
    """The options of one scheme: ``{"s3": {...}, "https": {...}}`` is keyed by scheme; flat
    options apply to the object stores (never to plain ``http(s)://`` reads)."""
    opts = storage_options or {}
    if opts and all(k in BACKENDS or k == "file" for k in opts):
        return dict(opts.get(scheme) or {})
    return {} if scheme in ("http", "https") else dict(opts)


def filesystem(url: str, storage_options: dict | None = None):
    """``(fs, path)`` for a URL: the fsspec back-end, configured with ``storage_options``.

    Credentials come from ``storage_options`` or the back-end's own chain (environment, config
    files, workload identity); imgfeat never writes them anywhere.
    """
    scheme = url.split("://", 1)[0].lower()
    storage_options = options_for(scheme, storage_options)
    try:
        import fsspec
    except ImportError:
        extra = BACKENDS.get(scheme, ("s3", "fsspec"))[0]
        raise ConfigError(f"{scheme}:// paths need fsspec: pip install 'imgfeat[{extra}]'") from None
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError:
        extra, package = BACKENDS.get(scheme, (None, None))
        hint = f"pip install 'imgfeat[{extra}]'" if extra else "install its fsspec back-end"
        raise ConfigError(f"{scheme}:// paths need {package or 'a back-end'}: {hint}") from None
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise ConfigError(f"unknown storage scheme {scheme}://") from None
        raise ConfigError(f"bad storage options for {scheme}://: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"bad storage options for {scheme}://: {exc}") from None


def is_transient(exc: BaseException) -> bool:
    """Worth another try: timeouts, dropped connections, throttling, server errors."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError |
                  NotADirectoryError | FileExistsError):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    status = getattr(exc, "status", None)  # aiohttp's HTTP errors
    if isinstance(status, int) and (status >= 500 or status == 429):
        return True
    name = type(exc).__name__.lower()
    if any(w in name for w in ("timeout", "connection", "throttl", "serverdisconnected")):
        return True
    text = str(exc).lower()
    return isinstance(exc, OSError) and any(w in text for w in _TRANSIENT_WORDS)


def with_retries(fn: Callable[[], T], what: str, retries: int | None = None,
                 backoff_s: float | None = None) -> T:
    """Call ``fn``; retry transient errors with exponential backoff (``RETRIES`` times from
    ``BACKOFF_S`` seconds), then raise :class:`StorageUnavailableError`. Other errors propagate
    at once."""
    retries = RETRIES if retries is None else retries
    backoff_s = BACKOFF_S if backoff_s is None else backoff_s
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                raise
            if attempt == retries:
                raise StorageUnavailableError(
                    f"{what}: still failing after {retries + 1} tries: "
                    f"{type(exc).__name__}: {exc}") from None
            time.sleep(backoff_s * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def read_bytes(path: str | os.PathLike, storage_options: dict | None = None) -> bytes:
    """The whole content of a local file or an object (retried when transient)."""
    if not is_url(path):
        return local_path(path).read_bytes()
    fs, p = filesystem(str(path), storage_options)
    return with_retries(lambda: fs.cat_file(p), f"reading {path}")


class Location:
    """A folder that may be local or remote: relative names in, atomic whole-file writes out."""

    def __init__(self, root: str | os.PathLike, storage_options: dict | None = None):
        self.remote = is_url(root)
        self.storage_options = dict(storage_options or {})
        if self.remote:
            self.url = str(root).rstrip("/")
            self._fs, self._root = filesystem(self.url, self.storage_options)
            self._root = self._root.rstrip("/")
        else:
            self.url = str(local_path(root))
            self.path = local_path(root)

    def __str__(self) -> str:
        return self.url

    def __getstate__(self) -> dict:  # the file system is made again where it is unpickled
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"], state["storage_options"])

    def child(self, *parts: str) -> str:
        """The full path or URL of a name under this folder."""
        return join(self.url, *parts)

    def _key(self, rel: str) -> str:
        return f"{self._root}/{rel}" if rel else self._root

    def exists(self, rel: str = "") -> bool:
        if not self.remote:
            return (self.path / rel).exists()
        return with_retries(lambda: self._fs.exists(self._key(rel)), f"checking {self.child(rel)}")

    def is_file(self, rel: str) -> bool:
        if not self.remote:
            return (self.path / rel).is_file()
        return with_retries(lambda: self._fs.isfile(self._key(rel)), f"checking {self.child(rel)}")

    def listdir(self, rel: str = "") -> list[str]:
        """Names directly under ``rel`` (files and folders); empty when it does not exist."""
        if not self.remote:
            folder = self.path / rel
            return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        key = self._key(rel)

        def ls() -> list[str]:
            try:
                self._fs.invalidate_cache(key)
                return sorted(posixpath.basename(p.rstrip("/"))
                              for p in self._fs.ls(key, detail=False) if p.rstrip("/") != key)
            except FileNotFoundError:
                return []
        return with_retries(ls, f"listing {self.child(rel)}")

    def read_bytes(self, rel: str) -> bytes:
        if not self.remote:
            return (self.path / rel).read_bytes()
        return with_retries(lambda: self._fs.cat_file(self._key(rel)), f"reading {self.child(rel)}")

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a whole file atomically: temp file + fsync + rename locally, one PUT remotely."""
        if not self.remote:
            (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path / rel) as tmp:
                tmp.write_bytes(data)
            return
        self._commit(rel, lambda key: self._fs.pipe_file(key, bytes(data)))

    def _commit(self, rel: str, send: Callable[[str], object]) -> None:
        """Send one whole object to ``rel``'s key (retried), then forget cached listings."""
        key = self._key(rel)
        with_retries(lambda: send(key), f"writing {self.child(rel)}")
        self._fs.invalidate_cache(posixpath.dirname(key))

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary file to fill; it appears whole when the block ends, never if it raises.

        Locally a temporary file renamed into place; remotely a local temporary file, uploaded
        as one object when the block ends (a writable fsspec file would commit a half-written
        buffer on an exception). Memory stays bounded: the back-end reads the file in parts
        (s3fs: one PUT up to 100 MB, above that a multipart upload, invisible until complete).
        """
        if not self.remote:
            (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path / rel) as tmp, open(tmp, "wb") as fh:
                yield fh
            return
        with tempfile.TemporaryDirectory(prefix="imgfeat-upload-") as folder:
            local = os.path.join(folder, posixpath.basename(rel) or "object")
            with open(local, "wb") as fh:
                yield fh
            self._commit(rel, lambda key: self._fs.put_file(local, key))

    def remove(self, rel: str) -> None:
        """Delete a file or a folder tree; a missing one is fine."""
        if not self.remote:
            p = self.path / rel
            if p.is_dir():
                import shutil

                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            return
        key = self._key(rel)

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm(key, recursive=True)
            self._fs.invalidate_cache(posixpath.dirname(key))
        with_retries(rm, f"deleting {self.child(rel)}")

    def makedirs(self) -> None:
        """Create the folder (object stores have no folders: nothing to do)."""
        if not self.remote:
            self.path.mkdir(parents=True, exist_ok=True)

    def remove_temporaries(self) -> int:
        """Delete temporary files left by a killed local run (object stores have none)."""
        if self.remote:
            return 0
        n = 0
        for p in self.path.rglob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
        return n


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it over ``final`` only on success."""
    final = Path(final)
    tmp = final.with_name(f"{TMP_PREFIX}{final.name}.{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write JSON to a local file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())
