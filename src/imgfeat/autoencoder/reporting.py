"""An exploratory report of an image set: how many, what sizes and shapes, which modes, the
pixel statistics per channel, histograms, and which files cannot be read.

Writes ``report.md``, ``stats.json`` and PNG figures (``sizes.png``, ``aspect.png``,
``histogram.png``) into one folder. Sizes and modes come from the file headers (an array source
reports its array's shape); pixel statistics from the decoded RGB images, each reduced to at
most ``max_side`` pixels on its longer side to keep large sets quick.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DecodeError
from ..storage import atomic_path, write_json
from .data import open_images

CHANNELS = ("R", "G", "B")


@dataclass
class Report:
    """What :func:`report` found."""

    output: Path
    count: int
    readable: int
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)
    channel_mean: list[float] = field(default_factory=list)
    channel_std: list[float] = field(default_factory=list)
    histogram: np.ndarray | None = None


def _header(path: str | None) -> tuple[str, str | None]:
    """(mode, format) from the file header, without decoding the pixels."""
    if path is None:
        return "array", None
    try:
        with Image.open(path) as img:
            return img.mode, img.format
    except Exception:  # noqa: BLE001 - the decode step reports the reason
        return "?", None


def _figures(out: Path, rep: Report) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    w = np.array([s[0] for s in rep.sizes])
    h = np.array([s[1] for s in rep.sizes])
    figs = {
        "sizes.png": lambda ax: (ax.scatter(w, h, s=8, alpha=0.5),
                                 ax.set(xlabel="width (px)", ylabel="height (px)",
                                        title="image sizes")),
        "aspect.png": lambda ax: (ax.hist(w / h, bins=40),
                                  ax.set(xlabel="aspect ratio (width / height)",
                                         ylabel="images", title="aspect ratios")),
        "histogram.png": lambda ax: ([ax.plot(np.arange(256), rep.histogram[c] / max(
            rep.histogram[c].sum(), 1), color=col, label=name) for c, (name, col) in
            enumerate(zip(CHANNELS, ("tab:red", "tab:green", "tab:blue"), strict=True))],
            ax.set(xlabel="value", ylabel="share of pixels", title="pixel histogram"),
            ax.legend()),
    }
    for name, draw in figs.items():
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        draw(ax)
        fig.tight_layout()
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        made.append(name)
    return made


def _stats(values: np.ndarray) -> str:
    return (f"min {values.min():g}, median {np.median(values):g}, mean {values.mean():.4g}, "
            f"max {values.max():g}")


def report(data, output: str | os.PathLike, *, max_side: int = 256,
           source_args: dict | None = None) -> Report:
    """Survey ``data`` (any imgfeat source) and write the report into ``output``."""
    src = open_images(data, **(source_args or {}))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(out, len(src), 0)
    modes: collections.Counter[str] = collections.Counter()
    formats: collections.Counter[str] = collections.Counter()
    total = np.zeros(3)
    total_sq = np.zeros(3)
    n_pixels = 0
    hist = np.zeros((3, 256), np.int64)
    for item in src.items:
        mode, fmt = _header(item.path)
        try:
            img = src.read(item)
        except DecodeError as exc:
            rep.unreadable.append((item.id, str(exc)))
            continue
        rep.readable += 1
        modes[mode] += 1
        formats[fmt or "array"] += 1
        rep.sizes.append(img.size)
        if max(img.size) > max_side:
            img = img.copy()
            img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8).reshape(-1, 3)
        total += arr.sum(0, dtype=np.float64)
        total_sq += (arr.astype(np.float64) ** 2).sum(0)
        n_pixels += len(arr)
        for c in range(3):
            hist[c] += np.bincount(arr[:, c], minlength=256)
    rep.modes = dict(modes)
    rep.histogram = hist
    if n_pixels:
        mean = total / n_pixels
        rep.channel_mean = (mean / 255).tolist()
        rep.channel_std = (np.sqrt(np.maximum(total_sq / n_pixels - mean ** 2, 0)) / 255).tolist()
    figures = _figures(out, rep) if rep.sizes else []
    lines = [f"# Image set report: {data if isinstance(data, str | os.PathLike) else src.kind}",
             "", f"- images: {rep.count} ({rep.readable} readable, {len(rep.unreadable)} unreadable)"]
    if rep.sizes:
        w = np.array([s[0] for s in rep.sizes])
        h = np.array([s[1] for s in rep.sizes])
        distinct = collections.Counter(rep.sizes).most_common(5)
        lines += [f"- width: {_stats(w)}", f"- height: {_stats(h)}",
                  f"- aspect ratio (w/h): {_stats(np.round(w / h, 3))}",
                  "- most common sizes: " + ", ".join(f"{a}×{b} ({n})" for (a, b), n in distinct),
                  "- modes: " + ", ".join(f"{m} ({n})" for m, n in modes.most_common()),
                  "- formats: " + ", ".join(f"{m} ({n})" for m, n in formats.most_common()),
                  "", "## Pixels (RGB, scaled to [0, 1])", "", "| channel | mean | std |",
                  "|---|---|---|"]
        lines += [f"| {c} | {m:.4f} | {s:.4f} |" for c, m, s in
                  zip(CHANNELS, rep.channel_mean, rep.channel_std, strict=True)]
        lines += ["", *(f"![{f}]({f})" for f in figures)]
    if rep.unreadable:
        lines += ["", "## Unreadable files", "", "| id | reason |", "|---|---|"]
        lines += [f"| {i} | {e} |" for i, e in rep.unreadable]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_json(out / "stats.json", {
        "count": rep.count, "readable": rep.readable, "unreadable": rep.unreadable,
        "modes": rep.modes, "formats": dict(formats), "channel_mean": rep.channel_mean,
        "channel_std": rep.channel_std, "sizes": collections.Counter(
            f"{a}x{b}" for a, b in rep.sizes).most_common()})
    return rep
