"""The units of work that flow from sources through engines to stores: shards of items, decoded
batches and a shard's vectors. Plain data: nothing here knows about models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .sources import Item

if TYPE_CHECKING:
    import torch


@dataclass
class Shard:
    """A fixed slice of the source's items: shard ``index`` holds items [start, stop)."""

    index: int
    items: list[Item]


@dataclass
class DecodedBatch:
    """Decoded images of one batch: ``ok`` positions (into the shard) and their uint8 pixels."""

    shard: int
    positions: list[int]
    pixels: torch.Tensor | None  # (n_ok, 3, H, W) uint8
    ok: list[int]
    errors: dict[int, str]
    #: set when storage was unavailable for an item (not a bad image): the shard must fail
    unavailable: str | None = None
    #: encoded JPEGs (uint8 bytes) left for the device to decode, by position (device_jpeg)
    jpegs: dict[int, torch.Tensor] = field(default_factory=dict)
    #: the ``ok`` items' vectors, when the process that decoded the batch also embedded it
    #: (its pixels are then dropped: :mod:`imgfeat.engines.compute`)
    vectors: np.ndarray | None = None

    def pin_memory(self) -> DecodedBatch:
        """This batch with its tensors in pinned memory (DataLoader's ``pin_memory``), so that
        their copy to a GPU overlaps with work."""
        if self.pixels is not None:
            self.pixels = self.pixels.pin_memory()
        self.jpegs = {p: t.pin_memory() for p, t in self.jpegs.items()}
        return self


@dataclass
class ShardData:
    """The vectors of one shard (rows for succeeded items only) and every item's status."""

    index: int
    items: list[Item]
    vectors: np.ndarray  # (n_ok, D)
    ok: np.ndarray  # bool mask over items
    errors: list[str | None]
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return int((~self.ok).sum())


@dataclass
class ShardUnavailable:
    """A shard that could not run because storage stayed unavailable: nothing of it is recorded,
    so ``--resume`` runs it again (engines yield it in place of :class:`ShardData`)."""

    index: int
    items: list[Item]
    reason: str


def make_shards(items: Sequence[Item], shard_size: int) -> list[Shard]:
    """Deterministic shards: the same source and size always give the same shards."""
    return [Shard(i // shard_size, list(items[i:i + shard_size]))
            for i in range(0, len(items), shard_size)]
