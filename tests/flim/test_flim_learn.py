"""FLIM filter learning: kernels are the k-means centroids; maps at the markers during learning
equal the saved network's forward pass; bad markers give one clear line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from imgfeat.flim.kmeans import batched_kmeans
from imgfeat.flim.learn import LearnError, learn_filters, map_positions
from imgfeat.flim.markers import Markers
from imgfeat.flim.network import FlimNetwork, load_model, save_model
from tests.flim.conftest import conv_layer, marked_images


def _data(n=4, size=(40, 36)):
    return marked_images(n, size, seed=0)


def test_kernels_are_the_kmeans_centroids():
    # one marker: a row of 20 pixels, 10 of one colour and 10 of another, with a little noise
    rng = np.random.default_rng(0)
    img = torch.zeros(3, 8, 24)
    a, b = np.array([0.9, 0.2, 0.1]), np.array([0.1, 0.3, 0.8])
    pix = np.concatenate([a + rng.normal(0, 0.02, (10, 3)), b + rng.normal(0, 0.02, (10, 3))])
    img[:, 4, 2:22] = torch.tensor(pix.T, dtype=torch.float32)
    marks = Markers(24, 8, np.arange(2, 22), np.full(20, 4), None, np.zeros(20))
    net = FlimNetwork({"features": {"layers": {"conv1": conv_layer()}}}, (8, 24), color="rgb")
    rep = learn_filters(net, [img], [marks])
    got = net.features.conv1.weight.detach().reshape(2, 3).double()
    want = KMeans(2, n_init=10, random_state=0).fit(pix).cluster_centers_
    want = torch.tensor(want / np.linalg.norm(want, axis=1, keepdims=True))
    got = got[torch.argsort(got[:, 0])]
    want = want[torch.argsort(want[:, 0])]
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got.norm(dim=1), torch.ones(2, dtype=torch.float64), atol=1e-6)
    assert rep.layers[0].markers == 1 and rep.layers[0].kernels == 2 and rep.layers[0].reduction is None


def test_batched_kmeans_matches_sklearn_and_cosine_is_spherical():
    gen = torch.Generator().manual_seed(1)
    centres = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    pts = torch.cat([c + 0.1 * torch.randn(30, 3, generator=gen) for c in centres])
    x = torch.stack([pts, pts.flip(0)])
    c = batched_kmeans(x, torch.ones(2, 90, dtype=torch.bool), 3, seed=0)
    ref = KMeans(3, n_init=10, random_state=0).fit(pts.numpy()).cluster_centers_
    for m in range(2):
        got = c[m][torch.argsort(c[m].argmax(1))]
        assert np.allclose(got.numpy(), ref[np.argsort(ref.argmax(1))], atol=1e-4)
    # cosine: direction matters, not length: far and near points on one ray share a centroid
    ray = torch.tensor([[1.0, 0.1], [10.0, 1.0], [0.1, 1.0], [1.0, 10.0]])
    cc = batched_kmeans(ray[None], torch.ones(1, 4, dtype=torch.bool), 2, metric="cosine", seed=0)[0]
    assert torch.allclose(cc.norm(dim=1), torch.ones(2, dtype=torch.float64))
    upper = torch.nn.functional.normalize(ray[2:3], dim=1)[0].double()
    assert torch.allclose(cc[torch.argsort(cc[:, 0])][0], upper)


def test_centred_patches_learn_the_texture_not_the_stroke_colour():
    # one vertical-stripe texture over two background colours: centred, the kernels are the same
    stripes = torch.tensor([0.0, 0.3] * 8).repeat(16, 1)  # (16, 16), columns alternate
    marks = Markers(16, 16, np.tile(np.arange(4, 12), 2), np.repeat([7, 8], 8), None, np.zeros(16))
    weights = {}
    for centre in (True, False):
        for name, colour in (("red", (0.6, 0.1, 0.1)), ("blue", (0.1, 0.1, 0.6))):
            img = torch.tensor(colour).reshape(3, 1, 1) + stripes
            net = FlimNetwork({"features": {"layers": {"conv1": conv_layer(3, 2, 2, center_patches=centre)}}},
                              (16, 16), color="rgb")
            learn_filters(net, [img], [marks])
            w = net.features.conv1.weight.detach().flatten(1)
            weights[centre, name] = w[torch.argsort(w[:, 0])]
    assert torch.allclose(weights[True, "red"], weights[True, "blue"], atol=1e-5)
    per_channel = weights[True, "red"].reshape(2, 3, 9)
    assert torch.allclose(per_channel.mean(2), torch.zeros(2, 3), atol=1e-6)  # no colour response
    assert float(per_channel.abs().max()) > 0.1  # but a stripe detector
    assert not torch.allclose(weights[False, "red"], weights[False, "blue"], atol=1e-2)


ARCH = {"features": {"type": "sequential", "layers": {
    "m-norm1": {"operation": "m_norm2d"},
    "conv1": conv_layer(3, 3, 6, activation={"operation": "relu"},
                   pool={"operation": "max_pool2d", "params": {"kernel_size": 3, "stride": 2, "padding": 1}}),
    "block": {"type": "parallel", "params": {"aggregate": "concat"}, "layers": {
        "a": conv_layer(3, 2, 4, bias=True),
        "b": conv_layer(1, 2, 4, reduce="pca", kmeans="cosine")}},
    "bn": {"operation": "batch_norm2d"},
    "pool2": {"operation": "avg_pool2d", "params": {"kernel_size": 2, "stride": 2}},
    "conv3": conv_layer(3, 2, 4, stride=2, dilation=2),
    "m-norm4": {"operation": "m_norm2d"},
    "conv4": conv_layer(3, 2, 4),
}}}


def test_maps_at_markers_equal_the_saved_network(tmp_path):
    imgs, marks = _data()
    net = FlimNetwork(ARCH, (40, 36))
    rep = learn_filters(net, imgs, marks, trace=True, seed=3)
    path = save_model(tmp_path / "m.safetensors", net)
    saved = load_model(path)
    modules = dict(saved.named_modules())
    names = [r.name for r in rep.layers]
    assert names == ["features.m-norm1", "features.conv1", "features.block.a", "features.block.b",
                     "features.bn", "features.conv3", "features.m-norm4", "features.conv4"]
    for rec in rep.layers:
        caught: list[torch.Tensor] = []
        hook = modules[rec.name].register_forward_pre_hook(lambda m, i, out=caught: out.append(i[0]))
        with torch.no_grad():
            for img in imgs:
                saved.forward_features(img[None])
        hook.remove()
        assert len(rec.samples) == len(imgs)
        for inp, (rows, cols, values) in zip(caught, rec.samples, strict=True):
            assert len(rows) > 0
            assert rows.max() < inp.shape[2] and cols.max() < inp.shape[3]
            assert torch.allclose(inp[0][:, rows, cols], values, atol=1e-5), rec.name
    # the markers really were carried down: conv4 sees a map 8x smaller than the image
    last = rep.layers[-1].samples[0]
    assert int(last[0].max()) < 40 // 8 + 1


def test_map_positions_follows_pooling_windows():
    pool = torch.nn.MaxPool2d(2, 2)
    pos = torch.tensor([[0, 1], [2, 3], [7, 6]])
    assert map_positions(pos, pool, (8, 8), (4, 4)).tolist() == [[0, 0], [1, 1], [3, 3]]
    pool3 = torch.nn.MaxPool2d(3, 2, 1)  # window o covers 2o-1..2o+1
    assert map_positions(torch.tensor([[4, 6]]), pool3, (8, 8), (4, 4)).tolist() == [[2, 3]]
    same = torch.nn.Conv2d(1, 1, 5, padding=2)
    assert map_positions(pos, same, (8, 8), (8, 8)).tolist() == pos.tolist()


def test_learning_is_deterministic_and_random_baseline_differs():
    imgs, marks = _data(2, (24, 24))
    arch = {"features": {"layers": {"m": {"operation": "m_norm2d"}, "conv1": conv_layer(3, 2, 4)}}}
    nets = [FlimNetwork(arch, (24, 24)) for _ in range(3)]
    learn_filters(nets[0], imgs, marks, seed=5)
    learn_filters(nets[1], imgs, marks, seed=5)
    learn_filters(nets[2], imgs, marks, seed=5, random_kernels=True)
    w = [n.features.conv1.weight for n in nets]
    assert torch.equal(w[0], w[1])
    assert not torch.allclose(w[0], w[2])
    assert torch.allclose(w[2].flatten(1).norm(dim=1), torch.ones(4))


def test_bad_markers_give_one_clear_line():
    imgs, marks = _data(2, (24, 24))
    arch = {"features": {"layers": {"conv1": conv_layer(3, 2, 64)}}}
    with pytest.raises(LearnError, match=r"features.conv1: the markers give \d+ kernels .* fewer than "
                                         "out_channels 64"):
        learn_filters(FlimNetwork(arch, (24, 24)), imgs, marks)
    empty = Markers(24, 24, [], [], [], [])
    with pytest.raises(LearnError, match="b.png: the image has no markers"):
        learn_filters(FlimNetwork(arch, (24, 24)), imgs, [marks[0], empty], names=["a.png", "b.png"])
    with pytest.raises(LearnError, match="a.png: markers were drawn on a 24x24 image, the image is 30x24"):
        learn_filters(FlimNetwork(arch, (24, 24)), [torch.rand(3, 24, 30)], [marks[0]], names=["a.png"])
    pca = {"features": {"layers": {"conv1": conv_layer(1, 4, 5, reduce="pca")}}}
    with pytest.raises(LearnError, match="PCA gives at most 3 kernels"):
        learn_filters(FlimNetwork(pca, (24, 24)), imgs, marks)
    unfold = {"features": {"layers": {"u": {"operation": "unfold", "params": {"kernel_size": 2}},
                                      "f": {"operation": "fold", "params": {"output_size": 24,
                                                                            "kernel_size": 2}},
                                      "conv1": conv_layer(1, 2, 2)}}}
    with pytest.raises(LearnError, match="features.conv1: markers cannot reach this layer"):
        learn_filters(FlimNetwork(unfold, (24, 24)), imgs, marks)
