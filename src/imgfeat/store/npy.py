"""NumPy: ``features_data.npy`` (N x D) and ``features_labels.npy`` beside the ids."""

from __future__ import annotations

import io

import numpy as np

from ..storage import Location, read_bytes
from .format import Columns
from .npz import IDS, NpzShards, file_columns

DATA, LABELS = "features_data.npy", "features_labels.npy"


class NpyFormat(NpzShards):
    name = "npy"
    merged_files = (DATA, LABELS, IDS)
    file_endings = ("_data.npy",)

    def write_vectors(self, out: Location, blocks, labels: list[str], dim: int,
                      dtype: np.dtype, ids: dict[str, list]) -> None:
        # streamed: the header first, then each shard's rows (spooled whole on object stores)
        with out.open_write(DATA) as fh:
            np.lib.format.write_array_header_1_0(fh, {
                "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                "shape": (len(labels), dim)})
            for block in blocks:
                fh.write(np.ascontiguousarray(block, dtype=dtype).tobytes())
        buf = io.BytesIO()
        np.save(buf, np.array(labels, dtype=str))
        out.write_bytes(LABELS, buf.getvalue())

    def read_vectors(self, out: Location) -> tuple[np.ndarray, list[str]]:
        X = np.load(io.BytesIO(out.read_bytes(DATA)), allow_pickle=False)
        labels = np.load(io.BytesIO(out.read_bytes(LABELS)), allow_pickle=False).tolist()
        return X, labels

    def read_file(self, path: str, storage_options: dict | None) -> tuple[Columns, dict]:
        X = np.load(io.BytesIO(read_bytes(path, storage_options)), allow_pickle=False)
        try:
            labels = np.load(io.BytesIO(read_bytes(path[: -len("_data.npy")] + "_labels.npy",
                                                   storage_options)), allow_pickle=False).tolist()
        except FileNotFoundError:
            labels = [""] * len(X)
        return file_columns(X, labels), {}


FORMAT = NpyFormat()
