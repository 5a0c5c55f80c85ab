"""``imgfeat flim annotate``: a local web page for drawing FLIM markers.

- ``session``: the images, label names and marker folder of one annotation session; loading and
  saving marker files (atomic, never outside the marker folder). No web framework, no torch.
- ``preview``: "learn and preview": FLIM filters learned from the current markers and one layer's
  activation maps for an image (imports torch).
- ``server``: the Starlette app over a session, ``serve()`` (uvicorn on 127.0.0.1) and
  ``serve_in_thread()`` for tests and scripts.
- ``static/``: the page (index.html, app.js, style.css), plain JavaScript with no build step.

Quick start from Python::

    from imgfeat.flim.annotate import serve
    serve("images/", markers="markers/", labels=["egg", "background"])
"""

from __future__ import annotations

from ..._lazy import lazy_exports

_LAZY = {
    "AnnotationSession": "session",
    "PathRefused": "session",
    "create_app": "server",
    "serve": "server",
    "serve_in_thread": "server",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
