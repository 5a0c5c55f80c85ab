"""Atomic local file writes (temporary file, fsync, rename) and JSON helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..storage import TMP_PREFIX, Location, atomic_path

__all__ = ["TMP_PREFIX", "atomic_path", "read_json", "remove_temporaries", "write_json"]


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files left by a killed run; returns how many."""
    return Location(folder).remove_temporaries()
