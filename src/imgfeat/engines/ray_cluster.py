"""The Ray cluster a run uses, apart from the job that runs on it: started (or joined) in a
background thread from the moment it is asked for, so a local cluster's start-up overlaps the
driver's own work; a joined cluster is checked reachable first (Ray retries for minutes)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from ..config import default_threads
from ..errors import ConfigError

log = logging.getLogger(__name__)


def import_ray():
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray engine needs Ray: pip install 'imgfeat[ray]'") from None
    return ray


class Cluster:
    """The Ray cluster a run uses, connected in a background thread from the moment it is made.

    ``address``: a cluster to join (``auto``: the one this node belongs to); without one, the
    cluster this process already joined, else a local one started here (with ``num_cpus``).
    :meth:`close` disconnects what this object connected (stopping a local cluster).
    ``seconds`` is how long ``ray.init`` took (0 when this process was already connected).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        ray = import_ray()
        self.address = address
        self.started = False
        self.seconds = 0.0
        self.local = False
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._release = threading.Event()
        self._thread: threading.Thread | None = None
        if ray.is_initialized():
            self._ready.set()
            return
        self.local = local = address is None and not os.environ.get("RAY_ADDRESS")
        kwargs: dict = {"include_dashboard": False, "log_to_driver": False,
                        "configure_logging": False}
        if local:
            kwargs["num_cpus"] = num_cpus or default_threads()
        self._thread = threading.Thread(target=self._init, args=(ray, kwargs),
                                        name="imgfeat-ray-init", daemon=True)
        self._thread.start()

    def _init(self, ray, kwargs: dict) -> None:
        t0 = time.perf_counter()
        quiet = logging.getLogger("ray._private.worker")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "SIGTERM handler is not set" (not the main thread)
        try:
            if (why := unreachable(self.address)) is not None:  # Ray retries for minutes
                raise ConnectionError(why)
            ray.init(address=self.address, **kwargs)
            self.started = True
        except BaseException as exc:  # noqa: BLE001 - raised again by wait()
            self._error = exc
        finally:
            quiet.setLevel(level)
            self.seconds = time.perf_counter() - t0
            self._ready.set()
        if self.started:
            log.info("Ray cluster %s in %.1f s", "started" if self.local else "joined",
                     self.seconds)
        # Ray's processes die with the thread that started them (their parent-death signal
        # follows the thread): this one lives until close() has stopped them
        self._release.wait()

    def wait(self) -> None:
        """Block until connected; a cluster that cannot be reached is a :class:`ConfigError`."""
        self._ready.wait()
        if isinstance(self._error, ConnectionError):
            raise ConfigError(f"cannot reach the Ray cluster at {self.address}: "
                              f"{self._error}") from None
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the local cluster this object started (a joined one is left running)."""
        with contextlib.suppress(Exception):  # a cluster that never came up: nothing to stop
            self.wait()
        if self.started:
            import_ray().shutdown()
            self.started = False
        self._release.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def unreachable(address: str | None, timeout: float = 5.0) -> str | None:
    """Why a ``host:port`` cluster address takes no connection (None: it does, or the address
    is ``auto``, ``ray://`` or absent, which Ray resolves itself)."""
    if not address or address == "auto" or "://" in address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return f"not HOST:PORT, auto or ray://HOST:PORT ({address!r})"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def connect(address: str | None = None, num_cpus: int | None = None) -> Cluster:
    """Start connecting to (or starting) a Ray cluster in the background; see :class:`Cluster`."""
    return Cluster(address, num_cpus)


def check_gpus(resources: dict, gpus_per_actor: float, *, local: bool) -> None:
    """Refuse GPU actors a local cluster cannot place (Ray would wait for them forever); on a
    joined cluster without GPUs now, warn: its autoscaler may add GPU nodes."""
    if not gpus_per_actor:
        return
    have = float(resources.get("GPU", 0))
    if have >= gpus_per_actor:
        return
    what = f"--gpus-per-worker {gpus_per_actor:g}: the Ray cluster has {have:g} GPU(s)"
    if local:
        raise ConfigError(f"{what} (a local cluster started here has the GPUs torch sees)")
    log.warning("%s now; waiting for its autoscaler to add GPU nodes", what)
