"""Which floating-point precision a device runs natively, and what ``auto`` resolves to."""

from __future__ import annotations

#: precisions a user may ask for; ``auto`` resolves per device (:func:`resolve_precision`)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def native_bf16(device: str) -> bool:
    """True where bf16 runs natively: CUDA GPUs with bf16, CPUs with AVX512-BF16 or AMX."""
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``bf16`` where it runs natively, else ``fp32``; other values unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def slow_precision(precision: str, device: str) -> str | None:
    """Why ``precision`` would be slower than fp32 on ``device``, or None: a CPU without native
    bf16/fp16 (no AVX512-BF16/AMX) emulates them, measured 0.1x fp32 on an AVX2 CPU."""
    import torch

    if device != "cpu" or precision in ("fp32", "auto"):
        return None
    native = (torch.ops.mkldnn._is_mkldnn_bf16_supported() if precision == "bf16"
              else torch.ops.mkldnn._is_mkldnn_fp16_supported())
    if native:
        return None
    return (f"{precision} on this CPU ({torch.backends.cpu.get_cpu_capability()}, no native "
            f"{precision}) is emulated and about 10x slower than fp32; use --precision fp32")
