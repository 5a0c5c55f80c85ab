"""Output folders: shards written atomically, a manifest per shard, provenance, resume."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..batches import ShardData
from ..errors import StoreError
from ..usage import arg
from .atomic import atomic_path, read_json, remove_temporaries, write_json
from .formats import (
    FINAL_FILES,
    PARTS,
    part_name,
    read_final,
    read_orange_csv,
    read_shard,
    shard_file,
    write_final,
    write_shard,
)

META = "_imgfeat.json"
MANIFESTS = "_manifests"
#: the list of failed images; its leading underscore keeps it out of the Parquet dataset that
#: pandas, polars, duckdb and pyarrow read from the folder (failed rows are in the dataset too)
FAILURES = "_failures.csv"


def read_meta(path: str | os.PathLike) -> dict:
    """Read one of an output's JSON files; a damaged one is a one-line :class:`StoreError`."""
    path = Path(path)
    try:
        data = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path} is damaged ({getattr(exc, 'msg', exc)}); remove "
                         f"{path.parent if path.name == META else path.parent.parent} or run "
                         f"again with {arg('overwrite', True)}") from None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path} is damaged (not a JSON object); remove it or run again with "
                         f"{arg('overwrite', True)}")
    return data


def no_features_error(path: str | os.PathLike, meta: dict) -> StoreError:
    """The error for an output with no vectors: say why (every image failed) and where to look."""
    failed = len(meta.get("failures") or [])
    if failed:
        where = Path(path) / FAILURES if Path(path).is_dir() else path
        return StoreError(f"no features in {path}: all {failed} images failed, see {where}")
    return StoreError(f"no features in {path}: it holds no finished shard yet")


