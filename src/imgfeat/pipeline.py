"""Source → decode → batch → backbone → pooling → vectors, for one shard at a time."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import PIL
import torch

from ._version import __version__
from .backbones import WeightsInfo, create_backbone
from .backbones.fuse import fold_batchnorm
from .batches import DecodedBatch, Shard, ShardData, ShardUnavailable, make_shards
from .config import ModelConfig
from .decode import MAX_PIXELS
from .device import autocast
from .errors import ConfigError, DecodeError, ModelError
from .pooling import create_pooling
from .pooling.radam import select_stages
from .precision import resolve_precision
from .preprocess import Preprocess, normalize, read_pixels, resolve_data_config
from .sources import Item, Source
from .storage import StorageUnavailableError

__all__ = ["DecodedBatch", "Extractor", "Shard", "ShardData", "ShardUnavailable",
           "batch_positions", "collate", "create_parts", "decode_batch", "decode_batches",
           "decode_item", "make_shards", "run_shard", "try_shard"]


def decode_item(source: Source, item: Item, preprocess: Preprocess,
                max_pixels: int = MAX_PIXELS) -> tuple[torch.Tensor | None, str | None]:
    """Decode and resize one item, turning any failure of the item into a reason string.

    Storage that stays unavailable is not the item's failure: :class:`StorageUnavailableError`
    propagates, so the item's shard fails (and ``--resume`` runs it again)."""
    try:
        return read_pixels(source, item, preprocess, max_pixels), None
    except DecodeError as exc:
        return None, str(exc)
    except StorageUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file never stops a run
        return None, f"{type(exc).__name__}: {exc}"


def collate(shard: int, positions: list[int],
            decoded: list[tuple[torch.Tensor | None, str | None]]) -> DecodedBatch:
    ok = [p for p, (t, _) in zip(positions, decoded, strict=True) if t is not None]
    tensors = [t for t, _ in decoded if t is not None]
    errors = {p: e for p, (t, e) in zip(positions, decoded, strict=True) if t is None}
    return DecodedBatch(shard, positions, torch.stack(tensors) if tensors else None, ok, errors)


def batch_positions(n: int, batch_size: int) -> list[list[int]]:
    """The positions of a shard of ``n`` items, cut into batches of ``batch_size``: the one
    way every engine batches a shard."""
    return [list(range(a, min(a + batch_size, n))) for a in range(0, n, batch_size)]


def decode_batch(source: Source, shard: int, positions: list[int], items: list[Item],
                 preprocess: Preprocess, max_pixels: int = MAX_PIXELS) -> DecodedBatch:
    """Decode the ``items`` at ``positions`` of shard ``shard`` in this process."""
    return collate(shard, positions,
                   [decode_item(source, item, preprocess, max_pixels) for item in items])


def decode_batches(source: Source, shard: Shard, preprocess: Preprocess, batch_size: int,
                   max_pixels: int = MAX_PIXELS) -> Iterator[DecodedBatch]:
    """Decode a shard in this process, batch by batch (the engines may do it in workers)."""
    for positions in batch_positions(len(shard.items), batch_size):
        yield decode_batch(source, shard.index, positions, [shard.items[p] for p in positions],
                           preprocess, max_pixels)


def create_parts(cfg: ModelConfig) -> tuple:
    """The pooling and the backbone (its weights loaded, never run) that ``cfg`` names: enough
    to know the weights an output records, without an :class:`Extractor`'s probe."""
    pooling = create_pooling(cfg.pool, **dict(cfg.pool_args))
    return pooling, create_backbone(cfg, multi_stage=bool(getattr(pooling, "multi_layer", False)))


