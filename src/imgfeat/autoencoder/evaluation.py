"""Evaluating a trained autoencoder: per-image MSE, MAE, PSNR, SSIM and cosine similarity on
the run's saved test split (or on any data), a summary, a picture of originals beside
reconstructions, and the worst reconstructed images (anomaly screening)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import SourceError
from ..storage import atomic_path, write_json
from .checkpoint import find_checkpoint, load_model
from .data import ImageSet, load_images, open_images, to_float
from .metrics import METRIC_NAMES, image_metrics, summarize


@dataclass
class EvalResult:
    """Per-image metrics of a checkpoint on a set of images, and where they were written."""

    output: Path
    checkpoint: Path
    ids: list[str]
    metrics: dict[str, list[float]]
    summary: dict[str, dict[str, float]]
    worst: list[tuple[str, float]] = field(default_factory=list)
    n_failed: int = 0

    def table(self) -> str:
        """The summary as an aligned text table."""
        lines = [f"{'metric':<8}{'mean':>11}{'std':>11}{'min':>11}{'median':>11}{'max':>11}"]
        for name, s in self.summary.items():
            lines.append(f"{name:<8}" + "".join(f"{s[k]:>11.4f}" for k in
                                                 ("mean", "std", "min", "median", "max")))
        return "\n".join(lines)


def reconstruct(model: torch.nn.Module, images: ImageSet, batch_size: int = 16,
                device: str = "cpu"):
    """Yield (originals, reconstructions) float batches in [0, 1]."""
    model = model.to(device).eval()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_float(images.pixels[start:start + batch_size], device)
            yield x.cpu(), model(x).float().cpu()


def _grid_png(path: Path, pairs: list[tuple[torch.Tensor, torch.Tensor]], columns: int = 8) -> None:
    """Rows of originals, each followed by a row of their reconstructions."""
    if not pairs:
        return
    _, h, w = pairs[0][0].shape
    rows = math.ceil(len(pairs) / columns)
    canvas = np.full((rows * (2 * h + 4), min(columns, len(pairs)) * (w + 2), 3), 255, np.uint8)
    for n, (orig, rec) in enumerate(pairs):
        r, c = divmod(n, columns)
        y, x = r * (2 * h + 4), c * (w + 2)
        for k, img in enumerate((orig, rec)):
            arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            canvas[y + k * h:y + (k + 1) * h, x:x + w] = arr
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


def evaluate(run: str | os.PathLike, data=None, output: str | os.PathLike | None = None, *,
             batch_size: int = 16, worst: int = 0, grid: int = 16, workers: int = 0,
             device: str = "cpu", source_args: dict | None = None) -> EvalResult:
    """Evaluate the run's checkpoint (``best``, else ``last``; or a checkpoint file) on the
    run's test split, or on every image of ``data``. Writes ``per_image.csv``,
    ``summary.json``, ``reconstructions.png`` and, with ``worst``, ``worst.csv`` into
    ``output`` (default: ``RUN/eval``)."""
    run = Path(run)
    ckpt = find_checkpoint(run)
    model, _ = load_model(ckpt)
    run_dir = run if run.is_dir() else run.parent
    if data is None:
        split_file, source_file = run_dir / "split.json", run_dir / "source.json"
        if not (split_file.is_file() and source_file.is_file()):
            raise SourceError(f"{run} has no saved split and data: give DATA")
        ids = json.loads(split_file.read_text())["test"]
        if not ids:
            raise SourceError(f"{run} has an empty test split: give DATA")
        src_spec = json.loads(source_file.read_text())
        src = open_images(src_spec["data"], **src_spec.get("args", {}))
    else:
        src, ids = open_images(data, **(source_args or {})), None
    images = load_images(src, model.cfg, ids, workers=workers)
    values: dict[str, list[float]] = {k: [] for k in METRIC_NAMES}
    pairs = []
    for orig, rec in reconstruct(model, images, batch_size, device):
        for k, v in image_metrics(orig, rec).items():
            values[k].extend(v.tolist())
        pairs.extend(zip(orig, rec, strict=True))
    out = Path(output) if output is not None else run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", *METRIC_NAMES])
    for n, item_id in enumerate(images.ids):
        writer.writerow([item_id, *(f"{values[k][n]:.6g}" for k in METRIC_NAMES)])
    with atomic_path(out / "per_image.csv") as tmp:
        tmp.write_text(buf.getvalue())
    summary = {k: summarize(v) for k, v in values.items()}
    order = sorted(range(len(images)), key=lambda n: -values["mse"][n])
    worst_list = [(images.ids[n], values["mse"][n]) for n in order[:worst]]
    if worst:
        with atomic_path(out / "worst.csv") as tmp:
            tmp.write_text("rank,id,mse\n" + "".join(
                f"{r + 1},{i},{m:.6g}\n" for r, (i, m) in enumerate(worst_list)))
    _grid_png(out / "reconstructions.png", [pairs[n] for n in range(min(grid, len(pairs)))])
    write_json(out / "summary.json", {"checkpoint": str(ckpt), "images": len(images),
                                      "unreadable": len(images.failures), "metrics": summary,
                                      "worst": worst_list})
    return EvalResult(out, ckpt, images.ids, values, summary, worst_list, len(images.failures))
