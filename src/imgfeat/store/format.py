"""Output formats as plug-ins: the :class:`ShardFormat` contract and its name registry.

As Ray Data's datasinks and img2dataset's writers, a format says how one shard is written and
read, and how a finished job's shards are merged; the job writer (:mod:`.job`) and the reader
(:mod:`.reader`) never ask which format they hold. The registry is cheap to import (no numpy, no
pyarrow): a built-in format's module is imported when the format is first used.

A new format is one module defining ``FORMAT = MyFormat()`` and one line in ``_BUILTIN`` (or a
:func:`register_format` call from anywhere).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StoreError

if TYPE_CHECKING:
    from ..batches import ShardData
    from ..storage import Location

#: Columns of a shard as read back: ``ids``, ``paths``, ``labels``, ``splits``, ``errors`` and
#: ``ok`` over all its items, ``vectors`` for the items that succeeded (in order)
Columns = dict[str, Any]


class ShardFormat:
    """How one output format writes a shard, reads it back, and merges a finished job.

    Shards are serialised in memory and written whole by the job writer (temporary file and
    rename, or one object), so a format never sees storage while a shard is written.
    """

    #: the name users give (``format="parquet"``)
    name: str = ""
    #: a shard file's suffix (``.parquet``)
    suffix: str = ""
    #: True: the shards are the output itself (Parquet parts); False: they are kept under
    #: ``_parts/`` and :meth:`merge` writes the final files when the job finishes
    shards_are_output: bool = False
    #: the files :meth:`merge` writes (an overwrite removes them)
    merged_files: tuple[str, ...] = ()
    #: endings of single files :meth:`read_file` reads (``load_features("x_data.npy")``)
    file_endings: tuple[str, ...] = ()

    def shard_bytes(self, data: ShardData, metadata: dict) -> bytes:
        """One shard, every item (failed ones with their error), as the bytes of one file."""
        raise NotImplementedError

    def read_shard(self, raw: bytes) -> Columns:
        """A shard written by :meth:`shard_bytes`, as :data:`Columns`."""
        raise NotImplementedError

    def merge(self, out: Location, shards: list[str]) -> None:
        """Write the final files of a finished job from its shards (in order). Each file must
        appear whole or not at all (``out.write_bytes`` / ``out.open_write``)."""
        if not self.shards_are_output:
            raise NotImplementedError

    def read_merged(self, out: Location) -> Columns:
        """The final files of a finished job: :data:`Columns` of the succeeded items."""
        raise NotImplementedError

    def read_file(self, path: str, storage_options: dict | None) -> tuple[Columns, dict]:
        """One file whose name ends with one of :attr:`file_endings`: columns and metadata."""
        raise StoreError(f"{self.name}: cannot read single files")

    def __repr__(self) -> str:
        return f"<ShardFormat {self.name}>"


#: built-in formats: name -> module (relative to this package) defining ``FORMAT``
_BUILTIN = {"parquet": ".parquet", "npy": ".npy", "csv": ".csv", "csv-plain": ".csv_plain"}
_FORMATS: dict[str, ShardFormat | str] = dict(_BUILTIN)


def register_format(fmt: ShardFormat) -> ShardFormat:
    """Make ``fmt`` available by its name to ``extract``, resume and ``load_features``."""
    if not fmt.name or not fmt.suffix:
        raise ValueError("a ShardFormat needs a name and a suffix")
    _FORMATS[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    """Forget a format registered with :func:`register_format` (built-ins come back)."""
    if name in _BUILTIN:
        _FORMATS[name] = _BUILTIN[name]
    else:
        _FORMATS.pop(name, None)


def format_names() -> tuple[str, ...]:
    """The registered formats' names (without importing any of them)."""
    return tuple(_FORMATS)


def check_format(name: str) -> str:
    """``name`` if a format is registered under it, else a :class:`ConfigError`."""
    if name not in _FORMATS:
        raise ConfigError(f"format must be one of {', '.join(_FORMATS)}, not {name!r}")
    return name


def get_format(name: str) -> ShardFormat:
    """The format registered as ``name`` (a :class:`StoreError` for an output made in a format
    this process does not know)."""
    fmt = _FORMATS.get(name)
    if fmt is None:
        raise StoreError(f"unknown output format {name!r} (known: {', '.join(_FORMATS)})")
    if isinstance(fmt, str):
        fmt = _FORMATS[name] = importlib.import_module(fmt, __package__).FORMAT
    return fmt


def formats() -> list[ShardFormat]:
    """Every registered format (importing the built-in ones)."""
    return [get_format(name) for name in _FORMATS]

