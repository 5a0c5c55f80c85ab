"""Frozen settings of an extraction run, and the hash that guards resume."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

from .errors import ConfigError
from .precision import PRECISIONS
from .usage import arg

RESIZE_MODES = ("crop", "squash")
OUTPUT_STRIDES = (8, 16, 32)
FORMATS = ("parquet", "npy", "csv")


def default_threads() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ModelConfig:
    """Which network, which weights, and how images are prepared for it."""

    model: str = "tf_efficientnet_lite0"
    pretrained: bool = True
    weights: str | None = None
    img_size: int | None = None
    #: None: the backbone's own (its data config; ``crop`` for timm, the run's for ``ae:``)
    resize: str | None = None
    output_stride: int | None = None
    #: auto: bf16 where the device runs it natively, else fp32 (resolved by the Extractor)
    precision: str = "auto"
    #: None: ``pooled`` for avg, ``final`` for other poolings, the pooling's stages for RADAM
    layers: str | None = None
    pool: str = "avg"
    pool_args: tuple[tuple[str, float | int | str], ...] = ()
    #: fold BatchNorm into the preceding convolutions (checked on a probe; ~1.2x on CPU)
    fold_bn: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.resize is not None and self.resize not in RESIZE_MODES:
            raise ConfigError(f"resize must be one of {', '.join(RESIZE_MODES)}, not {self.resize!r}")
        if self.img_size is not None and self.img_size < 8:
            raise ConfigError(f"{arg('img_size', self.img_size)}: must be at least 8")
        if self.output_stride is not None and self.output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"output_stride must be one of {OUTPUT_STRIDES}, not "
                              f"{self.output_stride}")


@dataclass(frozen=True)
class RunConfig:
    """How a run is executed: none of this changes the vectors, so none of it is hashed."""

    batch_size: int = 16
    num_workers: int | None = None
    threads: int | None = None
    device: str = "cpu"
    channels_last: bool = True
    shard_size: int = 1000
    progress: bool = True
    strict: bool = False
    #: torch, openvino, onnxruntime or auto (imgfeat.runtimes). Not hashed: a runtime is used
    #: only where its maps of the probe equal torch's to 1e-4 (relative, fp32), the order of
    #: float rounding that thread counts already cause; the metadata records which one ran
    runtime: str = "auto"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"{arg('batch_size', self.batch_size)}: must be at least 1")
        if self.shard_size < 1:
            raise ConfigError(f"{arg('shard_size', self.shard_size)}: must be at least 1")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"{arg('num_workers', self.num_workers)}: must be 0 or more")

    def resolved_threads_workers(self) -> tuple[int, int]:
        """(torch threads, decode workers), chosen from benchmarks/extract_throughput.py.

        Never more torch threads + workers than cores. On an accelerator the model is not the
        host's work: one torch thread drives it and every other core decodes. On CPU, one worker
        per 8 cores and torch gets the rest; on 1 or 2 cores torch gets them all and decoding
        runs in this process between batches: measured on 2 cores, that equals 2 threads + 1
        worker (whose time slices stall torch's threads) on light and on heavy images, and beats
        1 thread + 1 worker by 1.4x on light ones. The default thread count does not depend on
        ``num_workers``, so vectors are identical for any worker count.
        """
        cores = default_threads()
        if self.device != "cpu":
            default_workers, threads = max(1, cores - 1), 1
        elif cores <= 2:
            default_workers, threads = 0, cores
        else:
            default_workers = max(1, cores // 8)
            threads = cores - default_workers
        workers = self.num_workers if self.num_workers is not None else default_workers
        return self.threads or threads, workers


@dataclass(frozen=True)
class ExtractConfig:
    """Everything that determines the vectors of a run: the part that is hashed."""

    source: dict = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    format: str = "parquet"
    shard_size: int = 1000

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        return config_digest(self.to_dict())


def config_digest(data: dict) -> str:
    """A short, stable hash of a configuration dictionary."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
