"""How a message names an argument: as the flag typed on the command line (``--batch-size 0``)
or as the Python keyword (``batch_size=0``), whichever the user is using."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_UNSET = object()
#: set while the command line runs a command: Python name -> flag, where they differ
_FLAGS: ContextVar[dict[str, str] | None] = ContextVar("imgfeat_cli_flags", default=None)


def arg(name: str, value: object = _UNSET) -> str:
    """``name`` (with ``value``) as the user spelled it: ``--batch-size 0`` on the command
    line, ``batch_size=0`` from Python; a ``True`` value is the bare flag (``--resume``)."""
    flags = _FLAGS.get()
    if flags is None:
        return name if value is _UNSET else f"{name}={value!r}"
    flag = flags.get(name, "--" + name.replace("_", "-"))
    return flag if value is _UNSET or value is True else f"{flag} {value}"


def on_command_line() -> bool:
    """True while the ``imgfeat`` command runs (messages then name flags)."""
    return _FLAGS.get() is not None


@contextlib.contextmanager
def command_line(flags: dict[str, str] | None = None) -> Iterator[None]:
    """Within this block messages name flags; ``flags`` maps Python names to flags where
    they differ (``num_workers`` -> ``--workers``)."""
    token = _FLAGS.set(dict(flags or {}))
    try:
        yield
    finally:
        _FLAGS.reset(token)
