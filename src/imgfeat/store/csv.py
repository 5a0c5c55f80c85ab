"""CSV in the Orange format: ``features.csv`` (``Class,n0,n1,…``) beside the ids."""

from __future__ import annotations

import csv
import io

import numpy as np

from ..errors import StoreError
from ..storage import Location, read_bytes
from .format import Columns
from .npz import IDS, NpzShards, file_columns

DATA = "features.csv"


class CsvFormat(NpzShards):
    name = "csv"
    merged_files = (DATA, IDS)
    file_endings = (".csv",)

    def write_vectors(self, out: Location, blocks, labels: list[str], dim: int,
                      dtype: np.dtype) -> None:
        with out.open_write(DATA) as raw:
            fh = io.TextIOWrapper(raw, newline="", encoding="utf-8")
            w = csv.writer(fh)
            w.writerow(["Class"] + [f"n{i}" for i in range(dim)])
            k = 0
            for block in blocks:
                for vec in block:
                    w.writerow([labels[k]] + [f"{v:.8g}" for v in vec.tolist()])
                    k += 1
            fh.flush()
            fh.detach()  # the file itself is closed (and committed) by open_write

    def read_vectors(self, out: Location) -> tuple[np.ndarray, list[str]]:
        return read_orange_csv(out.read_bytes(DATA).decode())

    def read_file(self, path: str, storage_options: dict | None) -> tuple[Columns, dict]:
        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        X, labels = read_orange_csv(read_bytes(path, storage_options).decode(), name)
        return file_columns(X, labels), {}


def read_orange_csv(text: str, name: str = "CSV") -> tuple[np.ndarray, list[str]]:
    """Parse a ``Class,n0,n1,…`` CSV into (X, labels)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows = list(reader)
    if not header or header[0] != "Class":
        found = ",".join(header[:3]) + (",…" if len(header) > 3 else "")
        raise StoreError(f"{name}: expected a features CSV whose header is Class,n0,n1,… (the "
                         f"label column first), found {found or 'an empty line'}")
    labels = [r[0] for r in rows]
    try:
        X = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32).reshape(
            len(rows), len(header) - 1)
    except ValueError as exc:
        raise StoreError(f"{name}: not a features CSV (a row with a non-number or a different "
                         f"length: {exc})") from None
    return X, labels


FORMAT = CsvFormat()
