"""``imgfeat extract``."""

from __future__ import annotations

import argparse

from ..engines import engine_names
from ..store.format import format_names
from .options import (
    add_model_arguments,
    add_runtime_argument,
    add_source_arguments,
    model_kwargs,
)


def add_parsers(sub) -> None:
    p = sub.add_parser("extract", help="extract features of a folder, CSV list or arrays",
                       description="Extract one feature vector per image into an output folder.")
    p.add_argument("source", nargs="?", help="a folder of images or a CSV list of label,path rows")
    p.add_argument("-o", "--output", required=True, help="output folder")
    g = p.add_argument_group("source")
    add_source_arguments(g)
    g.add_argument("--max-pixels", type=int, default=None,
                   help="refuse larger images per item (default: Pillow's limit)")
    add_model_arguments(p.add_argument_group("model"))
    g = p.add_argument_group("output and run")
    g.add_argument("--format", choices=format_names(), default="parquet",
                   help="parquet (OUT/data: a folder pandas, pyarrow, polars, duckdb and "
                        "Hugging Face datasets read), npy, csv (Orange's header flags: Class is "
                        "the target), or csv-plain (Class,n0,n1,…,id,path)")
    g.add_argument("--shard-size", type=int, default=1000, help="images per shard")
    g.add_argument("--resume", action="store_true", help="finish an interrupted run")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output")
    g.add_argument("--strict", action="store_true", help="stop at the first bad image")
    g.add_argument("--batch-size", type=int, help="images per forward pass (default 16 on CPU)")
    g.add_argument("--workers", type=int, help="decode worker processes (default: 1 per 8 cores; "
                   "0 on 1-2 cores; cores - 1 on cuda/mps)")
    g.add_argument("--threads", type=int,
                   help="torch threads (default: cores - default workers; 1 on cuda/mps; "
                        "--engine ray: per actor, 1 on clusters of up to 4 CPUs, else 4)")
    g.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    add_runtime_argument(g)
    g.add_argument("--jpeg-decoder", choices=("auto", "pil", "torchvision"), default="auto",
                   help="who decodes JPEGs: pil in the decode workers, or torchvision in batches "
                        "on the network's device (nvJPEG on cuda); auto: torchvision on cuda, "
                        "else pil")
    g.add_argument("--compute-processes", type=_processes, default=None, metavar="auto|N",
                   help="--engine local: processes that run the network, the threads shared "
                        "among them (1: this process); auto: one single-thread process per "
                        "core where benchmarks/cores.py measured that faster (default: auto)")
    g.add_argument("--engine", choices=engine_names(), default="local",
                   help="local: this machine; ray: a Ray cluster (the ray extra)")
    g.add_argument("--ray-address", help="Ray cluster address, or 'auto' for the cluster of "
                   "this node (default: start a local one)")
    g.add_argument("--gpus-per-worker", type=float, default=0,
                   help="--engine ray: GPUs per Ray actor; the actors then run on CUDA "
                        "(default: 0, CPU actors)")
    g.add_argument("--ray-max-actors", type=int, default=None,
                   help="--engine ray: most actors the pool grows to (default: as many as the "
                        "cluster's CPUs or GPUs hold at the start)")
    g.add_argument("--storage-options", metavar="JSON", type=_json_object, default=None,
                   help="fsspec options for URL sources and outputs, e.g. "
                        "'{\"endpoint_url\": \"http://minio:9000\"}' or keyed by scheme "
                        "'{\"s3\": {…}, \"gs\": {…}}' (default: the back-end's own "
                        "credential chain)")
    g.add_argument("--keep-listing", action="store_true",
                   help="with --resume, finish the job's frozen item list even if the source "
                        "has changed since it started (default: refuse)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, on_interrupt="imgfeat: interrupted; finished shards are kept: run "
                   "the same command with --resume to finish")


def run(args: argparse.Namespace) -> int:
    from ..decode import MAX_PIXELS
    from ..errors import ConfigError
    from ..runner import extract

    if bool(args.source) == bool(args.data):
        raise ConfigError("give either a SOURCE (folder or CSV list) or --data X.npy")
    result = extract(
        args.source or args.data, args.output, **model_kwargs(args), format=args.format,
        batch_size=args.batch_size, num_workers=args.workers, threads=args.threads,
        device=args.device,
        shard_size=args.shard_size, resume=args.resume, overwrite=args.overwrite,
        strict=args.strict, progress=False if args.quiet else None, engine=args.engine,
        labels="none" if args.no_labels else "auto", label_pattern=args.label_pattern,
        data_labels=args.labels, height=args.height, width=args.width, channels=args.channels,
        max_pixels=args.max_pixels or MAX_PIXELS, ray_address=args.ray_address,
        storage_options=args.storage_options, keep_listing=args.keep_listing,
        gpus_per_worker=args.gpus_per_worker, ray_max_actors=args.ray_max_actors,
        runtime=args.runtime, jpeg_decoder=args.jpeg_decoder,
        compute_processes=args.compute_processes)
    if result.shards_skipped == result.shards:
        print(f"nothing to do: {result.output} is complete ({result.ok} vectors)")
    else:
        procs = (f" in {result.compute_processes} processes" if result.compute_processes > 1
                 else "")
        reused = (f" ({result.reused} of them already done, reused)" if result.reused else "")
        print(f"extracted {result.items} images{reused}: {result.ok} ok, {result.failed} failed "
              f"-> {result.output} ({args.format}, {result.dim} values per image, "
              f"{result.precision}, {result.runtime}{procs}, {result.seconds:.1f} s)")
    if result.failed:
        print(f"{result.failed} images failed; the list with reasons is in {result.failures_path}")
        return 1
    return 0


def _processes(text: str) -> int | str:
    """An argparse type: ``auto`` or a whole number of at least 1."""
    if text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError("must be auto or a whole number, at least 1")


def _json_object(text: str) -> dict:
    """An argparse type: a JSON object."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, like '{\"anon\": true}'")
    return value