class Extractor:
    """A backbone of any kind, its preprocessing and a pooling: uint8 batches in, vectors out.
    ``parts``: from :func:`create_parts` when the caller made them already."""

    def __init__(self, cfg: ModelConfig, device: str = "cpu", channels_last: bool = True,
                 parts: tuple | None = None, runtime: str = "torch", threads: int | None = None,
                 cached_only: bool = False):
        """``runtime`` (:data:`imgfeat.runtimes.RUNTIMES`): ``torch`` runs the network eager;
        another runs it exported (:mod:`imgfeat.runtimes`) with ``threads`` (default torch's)
        where its maps of the probe equal torch's, and a cached export starts without
        building the network (``cached_only``: only that, else :class:`LookupError`)."""
        self.cfg = cfg
        self.device = torch.device(device)
        self.pooling, backbone = parts or (create_pooling(cfg.pool, **dict(cfg.pool_args)), None)
        self.multi_layer = bool(getattr(self.pooling, "multi_layer", False))
        self.precision = resolve_precision(cfg.precision, self.device.type)
        self.store_dtype = np.dtype(self.pooling.store_dtype)
        #: the runtime the network runs in, its exported form (None: torch) and its probe error
        self.runtime, self.compiled, self.runtime_error = "torch", None, None
        #: images/s that ``auto`` measured per runtime (torch included) when it chose
        self.runtime_speeds: dict[str, float] = {}
        exported = runtime != "torch" and self.device.type == "cpu"
        threads = threads or torch.get_num_threads()
        if exported and self._start_cached(runtime, threads):
            return
        if cached_only:
            raise LookupError("no cached export")
        if backbone is None:
            backbone = create_backbone(cfg, multi_stage=self.multi_layer)
        self.weights = backbone.weights
        self.output_stride = backbone.output_stride
        self.arch = backbone.architecture
        self.layer_spec = resolve_layers(cfg, self.pooling, backbone)
        self.layers = backbone.select(self.layer_spec).layers
        self.data_config = resolve_data_config(backbone, cfg)
        self.preprocess = Preprocess.from_data_config(self.data_config)
        self.backbone = backbone.to(self.device)
        self.description = backbone.describe()
        probe, maps = self._probe()
        self.folded_bn, self.edge_padded = self._speed_up(probe, maps)
        self.layout = self._layout(maps)
        self.dim = sum(entry["size"] for entry in self.layout)
        self.channels_last = channels_last and self.device.type != "mps"
        if self.channels_last:
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        if exported:
            from .runtimes.attach import attach

            self.runtime, self.compiled, self.runtime_error = attach(self, probe, maps, runtime,
                                                                     threads)

    @classmethod
    def cached(cls, cfg: ModelConfig, device: str, runtime: str, threads: int) -> Extractor | None:
        """The extractor of a cached export (no network built, timm not imported), or None."""
        try:
            return cls(cfg, device, runtime=runtime, threads=threads, cached_only=True)
        except LookupError:
            return None

    def _start_cached(self, runtime: str, threads: int) -> bool:
        """Take everything but the network from a cached export (no network is built, timm is
        not imported); False when there is none."""
        from .backbones.base import LayerSpec, Tap
        from .runtimes.attach import cached_start

        start = cached_start(self, runtime, threads)
        if start is None:
            return False
        self.backbone = None  # the exported network runs; the torch one is never built
        self.runtime, self.compiled = start["runtime"], start["compiled"]
        self.runtime_error = start["probe_error"]
        self.weights = WeightsInfo(**start["weights"])
        self.description = start["description"]
        self.output_stride, self.arch = start["output_stride"], start["architecture"]
        self.layer_spec = start["layer_spec"]
        self.layers = LayerSpec([Tap(**t) for t in start["taps"]])
        self.data_config = {k: tuple(v) if isinstance(v, list) else v
                            for k, v in start["data_config"].items()}
        self.preprocess = Preprocess.from_data_config(self.data_config)
        self.folded_bn, self.edge_padded = start["folded_bn"], start["edge_padded"]
        self.layout = start["layout"]
        self.dim = sum(entry["size"] for entry in self.layout)
        self.channels_last = False
        return True

    def _probe(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One random image at the input size and the original network's maps of it: they give
        the layout and check the speed-up rewrites."""
        _, h, w = self.data_config["input_size"]
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(self.device)
        with torch.inference_mode():
            return x, self.backbone(x)

    def _speed_up(self, probe: torch.Tensor, ref: dict[str, torch.Tensor]) -> tuple[int, int]:
        """Fold BatchNorm into the convolutions before it (about 1.2x faster on CPU; unless
        ``fold_bn`` is off) and pad SAME convolutions at their edges only (same numbers, about
        1.07x on TF-ported models). A rewrite is kept only if every tap still matches the
        original network's maps ``ref`` of ``probe``: both are tried, then the folding alone.
        Returns (BatchNorms folded, convolutions changed)."""
        from .backbones.samepad import edge_same_padding

        for edges in (True, False):
            with torch.no_grad():  # new weights must be ordinary tensors, not inference ones
                swapped = edge_same_padding(self.backbone) if edges else None
                folded = fold_batchnorm(self.backbone) if self.cfg.fold_bn else None
            if not swapped and not folded:
                return 0, 0
            if self._matches(probe, ref):
                return len(folded or ()), len(swapped or ())
            for rewrite in (folded, swapped):
                if rewrite:
                    rewrite.undo()
        return 0, 0

    def _matches(self, probe: torch.Tensor, ref: dict[str, torch.Tensor]) -> bool:
        """True when the backbone's maps of ``probe`` equal ``ref`` to float rounding."""
        try:
            with torch.inference_mode():
                out = self.backbone(probe)
            return all(a.shape == out[name].shape and bool(
                ((a - out[name]).abs().max() <= 1e-3 * a.abs().max() + 1e-5).item())
                for name, a in ref.items())
        except Exception:  # noqa: BLE001 - a rewrite that cannot run is simply not kept
            return False

    def _layout(self, maps: dict[str, torch.Tensor]) -> list[dict]:
        """Every tap's shape and vector size, from the maps of one probe image."""
        if self.multi_layer:
            shapes = [tuple(maps[t.name].shape[1:]) for t in self.layers.taps]
            size = int(self.pooling.pool_maps([maps[t.name] for t in self.layers.taps]).shape[1])
            return [{"layer": "+".join(self.layers.names), "module": self.cfg.pool,
                     "map_shape": [list(s) for s in shapes], "offset": 0, "size": size}]
        layout, offset = [], 0
        for tap in self.layers.taps:
            shape = tuple(maps[tap.name].shape[1:])
            c, mh, mw = (shape + (1, 1))[:3] if len(shape) == 1 else shape
            size = c if len(shape) == 1 else self.pooling.out_features(c, mh, mw)
            layout.append({"layer": tap.name, "module": tap.module, "map_shape": list(shape),
                           "offset": offset, "size": int(size)})
            offset += int(size)
        return layout

    def embed(self, pixels: torch.Tensor) -> np.ndarray:
        """uint8 (B, 3, H, W) -> (B, D) vectors in the store's dtype."""
        x = normalize(pixels.to(self.device, non_blocking=True), self.data_config["mean"],
                      self.data_config["std"])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.compiled is not None:
                maps = self.compiled(x)
            else:
                with autocast(self.precision, self.device):
                    maps = self.backbone(x)
            if self.multi_layer:  # poolings always run in float32
                out = self.pooling.pool_maps([maps[t.name].float() for t in self.layers.taps])
            else:
                parts = [self.pooling(maps[t.name].float()) for t in self.layers.taps]
                out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return out.float().cpu().numpy().astype(self.store_dtype, copy=False)

    def metadata(self) -> dict:
        """Provenance recorded with every output."""
        return {
            "model": self.cfg.model,
            "backbone": self.description,
            "architecture": self.arch,
            "weights": self.weights.to_dict() if isinstance(self.weights, WeightsInfo) else None,
            "data_config": {k: list(v) if isinstance(v, tuple) else v
                            for k, v in self.data_config.items()},
            "layers": self.layer_spec,
            "layers_requested": self.cfg.layers,
            "layout": self.layout,
            "pooling": {"name": self.pooling.name, "params": self.pooling.get_params()},
            "precision": self.precision,
            "precision_requested": self.cfg.precision,
            "output_stride": self.output_stride,
            "batchnorm_folded": self.folded_bn,
            "same_convs_edge_padded": self.edge_padded,
            "dim": self.dim,
            "dtype": str(self.store_dtype),
            "runtime": self.runtime,
            "runtime_probe_error": self.runtime_error,
            "runtime_speeds": self.runtime_speeds,
            "versions": versions(self.runtime),
        }


def resolve_layers(cfg: ModelConfig, pooling, backbone) -> str:
    """The layers a run really uses. Unset: ``pooled`` for ``avg`` (the network's own pooled
    vector), ``final`` for every other map pooling (applied to the final map), and the
    pooling's own stages for multi-stage poolings (RADAM). The network's pooled vector with a
    pooling other than ``avg`` would silently be that vector, so it is refused."""
    layers = cfg.layers
    if getattr(pooling, "multi_layer", False):
        if layers in (None, "pooled"):
            n = len(backbone.feature_info)
            if not n:
                raise ModelError(f"pool {cfg.pool!r} pools stages, and {cfg.model} exposes none")
            return ",".join(str(i) for i in select_stages(n, pooling.stages))
        if any(t.strip() in ("pooled", "final") for t in str(layers).split(",")):
            raise ConfigError(f"pool {cfg.pool!r} pools stages: use stage indices or all in "
                              f"layers, not pooled or final")
        return str(layers)
    if layers is None:
        return "pooled" if cfg.pool == "avg" else "final"
    if cfg.pool != "avg" and "pooled" in [t.strip() for t in str(layers).split(",")]:
        raise ConfigError(f"pool {cfg.pool!r} does not apply to layers 'pooled' (the network's "
                          f"own pooled vector); use layers 'final' or stage indices, or pool 'avg'")
    return str(layers)


def versions(runtime: str = "torch") -> dict:
    """Versions recorded with an output (the exported runtime's too); timm's from its package
    metadata, so that a cached start does not import it."""
    from .runtimes import runtime_version

    out = {"imgfeat": __version__, "torch": torch.__version__, "timm": runtime_version("timm"),
           "numpy": np.__version__, "pillow": PIL.__version__,
           "python": platform.python_version()}
    if runtime != "torch":
        out[runtime] = runtime_version(runtime)
    return out


def run_shard(extractor: Extractor, shard: Shard, batches: Iterable[DecodedBatch],
              embed: Callable[[DecodedBatch], np.ndarray] | None = None) -> ShardData:
    """Embed the decoded batches of one shard; failed items keep their reason, others a vector.
    ``embed``: what gives a batch's vectors (default: ``extractor.embed`` of its pixels)."""
    t0 = time.perf_counter()
    n = len(shard.items)
    vectors = np.zeros((n, extractor.dim), dtype=extractor.store_dtype)
    ok = np.zeros(n, dtype=bool)
    errors: list[str | None] = [None] * n
    seen = 0
    for batch in batches:
        if batch.unavailable is not None:  # decoded in a worker process, raised here
            raise StorageUnavailableError(batch.unavailable)
        seen += len(batch.positions)
        for pos, err in batch.errors.items():
            errors[pos] = err
        if batch.vectors is not None:  # embedded where it was decoded
            vectors[batch.ok] = batch.vectors
            ok[batch.ok] = True
        elif batch.pixels is not None:
            vectors[batch.ok] = (embed(batch) if embed is not None
                                 else extractor.embed(batch.pixels))
            ok[batch.ok] = True
    if seen != n:
        raise RuntimeError(f"shard {shard.index}: {seen} of {n} items decoded")
    return ShardData(shard.index, shard.items, vectors[ok], ok, errors,
                     time.perf_counter() - t0)


def try_shard(extractor: Extractor, shard: Shard, batches: Iterable[DecodedBatch],
              embed: Callable[[DecodedBatch], np.ndarray] | None = None
              ) -> ShardData | ShardUnavailable:
    """:func:`run_shard`, or the shard marked unavailable when storage stayed unavailable."""
    try:
        return run_shard(extractor, shard, batches, embed)
    except StorageUnavailableError as exc:
        return ShardUnavailable(shard.index, shard.items, str(exc))
