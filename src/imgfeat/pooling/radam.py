"""RADAM: a randomized auto-encoder (ELM) as a pooling of the maps of every stage.

Scabini et al., "RADAM: Texture recognition through randomized aggregated encoding of deep
activation maps", Pattern Recognition 143 (2023) 109802. For each image: L2-normalise every
channel over its positions, resize all stages to the middle stage's size, stack the channels
(X: z × N), add a 2-D sine/cosine positional encoding, then for k = 0..m-1 take a fixed random
row W_k, hidden output g_k = sigmoid(W_k X) and the decoder β_k that best maps g_k back to X
(closed form for one hidden unit, a ridge solve for q > 1). The vector is Σ_k β_k.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import Pooling, register_pooling

if TYPE_CHECKING:
    import torch

#: the tensor mathematics lives in .elm (torch), imported on first use, so listing poolings
#: and building the command line need no torch; .elm imports nothing from here
STAGE_SELECTIONS = ("all", "last", "top_quarter", "middle", "quarter")
#: where encoder weights come from: the authors' LCG stream, or a seeded torch generator
WEIGHT_SOURCES = ("lcg", "torch")


def select_stages(n: int, selection: str) -> list[int]:
    """Stage indices as the authors choose them: ``all``, or one stage at about 25 %
    (``quarter``), 50 % (``middle``), 75 % (``top_quarter``) of the depth or the ``last``
    (their ``FEATURE_DEPTH``: for even n round(n·f) - 1, for odd n ⌊n/4⌋·k or ⌊n/2⌋)."""
    if selection == "all":
        return list(range(n))
    if selection == "last":
        return [n - 1]
    fraction = {"quarter": 0.25, "middle": 0.5, "top_quarter": 0.75}.get(selection)
    if fraction is None:
        raise ValueError(f"stage selection must be one of {', '.join(STAGE_SELECTIONS)}")
    if n % 2 == 0:
        return [int(round(n * fraction) - 1) % n]  # their -1 (n = 2, quarter) is the last
    return [{"quarter": n // 4, "middle": n // 2, "top_quarter": n // 4 * 3}[selection]]


@register_pooling
class RadamPool(Pooling):
    """RADAM over several stages. ``m`` encoders, ``hidden`` units each (q), weights from the
    paper's LCG (``weights='lcg'``) or a seeded torch generator (``weights='torch'``)."""

    name = "radam"
    multi_layer = True
    default_layers = "all"
    cli_options = {
        "m": ("--m", "RADAM: number of randomized encoders"),
        "hidden": ("--hidden", "hidden units per encoder (RADAM: >1 uses a ridge solve; "
                               "spectral: units of its one encoder)"),
        "stages": ("--stages", "RADAM/spectral: which stages to aggregate"),
        "weights": ("--radam-weights", "RADAM/spectral: encoder weights from the authors' LCG "
                                       "stream or a seeded torch generator"),
        "seed": ("--radam-seed", "RADAM/spectral: seed of --radam-weights torch"),
    }
    option_choices = {"stages": STAGE_SELECTIONS, "weights": WEIGHT_SOURCES}

    def __init__(self, m: int = 4, hidden: int = 1, weights: str = "lcg", seed: int = 0,
                 positional: bool = True, ridge: float = 1e-3, stages: str = "all"):
        self.m = int(m)
        self.hidden = int(hidden)
        self.weights = weights
        self.seed = int(seed)
        self.positional = bool(positional)
        self.ridge = float(ridge)
        self.stages = stages
        if self.m < 1 or self.hidden < 1:
            raise ValueError("m and hidden must be at least 1")
        self.check_choices()
        self._cache: dict = {}

    def out_features(self, channels: int, height: int, width: int) -> int:
        return self.hidden * channels

    def _weights(self, z: int, device) -> torch.Tensor:
        if z not in self._cache:
            from .elm import encoder_weights

            self._cache[z] = encoder_weights(self.m, self.hidden, z, self.weights, self.seed)
        return self._cache[z].to(device)

    def pool_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """(B, C_i, H_i, W_i) maps of the selected stages -> (B, q·z) vectors."""
        import torch

        from .elm import aggregate_maps, elm_decoder, positional_encoding_2d

        X = aggregate_maps(maps)
        b, z, h, w = X.shape
        if self.positional:
            X = X + positional_encoding_2d(z, h, w).to(X.device)[None]
        beta = elm_decoder(X.flatten(2), self._weights(z, X.device), self.ridge)
        return torch.nan_to_num(beta.sum(1).flatten(1), nan=0.0, posinf=0.0, neginf=0.0)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.pool_maps([fmap])


@register_pooling
class SpectralPool(RadamPool):
    """The "spectral" reading of the randomized auto-encoder, the idea RADAM grew from: every
    position's channel vector (its spectrum across the selected stages) is one training sample
    of a single ELM auto-encoder with ``hidden`` sigmoid units and a bias; the vector is its
    decoder's weights flattened (hidden × z, unit by unit) instead of RADAM's sum over ``m``
    one-unit encoders, with no positional encoding. Same LCG or seeded weights and ridge."""

    name = "spectral"
    cli_options = {k: v for k, v in RadamPool.cli_options.items() if k != "m"}

    def __init__(self, hidden: int = 4, weights: str = "lcg", seed: int = 0,
                 ridge: float = 1e-3, stages: str = "all"):
        super().__init__(m=1, hidden=hidden, weights=weights, seed=seed, positional=False,
                         ridge=ridge, stages=stages)

    def _weights(self, z: int, device) -> torch.Tensor:  # (1, q, z + 1): the last column is b
        return super()._weights(z + 1, device)

    def pool_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        import torch

        from .elm import aggregate_maps, elm_decoder

        X = aggregate_maps(maps).flatten(2)
        Wb = self._weights(X.shape[1], X.device)
        beta = elm_decoder(X, Wb[..., :-1], self.ridge, bias=Wb[..., -1])
        return torch.nan_to_num(beta.flatten(1), nan=0.0, posinf=0.0, neginf=0.0)
