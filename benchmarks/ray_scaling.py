"""The Ray engine against the local engine, and S3 (a local moto server) against local folders.

Prints, on the same images and model (random weights: the same work as pretrained ones):
1. local engine, local folder -> local folder: wall time and images/s;
2. Ray engine, the cluster not yet started: ``extract`` starts a local one (in the background,
   while it lists the images and builds the network) and stops it; the wall time includes both,
   with ray.init's own time, when the first shard came back (cluster and actors started), and
   the ratio to (1); the vectors are checked equal to (1);
3. Ray's own fixed cost on this machine, with no images: ``ray.init`` + ``ray.shutdown``, and the
   same with a Ray Data pool of one actor per core whose actors only import torch and timm
   (what any actor holding a timm network pays); against the time the 1.3x target leaves over
   the local engine, and the image count from which the Ray engine is within 1.3x (from the
   measured fixed cost and the steady rate, shard to shard);
4. a scaling simulation on a warm cluster: 1 actor of 2 threads, 1 and 2 actors of 1 thread;
5. local engine, S3 -> S3 through a moto server in its own process, vs (1);
6. how many shards per second the driver commits (local folder, moto S3): the ceiling on
   images/s any number of Ray actors can reach through one driver.

    python benchmarks/ray_scaling.py [--images 2000] [--model tf_efficientnet_lite0] [--quick]
                                     [--ratio-only: (1) to (3)]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_throughput import make_images  # noqa: E402
from precision_usptex import cpu_features  # noqa: E402

from imgfeat import extract, load_features  # noqa: E402

BUCKET = "imgfeat-bench"


class _Records(logging.Handler):
    """Keeps the Ray engine's "Ray cluster started in X s" records."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def seconds(self) -> float:
        started = [r for r in self.records if r.getMessage().startswith("Ray cluster started")]
        return float(started[-1].args[1]) if started else float("nan")


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, dict]:
    """A moto S3 server in its own process on 127.0.0.1 (so it does not share our GIL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", (
        "from moto.server import ThreadedMotoServer; import time; "
        f"s = ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False); "
        "s.start(); time.sleep(10**6)")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "bench", "secret": "bench",
               "client_kwargs": {"region_name": "us-east-1"}}
    import boto3

    client = boto3.client("s3", endpoint_url=options["endpoint_url"], aws_access_key_id="bench",
                          aws_secret_access_key="bench", region_name="us-east-1")
    for _ in range(200):
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.1)
    return proc, options


def commit_rate(out, storage_options, n: int, rows: int, dim: int) -> float:
    """Shards per second that ``JobStore.write_shard`` commits (data + manifest)."""
    from imgfeat.pipeline import ShardData
    from imgfeat.sources import Item
    from imgfeat.store import JobStore

    store = JobStore(out, "parquet", storage_options)
    store.open()
    items = [Item(id=f"x/{k:07d}.jpg", path=f"s3://b/x/{k:07d}.jpg", label="x")
             for k in range(rows)]
    store.begin({}, "0" * 16, {"dim": dim}, items)
    vectors = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    t0 = time.perf_counter()
    for i in range(n):
        store.write_shard(ShardData(i, items, vectors, np.ones(rows, bool), [None] * rows))
    return n / (time.perf_counter() - t0)


class _Importer:
    """A Ray Data callable whose actors import what a timm network needs, and do nothing else."""

    def __init__(self):
        import timm  # noqa: F401
        import torch  # noqa: F401

    def __call__(self, batch):
        return batch


def ray_floor(cores: int) -> tuple[float, float]:
    """Seconds of (a local cluster started and stopped as the engine does) and (the same + a
    pool of ``cores`` importing actors)."""
    import ray.data

    from imgfeat.engines.ray_cluster import connect

    def once(pool: bool) -> float:
        t0 = time.perf_counter()
        cluster = connect(num_cpus=cores)
        cluster.wait()
        if pool:
            ray.data.DataContext.get_current().enable_progress_bars = False
            ds = ray.data.from_items([{"x": i} for i in range(2 * cores)]).map_batches(
                _Importer, batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(
                    min_size=1, max_size=cores, initial_size=cores))
            for _ in ds.iter_batches(batch_size=1, prefetch_batches=0):
                pass
        cluster.close()
        return time.perf_counter() - t0

    return once(False), once(True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--img-size", type=int, default=None)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (64 images, tiny model)")
    ap.add_argument("--ratio-only", action="store_true", help="local vs Ray and Ray's fixed cost")
    args = ap.parse_args()
    if args.quick:
        args.images, args.model, args.img_size, args.shard_size = 64, "test_efficientnet", 64, 8
    cores = len(os.sched_getaffinity(0))
    cache = Path(tempfile.gettempdir()) / f"imgfeat-bench-ray-{args.images}"
    folder = make_images(cache / "imgs", args.images, (256, 256))
    common = {"model": args.model, "pretrained": False, "img_size": args.img_size,
              "shard_size": args.shard_size, "progress": False}
    print(f"{args.images} images 256x256 JPEG, {args.model} (random weights), "
          f"shards of {args.shard_size}, {cores} cores")
    print(cpu_features())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm = [str(p) for p in sorted(folder.rglob("*.jpg"))[:8]]  # imports, caches: untimed
        extract(warm, tmp / "warm", **{**common, "shard_size": 4})
        t_local, _ = timed(extract, folder, tmp / "local", **common)
        X0, _, ids0, _ = load_features(tmp / "local")
        print(f"local engine:       {t_local:7.1f} s  {args.images / t_local:6.1f} img/s")

        import ray

        import imgfeat.engines.ray as ray_engine
        import imgfeat.engines.ray_cluster as ray_cluster
        from imgfeat.engines import EngineSpec, register_engine

        assert not ray.is_initialized()
        log = _Records()
        logging.getLogger(ray_cluster.__name__).addHandler(log)
        logging.getLogger(ray_cluster.__name__).setLevel(logging.INFO)
        first: list[float] = []

        class NotingFirst(ray_engine.RayEngine):
            """The ray engine, noting when each shard comes back to the driver."""

            def run(self, job, shards):
                for data in super().run(job, shards):
                    first.append(time.perf_counter())
                    yield data

        register_engine(EngineSpec("ray-noting", NotingFirst, ("ray_address",)))
        t0 = time.perf_counter()
        total, _ = timed(extract, folder, tmp / "ray", engine="ray-noting", **common)
        t_init = log.seconds()
        X1, _, ids1, _ = load_features(tmp / "ray")
        assert ids1 == ids0
        diff = float(np.abs(X1 - X0).max())
        print(f"ray engine:         {total:7.1f} s  {args.images / total:6.1f} img/s  "
              f"= {total / t_local:.2f}x local, cluster start-up and stop included "
              f"(ray.init {t_init:.1f} s = {100 * t_init / total:.0f}%, overlapped with the "
              f"driver's listing and network build; first shard back after "
              f"{first[0] - t0:.1f} s; last after {first[-1] - t0:.1f} s); "
              f"max |ray - local| = {diff:.1e}")
        # img/s from the first shard back to the last: the other actors' first shards were
        # under way before that window opened, so they are not counted in it
        actors = min(cores // ray_engine.actor_threads(cores), len(first) - 1)
        steady = (args.images / len(first)) * (len(first) - actors) / (first[-1] - first[0])
        bare, pool = ray_floor(cores)
        fixed = total - args.images / steady  # what the Ray run spent beyond its steady rate
        room = 1.3 / (args.images / t_local) - 1 / steady  # s/img the target leaves, per image
        print(f"ray's own fixed cost, no images: ray.init + shutdown {bare:.1f} s; with a Ray "
              f"Data pool of {cores} actors importing torch and timm {pool:.1f} s; the 1.3x "
              f"target leaves {0.3 * t_local:.1f} s over the local engine here")
        print(f"ray steady rate (shard to shard) {steady:.1f} img/s vs local "
              f"{args.images / t_local:.1f}; this run's fixed cost {fixed:.1f} s -> within 1.3x "
              + (f"from ~{fixed / room:,.0f} images" if room > 0 else "at no image count"))
        if args.ratio_only:
            return
        warm_cluster = ray_cluster.connect(num_cpus=cores)
        warm_cluster.wait()
        print(f"ray.init alone (the warm cluster below): {warm_cluster.seconds:.1f} s")
        rates = {}
        for actors, threads in ((1, 2), (1, 1), (2, 1)):
            t, _ = timed(extract, folder, tmp / f"ray{actors}-{threads}", engine="ray",
                         threads=threads, ray_max_actors=actors, **common)
            rates[actors, threads] = args.images / t
            print(f"ray, warm cluster, {actors} actor(s) x {threads} thread(s): {t:6.1f} s  "
                  f"{rates[actors, threads]:6.1f} img/s")
        gain = rates[2, 1] / rates[1, 1]
        print(f"scaling 1 -> 2 actors on {cores} cores: {gain:.2f}x (efficiency "
              f"{50 * gain:.0f}%); 2 actors x 1 thread vs 1 x 2: "
              f"{rates[2, 1] / rates[1, 2]:.2f}x")
        warm_cluster.close()

        proc, options = start_moto()
        try:
            import s3fs

            fs = s3fs.S3FileSystem(**options)
            fs.put(str(folder) + "/", f"{BUCKET}/imgs/", recursive=True)
            src, out = f"s3://{BUCKET}/imgs", f"s3://{BUCKET}/out"
            t_s3, res = timed(extract, src, out, storage_options=options, **common)
            assert res.ok == args.images
            X2, _, ids2, _ = load_features(out, storage_options=options)
            assert ids2 == ids0 and np.allclose(X2, X0, atol=1e-5)
            print(f"local engine, S3 (moto) -> S3: {t_s3:6.1f} s  {args.images / t_s3:6.1f} "
                  f"img/s = {t_local / t_s3:.2f}x the local folder's throughput")
            dim = X0.shape[1]
            n = 5 if args.quick else 20
            local_rate = commit_rate(tmp / "commits", None, n, 1000, 1280)
            s3_rate = commit_rate(f"s3://{BUCKET}/commits", options, n, 1000, 1280)
            print(f"driver commits of 1000x1280 float32 shards: local {local_rate:.1f}/s, "
                  f"S3 (moto) {s3_rate:.1f}/s -> ceiling {1000 * s3_rate:,.0f} img/s through "
                  f"one driver on S3 (this run's vectors: {dim} values)")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
