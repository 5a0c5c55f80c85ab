"""Checkpoints: model weights in safetensors (with the architecture in its header), training
state (optimizer, scheduler, epoch, RNG states, split, early stopping) in a ``torch.save`` of
plain tensors and containers, read back with ``weights_only=True``: no unrestricted pickle.

A run folder holds ``last.safetensors`` + ``last.state.pt`` and ``best.safetensors`` +
``best.state.pt``; each file is written to a temporary name and renamed, the state last, and the
state records the hash of its weights file so a mismatched pair is noticed.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..backbones.modelfile import (
    ModelFileKind,
    check_footprint,
    load_strict,
    measure,
    read_model_file,
    write_model_file,
)
from ..errors import WeightsError
from ..storage import atomic_path
from .config import AEConfig
from .model import AutoEncoder

FORMAT = "imgfeat-ae"
FORMAT_VERSION = "1"
CHECKPOINTS = ("best", "last")
KIND = ModelFileKind(FORMAT, "an imgfeat autoencoder checkpoint", "checkpoint", WeightsError)


def weights_path(run: Path, name: str) -> Path:
    return Path(run) / f"{name}.safetensors"


def state_path(run: Path, name: str) -> Path:
    return Path(run) / f"{name}.state.pt"


def save_weights(path: Path, model: AutoEncoder, extra: dict | None = None) -> str:
    """Write the model's tensors and its architecture atomically; returns the file's sha256."""
    header = {"format_version": FORMAT_VERSION, "architecture": model.cfg.architecture(),
              **(extra or {})}
    return write_model_file(path, model, KIND, header)


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, header) of a weights file; one clear error when it is not ours."""
    return read_model_file(path, KIND)


def architecture_of(meta: dict, input_size: tuple[int, int] | None = None,
                    name: str = "checkpoint") -> AEConfig:
    """The AEConfig (architecture fields) a checkpoint header describes, at ``input_size``
    (H, W; default its own), checked to fit this machine before anything is allocated."""
    arch = meta.get("architecture")
    if not isinstance(arch, dict):
        raise WeightsError(f"{name}: the header has no readable architecture")
    if input_size is not None:
        arch = {**arch, "height": int(input_size[0]), "width": int(input_size[1])}
    cfg = AEConfig.from_dict(arch, origin=name)
    check_footprint(measure(lambda: AutoEncoder(cfg), lambda m, x: m(x),
                            (3, cfg.height, cfg.width), name), name)
    return cfg


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], name: str) -> None:
    """Load strictly; another architecture's tensors give one clear line."""
    load_strict(model, tensors, f"checkpoint {name}")


def load_model(path: str | os.PathLike) -> tuple[AutoEncoder, dict]:
    """An AutoEncoder built from a weights file's header and loaded with its tensors."""
    tensors, meta = read_weights(path)
    model = AutoEncoder(architecture_of(meta, name=Path(path).name))
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
