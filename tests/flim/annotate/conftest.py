"""Shared by the annotate server's tests: one HTTP request to the running server."""

from __future__ import annotations

import urllib.error
import urllib.request


def send(url: str, method: str = "GET", data: bytes | None = None, write: bool = True,
         headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of one request; ``write`` adds the header the server asks of writes."""
    hdrs = {"Content-Type": "application/json"} | ({"X-Imgfeat": "1"} if write else {}) | (headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
