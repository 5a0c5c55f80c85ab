"""Download a texture benchmark from its public address (where it has one), failing cleanly
when there is no network."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ...errors import SourceError

TIMEOUT_S = 15.0


def download_dataset(cls, dest: str | os.PathLike, timeout: float = TIMEOUT_S) -> Path:
    """Fetch ``cls.url`` and unpack it into ``dest`` (atomically: a temporary folder renamed
    into place). Raises :class:`SourceError` with one line when offline or on a bad archive."""
    if not cls.url:
        raise SourceError(f"{cls.name} has no public download address; place the files under "
                          f"{dest} ({cls.layout_help})")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        archive = Path(tmp) / Path(cls.url).name
        try:
            with urllib.request.urlopen(cls.url, timeout=timeout) as resp, \
                    open(archive, "wb") as fh:
                shutil.copyfileobj(resp, fh, 1 << 20)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(f"cannot download {cls.name} from {cls.url} ({reason}); download "
                              f"it elsewhere and unpack it under {dest}") from None
        unpacked = Path(tmp) / "unpacked"
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:
                    z.extractall(unpacked)
            else:
                with tarfile.open(archive) as t:
                    t.extractall(unpacked, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
            raise SourceError(f"downloaded {cls.name} archive is damaged: {exc}") from None
        if dest.exists():
            raise SourceError(f"{dest} already exists")
        unpacked.rename(dest)
    return dest
