"""FLIM marker files: the pixels a user marked on an image, with their class labels.

One text file per marked image, named ``<image stem>.txt``::

    N W H            number of marked pixels, image width, image height
    x y id label     one line per marked pixel (x = column, y = row)

``id`` names the stroke a pixel belongs to (``-1`` when the writer did not say). ``label`` is the
pixel's class. The LIDS tools disagree on whether labels start at 0 or 1, so every reader and
writer here takes an explicit *label base*; in memory labels are always 0-based.

The public API (stable: the annotation tool builds on it)::

    m = read_markers("img/0001.txt")                     # base detected, warns when ambiguous
    m = read_markers("img/0001.txt", label_base=1)       # the original FLIM convention
    write_markers("img/0001.txt", m, label_base=1)       # atomic
    m = markers_from_mask(mask_array, ignore=255, seed=0)
    m = markers_from_image_label(128, 128, label=3, seed=0)
    ids = m.stroke_ids()                                 # connected strokes, one id each

Nothing here imports torch: a lightweight tool can read and write markers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImgfeatError, ImgfeatWarning
from ..storage import atomic_path
from .options import LABEL_BASES

__all__ = [
    "LABEL_BASES",
    "MARKER_SUFFIX",
    "MarkerError",
    "Markers",
    "detect_label_base",
    "format_markers",
    "marker_path",
    "markers_from_image_label",
    "markers_from_mask",
    "parse_markers",
    "read_marker_set",
    "read_markers",
    "write_markers",
]

MARKER_SUFFIX = ".txt"
"""A marker file is ``<image stem>.txt`` next to (or in a folder parallel to) its image."""

UNASSIGNED = -1
"""The ``id`` of a pixel whose stroke the writer did not name."""

MAX_VALUE = 2**31 - 1
"""The largest coordinate, stroke id or label a marker file may hold (they are int32 in memory)."""

MAX_SIDE = 2**20
"""The largest image width or height a marker file header may name."""


class MarkerError(ImgfeatError):
    """A marker file that cannot be read or does not fit its image."""


@dataclass(frozen=True, eq=False)
class Markers:
    """The marked pixels of one image.

    Attributes:
        width, height: size of the image the markers were drawn on (pixels).
        x, y: column and row of each marked pixel (int32 arrays, same length).
        marker_id: stroke id of each pixel as written in the file (int32; ``-1`` = not given).
        label: 0-based class label of each pixel (int32, ``>= 0``).

    Arrays are validated and made read-only on construction: pixels lie inside the image, no
    pixel is marked twice.
    """

    width: int
    height: int
    x: np.ndarray
    y: np.ndarray
    marker_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    label: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(np.asarray(self.x).reshape(-1))
        arrays = {
            "x": self.x,
            "y": self.y,
            "marker_id": np.full(n, UNASSIGNED) if self.marker_id is None else self.marker_id,
            "label": np.zeros(n) if self.label is None else self.label,
        }
        for name, value in arrays.items():
            arr = np.array(value, dtype=np.int32).reshape(-1)
            if len(arr) != n:
                raise MarkerError(f"markers: {name} has {len(arr)} values, x has {n}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise MarkerError(f"markers: image size {self.width}x{self.height} must be positive")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        _check_inside(self.x, self.y, self.width, self.height, "markers")
        if n and int(self.label.min()) < 0:
            raise MarkerError("markers: labels must be >= 0 (0-based in memory)")
        _check_unique(self.x, self.y, self.width, "markers")

    def __len__(self) -> int:
        return len(self.x)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Markers):
            return NotImplemented
        return (self.width, self.height) == (other.width, other.height) and all(
            np.array_equal(getattr(self, k), getattr(other, k)) for k in ("x", "y", "marker_id", "label")
        )

    def __repr__(self) -> str:
        return (
            f"Markers({self.width}x{self.height}, {len(self)} pixels, "
            f"labels {sorted(set(self.label.tolist()))})"
        )

    @property
    def labels(self) -> np.ndarray:
        """The distinct 0-based labels present, sorted."""
        return np.unique(self.label)

    def to_label_image(self, fill: int = -1) -> np.ndarray:
        """An (H, W) int32 image: each marked pixel's label, ``fill`` elsewhere."""
        img = np.full((self.height, self.width), fill, dtype=np.int32)
        img[self.y, self.x] = self.label
        return img

    def stroke_ids(self, per_label: bool = False) -> np.ndarray:
        """One id per pixel naming its marker, 0..M-1 in a stable order.

        By default a marker is a connected stroke (8-connected pixels of one label); with
        ``per_label`` all pixels of one label form one marker. File ids are not used: strokes
        are recomputed from the pixels, so every writer's files are grouped the same way.
        """
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        if per_label:
            return np.unique(self.label, return_inverse=True)[1].astype(np.int64)
        from scipy import ndimage

        ids = np.empty(len(self), dtype=np.int64)
        offset = 0
        for lab in np.unique(self.label):
            sel = np.flatnonzero(self.label == lab)
            mask = np.zeros((self.height, self.width), dtype=bool)
            mask[self.y[sel], self.x[sel]] = True
            comp, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
            ids[sel] = comp[self.y[sel], self.x[sel]] - 1 + offset
            offset += n
        return ids

    def resized(self, width: int, height: int) -> Markers:
        """The markers mapped onto the same image resized to ``width`` x ``height``.

        Each pixel maps to the pixel containing its centre; pixels that collide keep the first.
        """
        if (width, height) == (self.width, self.height):
            return self
        nx = np.minimum(((self.x + 0.5) * width / self.width).astype(np.int64), width - 1)
        ny = np.minimum(((self.y + 0.5) * height / self.height).astype(np.int64), height - 1)
        _, keep = np.unique(ny * width + nx, return_index=True)
        keep.sort()
        return Markers(width, height, nx[keep], ny[keep], self.marker_id[keep], self.label[keep])

    @classmethod
    def concat(cls, parts: Sequence[Markers]) -> Markers:
        """Markers of one image merged from several parts (same size; no pixel in two parts)."""
        if not parts:
            raise MarkerError("markers: nothing to concatenate")
        w, h = parts[0].width, parts[0].height
        if any((p.width, p.height) != (w, h) for p in parts):
            raise MarkerError("markers: cannot merge markers drawn on images of different sizes")
        cat = [np.concatenate([getattr(p, k) for p in parts]) for k in ("x", "y", "marker_id", "label")]
        return cls(w, h, *cat)


