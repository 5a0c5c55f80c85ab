"""What models exist, which have weights, and what each can hand out (stages, vector sizes)."""

from __future__ import annotations

import fnmatch

import timm
import torch

from ..config import ModelConfig
from ..pooling import create_pooling
from ..preprocess import resolve_data_config
from .timm import RANDOM_INIT_SEED, TimmBackbone, check_model_name, feature_taps, parse_layers
from .weights import PACKAGED, packaged_file

INFO_POOLS = ("avg", "max", "avgmax", "catavgmax", "gem", "none")


def packaged_installed(arch: str) -> bool:
    try:
        packaged_file(arch)
        return True
    except Exception:  # noqa: BLE001
        return False


def list_models(pattern: str = "*", pretrained_only: bool = False) -> list[dict]:
    """Architectures matching ``pattern`` (shell-style), with their pretrained tags."""
    pat = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    tags: dict[str, list[str]] = {}
    for name in timm.list_pretrained():
        arch, _, tag = name.partition(".")
        tags.setdefault(arch, []).append(tag)
    rows = []
    for arch in timm.list_models():
        if not fnmatch.fnmatch(arch, pat):
            continue
        if pretrained_only and arch not in tags and arch not in PACKAGED:
            continue
        rows.append({"model": arch, "pretrained_tags": tags.get(arch, []),
                     "packaged": arch in PACKAGED,
                     "packaged_installed": arch in PACKAGED and packaged_installed(arch)})
    return rows


def model_info(name: str, img_size: int | None = None, output_stride: int | None = None) -> dict:
    """Stages (channels, reduction, module), data config, and the vector size of each
    ``layers``/``pool`` choice, measured by running one blank image through the model."""
    arch = check_model_name(name)
    kwargs = {"output_stride": output_stride} if output_stride else {}
    torch.manual_seed(RANDOM_INIT_SEED)
    model = timm.create_model(arch, pretrained=False, **kwargs).eval()
    cfg = ModelConfig(model=name, pretrained=False, img_size=img_size, output_stride=output_stride)
    dc = resolve_data_config(model, cfg)
    stages = feature_taps(model)
    choices = ["pooled", "final"] + ([str(t.index) for t in stages] + ["all"] if stages else [])
    spec = ",".join(["pooled", "final"] + [str(t.index) for t in stages])
    backbone = TimmBackbone(model, parse_layers(spec, model))
    _, h, w = dc["input_size"]
    with torch.inference_mode():
        maps = backbone(torch.zeros(1, 3, h, w))
    shapes = {k: tuple(v.shape[1:]) for k, v in maps.items()}
    sizes: dict[str, dict[str, int]] = {}
    for choice in choices:
        names = [t.name for t in stages] if choice == "all" else (
            [f"stage{choice}"] if choice.isdigit() else [choice])
        sizes[choice] = {}
        for pool in INFO_POOLS:
            p = create_pooling(pool)
            total = 0
            for n in names:
                s = shapes[n]
                total += s[0] if len(s) == 1 else p.out_features(*s)
            sizes[choice][pool] = total
    return {
        "model": name, "architecture": type(model).__name__,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "num_features": int(model.num_features),
        "data_config": dc,
        "stages": [{"index": t.index, "module": t.module, "channels": t.channels,
                    "reduction": t.reduction, "map_shape": list(shapes[t.name])} for t in stages],
        "final_shape": list(shapes["final"]),
        "vector_sizes": sizes,
        "packaged_weights": arch in PACKAGED,
    }
