"""One annotation session: the images to mark, the class names, and the marker folder.

The page never names a file: it refers to images by their index in :attr:`AnnotationSession.images`,
and the session derives every path itself (``<stem>.txt`` in the marker folder, plus
``<stem>.mask.png`` with ``mask_png``). Every path is checked to stay inside the marker folder
(:func:`inside`), and every write is atomic. No web framework and no torch here.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ...errors import ConfigError, ImgfeatError, SourceError
from ...storage import atomic_path
from ..markers import LABEL_BASES, MARKER_SUFFIX, Markers, read_markers, write_markers

__all__ = ["MASK_SUFFIX", "MAX_CLASSES", "AnnotationSession", "ImageEntry", "PathRefused", "inside"]

#: suffix of the optional PNG label mask written next to a marker file (0 = unmarked, class k = k)
MASK_SUFFIX = ".mask.png"
#: the page picks classes with the digits 1-9
MAX_CLASSES = 9


class PathRefused(ImgfeatError):
    """A file name that would leave the marker folder (``..``, absolute, or a symlink out)."""


def inside(root: str | os.PathLike, name: str) -> Path:
    """``root / name``, refused unless it stays inside ``root`` once symlinks are resolved.

    ``name`` is a relative name as a page would send it: an empty name, a NUL byte, an absolute
    path (POSIX or Windows, drive or UNC), a ``..`` part, or a path whose resolved location lies
    outside ``root`` (a symlink escape) raises :class:`PathRefused`.
    """
    if not name or "\x00" in name:
        raise PathRefused("empty or invalid file name")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or PureWindowsPath(name).root:
        raise PathRefused(f"{name!r}: absolute paths are refused")
    if any(part == ".." for part in posix.parts):
        raise PathRefused(f"{name!r}: '..' is refused")
    base = Path(root).resolve()
    target = base.joinpath(*posix.parts)
    if not target.resolve().is_relative_to(base):
        raise PathRefused(f"{name!r} leads outside the marker folder")
    return target


@dataclass
class ImageEntry:
    """One image of the session: its id in the source, its file, and its size once known."""

    id: str
    path: Path
    size: tuple[int, int] | None = None  # (width, height)
    counts: list[int] = field(default_factory=list)  # marker pixels per class


class AnnotationSession:
    """The images of ``images`` (a folder, a CSV list or a list of paths), marked into ``markers``.

    ``labels`` names the classes (at most 9: the page picks them with 1-9); ``label_base`` is
    the first label written to marker files (1, the original FLIM convention, or 0), and is
    also how existing files are read. ``budget`` (pixels per image, optional) makes the page warn
    about an image marked more than that. ``mask_png`` also writes ``<stem>.mask.png``.
    """

    def __init__(self, images: str | os.PathLike | Sequence[str | os.PathLike], markers: str | os.PathLike,
                 labels: Sequence[str] = ("foreground", "background"), *, label_base: int = 1,
                 budget: int | None = None, mask_png: bool = False) -> None:
        from ...sources import open_source

        if label_base not in LABEL_BASES:
            raise ConfigError(f"label base must be 0 or 1, not {label_base!r}")
        labels = [str(s).strip() for s in labels]
        if not labels or any(not s for s in labels):
            raise ConfigError("--labels: give one or more non-empty class names, comma-separated")
        if len(labels) > MAX_CLASSES:
            raise ConfigError(f"--labels: at most {MAX_CLASSES} classes (the page picks them with 1-9)")
        if len(set(labels)) != len(labels):
            raise ConfigError("--labels: class names must differ")
        if budget is not None and budget < 1:
            raise ConfigError(f"--budget must be at least 1 pixel, not {budget}")
        spec = [os.fspath(p) for p in images] if isinstance(images, list | tuple) else images
        source = open_source(spec)
        self.images: list[ImageEntry] = []
        stems: dict[str, str] = {}
        for it in source.items:
            if it.path is None:
                raise SourceError("annotate needs image files, not arrays")
            stem = Path(it.path).stem
            if stem in stems:
                raise SourceError(f"two images share the marker file {stem}{MARKER_SUFFIX}: "
                                  f"{stems[stem]} and {it.id}")
            stems[stem] = it.id
            self.images.append(ImageEntry(it.id, Path(it.path)))
        if not self.images:
            raise SourceError(f"no images in {images}")
        self.markers_dir = Path(markers)
        if self.markers_dir.exists() and not self.markers_dir.is_dir():
            raise ConfigError(f"--markers {self.markers_dir} is a file, not a folder")
        self.markers_dir.mkdir(parents=True, exist_ok=True)
        self.labels = labels
        self.label_base = label_base
        self.budget = budget
        self.mask_png = mask_png
        for i in range(len(self.images)):
            self._refresh_counts(i)

    # ----------------------------------------------------------------------------------------
    # paths

    def entry(self, index: int) -> ImageEntry:
        """The image at ``index``; an :class:`ImgfeatError` for an index out of range."""
        if not 0 <= index < len(self.images):
            raise SourceError(f"no image number {index} (the session has {len(self.images)})")
        return self.images[index]

    def marker_name(self, index: int) -> str:
        """The marker file's name inside the marker folder: ``<stem>.txt``."""
        return f"{self.entry(index).path.stem}{MARKER_SUFFIX}"

    def marker_file(self, index: int) -> Path:
        return inside(self.markers_dir, self.marker_name(index))

    def mask_file(self, index: int) -> Path:
        return inside(self.markers_dir, f"{self.entry(index).path.stem}{MASK_SUFFIX}")

    def file(self, name: str) -> Path:
        """A file of the marker folder by its relative name (download); refused outside it."""
        path = inside(self.markers_dir, name)
        if not path.is_file():
            raise SourceError(f"{name}: no such file in the marker folder")
        return path

    # ----------------------------------------------------------------------------------------
    # images and markers

    def image_png(self, index: int) -> tuple[bytes, tuple[int, int]]:
        """The image decoded (EXIF orientation, any mode) as RGB PNG bytes, and its (width, height)."""
        from ...decode import open_image

        img = open_image(self.entry(index).path)
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        self.images[index].size = img.size
        return buf.getvalue(), img.size

    def size(self, index: int) -> tuple[int, int]:
        """(width, height) of an image, read from its header the first time."""
        entry = self.entry(index)
        if entry.size is None:
            from PIL import Image

            try:
                with Image.open(entry.path) as img:
                    w, h = img.size
                    swapped = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientation
            except OSError as exc:
                raise SourceError(f"{entry.path}: cannot read image ({exc})") from None
            entry.size = (h, w) if swapped else (w, h)
        return entry.size

    def load(self, index: int) -> Markers | None:
        """The image's saved markers (labels 0-based), or None when it has no marker file."""
        path = self.marker_file(index)
        if not path.is_file():
            return None
        m = read_markers(path, label_base=self.label_base)
        w, h = self.size(index)
        if (m.width, m.height) != (w, h):
            raise SourceError(f"{path}: markers drawn on a {m.width}x{m.height} image, the image is {w}x{h}")
        if len(m) and int(m.label.max()) >= len(self.labels):
            raise ConfigError(f"{path}: label {int(m.label.max()) + self.label_base} has no class name "
                              f"(--labels names {len(self.labels)} classes, label base {self.label_base})")
        return m

    def save(self, index: int, pixels: Sequence[int], labels: Sequence[int]) -> Markers:
        """Write the markers of image ``index``: flat pixel indices (``y * width + x``) and their
        0-based labels. Stroke ids are the connected strokes. No pixel removes the file."""
        w, h = self.size(index)
        flat = np.asarray(pixels, dtype=np.int64).reshape(-1)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(flat) != len(lab):
            raise ConfigError(f"{len(flat)} pixels but {len(lab)} labels")
        if len(flat) and (flat.min() < 0 or flat.max() >= w * h):
            raise ConfigError(f"a marker pixel lies outside the {w}x{h} image")
        if len(lab) and (lab.min() < 0 or lab.max() >= len(self.labels)):
            raise ConfigError(f"labels must lie in 0..{len(self.labels) - 1}")
        order = np.argsort(flat, kind="stable")
        flat, lab = flat[order], lab[order]
        path, mask_path = self.marker_file(index), self.mask_file(index)
        if not len(flat):
            for p in (path, mask_path):
                if p.is_file() or p.is_symlink():
                    p.unlink()
            self._refresh_counts(index)
            return Markers(w, h, [], [], [], [])
        m = Markers(w, h, flat % w, flat // w, None, lab)
        m = Markers(w, h, m.x, m.y, m.stroke_ids(), m.label)
        write_markers(path, m, label_base=self.label_base)
        if self.mask_png:
            self._write_mask(mask_path, m)
        self._refresh_counts(index, m)
        return m

    def _write_mask(self, path: Path, m: Markers) -> None:
        from PIL import Image

        img = (m.to_label_image(fill=-1) + 1).astype(np.uint8)
        with atomic_path(path) as tmp:
            Image.fromarray(img, mode="L").save(tmp, format="PNG")

    def _refresh_counts(self, index: int, markers: Markers | None = None) -> None:
        entry = self.images[index]
        if markers is None:
            try:
                markers = self.load(index)
            except ImgfeatError:
                markers = None
        counts = np.zeros(len(self.labels), dtype=np.int64)
        if markers is not None and len(markers):
            found = np.bincount(markers.label, minlength=len(self.labels))
            counts[: len(found)] += found[: len(counts)]
        entry.counts = counts.tolist()

    def summary(self) -> dict:
        """What the page's image list shows: per image its marker pixels per class."""
        return {
            "labels": self.labels,
            "label_base": self.label_base,
            "budget": self.budget,
            "markers_dir": str(self.markers_dir),
            "images": [{"index": i, "id": e.id, "counts": e.counts, "file": self.marker_name(i)}
                       for i, e in enumerate(self.images)],
        }

    def marked(self) -> list[tuple[int, Markers]]:
        """Every image with markers on disk, with its markers."""
        out = []
        for i in range(len(self.images)):
            m = self.load(i)
            if m is not None and len(m):
                out.append((i, m))
        return out
