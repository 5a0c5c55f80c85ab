"""The registry of named poolings: maps (B, C, H, W) feature maps to (B, D) vectors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch


class Pooling:
    """Base class. Subclasses set ``name`` and implement ``pool`` and ``out_features``.

    ``__init__`` stores each argument in the attribute of the same name (scikit-learn's rule);
    ``get_params`` reads them back by ``__init__``'s signature, so it needs no override.
    Poolings that learn state implement ``fit`` and return ``self``.
    """

    name = "base"
    #: dtype the vectors are stored in
    store_dtype = "float32"
    #: the pooling's options on the command line: parameter -> (flag, help); the one place
    #: the CLI learns them from (types come from ``__init__``'s defaults)
    cli_options: dict[str, tuple[str, str]] = {}
    #: allowed values of options that take a fixed set
    option_choices: dict[str, tuple] = {}

    def check_choices(self) -> None:
        """Raise ValueError for the first option whose value is not in :attr:`option_choices`
        (call it from ``__init__`` once the options are stored)."""
        for name, choices in self.option_choices.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}")

    @classmethod
    def _param_names(cls) -> list[str]:
        """The parameters of ``__init__`` (scikit-learn's rule: no ``*args`` or ``**kwargs``)."""
        if cls.__init__ is object.__init__:
            return []
        import inspect

        names = []
        for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"pooling {cls.name!r}: __init__ must name its parameters "
                                f"(no *args or **kwargs), as scikit-learn requires")
            names.append(param.name)
        return names

    def get_params(self) -> dict:
        """The ``__init__`` parameters, read from the attributes of the same names (each
        ``__init__`` stores its arguments as they are, as scikit-learn requires)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def out_features(self, channels: int, height: int, width: int) -> int:
        return channels

    def __call__(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.ndim == 2:  # already a vector (pre-logits): nothing to pool
            return fmap
        if fmap.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) map, got shape {tuple(fmap.shape)}")
        return self.pool(fmap)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{self.name}({args})"


_REGISTRY: dict[str, type[Pooling]] = {}


def register_pooling(cls: type[Pooling]) -> type[Pooling]:
    """Class decorator: make a pooling available by its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"pooling {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def list_poolings() -> list[str]:
    return sorted(_REGISTRY)


def create_pooling(name: str, **params) -> Pooling:
    """Create a registered pooling; a clear error lists the known names."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown pooling {name!r}; known: {', '.join(list_poolings())}")
    try:
        return _REGISTRY[name](**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad options for pooling {name!r}: {exc}") from None


def pooling_options() -> dict[str, dict]:
    """Every pooling option flag: ``{flag: {"param", "type", "choices", "help", "pools"}}``,
    gathered from the registered classes (a flag shared by several poolings appears once)."""
    import inspect

    flags: dict[str, dict] = {}
    for name in list_poolings():
        cls = _REGISTRY[name]
        sig = inspect.signature(cls.__init__).parameters
        for param, (flag, text) in cls.cli_options.items():
            entry = flags.setdefault(flag, {
                "param": param, "type": type(sig[param].default), "help": text,
                "choices": cls.option_choices.get(param), "pools": [], "defaults": {}})
            entry["pools"].append(name)
            entry["defaults"][name] = sig[param].default
    return flags


PoolFn = Callable[["torch.Tensor"], "torch.Tensor"]
