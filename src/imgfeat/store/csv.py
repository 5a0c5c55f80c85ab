"""CSV: ``features.csv`` beside the ids, a row per image that succeeded: ``Class``, ``n0`` …
``n{D-1}``, then ``id`` and ``path`` (and ``split`` where the source has splits).

``csv`` writes Orange's header flags (``cD#Class``: the discrete target; ``C#n0``: continuous
features; ``mS#id``: string metas), so that Orange takes ``Class`` as the target by itself, keeps
numeric labels a class, and never guesses a feature (a column of zeros) discrete. ``csv-plain``
(:mod:`.csv_plain`) writes the bare names for tools that do not know the flags. Both, and the
``Class,n0,…`` files of earlier versions, read back.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np

from ..errors import StoreError
from ..storage import Location, read_bytes
from .format import Columns
from .npz import IDS, NpzShards, file_columns

DATA = "features.csv"
_FEATURE = re.compile(r"n\d+")
#: the rows' own columns after the features, as ``features_ids.json`` names them
_METAS = {"id": "ids", "path": "paths", "split": "splits"}


class CsvFormat(NpzShards):
    """The merged CSV, with Orange's header flags (``orange``) or without."""

    merged_files = (DATA, IDS)
    file_endings = (".csv",)

    def __init__(self, name: str = "csv", orange: bool = True):
        self.name = name
        self.orange = orange

    def header(self, dim: int, has_labels: bool, has_splits: bool) -> list[str]:
        """The header row: Orange's flags before ``#`` when :attr:`orange`."""
        metas = ["id", "path"] + (["split"] if has_splits else [])
        if not self.orange:
            return ["Class", *(f"n{i}" for i in range(dim)), *metas]
        # no labels: the empty Class column is ignored (i), not a target with no values
        return [("cD#" if has_labels else "iD#") + "Class", *(f"C#n{i}" for i in range(dim)),
                *(f"mS#{m}" for m in metas)]

    def write_vectors(self, out: Location, blocks, labels: list[str], dim: int,
                      dtype: np.dtype, ids: dict[str, list]) -> None:
        has_splits = any(ids["splits"])
        columns = [ids["ids"], ids["paths"]] + ([ids["splits"]] if has_splits else [])
        with out.open_write(DATA) as raw:
            fh = io.TextIOWrapper(raw, newline="", encoding="utf-8")
            w = csv.writer(fh)
            w.writerow(self.header(dim, any(labels), has_splits))
            k = 0
            for block in blocks:
                for vec in block:
                    w.writerow([labels[k], *(f"{v:.8g}" for v in vec.tolist()),
                                *(col[k] or "" for col in columns)])
                    k += 1
            fh.flush()
            fh.detach()  # the file itself is closed (and committed) by open_write

    def read_vectors(self, out: Location) -> tuple[np.ndarray, list[str]]:
        X, labels, _ = read_features_csv(out.read_bytes(DATA).decode())
        return X, labels

    def read_file(self, path: str, storage_options: dict | None) -> tuple[Columns, dict]:
        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        X, labels, rows = read_features_csv(read_bytes(path, storage_options).decode(), name)
        return file_columns(X, labels, rows), {}


def read_features_csv(text: str, name: str = "CSV"
                      ) -> tuple[np.ndarray, list[str], dict[str, list]]:
    """Parse a features CSV (Orange-flagged, plain, or an earlier version's ``Class,n0,…``) into
    ``(X, labels, rows)``; ``rows`` holds the ``ids``, ``paths`` and ``splits`` it lists."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    names = [h.split("#", 1)[1] if "#" in h else h for h in header]
    if not names or names[0] != "Class":
        found = ",".join(header[:3]) + (",…" if len(header) > 3 else "")
        raise StoreError(f"{name}: expected a features CSV whose header is Class,n0,n1,… (the "
                         f"label column first), found {found or 'an empty line'}")
    features = [k for k, n in enumerate(names) if _FEATURE.fullmatch(n)]
    metas = {_METAS[n]: k for k, n in enumerate(names) if n in _METAS}
    rows = list(reader)
    try:
        X = np.array([[float(r[k]) for k in features] for r in rows], dtype=np.float32).reshape(
            len(rows), len(features))
        found = {key: [r[k] or None for r in rows] for key, k in metas.items()}
    except (ValueError, IndexError) as exc:
        raise StoreError(f"{name}: not a features CSV (a row with a non-number or a different "
                         f"length: {exc})") from None
    return X, [r[0] for r in rows], found


FORMAT = CsvFormat()
