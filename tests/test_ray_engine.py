"""The ray engine on a real local Ray cluster gives the local engine's vectors."""

import numpy as np
import pytest

from imgfeat import extract, load_features

from .conftest import TINY

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


def test_ray_engine_matches_local(image_folder, tmp_path):
    extract(image_folder, tmp_path / "local", **TINY, shard_size=4, progress=False)
    res = extract(image_folder, tmp_path / "ray", **TINY, shard_size=4, progress=False,
                  engine="ray")
    assert (res.ok, res.shards) == (15, 4)
    X0, y0, ids0, _ = load_features(tmp_path / "local")
    X1, y1, ids1, meta = load_features(tmp_path / "ray")
    assert ids1 == ids0 and list(y1) == list(y0) and meta["complete"]
    np.testing.assert_allclose(X1, X0, rtol=1e-5, atol=1e-6)
    assert not ray.is_initialized()  # the engine stops the cluster it started
