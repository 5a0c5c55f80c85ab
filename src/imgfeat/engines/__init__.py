"""Engines run shards: ``local`` (in-process, decode workers) and ``ray`` (Ray Data), behind
one :class:`Engine` protocol and a name registry that imports no engine (:mod:`.engine`)."""

from .engine import (
    Engine,
    EngineJob,
    EngineSpec,
    create_engine,
    engine_names,
    register_engine,
    unregister_engine,
)

__all__ = ["Engine", "EngineJob", "EngineSpec", "create_engine", "engine_names",
           "register_engine", "unregister_engine"]
