"""The job writer: one output folder or prefix, shards written whole, a manifest per shard
written last, provenance, a frozen item list, resume. Format-blind: a :class:`ShardFormat`
serialises shards and merges them."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Sequence

from ..batches import ShardData
from ..errors import StoreError
from ..sources import Item
from ..storage import TMP_PREFIX, Location
from ..usage import arg
from .format import ShardFormat, check_format, formats, get_format
from .layout import (
    DATA,
    FAILURES,
    LAYOUT,
    MANIFESTS,
    META,
    PARTS,
    indices,
    layout_of,
    manifest_path,
    read_meta,
    shard_folder,
    shard_path,
)
from .listing import ITEMS, listing_changes, read_listing, write_listing
from .lock import LOCK


class JobStore:
    """One output folder or prefix. A shard is done when its manifest exists; the job when META
    says so. Use :meth:`open`, then (on resume) :meth:`check_listing`, then :meth:`begin`."""

    def __init__(self, out: str | os.PathLike, fmt: str, storage_options: dict | None = None):
        self.loc = Location(out, storage_options)
        self.fmt = fmt
        self.format: ShardFormat = get_format(check_format(fmt))
        self.config: dict = {}
        self.config_hash = ""
        self.metadata: dict = {}
        self.resuming = False

    @property
    def out(self) -> str:
        """The output folder's path or URL."""
        return self.loc.url

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
        if existing:
            self._refuse_earlier_layout(read_meta(loc, META))
        self.resuming = existing
        return existing

    def _refuse_earlier_layout(self, job: dict) -> None:
        """An output whose shards lie where this version does not put them is not resumed."""
        try:
            fmt = get_format(job.get("format", ""))
        except StoreError:
            return  # a format this process does not know: the configuration check says so
        if layout_of(job) < LAYOUT and fmt.shards_are_output:
            raise StoreError(f"cannot resume {self.out}: an earlier imgfeat wrote it (its Parquet "
                             f"parts at the top, not in {DATA}/); load_features reads it as it "
                             f"is, or run again with {arg('overwrite', True)}")

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
            complete = self.check_config(config, config_hash)
            self.loc.remove_temporaries()
            if not self.loc.is_file(ITEMS):
                write_listing(self.loc, items)
            return self.done_shards(complete=complete)
        try:
            self._write_json(META, self._meta(complete=False))
            write_listing(self.loc, items)
        except OSError as exc:
            raise StoreError(f"cannot write to {self.out}: {exc.strerror or exc}") from None
        return set()

    def check_config(self, config: dict, config_hash: str) -> bool:
        """Refuse to resume a job made with another configuration; True when it is complete."""
        old = read_meta(self.loc, META)
        if old.get("config_hash") != config_hash:
            diff = _differences(old.get("config", {}), config)
            raise StoreError(
                f"cannot resume {self.out}: it was made with another configuration "
                f"({old.get('config_hash')} vs {config_hash}; differs in "
                f"{', '.join(diff) or 'weights'})")
        return bool(old.get("complete"))

    def is_complete(self) -> bool:
        return self.loc.is_file(META) and bool(read_meta(self.loc, META).get("complete"))

    def finished(self, config: dict, config_hash: str, n_shards: int) -> bool:
        """Refuse to resume a job made with another configuration; True when the job is complete
        with all its ``n_shards`` shards (a resume then has nothing to do, in any format)."""
        return self.check_config(config, config_hash) and \
            self.done_shards(complete=True) >= set(range(n_shards))

    def done_shards(self, complete: bool = False) -> set[int]:
        """Shards whose manifest and data both exist (of a ``complete`` job in a merging format,
        every manifested shard: its data is in the final files)."""
        manifests = set(indices(self.loc.listdir(MANIFESTS), ".json"))
        if complete and not self.format.shards_are_output:
            return manifests
        data = indices(self.loc.listdir(shard_folder(self.format)), self.format.suffix)
        return manifests.intersection(data)

    def write_shard(self, data: ShardData) -> None:
        """Write the shard's data as one whole file, then its manifest (which marks it done)."""
        self.loc.write_bytes(shard_path(self.format, data.index),
                             self.format.shard_bytes(data, self.metadata_with_hash()))
        failures = [{"id": it.id, "path": it.path, "error": err}
                    for it, good, err in zip(data.items, data.ok, data.errors, strict=True)
                    if not good]
        self._write_json(manifest_path(data.index), {
            "shard": data.index, "items": len(data.items), "ok": int(data.ok.sum()),
            "failed": data.n_failed, "seconds": round(data.seconds, 3),
            "first_id": data.items[0].id, "last_id": data.items[-1].id, "failures": failures})

    def finish(self, n_shards: int) -> dict:
        """Merge the shards (formats that merge), write the failures list, and mark the job
        complete. Returns counts."""
        manifests = [read_meta(self.loc, manifest_path(i)) for i in range(n_shards)]
        if not self.format.shards_are_output:
            self.format.merge(self.loc, [shard_path(self.format, i) for i in range(n_shards)])
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
        if not self.format.shards_are_output:
            self.loc.remove(PARTS)
        return summary

    def summary(self) -> dict:
        return read_meta(self.loc, META).get("summary") or {}

    def dim(self) -> int:
        """Values per vector, as recorded when the job began."""
        return int(read_meta(self.loc, META).get("metadata", {}).get("dim", 0))

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
        return {"imgfeat_output": LAYOUT, "complete": complete, "format": self.fmt,
                "config_hash": self.config_hash, "config": self.config,
                "metadata": self.metadata, "summary": summary}

    def _remove_outputs(self) -> None:
        """Remove an existing output: the files of the format it was made in (of every known
        format when that cannot be told)."""
        old: list[ShardFormat] = []
        with contextlib.suppress(StoreError, KeyError):
            old = [get_format(read_meta(self.loc, META)["format"])]
        for fmt in old or formats():
            for layout in range(1, LAYOUT + 1):
                folder = shard_folder(fmt, layout)
                for index in indices(self.loc.listdir(folder), fmt.suffix):
                    self.loc.remove(shard_path(fmt, index, layout))
            for name in fmt.merged_files:
                self.loc.remove(name)
        if not self.loc.listdir(DATA):
            self.loc.remove(DATA)
        for name in (MANIFESTS, PARTS, FAILURES, ITEMS, META):
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
