"""The frozen item list of a job (``_items.arrow``): written at the start, used by every resume.

An Arrow IPC file, not Parquet: a ``.parquet`` file with another schema in the output folder
would break readers (duckdb, polars) that take the folder's ``*.parquet`` as the dataset.

A bucket or folder that changes between a run and its resume cannot reshuffle the shards: the
change is detected and refused, unless the user asks to finish with the frozen list.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pyarrow as pa

from ..sources import Item
from ..storage import Location

ITEMS = "_items.arrow"
_FIELDS = ("id", "path", "label", "split", "error")


def write_listing(out: Location, items: Sequence[Item]) -> None:
    """Freeze ``items`` as one whole file."""
    cols = {f: pa.array([getattr(it, f) for it in items], type=pa.string()) for f in _FIELDS}
    cols["index"] = pa.array([it.index for it in items], type=pa.int64())
    table = pa.table(cols)
    buf = io.BytesIO()
    with pa.ipc.new_file(buf, table.schema,
                         options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    out.write_bytes(ITEMS, buf.getvalue())


def read_listing(out: Location) -> list[Item] | None:
    """The frozen items, or None when the job has none (made before listings were frozen)."""
    if not out.is_file(ITEMS):
        return None
    table = pa.ipc.open_file(pa.BufferReader(out.read_bytes(ITEMS))).read_all()
    cols = {name: table.column(name).to_pylist() for name in (*_FIELDS, "index")}
    return [Item(**{name: cols[name][k] for name in cols}) for k in range(table.num_rows)]


def listing_changes(frozen: Sequence[Item], current: Sequence[Item]) -> str | None:
    """None when both lists are the same; else a short account of what changed."""
    if list(frozen) == list(current):
        return None
    old = {it.id: it for it in frozen}
    new = {it.id: it for it in current}
    added = sum(1 for i in new if i not in old)
    gone = sum(1 for i in old if i not in new)
    changed = sum(1 for i in new if i in old and new[i] != old[i])
    parts = [f"{n} {what}" for n, what in ((added, "new"), (gone, "gone"), (changed, "changed"))
             if n]
    return ", ".join(parts) or "items reordered"
