"""JPEG decoded in batches on the run's device (nvJPEG on CUDA) instead of by PIL in workers.

With ``jpeg_decoder="torchvision"`` the decode workers only read a JPEG item's bytes (and check
its size from the header); the process that runs the network decodes each batch's JPEGs at once
with :func:`torchvision.io.decode_jpeg` on its device and resizes them there to the same box as
:class:`~imgfeat.preprocess.Preprocess` (antialiased, PIL's kernels). Other formats, CMYK JPEGs
and any JPEG the device cannot decode take the PIL road, so nothing fails that PIL reads. The
pixels differ from PIL's by rounding (a level or two), so the output records the decoder.
"""

from __future__ import annotations

import io
import warnings

import torch
from PIL import Image

from .batches import DecodedBatch
from .errors import DecodeError
from .preprocess import Preprocess

#: what ``--jpeg-decoder`` takes; ``auto``: torchvision on CUDA, else PIL
JPEG_DECODERS = ("auto", "pil", "torchvision")
_MAGIC = b"\xff\xd8\xff"
_MODES = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic"}

__all__ = ["JPEG_DECODERS", "DeviceJpegDecoder", "keep_jpeg", "read_item",
           "resolve_jpeg_decoder"]


def resolve_jpeg_decoder(name: str, device: str) -> str:
    """``pil`` or ``torchvision`` for a run on ``device`` (``auto``: torchvision on CUDA)."""
    if name not in JPEG_DECODERS:
        from .errors import ConfigError

        raise ConfigError(f"unknown JPEG decoder {name!r}: use {', '.join(JPEG_DECODERS)}")
    if name == "auto":
        return "torchvision" if str(device).startswith("cuda") else "pil"
    return name


def keep_jpeg(data: bytes, max_pixels: int) -> torch.Tensor | None:
    """An encoded JPEG's bytes as a uint8 tensor for :class:`DeviceJpegDecoder`, or None when
    PIL must decode it (not a JPEG, or not RGB/grey). Over ``max_pixels``: DecodeError."""
    if not data.startswith(_MAGIC):
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:  # the header only: nothing is decoded
            size, mode = img.size, img.mode
    except Exception:  # noqa: BLE001 - PIL gives the reason on its road
        return None
    if size[0] * size[1] > max_pixels:
        raise DecodeError(f"{size[0]}x{size[1]} is over the pixel limit ({max_pixels})")
    if mode not in ("RGB", "L"):
        return None
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def read_item(source, item, preprocess: Preprocess, max_pixels: int
              ) -> tuple[torch.Tensor | None, torch.Tensor | None, str | None]:
    """A decode worker's read of one item for a device decoder: (PIL pixels, JPEG bytes left
    for the device, failure reason), one of the three set. A storage outage propagates."""
    from .decode import open_image
    from .pipeline import decode_item
    from .storage import StorageUnavailableError

    try:
        data = source.read_encoded(item)
        if data is not None:
            jpeg = keep_jpeg(data, max_pixels)
            if jpeg is not None:
                return None, jpeg, None
            img = open_image(data, max_pixels=max_pixels, min_side=preprocess.min_side)
            return preprocess(img), None, None
    except DecodeError as exc:
        return None, None, str(exc)
    except StorageUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file never stops a run
        return None, None, f"{type(exc).__name__}: {exc}"
    pixels, error = decode_item(source, item, preprocess, max_pixels)  # not a file: arrays
    return pixels, None, error


class DeviceJpegDecoder:
    """Decode the JPEGs a batch carries (:attr:`DecodedBatch.jpegs`) on ``device`` and merge
    them with its PIL-decoded pixels, in position order, on that device."""

    def __init__(self, preprocess: Preprocess, device: str | torch.device):
        self.preprocess, self.device = preprocess, torch.device(device)

    def _decode(self, datas: list[torch.Tensor]) -> list[torch.Tensor | None]:
        with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec on every call
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._decode_all(datas)

    def _decode_all(self, datas: list[torch.Tensor]) -> list[torch.Tensor | None]:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device,
                                    apply_exif_orientation=True))
        except RuntimeError:  # one bad file fails the batch: decode them one by one
            out = []
            for d in datas:
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device,
                                           apply_exif_orientation=True))
                except RuntimeError:
                    out.append(None)
            return out

    def resize(self, img: torch.Tensor) -> torch.Tensor:
        """A decoded (3, h, w) uint8 image to the network's input, the box PIL's road takes."""
        p = self.preprocess
        left, top, right, bottom = p.box(img.shape[2], img.shape[1])
        x0, y0 = int(round(left)), int(round(top))
        x1, y1 = max(x0 + 1, int(round(right))), max(y0 + 1, int(round(bottom)))
        x = img[:, y0:y1, x0:x1].unsqueeze(0).float()
        mode = _MODES.get(p.interpolation, "bicubic")
        kw = {} if mode == "nearest" else {"antialias": True, "align_corners": False}
        x = torch.nn.functional.interpolate(x, size=(p.height, p.width), mode=mode, **kw)
        return x.round_().clamp_(0, 255).to(torch.uint8)[0]

    def _pil(self, data: torch.Tensor) -> torch.Tensor:
        from .decode import open_image

        return self.preprocess(open_image(data.numpy().tobytes())).to(self.device)

    def finish(self, batch: DecodedBatch) -> DecodedBatch:
        """``batch`` with its JPEGs decoded: every decoded position's pixels on the device."""
        if not batch.jpegs:
            return batch
        positions = sorted(batch.jpegs)
        decoded = self._decode([batch.jpegs[p] for p in positions])
        pixels = dict(zip(batch.ok, batch.pixels.to(self.device, non_blocking=True)
                          if batch.pixels is not None else [], strict=True))
        for p, img in zip(positions, decoded, strict=True):
            try:
                pixels[p] = self.resize(img) if img is not None else self._pil(batch.jpegs[p])
            except DecodeError as exc:
                batch.errors[p] = str(exc)
        ok = sorted(pixels)
        return DecodedBatch(batch.shard, batch.positions,
                            torch.stack([pixels[p] for p in ok]) if ok else None, ok,
                            batch.errors, batch.unavailable)
