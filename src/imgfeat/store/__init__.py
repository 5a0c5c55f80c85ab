"""Output folders (local or object storage): shards written whole, a manifest per shard written
last, provenance, a frozen item list, resume."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence

import numpy as np

from ..batches import ShardData
from ..errors import StoreError
from ..sources import Item
from ..storage import TMP_PREFIX, Location, is_url
from ..storage import read_bytes as _read_bytes
from ..usage import arg
from .formats import (
    FINAL_FILES,
    PARTS,
    part_name,
    read_final,
    read_orange_csv,
    read_shard,
    shard_name,
    write_final,
    write_shard,
)
from .listing import ITEMS, listing_changes, read_listing, write_listing
from .lock import LOCK

META = "_imgfeat.json"
MANIFESTS = "_manifests"
#: the list of failed images; its leading underscore keeps it out of the Parquet dataset that
#: pandas, polars, duckdb and pyarrow read from the folder (failed rows are in the dataset too)
FAILURES = "_failures.csv"


def read_meta(loc: Location, name: str) -> dict:
    """Read one of an output's JSON files; a damaged one is a one-line :class:`StoreError`."""
    where = f"{loc.url.rstrip('/')}/{name}"
    try:
        data = json.loads(loc.read_bytes(name))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{where} is damaged ({getattr(exc, 'msg', exc)}); remove {loc.url} or "
                         f"run again with {arg('overwrite', True)}") from None
    except OSError as exc:
        raise StoreError(f"cannot read {where}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise StoreError(f"{where} is damaged (not a JSON object); remove it or run again with "
                         f"{arg('overwrite', True)}")
    return data


def no_features_error(path: str | os.PathLike, meta: dict) -> StoreError:
    """The error for an output with no vectors: say why (every image failed) and where to look."""
    failed = len(meta.get("failures") or [])
    if failed:
        where = f"{str(path).rstrip('/')}/{FAILURES}" if is_url(path) or os.path.isdir(path) \
            else path
        return StoreError(f"no features in {path}: all {failed} images failed, see {where}")
    return StoreError(f"no features in {path}: it holds no finished shard yet")


