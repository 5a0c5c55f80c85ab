"""Where everything lives in an output folder: the job's JSON files, each shard's manifest and
data (:func:`shard_path`, the one place a shard's location is derived)."""

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
#: the list of failed images; its leading underscore keeps it out of the Parquet dataset that
#: pandas, polars, duckdb and pyarrow read from the folder (failed rows are in the dataset too)
FAILURES = "_failures.csv"
#: where the shards of formats that merge at the end are kept until then
PARTS = "_parts"


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def manifest_path(index: int) -> str:
    """A shard's manifest (written last: the shard is done when it exists)."""
    return f"{MANIFESTS}/{part_name(index)}.json"


def shard_path(fmt: ShardFormat, index: int) -> str:
    """Where shard ``index`` of a job in ``fmt`` lives, relative to the output: at the top when
    the shards are the output itself (Parquet parts), else under ``_parts/`` until the merge."""
    name = f"{part_name(index)}{fmt.suffix}"
    return name if fmt.shards_are_output else f"{PARTS}/{name}"


def shard_folder(fmt: ShardFormat) -> str:
    """The folder that holds a job's shards ("" for the output itself)."""
    return shard_path(fmt, 0).rpartition("/")[0]


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
