"""How one shard, and a finished job, is written in each format (Parquet, NumPy, CSV).

Shards are serialised in memory and handed to a :class:`~imgfeat.storage.Location` as whole
files, so the same code writes a local folder (temp file + rename) and an object store (one PUT).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batches import ShardData
from ..errors import StoreError
from ..storage import Location

PARTS = "_parts"


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def shard_name(fmt: str, index: int) -> str:
    """Where a shard's data lives, relative to the output: Parquet parts are the output itself;
    other formats' parts are merged at the end."""
    if fmt == "parquet":
        return f"{part_name(index)}.parquet"
    return f"{PARTS}/{part_name(index)}.npz"


def _column(values) -> pa.Array:
    return pa.array(values, type=pa.string())


def shard_bytes(fmt: str, data: ShardData, metadata: dict) -> bytes:
    """Serialise one shard in memory (nothing touches storage until this returns)."""
    items = data.items
    buf = io.BytesIO()
    if fmt == "parquet":
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
        pq.write_table(table, buf, compression="zstd")
    else:
        np.savez(buf, vectors=data.vectors, ok=data.ok,
                 ids=np.array([it.id for it in items], dtype=str),
                 paths=np.array([it.path or "" for it in items], dtype=str),
                 labels=np.array([it.label or "" for it in items], dtype=str),
                 has_label=np.array([it.label is not None for it in items]),
                 splits=np.array([it.split or "" for it in items], dtype=str),
                 errors=np.array([e or "" for e in data.errors], dtype=str))
    return buf.getvalue()


def write_shard(out: Location, fmt: str, data: ShardData, metadata: dict) -> str:
    """Write one shard as a whole file and return its name."""
    name = shard_name(fmt, data.index)
    out.write_bytes(name, shard_bytes(fmt, data, metadata))
    return name


def read_shard(raw: bytes, fmt: str) -> dict:
    """Read a shard back as columns (all items) plus the vectors of succeeded items."""
    if fmt == "parquet":
        table = pq.read_table(pa.BufferReader(raw))
        status = np.array(table.column("status").to_pylist()) == "ok"
        col = table.column("vector").combine_chunks()
        dim = col.type.list_size
        flat = col.flatten().to_numpy(zero_copy_only=False)  # nulls are dropped by flatten
        values = np.asarray(flat).reshape(-1, dim)
        return {"ids": table.column("id").to_pylist(), "paths": table.column("path").to_pylist(),
                "labels": table.column("label").to_pylist(),
                "splits": table.column("split").to_pylist(),
                "errors": table.column("error").to_pylist(), "ok": status, "vectors": values}
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        has = z["has_label"]
        return {"ids": z["ids"].tolist(), "paths": [p or None for p in z["paths"].tolist()],
                "labels": [lab if h else None for lab, h in zip(z["labels"].tolist(), has,
                                                                 strict=True)],
                "splits": [s or None for s in z["splits"].tolist()],
                "errors": [e or None for e in z["errors"].tolist()], "ok": z["ok"],
                "vectors": z["vectors"]}


FINAL_FILES = {
    "npy": ("features_data.npy", "features_labels.npy", "features_ids.json"),
    "csv": ("features.csv", "features_ids.json"),
}


def write_final(out: Location, fmt: str, shard_names: list[str]) -> list[str]:
    """Merge the shards of an npy or csv job into its final files, one shard in memory at a time
    (on an object store the merged file is spooled to a local temporary file and sent whole)."""
    ids_doc: dict[str, list] = {"ids": [], "paths": [], "splits": []}
    labels: list[str] = []
    dim, dtype = 0, np.dtype(np.float32)
    for name in shard_names:
        s = read_shard(out.read_bytes(name), fmt)
        for i in np.flatnonzero(s["ok"]):
            ids_doc["ids"].append(s["ids"][i])
            ids_doc["paths"].append(s["paths"][i])
            ids_doc["splits"].append(s["splits"][i])
            labels.append(s["labels"][i] or "")
        dim, dtype = s["vectors"].shape[1], s["vectors"].dtype
    written = []
    if fmt == "npy":
        data_name, lab_name = FINAL_FILES["npy"][:2]
        with out.open_write(data_name) as fh:
            np.lib.format.write_array_header_1_0(fh, {
                "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                "shape": (len(labels), dim)})
            for name in shard_names:
                fh.write(np.ascontiguousarray(read_shard(out.read_bytes(name), fmt)["vectors"],
                                              dtype=dtype).tobytes())
        buf = io.BytesIO()
        np.save(buf, np.array(labels, dtype=str))
        out.write_bytes(lab_name, buf.getvalue())
        written += [data_name, lab_name]
    else:
        csv_name = FINAL_FILES["csv"][0]
        with out.open_write(csv_name) as raw:
            fh = io.TextIOWrapper(raw, newline="", encoding="utf-8")
            w = csv.writer(fh)
            w.writerow(["Class"] + [f"n{i}" for i in range(dim)])
            k = 0
            for name in shard_names:
                for vec in read_shard(out.read_bytes(name), fmt)["vectors"]:
                    w.writerow([labels[k]] + [f"{v:.8g}" for v in vec.tolist()])
                    k += 1
            fh.flush()
            fh.detach()  # the file itself is closed (and committed) by open_write
        written.append(csv_name)
    out.write_bytes("features_ids.json", json.dumps(ids_doc).encode())
    written.append("features_ids.json")
    return written


def read_final(out: Location, fmt: str) -> dict:
    """Read the merged files of a finished npy or csv job."""
    ids_doc = json.loads(out.read_bytes("features_ids.json"))
    if fmt == "npy":
        X = np.load(io.BytesIO(out.read_bytes(FINAL_FILES["npy"][0])), allow_pickle=False)
        labels = np.load(io.BytesIO(out.read_bytes(FINAL_FILES["npy"][1])),
                         allow_pickle=False).tolist()
    else:
        X, labels = read_orange_csv(out.read_bytes(FINAL_FILES["csv"][0]).decode())
    return {"ids": ids_doc["ids"], "paths": ids_doc["paths"], "splits": ids_doc["splits"],
            "labels": labels, "vectors": X}


def read_orange_csv(text: str, name: str = "CSV") -> tuple[np.ndarray, list[str]]:
    """Parse a ``Class,n0,n1,…`` CSV into (X, labels)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows = list(reader)
    if not header or header[0] != "Class":
        found = ",".join(header[:3]) + (",…" if len(header) > 3 else "")
        raise StoreError(f"{name}: expected a features CSV whose header is Class,n0,n1,… (the "
                         f"label column first), found {found or 'an empty line'}")
    labels = [r[0] for r in rows]
    try:
        X = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32).reshape(
            len(rows), len(header) - 1)
    except ValueError as exc:
        raise StoreError(f"{name}: not a features CSV (a row with a non-number or a different "
                         f"length: {exc})") from None
    return X, labels
