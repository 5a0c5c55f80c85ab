"""Engines as plug-ins: the :class:`Engine` protocol and a name registry that imports no engine
(so the command line lists engines without importing torch or Ray).

An engine runs shards: :meth:`Engine.start` begins acquiring what it needs (it may return before
that is ready: a Ray cluster starts while the driver lists the source and builds the network),
:meth:`Engine.run` yields each shard's data as it finishes, in any order, and
:meth:`Engine.close` releases everything. The runner writes each shard as it comes, so resume,
whole-object writes and the strict stop work alike for every engine.

A new engine is one module and one line in ``_BUILTIN`` (or a :func:`register_engine` call).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..batches import Shard, ShardData, ShardUnavailable
    from ..pipeline import Extractor
    from ..sources import Source


@dataclass
class EngineJob:
    """What every engine is given to run: the driver's network, the source that reads the
    items, and how to batch and decode them."""

    extractor: Extractor
    source: Source
    batch_size: int
    #: images with more pixels are refused (a recorded failure)
    max_pixels: int
    #: decode worker processes (an engine that decodes elsewhere may ignore it)
    workers: int = 0
    #: ``pil`` (decode workers decode) or ``torchvision`` (JPEGs decoded in batches on the
    #: network's device: :mod:`imgfeat.device_jpeg`); an engine may decode with PIL regardless
    jpeg_decoder: str = "pil"
    #: processes that run the network (the local engine; 1: in the engine's own process)
    compute_processes: int = 1
    #: called with the number of images of each batch (or shard) done, for a progress bar
    on_batch: Callable[[int], None] | None = None

    @property
    def decodes_here(self) -> bool:
        """No decode workers and no device decoder: the items are decoded where the network
        runs (in the engine's process, or in each compute process)."""
        return self.workers == 0 and self.jpeg_decoder != "torchvision"

    def progress(self, n: int) -> None:
        if self.on_batch is not None:
            self.on_batch(n)


@runtime_checkable
class Engine(Protocol):
    """Runs shards. Made by :func:`create_engine` (which checks its options), then
    ``start()``, ``run()`` (once or more), ``close()`` (always, even after an error)."""

    name: str

    def start(self) -> None:
        """Begin acquiring resources (may return before they are ready)."""

    def run(self, job: EngineJob, shards: list[Shard]
            ) -> Iterator[ShardData | ShardUnavailable]:
        """Yield each shard's data as it finishes (any order); a shard whose storage stayed
        unavailable is yielded as :class:`~imgfeat.batches.ShardUnavailable`."""
        ...

    def close(self) -> None:
        """Release everything :meth:`start` and :meth:`run` acquired."""


@dataclass(frozen=True)
class EngineSpec:
    """A registered engine: its name, its class (``"module:Class"``, imported when first made,
    or the class itself) and the engine-specific options of ``extract()`` it takes."""

    name: str
    factory: str | Callable[..., Engine]
    options: tuple[str, ...] = ()
    help: str = ""

    def load(self) -> Callable[..., Engine]:
        if isinstance(self.factory, str):
            module, _, attr = self.factory.partition(":")
            return getattr(importlib.import_module(module), attr)
        return self.factory


_BUILTIN = {spec.name: spec for spec in (
    EngineSpec("local", "imgfeat.engines.local:LocalEngine", (),
               "this machine: decode workers beside the model"),
    EngineSpec("ray", "imgfeat.engines.ray:RayEngine",
               ("ray_address", "gpus_per_worker", "ray_max_actors"),
               "a Ray cluster (the ray extra)"),
)}
_ENGINES: dict[str, EngineSpec] = dict(_BUILTIN)


def register_engine(spec: EngineSpec) -> EngineSpec:
    """Make an engine available by its name to ``extract(engine=…)``."""
    _ENGINES[spec.name] = spec
    return spec


def unregister_engine(name: str) -> None:
    """Forget an engine registered with :func:`register_engine` (built-ins come back)."""
    if name in _BUILTIN:
        _ENGINES[name] = _BUILTIN[name]
    else:
        _ENGINES.pop(name, None)


def engine_names() -> tuple[str, ...]:
    """The registered engines' names (importing none of them)."""
    return tuple(_ENGINES)


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def create_engine(name: str, options: dict | None = None, *, device: str = "cpu",
                  threads: int | None = None) -> Engine:
    """The engine ``name``, made with ``device``, ``threads`` and the engine-specific
    ``options`` that were given (None, 0 and False are "not given"). An option of another
    engine is a :class:`ConfigError` that names the engine it belongs to."""
    spec = _ENGINES.get(name)
    if spec is None:
        raise ConfigError(f"unknown engine {name!r}: use {' or '.join(_ENGINES)}")
    given = {k: v for k, v in (options or {}).items() if v is not None and v is not False
             and not (isinstance(v, int | float) and v == 0)}
    foreign = [k for k in given if k not in spec.options]
    if foreign:
        owners = sorted({s.name for s in _ENGINES.values() if set(foreign) & set(s.options)})
        where = " or ".join(f"--engine {o}" for o in owners) or "no registered engine"
        verb = "applies" if len(foreign) == 1 else "apply"
        raise ConfigError(f"{' and '.join(_flag(k) for k in foreign)} {verb} to {where} only")
    return spec.load()(device=device, threads=threads, **given)
