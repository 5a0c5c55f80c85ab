"""The reader: :func:`load_features` reads any imgfeat output (finished or still running) or a
single features file, in any registered format, including outputs of earlier versions."""

from __future__ import annotations

import csv
import io
import os
import re

import numpy as np

from ..errors import StoreError
from ..storage import Location, is_url
from .format import Columns, ShardFormat, formats, get_format
from .layout import (
    FAILURES,
    MANIFESTS,
    META,
    indices,
    layout_of,
    read_meta,
    shard_folder,
    shard_path,
)


def no_features_error(path: str | os.PathLike, meta: dict) -> StoreError:
    """The error for an output with no vectors: say why (every image failed) and where to look."""
    failed = len(meta.get("failures") or [])
    if failed:
        where = f"{str(path).rstrip('/')}/{FAILURES}" if is_url(path) or os.path.isdir(path) \
            else path
        return StoreError(f"no features in {path}: all {failed} images failed, see {where}")
    return StoreError(f"no features in {path}: it holds no finished shard yet")


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
    known = formats()
    fmt = next((f for f in known if name.endswith(f.file_endings)), None)
    if fmt is None:
        if url and not loc.exists():
            raise StoreError(f"no features at {path}")
        endings = [e if e.startswith(".") else f"*{e}" for f in known for e in f.file_endings]
        raise StoreError(f"cannot read features from {name}: give an output folder, "
                         f"{', '.join(endings[:-1])} or {endings[-1]}")
    try:
        cols, meta = fmt.read_file(str(path), storage_options)
    except FileNotFoundError:
        raise StoreError(f"no features at {path}") from None
    if meta:  # a part of a job: its own provenance
        return _from_shards([cols], meta, meta.get("dim", 0), meta.get("dtype", "float32"))
    return _result(cols["vectors"], cols["labels"], cols["ids"], cols["paths"], cols["splits"],
                   [], {})


def _load_job(loc: Location):
    job = read_meta(loc, META)
    fmt = get_format(job["format"])
    meta = {**job["metadata"], "source": job["config"].get("source"),
            "config_hash": job["config_hash"], "format": fmt.name,
            "complete": job["complete"], "summary": job.get("summary")}
    if job["complete"] and not fmt.shards_are_output:
        cols = fmt.read_merged(loc)
        failures = []
        if loc.is_file(FAILURES):
            failures = list(csv.DictReader(io.StringIO(loc.read_bytes(FAILURES).decode(),
                                                       newline="")))
        return _result(cols["vectors"], cols["labels"], cols["ids"], cols["paths"],
                       cols["splits"], failures, meta)
    return _from_shards(_finished_shards(loc, fmt, layout_of(job)), meta,
                        job["metadata"].get("dim", 0), job["metadata"].get("dtype", "float32"))


def _finished_shards(loc: Location, fmt: ShardFormat, layout: int) -> list[Columns]:
    """The shards whose manifest and data both exist, in order."""
    data = set(indices(loc.listdir(shard_folder(fmt, layout)), fmt.suffix))
    return [fmt.read_shard(loc.read_bytes(shard_path(fmt, index, layout)))
            for index in indices(loc.listdir(MANIFESTS), ".json") if index in data]


def _from_shards(shards: list[Columns], meta: dict, dim: int, dtype: str):
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
