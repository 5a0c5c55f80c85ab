"""JPEGs decoded in batches on the network's device (torchvision; nvJPEG on CUDA): pixels within
a level of PIL's road, every other item still read by PIL, failures recorded per item, the
decoder recorded in the metadata; on CPU the same code runs with torchvision's CPU decoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from imgfeat import extract, load_features
from imgfeat.decode import open_image
from imgfeat.device_jpeg import DeviceJpegDecoder, keep_jpeg, resolve_jpeg_decoder
from imgfeat.errors import ConfigError, DecodeError
from imgfeat.preprocess import Preprocess
from tests.conftest import TINY


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth gradients with noise: a photograph's statistics, not JPEG's worst case."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (w + h)], -1)
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _jpeg(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("resize", ["crop", "squash"])
@pytest.mark.parametrize("shape", [(300, 420), (500, 240), (64, 64)])
def test_pixels_within_a_level_of_pils_road(resize, shape):
    p = Preprocess(96, 96, "bicubic", 0.875 if resize == "crop" else 1.0, resize)
    data = _jpeg(_photo(*shape, seed=shape[0]))
    pil = p(open_image(data, min_side=p.min_side)).float()
    dev = DeviceJpegDecoder(p, "cpu")
    ours = dev.resize(dev._decode([keep_jpeg(data, 10**8)])[0]).float()
    assert ours.shape == pil.shape == (3, 96, 96)
    assert (ours - pil).abs().mean() < 1.5  # decoder and resampler rounding, not geometry
    shifted = torch.roll(pil, 3, dims=2)  # a 3-pixel shift of the box would show
    assert (ours - shifted).abs().mean() > 2 * (ours - pil).abs().mean()


def test_grey_and_exif_rotated_jpegs_as_pil_reads_them():
    p = Preprocess(64, 64, "bilinear", 1.0, "squash")
    dev = DeviceJpegDecoder(p, "cpu")
    grey = _jpeg(_photo(80, 120, 1)[..., 0])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: PIL's road transposes it
    rotated = _jpeg(_photo(80, 120, 2), exif=exif.tobytes())
    for data in (grey, rotated):
        pil = p(open_image(data)).float()
        ours = dev.resize(dev._decode([keep_jpeg(data, 10**8)])[0]).float()
        assert (ours - pil).abs().mean() < 1.5


def test_what_the_device_does_not_decode():
    assert keep_jpeg(b"\x89PNG\r\n\x1a\nrest", 10**8) is None  # PIL's road
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 8)).save(cmyk, "JPEG")
    assert keep_jpeg(cmyk.getvalue(), 10**8) is None
    with pytest.raises(DecodeError, match="pixel limit"):
        keep_jpeg(_jpeg(_photo(100, 100, 0)), 99 * 100)
    assert resolve_jpeg_decoder("auto", "cpu") == "pil"
    assert resolve_jpeg_decoder("auto", "cuda:0") == "torchvision"
    with pytest.raises(ConfigError, match="JPEG decoder"):
        resolve_jpeg_decoder("nvjpeg", "cpu")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_run_with_the_device_decoder(tmp_path, workers):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(6):
        (folder / f"a{k}.jpg").write_bytes(_jpeg(_photo(70 + 9 * k, 110, k)))
    Image.fromarray(_photo(60, 60, 9)).save(folder / "p.png")
    (folder / "g.jpg").write_bytes(_jpeg(_photo(50, 70, 8)[..., 1]))
    good = _jpeg(_photo(90, 90, 7))
    (folder / "cut.jpg").write_bytes(good[: len(good) // 3])  # header fine, data cut short
    (folder / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0not a jpeg")
    run = {**TINY, "progress": False, "runtime": "torch", "num_workers": workers,
           "batch_size": 4}
    pil = extract(folder, tmp_path / "pil", jpeg_decoder="pil", **run)
    dev = extract(folder, tmp_path / "dev", jpeg_decoder="torchvision", **run)
    assert (dev.ok, dev.failed) == (pil.ok, pil.failed)
    a, _, ids_a, meta_a = load_features(tmp_path / "pil")
    b, _, ids_b, meta_b = load_features(tmp_path / "dev")
    assert ids_a == ids_b and (meta_a["jpeg_decoder"], meta_b["jpeg_decoder"]) == \
        ("pil", "torchvision")
    png = ids_a.index("p.png")
    np.testing.assert_array_equal(a[png], b[png])  # PIL's road for what is not a JPEG
    assert np.abs(a - b).max() <= 0.1 * np.abs(a).max()  # a level of pixels, not other images


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (nvJPEG)")
def test_nvjpeg_on_the_gpu_equals_the_cpu_decoder(tmp_path):  # pragma: no cover - GPU only
    p = Preprocess(96, 96, "bicubic", 0.875, "crop")
    datas = [keep_jpeg(_jpeg(_photo(200 + k, 300, k)), 10**8) for k in range(4)]
    cpu, gpu = DeviceJpegDecoder(p, "cpu"), DeviceJpegDecoder(p, "cuda")
    for c, g in zip(cpu._decode(datas), gpu._decode([d.pin_memory() for d in datas]),
                    strict=True):
        assert (cpu.resize(c).float() - gpu.resize(g).cpu().float()).abs().mean() < 1.5