class JobStore:
    """One output folder or prefix. A shard is done when its manifest exists; the job when META
    says so. Use :meth:`open`, then (on resume) :meth:`check_listing`, then :meth:`begin`."""

    def __init__(self, out: str | os.PathLike, fmt: str, storage_options: dict | None = None):
        self.loc = Location(out, storage_options)
        self.fmt = fmt
        self.config: dict = {}
        self.config_hash = ""
        self.metadata: dict = {}
        self.resuming = False

    @property
    def out(self) -> str:
        """The output folder's path or URL."""
        return self.loc.url

    def manifest_name(self, index: int) -> str:
        return f"{MANIFESTS}/{part_name(index)}.json"

    def open(self, resume: bool = False, overwrite: bool = False) -> bool:
        """Check the folder (and clear it with ``overwrite``); True when resuming a job."""
        loc, out = self.loc, self.out
        if not loc.remote and loc.path.exists() and not loc.path.is_dir():
            raise StoreError(f"output path is a file, not a folder: {out}")
        existing = loc.is_file(META)
        if existing and overwrite:
            self._remove_outputs()
            existing = False
        elif existing and not resume:
            raise StoreError(f"{out} already holds an imgfeat output: use {arg('resume', True)} "
                             f"to finish it or {arg('overwrite', True)} to replace it")
        elif not existing and [n for n in loc.listdir() if n != LOCK and not n.startswith(TMP_PREFIX)] \
                and not overwrite:  # a killed job's lock and temporaries do not count
            raise StoreError(f"{out} is not empty and holds no imgfeat output; choose a new or "
                             f"empty folder")
        try:
            loc.makedirs()
        except OSError as exc:
            raise StoreError(f"cannot create output folder {out}: {exc.strerror}") from None
        if not loc.remote and not os.access(loc.path, os.W_OK | os.X_OK):
            raise StoreError(f"output folder is not writable: {out}")
        self.resuming = existing
        return existing

    def check_listing(self, items: Sequence[Item], keep_listing: bool = False) -> list[Item]:
        """The items a resumed job runs on: the frozen list, which must equal ``items`` unless
        ``keep_listing`` (then the frozen list wins and the changes are ignored)."""
        frozen = read_listing(self.loc)
        if frozen is None:
            return list(items)
        changes = listing_changes(frozen, items)
        if changes and not keep_listing:
            raise StoreError(f"cannot resume {self.out}: the source changed since the job started "
                             f"({changes}); use {arg('keep_listing', True)} to finish the job's own "
                             f"listing")
        return frozen

    def begin(self, config: dict, config_hash: str, metadata: dict,
              items: Sequence[Item]) -> set[int]:
        """Record (or, on resume, check) the configuration and freeze the listing; return the
        indices of shards already done."""
        self.config, self.config_hash, self.metadata = config, config_hash, metadata
        if self.resuming:
            old = read_meta(self.loc, META)
            if old.get("config_hash") != self.config_hash:
                diff = _differences(old.get("config", {}), self.config)
                raise StoreError(
                    f"cannot resume {self.out}: it was made with another configuration "
                    f"({old.get('config_hash')} vs {self.config_hash}; differs in "
                    f"{', '.join(diff) or 'weights'})")
            self.loc.remove_temporaries()
            if not self.loc.is_file(ITEMS):
                write_listing(self.loc, items)
            return self.done_shards()
        try:
            self._write_json(META, self._meta(complete=False))
            write_listing(self.loc, items)
        except OSError as exc:
            raise StoreError(f"cannot write to {self.out}: {exc.strerror or exc}") from None
        return set()

    def is_complete(self) -> bool:
        return self.loc.is_file(META) and bool(read_meta(self.loc, META).get("complete"))

    def done_shards(self) -> set[int]:
        """Shards whose manifest and data both exist."""
        data_dir = "" if self.fmt == "parquet" else PARTS
        data = set(self.loc.listdir(data_dir))
        done = set()
        for name in self.loc.listdir(MANIFESTS):
            if name.startswith("part-") and name.endswith(".json"):
                index = int(name[5:-5])
                if shard_name(self.fmt, index).rsplit("/", 1)[-1] in data:
                    done.add(index)
        return done

    def write_shard(self, data: ShardData) -> None:
        """Write the shard's data as one whole file, then its manifest (which marks it done)."""
        write_shard(self.loc, self.fmt, data, self.metadata_with_hash())
        failures = [{"id": it.id, "path": it.path, "error": err}
                    for it, good, err in zip(data.items, data.ok, data.errors, strict=True)
                    if not good]
        self._write_json(self.manifest_name(data.index), {
            "shard": data.index, "items": len(data.items), "ok": int(data.ok.sum()),
            "failed": data.n_failed, "seconds": round(data.seconds, 3),
            "first_id": data.items[0].id, "last_id": data.items[-1].id, "failures": failures})

    def finish(self, n_shards: int) -> dict:
        """Merge (npy/csv), write the failures list, and mark the job complete. Returns counts."""
        manifests = [read_meta(self.loc, self.manifest_name(i)) for i in range(n_shards)]
        if self.fmt != "parquet":
            write_final(self.loc, self.fmt, [shard_name(self.fmt, i) for i in range(n_shards)])
        failures = [f for m in manifests for f in m["failures"]]
        if failures:
            text = io.StringIO(newline="")
            w = csv.DictWriter(text, fieldnames=["id", "path", "error"])
            w.writeheader()
            w.writerows(failures)
            self.loc.write_bytes(FAILURES, text.getvalue().encode())
        elif self.loc.exists(FAILURES):
            self.loc.remove(FAILURES)
        summary = {"items": sum(m["items"] for m in manifests),
                   "ok": sum(m["ok"] for m in manifests),
                   "failed": len(failures), "shards": n_shards}
        self._write_json(META, self._meta(complete=True, summary=summary))
        if self.fmt != "parquet":
            self.loc.remove(PARTS)
        return summary

    def summary(self) -> dict:
        return read_meta(self.loc, META).get("summary") or {}

    def discard(self) -> None:
        """Remove everything this job wrote (the folder too if it is then empty): a strict stop
        leaves nothing that blocks the same command once the bad image is fixed."""
        self.loc.remove_temporaries()
        if self.loc.is_file(META):
            self._remove_outputs()
        if not self.loc.remote and self.loc.path.is_dir() and not any(self.loc.path.iterdir()):
            self.loc.path.rmdir()

    def metadata_with_hash(self) -> dict:
        return {**self.metadata, "config_hash": self.config_hash, "format": self.fmt}

    def _write_json(self, name: str, data: dict) -> None:
        self.loc.write_bytes(name, (json.dumps(data, indent=2, default=str) + "\n").encode())

    def _meta(self, complete: bool, summary: dict | None = None) -> dict:
        return {"imgfeat_output": 1, "complete": complete, "format": self.fmt,
                "config_hash": self.config_hash, "config": self.config,
                "metadata": self.metadata, "summary": summary}

    def _remove_outputs(self) -> None:
        for name in (MANIFESTS, PARTS):
            self.loc.remove(name)
        for name in self.loc.listdir():
            if name.startswith("part-") and name.endswith(".parquet"):
                self.loc.remove(name)
        for names in FINAL_FILES.values():
            for name in names:
                self.loc.remove(name)
        for name in (FAILURES, ITEMS, META):
            self.loc.remove(name)


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


