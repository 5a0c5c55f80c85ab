"""Compute processes: the network run in ``n`` processes (single-thread on small CPUs), each
holding a copy of the :class:`~imgfeat.pipeline.Extractor`, fed decoded batches by the main
process, their vectors handed back in the order the batches came.

The processes are not forked from the main process: it has already run the network (the
probe) with torch's OpenMP/oneDNN thread pool, and holds an ONNX Runtime or OpenVINO session
whose worker threads (OpenVINO's TBB arena) a fork would not copy: a forked child may wait
forever on a lock one of them held, or on a pool that no longer exists. They fork from
multiprocessing's *forkserver*, a clean single-threaded process that imported torch once
(spawning each would import torch in every process, seconds each on a loaded 2-core machine).
Each sets its thread count before it loads anything, unpickles the Extractor sent once (a torch
network by value; an exported runtime as its cached file, which it loads again with its own
threads) and then embeds batches until told to stop.

Where the main process would decode between batches (no decode workers: small CPUs), the
processes are sent the items instead and decode their own batches: each core then decodes and
computes in turn, instead of every core's network waiting on one decoding process.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import pickle
import queue
import signal
import sys
import types
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from ..batches import DecodedBatch, Shard
from ..decode import MAX_PIXELS
from ..errors import ComputeError
from ..pipeline import batch_positions, decode_batch
from ..sources import Item, Source
from ..storage import StorageUnavailableError

#: batches in flight per compute process (one computing, one waiting in its queue)
DEPTH = 2


def _portable(extractor, threads: int, source: Source | None, max_pixels: int
              ) -> tuple[bytes, bool]:
    """What a compute process is sent once, and whether it decodes its own batches: the
    extractor (an exported runtime's session is not sent: it pickles as its model file's bytes
    and is loaded there with ``threads``) and the source without its item list, when one is
    given that a process can receive (its class importable there, its state picklable: a
    source class defined in a script's ``__main__`` is not, nor one holding a lambda or an open
    file; then the main process decodes)."""
    import copy

    ex = copy.copy(extractor)  # shallow: the parent's network and session stay as they are
    if getattr(ex, "compiled", None) is not None:
        compiled = object.__new__(type(ex.compiled))  # no session loaded here
        compiled.__dict__.update({k: v for k, v in vars(ex.compiled).items() if k != "model"},
                                 threads=threads)  # pickles with its file's bytes
        ex.compiled = compiled
    if source is not None and type(source).__module__ != "__main__":
        try:
            sent = pickle.dumps(source.local_copy(), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - any source that does not pickle: decoded here
            sent = None
        if sent is not None:
            return pickle.dumps((ex, sent, max_pixels), protocol=pickle.HIGHEST_PROTOCOL), True
    return pickle.dumps((ex, None, max_pixels), protocol=pickle.HIGHEST_PROTOCOL), False


def decode_and_embed(extractor, source: Source, max_pixels: int, shard: int,
                     positions: list[int], items: list[Item]) -> DecodedBatch:
    """Decode one batch of a shard here and embed it: the batch comes back with its vectors
    and without its pixels (storage that stayed unavailable marks it, as a decode worker
    does)."""
    try:
        batch = decode_batch(source, shard, positions, items, extractor.preprocess, max_pixels)
    except StorageUnavailableError as exc:
        return DecodedBatch(shard, positions, None, [], {}, unavailable=str(exc))
    if batch.pixels is not None:
        batch.vectors = extractor.embed(batch.pixels)
        batch.pixels = None
    return batch


def _serve(payload: bytes, threads: int, tasks, results) -> None:
    """A compute process: answer each task with ``(key, result, error)`` until ``None``
    (``key`` None: it could not start). A task is ``(key, pixels)``, answered with their
    vectors, or, when it was sent a source, ``(key, (shard, positions, items))``, answered
    with the batch decoded and embedded here."""
    torch.set_num_threads(threads)
    try:
        extractor, source, max_pixels = pickle.loads(payload)
        source = pickle.loads(source) if source is not None else None
    except Exception as exc:  # noqa: BLE001 - said in the main process as one line
        results.put((None, None, f"cannot start: {type(exc).__name__}: {exc}"))
        return
    while (task := tasks.get()) is not None:
        key, work = task
        try:
            result = (extractor.embed(torch.from_numpy(work)) if source is None
                      else decode_and_embed(extractor, source, max_pixels, *work))
            results.put((key, result, None))
        except Exception as exc:  # noqa: BLE001
            results.put((key, None, f"{type(exc).__name__}: {exc}"))


@contextlib.contextmanager
def _no_main() -> Iterator[None]:
    """Start processes without the caller's ``__main__``: :func:`_serve` needs none,
    and a script that calls ``extract()`` with no ``if __name__ == "__main__"`` guard would
    otherwise run again in every compute process."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _how(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class ComputePool:
    """``n`` compute processes, each holding ``extractor`` with ``threads`` threads; started
    on entering, stopped on leaving (killed when leaving on an error)."""

    def __init__(self, extractor, n: int, threads: int = 1, source: Source | None = None,
                 max_pixels: int = MAX_PIXELS):
        """With ``source``, the processes decode the batches :meth:`decoded` sends them
        (:attr:`decodes`), unless it cannot be sent to them: then feed them with :meth:`ahead`."""
        self.n, self.threads = n, threads
        self._payload, self.decodes = _portable(extractor, threads, source, max_pixels)
        self._torch_network = getattr(extractor, "compiled", None) is None
        self._keys = itertools.count()
        self._key_of: dict[int, int] = {}  # id(batch) -> its task's key
        self._done: dict[int, np.ndarray] = {}
        self.processes: list = []

    def __enter__(self) -> ComputePool:
        ctx = mp.get_context("forkserver")
        # the server imports torch (and timm for a torch network) once; each process forks
        # from it, clean: it never ran a network nor loaded a session
        ctx.set_forkserver_preload(["imgfeat.engines.compute"]
                                   + (["timm"] if self._torch_network else []))
        self._tasks, self._results = ctx.Queue(), ctx.Queue()
        self.processes = [ctx.Process(target=_serve, name=f"imgfeat-compute-{i}", daemon=True,
                                      args=(self._payload, self.threads, self._tasks,
                                            self._results))
                          for i in range(self.n)]
        with _no_main():
            for p in self.processes:
                p.start()
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self._check_alive()  # a process that died idle lost nothing, but is not normal
            for _ in self.processes:
                self._tasks.put(None)
        for p in self.processes:
            p.join(timeout=5 if kind is None else 0)
            if p.is_alive():
                p.kill()
                p.join()
        for q in (self._tasks, self._results):
            q.cancel_join_thread()  # never wait on a pipe no process reads any more
            q.close()

    def ahead(self, batches: Iterable[DecodedBatch]) -> Iterator[DecodedBatch]:
        """``batches`` in their order, each sent to the processes before it is yielded, up to
        :data:`DEPTH` per process ahead of the one the caller embeds."""
        window: deque[DecodedBatch] = deque()
        for batch in batches:
            if batch.pixels is not None and batch.unavailable is None:
                key = next(self._keys)
                self._key_of[id(batch)] = key
                self._tasks.put((key, batch.pixels.numpy()))
            window.append(batch)
            if len(window) > DEPTH * self.n:
                yield window.popleft()
        yield from window

    def decoded(self, shards: list[Shard], batch_size: int) -> Iterator[DecodedBatch]:
        """Every batch of ``shards`` in order, decoded and embedded by the processes (the
        pool was given the source), up to :data:`DEPTH` per process sent ahead."""
        tasks = ((s.index, positions, [s.items[p] for p in positions])
                 for s in shards for positions in batch_positions(len(s.items), batch_size))
        window: deque[int] = deque()
        for work in tasks:
            key = next(self._keys)
            self._tasks.put((key, work))
            window.append(key)
            if len(window) > DEPTH * self.n:
                yield self._result(window.popleft())
        while window:
            yield self._result(window.popleft())

    def embed(self, batch: DecodedBatch) -> np.ndarray:
        """The vectors of a batch :meth:`ahead` sent (waits for them)."""
        return self._result(self._key_of.pop(id(batch)))

    def _result(self, key: int):
        """What the processes answered to task ``key`` (waits for it)."""
        while key not in self._done:
            self._check_alive()  # also when the others carry on: its task may be lost
            try:
                got, vectors, error = self._results.get(timeout=0.25)
            except queue.Empty:
                continue
            if error is not None:
                raise ComputeError(f"a compute process failed: {error}")
            self._done[got] = vectors
        return self._done.pop(key)

    def _check_alive(self) -> None:
        for i, p in enumerate(self.processes):
            if p.exitcode is not None:
                raise ComputeError(
                    f"compute process {i + 1} of {self.n} stopped ({_how(p.exitcode)}); "
                    f"the shards written before are kept: run again with --resume")
