"""One writer per output folder: a lock file naming its owner, and disk errors made one line.

Locally the lock is ``_imgfeat.lock`` in the output folder, held with ``flock`` while the job
runs: the kernel drops it when the process dies (``kill -9`` included), so a lock file left by a
dead job is stale by construction and the next job simply takes it over. The file holds the
owner's host, pid and start time, which a refused second job names.

Object storage has no locks (and ``fsspec`` no conditional put), so there the rule is **one
writer per output prefix**, documented rather than enforced: a lock object could not tell a
crashed driver (which a Kubernetes Job restarts on another pod, to ``--resume``) from a live one
without a lease protocol. Run one job per prefix (a Kubernetes Job with ``parallelism: 1``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Iterator

from ..errors import StoreError
from ..storage import Location
from ..usage import arg

__all__ = ["LOCK", "OutputLock", "OutputLocked", "writing"]

#: the lock file of an output folder (its underscore keeps it out of the Parquet dataset)
LOCK = "_imgfeat.lock"


class OutputLocked(StoreError):
    """Another live job is writing the output folder."""


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _describe(owner: dict | None) -> str:
    if not owner:
        return "another job"
    return f"another job (pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('started')})"


#: flock unsupported (some network and FUSE file systems): fall back to the owner's pid
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def _alive(owner: dict) -> bool:
    """False only for a process of this host that no longer exists (a stale lock)."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return True
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse(data: bytes) -> dict | None:
    try:
        owner = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return owner if isinstance(owner, dict) else None


#: lock files this process holds: a forked child (a decode worker) closes its copies, so the
#: lock dies with the job even when the job is killed before its workers notice
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


class OutputLock:
    """The lock of one output folder (local or object storage): :meth:`acquire`, :meth:`release`,
    or use it as a context manager."""

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self._fd: int | None = None
        self._made_folder = False
        self._held = False

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise :class:`OutputLocked` naming the job that holds it."""
        if not self.loc.remote:  # object storage: one writer per prefix, by rule (see above)
            self._acquire_local()
        self._held = True

    def _refused(self, owner: dict | None) -> OutputLocked:
        return OutputLocked(f"{self.loc.url} is being written by {_describe(owner)}: wait for it to "
                            f"finish (then {arg('resume', True)} if needed), or choose another output")

    def _acquire_local(self) -> None:
        import fcntl

        folder = self.loc.path
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"output path is a file, not a folder: {folder}")
        self._made_folder = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create output folder {folder}: {exc.strerror or exc}") from None
        path = folder / LOCK
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                raise StoreError(f"cannot lock output folder {folder}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = _parse(os.pread(fd, 4096, 0))
                if exc.errno in _NO_FLOCK and not (owner and _alive(owner)):
                    break  # no flock on this file system: the pid in the file decides; stale: ours
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) or exc.errno in _NO_FLOCK:
                    raise self._refused(owner) from None
                raise StoreError(f"cannot lock output folder {folder}: {exc.strerror or exc}") from None
            try:  # the holder may have removed the file between our open and our lock
                same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_owner()) + "\n").encode(), 0)
        self._fd = fd
        _HELD.add(fd)

    def release(self) -> None:
        """Give the lock up (removing the lock file, and the folder if the job left it empty)."""
        if not self._held:
            return
        self._held = False
        if self.loc.remote:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.loc.path / LOCK)
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)  # drops the flock
            self._fd = None
        if self._made_folder:
            with contextlib.suppress(OSError):
                self.loc.path.rmdir()  # only when empty: a job that wrote nothing leaves nothing


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


@contextlib.contextmanager
def writing(out: str) -> Iterator[None]:
    """Turn an ``OSError`` while writing the output ``out`` (disk full, permission lost, a
    read-only file system) into one :class:`~imgfeat.errors.StoreError` line saying what to do;
    the shards already written stay, and ``--resume`` finishes the job."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, StoreError):  # pragma: no cover - StoreError is not an OSError
            raise
        where = exc.filename or out
        what = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno in _FULL:
            todo = "free space on its disk"
        elif exc.errno in _DENIED:
            todo = "make it writable"
        else:
            todo = "fix it"
        raise StoreError(f"cannot write {where}: {what}; {todo}, then run again with "
                         f"{arg('resume', True)} (finished shards are kept)") from None
