import pytest
import torch

from imgfeat import ConfigError, create_pooling, list_poolings


def test_registry_and_values():
    assert {"avg", "max", "avgmax", "catavgmax", "gem", "none"} <= set(list_poolings())
    x = torch.rand(2, 3, 4, 5)
    assert torch.allclose(create_pooling("avg")(x), x.mean((2, 3)))
    assert torch.allclose(create_pooling("max")(x), x.amax((2, 3)))
    assert create_pooling("catavgmax")(x).shape == (2, 6)
    assert create_pooling("none")(x).shape == (2, 60)
    gem1 = create_pooling("gem", p=1.0)(x)
    assert torch.allclose(gem1, x.clamp(min=1e-6).mean((2, 3)), atol=1e-6)
    assert create_pooling("gem", p=3)(x).ge(gem1 - 1e-6).all()  # power mean inequality


def test_unknown_pooling():
    with pytest.raises(ConfigError, match="known"):
        create_pooling("median")
