"""The Ray engine on Ray Data: one row per pending shard, mapped by an autoscaling actor pool.

The driver builds the network once (weights resolved there, never on the nodes), puts it in
Ray's object store, and every actor checks that it runs the same network by hash. Rows carry a
shard's items; actors read the images themselves (local paths must exist on every node; URLs
work anywhere), so nothing but results comes back. The runner writes each shard as it finishes,
so resume and whole-object writes work as locally. Actor restarts and task retries are on: a
dead actor's shard is simply run again.

The cluster itself (start, join, stop) is :mod:`.ray_cluster`'s: :meth:`RayEngine.start` asks
for it before the driver lists the source and builds the network, so they overlap.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from collections.abc import Iterator

from ..errors import ConfigError
from ..pipeline import Extractor, Shard, ShardData, ShardUnavailable, decode_batches, try_shard
from ..usage import arg
from .engine import EngineJob
from .ray_cluster import Cluster, check_gpus, connect, import_ray

#: on clusters of at most this many CPUs an actor runs 1 torch thread and the pool holds one
#: actor per CPU (benchmarks/ray_scaling.py, 2 cores: two 1-thread actors 1.11x one 2-thread
#: actor; a second torch thread gains ~1.6x on this model, a second process more)
SMALL_CLUSTER_CPUS = 4


def network_digest(extractor: Extractor) -> str:
    """A hash of what runs the network (every actor must share it): the exported model file,
    or the torch network's parameters and buffers."""
    import torch

    if extractor.compiled is not None:
        return f"{extractor.compiled.runtime}:{extractor.compiled.sha256[:16]}"
    h = hashlib.sha256()
    for name, t in sorted(extractor.backbone.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _move(extractor: Extractor, device: str, threads: int) -> Extractor:
    """The shipped network, moved onto this actor's device (an exported one runs on the CPU,
    with this actor's threads)."""
    import torch

    if extractor.compiled is not None:
        extractor.compiled = extractor.compiled.with_threads(threads)
        return extractor
    extractor.device = torch.device(device)
    extractor.backbone = extractor.backbone.to(extractor.device)
    return extractor


class ShardMapper:
    """Ray Data callable class: each actor holds one copy of the driver's network and runs the
    shards of the rows it is given (:meth:`run_shard`, one shard)."""

    def __init__(self, payload, device: str, threads: int):
        import ray
        import torch

        torch.set_num_threads(threads)
        shipped = ray.get(payload) if isinstance(payload, ray.ObjectRef) else payload
        extractor, self.source, digest = pickle.loads(shipped)
        if network_digest(extractor) != digest:
            raise RuntimeError("the network shipped to this actor differs from the driver's")
        self.extractor = _move(extractor, device, threads)

    def run_shard(self, shard: Shard, batch_size: int, max_pixels: int
                  ) -> ShardData | ShardUnavailable:
        return try_shard(self.extractor, shard, decode_batches(
            self.source, shard, self.extractor.preprocess, batch_size, max_pixels))

    def __call__(self, batch: dict) -> dict:
        out_index, out_data = [], []
        for index, items, size, max_pixels in zip(batch["shard"], batch["items"],
                                                  batch["batch_size"], batch["max_pixels"],
                                                  strict=True):
            data = self.run_shard(Shard(int(index), pickle.loads(items)), int(size),
                                  int(max_pixels))
            out_index.append(int(index))
            out_data.append(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        return {"shard": out_index, "data": out_data}


def actor_threads(cpus: int) -> int:
    """Torch threads per actor by default: 1 on clusters of up to ``SMALL_CLUSTER_CPUS`` CPUs
    (one actor per CPU), else 4."""
    return 1 if cpus <= SMALL_CLUSTER_CPUS else min(4, cpus)


class RayEngine:
    """Shards computed by a Ray Data actor pool, yielded as they finish (any order).

    Joins ``ray_address`` (``auto``: this node's cluster; default: the cluster this process
    joined, else a local one started here and stopped by :meth:`close`). The pool starts at,
    and may shrink from, ``ray_max_actors`` (default: as many as the cluster's CPUs, or GPUs,
    hold now); each actor has ``gpus_per_worker`` GPUs (then it runs on CUDA) and ``threads``
    torch threads (default: 1 on clusters of up to ``SMALL_CLUSTER_CPUS`` CPUs, else 4).
    """

    name = "ray"
    #: the Ray Data callable class each actor runs (a test engine may run a subclass)
    mapper: type[ShardMapper] = ShardMapper

    def __init__(self, device: str = "cpu", threads: int | None = None,
                 ray_address: str | None = None, gpus_per_worker: float = 0,
                 ray_max_actors: int | None = None):
        if device != "cpu":
            raise ConfigError("with --engine ray the driver runs on cpu; use --gpus-per-worker N "
                              "to run the Ray actors on GPUs")
        if gpus_per_worker < 0:
            raise ConfigError(f"{arg('gpus_per_worker', gpus_per_worker)}: must be 0 or more")
        import_ray()  # the extra is installed
        self.address, self.threads = ray_address, threads
        self.gpus_per_actor, self.max_actors = gpus_per_worker, ray_max_actors
        self.cluster: Cluster | None = None

    def start(self) -> None:
        """Start connecting to (or starting) the cluster in the background."""
        if self.cluster is None:
            self.cluster = connect(self.address)

    def close(self) -> None:
        """Disconnect (a local cluster started here is stopped; a joined one is left running)."""
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def run(self, job: EngineJob, shards: list[Shard]) -> Iterator[ShardData | ShardUnavailable]:
        ray = import_ray()
        from ray.data import ActorPoolStrategy, DataContext

        if not shards:
            return
        self.start()
        self.cluster.wait()
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False  # the caller shows its own
        ctx.print_on_execution_start = False
        resources = ray.cluster_resources()
        gpus = self.gpus_per_actor
        check_gpus(resources, gpus, local=self.cluster.local)
        cpus = max(1, int(resources.get("CPU", 1)))
        threads = self.threads or actor_threads(cpus)
        fits = int(resources.get("GPU", 0) // gpus) if gpus else cpus // threads
        n_max = max(1, min(len(shards), self.max_actors or fits or 1))
        light = copy.copy(job.source)
        light.items = []  # rows carry their own items; the source only reads them
        payload = ray.put(pickle.dumps((job.extractor, light, network_digest(job.extractor)),
                                       protocol=pickle.HIGHEST_PROTOCOL))
        rows = [{"shard": s.index, "items": pickle.dumps(s.items), "batch_size": job.batch_size,
                 "max_pixels": job.max_pixels} for s in shards]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            self.mapper, batch_size=1, batch_format="numpy",
            # autoscaling (down to 1 actor when idle), but all actors asked for at once: the
            # pool's own upscaling waits for a queue to build up, seconds on a short job
            compute=ActorPoolStrategy(min_size=1, max_size=n_max, initial_size=n_max),
            fn_constructor_kwargs={"payload": payload, "device": "cuda" if gpus else "cpu",
                                   "threads": threads},
            # a GPU actor asks for its GPU only (Ray Data calls asking for both experimental)
            num_cpus=None if gpus else threads, num_gpus=gpus or None)
        # Ray Data's actor pools restart dead actors and retry their tasks by default
        # (max_restarts=-1, max_task_retries=-1 in the pinned versions; tests kill an actor)
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
            data: ShardData | ShardUnavailable = pickle.loads(batch["data"][0])
            job.progress(len(data.items))
            yield data
