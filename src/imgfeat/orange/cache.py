"""Vectors the Orange widget computed, kept on disk: keyed by the image file and the configuration.

A row is found again only for the same file (absolute path, size, modification time) and the same
configuration (every model option, the model file's own stat for ``ae:``/``flim:`` models, and
the imgfeat version), so a re-run workflow reads its vectors back instead of computing them.
SQLite keeps every write atomic and lets several Orange windows share one file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["VectorCache", "file_key"]


def file_key(path: str) -> tuple[str, int, int] | None:
    """(absolute path, size, mtime in ns) of an image file, or None when it cannot be read."""
    try:
        st = os.stat(path)
    except (OSError, ValueError, TypeError):
        return None
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


class VectorCache:
    """A SQLite file of float32 vectors by (configuration digest, file key)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("CREATE TABLE IF NOT EXISTS vectors (config TEXT, path TEXT, size INTEGER, "
                    "mtime INTEGER, vector BLOB, PRIMARY KEY (config, path, size, mtime))")
        return con

    def get(self, config: str, keys: Iterable[tuple[str, int, int] | None]
            ) -> list[np.ndarray | None]:
        """The cached vector of each key (None where there is none)."""
        keys = list(keys)
        out: list[np.ndarray | None] = [None] * len(keys)
        con = self._connect()
        try:
            for i, key in enumerate(keys):
                if key is None:
                    continue
                row = con.execute("SELECT vector FROM vectors WHERE config=? AND path=? AND "
                                  "size=? AND mtime=?", (config, *key)).fetchone()
                if row is not None:
                    out[i] = np.frombuffer(row[0], dtype=np.float32)
        finally:
            con.close()
        return out

    def put(self, config: str, rows: Iterable[tuple[tuple[str, int, int], np.ndarray]]) -> None:
        """Store vectors (one transaction: all of them or none)."""
        con = self._connect()
        try:
            with con:
                con.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)",
                                [(config, *key, np.asarray(v, np.float32).tobytes())
                                 for key, v in rows])
        finally:
            con.close()

    def clear(self) -> None:
        """Forget every vector."""
        con = self._connect()
        try:
            with con:
                con.execute("DELETE FROM vectors")
        finally:
            con.close()
        con = sqlite3.connect(self.path)
        try:
            con.execute("VACUUM")
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._connect()
        try:
            return int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        finally:
            con.close()
