"""``imgfeat demo``: a small texture set cut from scikit-image's bundled images, extracted with
the packaged EfficientNet-Lite0 ImageNet weights and classified — no network needed."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

#: class name -> scikit-image loader (all bundled with scikit-image, no download)
DEMO_CLASSES = {
    "brick": "brick",
    "grass": "grass",
    "gravel": "gravel",
    "moon": "moon",
    "tissue": "immunohistochemistry",
    "stars": "hubble_deep_field",
}


def make_demo_textures(folder: str | os.PathLike, per_class: int = 12, size: int = 128,
                       seed: int = 0) -> Path:
    """Write ``per_class`` random ``size``-pixel patches of each texture to ``folder/<class>/``."""
    import skimage.data

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for label, loader in DEMO_CLASSES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = getattr(skimage.data, loader)()
        (folder / label).mkdir(parents=True, exist_ok=True)
        h, w = img.shape[:2]
        for k in range(per_class):
            y, x = rng.integers(0, h - size), rng.integers(0, w - size)
            patch = np.rot90(img[y:y + size, x:x + size], k=int(rng.integers(0, 4)))
            Image.fromarray(np.ascontiguousarray(patch)).save(folder / label / f"{label}_{k:02d}.png")
    return folder


def run_demo(output: str | os.PathLike = "imgfeat-demo", *, model: str = "tf_efficientnet_lite0",
             progress: bool | None = None) -> dict:
    """Make the texture set, extract features, classify them; returns what it measured."""
    from .evaluate import classify
    from .runner import extract
    from .store import load_features

    out = Path(output)
    t0 = time.perf_counter()
    textures = make_demo_textures(out / "textures")
    result = extract(textures, out / "features", model=model, overwrite=True, progress=progress)
    X, y, ids, meta = load_features(result.output)
    report = classify(X, y, classifiers=("knn", "svm"), folds=4, repeats=3, seed=0,
                      n_jobs=1)
    scores = {r.name: {**r.summary(), "folds": 4, "repeats": 3} for r in report.results}
    return {"textures": textures, "features": result.output, "n_images": len(ids),
            "n_classes": len(set(y)), "dim": X.shape[1], "weights": meta["weights"],
            "scores": scores, "report": report, "seconds": time.perf_counter() - t0}
