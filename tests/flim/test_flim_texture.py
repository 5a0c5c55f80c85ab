"""The texture recipe (#21): layer caching gives the filters of the uncached path; whitening
folds into the kernels and makes them diverse; a channel constant at the markers is only
centred; the label-base sidecar; the shipped texture architecture trains on a tiny set."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from imgfeat.cli import main
from imgfeat.flim.architecture import (
    ArchitectureError,
    load_architecture,
    parse_architecture,
    shipped_architecture,
)
from imgfeat.flim.learn import _zca, learn_filters
from imgfeat.flim.markers import (
    MarkerError,
    Markers,
    markers_from_image_label,
    read_marker_set,
    write_markers,
)
from imgfeat.flim.network import FlimNetwork, load_model
from imgfeat.flim.sidecar import SIDECAR_NAME, read_sidecar_base, write_sidecar
from imgfeat.flim.train import train_flim
from tests.flim.conftest import conv_layer, marked_images

CHAIN = {"features": {"layers": {
    "m-norm1": {"operation": "m_norm2d"},
    "conv1": conv_layer(3, 3, 6, center_patches=True, whiten=True, activation={"operation": "relu"},
                   pool={"operation": "max_pool2d", "params": {"kernel_size": 3, "stride": 2, "padding": 1}}),
    "m-norm2": {"operation": "m_norm2d"},
    "conv2": conv_layer(3, 2, 8, bias=True, activation={"operation": "relu"}),
    "bn": {"operation": "batch_norm2d"},
    "pool2": {"operation": "avg_pool2d", "params": {"kernel_size": 2, "stride": 2}},
    "conv3": conv_layer(3, 2, 4, reduce="pca", dilation=2, padding=2),
}}}


def _data(n=5, size=(40, 36)):
    return marked_images(n, size, seed=1)


def test_cached_maps_give_the_filters_of_the_uncached_path():
    imgs, marks = _data()
    nets = [FlimNetwork(CHAIN, (40, 36)) for _ in range(2)]
    reps = [learn_filters(net, imgs, marks, seed=2, batch_size=2, cache_maps=c, trace=True)
            for net, c in zip(nets, (True, False), strict=True)]
    a, b = (dict(n.state_dict()) for n in nets)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k
    assert float(nets[0].features.conv3.weight.detach().abs().sum()) > 0
    for ra, rb in zip(reps[0].layers, reps[1].layers, strict=True):
        assert (ra.name, ra.pixels, ra.markers, ra.kernels) == (rb.name, rb.pixels, rb.markers, rb.kernels)
        for (r1, c1, v1), (r2, c2, v2) in zip(ra.samples, rb.samples, strict=True):
            assert torch.equal(r1, r2) and torch.equal(c1, c2)
            assert torch.allclose(v1, v2, atol=1e-5)


def test_zca_whitens_and_whitened_kernels_are_folded_and_more_diverse():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 6, generator=gen, dtype=torch.float64) @ torch.randn(6, 6, generator=gen,
                                                                                dtype=torch.float64)
    z, mu = _zca(x, eps=1e-9)
    w = (x - mu) @ z
    assert torch.allclose(torch.cov(w.T), torch.eye(6, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(z, z.T)
    # a smooth (strongly correlated) texture: whitened k-means kernels are less alike
    base = torch.rand(1, 1, 60, 60, generator=gen)
    smooth = torch.nn.functional.avg_pool2d(base, 5, 1, 2)[0].repeat(3, 1, 1)
    marks = Markers(60, 60, np.arange(5, 55).repeat(10) % 60, np.tile(np.arange(5, 55, 5), 50), None,
                    np.zeros(500))
    cos = {}
    for wh in (False, True):
        net = FlimNetwork({"features": {"layers": {"conv1": conv_layer(3, 12, 12, center_patches=True,
                                                                    whiten=wh)}}}, (60, 60), color="rgb")
        learn_filters(net, [smooth], [marks])
        k = net.features.conv1.weight.detach().flatten(1)
        assert torch.allclose(k.norm(dim=1), torch.ones(12), atol=1e-5)
        assert torch.allclose(k.reshape(12, 3, 9).mean(2), torch.zeros(12, 3), atol=1e-6)  # centred
        c = (k @ k.T).abs()
        cos[wh] = float((c.sum() - c.diagonal().sum()) / (12 * 11))
    assert cos[True] < cos[False]


def test_a_channel_constant_at_the_markers_is_centred_not_blown_up():
    gen = torch.Generator().manual_seed(0)
    grey = torch.rand(1, 32, 32, generator=gen).repeat(3, 1, 1)  # a grey image: a*, b* constant in L*a*b*
    marks = markers_from_image_label(32, 32, 0, strokes=3, length=10, seed=0)
    net = FlimNetwork({"features": {"layers": {"m": {"operation": "m_norm2d"}}}}, (32, 32))
    learn_filters(net, [grey], [marks])
    std = net.features.m.std
    assert float(std[0]) < 1 and torch.equal(std[1:], torch.ones(2))
    out = net.forward_features(grey[None])
    assert float(out[0, 1:].abs().max()) < 1e-3  # rounding noise stays noise
    assert float(out[0, 0].std()) > 0.5


def test_markers_sidecar_says_the_label_base(tmp_path):
    m = Markers(8, 8, [1, 2], [1, 1], None, [1, 2])  # no class 0 marked: ambiguous by itself
    files = [write_markers(tmp_path / "a.txt", m, label_base=0)]
    with pytest.warns(Warning, match="ambiguous"):
        assert read_marker_set(files)[1] == 1
    write_sidecar(tmp_path, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        marks, base = read_marker_set(files)
    assert base == 0 and marks[0].labels.tolist() == [1, 2]
    assert read_marker_set(files, label_base=1)[1] == 1  # an explicit base wins
    other = tmp_path / "b"
    other.mkdir()
    files.append(write_markers(other / "b.txt", m, label_base=1))
    write_sidecar(other, 1)
    with pytest.raises(MarkerError, match="disagree"):
        read_marker_set(files)
    (other / SIDECAR_NAME).write_text('{"label_base": 7}')
    with pytest.raises(MarkerError, match="label_base must be 0 or 1"):
        read_sidecar_base(other)


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    """Four striped/dotted texture classes, 3 grey images each, 40 px, named <class>C<id>.png."""
    root = tmp_path_factory.mktemp("tex")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40]
    for c in range(1, 5):
        for i in range(1, 4):
            ph = rng.uniform(0, 6)
            wave = {1: np.sin(xx / 1.5 + ph), 2: np.sin(yy / 2.5 + ph), 3: np.sin((xx + yy) / 1.2 + ph),
                    4: np.sin(xx / 2 + ph) * np.sin(yy / 2 + ph)}[c]
            img = wave * 90 + 128 + rng.normal(0, 10, wave.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").save(root / f"{c}C{i:02d}.png")
    return root


def test_shipped_texture_architecture_trains_from_flim_markers_output(textures, tmp_path, capsys):
    arch = load_architecture("texture")
    assert shipped_architecture("texture").is_file() and len(arch.conv_layers()) == 3
    marks = tmp_path / "marks"
    assert main(["flim", "markers", str(textures), "--label-pattern", r"(\d)C", "-o", str(marks),
                 "--images-per-class", "3", "--strokes", "5"]) == 0
    assert (marks / SIDECAR_NAME).is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "ambiguous" label base on its own output
        r = train_flim(str(textures), tmp_path / "m.safetensors", architecture="texture",
                       markers=marks, label_pattern=r"(\d)C")
    assert r.label_base == 1
    net = load_model(tmp_path / "m.safetensors")
    convs = [m for m in net.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and all(float(c.weight.detach().abs().sum()) > 0 for c in convs)
    assert main(["flim", "train", str(textures), "--label-pattern", r"(\d)C", "--markers", str(marks),
                 "--arch", "texture", "-o", str(tmp_path / "cli.safetensors"), "-q"]) == 0
    assert "label base 1" in capsys.readouterr().out


def test_global_clustering_finds_clusters_across_markers():
    # two markers, each half colour A and half colour B: per marker (1 kernel each) both kernels
    # are the mix; one k-means of all patches finds A and B
    rng = np.random.default_rng(0)
    a, b = np.array([0.9, 0.2, 0.1]), np.array([0.1, 0.3, 0.8])
    img = torch.zeros(3, 8, 24)
    for row in (2, 5):
        pix = np.concatenate([a + rng.normal(0, 0.01, (10, 3)), b + rng.normal(0, 0.01, (10, 3))])
        img[:, row, 2:22] = torch.tensor(pix.T, dtype=torch.float32)
    marks = Markers(24, 8, np.tile(np.arange(2, 22), 2), np.repeat([2, 5], 20), None, np.zeros(40))
    want = torch.tensor(np.stack([a, b]) / np.linalg.norm(np.stack([a, b]), axis=1, keepdims=True)).float()
    got = {}
    for how in ("per_marker", "global"):
        net = FlimNetwork({"features": {"layers": {"conv1": conv_layer(1, 1, 2, clustering=how)}}}, (8, 24),
                          color="rgb")
        learn_filters(net, [img], [marks], per_label=False)
        w = net.features.conv1.weight.detach().reshape(2, 3)
        got[how] = w[torch.argsort(w[:, 0], descending=True)]
    assert torch.allclose(got["global"], want, atol=0.02)
    assert torch.allclose(got["per_marker"][0], got["per_marker"][1], atol=0.02)  # both the mix


def test_complement_kernels_are_orthogonal_to_the_learned_ones_and_see_the_local_mean():
    imgs, marks = _data(3, (32, 32))
    net = FlimNetwork({"features": {"layers": {"conv1": conv_layer(3, 4, 8, center_patches=True,
                                                              complement_kernels=3)}}}, (32, 32))
    learn_filters(net, imgs, marks, seed=0)
    k = net.features.conv1.weight.detach().flatten(1).double()
    assert torch.allclose(k.norm(dim=1), torch.ones(8, dtype=torch.float64), atol=1e-5)
    learned, extra = k[:5], k[5:]
    assert float((extra @ learned.T).abs().max()) < 1e-5
    # learned kernels are centred per channel (blind to the local mean); the complement is not
    assert float(learned.reshape(5, 3, 9).mean(2).abs().max()) < 1e-6
    assert float(extra.reshape(3, 3, 9).mean(2).abs().max()) > 0.05
    with pytest.raises(ArchitectureError, match="complement_kernels: must be below out_channels"):
        parse_architecture({"features": {"layers": {"c": conv_layer(3, 2, 4, complement_kernels=4)}}})
    with pytest.raises(ArchitectureError, match="clustering: must be one of per_marker, global"):
        parse_architecture({"features": {"layers": {"c": conv_layer(3, 2, 4, clustering="all")}}})


def test_training_warns_when_a_layers_kernels_are_nearly_alike(textures, tmp_path):
    # grey textures through uncentred patches of raw L*a*b* (no m-norm): every kernel is about
    # the mean patch, i.e. brightness (the annotate preview's network on USPtex grey: |cos| 0.96)
    marks = tmp_path / "marks"
    assert main(["flim", "markers", str(textures), "--label-pattern", r"(\d)C", "-o", str(marks),
                 "--images-per-class", "3", "--strokes", "5"]) == 0
    plain = {"features": {"layers": {"conv1": conv_layer(3, 8, 8)}}}
    with pytest.warns(Warning, match=r"conv1: the learned kernels are nearly alike .*center_patches"):
        r = train_flim(str(textures), tmp_path / "p.safetensors", architecture=plain, markers=marks,
                       label_pattern=r"(\d)C")
    assert r.learn.layers[0].similarity > 0.9
    fixed = {"features": {"layers": {"m": {"operation": "m_norm2d"},
                                     "conv1": conv_layer(3, 8, 8, center_patches=True)}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = train_flim(str(textures), tmp_path / "f.safetensors", architecture=fixed, markers=marks,
                       label_pattern=r"(\d)C")
    assert r.learn.layers[1].similarity < 0.5
