"""Images held in NumPy arrays: N×H×W×C, N×H×W, or flat rows with a given shape."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..decode import MAX_PIXELS, array_to_rgb
from ..errors import DecodeError, SourceError
from ..usage import arg
from .base import Item, Source


class ArraySource(Source):
    """Rows of an array as images; ``id`` is the row number, zero-padded."""

    kind = "arrays"

    def __init__(self, data: np.ndarray | str | os.PathLike, labels=None,
                 height: int | None = None, width: int | None = None,
                 channels: int | None = None):
        self.data_path = None
        if isinstance(data, str | os.PathLike):
            self.data_path = Path(data)
            data = _load(self.data_path)
        if isinstance(labels, str | os.PathLike):
            labels = _load(Path(labels))
        self.shape_args = (height, width, channels)
        data = _shaped(data, height, width, channels)
        self.data = data
        if labels is not None:
            labels = np.asarray(labels)
            if labels.ndim != 1:
                hint = " (one-hot rows? pass y.argmax(1))" if labels.ndim == 2 else ""
                raise SourceError(f"labels must be 1-D, one per image: got shape "
                                  f"{labels.shape} for {len(data)} images{hint}")
            if len(labels) != len(data):
                raise SourceError(f"{len(labels)} labels for {len(data)} images")
        width_id = len(str(len(data) - 1))
        items = [Item(id=str(i).zfill(width_id), index=i,
                      label=None if labels is None else str(labels[i]))
                 for i in range(len(data))]
        super().__init__(items)

    def local_copy(self) -> ArraySource:
        """A copy without its items; an array mapped from its file is not copied either: the
        receiving process maps the file again (:meth:`__setstate__`)."""
        light = super().local_copy()
        if self.data_path is not None and _mapped(self.data):
            light.data = None
        return light

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.data is None:  # a local copy of a mapped file: map it here
            self.data = _shaped(_load(self.data_path), *self.shape_args)

    def read(self, item: Item, max_pixels: int = MAX_PIXELS, min_side: int | None = None
             ) -> Image.Image:
        arr = np.asarray(self.data[item.index])
        if arr.shape[0] * arr.shape[1] > max_pixels:
            raise DecodeError("image over the pixel limit")
        return array_to_rgb(arr)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.data_path.resolve()) if self.data_path else None,
                "shape": list(self.data.shape), "dtype": str(self.data.dtype),
                "count": len(self.items)}


def _shaped(data, height: int | None, width: int | None, channels: int | None) -> np.ndarray:
    """``data`` as N×H×W(×C) images (flat rows reshaped, N×C×H×W transposed), or a
    :class:`SourceError` that says what to pass."""
    data = np.asarray(data) if not isinstance(data, np.ndarray) else data
    if data.ndim == 2:
        d = data.shape[1]
        if not (height and width):
            raise SourceError(f"flat rows of {d} values need {arg('height')} and "
                              f"{arg('width')} (and {arg('channels')}){_square_hint(d)}")
        c = channels or 1
        if height * width * c != d:
            hint = ""
            if channels is None and height * width * 3 == d:
                hint = f"; RGB rows? add {arg('channels', 3)}"
            raise SourceError(f"rows have {d} values, not {height}x{width}x{c} = "
                              f"{height * width * c}{hint}")
        data = data.reshape(len(data), height, width, c) if c > 1 else data.reshape(
            len(data), height, width)
    elif data.ndim == 4 and data.shape[1] in (1, 3, 4) and data.shape[3] not in (1, 3, 4):
        data = data.transpose(0, 2, 3, 1)  # N×C×H×W given
    if data.ndim not in (3, 4):
        raise SourceError(f"image array must be N×H×W(×C) or flat N×D, got shape {data.shape}")
    if len(data) == 0:
        raise SourceError("image array is empty")
    return data


def _mapped(arr: np.ndarray) -> bool:
    """Whether ``arr`` is (a view of) an array mapped from a file."""
    while arr is not None:
        if isinstance(arr, np.memmap):
            return True
        arr = arr.base if isinstance(arr.base, np.ndarray) else None
    return False


def _square_hint(d: int) -> str:
    """A suggestion for flat rows of ``d`` values that are square grey or RGB images."""
    for c in (1, 3):
        side = round((d / c) ** 0.5)
        if side * side * c == d:
            extra = f" {arg('channels', 3)}" if c == 3 else ""
            return f"; square images? {arg('height', side)} {arg('width', side)}{extra}"
    return ""


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SourceError(f"array file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return z[z.files[0]]
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SourceError(f"cannot read array file {path.name}: {exc}") from None
