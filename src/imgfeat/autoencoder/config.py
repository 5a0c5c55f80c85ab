"""The one typed configuration of an autoencoder run: defaults, TOML file, overrides, checks.

Every setting is a field of :class:`AEConfig` with its help line in the field's metadata; the
CLI builds its options from these fields, so a setting has one home. A TOML file holds flat
``key = value`` pairs (an ``[ae]`` table is also accepted); unknown keys are refused by name.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ..errors import ConfigError
from ..precision import PRECISIONS

LOSSES = ("mse", "mae")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("cosine", "plateau", "none")
RESIZES = ("squash", "crop")


def _f(default, help: str, choices: tuple[str, ...] | None = None, runtime: bool = False):
    """A field with its help line; ``runtime`` settings do not change the result (not checked
    on resume)."""
    return field(default=default, metadata={"help": help, "choices": choices, "runtime": runtime})


@dataclass(frozen=True)
class AEConfig:
    """Settings of a FeXT autoencoder run (architecture, data, training, execution)."""

    # architecture
    height: int = _f(256, "input height in pixels (any size)")
    width: int = _f(256, "input width in pixels (any size)")
    depth: int = _f(5, "encoder blocks, each ending in a 2x down-sampling")
    base_width: int = _f(64, "channels of the first block; doubled per block up to max_width")
    max_width: int = _f(512, "channel cap of the deeper blocks")
    kernel_size: int = _f(3, "convolution kernel size (odd)")
    resize: str = _f("squash", "squash: exact resize to height x width; crop: keep aspect, centre "
                               "crop", RESIZES)
    # data
    val_fraction: float = _f(0.1, "share of images held out for validation")
    test_fraction: float = _f(0.1, "share of images held out for testing")
    seed: int = _f(0, "seed of the split, the initial weights, shuffling and augmentation")
    shift: float = _f(0.0, "random shift, as a fraction of the size (0: off)")
    patch: int = _f(0, "train on random patch x patch crops of the height x width images (0: "
                       "whole images); validation and encoding take whole images")
    hflip: bool = _f(False, "random horizontal flips")
    vflip: bool = _f(False, "random vertical flips")
    # training
    loss: str = _f("mse", "reconstruction loss", LOSSES)
    ssim_weight: float = _f(0.0, "weight of an added (1 - SSIM) term (0: off)")
    optimizer: str = _f("adamw", "optimizer", OPTIMIZERS)
    lr: float = _f(1e-3, "learning rate")
    weight_decay: float = _f(0.0, "weight decay")
    scheduler: str = _f("cosine", "learning-rate schedule", SCHEDULERS)
    epochs: int = _f(20, "training epochs")
    batch_size: int = _f(16, "images per batch")
    patience: int = _f(0, "early stopping: epochs without validation improvement (0: off)")
    min_delta: float = _f(0.0, "early stopping: smallest improvement that counts")
    precision: str = _f("auto", "fp32, bf16, fp16, or auto (bf16 where native)", PRECISIONS)
    # execution (does not change the result on a given machine)
    compile: bool = _f(False, "torch.compile the model", runtime=True)
    workers: int = _f(0, "decode threads (0: decode in this thread)", runtime=True)
    device: str = _f("cpu", "cpu, cuda, cuda:1, mps", runtime=True)
    progress: bool = _f(True, "show a progress bar", runtime=True)

    def __post_init__(self) -> None:
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata["choices"]
            if choices and value not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(choices)}, not {value!r}")
        if min(self.height, self.width) < 2 ** self.depth:
            raise ConfigError(f"height and width must be at least 2**depth = {2 ** self.depth}")
        if not 1 <= self.depth <= 8:
            raise ConfigError(f"depth must be 1..8, not {self.depth}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd and positive, not {self.kernel_size}")
        if self.base_width < 1 or self.max_width < self.base_width:
            raise ConfigError("base_width must be at least 1 and at most max_width")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ConfigError("val_fraction and test_fraction must be in [0, 1) with a sum below 1")
        if self.patch and not 2 ** self.depth <= self.patch <= min(self.height, self.width):
            raise ConfigError(f"patch must be 0 or between 2**depth = {2 ** self.depth} and "
                              f"min(height, width) = {min(self.height, self.width)}, "
                              f"not {self.patch}")
        if not 0 <= self.shift < 0.5:
            raise ConfigError(f"shift must be in [0, 0.5), not {self.shift}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("epochs, batch_size and lr must be positive")
        if self.ssim_weight < 0 or self.patience < 0 or self.workers < 0:
            raise ConfigError("ssim_weight, patience and workers must not be negative")

    # -- the architecture ------------------------------------------------------------------
    @property
    def widths(self) -> list[int]:
        """Channels of each encoder block."""
        return [min(self.base_width * 2 ** i, self.max_width) for i in range(self.depth)]

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the latent map (each down-sampling rounds up)."""
        h, w = self.height, self.width
        for _ in range(self.depth):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        return self.widths[-1], h, w

    def architecture(self) -> dict:
        """The settings that define the network's tensors (saved in every checkpoint)."""
        return {k: getattr(self, k) for k in ("height", "width", "depth", "base_width",
                                               "max_width", "kernel_size", "resize")}

    # -- reading and writing -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def result_dict(self) -> dict:
        """The settings that change the trained weights (compared on resume)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata["runtime"]}

    def to_toml(self) -> str:
        """Flat TOML, one ``key = value`` per line."""
        return "".join(f"{k} = {_toml_value(v)}\n" for k, v in self.to_dict().items())

    @classmethod
    def from_dict(cls, data: dict, origin: str = "config") -> AEConfig:
        """Build from a mapping; unknown keys and wrong types are refused by name."""
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"unknown key {key!r} in {origin} (known: {', '.join(known)})")
            values[key] = _coerce(key, value, type(known[key].default), origin)
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> AEConfig:
        """Read a TOML file (flat keys, or an ``[ae]`` table)."""
        return cls.from_dict(read_toml(path), origin=Path(path).name)

    def override(self, **changes) -> AEConfig:
        """A copy with ``changes`` (None values ignored), checked as a file would be."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return AEConfig.from_dict({**self.to_dict(), **changes}, origin="overrides")


def read_toml(path: str | Path) -> dict:
    """The settings in a TOML file, as written (flat keys, or an ``[ae]`` table)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"bad TOML in {p}: {exc}") from None
    if set(data) == {"ae"} and isinstance(data["ae"], dict):
        data = data["ae"]
    return data


def _coerce(key: str, value, kind: type, origin: str):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} in {origin} must be {kind.__name__}, not {value!r}")
    return value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_fields() -> list:
    """The settings, for the CLI: (name, default, type, help, choices)."""
    return [(f.name, f.default, type(f.default), f.metadata["help"], f.metadata["choices"])
            for f in fields(AEConfig) if f.default is not MISSING]