def _check_inside(x: np.ndarray, y: np.ndarray, width: int, height: int, where: str) -> None:
    bad = np.flatnonzero((x < 0) | (x >= width) | (y < 0) | (y >= height))
    if len(bad):
        i = int(bad[0])
        raise MarkerError(
            f"{where}: marker pixel ({int(x[i])}, {int(y[i])}) lies outside the {width}x{height} image"
            + (f" ({len(bad)} such pixels)" if len(bad) > 1 else "")
        )


def _check_unique(x: np.ndarray, y: np.ndarray, width: int, where: str) -> None:
    flat = y.astype(np.int64) * width + x
    uniq, first, counts = np.unique(flat, return_index=True, return_counts=True)
    if len(uniq) != len(flat):
        i = int(first[np.flatnonzero(counts > 1)[0]])
        raise MarkerError(f"{where}: pixel ({int(x[i])}, {int(y[i])}) is marked more than once")


# --------------------------------------------------------------------------------------------
# Files


def marker_path(image_path: str | os.PathLike, markers_dir: str | os.PathLike | None = None) -> Path:
    """The marker file of an image: ``<image stem>.txt`` in ``markers_dir`` (default: beside it)."""
    p = Path(image_path)
    folder = Path(markers_dir) if markers_dir is not None else p.parent
    return folder / f"{p.stem}{MARKER_SUFFIX}"


