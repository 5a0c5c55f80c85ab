"""Parquet: each shard is a part of the output dataset in ``data/`` (pandas, pyarrow, polars,
duckdb and Hugging Face ``datasets`` read the folder), a row per image that succeeded, the
vector a fixed-size list, the provenance and the failed images in the schema metadata."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batches import ShardData
from ..storage import read_bytes
from .format import Columns, ShardFormat

#: the schema metadata key of a part's failed items (they have no row: no vector exists)
FAILED = b"imgfeat_failed"


def _column(values) -> pa.Array:
    return pa.array(values, type=pa.string())


class ParquetFormat(ShardFormat):
    """Shards are the output: ``data/part-NNNNN.parquet``, nothing merged. A part's rows are the
    images that succeeded (``id, path, label, split, vector``), so the vectors of the folder
    stack into one N×D array in any reader; the failed ones are listed in its schema metadata
    (and in the job's manifests and ``_failures.csv``)."""

    name = "parquet"
    suffix = ".parquet"
    shards_are_output = True
    file_endings = (".parquet",)

    def shard_bytes(self, data: ShardData, metadata: dict) -> bytes:
        good = [it for it, o in zip(data.items, data.ok, strict=True) if o]
        dim = data.vectors.shape[1]
        vtype = pa.float16() if data.vectors.dtype == np.float16 else pa.float32()
        flat = pa.array(np.ascontiguousarray(data.vectors).reshape(-1), type=vtype)
        schema = pa.schema([("id", pa.string()), ("path", pa.string()), ("label", pa.string()),
                            ("split", pa.string()),
                            pa.field("vector", pa.list_(vtype, dim), nullable=False)])
        table = pa.Table.from_arrays([
            _column([it.id for it in good]), _column([it.path for it in good]),
            _column([it.label for it in good]), _column([it.split for it in good]),
            pa.FixedSizeListArray.from_arrays(flat, dim)], schema=schema)
        failed = [{"row": k, "id": it.id, "path": it.path, "label": it.label, "split": it.split,
                   "error": err}
                  for k, (it, o, err) in enumerate(zip(data.items, data.ok, data.errors,
                                                       strict=True)) if not o]
        table = table.replace_schema_metadata({b"imgfeat": json.dumps(metadata, default=str),
                                               FAILED: json.dumps(failed)})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return buf.getvalue()

    def read_shard(self, raw: bytes) -> Columns:
        table = pq.read_table(pa.BufferReader(raw))
        col = table.column("vector").combine_chunks()
        flat = col.flatten().to_numpy(zero_copy_only=False)  # nulls are dropped by flatten
        vectors = np.asarray(flat).reshape(-1, col.type.list_size)
        cols = {key: table.column(name).to_pylist() for key, name in
                (("ids", "id"), ("paths", "path"), ("labels", "label"), ("splits", "split"))}
        if "status" in table.column_names:  # layout 1: failed rows inside, with their error
            return {**cols, "errors": table.column("error").to_pylist(),
                    "ok": np.array(table.column("status").to_pylist()) == "ok",
                    "vectors": vectors}
        failed = json.loads((table.schema.metadata or {}).get(FAILED, b"[]"))
        n = table.num_rows + len(failed)
        ok = np.ones(n, dtype=bool)
        ok[[f["row"] for f in failed]] = False
        out: Columns = {key: [None] * n for key in (*cols, "errors")}
        for key, values in cols.items():
            for k, v in zip(np.flatnonzero(ok).tolist(), values, strict=True):
                out[key][k] = v
        for f in failed:
            for key, name in (("ids", "id"), ("paths", "path"), ("labels", "label"),
                              ("splits", "split"), ("errors", "error")):
                out[key][f["row"]] = f[name]
        return {**out, "ok": ok, "vectors": vectors}

    def read_file(self, path: str, storage_options: dict | None) -> tuple[Columns, dict]:
        raw = read_bytes(path, storage_options)
        schema_meta = pq.read_schema(pa.BufferReader(raw)).metadata or {}
        return self.read_shard(raw), json.loads(schema_meta.get(b"imgfeat", b"{}"))


FORMAT = ParquetFormat()
