import ast
from pathlib import Path

import pytest
import torch

from imgfeat import ConfigError, Pooling, create_pooling, list_poolings, register_pooling


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


@pytest.fixture
def toy_pooling(monkeypatch):
    """A pooling registered for one test only (the registry is restored after it)."""
    from imgfeat.pooling import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_pooling
    class ToyPool(Pooling):
        """The mean, repeated ``k`` times and scaled."""

        name = "toy"

        def __init__(self, k: int = 2, scale: float = 1.0):
            self.k = k
            self.scale = scale

        def pool(self, fmap: torch.Tensor) -> torch.Tensor:
            return fmap.mean((2, 3)).repeat(1, self.k) * self.scale

        def out_features(self, channels: int, height: int, width: int) -> int:
            return self.k * channels

    return ToyPool


def test_get_params_come_from_the_init_signature(toy_pooling):
    toy = create_pooling("toy", scale=0.5)
    toy.fitted_ = "learned"  # learned state is not a parameter
    assert toy.get_params() == {"k": 2, "scale": 0.5}
    assert repr(toy) == "toy(k=2, scale=0.5)"
    assert create_pooling("avg").get_params() == {}

    class Loose(Pooling):
        name = "loose"

        def __init__(self, **options):
            self.options = options

    with pytest.raises(TypeError, match="no \\*args or \\*\\*kwargs"):
        Loose(a=1).get_params()


@pytest.mark.parametrize("pool", list_poolings())
def test_no_pooling_overrides_get_params(pool):
    """scikit-learn's rule, for every registered pooling: ``__init__`` stores its arguments by
    name, so the base class's ``get_params`` describes it and rebuilds an equal one."""
    p = create_pooling(pool)
    assert type(p).get_params is Pooling.get_params
    params = p.get_params()
    assert type(p)(**params).get_params() == params


def test_imgfeat_info_lists_every_registered_pooling(toy_pooling, capsys):
    from imgfeat import model_info
    from imgfeat.cli import main

    info = model_info("test_efficientnet", img_size=64)
    channels = info["final_shape"][0]
    assert info["vector_sizes"]["final"]["toy"] == 2 * channels
    assert {"radam", "spectral"} <= set(info["vector_sizes"]["all"])
    assert main(["info", "test_efficientnet", "--img-size", "64"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("layers"))
    assert set(header.split()[1:]) == set(list_poolings())


def test_pooling_modules_import_one_another_without_cycles():
    """Imports anywhere in a module (also inside functions) count: elm.py is the tensor
    mathematics, radam.py the poolings that use it, never the other way round."""
    import imgfeat.pooling as package

    folder = Path(package.__file__).parent
    deps = {}
    for path in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names |= {node.module} if node.module else {a.name for a in node.names}
        deps[path.stem] = names & {p.stem for p in folder.glob("*.py")}

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d}))
                   for d in deps[start])

    cycles = [m for m in deps if reaches(m, m)]
    assert not cycles, {m: deps[m] for m in cycles}
    assert "elm" in deps["radam"]
