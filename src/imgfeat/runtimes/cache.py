"""Where exported models live: a user cache folder, each entry written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["cache_dir", "cache_key", "publish_dir", "read_json", "retire_dir", "write_json"]


def cache_dir() -> Path:
    """``$IMGFEAT_CACHE_DIR``, else ``$XDG_CACHE_HOME/imgfeat``, else ``~/.cache/imgfeat``;
    exported models live in its ``runtimes`` folder."""
    root = os.environ.get("IMGFEAT_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "imgfeat")
    return Path(root) / "runtimes"


def cache_key(data: dict) -> str:
    """A stable hash of what an entry depends on."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def publish_dir(final: Path, fill: Callable[[Path], None]) -> Path:
    """Make the folder ``final`` by filling a temporary sibling and renaming it: a reader sees
    the whole entry or none. When another process published it first, theirs is kept."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        fill(tmp)
        try:
            os.replace(tmp, final)
        except OSError:  # published meanwhile (a non-empty folder cannot be replaced)
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def retire_dir(final: Path) -> None:
    """Take the entry ``final`` out of the cache (renamed aside, then removed), so that it is
    made again; a process that has it open keeps its files."""
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
    with contextlib.suppress(OSError):  # retired by another process meanwhile
        os.replace(final, aside / final.name)
    shutil.rmtree(aside, ignore_errors=True)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict | None:
    """The entry at ``path``, or None when absent or unreadable (then it is made again)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
