"""What every source yields: items with a stable id, an optional label and split."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from PIL import Image

from ..decode import MAX_PIXELS, open_file, open_image
from ..errors import DecodeError
from ..storage import StorageUnavailableError, is_url, read_bytes


@dataclass(frozen=True)
class Item:
    """One image to extract. ``id`` is unique within the source (a relative path, or a row)."""

    id: str
    path: str | None = None
    label: str | None = None
    split: str | None = None
    index: int | None = None  # row in an array source
    error: str | None = None  # set when the item is already known to be bad (e.g. a bad CSV row)


class Source:
    """A sequence of items plus the way to read one of them as an RGB image."""

    kind = "base"
    #: options of the fsspec back-end that reads URL items (credentials stay out of outputs)
    storage_options: dict = {}

    def __init__(self, items: Sequence[Item]):
        self.items = [_absolute(it) for it in items]
        ids = [it.id for it in self.items]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            from ..errors import SourceError

            raise SourceError(f"duplicate item id {dup!r}")

    def __len__(self) -> int:
        return len(self.items)

    def local_copy(self) -> Source:
        """A copy without its item list, for a process on this machine that is sent the items
        it reads (a compute process)."""
        import copy

        light = copy.copy(self)
        light.items = []
        return light

    def read(self, item: Item, max_pixels: int = MAX_PIXELS, min_side: int | None = None
             ) -> Image.Image:
        """Decode one item; raises DecodeError with the reason."""
        if item.error:
            raise DecodeError(item.error)
        if item.path is None:
            raise DecodeError("item has no path")
        if is_url(item.path):
            return open_image(fetch(item.path, self.storage_options), max_pixels=max_pixels,
                              min_side=min_side)
        return open_image(item.path, max_pixels=max_pixels, min_side=min_side)

    def read_encoded(self, item: Item) -> bytes | None:
        """One item's encoded file, not decoded (for a decoder elsewhere: the GPU's), or None
        when the item is not a file (arrays) and only :meth:`read` gives its pixels."""
        if item.error:
            raise DecodeError(item.error)
        if item.path is None:
            return None
        if is_url(item.path):
            return fetch(item.path, self.storage_options)
        with open_file(item.path) as fh:
            try:
                return fh.read()
            except OSError as exc:
                raise DecodeError(f"cannot read: {exc.strerror or exc}") from None

    def describe(self) -> dict:
        """What identifies the source in the configuration hash."""
        return {"kind": self.kind, "count": len(self.items)}

    @property
    def labels(self) -> list[str | None]:
        return [it.label for it in self.items]


def _absolute(item: Item) -> Item:
    """``item`` with its local path made absolute (a URL stays as it is): outputs record paths a
    client anywhere on the machine can open, whatever folder imgfeat ran in."""
    if item.path is None or "://" in item.path or os.path.isabs(item.path):
        return item
    return replace(item, path=os.path.abspath(item.path))


def fetch(url: str, storage_options: dict | None = None) -> bytes:
    """An image's bytes from a URL. A missing or forbidden object is this item's failure; storage
    still failing after retries raises :class:`StorageUnavailableError` (the shard is retried by
    ``--resume``, the image not recorded as bad)."""
    try:
        return read_bytes(url, storage_options)
    except StorageUnavailableError:
        raise
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except (OSError, ValueError) as exc:
        raise DecodeError(f"cannot read: {type(exc).__name__}: {exc}") from None
