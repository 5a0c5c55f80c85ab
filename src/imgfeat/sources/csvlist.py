"""A CSV list of ``label,path`` rows, with or without a header line."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..decode import is_image_file
from ..errors import SourceError
from ..storage import is_url, parent, read_bytes, resolve
from .base import Item, Source

HEADER_WORDS = {"label", "class", "path", "file", "filename", "image", "split", "target", "y"}
#: what a list should look like, said up front when it does not
LAYOUT = ("rows of label,path (a third column, split, is optional), or a header line naming "
          "the columns (label, path, split)")


class CsvSource(Source):
    """Rows of ``label,path`` (optionally a third ``split`` column), headerless or with a header.

    With a header, the columns are found by name (``label``/``class``, ``path``/``file``/
    ``image``, ``split``). Relative paths are relative to the CSV's folder (for a CSV at a URL,
    relative keys resolve against the CSV's own URL), which is the root for ids; a row may also
    hold a full URL (``s3://…``, ``https://…``). A bad row becomes a failed item whose error
    names its line.
    """

    kind = "csv"

    def __init__(self, path: str | os.PathLike, storage_options: dict | None = None):
        self.storage_options = dict(storage_options or {})
        self.url = str(path) if is_url(path) else None
        self.path = Path(path) if self.url is None else self.url
        if self.url is None and not self.path.is_file():
            raise SourceError(f"CSV list not found: {self.path}")
        self.root = self.path.parent if self.url is None else parent(self.url)
        try:
            rows = list(csv.reader(io.StringIO(self._text(), newline="")))
        except UnicodeDecodeError:
            raise SourceError(f"{self.path} is not a UTF-8 text file") from None
        except csv.Error as exc:
            raise SourceError(f"{self.path}: {exc}") from None
        numbered = [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
        if not numbered:
            raise SourceError(f"CSV list is empty: {self.path}")
        cols = {"label": 0, "path": 1, "split": None}
        width = 2
        first_line, first = numbered[0]
        lowered = [c.strip().lower() for c in first]
        if any(c in HEADER_WORDS for c in lowered):
            numbered = numbered[1:]
            width = len(first)
            cols = {"label": _find(lowered, ("label", "class", "target", "y")),
                    "path": _find(lowered, ("path", "file", "filename", "image")),
                    "split": _find(lowered, ("split",))}
            if cols["path"] is None:
                raise SourceError(f"{self.path} line {first_line}: header has no path column "
                                  f"(path, file, filename or image)")
        else:
            self._check_layout(numbered)
            if len(first) == 3:
                width, cols["split"] = 3, 2
        items: list[Item] = []
        seen: dict[str, int] = {}
        for line, row in numbered:
            if len(row) != width:
                items.append(Item(id=f"line {line}", error=f"line {line}: expected {width} "
                                  f"columns, found {len(row)}"))
                continue
            raw = row[cols["path"]].strip()
            if not raw:
                items.append(Item(id=f"line {line}", error=f"line {line}: empty path"))
                continue
            if self.url is None and not is_url(raw):
                p = Path(raw)
                full = p if p.is_absolute() else self.root / p
                rid = _rel_id(full, self.root)
            else:
                full = resolve(str(self.root), raw)
                prefix = f"{self.root}/"
                rid = full[len(prefix):] if full.startswith(prefix) else full
            if rid in seen:
                rid = f"{rid}#line{line}"
            seen[rid] = line
            label = row[cols["label"]].strip() if cols["label"] is not None else None
            split = row[cols["split"]].strip() if cols["split"] is not None else None
            items.append(Item(id=rid, path=str(full), label=label or None, split=split or None))
        if not items:
            raise SourceError(f"CSV list has no rows: {self.path}")
        super().__init__(items)

    def _check_layout(self, numbered: list[tuple[int, list[str]]]) -> None:
        """Refuse a headerless list whose rows are not ``label,path[,split]`` before any image
        is tried, saying what the list should look like."""
        line, first = numbered[0]
        if len(first) == 1:
            raise SourceError(f"{self.path} line {line} has one column ({first[0].strip()!r}); a "
                              f"CSV list has {LAYOUT}")
        if len(first) not in (2, 3):
            raise SourceError(f"{self.path} line {line} has {len(first)} columns; a CSV list "
                              f"has {LAYOUT}")
        rows = [r for _, r in numbered[:50] if len(r) >= 2]
        swapped = sum(is_image_file(r[0].strip()) and not is_image_file(r[1].strip())
                      for r in rows)
        if rows and swapped > len(rows) / 2:
            raise SourceError(f"{self.path}: the columns look swapped (line {line} is "
                              f"{','.join(c.strip() for c in first)}); a CSV list has {LAYOUT}")

    def _text(self) -> str:
        if self.url is None:
            with open(self.path, newline="", encoding="utf-8-sig") as fh:
                return fh.read()
        try:
            return read_bytes(self.url, self.storage_options).decode("utf-8-sig")
        except FileNotFoundError:
            raise SourceError(f"CSV list not found: {self.url}") from None
        except PermissionError:
            raise SourceError(f"CSV list not readable (permission denied): {self.url}") from None

    def describe(self) -> dict:
        path = self.url or str(self.path.resolve())
        return {"kind": self.kind, "path": path, "count": len(self.items)}


def _find(header: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def _rel_id(path: Path, root: Path) -> str:
    try:
        return Path(os.path.normpath(path)).relative_to(os.path.normpath(root)).as_posix()
    except ValueError:
        return Path(os.path.normpath(path)).as_posix()
