"""Engines run shards: ``local`` (in-process, decode workers) and ``ray`` (Ray Data)."""

from .local import run_local

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "run_local"]
