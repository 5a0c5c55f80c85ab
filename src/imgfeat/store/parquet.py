"""Parquet: each shard is a part of the output dataset (pandas, polars, duckdb and pyarrow read
the folder), every item a row with its status and error, the provenance in the schema."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batches import ShardData
from ..storage import read_bytes
from .format import Columns, ShardFormat


def _column(values) -> pa.Array:
    return pa.array(values, type=pa.string())


class ParquetFormat(ShardFormat):
    """Shards are the output: ``part-NNNNN.parquet`` at the top of the folder, nothing merged."""

    name = "parquet"
    suffix = ".parquet"
    shards_are_output = True
    file_endings = (".parquet",)

    def shard_bytes(self, data: ShardData, metadata: dict) -> bytes:
        items = data.items
        dim = data.vectors.shape[1]
        vtype = pa.float16() if data.vectors.dtype == np.float16 else pa.float32()
        full = np.zeros((len(items), dim), dtype=data.vectors.dtype)
        full[data.ok] = data.vectors
        flat = pa.array(full.reshape(-1), type=vtype)
        vectors = pa.FixedSizeListArray.from_arrays(flat, dim,
                                                    mask=pa.array(~data.ok, type=pa.bool_()))
        table = pa.table({
            "id": _column([it.id for it in items]),
            "path": _column([it.path for it in items]),
            "label": _column([it.label for it in items]),
            "split": _column([it.split for it in items]),
            "status": _column(["ok" if o else "failed" for o in data.ok]),
            "error": _column(data.errors),
            "vector": vectors,
        })
        table = table.replace_schema_metadata({"imgfeat": json.dumps(metadata, default=str)})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return buf.getvalue()

    def read_shard(self, raw: bytes) -> Columns:
        table = pq.read_table(pa.BufferReader(raw))
        status = np.array(table.column("status").to_pylist()) == "ok"
        col = table.column("vector").combine_chunks()
        dim = col.type.list_size
        flat = col.flatten().to_numpy(zero_copy_only=False)  # nulls are dropped by flatten
        return {"ids": table.column("id").to_pylist(), "paths": table.column("path").to_pylist(),
                "labels": table.column("label").to_pylist(),
                "splits": table.column("split").to_pylist(),
                "errors": table.column("error").to_pylist(), "ok": status,
                "vectors": np.asarray(flat).reshape(-1, dim)}

    def read_file(self, path: str, storage_options: dict | None) -> tuple[Columns, dict]:
        raw = read_bytes(path, storage_options)
        schema_meta = pq.read_schema(pa.BufferReader(raw)).metadata or {}
        return self.read_shard(raw), json.loads(schema_meta.get(b"imgfeat", b"{}"))


FORMAT = ParquetFormat()
