"""The widget's work, free of Qt: image paths in, vectors out, through the public Python API.

Vectors come from :class:`imgfeat.FeatureExtractor` (no extraction logic here): images already
in the :class:`~imgfeat.orange.cache.VectorCache` are read back, the others are embedded a batch
at a time so that progress is reported and a cancel takes effect between batches. A batch holding
an image that cannot be decoded is embedded again image by image, so one bad file fails alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .cache import VectorCache, file_key

__all__ = ["EmbedCancelled", "EmbedResult", "config_key", "embed_paths", "make_extractor"]


class EmbedCancelled(Exception):
    """The user cancelled: nothing is returned (the vectors computed so far stay cached)."""


@dataclass
class EmbedResult:
    """Vectors of the images that worked (rows of ``vectors`` follow ``ok``) and why the others
    failed."""

    vectors: np.ndarray  # (number of True in ok, D) float32
    ok: np.ndarray  # (N,) bool
    errors: dict[int, str] = field(default_factory=dict)
    computed: int = 0  # vectors computed by this call (the others came from the cache)
    cached: int = 0
    seconds: float = 0.0


def make_extractor(options: dict):
    """An unfitted :class:`imgfeat.FeatureExtractor` for the widget's options (checked here:
    a bad option is an :class:`imgfeat.ImgfeatError` before any work starts)."""
    from imgfeat import FeatureExtractor

    fe = FeatureExtractor(**options)
    fe.model_config()  # checks every model option
    return fe


def config_key(options: dict) -> str:
    """What decides the vectors, as a short hash: every model option, the version, and for a
    model given as a file (``ae:``, ``flim:``, ``weights=``) that file's size and time."""
    from imgfeat import __version__
    from imgfeat.config import config_digest

    cfg = asdict(make_extractor(options).model_config())
    files = [cfg["model"].partition(":")[2] if cfg["model"].split(":")[0] in ("ae", "flim")
             else None, cfg.get("weights")]
    stamps = [_stamp(f) for f in files if f and f != "packaged"]
    return config_digest({"model": cfg, "version": __version__, "files": stamps})


def _stamp(path: str) -> list:
    p = Path(path)
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    return [file_key(str(q)) for q in files]


def embed_paths(paths: Sequence[str | None], options: dict, *, cache: VectorCache | None = None,
                extractor=None, batch_size: int = 16,
                progress: Callable[[float], None] = lambda _: None,
                cancelled: Callable[[], bool] = lambda: False) -> EmbedResult:
    """Embed ``paths`` (None: no image) with the model ``options`` (FeatureExtractor's keyword
    arguments). ``extractor``: a fitted FeatureExtractor of the same options to reuse. Raises
    :class:`EmbedCancelled` when ``cancelled()`` turns true."""
    t0 = time.perf_counter()
    n = len(paths)
    key = config_key(options)
    keys = [file_key(p) if p else None for p in paths]
    found = cache.get(key, keys) if cache is not None else [None] * n
    vectors: list[np.ndarray | None] = list(found)
    errors: dict[int, str] = {}
    for i, p in enumerate(paths):
        if not p:
            errors[i] = "no image path"
        elif keys[i] is None:
            errors[i] = f"{p}: no such file"
    todo = [i for i in range(n) if vectors[i] is None and i not in errors]
    cached = sum(v is not None for v in vectors)
    progress(100 * (n - len(todo)) / max(n, 1))
    computed = 0
    if todo:
        fe = extractor if extractor is not None else make_extractor(options)
        if not hasattr(fe, "extractor_"):
            fe.fit([paths[todo[0]]])
        for start in range(0, len(todo), batch_size):
            if cancelled():
                raise EmbedCancelled
            batch = todo[start:start + batch_size]
            got = _embed_batch(fe, [paths[i] for i in batch])
            fresh = []
            for i, (vec, err) in zip(batch, got, strict=True):
                if err is not None:
                    errors[i] = err
                else:
                    vectors[i] = vec
                    fresh.append((keys[i], vec))
            computed += len(fresh)
            if cache is not None and fresh:
                cache.put(key, fresh)
            progress(100 * (n - len(todo) + start + len(batch)) / n)
    ok = np.array([v is not None for v in vectors], dtype=bool)
    rows = [v for v in vectors if v is not None]
    dim = rows[0].shape[0] if rows else 0
    return EmbedResult(np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32),
                       ok, errors, computed, cached, time.perf_counter() - t0)


def _embed_batch(fe, paths: list[str]) -> list[tuple[np.ndarray | None, str | None]]:
    """Vectors of one batch; on a decoding failure, image by image (one bad file fails alone)."""
    from imgfeat import DecodeError

    try:
        return [(v, None) for v in fe.transform(paths)]
    except DecodeError:
        if len(paths) == 1:
            raise
    out: list[tuple[np.ndarray | None, str | None]] = []
    for p in paths:
        try:
            out.append((fe.transform([p])[0], None))
        except DecodeError as exc:
            out.append((None, str(exc) or os.path.basename(p)))
    return out
