"""The annotation web app: a small Starlette app over an :class:`AnnotationSession`, served by
uvicorn on 127.0.0.1 only.

Routes (the page refers to images by index, never by path)::

    GET  /                              the page (static/index.html)
    GET  /static/...                    app.js, style.css
    GET  /api/session                   class names, label base, budget, images with counts
    GET  /api/images/{i}/image          image i decoded as PNG
    GET  /api/images/{i}/markers        its saved markers: width, height, flat pixels, labels
    PUT  /api/images/{i}/markers        save them (JSON: pixels, labels), atomically
    GET  /api/files/{name}              a file of the marker folder (refused outside it)
    POST /api/learn                     learn FLIM on the saved markers, maps of a layer on image i

Writes need the header ``X-Imgfeat: 1`` (a page on another site cannot send it without a CORS
preflight, which this app never grants), and the Host header must name this machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import webbrowser
from collections.abc import Iterator, Sequence
from pathlib import Path

from ...errors import ConfigError, ImgfeatError
from .session import AnnotationSession, PathRefused

__all__ = ["HOST", "STATIC", "create_app", "serve", "serve_in_thread"]

HOST = "127.0.0.1"
STATIC = Path(__file__).parent / "static"
WRITE_HEADER = "x-imgfeat"


def _missing_extra() -> ConfigError:
    return ConfigError("the annotation page needs starlette and uvicorn: pip install 'imgfeat[annotate]'")


def create_app(session: AnnotationSession, *, architecture=None, preview_side: int = 256):
    """The Starlette app serving ``session``. ``architecture`` (JSON file, dict or None for the
    built-in one) is what "learn and preview" learns; images are shrunk to ``preview_side``."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        from starlette.requests import Request
        from starlette.responses import FileResponse, JSONResponse, Response
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles
    except ImportError:
        raise _missing_extra() from None
    from .preview import resolve_architecture

    arch = resolve_architecture(architecture)
    learn_lock = threading.Lock()

    def error(exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=403 if isinstance(exc, PathRefused) else 400)

    def index_of(request: Request) -> int:
        return int(request.path_params["index"])

    def writable(request: Request) -> None:
        if request.headers.get(WRITE_HEADER) != "1":
            raise PathRefused(f"writes need the {WRITE_HEADER} header")

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def summary(request: Request) -> Response:
        return JSONResponse(session.summary())

    async def image(request: Request) -> Response:
        try:
            data, _ = await run_in_threadpool(session.image_png, index_of(request))
        except ImgfeatError as exc:
            return error(exc)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def markers(request: Request) -> Response:
        i = index_of(request)
        try:
            if request.method == "PUT":
                writable(request)
                body = await request.json()
                if not isinstance(body, dict):
                    raise ConfigError("expected a JSON object with pixels and labels")
                m = await run_in_threadpool(session.save, i, body.get("pixels", []), body.get("labels", []))
                return JSONResponse({"saved": len(m), "file": session.marker_name(i),
                                     "counts": session.images[i].counts})
            w, h = await run_in_threadpool(session.size, i)
            m = await run_in_threadpool(session.load, i)
        except ImgfeatError as exc:
            return error(exc)
        except ValueError as exc:  # malformed JSON
            return error(ConfigError(f"bad request body ({exc})"))
        pixels = [] if m is None else (m.y.astype("int64") * w + m.x).tolist()
        labels = [] if m is None else m.label.tolist()
        return JSONResponse({"width": w, "height": h, "pixels": pixels, "labels": labels})

    async def files(request: Request) -> Response:
        try:
            path = session.file(request.path_params["name"])
        except ImgfeatError as exc:
            return error(exc)
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    def _learn(index: int, layer: str | None) -> dict:
        from .preview import learn_preview

        marked = session.marked()
        with learn_lock:
            return learn_preview([session.images[i].path for i, _ in marked], [m for _, m in marked],
                                 session.entry(index).path, architecture=arch, layer=layer,
                                 max_side=preview_side)

    async def learn(request: Request) -> Response:
        try:
            writable(request)
            body = await request.json()
            result = await run_in_threadpool(_learn, int(body.get("index", 0)), body.get("layer") or None)
        except ImgfeatError as exc:
            return error(exc)
        except (ValueError, TypeError) as exc:
            return error(ConfigError(f"bad request body ({exc})"))
        return JSONResponse(result)

    routes = [
        Route("/", page),
        Route("/api/session", summary),
        Route("/api/images/{index:int}/image", image),
        Route("/api/images/{index:int}/markers", markers, methods=["GET", "PUT"]),
        Route("/api/files/{name:path}", files),
        Route("/api/learn", learn, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    hosts = [HOST, "localhost"]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])


def _socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {HOST}:{port} ({exc.strerror}); try another --port") from None
    sock.listen(64)
    return sock


def _server(app):
    try:
        import uvicorn
    except ImportError:
        raise _missing_extra() from None
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def _session(images, markers, labels, label_base, budget, mask_png) -> AnnotationSession:
    if isinstance(labels, str):
        labels = labels.split(",")
    return AnnotationSession(images, markers, labels, label_base=label_base, budget=budget, mask_png=mask_png)


def serve(images: str | os.PathLike | Sequence[str | os.PathLike], markers: str | os.PathLike, *,
          labels: str | Sequence[str] = ("foreground", "background"), port: int = 8765,
          open_browser: bool = True, label_base: int = 1, budget: int | None = None,
          mask_png: bool = False, architecture=None, preview_side: int = 256) -> None:
    """Serve the annotation page for ``images`` until Ctrl-C; prints its URL (``port`` 0: any free)."""
    app = create_app(_session(images, markers, labels, label_base, budget, mask_png),
                     architecture=architecture, preview_side=preview_side)
    sock = _socket(port)
    server = _server(app)
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    print(f"annotate: {url}  (markers -> {markers}; Ctrl-C to stop)", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the Ctrl-C
        pass
    finally:
        sock.close()
    print("annotate: stopped", file=sys.stderr)


@contextlib.contextmanager
def serve_in_thread(images: str | os.PathLike | Sequence[str | os.PathLike], markers: str | os.PathLike,
                    *, labels: str | Sequence[str] = ("foreground", "background"), label_base: int = 1,
                    budget: int | None = None, mask_png: bool = False, architecture=None,
                    preview_side: int = 256) -> Iterator[str]:
    """Run the app on a free 127.0.0.1 port in a background thread; yields its URL, stops on exit."""
    import time

    app = create_app(_session(images, markers, labels, label_base, budget, mask_png),
                     architecture=architecture, preview_side=preview_side)
    sock = _socket(0)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the annotation server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{HOST}:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
