"""Formats that keep shards as ``.npz`` files until the job finishes, then merge them into their
own final files (NumPy arrays, an Orange CSV) beside ``features_ids.json``."""

from __future__ import annotations

import io
import json

import numpy as np

from ..batches import ShardData
from ..storage import Location
from .format import Columns, ShardFormat

IDS = "features_ids.json"


class NpzShards(ShardFormat):
    """Shards as ``_parts/part-NNNNN.npz``; a subclass writes and reads the merged vectors."""

    suffix = ".npz"

    def shard_bytes(self, data: ShardData, metadata: dict) -> bytes:
        items = data.items
        buf = io.BytesIO()
        np.savez(buf, vectors=data.vectors, ok=data.ok,
                 ids=np.array([it.id for it in items], dtype=str),
                 paths=np.array([it.path or "" for it in items], dtype=str),
                 labels=np.array([it.label or "" for it in items], dtype=str),
                 has_label=np.array([it.label is not None for it in items]),
                 splits=np.array([it.split or "" for it in items], dtype=str),
                 errors=np.array([e or "" for e in data.errors], dtype=str))
        return buf.getvalue()

    def read_shard(self, raw: bytes) -> Columns:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            has = z["has_label"]
            return {"ids": z["ids"].tolist(), "paths": [p or None for p in z["paths"].tolist()],
                    "labels": [lab if h else None
                               for lab, h in zip(z["labels"].tolist(), has, strict=True)],
                    "splits": [s or None for s in z["splits"].tolist()],
                    "errors": [e or None for e in z["errors"].tolist()], "ok": z["ok"],
                    "vectors": z["vectors"]}

    def merge(self, out: Location, shards: list[str]) -> None:
        """The succeeded items' ids, paths and splits to ``features_ids.json``; their labels and
        vectors to :meth:`write_vectors`, one shard in memory at a time."""
        ids_doc: dict[str, list] = {"ids": [], "paths": [], "splits": []}
        labels: list[str] = []
        dim, dtype = 0, np.dtype(np.float32)
        for name in shards:
            s = self.read_shard(out.read_bytes(name))
            for i in np.flatnonzero(s["ok"]):
                ids_doc["ids"].append(s["ids"][i])
                ids_doc["paths"].append(s["paths"][i])
                ids_doc["splits"].append(s["splits"][i])
                labels.append(s["labels"][i] or "")
            dim, dtype = s["vectors"].shape[1], s["vectors"].dtype
        blocks = (self.read_shard(out.read_bytes(name))["vectors"] for name in shards)
        self.write_vectors(out, blocks, labels, dim, dtype, ids_doc)
        out.write_bytes(IDS, json.dumps(ids_doc).encode())

    def write_vectors(self, out: Location, blocks, labels: list[str], dim: int,
                      dtype: np.dtype, ids: dict[str, list]) -> None:
        """Write the merged vectors (``blocks``: each shard's, in order) and labels (``ids``:
        the rows' ``ids``, ``paths`` and ``splits``, as ``features_ids.json`` holds them)."""
        raise NotImplementedError

    def read_vectors(self, out: Location) -> tuple[np.ndarray, list[str]]:
        """The merged vectors and labels."""
        raise NotImplementedError

    def read_merged(self, out: Location) -> Columns:
        ids_doc = json.loads(out.read_bytes(IDS))
        X, labels = self.read_vectors(out)
        return {"ids": ids_doc["ids"], "paths": ids_doc["paths"], "splits": ids_doc["splits"],
                "labels": labels, "vectors": X}


def file_columns(X: np.ndarray, labels: list[str], rows: dict[str, list] | None = None
                 ) -> Columns:
    """Columns of a bare features file: its ``rows`` (``ids``, ``paths``, ``splits``) where it
    holds them, else the rows numbered."""
    n = len(X)
    rows = rows or {}
    return {"ids": rows.get("ids") or [str(i) for i in range(n)],
            "paths": rows.get("paths") or [None] * n, "splits": rows.get("splits") or [None] * n,
            "labels": labels, "errors": [None] * n, "ok": np.ones(n, bool), "vectors": X}
