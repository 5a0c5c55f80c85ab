"""The exceptions imgfeat raises. Every error a user can cause is an :class:`ImgfeatError`."""

from __future__ import annotations


class ImgfeatError(Exception):
    """Base class: a problem the user can fix, reported as one clear line."""

    exit_code = 2


class ConfigError(ImgfeatError):
    """Settings that cannot work together, or a bad value."""


class SourceError(ImgfeatError):
    """A source that cannot be read: missing folder, no images, a malformed list."""


class ModelError(ImgfeatError):
    """An unknown model or a layer/pooling it cannot provide."""


class WeightsError(ImgfeatError):
    """Pretrained weights that cannot be found or loaded."""


class StoreError(ImgfeatError):
    """An output that cannot be written, read, or resumed."""


class DecodeError(ImgfeatError):
    """One image that cannot be decoded (recorded per item, never fatal unless strict)."""


class ItemsFailedError(ImgfeatError):
    """Raised in strict mode when an item fails."""

    exit_code = 1


class ImgfeatWarning(UserWarning):
    """The run goes on, but the user should know (a setting that is slow on this machine)."""


class ComputeError(ImgfeatError):
    """A compute process of the local engine stopped (killed, out of memory) or failed: the
    shards written before are kept, and ``--resume`` finishes the run."""
