"""The local engine: decode in worker processes, overlapped with the model in this process."""

from __future__ import annotations

import itertools
import signal
import threading
from collections.abc import Callable, Iterable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..device_jpeg import DeviceJpegDecoder, read_item
from ..pipeline import (
    DecodedBatch,
    Shard,
    ShardData,
    ShardUnavailable,
    batch_positions,
    collate,
    decode_batches,
    decode_item,
    try_shard,
)
from ..preprocess import Preprocess
from ..sources import Source
from ..storage import StorageUnavailableError
from .compute import ComputePool
from .engine import EngineJob


class _DecodeDataset(Dataset):
    """Every pending item, flat; each read returns its shard, position and decoded pixels."""

    def __init__(self, source: Source, shards: list[Shard], preprocess: Preprocess,
                 max_pixels: int, keep_jpegs: bool = False):
        self.source = source
        self.preprocess = preprocess
        self.max_pixels = max_pixels
        self.keep_jpegs = keep_jpegs  # JPEGs are read, not decoded: the device decodes them
        self.index = [(s.index, pos, item) for s in shards for pos, item in enumerate(s.items)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        shard, pos, item = self.index[k]
        try:
            if self.keep_jpegs:
                pixels, jpeg, error = read_item(self.source, item, self.preprocess,
                                                self.max_pixels)
                return shard, pos, (pixels, error), None, jpeg
            return (shard, pos, decode_item(self.source, item, self.preprocess, self.max_pixels),
                    None, None)
        except StorageUnavailableError as exc:  # carried to the main process, which fails the shard
            return shard, pos, (None, None), str(exc), None


def _batch_indices(shards: list[Shard], batch_size: int) -> list[list[int]]:
    """Batches of flat indices that never cross a shard boundary (so shards are independent)."""
    batches, offset = [], 0
    for s in shards:
        batches += [[offset + p for p in positions]
                    for positions in batch_positions(len(s.items), batch_size)]
        offset += len(s.items)
    return batches


def _collate(rows) -> DecodedBatch:
    decoded = [r for r in rows if r[4] is None]
    batch = collate(rows[0][0], [r[1] for r in decoded], [r[2] for r in decoded])
    batch.positions = [r[1] for r in rows]
    batch.jpegs = {r[1]: r[4] for r in rows if r[4] is not None}
    batch.unavailable = next((r[3] for r in rows if r[3] is not None), None)
    return batch


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


class LocalEngine:
    """This machine: items decoded in ``workers`` processes (or, with none, in this one between
    batches), the network in this process, or in ``job.compute_processes`` processes fed the
    decoded batches (:mod:`.compute`). Shards come back in order."""

    name = "local"

    def __init__(self, device: str = "cpu", threads: int | None = None):
        self.device, self.threads = device, threads

    def start(self) -> None:
        """Nothing to acquire: worker processes live for one :meth:`run`."""

    def close(self) -> None:
        """Nothing to release."""

    def run(self, job: EngineJob, shards: list[Shard]) -> Iterator[ShardData | ShardUnavailable]:
        """Yield the finished data of each shard, in order (or the shard marked unavailable when
        storage stayed unavailable while reading it)."""
        if not shards:
            return
        extractor, source = job.extractor, job.source
        by_index = {s.index: s for s in shards}

        def counted(batches: Iterable[DecodedBatch]) -> Iterator[DecodedBatch]:
            for b in batches:
                yield b
                job.progress(len(b.positions))

        if job.compute_processes > 1:
            yield from self._run_processes(job, shards, counted)
            return
        if job.decodes_here:
            for shard in shards:
                yield try_shard(extractor, shard, counted(decode_batches(
                    source, shard, extractor.preprocess, job.batch_size, job.max_pixels)))
            return
        for index, batches in itertools.groupby(_decoded(job, shards), key=lambda b: b.shard):
            yield try_shard(extractor, by_index[index], counted(batches))

    def _run_processes(self, job: EngineJob, shards: list[Shard], counted
                       ) -> Iterator[ShardData | ShardUnavailable]:
        """The network in ``job.compute_processes`` processes (this process's threads shared
        among them); shards come back in order. Without decode workers the processes decode
        their own batches (sent the items) when the source can be sent to them; else they are
        fed the decoded batches."""
        by_index = {s.index: s for s in shards}
        threads = torch.get_num_threads()
        per_process = max(1, threads // job.compute_processes)
        torch.set_num_threads(1)  # this process only hands out work and writes now
        try:
            with ComputePool(job.extractor, job.compute_processes, per_process,
                             source=job.source if job.decodes_here else None,
                             max_pixels=job.max_pixels) as pool:
                ahead = (pool.decoded(shards, job.batch_size) if pool.decodes
                         else pool.ahead(_decoded(job, shards)))
                for index, batches in itertools.groupby(ahead, key=lambda b: b.shard):
                    yield try_shard(job.extractor, by_index[index], counted(batches),
                                    embed=pool.embed)
        finally:
            torch.set_num_threads(threads)


def keep_sigchld() -> Callable[[], None]:
    """A function that puts back this process's SIGCHLD handler as it is now.

    torch's worker loader installs a SIGCHLD handler for its workers and leaves it for the rest
    of the process, so every later child's exit runs torch's worker check. In a process that
    had since loaded OpenVINO or ONNX Runtime, a subprocess's exit then crashed it (SIGSEGV,
    seen in the test suite). The runner calls it in its ``finally``, so the handler is put back
    however the run ends, even while a traceback keeps the engine's generators alive. torch
    installs the handler again for its next loader."""
    if threading.current_thread() is not threading.main_thread():  # only the main one may
        return lambda: None
    previous = signal.getsignal(signal.SIGCHLD)

    def restore() -> None:
        signal.signal(signal.SIGCHLD, previous if previous is not None else signal.SIG_DFL)
        from torch.utils.data._utils import signal_handling

        signal_handling._SIGCHLD_handler_set = False  # the next loader sets its own again

    return restore


def _decoded(job: EngineJob, shards: list[Shard]) -> Iterable[DecodedBatch]:
    """Every pending batch in order, decoded in ``job.workers`` processes (none: here, between
    batches); an item whose storage is unavailable marks its batch instead of raising. With
    ``jpeg_decoder="torchvision"`` the JPEGs are only read there and decoded on the network's
    device here (:mod:`imgfeat.device_jpeg`); batches bound for a GPU come in pinned memory."""
    extractor = job.extractor
    decoder = (DeviceJpegDecoder(extractor.preprocess, extractor.device)
               if job.jpeg_decoder == "torchvision" else None)
    data = _DecodeDataset(job.source, shards, extractor.preprocess, job.max_pixels,
                          keep_jpegs=decoder is not None)
    order = _batch_indices(shards, job.batch_size)
    if job.workers == 0:
        batches = (_collate([data[k] for k in batch]) for batch in order)
    else:
        batches = DataLoader(
            data, batch_sampler=order, num_workers=job.workers, collate_fn=_collate,
            worker_init_fn=_worker_init, prefetch_factor=4, persistent_workers=False,
            multiprocessing_context="fork", pin_memory=extractor.device.type == "cuda")
    return map(decoder.finish, batches) if decoder is not None else batches
