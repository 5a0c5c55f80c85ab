""""Learn and preview": learn a FLIM network from the session's markers, show one layer's maps.

Images are shrunk so their longer side is at most ``max_side`` (markers follow them with
:meth:`Markers.resized`), so a preview takes seconds even when the images are large; they are
read through ``Source`` and ``Preprocess`` with the data config of a FLIM network of that size,
as ``extract --model flim:`` reads them.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ..architecture import Architecture, load_architecture, parse_architecture
from ..markers import Markers

__all__ = ["DEFAULT_ARCHITECTURE", "learn_preview", "preview_size", "resolve_architecture"]

#: a small two-layer network, learned in about a second; one stroke is enough to learn it
DEFAULT_ARCHITECTURE: dict = {"features": {"type": "sequential", "layers": {
    "conv1": {"operation": "conv2d", "params": {
        "kernel_size": 3, "padding": 1, "number_of_kernels_per_marker": 8, "out_channels": 8,
        "activation": {"operation": "relu"},
        "pool": {"operation": "max_pool2d", "params": {"kernel_size": 3, "stride": 2, "padding": 1}}}},
    "conv2": {"operation": "conv2d", "params": {
        "kernel_size": 3, "padding": 1, "number_of_kernels_per_marker": 8, "out_channels": 8,
        "activation": {"operation": "relu"}}},
}}}


def resolve_architecture(arch: str | Path | dict | Architecture | None) -> Architecture:
    """An architecture from a JSON file, a dict, or the built-in default (``None``)."""
    if arch is None:
        return parse_architecture(DEFAULT_ARCHITECTURE)
    if isinstance(arch, Architecture):
        return arch
    if isinstance(arch, dict):
        return parse_architecture(arch)
    return load_architecture(arch)


def preview_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) shrunk so the longer side is at most ``max_side`` (never enlarged)."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _png_data_url(gray: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def learn_preview(images: Sequence[Path], markers: Sequence[Markers], target: Path, *,
                  architecture: Architecture, layer: str | None = None, channels: int = 8,
                  max_side: int = 256, color: str = "lab", seed: int = 0) -> dict:
    """Learn ``architecture`` from ``images`` + ``markers`` and return ``layer``'s maps on ``target``.

    Returns a JSON-ready dict: ``layers`` (every layer's name), ``layer`` (the one shown; default
    the last), ``maps`` (up to ``channels`` PNG data URLs, the channels of highest variance, each
    stretched to 0..255 from its 1st to its 99th percentile), ``channels`` (their indices),
    ``shape`` (C, H, W), ``seconds``, ``images``.
    """
    import torch

    from ...sources import PathsSource
    from ..data import natural_size, read_images
    from ..learn import learn_filters
    from ..network import FlimNetwork

    if not images:
        raise ConfigError("no saved markers yet: draw and save strokes first")
    t0 = time.perf_counter()
    marked = PathsSource(list(images))
    tensors, small = [], []
    for item, mk in zip(marked.items, markers, strict=True):
        w, h = preview_size(mk.width, mk.height, max_side)
        tensors.extend(read_images(marked, [item], (h, w)))
        small.append(mk.resized(w, h))
    net = FlimNetwork(architecture, input_size=tuple(tensors[0].shape[-2:]), color=color)
    learn_filters(net, tensors, small, seed=seed, names=[p.name for p in images])
    leaves = [name for name, _ in net.named_leaves()]
    chosen = layer or leaves[-1]
    if chosen not in leaves:
        raise ConfigError(f"no layer {chosen!r}; the network has {', '.join(leaves)}")
    module = dict(net.named_leaves())[chosen]
    shown = PathsSource([target])
    full_h, full_w = natural_size(shown, shown.items[0])
    w, h = preview_size(full_w, full_h, max_side)
    x = read_images(shown, shown.items, (h, w))[0][None]
    caught: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda _m, _i, out: caught.append(out.detach().clone()))
    try:
        with torch.no_grad():
            net.forward_features(x)
    finally:
        hook.remove()
    maps = caught[0][0].to(torch.float32)  # (C, H, W)
    var = maps.flatten(1).var(dim=1)
    pick = torch.argsort(var, descending=True)[:channels].tolist()
    urls = []
    for c in pick:
        m = maps[c]
        lo, hi = (float(v) for v in torch.quantile(m.flatten(), torch.tensor([0.01, 0.99])))
        if hi <= lo:
            lo, hi = float(m.min()), float(m.max())
        g = ((m - lo) / (hi - lo) * 255.0) if hi > lo else torch.zeros_like(m)
        urls.append(_png_data_url(g.round().clamp(0, 255).to(torch.uint8).numpy()))
    return {"layers": leaves, "layer": chosen, "channels": pick, "maps": urls,
            "shape": list(maps.shape), "images": len(images),
            "seconds": round(time.perf_counter() - t0, 3)}
