import io
import os
import pickle
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from imgfeat import DecodeError, open_image


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "RGB"])
def test_every_mode_gives_rgb(mode):
    base = Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8))
    img = base.convert(mode) if mode not in ("I;16", "I", "F") else None
    if mode == "I;16":
        img = Image.fromarray(np.full((9, 7), 30000, dtype=np.uint16))
    elif mode == "I":
        img = Image.fromarray(np.full((9, 7), 30000, dtype=np.int32))
    elif mode == "F":
        img = Image.fromarray(np.full((9, 7), 0.5, dtype=np.float32))
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F") else "PNG"
    out = open_image(png_bytes(img, format=fmt))
    assert out.mode == "RGB" and out.size == (7, 9)
    arr = np.asarray(out)
    if mode in ("I;16", "I"):
        assert 100 < arr.mean() < 135  # 30000/65535 of white, not clipped to 255
    if mode == "F":
        assert 120 < arr.mean() < 135  # 0.5 of white


def test_palette_with_transparency_over_white():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0] * 256)
    img.info["transparency"] = 0
    arr = np.asarray(open_image(png_bytes(img, transparency=0)))
    assert (arr == 255).all()


def test_first_frame_of_animations():
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    for fmt in ("GIF", "TIFF"):
        buf = io.BytesIO()
        frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:])
        arr = np.asarray(open_image(buf.getvalue()))
        assert arr[..., 0].mean() > 200 and arr[..., 2].mean() < 50, fmt


@pytest.mark.parametrize("orientation, rotate", [(6, Image.Transpose.ROTATE_270),
                                                 (8, Image.Transpose.ROTATE_90)])
def test_exif_orientation(orientation, rotate):
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = open_image(png_bytes(img, exif=exif.tobytes()))
    assert np.array_equal(np.asarray(out), np.asarray(img.transpose(rotate)))


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"hello, I am text", "not an image"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
])
def test_non_images(tmp_path, data, reason):
    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    with pytest.raises(DecodeError, match=reason):
        open_image(p)


def test_truncated_jpeg_and_missing(tmp_path):
    data = png_bytes(Image.new("RGB", (64, 64), (9, 9, 9)), format="JPEG")
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated"):
        open_image(tmp_path / "t.jpg")
    with pytest.raises(DecodeError, match="file not found"):
        open_image(tmp_path / "missing.jpg")
    with pytest.raises(DecodeError, match="is a directory"):
        open_image(tmp_path)


def test_unreadable_file_is_a_reason(tmp_path):
    p = tmp_path / "locked.png"
    Image.new("RGB", (4, 4)).save(p)
    os.chmod(p, 0)
    ok = tmp_path / "ok.png"
    Image.new("RGB", (4, 4)).save(ok)
    # root reads any file, so the check drops to an unprivileged user once imports are done
    code = ("import os, sys\n"
            "from imgfeat import open_image, DecodeError\n"
            "open_image(sys.argv[2])\n"
            "if os.geteuid() == 0: os.setgid(65534); os.setuid(65534)\n"
            "try: open_image(sys.argv[1])\n"
            "except DecodeError as e: print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(p), str(ok)], capture_output=True,
                         text=True)
    assert out.stdout.strip() == "permission denied", out.stderr


def test_tiny_and_extreme_aspect_images():
    for size in [(1, 1), (10000, 10), (10, 10000)]:
        out = open_image(png_bytes(Image.new("L", size, 128)))
        assert out.size == size and out.mode == "RGB"


def test_decompression_bomb_refused_before_decoding():
    # a PNG header that claims 100000 x 100000 pixels, with almost no data
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2,
                                                                0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    t0 = time.perf_counter()
    with pytest.raises(DecodeError, match="over the pixel limit"):
        open_image(data)
    assert time.perf_counter() - t0 < 1
    with pytest.raises(DecodeError, match="over the pixel limit"):
        open_image(png_bytes(Image.new("RGB", (100, 100))), max_pixels=1000)


def test_fuzzed_bytes_never_crash_or_hang():
    """Thousands of random and mutated image files: each decodes or raises DecodeError."""
    rng = np.random.default_rng(0)
    seeds = [png_bytes(Image.fromarray(rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)),
                       format=f) for f in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]
    t0 = time.perf_counter()
    cases = ok = 0
    while cases < 3000:
        data = bytearray(seeds[cases % len(seeds)])
        kind = cases % 4
        if kind == 0:
            data = bytearray(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8))
        elif kind == 1:
            for _ in range(int(rng.integers(1, 20))):
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        elif kind == 2:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            pos = int(rng.integers(0, len(data)))
            data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        try:
            img = open_image(bytes(data))
            assert img.mode == "RGB"
            ok += 1
        except DecodeError:
            pass
        cases += 1
    assert time.perf_counter() - t0 < 120
    assert 0 < ok < cases


def test_weights_file_cannot_run_code(tmp_path):
    from imgfeat.backbones.timm import create_timm_model
    from imgfeat.config import ModelConfig
    from imgfeat.errors import WeightsError

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(WeightsError, match="cannot read weights file"):
        create_timm_model(ModelConfig(model="test_efficientnet", weights=str(path)))
    assert not marker.exists()
