"""Shared fixtures: small generated image sets and a tiny random-weight timm model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for a hub

SRC = str(Path(__file__).resolve().parents[1] / "src")


def fresh_python(code: str, *args: str, env: dict | None = None,
                 timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter that imports this checkout's imgfeat (what a user's
    first import does: nothing loaded yet), with ``env`` added to the environment."""
    full = {**os.environ, **(env or {}),
            "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=full)


#: a tiny timm model with random weights, at a small input size: fast mechanics tests
TINY = {"model": "test_efficientnet", "pretrained": False, "img_size": 64, "precision": "fp32"}
USPTEX = Path(__file__).resolve().parents[2] / "shared" / "data" / "usptex"


def make_image(seed: int, size=(48, 40), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    # some structure so that classes differ: a per-class gradient is added by callers
    return Image.fromarray(arr).convert(mode)


def random_class_folder(root: Path, n: int, classes: int, side: int, seed: int) -> Path:
    """``n`` random ``side``×``side`` PNGs spread round-robin over ``c0 … c{classes-1}``."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        (root / f"c{k % classes}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
            root / f"c{k % classes}" / f"{k:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """3 classes × 5 images in sub-folders, mixed extensions and a nested folder."""
    root = tmp_path / "imgs"
    for c, label in enumerate(["cats", "dogs", "owls"]):
        for k in range(5):
            folder = root / label / ("nested" if k == 4 else "")
            folder.mkdir(parents=True, exist_ok=True)
            img = make_image(100 * c + k)
            arr = np.asarray(img).astype(int)
            arr[..., c] = np.clip(arr[..., c] + 90, 0, 255)
            ext = [".png", ".JPG", ".jpeg", ".png", ".bmp"][k]
            Image.fromarray(arr.astype(np.uint8)).save(folder / f"img{k}{ext}")
    return root


from tests.remote_fixtures import ray_cluster, s3  # noqa: E402,F401 - shared session fixtures


@pytest.fixture(autouse=True, scope="session")
def _runtime_cache(tmp_path_factory):
    """Exported models of the tests go to a cache of their own, never the user's."""
    os.environ["IMGFEAT_CACHE_DIR"] = str(tmp_path_factory.mktemp("imgfeat-cache"))

