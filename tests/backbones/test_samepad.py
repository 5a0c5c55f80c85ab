"""SAME convolutions padded at their edges only: the same numbers as timm's padded copy."""

import numpy as np
import pytest
import torch
from timm.layers.conv2d_same import Conv2dSame
from timm.layers.conv2d_same import conv2d_same as timm_conv2d_same

from imgfeat import Extractor
from imgfeat.backbones.samepad import EdgeSameConv2d, conv2d_same, edge_same_padding, same_split
from imgfeat.config import ModelConfig


@pytest.mark.parametrize("h,w,k,stride,dilation,groups", [
    (224, 224, 3, 2, 1, 1),   # EfficientNet stem: one extra zero row and column after
    (56, 56, 5, 2, 1, 8),     # depthwise 5x5: (1, 2) padding
    (57, 56, 5, 2, 1, 8),     # odd height: symmetric rows, extra column only
    (30, 17, 3, 2, 1, 4),
    (31, 31, 3, 1, 1, 1),     # stride 1: always symmetric
    (32, 33, 4, 2, 1, 1),     # even kernel
    (15, 16, 7, 3, 1, 1),
    (20, 21, 3, 2, 2, 1),     # dilated
    (5, 6, 5, 2, 1, 1),       # kernel wider than the padded input's last window
    (2, 2, 3, 2, 1, 1),       # maps smaller than the kernel (deep stages of tiny inputs)
    (2, 2, 5, 2, 1, 8),
    (1, 3, 5, 2, 1, 1),
    (2, 9, 3, 2, 1, 1),
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_equals_timm(h, w, k, stride, dilation, groups, channels_last):
    gen = torch.Generator().manual_seed(h * w + k)
    x = torch.randn(2, 8, h, w, generator=gen)
    weight = torch.randn(8, 8 // groups, k, k, generator=gen)
    bias = torch.randn(8, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref = timm_conv2d_same(x, weight, bias, (stride, stride), (0, 0), (dilation, dilation), groups)
    out = conv2d_same(x, weight, bias, (stride, stride), (dilation, dilation), groups)
    assert out.shape == ref.shape
    # the interior is the same call; the edge row/column may round differently (a few ulp)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[..., :-1, :-1], ref[..., :-1, :-1])
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last or out.shape[-1] == 1


def test_same_split_matches_tf():
    # TF: out = ceil(in / stride); the odd zero goes after the input
    assert same_split(224, 3, 2, 1) == (0, 1)
    assert same_split(56, 5, 2, 1) == (1, 2)
    assert same_split(57, 5, 2, 1) == (2, 2)
    assert same_split(10, 1, 1, 1) == (0, 0)


def test_swap_and_undo_in_a_module():
    net = torch.nn.Sequential(Conv2dSame(3, 4, 3, stride=2), torch.nn.ReLU(),
                              Conv2dSame(4, 4, 5, stride=2, groups=4)).eval()
    x = torch.randn(1, 3, 40, 38)
    ref = net(x)
    swapped = edge_same_padding(net)
    assert len(swapped) == 2 and all(type(m) is EdgeSameConv2d for m in (net[0], net[2]))
    assert torch.equal(net(x), ref)
    swapped.undo()
    assert type(net[0]) is Conv2dSame and type(net[2]) is Conv2dSame
    assert len(edge_same_padding(torch.nn.Conv2d(3, 3, 3))) == 0  # nothing else is touched


def _timm_padding(ex: Extractor) -> None:
    """Put timm's own SAME convolutions back into ``ex`` (the reference)."""
    for m in ex.backbone.modules():
        if type(m) is EdgeSameConv2d:
            m.__class__ = Conv2dSame


def test_tiny_inputs_through_a_tf_model():
    """At 32 px the last stages of Lite0 see 2x2 maps with 5x5 kernels."""
    ex = Extractor(ModelConfig(model="tf_efficientnet_lite0", img_size=32, layers="all"))
    assert ex.edge_padded == 5
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    edge = ex.embed(x)
    _timm_padding(ex)
    np.testing.assert_allclose(edge, ex.embed(x), rtol=1e-5, atol=1e-5)


def test_packaged_lite0_uses_it_and_gives_the_same_vectors():
    ex = Extractor(ModelConfig(model="tf_efficientnet_lite0", fold_bn=False))
    assert ex.edge_padded == 5 and ex.metadata()["same_convs_edge_padded"] == 5
    x = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    edge = ex.embed(x)
    _timm_padding(ex)
    np.testing.assert_array_equal(edge, ex.embed(x))


def test_a_rewrite_that_fails_is_undone(monkeypatch):
    import imgfeat.backbones.samepad as samepad

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this shape")

    monkeypatch.setattr(samepad, "conv2d_same", broken)
    ex = Extractor(ModelConfig(model="tf_efficientnet_lite0", img_size=64))
    assert ex.edge_padded == 0 and ex.folded_bn == 49  # edges undone, the folding kept alone
    assert not any(type(m) is EdgeSameConv2d for m in ex.backbone.modules())
    assert ex.embed(torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)).shape == (1, 1280)


def test_static_padding_equals_and_is_put_back():
    """For export: each SAME convolution pads for the size it saw; the classes come back."""
    from imgfeat.backbones.samepad import StaticSameConv2d, static_same_padding

    net = torch.nn.Sequential(Conv2dSame(3, 4, 3, stride=2), torch.nn.ReLU(),
                              Conv2dSame(4, 4, 5, stride=2, groups=4),
                              Conv2dSame(4, 4, 3, stride=1)).eval()
    edge_same_padding(net)  # our edge-padded class is fixed and restored as well
    x = torch.randn(2, 3, 41, 38)
    ref = net(x)
    with static_same_padding(net, x[:1]) as fixed:
        assert fixed == 3 and all(type(m) is StaticSameConv2d for m in (net[0], net[2], net[3]))
        assert [m.static_pad for m in (net[0], net[2], net[3])] == [
            (0, 1, 1, 1), (2, 2, 2, 2), (1, 1, 1, 1)]
        torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-5)
    assert all(type(m) is EdgeSameConv2d for m in (net[0], net[2], net[3]))
    assert not hasattr(net[0], "static_pad")


def test_a_tf_model_exports_without_shape_arithmetic(tmp_path):
    """The exported graph of a TF SAME model has fixed paddings (no Shape ops), which
    the CPU runtimes fuse into the convolutions, and gives torch's maps."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from imgfeat.runtimes.attach import export_onnx

    ex = Extractor(ModelConfig(model="tf_efficientnet_lite0", img_size=96))
    assert ex.edge_padded == 5
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    names = ex.layers.names
    with torch.no_grad():
        ref = ex.backbone(x)[names[0]].numpy()
    export_onnx(ex.backbone, names, ex.data_config["input_size"], tmp_path / "m.onnx")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "Conv" in ops and "Shape" not in ops and "ScatterND" not in ops
    assert sum(type(m) is EdgeSameConv2d for m in ex.backbone.modules()) == 5  # put back
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
