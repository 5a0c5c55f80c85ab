"""``extract()``: the whole run, from a source to a finished output folder."""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from .config import ExtractConfig, ModelConfig, RunConfig, config_digest, options_doc, pick_model_options
from .decode import MAX_PIXELS
from .device import check_device
from .device_jpeg import resolve_jpeg_decoder
from .engines import EngineJob, create_engine
from .engines.local import keep_sigchld
from .errors import ConfigError, ImgfeatWarning, ItemsFailedError
from .pipeline import Extractor, ShardUnavailable, create_parts, make_shards
from .precision import resolve_precision, slow_precision
from .runtimes import check_runtime
from .sources import Source, open_source
from .storage import StorageUnavailableError, join
from .store import FAILURES, JobStore
from .store.lock import OutputLock, writing
from .usage import arg


@dataclass(frozen=True)
class ExtractResult:
    """What a run did: counts, where the output and the failure list are."""

    output: Path | str  # a URL for object storage
    items: int
    ok: int
    failed: int
    shards: int
    shards_skipped: int
    seconds: float
    dim: int
    #: images whose shards an earlier run had finished (a resume reuses them)
    reused: int = 0
    #: the precision the model ran in (``auto`` resolved for the device)
    precision: str = "fp32"
    #: the runtime the network ran in (``auto`` resolved: torch, openvino or onnxruntime)
    runtime: str = "torch"
    #: the processes the network ran in (``compute_processes`` resolved)
    compute_processes: int = 1

    @property
    def failures_path(self) -> Path | str | None:
        if not self.failed:
            return None
        if isinstance(self.output, str):
            return join(self.output, FAILURES)
        p = self.output / FAILURES
        return p if p.is_file() else None