def _parse(path: Path) -> tuple[int, int, np.ndarray]:
    """Header size and the raw (N, 4) int64 rows of a marker file, validated for shape."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MarkerError(f"{path}: marker file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MarkerError(f"{path}: cannot read marker file ({exc})") from None
    return _parse_text(text, path)


def _parse_text(text: str, path: Path | str) -> tuple[int, int, np.ndarray]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise MarkerError(f"{path}: empty marker file (expected a header 'N W H')")
    head = lines[0].split()
    if len(head) == 4:
        raise MarkerError(f"{path}: header '{lines[0].strip()}' describes a 3-D volume; only 2-D images")
    try:
        n, w, h = (int(v) for v in head)
    except ValueError:
        raise MarkerError(f"{path}: header '{lines[0].strip()}' is not 'N W H' (three integers)") from None
    if w <= 0 or h <= 0 or n < 0 or w > MAX_SIDE or h > MAX_SIDE:
        raise MarkerError(f"{path}: header '{lines[0].strip()}' has a bad count or size")
    body = lines[1:]
    if len(body) != n:
        raise MarkerError(f"{path}: header says {n} marked pixels, the file has {len(body)} lines")
    if n == 0:
        return w, h, np.zeros((0, 4), dtype=np.int64)
    try:
        rows = np.array(" ".join(body).split(), dtype=np.int64)
        ok = len(rows) == 4 * n
    except (ValueError, OverflowError):
        ok = False
    if not ok:
        for lineno, line in enumerate(body, start=2):
            parts = line.split()
            if len(parts) != 4 or not all(_is_int(v) for v in parts):
                raise MarkerError(f"{path}: line {lineno} '{line.strip()}' is not 'x y id label'")
            if not all(abs(int(v)) <= MAX_VALUE for v in parts):
                raise MarkerError(f"{path}: line {lineno} '{line.strip()}' holds a number beyond "
                                  f"{MAX_VALUE:,}")
    big = np.flatnonzero(np.abs(rows) > MAX_VALUE)
    if len(big):
        lineno = int(big[0]) // 4 + 2
        raise MarkerError(f"{path}: line {lineno} '{body[lineno - 2].strip()}' holds a number beyond "
                          f"{MAX_VALUE:,}")
    return w, h, rows.reshape(n, 4)


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def detect_label_base(raw_labels: Iterable[np.ndarray]) -> tuple[int, bool]:
    """The label base of raw file labels, and whether that guess is ambiguous.

    A 0 anywhere means base 0. With no 0, base 1 (the original FLIM convention) is assumed, and
    the guess is ambiguous: base-0 files whose class 0 was never marked look the same.
    """
    lows = [int(np.min(lab)) for lab in raw_labels if len(lab)]
    if not lows:
        return 1, True
    low = min(lows)
    if low < 0:
        raise MarkerError(f"marker label {low} is negative")
    return (0, False) if low == 0 else (1, True)


def _warn_ambiguous(where: str) -> None:
    warnings.warn(
        f"{where}: no label 0 is marked, so the label base is ambiguous; assuming labels start "
        "at 1 (pass label_base / --label-base 0|1 to say)",
        ImgfeatWarning,
        stacklevel=3,
    )


def _check_base(label_base: int | None) -> None:
    if label_base is not None and label_base not in LABEL_BASES:
        raise MarkerError(f"label base must be 0 or 1, not {label_base!r}")


def _build(path: Path | str, w: int, h: int, rows: np.ndarray, base: int) -> Markers:
    labels = rows[:, 3] - base
    if len(labels) and labels.min() < 0:
        i = int(np.argmin(labels))
        raise MarkerError(
            f"{path}: label {int(rows[i, 3])} at ({int(rows[i, 0])}, {int(rows[i, 1])}) is below "
            f"the label base {base}"
        )
    _check_inside(rows[:, 0], rows[:, 1], w, h, str(path))
    _check_unique(rows[:, 0], rows[:, 1], w, str(path))
    return Markers(w, h, rows[:, 0], rows[:, 1], rows[:, 2], labels)


def read_markers(path: str | os.PathLike, label_base: int | None = None) -> Markers:
    """Read one marker file; labels come back 0-based.

    ``label_base`` says whether the file's labels start at 0 or 1. ``None`` detects it: a 0 label
    means base 0; otherwise base 1 is assumed with an :class:`~imgfeat.ImgfeatWarning`. For a set
    of files use :func:`read_marker_set`, which detects one base across all of them.
    Raises :class:`MarkerError` on a malformed header or line, a count that disagrees with the
    header, a pixel outside the image, a pixel marked twice, or a label below the base.
    """
    _check_base(label_base)
    path = Path(path)
    w, h, rows = _parse(path)
    if label_base is None:
        label_base, ambiguous = detect_label_base([rows[:, 3]])
        if ambiguous and len(rows):
            _warn_ambiguous(str(path))
    return _build(path, w, h, rows, label_base)


def parse_markers(data: bytes | str, label_base: int | None = None, where: str = "markers") -> Markers:
    """Markers from the content of a marker file (``where`` names it in errors); as
    :func:`read_markers` otherwise."""
    _check_base(label_base)
    try:
        text = data.decode() if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise MarkerError(f"{where}: cannot read marker file ({exc})") from None
    w, h, rows = _parse_text(text, where)
    if label_base is None:
        label_base, ambiguous = detect_label_base([rows[:, 3]])
        if ambiguous and len(rows):
            _warn_ambiguous(where)
    return _build(where, w, h, rows, label_base)


def read_marker_set(
    paths: Sequence[str | os.PathLike], label_base: int | None = None
) -> tuple[list[Markers], int]:
    """Read several marker files with one label base (detected across all of them when ``None``).

    Returns the markers (0-based labels) and the base used; warns once when the base is ambiguous
    (not when the files' folder has a ``flim-markers.json`` sidecar saying it).
    """
    _check_base(label_base)
    parsed = [(Path(p), *_parse(Path(p))) for p in paths]
    if label_base is None:  # the folder's sidecar (flim-markers.json) says it, if there is one
        from .sidecar import sidecar_base_for

        label_base = sidecar_base_for(p for p, *_ in parsed)
    if label_base is None:
        label_base, ambiguous = detect_label_base(rows[:, 3] for _, _, _, rows in parsed)
        if ambiguous and any(len(r) for *_, r in parsed):
            _warn_ambiguous(f"{len(parsed)} marker files")
    return [_build(p, w, h, rows, label_base) for p, w, h, rows in parsed], label_base


def write_markers(path: str | os.PathLike, markers: Markers, label_base: int = 0) -> Path:
    """Write ``markers`` to ``path`` atomically, labels shifted to ``label_base`` (0 or 1)."""
    if label_base not in LABEL_BASES:
        raise MarkerError(f"label base must be 0 or 1, not {label_base!r}")
    path = Path(path)
    text = format_markers(markers, label_base)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def format_markers(markers: Markers, label_base: int = 0) -> str:
    """The text of a marker file holding ``markers``, labels shifted to ``label_base``."""
    if label_base not in LABEL_BASES:
        raise MarkerError(f"label base must be 0 or 1, not {label_base!r}")
    rows = np.stack([markers.x, markers.y, markers.marker_id, markers.label + label_base], axis=1)
    body = "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rows.tolist())
    return f"{len(markers)} {markers.width} {markers.height}\n{body}"


# --------------------------------------------------------------------------------------------
# Markers for users who drew none


def _stroke_pixels(
    cx: float, cy: float, angle: float, length: int, thickness: int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a straight stroke (a thick line segment) centred at (cx, cy), clipped to the image."""
    steps = max(int(length), 1)
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, steps) if steps > 1 else np.zeros(1)
    px = cx + t * np.cos(angle)
    py = cy + t * np.sin(angle)
    r = max(int(thickness), 1)
    off = np.arange(r) - (r - 1) // 2
    ox, oy = np.meshgrid(off, off)
    xs = np.rint(px[:, None] + ox.reshape(1, -1)).astype(np.int64).reshape(-1)
    ys = np.rint(py[:, None] + oy.reshape(1, -1)).astype(np.int64).reshape(-1)
    keep = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    flat = np.unique(ys[keep] * width + xs[keep])
    return flat % width, flat // width


