"""The Ray engine: shards run on a pool of Ray actors, each holding one copy of the model.

Start a local cluster (the default) or join one with ``address``. Image paths must be readable
from every node (a shared file system); array sources travel through Ray's object store. Shards
come back in order and are written by the driver, so resume and atomic writes work as locally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..config import ModelConfig, default_threads
from ..decode import MAX_PIXELS
from ..errors import ConfigError
from ..pipeline import Extractor, Shard, ShardData, decode_batches, run_shard
from ..sources import Source


class ShardWorker:
    """One model per actor; runs whole shards with in-process decoding."""

    def __init__(self, cfg: ModelConfig, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.extractor = Extractor(cfg, device="cpu")

    def run(self, source: Source, shard: Shard, batch_size: int, max_pixels: int) -> ShardData:
        return run_shard(self.extractor, shard, decode_batches(
            source, shard, self.extractor.preprocess, batch_size, max_pixels))


def run_ray(extractor: Extractor, source: Source, shards: list[Shard], *, batch_size: int,
            max_pixels: int = MAX_PIXELS, address: str | None = None,
            threads_per_actor: int | None = None,
            on_batch: Callable[[int], None] | None = None) -> Iterator[ShardData]:
    """Yield the data of each shard, in order, computed by Ray actors."""
    try:
        import ray
        from ray.util import ActorPool
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
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        threads = threads_per_actor or min(4, cpus)
        n_actors = max(1, min(len(shards), cpus // threads))
        actor_cls = ray.remote(num_cpus=threads)(ShardWorker)
        actors = [actor_cls.remote(extractor.cfg, threads) for _ in range(n_actors)]
        source_ref = ray.put(source)
        pool = ActorPool(actors)
        for data in pool.map(lambda a, s: a.run.remote(source_ref, s, batch_size, max_pixels),
                             shards):
            if on_batch:
                on_batch(len(data.items))
            yield data
    finally:
        if started:
            ray.shutdown()
