"""Where everything lives in an output folder: the job's JSON files, each shard's manifest and
data (:func:`shard_path`, the one place a shard's location is derived).

Layout 2 (this version): a format whose shards are the output (Parquet) keeps them in ``data/``,
a folder of data files alone that pandas, pyarrow, polars, duckdb and Hugging Face ``datasets``
open as a folder; the job's own files (``_imgfeat.json``, ``_manifests/``, ``_items.arrow``,
``_failures.csv``) lie beside it. Layout 1 (earlier versions) had the parts at the top.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..usage import arg

if TYPE_CHECKING:
    from ..storage import Location
    from .format import ShardFormat

META = "_imgfeat.json"
MANIFESTS = "_manifests"
#: the list of failed images (they are not in the data: their vectors do not exist)
FAILURES = "_failures.csv"
#: where the shards of formats that merge at the end are kept until then
PARTS = "_parts"
#: where the shards of formats whose shards are the output live (layout 2)
DATA = "data"
#: the output layout this version writes, recorded as ``imgfeat_output`` in ``_imgfeat.json``
LAYOUT = 2


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def manifest_path(index: int) -> str:
    """A shard's manifest (written last: the shard is done when it exists)."""
    return f"{MANIFESTS}/{part_name(index)}.json"


def shard_path(fmt: ShardFormat, index: int, layout: int = LAYOUT) -> str:
    """Where shard ``index`` of a job in ``fmt`` lives, relative to the output: in ``data/``
    when the shards are the output itself (Parquet parts; at the top in layout 1), else under
    ``_parts/`` until the merge."""
    name = f"{part_name(index)}{fmt.suffix}"
    if not fmt.shards_are_output:
        return f"{PARTS}/{name}"
    return f"{DATA}/{name}" if layout >= 2 else name


def shard_folder(fmt: ShardFormat, layout: int = LAYOUT) -> str:
    """The folder that holds a job's shards ("" for the output itself)."""
    return shard_path(fmt, 0, layout).rpartition("/")[0]


def layout_of(job: dict) -> int:
    """The layout of an output from its ``_imgfeat.json``."""
    return int(job.get("imgfeat_output") or 1)


def indices(names: Iterable[str], suffix: str) -> list[int]:
    """The shard indices of ``part-NNNNN<suffix>`` names, sorted."""
    return sorted(int(n[5:-len(suffix)]) for n in names
                  if n.startswith("part-") and n.endswith(suffix) and n[5:-len(suffix)].isdigit())


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
