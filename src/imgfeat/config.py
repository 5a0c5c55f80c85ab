"""Frozen settings of an extraction run, and the hash that guards resume."""

from __future__ import annotations

import functools
import hashlib
import json
import numbers
import os
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import get_args, get_origin, get_type_hints

from .errors import ConfigError
from .precision import PRECISIONS
from .store.format import check_format
from .usage import arg

RESIZE_MODES = ("crop", "squash")
OUTPUT_STRIDES = (8, 16, 32)


def default_threads() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


MODEL_HELP = ("a timm name with optional weights tag (resnet50.a1_in1k), hf-hub:ORG/NAME, "
              "ae:RUN (a trained autoencoder) or flim:MODEL (a FLIM network)")


def _poolings() -> tuple[str, ...]:
    from .pooling import list_poolings

    return tuple(list_poolings())


def option(default, help: str, *, choices: tuple | Callable[[], tuple] | None = None,
           unset: str | None = None, flag: str | None = "", metavar: str | None = None,
           plural: str | None = None):
    """A model option: a dataclass field whose metadata says how users give it. ``choices``: the
    allowed values (or a function listing them, as the pooling registry); ``unset``: what
    ``None`` means; ``flag``: the command-line flag ("": ``--`` + the name with hyphens; None:
    no flag of its own); ``plural``: its name where a grid takes several (``bench(models=…)``)."""
    return field(default=default, metadata={"help": help, "choices": choices, "unset": unset,
                                            "flag": flag, "metavar": metavar, "plural": plural})


@dataclass(frozen=True)
class ModelConfig:
    """Which network, which weights, and how images are prepared for it.

    The one definition of the model options: the command line's flags, the keyword arguments
    of ``extract()``, ``bench()`` and :class:`~imgfeat.FeatureExtractor` (a test holds their
    signatures to these fields), their help and their checks all come from these fields."""

    model: str = option("tf_efficientnet_lite0", MODEL_HELP, plural="models")
    pretrained: bool = option(True, "use pretrained weights (timm models)")
    weights: str | None = option(None, "local weights (.pth/.safetensors), or 'packaged' for the "
                                       "offline extra", metavar="FILE")
    img_size: int | None = option(None, "input size", unset="the model's own")
    resize: str | None = option(None, "crop: the model's eval transform; squash: resize with no crop",
                                choices=RESIZE_MODES, unset="the backbone's own (crop for timm models, "
                                "the recorded one for ae:, squash for flim:)")
    output_stride: int | None = option(None, "dilate the last stages", choices=OUTPUT_STRIDES,
                                       unset="the model's own; radam/spectral try 8, then 32")
    precision: str = option("auto", "auto: bf16 where the device runs it natively (CUDA, CPUs "
                                    "with AVX512-BF16/AMX), else fp32", choices=PRECISIONS)
    layers: str | None = option(None, "pooled, final, all, or stage indices like 2,-1",
                                unset="pooled for --pool avg, final for other poolings, the "
                                      "pooling's own stages for radam/spectral")
    pool: str = option("avg", "a registered pooling", choices=_poolings, metavar="POOL", plural="pools")
    pool_args: tuple[tuple[str, float | int | str], ...] = option(
        (), "the pooling's parameters, a dict in Python (on the command line each has its own "
            "flag)", unset="the pooling's own", flag=None)
    fold_bn: bool = option(True, "fold BatchNorm into the preceding convolutions (checked on a "
                                 "probe; ~1.2x faster, same vectors to ~1e-6)")

    def __post_init__(self) -> None:
        for f in fields(self):
            value, kind = getattr(self, f.name), option_type(f)
            if value is None and f.default is None:
                continue
            if kind is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
                value = int(value)  # NumPy integers, as a parameter grid gives them
                object.__setattr__(self, f.name, value)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"{arg(f.name, value)}: must be {kind.__name__}")
            if (choices := option_choices(f)) is not None and value not in choices:
                raise ConfigError(f"{arg(f.name, value)}: must be one of "
                                  f"{', '.join(map(str, choices))}")
        if self.img_size is not None and self.img_size < 8:
            raise ConfigError(f"{arg('img_size', self.img_size)}: must be at least 8")

    @classmethod
    def from_options(cls, **options) -> ModelConfig:
        """Build from keyword arguments as users give them: ``pool_args`` a dict (or None),
        ``layers`` also a number (a stage index)."""
        pool_args = options.get("pool_args")
        if isinstance(pool_args, dict) or pool_args is None:
            options["pool_args"] = tuple(sorted((pool_args or {}).items()))
        if options.get("layers") is not None:
            options["layers"] = str(options["layers"])
        return cls(**options)