def load_features(path: str | os.PathLike, storage_options: dict | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, list[str], dict]:
    """Read any imgfeat output: ``(X, y, ids, metadata)`` for the items that succeeded.

    ``path`` is an output folder (any format, finished or still running: only finished shards
    are read), a single Parquet part, an Orange CSV, or a ``*_data.npy`` file; local or a URL
    (``s3://…``, with ``storage_options`` for its back-end). ``metadata`` holds the provenance,
    plus ``paths``, ``splits`` and ``failures`` aligned with the rows.
    """
    url = is_url(path)
    loc = Location(path, storage_options)
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    if not url and not loc.path.exists():
        raise StoreError(f"no features at {path}")
    if loc.is_file(META):
        return _load_job(loc)
    if not url and loc.path.is_dir():
        raise StoreError(f"{path} is not an imgfeat output (no {META})")
    if not (name.endswith((".parquet", ".csv", "_data.npy"))):
        if url and not loc.exists():
            raise StoreError(f"no features at {path}")
        raise StoreError(f"cannot read features from {name}: give an output folder, .parquet, "
                         f".csv or *_data.npy")
    try:
        raw = _read_bytes(path, storage_options)
    except FileNotFoundError:
        raise StoreError(f"no features at {path}") from None
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema_meta = pq.read_schema(pa.BufferReader(raw)).metadata or {}
        meta = json.loads(schema_meta.get(b"imgfeat", b"{}"))
        return _from_shards([read_shard(raw, "parquet")], meta, meta.get("dim", 0),
                            meta.get("dtype", "float32"))
    if name.endswith(".csv"):
        X, labels = read_orange_csv(raw.decode(), name)
        ids = [str(i) for i in range(len(labels))]
        return _result(X, labels, ids, [None] * len(ids), [None] * len(ids), [], {})
    X = np.load(io.BytesIO(raw), allow_pickle=False)
    lab = str(path)[: -len("_data.npy")] + "_labels.npy"
    try:
        labels = np.load(io.BytesIO(_read_bytes(lab, storage_options)),
                         allow_pickle=False).tolist()
    except FileNotFoundError:
        labels = [""] * len(X)
    ids = [str(i) for i in range(len(X))]
    return _result(X, labels, ids, [None] * len(ids), [None] * len(ids), [], {})


def _load_job(loc: Location):
    job = read_meta(loc, META)
    fmt = job["format"]
    meta = {**job["metadata"], "source": job["config"].get("source"),
            "config_hash": job["config_hash"], "format": fmt,
            "complete": job["complete"], "summary": job.get("summary")}
    if fmt != "parquet" and job["complete"]:
        cols = read_final(loc, fmt)
        failures = []
        if loc.is_file(FAILURES):
            failures = list(csv.DictReader(io.StringIO(loc.read_bytes(FAILURES).decode(),
                                                       newline="")))
        return _result(cols["vectors"], cols["labels"], cols["ids"], cols["paths"],
                       cols["splits"], failures, meta)
    data = set(loc.listdir("" if fmt == "parquet" else PARTS))
    shards = []
    indices = sorted(int(name[5:-5]) for name in loc.listdir(MANIFESTS)
                     if name.startswith("part-") and name.endswith(".json"))
    for index in indices:
        shard = shard_name(fmt, index)
        if shard.rsplit("/", 1)[-1] in data:
            shards.append(read_shard(loc.read_bytes(shard), fmt))
    return _from_shards(shards, meta, job["metadata"].get("dim", 0),
                        job["metadata"].get("dtype", "float32"))


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
