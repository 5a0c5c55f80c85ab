"""Runtimes that run an exported backbone: ``torch`` (eager, always there), ``openvino`` and
``onnxruntime`` (optional extras). This module is torch-free: it names the runtimes, says which
are installed and which ``auto`` prefers; :mod:`.attach` exports, caches and checks them."""

from __future__ import annotations

import importlib.metadata
import importlib.util

from ..errors import ConfigError

#: what ``--runtime`` takes
RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
#: the order ``auto`` tries them in, fastest first (measured by benchmarks/runtimes.py on CPU)
AUTO_ORDER = ("openvino", "onnxruntime")
#: the Python module and the pip extra of each optional runtime
MODULES = {"openvino": ("openvino", "openvino"), "onnxruntime": ("onnxruntime", "onnx")}

__all__ = ["AUTO_ORDER", "RUNTIMES", "check_runtime", "installed_runtimes", "runtime_version"]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def installed_runtimes() -> list[str]:
    """``torch`` and every optional runtime whose package is installed (export needs ``onnx``)."""
    return ["torch"] + [name for name in AUTO_ORDER
                        if _has(MODULES[name][0]) and _has("onnx")]


def runtime_version(name: str) -> str:
    """The installed version of runtime ``name`` (``torch`` included)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def check_runtime(runtime: str, device: str = "cpu", gpus: float = 0) -> str:
    """Validate ``runtime`` for a run: known, installed when named, and on the CPU for the
    exported runtimes (no ``--device`` GPU, no GPU Ray actors; ``auto`` is torch there).
    Returns it unchanged."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}: use {', '.join(RUNTIMES)}")
    if runtime in ("auto", "torch"):
        return runtime
    if device != "cpu" or gpus:
        where = f"--device {device}" if device != "cpu" else "GPU Ray actors (--gpus-per-worker)"
        raise ConfigError(f"--runtime {runtime} runs on the CPU, not on {where}; use --runtime "
                          f"torch or auto")
    if runtime not in installed_runtimes():
        raise ConfigError(f"runtime {runtime} is not installed: pip install "
                          f"'imgfeat[{MODULES[runtime][1]}]'")
    return runtime
