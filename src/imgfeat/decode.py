"""The one place that opens image files: any Pillow mode in, a sane 8-bit RGB image out."""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DecodeError

#: Formats imgfeat decodes. Formats that run external programs (EPS, PDF) are never opened.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO", "JPEG2000")
#: File extensions that sources pick up (lower case).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
     ".pbm", ".pnm", ".tga", ".ico", ".jp2"}
)
#: Default pixel limit per image (Pillow's own default); larger images are refused per item.
MAX_PIXELS = 89_478_485


def is_image_file(name: str | os.PathLike) -> bool:
    """True when the file name has an image extension (case-insensitive)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def open_file(path: str | os.PathLike) -> BinaryIO:
    """A local image file opened for reading; a failure is a :class:`DecodeError` naming it."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except IsADirectoryError:
        raise DecodeError("is a directory") from None
    except OSError as exc:
        raise DecodeError(f"cannot open: {exc.strerror or exc}") from None


def open_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS,
               min_side: int | None = None) -> Image.Image:
    """Open a file (or bytes) and return it as an 8-bit RGB image.

    ``min_side`` lets JPEG decoding skip resolution the caller does not need (DCT scaling): the
    image comes back with both sides at least ``min_side`` (or whole, if smaller).

    Applies EXIF orientation, takes the first frame of animations, scales 16-bit and float images
    into 0..255 instead of clipping them, and composites transparency over white. Any failure is
    raised as :class:`DecodeError` with a short reason.
    """
    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else open_file(source)
    with fp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img = Image.open(fp, formats=IMAGE_FORMATS)
                w, h = img.size
                if w < 1 or h < 1:
                    raise DecodeError(f"empty image ({w}x{h})")
                if w * h > max_pixels:
                    raise DecodeError(
                        f"image is {w}x{h} = {w * h / 1e6:.0f}M pixels, over the pixel limit of "
                        f"{max_pixels / 1e6:.0f}M (--max-pixels)"
                    )
                if min_side and img.format == "JPEG" and min(w, h) >= 2 * min_side:
                    img.draft(img.mode, (min_side, min_side))
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img) or img
                return to_rgb(img)
        except DecodeError:
            raise
        except UnidentifiedImageError:
            if isinstance(source, bytes | bytearray):
                raise DecodeError("not an image or an unsupported format") from None
            size = os.path.getsize(source)
            reason = "empty file (0 bytes)" if size == 0 else "not an image or an unsupported format"
            raise DecodeError(reason) from None
        except Image.DecompressionBombError as exc:
            raise DecodeError(f"refused, over the pixel limit (decompression bomb): {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                struct.error, ZeroDivisionError, MemoryError, RuntimeError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DecodeError(f"corrupt or truncated image: {msg}") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file as :func:`open_image` returns it (EXIF orientation
    applied), read from its header without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path, formats=IMAGE_FORMATS) as img:
                w, h = img.size
                swapped = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"{path}: cannot read image ({exc})") from None
    return (h, w) if swapped else (w, h)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit RGB without clipping wide ranges."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(scale_to_uint8(np.asarray(img))).convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "1":
        return img.convert("L").convert("RGB")
    return img.convert("RGB")


def scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map an integer or float array of any range into uint8 0..255.

    16-bit data is divided by 257 (65535 -> 255); floats in [0, 1] are multiplied by 255; other
    data already in 0..255 is kept; anything else is min-max scaled. NaN and Inf become 0.
    """
    if arr.dtype == np.uint8:
        return arr
    a = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if a.size == 0:
        return a.astype(np.uint8)
    lo, hi = float(a.min()), float(a.max())
    if arr.dtype in (np.uint16, np.dtype(">u2"), np.dtype("<u2")) or (
        arr.dtype == np.int16 and lo >= 0
    ):
        a = a / 257.0
    elif np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        a = a * 255.0
    elif lo >= 0 and hi <= 255:
        pass
    elif np.issubdtype(arr.dtype, np.integer) and lo >= 0 and hi <= 65535:
        a = a / 257.0
    else:
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def array_to_rgb(arr: np.ndarray) -> Image.Image:
    """Turn an H×W, H×W×1, H×W×3 or H×W×4 array into an 8-bit RGB image."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise DecodeError(f"array of shape {arr.shape} is not an image (H×W, H×W×1, ×3 or ×4)")
    u8 = scale_to_uint8(np.ascontiguousarray(arr))
    if u8.ndim == 2:
        return Image.fromarray(u8, "L").convert("RGB")
    if u8.shape[2] == 4:
        return to_rgb(Image.fromarray(u8, "RGBA"))
    return Image.fromarray(u8, "RGB")
