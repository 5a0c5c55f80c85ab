"""Atomic local file writes and JSON helpers (their home is :mod:`imgfeat.storage`; import
them from there: importing this package's modules imports the whole store)."""

from __future__ import annotations

from pathlib import Path

from ..storage import TMP_PREFIX, Location, atomic_path, read_json, write_json

__all__ = ["TMP_PREFIX", "atomic_path", "read_json", "remove_temporaries", "write_json"]


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files left by a killed run; returns how many."""
    return Location(folder).remove_temporaries()
