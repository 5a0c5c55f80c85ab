"""One annotation session: the images to mark, the class names, and the marker folder.

The page never names a file: it refers to images by their index in :attr:`AnnotationSession.images`,
and the session derives every path itself (``<stem>.txt`` in the marker folder, plus
``<stem>.mask.png`` with ``mask_png``). Every path is checked to stay inside the marker folder
(:func:`inside`). No web framework and no torch here.

Saves are safe under concurrency: each one writes its own temporary file (a random name created
exclusively, never through a symlink), fsyncs it and renames it into place, under a per-image
lock. A save names the :attr:`version` of the markers it was drawn over (a hash of the marker
file, ``""`` for none) and is refused with :class:`StaleSave` when the file has changed since, so
an older save never overwrites a newer one. With ``mask_png`` the mask is written first and the
``.txt`` last; on start, a mask that disagrees with its ``.txt`` is rebuilt from it, so the two are
one unit even after a crash between the two renames.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ...errors import ConfigError, ImgfeatError, SourceError
from ...storage import TMP_PREFIX
from ..markers import LABEL_BASES, MARKER_SUFFIX, Markers, format_markers, parse_markers
from ..sidecar import SIDECAR_NAME, read_sidecar_base, sidecar_bytes

__all__ = ["MASK_SUFFIX", "MAX_CLASSES", "AnnotationSession", "ImageEntry", "PathRefused", "StaleSave",
           "inside", "write_file"]

#: suffix of the optional PNG label mask written next to a marker file (0 = unmarked, class k = k)
MASK_SUFFIX = ".mask.png"
#: the page picks classes with the digits 1-9
MAX_CLASSES = 9


class PathRefused(ImgfeatError):
    """A file name that would leave the marker folder (``..``, absolute, or a symlink out)."""


class StaleSave(ImgfeatError):
    """A save drawn over markers that another save has changed since (the page reloads them)."""

    def __init__(self, message: str, version: str) -> None:
        super().__init__(message)
        self.version = version


def version_of(data: bytes | None) -> str:
    """The version of a marker file's content: a short hash, ``""`` for no file."""
    return "" if data is None else hashlib.sha256(data).hexdigest()[:16]


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and safely under concurrency.

    The temporary file has a random name, is created exclusively and never through a symlink
    (``O_EXCL | O_NOFOLLOW``), is fsynced, then renamed over ``path`` (a rename replaces a
    symlink at ``path`` itself, never its target). Nothing is left behind on an error.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(16):
        tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{secrets.token_hex(8)}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 16 collisions of 64 random bits
        raise OSError(errno.EEXIST, "no free temporary name", str(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


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
        said = read_sidecar_base(self.markers_dir)
        if said is not None and said != label_base:
            raise ConfigError(f"--markers {self.markers_dir}: its {SIDECAR_NAME} says label base {said}, "
                              f"this session writes {label_base}: pass --label-base {said}")
        self._sidecar_written = said is not None
        self._sidecar_lock = threading.Lock()
        self.labels = labels
        self.label_base = label_base
        self.budget = budget
        self.mask_png = mask_png
        self._locks = [threading.Lock() for _ in self.images]
        for i in range(len(self.images)):
            self._refresh_counts(i)
            if mask_png:
                self._repair_mask(i)

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
            from ...decode import image_size

            try:
                entry.size = image_size(entry.path)
            except ImgfeatError as exc:
                raise SourceError(str(exc)) from None
        return entry.size

    def load(self, index: int) -> Markers | None:
        """The image's saved markers (labels 0-based), or None when it has no marker file."""
        return self.load_versioned(index)[0]

    def load_versioned(self, index: int) -> tuple[Markers | None, str]:
        """The image's saved markers (or None) and their :func:`version`, read as one."""
        path = self.marker_file(index)
        with self._locks[index]:
            data = self._read(path)
        if data is None:
            return None, ""
        m = self._parse(path, data)
        w, h = self.size(index)
        if (m.width, m.height) != (w, h):
            raise SourceError(f"{path}: markers drawn on a {m.width}x{m.height} image, the image is {w}x{h}")
        if len(m) and int(m.label.max()) >= len(self.labels):
            raise ConfigError(f"{path}: label {int(m.label.max()) + self.label_base} has no class name "
                              f"(--labels names {len(self.labels)} classes, label base {self.label_base})")
        return m, version_of(data)

    def version(self, index: int) -> str:
        """The version of image ``index``'s marker file (``""`` when it has none)."""
        return version_of(self._read(self.marker_file(index)))

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes() if path.is_file() else None
        except FileNotFoundError:
            return None

    def _parse(self, path: Path, data: bytes) -> Markers:
        return parse_markers(data, label_base=self.label_base, where=str(path))

    def save(self, index: int, pixels: Sequence[int], labels: Sequence[int],
             version: str | None = None) -> Markers:
        """Write the markers of image ``index``: flat pixel indices (``y * width + x``) and their
        0-based labels. Stroke ids are the connected strokes. No pixel removes the file.

        ``version`` is the version of the markers the save was drawn over; when the file has
        changed since, :class:`StaleSave` is raised and nothing is written (``None`` skips the
        check: a script that owns the folder)."""
        return self.save_versioned(index, pixels, labels, version)[0]

    def save_versioned(self, index: int, pixels: Sequence[int], labels: Sequence[int],
                       version: str | None = None) -> tuple[Markers, str]:
        """:meth:`save`, also returning the new version of the image's markers."""
        w, h = self.size(index)
        if len(pixels) != len(labels):
            raise ConfigError(f"{len(pixels)} pixels but {len(labels)} labels")
        if len(pixels) > w * h:
            raise ConfigError(f"{len(pixels)} pixels, the {w}x{h} image has {w * h}")
        if any(not 0 <= p < w * h for p in pixels):
            raise ConfigError(f"a marker pixel lies outside the {w}x{h} image (pixels are 0..{w * h - 1})")
        if any(not 0 <= k < len(self.labels) for k in labels):
            raise ConfigError(f"labels must lie in 0..{len(self.labels) - 1}")
        flat = np.asarray(pixels, dtype=np.int64).reshape(-1)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        order = np.argsort(flat, kind="stable")
        flat, lab = flat[order], lab[order]
        if len(flat) > 1 and bool((dup := flat[1:] == flat[:-1]).any()):
            raise ConfigError(f"pixel {int(flat[1:][dup][0])} is listed more than once")
        path, mask_path = self.marker_file(index), self.mask_file(index)
        m = Markers(w, h, flat % w, flat // w, None, lab)
        if len(m):
            m = Markers(w, h, m.x, m.y, m.stroke_ids(), m.label)
        data = format_markers(m, label_base=self.label_base).encode() if len(m) else None
        mask = self._mask_bytes(m) if self.mask_png and len(m) else None
        with self._locks[index]:
            current = self.version(index)
            if version is not None and version != current:
                raise StaleSave(f"image {index} was saved elsewhere since these markers were loaded "
                                f"(version {current or 'none'}, this save's {version or 'none'}); "
                                "reload its markers", current)
            if data is None:  # the mask goes first, the .txt (what counts) last
                for p in (mask_path, path):
                    if p.is_file() or p.is_symlink():
                        p.unlink()
            else:
                self._write_sidecar()
                if mask is not None:
                    write_file(mask_path, mask)
                write_file(path, data)
            self._refresh_counts(index, m)
        return m, version_of(data)

    def _write_sidecar(self) -> None:
        """``flim-markers.json`` (the label base), before the first marker file, so ``flim train``
        reads the folder without guessing."""
        with self._sidecar_lock:
            if not self._sidecar_written:
                write_file(self.markers_dir / SIDECAR_NAME,
                           sidecar_bytes(self.label_base, "imgfeat flim annotate"))
                self._sidecar_written = True

    @staticmethod
    def _mask_bytes(m: Markers) -> bytes:
        from PIL import Image

        img = (m.to_label_image(fill=-1) + 1).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img, mode="L").save(buf, format="PNG")
        return buf.getvalue()

    def _repair_mask(self, index: int) -> None:
        """Make the mask agree with the ``.txt`` (a crash between their two renames)."""
        from PIL import Image

        try:
            m = self.load(index)
            mask_path = self.mask_file(index)
        except ImgfeatError:
            return
        if m is None or not len(m):
            if mask_path.is_file() and not mask_path.is_symlink():
                mask_path.unlink()
            return
        want = (m.to_label_image(fill=-1) + 1).astype(np.uint8)
        try:
            with Image.open(mask_path) as img:
                ok = img.mode == "L" and np.array_equal(np.asarray(img), want)
        except (OSError, ValueError):
            ok = False
        if not ok:
            write_file(mask_path, self._mask_bytes(m))

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
