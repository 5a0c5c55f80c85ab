"""What models exist, which have weights, and what each can hand out (stages, vector sizes)."""

from __future__ import annotations

import fnmatch

from ..config import ModelConfig
from ..pooling import create_pooling, list_poolings
from ..pooling.radam import select_stages
from .weights import PACKAGED, packaged_file


def packaged_installed(arch: str) -> bool:
    try:
        packaged_file(arch)
        return True
    except Exception:  # noqa: BLE001
        return False


def list_models(pattern: str = "*", pretrained_only: bool = False) -> list[dict]:
    """Architectures matching ``pattern`` (shell-style), with their pretrained tags."""
    import timm

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
    ``layers`` choice and registered pooling (multi-stage poolings over all stages), measured
    by running one blank image through the backbone (any kind: built by the same factory as
    extraction; timm models with random weights)."""
    import torch

    from ..preprocess import resolve_data_config
    from .registry import create_backbone, parse_model_name

    cfg = ModelConfig(model=name, pretrained=False, img_size=img_size, output_stride=output_stride)
    backbone = create_backbone(cfg)
    dc = resolve_data_config(backbone, cfg)
    stages = backbone.feature_info
    choices = ["pooled", "final"] + ([str(t.index) for t in stages] + ["all"] if stages else [])
    backbone.select(",".join(["pooled", "final"] + [str(t.index) for t in stages]))
    _, h, w = dc["input_size"]
    with torch.inference_mode():
        maps = backbone(torch.zeros(1, 3, h, w))
    shapes = {k: tuple(v.shape[1:]) for k, v in maps.items()}
    poolings = [create_pooling(pool) for pool in list_poolings()]  # every registered one
    sizes: dict[str, dict[str, int]] = {"pooled": {"avg": shapes["pooled"][0]}}
    for choice in choices[1:]:
        names = [t.name for t in stages] if choice == "all" else (
            [f"stage{choice}"] if choice.isdigit() else [choice])
        sizes[choice] = {p.name: sum(shapes[n][0] if len(shapes[n]) == 1
                                     else p.out_features(*shapes[n]) for n in names)
                         for p in poolings if not getattr(p, "multi_layer", False)}
    if stages:
        for p in poolings:
            if getattr(p, "multi_layer", False):  # the pooling's own stages (all, last, …)
                own = [stages[i] for i in select_stages(len(stages), getattr(p, "stages", "all"))]
                with torch.inference_mode():
                    sizes["all"][p.name] = int(p.pool_maps([maps[t.name] for t in own]).shape[1])
    kind, location = parse_model_name(name)
    return {
        "model": name, "kind": kind, "architecture": backbone.architecture,
        "params_m": round(sum(p.numel() for p in backbone.parameters()) / 1e6, 2),
        "num_features": int(backbone.num_features),
        "output_stride": output_stride,
        "data_config": dc,
        "stages": [{"index": t.index, "module": t.module, "channels": t.channels,
                    "reduction": t.reduction, "map_shape": list(shapes[t.name])} for t in stages],
        "final_shape": list(shapes["final"]),
        "vector_sizes": sizes,
        "packaged_weights": kind == "timm" and location.partition(".")[0] in PACKAGED,
        "weights": backbone.weights.to_dict(),
    }