def model_options() -> tuple:
    """The fields of :class:`ModelConfig` (the model options), in order."""
    return fields(ModelConfig)


def pick_model_options(values: dict) -> dict:
    """The model options among ``values`` (a function's keyword arguments)."""
    return {f.name: values[f.name] for f in fields(ModelConfig) if f.name in values}


def option_type(f) -> type:
    """The type a model option's value has (``int`` for ``int | None``)."""
    hint = _hints()[f.name]
    kinds = [k for k in get_args(hint) if k is not type(None)] or [hint]
    return get_origin(kinds[0]) or kinds[0]


def option_choices(f) -> tuple | None:
    choices = f.metadata["choices"]
    return choices() if callable(choices) else choices


def options_doc(rename: dict | None = None, defaults: dict | None = None) -> str:
    """The model options as a docstring section (indented as a function's or class's
    docstring, for ``help()`` of what takes them): name, help, default, from the fields."""
    lines = ["", "    Model options (:class:`~imgfeat.config.ModelConfig`):", ""]
    for f in fields(ModelConfig):
        name = (rename or {}).get(f.name, f.name)
        default = (defaults or {}).get(f.name, f.default)
        shown = (f.metadata["unset"] if default in (None, ()) and f.metadata["unset"]
                 else repr(default))
        choices = f.metadata["choices"]
        one_of = f"; one of {', '.join(map(str, choices))}" if isinstance(choices, tuple) else ""
        lines.append(textwrap.fill(f"- ``{name}``: {f.metadata['help']}{one_of} (default: "
                                   f"{shown})", 96, initial_indent="    ", break_on_hyphens=False,
                                   subsequent_indent="      "))
    return "\n".join(lines) + "\n"


@functools.cache
def _hints() -> dict:
    return get_type_hints(ModelConfig)


@dataclass(frozen=True)
class RunConfig:
    """How a run is executed: none of this changes the vectors, so none of it is hashed."""

    batch_size: int = 16
    num_workers: int | None = None
    threads: int | None = None
    device: str = "cpu"
    progress: bool = True
    #: torch, openvino, onnxruntime or auto (imgfeat.runtimes). Not hashed: a runtime is used
    #: only where its maps of the probe equal torch's to 1e-4 (relative, fp32), the order of
    #: float rounding that thread counts already cause; the metadata records which one ran
    runtime: str = "auto"
    #: auto, pil or torchvision (imgfeat.device_jpeg): who decodes JPEGs. torchvision's pixels
    #: differ from PIL's by rounding, so the metadata records which one decoded
    jpeg_decoder: str = "auto"
    #: processes that run the network (the local engine): a number (1: the main process), or
    #: "auto"/None: :func:`imgfeat.engines.cores.auto_compute_processes`
    compute_processes: int | str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"{arg('batch_size', self.batch_size)}: must be at least 1")
        n = self.compute_processes
        if n not in (None, "auto") and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"{arg('compute_processes', n)}: must be auto or a whole number, "
                              f"at least 1")
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

    def resolved_compute_processes(self, runtime: str, images: int | None = None) -> int:
        """The compute processes of a run of ``images`` images whose network runs in
        ``runtime`` (``auto``: the rule of :mod:`imgfeat.engines.cores`, from
        benchmarks/cores.py)."""
        if self.compute_processes not in (None, "auto"):
            return int(self.compute_processes)
        from .engines.cores import auto_compute_processes

        return auto_compute_processes(runtime, default_threads(), self.device, images,
                                      workers=self.resolved_threads_workers()[1])


@dataclass(frozen=True)
class ExtractConfig:
    """Everything that determines the vectors of a run: the part that is hashed."""

    source: dict = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    format: str = "parquet"
    shard_size: int = 1000

    def __post_init__(self) -> None:
        check_format(self.format)

    def to_dict(self) -> dict:
        return asdict(self)


def config_digest(data: dict) -> str:
    """A short, stable hash of a configuration dictionary."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
