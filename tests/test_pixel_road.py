"""One pixel road: every tool that feeds a network gives it the tensor ``extract`` builds.

Non-square, grey, RGBA and 16-bit images go through ``ae train``, ``ae evaluate``, ``flim train
--svm``, ``flim validate``, ``flim outputs`` and the annotate preview; a spy on the network's
first module records what reaches it, and every recorded image must equal, bit for bit, the one
``extract`` gives the same network for the same item (with no ``--resize``: the network's own).
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from imgfeat import extract
from imgfeat.autoencoder import AEConfig, evaluate, train
from imgfeat.autoencoder.model import EncoderBlock
from imgfeat.flim.annotate.preview import learn_preview, preview_size
from imgfeat.flim.architecture import parse_architecture
from imgfeat.flim.automark import markers_from_labels
from imgfeat.flim.markers import read_marker_set
from imgfeat.flim.network import ColorInput, FlimNetwork, save_model
from imgfeat.flim.train import train_flim
from imgfeat.flim.validate import save_layer_outputs, validate_flim
from imgfeat.sources import open_source

ARCH = {"features": {"type": "sequential", "layers": {
    "conv1": {"operation": "conv2d", "params": {
        "kernel_size": 3, "padding": 1, "number_of_kernels_per_marker": 2, "out_channels": 4,
        "activation": {"operation": "relu"},
        "pool": {"operation": "max_pool2d", "params": {"kernel_size": 2, "stride": 2}}}}}}}


def _images(root):
    """Two classes; a non-square RGB, a grey (L), an RGBA and a 16-bit grey image, two of each
    kind, all of different shapes."""
    rng = np.random.default_rng(0)
    kinds = [("rgb", (60, 40)), ("grey", (36, 50)), ("rgba", (64, 48)), ("u16", (44, 30))]
    for c, label in enumerate(["a", "b"]):
        (root / label).mkdir(parents=True)
        for k, (kind, (w, h)) in enumerate(kinds):
            w, h = w + 4 * c, h + 2 * c
            base = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
            base[..., c] = np.clip(base[..., c].astype(int) + 80, 0, 255)
            if kind == "rgb":
                img = Image.fromarray(base)
            elif kind == "grey":
                img = Image.fromarray(base).convert("L")
            elif kind == "rgba":
                alpha = rng.integers(0, 256, (h, w, 1)).astype(np.uint8)
                img = Image.fromarray(np.concatenate([base, alpha], -1), "RGBA")
            else:
                img = Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))
                assert img.mode.startswith("I;16")
            img.save(root / label / f"{label}{k}_{kind}.png")
    return root


@contextlib.contextmanager
def spy(first_module: type):
    """Record every real image batch that reaches a module of type ``first_module`` (the
    network's first one); probes (zeros, or random values below 0) are left out."""
    seen: list[torch.Tensor] = []

    def hook(module, args):
        if not isinstance(module, first_module) or args[0].is_meta:
            return  # the meta device measures a model file's architecture: no pixels
        if first_module is EncoderBlock and module[0][0].in_channels != 3:
            return
        x = args[0].detach().float().contiguous().clone()
        if x.min() >= 0 and x.abs().sum() > 0:
            seen.append(x)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def rows(batches: list[torch.Tensor]) -> list[torch.Tensor]:
    return [x for b in batches for x in b]


def reference(data, model: str, tmp_path, name: str, first_module: type) -> dict[str, torch.Tensor]:
    """{item id: the image ``extract`` feeds ``model``}, with no --resize given."""
    with spy(first_module) as seen:
        r = extract(data, tmp_path / name, model=model, precision="fp32", progress=False,
                    batch_size=64, runtime="torch")  # the spy sees torch's modules
    assert r.ok == r.items
    ids = [it.id for it in open_source(data).items]
    got = rows(seen)
    assert len(got) == len(ids)
    return dict(zip(ids, got, strict=True))


def assert_from_extract(got: list[torch.Tensor], ref: dict[str, torch.Tensor],
                        expected: set[str] | None = None) -> None:
    """Every recorded image equals extract's image of one item; together they cover ``expected``."""
    matched = set()
    for x in got:
        hits = [i for i, r in ref.items() if r.shape == x.shape and torch.equal(r, x)]
        assert hits, f"a tensor of shape {tuple(x.shape)} reached the network that extract never builds"
        matched.update(hits)
    assert matched == (set(ref) if expected is None else expected)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _images(tmp_path_factory.mktemp("road"))


def test_autoencoder_tools_feed_what_extract_feeds(data, tmp_path):
    """``extract --model ae:RUN`` (no --resize) equals the run's own training and evaluation
    input on non-square, grey, RGBA and 16-bit images: the run's recorded squash reaches it."""
    cfg = AEConfig(height=24, width=32, depth=2, base_width=4, max_width=8, epochs=1,
                   batch_size=4, val_fraction=0.25, test_fraction=0.25, precision="fp32",
                   progress=False)
    assert cfg.resize == "squash"
    with spy(EncoderBlock) as trained:
        train(data, tmp_path / "run", cfg)
    with spy(EncoderBlock) as evaluated:
        evaluate(tmp_path / "run", data, tmp_path / "eval")
    ref = reference(data, f"ae:{tmp_path / 'run'}", tmp_path, "ae-feats", EncoderBlock)
    assert all(r.shape == (3, 24, 32) for r in ref.values())
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert_from_extract(rows(trained), ref, set(split["train"]) | set(split["val"]))
    assert_from_extract(rows(evaluated), ref)
    # the old road (a centre crop for a network that learned squashed images) is another tensor
    with spy(EncoderBlock) as crop:
        extract(data, tmp_path / "crop", model=f"ae:{tmp_path / 'run'}", resize="crop",
                precision="fp32", progress=False, runtime="torch")
    differ = [not torch.equal(a, b) for a, b in zip(rows(crop), ref.values(), strict=True)]
    assert sum(differ) == len(ref) - 1  # all but the one 4:3 image (64×48), as the run's 32×24


def test_flim_tools_feed_what_extract_feeds(data, tmp_path):
    """``flim train --svm`` (filters and SVM), ``validate`` and ``outputs`` read items as
    ``extract --model flim:`` does: squashed to the model's size, through Source + Preprocess."""
    markers = tmp_path / "markers"
    markers_from_labels(open_source(data).items, markers, images_per_class=4, strokes=2,
                        length=6, thickness=1, seed=0)
    model = tmp_path / "m.safetensors"
    with spy(ColorInput) as trained:
        train_flim(data, model, architecture=ARCH, markers=markers, size=(32, 32), svm=True,
                   label_base=1,
                   batch_size=3)
    with spy(ColorInput) as validated:
        validate_flim(model, data, batch_size=3)
    with spy(ColorInput) as dumped:
        save_layer_outputs(model, data, tmp_path / "outputs", batch_size=5)
    ref = reference(data, f"flim:{model}", tmp_path, "flim-feats", ColorInput)
    assert all(r.shape == (3, 32, 32) for r in ref.values())
    for got in (trained, validated, dumped):
        assert_from_extract(rows(got), ref)


def test_annotate_preview_feeds_what_extract_feeds(data, tmp_path):
    """The preview learns a network at each image's preview size; what reaches it equals what
    ``extract`` feeds a FLIM model of that size."""
    items = open_source(data).items
    files = markers_from_labels(items, tmp_path / "markers", images_per_class=4, strokes=2,
                                length=6, thickness=1, seed=0)
    marks, _ = read_marker_set(files, label_base=1)
    by_stem = {f.stem: f for f in files}
    paths = [data / it.id for it in items if (data / it.id).stem in by_stem]
    marks = [marks[files.index(by_stem[p.stem])] for p in paths]
    target = paths[-1]
    with spy(ColorInput) as seen:
        learn_preview(paths, marks, target, architecture=parse_architecture(ARCH), max_side=40)
    ref = {}
    for path in paths:
        with Image.open(path) as img:
            w, h = preview_size(*img.size, 40)
        model = save_model(tmp_path / f"{path.stem}.safetensors", FlimNetwork(ARCH, (h, w)))
        ref[path.name] = reference([str(path)], f"flim:{model}", tmp_path, path.stem,
                                   ColorInput)["0"]
    assert_from_extract(rows(seen), ref)


def test_flim_tools_read_url_items(data, tmp_path, s3):
    """FLIM's tools read items through ``Source``: a folder on object storage validates and
    dumps layer outputs as the same folder on disk does."""
    markers = tmp_path / "markers"
    markers_from_labels(open_source(data).items, markers, images_per_class=2, strokes=2,
                        length=6, thickness=1, seed=0)
    model = tmp_path / "m.safetensors"
    train_flim(data, model, architecture=ARCH, markers=markers, size=(24, 24), svm=True,
               label_base=1)
    remote = open_source(s3.upload(data, s3.prefix("flim")) + "/", storage_options=s3.options)
    assert remote.items[0].path.startswith("s3://")
    here, there = validate_flim(model, data), validate_flim(model, remote)
    assert there.n == here.n == 8 and there.accuracy == here.accuracy
    assert (there.confusion == here.confusion).all()
    save_layer_outputs(model, remote, tmp_path / "remote", layers=["conv1"])
    save_layer_outputs(model, data, tmp_path / "local", layers=["conv1"])
    local = sorted((tmp_path / "local" / "conv1").iterdir())
    assert [p.name for p in local] == sorted(p.name for p in (tmp_path / "remote" / "conv1").iterdir())
    for p in local:
        assert np.array_equal(np.load(p), np.load(tmp_path / "remote" / "conv1" / p.name))
