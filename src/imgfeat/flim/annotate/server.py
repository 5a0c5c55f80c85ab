"""The annotation web app: a small Starlette app over an :class:`AnnotationSession`, served by
uvicorn on 127.0.0.1 only.

Routes (the page refers to images by index, never by path)::

    GET  /                              the page (static/index.html)
    GET  /static/...                    app.js, style.css
    GET  /api/session                   class names, label base, budget, images with counts
    GET  /api/images/{i}/image          image i decoded as PNG
    GET  /api/images/{i}/markers        its saved markers: width, height, flat pixels, labels, version
    PUT  /api/images/{i}/markers        save them (JSON: pixels, labels, version), atomically
    GET  /api/files/{name}              a file of the marker folder (refused outside it)
    POST /api/learn                     learn FLIM on the saved markers, maps of a layer on image i

Writes need the header ``X-Imgfeat: 1`` (a page on another site cannot send it without a CORS
preflight, which this app never grants), and the Host header must name this machine.

Bodies follow a strict schema (:mod:`.schema`), parsed off the event loop, at most ``max_body``
bytes. Every refusal is a JSON ``{"error": reason}``: 400 for a bad request, 403 for a path or
write refused, 409 for a stale save (with the current ``version``: the page reloads the image's
markers), 413 for a body over the limit, 507 when the disk is full.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
import sys
import threading
import webbrowser
from collections.abc import Iterator, Sequence
from pathlib import Path

from ...errors import ConfigError, ImgfeatError
from .schema import MAX_BODY, BadRequest, BodyTooLarge, parse_json, parse_learn, parse_save
from .session import AnnotationSession, PathRefused, StaleSave

__all__ = ["HOST", "STATIC", "create_app", "serve", "serve_in_thread"]

HOST = "127.0.0.1"
STATIC = Path(__file__).parent / "static"
WRITE_HEADER = "x-imgfeat"


def _missing_extra() -> ConfigError:
    return ConfigError("the annotation page needs starlette and uvicorn: pip install 'imgfeat[annotate]'")


def create_app(session: AnnotationSession, *, architecture=None, preview_side: int = 256,
               max_body: int = MAX_BODY):
    """The Starlette app serving ``session``. ``architecture`` (JSON file, dict or None for the
    built-in one) is what "learn and preview" learns; images are shrunk to ``preview_side``;
    request bodies over ``max_body`` bytes are refused."""
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

    def refusal(exc: Exception) -> JSONResponse:
        if isinstance(exc, StaleSave):
            return JSONResponse({"error": str(exc), "version": exc.version}, status_code=409)
        if isinstance(exc, OSError):
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
            where = f"{exc.filename}: " if exc.filename else ""
            return JSONResponse({"error": f"{where}{exc.strerror or exc}"}, status_code=507 if full else 400)
        status = 403 if isinstance(exc, PathRefused) else 413 if isinstance(exc, BodyTooLarge) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    def answered(handler):
        """Every error a request can cause is a JSON refusal with its reason, never a 500."""
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except (ImgfeatError, OSError) as exc:
                return refusal(exc)
        return run

    def index_of(request: Request) -> int:
        text = request.path_params["index"]
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise BadRequest(f"image number {text[:20]!r} is not a small non-negative integer")
        return int(text)

    def writable(request: Request) -> None:
        if request.headers.get(WRITE_HEADER) != "1":
            raise PathRefused(f"writes need the {WRITE_HEADER} header")

    async def body_of(request: Request) -> object:
        """The request's JSON body: at most ``max_body`` bytes, parsed in a worker thread."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            raise BodyTooLarge(f"the body is {int(declared):,} bytes, over the limit of {max_body:,}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise BodyTooLarge(f"the body is over the limit of {max_body:,} bytes")
            chunks.append(chunk)
        return await run_in_threadpool(parse_json, b"".join(chunks))

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def summary(request: Request) -> Response:
        return JSONResponse(session.summary())

    @answered
    async def image(request: Request) -> Response:
        data, _ = await run_in_threadpool(session.image_png, index_of(request))
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @answered
    async def markers(request: Request) -> Response:
        i = index_of(request)
        session.entry(i)
        if request.method == "PUT":
            writable(request)
            req = await run_in_threadpool(parse_save, await body_of(request))
            m, version = await run_in_threadpool(session.save_versioned, i, req.pixels, req.labels,
                                                 req.version)
            return JSONResponse({"saved": len(m), "file": session.marker_name(i),
                                 "counts": session.images[i].counts, "version": version})
        w, h = await run_in_threadpool(session.size, i)
        m, version = await run_in_threadpool(session.load_versioned, i)
        pixels = [] if m is None else (m.y.astype("int64") * w + m.x).tolist()
        labels = [] if m is None else m.label.tolist()
        return JSONResponse({"width": w, "height": h, "pixels": pixels, "labels": labels, "version": version})

    @answered
    async def files(request: Request) -> Response:
        path = session.file(request.path_params["name"])
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    def _learn(index: int, layer: str | None) -> dict:
        from .preview import learn_preview

        marked = session.marked()
        with learn_lock:
            return learn_preview([session.images[i].path for i, _ in marked], [m for _, m in marked],
                                 session.entry(index).path, architecture=arch, layer=layer,
                                 max_side=preview_side)

    @answered
    async def learn(request: Request) -> Response:
        writable(request)
        req = parse_learn(await body_of(request))
        session.entry(req.index)
        return JSONResponse(await run_in_threadpool(_learn, req.index, req.layer))

    routes = [
        Route("/", page),
        Route("/api/session", summary),
        Route("/api/images/{index}/image", image),
        Route("/api/images/{index}/markers", markers, methods=["GET", "PUT"]),
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
