"""Orange tables in and out: which column holds the images, their paths, the output tables."""

from __future__ import annotations

import os
from urllib.parse import urljoin, urlparse

import numpy as np
from Orange.data import ContinuousVariable, DiscreteVariable, Domain, StringVariable, Table, Variable
from Orange.data.util import get_unique_names

__all__ = ["image_columns", "image_paths", "skipped_table", "with_vectors"]

_URL = ("http", "https", "ftp", "s3", "gs", "az")


def image_columns(domain: Domain) -> list[Variable]:
    """Columns that may hold image paths: string (and categorical) metas, then string
    attributes; those marked ``type=image`` (Import Images' column) first."""
    cands = [v for v in domain.metas if isinstance(v, StringVariable | DiscreteVariable)]
    cands += [v for v in domain.variables if isinstance(v, StringVariable)]
    return sorted(cands, key=lambda v: v.attributes.get("type") != "image")


def image_paths(table: Table, var: Variable) -> list[str | None]:
    """Each row's image path: the column's value joined to its ``origin`` attribute (the folder
    Import Images read), as Image Analytics reads it; None where the value is missing."""
    origin = str(var.attributes.get("origin", "") or "")
    col = table.get_column(var)
    out: list[str | None] = []
    for value in col:
        if isinstance(var, DiscreteVariable):
            value = None if np.isnan(value) else var.values[int(value)]
        if value is None or value == "" or (isinstance(value, float) and np.isnan(value)):
            out.append(None)
            continue
        value = str(value)
        if urlparse(value).scheme in _URL or not origin:
            out.append(value)
        elif urlparse(origin).scheme in _URL:
            out.append(urljoin(origin.rstrip("/") + "/", value))
        else:
            out.append(os.path.join(origin, value))
    return out


def with_vectors(table: Table, ok: np.ndarray, vectors: np.ndarray) -> Table | None:
    """The rows of ``table`` where ``ok``, with the vectors as new continuous attributes
    ``n0 … n{D-1}`` (renamed if taken); the class and metas kept. None when no row is ok."""
    if not ok.any():
        return None
    taken = [v.name for v in table.domain.variables + table.domain.metas]
    names = get_unique_names(taken, [f"n{i}" for i in range(vectors.shape[1])])
    new = [ContinuousVariable(name) for name in names]
    for var in new:
        var.attributes["hidden"] = True  # keeps the vectors out of long drop-downs
    domain = Domain(table.domain.attributes + tuple(new), table.domain.class_vars,
                    table.domain.metas)
    rows = table[ok]
    out = rows.transform(domain)
    with out.unlocked(out.X):
        out.X[:, len(table.domain.attributes):] = vectors
    out.name = f"{table.name} embeddings" if table.name else "embeddings"
    return out


def skipped_table(table: Table, ok: np.ndarray, errors: dict[int, str]) -> Table | None:
    """The rows that failed, with an ``error`` meta saying why. None when none failed."""
    if ok.all():
        return None
    rows = np.flatnonzero(~ok)
    taken = [v.name for v in table.domain.variables + table.domain.metas]
    err = StringVariable(get_unique_names(taken, "error"))
    domain = Domain(table.domain.attributes, table.domain.class_vars, table.domain.metas + (err,))
    out = table[rows].transform(domain)
    with out.unlocked(out.metas):
        out.metas[:, -1] = [errors.get(int(i), "") for i in rows]
    out.name = "Skipped images"
    return out
