"""Devices and mixed precision: the one home of ``check_device`` and ``autocast``."""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

__all__ = ["autocast", "check_device"]


def check_device(device: str) -> str:
    """Validate ``cpu``, ``cuda[:N]`` or ``mps`` against what this machine has."""
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but no CUDA GPU is available; use --device cpu")
    if kind == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ConfigError("device mps requested but not available; use --device cpu")
    if kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {device!r}: use cpu, cuda or mps")
    return device


def autocast(precision: str, device: str | torch.device):
    """The autocast context for a resolved precision (``fp32``: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
