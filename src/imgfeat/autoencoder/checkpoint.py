"""Checkpoints: model weights in safetensors (with the architecture in its header), training
state (optimizer, scheduler, epoch, RNG states, split, early stopping) in a ``torch.save`` of
plain tensors and containers, read back with ``weights_only=True``: no unrestricted pickle.

A run folder holds ``last.safetensors`` + ``last.state.pt`` and ``best.safetensors`` +
``best.state.pt``; each file is written to a temporary name and renamed, the state last, and the
state records the hash of its weights file so a mismatched pair is noticed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..backbones.weights import file_sha256
from ..errors import ModelError, WeightsError
from ..storage import atomic_path
from .config import AEConfig
from .model import AutoEncoder

FORMAT = "imgfeat-ae"
FORMAT_VERSION = "1"
CHECKPOINTS = ("best", "last")


def weights_path(run: Path, name: str) -> Path:
    return Path(run) / f"{name}.safetensors"


def state_path(run: Path, name: str) -> Path:
    return Path(run) / f"{name}.state.pt"


def save_weights(path: Path, model: AutoEncoder, extra: dict | None = None) -> str:
    """Write the model's tensors and its architecture atomically; returns the file's sha256."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "architecture": json.dumps(model.cfg.architecture())}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return file_sha256(path)


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of a weights file; one clear error when it is not ours."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"checkpoint not found: {p}")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear error
        raise WeightsError(f"cannot read checkpoint {p.name}: not a safetensors file "
                           f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})"
                           ) from None
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{p.name} is not an imgfeat autoencoder checkpoint")
    return tensors, meta


def architecture_of(meta: dict[str, str]) -> AEConfig:
    """The AEConfig (architecture fields) a checkpoint header describes."""
    try:
        return AEConfig.from_dict(json.loads(meta["architecture"]), origin="checkpoint")
    except (KeyError, json.JSONDecodeError):
        raise WeightsError("checkpoint header has no readable architecture") from None


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], name: str) -> None:
    """Load strictly; another architecture's tensors give one clear line."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    bad = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or extra or bad:
        first = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra
                 else f"{bad[0]} is {tuple(tensors[bad[0]].shape)}, expected "
                      f"{tuple(own[bad[0]].shape)}")
        raise ModelError(f"checkpoint {name} is from another architecture ({first})")
    model.load_state_dict(tensors, strict=True)


def load_model(path: str | os.PathLike) -> tuple[AutoEncoder, dict[str, str]]:
    """An AutoEncoder built from a weights file's header and loaded with its tensors."""
    tensors, meta = read_weights(path)
    model = AutoEncoder(architecture_of(meta))
    load_into(model, tensors, Path(path).name)
    return model, meta


def save_state(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict:
    if not path.is_file():
        raise WeightsError(f"training state not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"cannot read training state {path.name}: "
                           f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
                           ) from None


def find_checkpoint(location: str | os.PathLike) -> Path:
    """A weights file from a run folder (``best``, else ``last``) or a file path."""
    p = Path(location)
    if p.is_dir():
        for name in CHECKPOINTS:
            if weights_path(p, name).is_file():
                return weights_path(p, name)
        raise WeightsError(f"no checkpoint in {p} (expected best.safetensors or last.safetensors)")
    if p.is_file():
        return p
    raise WeightsError(f"autoencoder run or checkpoint not found: {p}")
