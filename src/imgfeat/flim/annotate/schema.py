"""The strict schema of the annotation API's request bodies.

Every body is a JSON object with exactly the keys listed here: an unknown or missing key, a
value of the wrong type (a string, a boolean, a float such as ``1.7`` or ``2.0``, ``null``, a
nested list), ``NaN``/``Infinity``, a body over the size limit or one that is not JSON is a
:class:`BadRequest` naming the reason, and nothing is written. Range checks that need the image
(pixels inside it, labels naming a class) are the session's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...errors import ImgfeatError

__all__ = ["MAX_BODY", "BadRequest", "BodyTooLarge", "LearnRequest", "SaveRequest", "parse_json",
           "parse_learn", "parse_save"]

#: the largest request body accepted (bytes): about 3 million marked pixels
MAX_BODY = 32 * 2**20
#: the largest integer a body may hold (marker files hold int32)
MAX_INT = 2**31 - 1
#: the longest version or layer name a body may hold
MAX_TEXT = 256


class BadRequest(ImgfeatError):
    """A request body that breaks the schema: answered 400 with the reason."""


class BodyTooLarge(BadRequest):
    """A request body over :data:`MAX_BODY`: answered 413."""


@dataclass(frozen=True)
class SaveRequest:
    """``PUT /api/images/{i}/markers``: flat pixel indices, their 0-based labels, and the
    version of the markers they were drawn over (``""``: the image had none)."""

    pixels: list[int]
    labels: list[int]
    version: str


@dataclass(frozen=True)
class LearnRequest:
    """``POST /api/learn``: the image to preview and the layer to show (None: the last)."""

    index: int
    layer: str | None


def _no_constant(name: str) -> object:
    raise BadRequest(f"{name} is not a number the API accepts")


def parse_json(raw: bytes) -> object:
    """The JSON value of a body; :class:`BadRequest` for anything that is not strict JSON."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest("the body nests too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError, int(...) of a huge literal
        raise BadRequest(f"the body is not valid JSON ({exc})") from None


def _object(data: object, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, dict):
        raise BadRequest(f"expected a JSON object with keys {', '.join(required + optional)}")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise BadRequest(f"unknown key {unknown[0]!r} (expected {', '.join(required + optional)})")
    missing = [k for k in required if k not in data]
    if missing:
        raise BadRequest(f"missing key {missing[0]!r}")
    return data


def _int(value: object, what: str) -> int:
    if type(value) is not int:  # bool is an int subclass; floats such as 2.0 are refused too
        shown = json.dumps(value)[:40] if not isinstance(value, float) else repr(value)
        raise BadRequest(f"{what} must be an integer, not {shown}")
    if not -MAX_INT <= value <= MAX_INT:
        raise BadRequest(f"{what} is out of range (beyond {MAX_INT:,})")
    return value


def _ints(value: object, what: str) -> list[int]:
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a list of integers")
    for k, v in enumerate(value):
        if type(v) is not int or not -MAX_INT <= v <= MAX_INT:
            _int(v, f"{what}[{k}]")
    return value


def _text(value: object, what: str, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string")
    if len(value) > MAX_TEXT or "\x00" in value:
        raise BadRequest(f"{what} is too long or holds a NUL")
    return value


def parse_save(data: object) -> SaveRequest:
    """The body of a marker save: ``{"pixels": [int], "labels": [int], "version": str}``."""
    d = _object(data, ("pixels", "labels", "version"))
    pixels, labels = _ints(d["pixels"], "pixels"), _ints(d["labels"], "labels")
    if len(pixels) != len(labels):
        raise BadRequest(f"{len(pixels)} pixels but {len(labels)} labels")
    return SaveRequest(pixels, labels, _text(d["version"], "version") or "")


def parse_learn(data: object) -> LearnRequest:
    """The body of "learn and preview": ``{"index": int, "layer": str | null}`` (layer optional;
    empty or null means the last layer)."""
    d = _object(data, ("index",), ("layer",))
    index = _int(d["index"], "index")
    layer = _text(d.get("layer"), "layer", allow_none=True)
    return LearnRequest(index, layer or None)