def markers_from_image_label(
    width: int,
    height: int,
    label: int,
    *,
    strokes: int = 3,
    length: int | None = None,
    thickness: int = 3,
    seed: int | np.random.Generator | None = 0,
) -> Markers:
    """Markers for a classification image nobody drew on: ``strokes`` short straight strokes.

    Every stroke carries the image's class ``label`` (0-based) and lies at a random position and
    angle (``length`` defaults to a quarter of the shorter side). Strokes that would overlap
    keep the pixels of the first.
    """
    if label < 0:
        raise MarkerError(f"markers: label {label} must be >= 0 (0-based)")
    if strokes < 1:
        raise MarkerError(f"markers: strokes must be >= 1, not {strokes}")
    rng = np.random.default_rng(seed)
    length = length if length is not None else max(min(width, height) // 4, 1)
    margin_x, margin_y = min(length / 2, width / 2), min(length / 2, height / 2)
    taken = np.zeros(height * width, dtype=bool)
    xs, ys, ids = [], [], []
    for s in range(strokes):
        cx = rng.uniform(margin_x, max(width - margin_x, margin_x + 1e-9)) - 0.5
        cy = rng.uniform(margin_y, max(height - margin_y, margin_y + 1e-9)) - 0.5
        x, y = _stroke_pixels(cx, cy, rng.uniform(0, np.pi), length, thickness, width, height)
        new = ~taken[y * width + x]
        x, y = x[new], y[new]
        taken[y * width + x] = True
        xs.append(x)
        ys.append(y)
        ids.append(np.full(len(x), s))
    x, y, i = np.concatenate(xs), np.concatenate(ys), np.concatenate(ids)
    return Markers(width, height, x, y, i, np.full(len(x), label))


def markers_from_mask(
    mask: np.ndarray,
    *,
    ignore: Sequence[int] | int | None = None,
    strokes_per_region: int = 1,
    length: int = 15,
    thickness: int = 3,
    min_region: int = 1,
    seed: int | np.random.Generator | None = 0,
) -> Markers:
    """Markers sampled from a label mask: short strokes inside each region of each class.

    ``mask`` is an (H, W) integer array whose values are the 0-based class labels (a PNG label
    mask read as such); values in ``ignore`` (e.g. 255 for "unlabelled") get no markers. Each
    8-connected region of at least ``min_region`` pixels gets ``strokes_per_region`` straight
    strokes of about ``length`` pixels and ``thickness`` wide, centred on random region pixels
    and clipped to the region, so no marker crosses a class boundary.
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise MarkerError(f"label mask must be 2-D (H, W), got shape {mask.shape}")
    if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
        raise MarkerError(f"label mask must hold integers, got {mask.dtype}")
    height, width = mask.shape
    skip = {ignore} if isinstance(ignore, int | np.integer) else set(ignore or ())
    rng = np.random.default_rng(seed)
    xs, ys, ids, labs = [], [], [], []
    stroke = 0
    for value in np.unique(mask):
        if int(value) in skip:
            continue
        if value < 0:
            raise MarkerError(f"label mask value {int(value)} is negative; pass it in ignore")
        comp, n = ndimage.label(mask == value, structure=np.ones((3, 3), dtype=bool))
        for region in range(1, n + 1):
            ry, rx = np.nonzero(comp == region)
            if len(rx) < min_region:
                continue
            inside = np.zeros(height * width, dtype=bool)
            inside[ry * width + rx] = True
            for _ in range(strokes_per_region):
                k = int(rng.integers(len(rx)))
                x, y = _stroke_pixels(rx[k], ry[k], rng.uniform(0, np.pi), length, thickness, width, height)
                keep = inside[y * width + x]
                x, y = x[keep], y[keep]
                inside[y * width + x] = False  # a later stroke cannot take the same pixels
                if not len(x):
                    continue
                xs.append(x)
                ys.append(y)
                ids.append(np.full(len(x), stroke))
                labs.append(np.full(len(x), int(value)))
                stroke += 1
    if not xs:
        return Markers(width, height, [], [], [], [])
    return Markers(
        width, height, np.concatenate(xs), np.concatenate(ys), np.concatenate(ids), np.concatenate(labs)
    )
