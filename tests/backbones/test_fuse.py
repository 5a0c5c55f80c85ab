"""BatchNorm folding: same vectors, fewer layers, undone when it would change the result."""

import numpy as np
import pytest
import torch
from torch import nn

import imgfeat.pipeline as pipeline
from imgfeat import Extractor
from imgfeat.backbones.fuse import fold_batchnorm
from imgfeat.config import ModelConfig
from tests.conftest import TINY


def _randomise_bn(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.data.copy_(torch.randn(m.num_features, generator=gen))


class WrongOrder(nn.Module):
    """conv and bn are siblings, but forward runs the bn first: folding would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_fold_and_undo_on_plain_modules():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, affine=False)).eval()
    _randomise_bn(net)
    x = torch.randn(2, 3, 9, 9)
    ref = net(x)
    done = fold_batchnorm(net)
    assert len(done) == 2 and not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-5)
    done.undo()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 2
    assert torch.equal(net(x), ref)  # exactly the original again
    wrong = WrongOrder().eval()
    _randomise_bn(wrong)
    before = wrong(x[:, :1].repeat(1, 4, 1, 1))
    done = fold_batchnorm(wrong)
    assert len(done) == 1 and not torch.allclose(wrong(x[:, :1].repeat(1, 4, 1, 1)), before)
    done.undo()
    assert torch.equal(wrong(x[:, :1].repeat(1, 4, 1, 1)), before)


def test_packaged_model_folds_to_the_same_vectors():
    cfg = ModelConfig(model="tf_efficientnet_lite0", layers="pooled", precision="fp32")
    fused, plain = Extractor(cfg), Extractor(ModelConfig(**{**vars(cfg), "fold_bn": False}))
    assert fused.folded_bn == 49 and plain.folded_bn == 0
    assert fused.metadata()["batchnorm_folded"] == 49
    x = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8)
    a, b = fused.embed(x), plain.embed(x)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


def test_a_fold_that_changes_the_result_is_undone(monkeypatch):
    real = pipeline.fold_batchnorm

    def broken(model):
        done = real(model)
        conv = done.records[0][3]
        conv.weight = nn.Parameter(conv.weight.detach() * 2, requires_grad=False)
        return done

    monkeypatch.setattr(pipeline, "fold_batchnorm", broken)
    ex = Extractor(ModelConfig(**TINY))
    assert ex.folded_bn == 0
    monkeypatch.undo()
    plain = Extractor(ModelConfig(**TINY, fold_bn=False))
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    np.testing.assert_array_equal(ex.embed(x), plain.embed(x))


@pytest.mark.parametrize("model", ["test_resnet", "test_convnext"])
def test_other_families(model):
    """ResNets fold; ConvNeXt has no BatchNorm and is left alone."""
    ex = Extractor(ModelConfig(model=model, pretrained=False, img_size=64))
    assert (ex.folded_bn > 0) == (model == "test_resnet")
