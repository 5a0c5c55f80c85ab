"""The Ray engine on Ray Data: one row per pending shard, mapped by an autoscaling actor pool.

The driver builds the network once (weights resolved there, never on the nodes), puts it in
Ray's object store, and every actor checks that it runs the same network by hash. Rows carry a
shard's items; actors read the images themselves (local paths must exist on every node; URLs
work anywhere), so nothing but results comes back. The driver writes each shard as it finishes,
so resume and whole-object writes work as locally. Actor restarts and task retries are on: a
dead actor's shard is simply run again.
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
from collections.abc import Callable, Iterator

from ..config import default_threads
from ..decode import MAX_PIXELS
from ..errors import ConfigError
from ..pipeline import Extractor, Shard, ShardData, ShardUnavailable, decode_batches, try_shard
from ..sources import Source

#: Fault injection for tests: an actor that finds this file (holding a shard index) when it is
#: about to run that shard claims the file and dies, once.
FAULT_ENV = "IMGFEAT_RAY_FAULT_FILE"


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


def run_ray(extractor: Extractor, source: Source, shards: list[Shard], *, batch_size: int,
            max_pixels: int = MAX_PIXELS, address: str | None = None,
            threads_per_actor: int | None = None, gpus_per_actor: float = 0,
            max_actors: int | None = None,
            on_batch: Callable[[int], None] | None = None
            ) -> Iterator[ShardData | ShardUnavailable]:
    """Yield the data of each shard as it finishes (any order), computed by Ray actors.

    Joins the cluster at ``address`` (``auto``: the one this node belongs to), or the one this
    process already started, or starts a local one (and stops it at the end). The actor pool
    grows from 1 to ``max_actors`` (default: as many as the cluster's CPUs, or GPUs, hold now).
    """
    try:
        import ray
        from ray.data import ActorPoolStrategy, DataContext
    except ImportError:
        raise ConfigError("the ray engine needs Ray: pip install 'imgfeat[ray]'") from None
    if not shards:
        return
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, num_cpus=None if address else default_threads(),
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from None
        started = True
    try:
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False  # the caller shows its own
        ctx.print_on_execution_start = False
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        threads = threads_per_actor or min(4, cpus)
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
            compute=ActorPoolStrategy(min_size=1, max_size=n_max),
            fn_constructor_kwargs={"payload": payload,
                                   "device": "cuda" if gpus_per_actor else "cpu",
                                   "threads": threads},
            num_cpus=threads, num_gpus=gpus_per_actor or None)
        # Ray Data's actor pools restart dead actors and retry their tasks by default
        # (max_restarts=-1, max_task_retries=-1 in the pinned versions; tests kill an actor)
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
            data: ShardData | ShardUnavailable = pickle.loads(batch["data"][0])
            if on_batch:
                on_batch(len(data.items))
            yield data
    finally:
        if started:
            ray.shutdown()