class JobStore:
    """One output folder. A shard is done when its manifest exists; the job when META says so."""

    def __init__(self, out: str | os.PathLike, fmt: str, config: dict, config_hash: str,
                 metadata: dict):
        self.out = Path(out)
        self.fmt = fmt
        self.config = config
        self.config_hash = config_hash
        self.metadata = metadata

    @property
    def meta_path(self) -> Path:
        return self.out / META

    def manifest_path(self, index: int) -> Path:
        return self.out / MANIFESTS / f"{part_name(index)}.json"

    def prepare(self, resume: bool = False, overwrite: bool = False) -> set[int]:
        """Check the folder and return the indices of shards already done."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise StoreError(f"output path is a file, not a folder: {out}")
        existing = self.meta_path.is_file()
        if existing and overwrite:
            self._remove_outputs()
            existing = False
        elif existing and not resume:
            raise StoreError(f"{out} already holds an imgfeat output: use {arg('resume', True)} "
                             f"to finish it or {arg('overwrite', True)} to replace it")
        elif not existing and out.is_dir() and any(out.iterdir()) and not overwrite:
            raise StoreError(f"{out} is not empty and holds no imgfeat output; choose a new or "
                             f"empty folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create output folder {out}: {exc.strerror}") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise StoreError(f"output folder is not writable: {out}")
        if existing:
            old = read_meta(self.meta_path)
            if old.get("config_hash") != self.config_hash:
                diff = _differences(old.get("config", {}), self.config)
                raise StoreError(
                    f"cannot resume {out}: it was made with another configuration "
                    f"({old.get('config_hash')} vs {self.config_hash}; differs in "
                    f"{', '.join(diff) or 'weights'})")
            remove_temporaries(out)
            return self.done_shards()
        try:
            write_json(self.meta_path, self._meta(complete=False))
        except OSError as exc:
            raise StoreError(f"cannot write to {out}: {exc.strerror}") from None
        return set()

    def is_complete(self) -> bool:
        return self.meta_path.is_file() and bool(read_meta(self.meta_path).get("complete"))

    def done_shards(self) -> set[int]:
        folder = self.out / MANIFESTS
        if not folder.is_dir():
            return set()
        return {int(p.stem.split("-")[1]) for p in folder.glob("part-*.json")
                if shard_file(self.out, self.fmt, int(p.stem.split("-")[1])).is_file()}

    def write_shard(self, data: ShardData) -> None:
        """Write the shard's data, then its manifest (which marks it done)."""
        write_shard(self.out, self.fmt, data, self.metadata_with_hash())
        failures = [{"id": it.id, "path": it.path, "error": err}
                    for it, good, err in zip(data.items, data.ok, data.errors, strict=True)
                    if not good]
        (self.out / MANIFESTS).mkdir(exist_ok=True)
        write_json(self.manifest_path(data.index), {
            "shard": data.index, "items": len(data.items), "ok": int(data.ok.sum()),
            "failed": data.n_failed, "seconds": round(data.seconds, 3),
            "first_id": data.items[0].id, "last_id": data.items[-1].id, "failures": failures})

    def finish(self, n_shards: int) -> dict:
        """Merge (npy/csv), write the failures list, and mark the job complete. Returns counts."""
        manifests = [read_meta(self.manifest_path(i)) for i in range(n_shards)]
        if self.fmt != "parquet":
            write_final(self.out, self.fmt, [shard_file(self.out, self.fmt, i)
                                             for i in range(n_shards)])
        failures = [f for m in manifests for f in m["failures"]]
        fail_path = self.out / FAILURES
        if failures:
            with atomic_path(fail_path) as tmp, open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=["id", "path", "error"])
                w.writeheader()
                w.writerows(failures)
        elif fail_path.exists():
            fail_path.unlink()
        summary = {"items": sum(m["items"] for m in manifests),
                   "ok": sum(m["ok"] for m in manifests),
                   "failed": len(failures), "shards": n_shards}
        write_json(self.meta_path, self._meta(complete=True, summary=summary))
        if self.fmt != "parquet":
            shutil.rmtree(self.out / PARTS, ignore_errors=True)
        return summary

    def summary(self) -> dict:
        return read_meta(self.meta_path).get("summary") or {}

    def discard(self) -> None:
        """Remove everything this job wrote (the folder too if it is then empty): a strict stop
        leaves nothing that blocks the same command once the bad image is fixed."""
        remove_temporaries(self.out)
        if self.meta_path.is_file():
            self._remove_outputs()
        if self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()

    def metadata_with_hash(self) -> dict:
        return {**self.metadata, "config_hash": self.config_hash, "format": self.fmt}

    def _meta(self, complete: bool, summary: dict | None = None) -> dict:
        return {"imgfeat_output": 1, "complete": complete, "format": self.fmt,
                "config_hash": self.config_hash, "config": self.config,
                "metadata": self.metadata, "summary": summary}

    def _remove_outputs(self) -> None:
        for name in (MANIFESTS, PARTS):
            shutil.rmtree(self.out / name, ignore_errors=True)
        for p in self.out.glob("part-*.parquet"):
            p.unlink()
        for names in FINAL_FILES.values():
            for name in names:
                (self.out / name).unlink(missing_ok=True)
        (self.out / FAILURES).unlink(missing_ok=True)
        self.meta_path.unlink()


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ (compared as JSON, as they are stored: a
    tuple and the list it was saved as are equal)."""
    old, new = _as_json(old), _as_json(new)
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def _as_json(value):
    return json.loads(json.dumps(value, default=str))


def load_features(path: str | os.PathLike, ) -> tuple[np.ndarray, np.ndarray | None, list[str],
                                                      dict]:
    """Read any imgfeat output: ``(X, y, ids, metadata)`` for the items that succeeded.

    ``path`` is an output folder (any format, finished or still running: only finished shards
    are read), a single Parquet part, an Orange CSV, or a ``*_data.npy`` file. ``metadata`` holds
    the provenance, plus ``paths``, ``splits`` and ``failures`` aligned with the rows.
    """
    p = Path(path)
    if not p.exists():
        raise StoreError(f"no features at {p}")
    if p.is_dir():
        if not (p / META).is_file():
            raise StoreError(f"{p} is not an imgfeat output (no {META})")
        job = read_meta(p / META)
        fmt = job["format"]
        meta = {**job["metadata"], "source": job["config"].get("source"),
                "config_hash": job["config_hash"], "format": fmt,
                "complete": job["complete"], "summary": job.get("summary")}
        if fmt != "parquet" and job["complete"]:
            cols = read_final(p, fmt)
            failures = []
            if (p / FAILURES).is_file():
                with open(p / FAILURES, newline="") as fh:
                    failures = list(csv.DictReader(fh))
            return _result(cols["vectors"], cols["labels"], cols["ids"], cols["paths"],
                           cols["splits"], failures, meta)
        manifests = sorted((p / MANIFESTS).glob("part-*.json")) if (p / MANIFESTS).is_dir() else []
        shards = []
        for m in manifests:
            f = shard_file(p, fmt, int(m.stem.split("-")[1]))
            if f.is_file():
                shards.append(read_shard(f, fmt))
        return _from_shards(shards, meta, job["metadata"].get("dim", 0),
                            job["metadata"].get("dtype", "float32"))
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        raw = pq.read_schema(p).metadata or {}
        import json

        meta = json.loads(raw.get(b"imgfeat", b"{}"))
        return _from_shards([read_shard(p, "parquet")], meta, meta.get("dim", 0),
                            meta.get("dtype", "float32"))
    if p.suffix == ".csv":
        X, labels = read_orange_csv(p)
        ids = [str(i) for i in range(len(labels))]
        return _result(X, labels, ids, [None] * len(ids), [None] * len(ids), [], {})
    if p.name.endswith("_data.npy"):
        X = np.load(p, allow_pickle=False)
        lab = p.with_name(p.name.replace("_data.npy", "_labels.npy"))
        labels = np.load(lab, allow_pickle=False).tolist() if lab.is_file() else [""] * len(X)
        ids = [str(i) for i in range(len(X))]
        return _result(X, labels, ids, [None] * len(ids), [None] * len(ids), [], {})
    raise StoreError(f"cannot read features from {p.name}: give an output folder, .parquet, "
                     f".csv or *_data.npy")


def _from_shards(shards: list[dict], meta: dict, dim: int, dtype: str):
    ids, labels, paths, splits, failures, blocks = [], [], [], [], [], []
    for s in shards:
        for i, good in enumerate(s["ok"]):
            if good:
                ids.append(s["ids"][i])
                labels.append(s["labels"][i])
                paths.append(s["paths"][i])
                splits.append(s["splits"][i])
            else:
                failures.append({"id": s["ids"][i], "path": s["paths"][i],
                                 "error": s["errors"][i]})
        blocks.append(s["vectors"])
    X = np.concatenate(blocks) if blocks else np.zeros((0, dim), dtype=dtype)
    return _result(X, labels, ids, paths, splits, failures, meta)


_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def _result(X, labels, ids, paths, splits, failures, meta):
    labels = [lab if lab not in ("", None) else None for lab in labels]
    y = None if all(lab is None for lab in labels) else np.array(
        [lab if lab is not None else "" for lab in labels], dtype=str)
    if y is not None and all(_INTEGER.fullmatch(lab) for lab in y.tolist()):
        y = y.astype(np.int64)  # integer labels come back as integers ("007" stays a string)
    meta = {**meta, "paths": list(paths), "splits": list(splits), "failures": failures}
    return np.asarray(X), y, list(ids), meta


__all__ = ["JobStore", "load_features"]
