"""The contract every registered engine keeps: it gives the local engine's vectors (and records
the same failures), and a run killed part-way resumes to the same output. A toy engine defined
here, registered by name and touching no module of imgfeat, passes the same tests end to end
through ``imgfeat.extract``; faults are injected by wrapping an engine, through the protocol."""

from __future__ import annotations

import numpy as np
import pytest

from imgfeat import ConfigError, extract, load_features
from imgfeat.engines import (
    Engine,
    EngineSpec,
    create_engine,
    engine_names,
    register_engine,
    unregister_engine,
)
from imgfeat.pipeline import decode_batches, try_shard
from tests.conftest import TINY, fresh_python

RUN = {**TINY, "shard_size": 4, "progress": False}


class ReversedEngine:
    """A toy engine: shards in this process, last first (engines may return them in any
    order), recording its lifecycle."""

    name = "toy-reversed"
    calls: list[str] = []

    def __init__(self, device: str = "cpu", threads: int | None = None):
        self.calls.append(f"made on {device}")

    def start(self) -> None:
        self.calls.append("start")

    def run(self, job, shards):
        self.calls.append(f"run {len(shards)}")
        for shard in reversed(shards):
            yield try_shard(job.extractor, shard, decode_batches(
                job.source, shard, job.extractor.preprocess, job.batch_size, job.max_pixels))
            job.progress(len(shard.items))

    def close(self) -> None:
        self.calls.append("close")


class KilledAfter:
    """Wraps an engine: the run dies (as a SIGINT would) after ``n`` shards came back."""

    name = "killed"

    def __init__(self, inner: Engine, n: int):
        self.inner, self.n = inner, n

    def start(self) -> None:
        self.inner.start()

    def run(self, job, shards):
        for k, data in enumerate(self.inner.run(job, shards)):
            if k == self.n:
                raise KeyboardInterrupt
            yield data

    def close(self) -> None:
        self.inner.close()


TOY = ReversedEngine.name
ENGINES = [*engine_names(), TOY]


@pytest.fixture(autouse=True)
def toy_engine():
    register_engine(EngineSpec(TOY, ReversedEngine))
    ReversedEngine.calls.clear()
    yield
    unregister_engine(TOY)


@pytest.fixture
def folder(image_folder):
    (image_folder / "owls" / "broken.png").write_bytes(b"not an image")  # 16 items, 4 shards
    return image_folder


@pytest.fixture
def reference(folder, tmp_path):
    extract(folder, tmp_path / "ref", **RUN, num_workers=0)
    return load_features(tmp_path / "ref")


def _options(engine: str, request) -> dict:
    if engine == "ray":
        request.getfixturevalue("ray_cluster")  # the shared test cluster (skips without Ray)
        return {}
    return {"num_workers": 1} if engine == "local" else {}


def _same(got, ref):
    X, y, ids, meta = got
    X0, y0, ids0, meta0 = ref
    assert ids == ids0 and list(y) == list(y0) and meta["complete"]
    assert [f["id"] for f in meta["failures"]] == [f["id"] for f in meta0["failures"]]
    np.testing.assert_allclose(X, X0, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_gives_the_local_engines_vectors(engine, folder, reference, tmp_path,
                                                      request):
    res = extract(folder, tmp_path / "o", **RUN, **_options(engine, request), engine=engine)
    assert (res.items, res.ok, res.failed, res.shards) == (16, 15, 1, 4)
    _same(load_features(tmp_path / "o"), reference)
    if engine == TOY:
        assert ReversedEngine.calls == ["made on cpu", "start", "run 4", "close"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_killed_run_of_every_engine_resumes(engine, folder, reference, tmp_path, request):
    options = _options(engine, request)
    register_engine(EngineSpec("killed", lambda **kw: KilledAfter(create_engine(engine, **kw), 2)))
    try:
        with pytest.raises(KeyboardInterrupt):
            extract(folder, tmp_path / "o", **RUN, **options, engine="killed")
    finally:
        unregister_engine("killed")
    _, _, ids, meta = load_features(tmp_path / "o")
    assert len(ids) in (7, 8) and not meta["complete"]  # two shards (one holds the bad file)
    res = extract(folder, tmp_path / "o", **RUN, **options, engine=engine, resume=True)
    assert (res.shards, res.shards_skipped) == (4, 2)
    _same(load_features(tmp_path / "o"), reference)
    if engine == TOY:  # closed after the kill too
        assert ReversedEngine.calls.count("close") == 2


def test_an_engine_closes_when_its_run_fails(folder, tmp_path):
    def dying_run(self, job, shards):
        raise RuntimeError("engine failed")
        yield  # a generator, as engines are

    register_engine(EngineSpec("dies", type("Dies", (ReversedEngine,), {"run": dying_run})))
    try:
        with pytest.raises(RuntimeError, match="engine failed"):
            extract(folder, tmp_path / "o", **RUN, engine="dies")
    finally:
        unregister_engine("dies")
    assert ReversedEngine.calls == ["made on cpu", "start", "close"]


def test_engine_options_belong_to_their_engine(folder, tmp_path):
    with pytest.raises(ConfigError, match="unknown engine 'spark': use local or ray or "
                                          "toy-reversed"):
        extract(folder, tmp_path / "o", **RUN, engine="spark")
    with pytest.raises(ConfigError, match="^--ray-address applies to --engine ray only$"):
        extract(folder, tmp_path / "o", **RUN, engine=TOY, ray_address="auto")
    with pytest.raises(ConfigError, match="^--gpus-per-worker and --ray-max-actors apply to "
                                          "--engine ray only$"):
        extract(folder, tmp_path / "o", **RUN, gpus_per_worker=1, ray_max_actors=2)
    assert not (tmp_path / "o").exists()


def test_the_engine_registry_imports_no_engine():
    code = ("import sys\nfrom imgfeat.engines import engine_names\n"
            "print(engine_names())\n"
            "print(sorted(m for m in ('torch', 'ray', 'numpy') if m in sys.modules))")
    r = fresh_python(code, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["('local', 'ray')", "[]"]
