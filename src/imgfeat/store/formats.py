"""How one shard, and a finished job, is written in each format (Parquet, NumPy, CSV)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batches import ShardData
from ..errors import StoreError
from .atomic import atomic_path

PARTS = "_parts"


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def shard_file(out: Path, fmt: str, index: int) -> Path:
    """Where a shard's data lives: Parquet parts are the output itself; others are merged later."""
    if fmt == "parquet":
        return out / f"{part_name(index)}.parquet"
    return out / PARTS / f"{part_name(index)}.npz"


def _column(values) -> pa.Array:
    return pa.array(values, type=pa.string())


def write_shard(out: Path, fmt: str, data: ShardData, metadata: dict) -> Path:
    """Write one shard atomically and return its path."""
    path = shard_file(out, fmt, data.index)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = data.items
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
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    else:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, vectors=data.vectors, ok=data.ok,
                     ids=np.array([it.id for it in items], dtype=str),
                     paths=np.array([it.path or "" for it in items], dtype=str),
                     labels=np.array([it.label or "" for it in items], dtype=str),
                     has_label=np.array([it.label is not None for it in items]),
                     splits=np.array([it.split or "" for it in items], dtype=str),
                     errors=np.array([e or "" for e in data.errors], dtype=str))
    return path


def read_shard(path: Path, fmt: str) -> dict:
    """Read a shard back as columns (all items) plus the vectors of succeeded items."""
    if fmt == "parquet":
        table = pq.read_table(path)
        status = np.array(table.column("status").to_pylist()) == "ok"
        col = table.column("vector").combine_chunks()
        dim = col.type.list_size
        flat = col.flatten().to_numpy(zero_copy_only=False)  # nulls are dropped by flatten
        values = np.asarray(flat).reshape(-1, dim)
        return {"ids": table.column("id").to_pylist(), "paths": table.column("path").to_pylist(),
                "labels": table.column("label").to_pylist(),
                "splits": table.column("split").to_pylist(),
                "errors": table.column("error").to_pylist(), "ok": status, "vectors": values}
    with np.load(path, allow_pickle=False) as z:
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


def write_final(out: Path, fmt: str, shard_paths: list[Path]) -> list[Path]:
    """Merge the shards of an npy or csv job into its final files, one shard in memory at a time."""
    ids_doc: dict[str, list] = {"ids": [], "paths": [], "splits": []}
    labels: list[str] = []
    dim, dtype = 0, np.dtype(np.float32)
    for path in shard_paths:
        s = read_shard(path, fmt)
        for i in np.flatnonzero(s["ok"]):
            ids_doc["ids"].append(s["ids"][i])
            ids_doc["paths"].append(s["paths"][i])
            ids_doc["splits"].append(s["splits"][i])
            labels.append(s["labels"][i] or "")
        dim, dtype = s["vectors"].shape[1], s["vectors"].dtype
    written = []
    if fmt == "npy":
        data_path = out / FINAL_FILES["npy"][0]
        with atomic_path(data_path) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(labels), dim))
            row = 0
            for path in shard_paths:
                vectors = read_shard(path, fmt)["vectors"]
                arr[row:row + len(vectors)] = vectors
                row += len(vectors)
            arr.flush()
            del arr
        lab_path = out / FINAL_FILES["npy"][1]
        with atomic_path(lab_path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.array(labels, dtype=str))
        written += [data_path, lab_path]
    else:
        csv_path = out / FINAL_FILES["csv"][0]
        with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["Class"] + [f"n{i}" for i in range(dim)])
            k = 0
            for path in shard_paths:
                for vec in read_shard(path, fmt)["vectors"]:
                    w.writerow([labels[k]] + [f"{v:.8g}" for v in vec.tolist()])
                    k += 1
        written.append(csv_path)
    ids_path = out / "features_ids.json"
    with atomic_path(ids_path) as tmp:
        tmp.write_text(json.dumps(ids_doc))
    written.append(ids_path)
    return written


def read_final(out: Path, fmt: str) -> dict:
    """Read the merged files of a finished npy or csv job."""
    ids_doc = json.loads((out / "features_ids.json").read_text())
    if fmt == "npy":
        X = np.load(out / FINAL_FILES["npy"][0], allow_pickle=False)
        labels = np.load(out / FINAL_FILES["npy"][1], allow_pickle=False).tolist()
    else:
        X, labels = read_orange_csv(out / FINAL_FILES["csv"][0])
    return {"ids": ids_doc["ids"], "paths": ids_doc["paths"], "splits": ids_doc["splits"],
            "labels": labels, "vectors": X}


def read_orange_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read a ``Class,n0,n1,…`` CSV into (X, labels)."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = list(reader)
    if not header or header[0] != "Class":
        found = ",".join(header[:3]) + (",…" if len(header) > 3 else "")
        raise StoreError(f"{path}: expected a features CSV whose header is Class,n0,n1,… (the "
                         f"label column first), found {found or 'an empty line'}")
    labels = [r[0] for r in rows]
    try:
        X = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32).reshape(
            len(rows), len(header) - 1)
    except ValueError as exc:
        raise StoreError(f"{path}: not a features CSV (a row with a non-number or a different "
                         f"length: {exc})") from None
    return X, labels
