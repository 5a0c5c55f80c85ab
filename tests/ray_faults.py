"""A test engine that kills Ray actors: the ray engine with a shard mapper that dies, once, on
the shard named in the file ``FAULT_ENV`` points to (set in the test cluster's environment, so
every actor sees it). Fault injection goes through the engine registry, not into the engine."""

from __future__ import annotations

import os

from imgfeat.engines import EngineSpec, register_engine
from imgfeat.engines.ray import RayEngine, ShardMapper

FAULT_ENV = "IMGFEAT_TEST_RAY_FAULT_FILE"


class DyingMapper(ShardMapper):
    """An actor that finds the fault file naming its shard claims the file and dies."""

    def run_shard(self, shard, batch_size, max_pixels):
        path = os.environ.get(FAULT_ENV)
        if path and os.path.isfile(path):
            try:
                with open(path) as fh:
                    target = int(fh.read().strip() or -1)
                if target == shard.index:
                    os.rename(path, path + ".claimed")  # only one actor wins
                    os._exit(1)
            except (OSError, ValueError):
                pass
        return super().run_shard(shard, batch_size, max_pixels)


class DyingRayEngine(RayEngine):
    name = "ray-dying"
    mapper = DyingMapper


def register() -> str:
    """Register the dying engine (with the ray engine's options); return its name."""
    register_engine(EngineSpec(DyingRayEngine.name, DyingRayEngine,
                               ("ray_address", "gpus_per_worker", "ray_max_actors")))
    return DyingRayEngine.name
