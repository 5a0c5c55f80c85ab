"""The Ray engine on Ray Data: one row per pending shard, mapped by an autoscaling actor pool.

The driver builds the network once (weights resolved there, never on the nodes), puts it in
Ray's object store, and every actor checks that it runs the same network by hash. Rows carry a
shard's items; actors read the images themselves (local paths must exist on every node; URLs
work anywhere), so nothing but results comes back. The driver writes each shard as it finishes,
so resume and whole-object writes work as locally. Actor restarts and task retries are on: a
dead actor's shard is simply run again.

A local cluster is started in a background thread (:func:`connect`, called by ``extract`` before
it lists the source and builds the network), so its start-up overlaps the driver's own work.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterator

from ..config import default_threads
from ..decode import MAX_PIXELS
from ..errors import ConfigError
from ..pipeline import Extractor, Shard, ShardData, ShardUnavailable, decode_batches, try_shard
from ..sources import Source

#: Fault injection for tests: an actor that finds this file (holding a shard index) when it is
#: about to run that shard claims the file and dies, once.
FAULT_ENV = "IMGFEAT_RAY_FAULT_FILE"
#: on clusters of at most this many CPUs an actor runs 1 torch thread and the pool holds one
#: actor per CPU (benchmarks/ray_scaling.py, 2 cores: two 1-thread actors 1.11x one 2-thread
#: actor; a second torch thread gains ~1.6x on this model, a second process more)
SMALL_CLUSTER_CPUS = 4

log = logging.getLogger(__name__)


def _ray():
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
        ray = _ray()
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
            _ray().shutdown()
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


def network_digest(extractor: Extractor) -> str:
    """A hash of the network's parameters and buffers (what every actor must share)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(extractor.backbone.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _move(extractor: Extractor, device: str) -> Extractor:
    """The shipped network, moved onto this actor's device."""
    import torch

    extractor.device = torch.device(device)
    extractor.backbone = extractor.backbone.to(extractor.device)
    return extractor


def _maybe_die(shard: int) -> None:
    path = os.environ.get(FAULT_ENV)
    if not path or not os.path.isfile(path):
        return
    try:
        with open(path) as fh:
            target = int(fh.read().strip() or -1)
    except (OSError, ValueError):
        return
    if target != shard:
        return
    try:
        os.rename(path, path + ".claimed")  # only one actor wins
    except OSError:
        return
    os._exit(1)


class ShardMapper:
    """Ray Data callable class: each actor holds one copy of the driver's network."""

    def __init__(self, payload, device: str, threads: int):
        import ray
        import torch

        torch.set_num_threads(threads)
        shipped = ray.get(payload) if isinstance(payload, ray.ObjectRef) else payload
        extractor, self.source, digest = pickle.loads(shipped)
        if network_digest(extractor) != digest:
            raise RuntimeError("the network shipped to this actor differs from the driver's")
        self.extractor = _move(extractor, device)
        self.batch_size, self.max_pixels = 0, MAX_PIXELS

    def __call__(self, batch: dict) -> dict:
        out_index, out_data = [], []
        for index, items, size, max_pixels in zip(batch["shard"], batch["items"],
                                                  batch["batch_size"], batch["max_pixels"],
                                                  strict=True):
            _maybe_die(int(index))
            shard = Shard(int(index), pickle.loads(items))
            data = try_shard(self.extractor, shard, decode_batches(
                self.source, shard, self.extractor.preprocess, int(size), int(max_pixels)))
            out_index.append(int(index))
            out_data.append(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        return {"shard": out_index, "data": out_data}


def actor_threads(cpus: int) -> int:
    """Torch threads per actor by default: 1 on clusters of up to ``SMALL_CLUSTER_CPUS`` CPUs
    (one actor per CPU), else 4."""
    return 1 if cpus <= SMALL_CLUSTER_CPUS else min(4, cpus)


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


def run_ray(extractor: Extractor, source: Source, shards: list[Shard], *, batch_size: int,
            max_pixels: int = MAX_PIXELS, address: str | None = None,
            cluster: Cluster | None = None, threads_per_actor: int | None = None,
            gpus_per_actor: float = 0, max_actors: int | None = None,
            on_batch: Callable[[int], None] | None = None
            ) -> Iterator[ShardData | ShardUnavailable]:
    """Yield the data of each shard as it finishes (any order), computed by Ray actors.

    Uses ``cluster`` (from :func:`connect`, stopped by its owner), or connects to ``address`` as
    :class:`Cluster` does (a local cluster started here is stopped at the end). The actor pool
    starts at, and may shrink from, ``max_actors`` (default: as many as the cluster's CPUs, or
    GPUs, hold now). Threads per actor default to 1 on clusters of up to
    ``SMALL_CLUSTER_CPUS`` CPUs, else to 4.
    """
    ray = _ray()
    from ray.data import ActorPoolStrategy, DataContext

    if not shards:
        return
    own = cluster is None
    if own:
        cluster = connect(address)
    try:
        cluster.wait()
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False  # the caller shows its own
        ctx.print_on_execution_start = False
        resources = ray.cluster_resources()
        check_gpus(resources, gpus_per_actor, local=cluster.local)
        cpus = max(1, int(resources.get("CPU", 1)))
        threads = threads_per_actor or actor_threads(cpus)
        fits = int(resources.get("GPU", 0) // gpus_per_actor) if gpus_per_actor else cpus // threads
        n_max = max(1, min(len(shards), max_actors or fits or 1))
        light = copy.copy(source)
        light.items = []  # rows carry their own items; the source only reads them
        payload = ray.put(pickle.dumps((extractor, light, network_digest(extractor)),
                                       protocol=pickle.HIGHEST_PROTOCOL))
        rows = [{"shard": s.index, "items": pickle.dumps(s.items), "batch_size": batch_size,
                 "max_pixels": max_pixels} for s in shards]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            ShardMapper, batch_size=1, batch_format="numpy",
            # autoscaling (down to 1 actor when idle), but all actors asked for at once: the
            # pool's own upscaling waits for a queue to build up, seconds on a short job
            compute=ActorPoolStrategy(min_size=1, max_size=n_max, initial_size=n_max),
            fn_constructor_kwargs={"payload": payload,
                                   "device": "cuda" if gpus_per_actor else "cpu",
                                   "threads": threads},
            # a GPU actor asks for its GPU only (Ray Data calls asking for both experimental)
            num_cpus=None if gpus_per_actor else threads, num_gpus=gpus_per_actor or None)
        # Ray Data's actor pools restart dead actors and retry their tasks by default
        # (max_restarts=-1, max_task_retries=-1 in the pinned versions; tests kill an actor)
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
            data: ShardData | ShardUnavailable = pickle.loads(batch["data"][0])
            if on_batch:
                on_batch(len(data.items))
            yield data
    finally:
        if own:
            cluster.close()