def extract(source, output: str | os.PathLike, *, model: str = "tf_efficientnet_lite0",
            pretrained: bool = True, weights: str | None = None, layers: str | None = None,
            pool: str = "avg", pool_args: dict | None = None, img_size: int | None = None,
            resize: str | None = None, output_stride: int | None = None, precision: str = "auto",
            format: str = "parquet", batch_size: int | None = None,
            num_workers: int | None = None, threads: int | None = None, device: str = "cpu",
            shard_size: int = 1000, resume: bool = False, overwrite: bool = False,
            strict: bool = False, progress: bool | None = None, engine: str = "local",
            labels: str = "auto", label_pattern: str | None = None, data_labels=None,
            height: int | None = None, width: int | None = None, channels: int | None = None,
            max_pixels: int = MAX_PIXELS, ray_address: str | None = None,
            fold_bn: bool = True, storage_options: dict | None = None,
            keep_listing: bool = False, gpus_per_worker: float = 0,
            ray_max_actors: int | None = None, runtime: str = "auto",
            jpeg_decoder: str = "auto",
            compute_processes: int | str | None = None) -> ExtractResult:
    """Extract features of every image in ``source`` into the folder ``output``.

    ``source`` is a folder, a ``.csv`` list, a ``.npy`` array (with ``data_labels``), an array,
    or a :class:`~imgfeat.sources.Source`; folders, CSV lists and ``output`` may be URLs
    (``s3://…``, ``gs://…``, ``az://…``) read and written through fsspec with
    ``storage_options``. The item list is frozen at the start; a resume whose source has changed
    is refused unless ``keep_listing``. Returns an :class:`ExtractResult`; bad images are
    recorded per item (or, with ``strict``, raise :class:`ItemsFailedError`, and a new output
    is removed again). ``precision="auto"`` runs bf16 where the device has it natively (CUDA
    with bf16, CPUs with AVX512-BF16 or AMX) and fp32 elsewhere; the metadata records which.
    ``engine="ray"`` runs on a Ray cluster (``ray_address``, up to ``ray_max_actors`` actors,
    each with ``gpus_per_worker`` GPUs when given). ``runtime`` runs the network in torch or
    exported to ``openvino`` or ``onnxruntime`` (``auto``: the fastest installed one whose maps
    equal torch's on a probe, fp32 on CPU, locally or in Ray's CPU actors; the metadata
    records which). ``jpeg_decoder="torchvision"`` decodes JPEGs in batches on the network's
    device (nvJPEG on CUDA; ``auto``: there, else PIL in the decode workers), local engine only.
    ``compute_processes`` (local engine): run the network in that many processes, this
    process's threads shared among them, fed the decoded batches (vectors equal to one
    process's with the same threads per process); ``auto`` (default) follows
    :func:`imgfeat.engines.cores.auto_compute_processes`; the metadata records how many.
    """
    t0 = time.perf_counter()
    mcfg = ModelConfig.from_options(**pick_model_options(locals()))  # checks every model option
    for name, value, least in (("batch_size", batch_size, 1), ("threads", threads, 1),
                               ("num_workers", num_workers, 0), ("shard_size", shard_size, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < least):
            raise ConfigError(f"{arg(name, value)}: must be a whole number, at least {least}")
    # the engine checks its own options (and refuses another engine's)
    eng = create_engine(engine, {"ray_address": ray_address, "gpus_per_worker": gpus_per_worker,
                                 "ray_max_actors": ray_max_actors},
                        device=device, threads=threads)
    device = check_device(device)
    runtime = check_runtime(runtime, device, gpus=gpus_per_worker)
    jpeg_decoder = resolve_jpeg_decoder(jpeg_decoder, device) if engine == "local" else "pil"
    precision = resolve_precision(precision, device)
    if (why := slow_precision(precision, device)) is not None:
        warnings.warn(why, ImgfeatWarning, stacklevel=2)
    mcfg = replace(mcfg, precision=precision)
    run = RunConfig(batch_size=batch_size or default_batch_size(device), num_workers=num_workers,
                    threads=threads, device=device, runtime=runtime, jpeg_decoder=jpeg_decoder,
                    compute_processes=compute_processes,
                    progress=sys.stderr.isatty() if progress is None else progress)
    if engine != "local" and compute_processes not in (None, "auto", 1):
        raise ConfigError(f"{arg('compute_processes', compute_processes)} applies to "
                          f"--engine local only")
    restore_sigchld = keep_sigchld()  # torch's decode workers leave theirs behind
    eng.start()  # a cluster starts while we list the source and build the network
    old_threads = torch.get_num_threads()
    lock = None
    try:
        src: Source = open_source(source, labels=labels, label_pattern=label_pattern,
                                  data_labels=data_labels, height=height, width=width,
                                  channels=channels, storage_options=storage_options)
        if strict:
            bad = next((it for it in src.items if it.error), None)
            if bad is not None:
                raise ItemsFailedError(f"{bad.id}: {bad.error} (strict)")
        n_threads, workers = run.resolved_threads_workers()
        torch.set_num_threads(n_threads)
        runtime = "torch" if gpus_per_worker else runtime  # GPU actors run torch
        # a cached export gives the weights without building the network (timm not imported)
        extractor = Extractor.cached(mcfg, device, runtime, n_threads) if runtime != "torch" else None
        parts = None if extractor else create_parts(mcfg)  # the weights, for the hash
        weights = extractor.weights if extractor else parts[1].weights
        store = JobStore(output, format, storage_options)
        lock = OutputLock(store.loc)  # one writer per folder; before --overwrite removes anything
        lock.acquire()
        if store.open(resume=resume, overwrite=overwrite):
            src.items = store.check_listing(src.items, keep_listing)
        cfg = ExtractConfig(source=src.describe(), model=mcfg, format=format,
                            shard_size=shard_size)
        hashed = {**cfg.to_dict(), "weights": weights.to_dict()}
        shards = make_shards(src.items, shard_size)
        if store.resuming and store.finished(hashed, config_digest(hashed), len(shards)):
            return _result(store, shards, len(shards), t0, store.dim(), len(src.items), precision,
                           extractor.runtime if extractor else "torch")  # finished: nothing to do
        extractor = extractor or Extractor(mcfg, device=device, parts=parts, runtime=runtime,
                                           threads=n_threads)
        procs = (run.resolved_compute_processes(extractor.runtime, len(src.items))
                 if engine == "local" else 1)
        with writing(store.out):
            done = store.begin(hashed, config_digest(hashed),
                               {**extractor.metadata(), "jpeg_decoder": jpeg_decoder,
                                "compute_processes": procs}, src.items)
        pending = [s for s in shards if s.index not in done]
        reused = sum(len(s.items) for s in shards if s.index in done)
        bar = tqdm(total=sum(len(s.items) for s in pending), unit="img", disable=not run.progress,
                   desc="extract", dynamic_ncols=True, smoothing=0.1)
        written = 0
        try:
            results = eng.run(EngineJob(extractor, src, run.batch_size, max_pixels,
                                        workers=workers, jpeg_decoder=jpeg_decoder,
                                        compute_processes=procs,
                                        on_batch=bar.update), pending)
            unavailable: list[str] = []
            for data in results:
                if isinstance(data, ShardUnavailable):
                    unavailable.append(f"shard {data.index}: {data.reason}")
                    continue  # not recorded: --resume runs this shard again
                if strict and data.n_failed:
                    k = int((~data.ok).argmax())
                    if not done:  # this run made the output: nothing of it may block a rerun
                        if hasattr(results, "close"):
                            results.close()
                        store.discard()
                    raise ItemsFailedError(f"{data.items[k].id}: {data.errors[k]} (strict)")
                with writing(store.out):
                    store.write_shard(data)
                written += 1
        except ConfigError:  # the engine could not start (no cluster, no GPUs): nothing is left
            if not done and not written:
                store.discard()
            raise
        finally:
            bar.close()
        if unavailable:
            raise StorageUnavailableError(
                f"{len(unavailable)} shard(s) left unfinished, storage unavailable "
                f"({unavailable[0]}); run again with --resume")
        with writing(store.out):
            store.finish(len(shards))
        return _result(store, shards, len(shards) - len(pending), t0, extractor.dim, reused,
                       precision, extractor.runtime, procs)
    finally:
        if lock is not None:
            lock.release()
        torch.set_num_threads(old_threads)
        restore_sigchld()
        eng.close()


if extract.__doc__:  # the model options' help, from their one definition
    extract.__doc__ += options_doc()


def _result(store: JobStore, shards, skipped: int, t0: float, dim: int, reused: int,
            precision: str, runtime: str = "torch", compute_processes: int = 1
            ) -> ExtractResult:
    summary = store.summary()
    out = store.out if store.loc.remote else Path(store.out)
    return ExtractResult(out, summary.get("items", 0), summary.get("ok", 0),
                         summary.get("failed", 0), len(shards), skipped,
                         time.perf_counter() - t0, dim, reused, precision, runtime,
                         compute_processes)


def default_batch_size(device: str) -> int:
    """Chosen from benchmarks/extract_throughput.py: small batches are fastest on CPU."""
    return 16 if device == "cpu" else 64
