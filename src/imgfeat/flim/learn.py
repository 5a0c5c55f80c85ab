"""Filter learning: compute a FLIM network's kernels and statistics from marked images.

Layers are learned one at a time, in the order the network runs them. For each one, the images
go through the network as saved so far (the layers before it are final), and a hook catches the
layer's input; the markers are carried down through every convolution and pooling before it (a
marker pixel goes to the output pixel whose window is centred nearest to it). So each layer
learns on exactly the maps the saved network computes at inference.

- ``FlimConv2d``: the k×k×C patch under every marker pixel (the convolution's own padding,
  stride and dilation); per marker, k-means with ``kernels_per_marker`` clusters (a marker with
  fewer patches gives its patches), with ``center_patches`` on patches centred per input channel
  (kernels larger than 1×1: the centroids are then local patterns, not the stroke's mean
  colour; what wins on texture classes); kernels scaled to unit norm; more kernels than
  ``out_channels`` are merged by a second k-means (cosine) or PCA. With ``clustering: global``
  one k-means of every marker patch gives ``out_channels`` kernels directly (the original's
  ``multilevel_clustering=False``). With ``complement_kernels: n``, the last n kernels are
  random directions orthogonal to the learned ones. With ``whiten``, the patches
  of all markers are ZCA-whitened before k-means (as texton and Coates–Ng k-means feature
  learning do: k-means then finds edges and bars, not the few strongest low-frequency
  directions) and the whitening is folded into the kernels. With ``fold_norm`` (``bias:
  true``) patches are normalised per input channel first and that normalisation is folded into
  the weights and a bias.
- ``MarkerNorm2d``: mean and std per channel over the marker pixels (a channel constant there
  is only centred, not divided by its ~0 std).
- ``BatchNorm2d``: mean and variance per channel over every pixel of every image.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ImgfeatError
from .kmeans import batched_kmeans, unit_rows
from .markers import Markers
from .network import FlimConv2d, FlimNetwork, MarkerNorm2d, Parallel

__all__ = ["LayerRecord", "LearnError", "LearnReport", "learn_filters", "map_positions", "mean_abs_cosine"]

#: at most this many patches of one marker go into its k-means (a seeded sample beyond)
MAX_PATCHES_PER_MARKER = 1000
#: at most this many patches of all markers go into a ``global`` k-means (a seeded sample beyond)
MAX_GLOBAL_PATCHES = 20000
#: a m-norm channel whose marker std is below this fraction of the layer's largest is constant
CONSTANT_STD = 1e-3
#: ZCA whitening: eigenvalues are regularised by this fraction of their mean (Coates & Ng's 0.1)
WHITEN_EPS = 0.1
_EPS = 1e-3
_TINY = 1e-12


class LearnError(ImgfeatError):
    """Markers that cannot teach the network: too few patches, a layer markers cannot reach."""


@dataclass
class LayerRecord:
    """What learning one layer saw and did."""

    name: str
    kind: str
    markers: int = 0
    pixels: int = 0
    kernels: int = 0
    out_channels: int = 0
    reduction: str | None = None
    #: a conv layer's mean |cosine| between distinct kernels (1: all alike)
    similarity: float | None = None
    seconds: float = 0.0
    #: with ``trace``: per image, (rows, cols, values (C, N)) of the layer's input at the markers
    samples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "samples"}


@dataclass
class LearnReport:
    """Every layer learned, in order, and the total time."""

    layers: list[LayerRecord] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"seconds": round(self.seconds, 3), "layers": [r.to_dict() for r in self.layers]}


class _Stop(Exception):
    """Raised by the capture hook to end a forward pass at the layer being learned."""


# ---------------------------------------------------------------------------------------------
# Carrying markers down


def _geometry(mod: nn.Module) -> tuple[tuple[int, int], ...] | str | None:
    """(kernel, stride, padding, dilation) pairs of a sliding-window module, ``"adaptive"``,
    ``"lost"`` (markers cannot follow) or None (the map keeps its geometry)."""
    def pair(v) -> tuple[int, int]:
        return (int(v[0]), int(v[1])) if isinstance(v, tuple | list) else (int(v), int(v))

    if isinstance(mod, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
        dil = getattr(mod, "dilation", 1)
        return pair(mod.kernel_size), pair(mod.stride), pair(mod.padding), pair(dil)
    if isinstance(mod, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        return "adaptive"
    if isinstance(mod, nn.Unfold | nn.Fold | nn.Flatten | nn.Linear):
        return "lost"
    return None


def map_positions(pos: torch.Tensor, mod: nn.Module, in_size: tuple[int, int],
                  out_size: tuple[int, int]) -> torch.Tensor:
    """Marker pixels (N, 2) [row, col] at a module's input -> the output pixels they map to: the
    output whose window is centred nearest, inside the output."""
    geo = _geometry(mod)
    if geo is None:
        return pos
    if geo == "lost":
        raise LearnError(f"markers cannot be carried through {type(mod).__name__}")
    out = torch.empty_like(pos)
    for axis in range(2):
        v = pos[:, axis].to(torch.float64)
        if geo == "adaptive":
            o = torch.floor((v + 0.5) * out_size[axis] / in_size[axis])
        else:
            k, s, p, d = (g[axis] for g in geo)
            o = torch.floor((v + p - d * (k - 1) / 2) / s + 0.5)
        out[:, axis] = o.clamp(0, out_size[axis] - 1).to(pos.dtype)
    return out


def _walk(module: nn.Module, name: str, chain: list[str], order: list[tuple[str, nn.Module, list[str]]],
          kinds: dict[str, nn.Module]) -> list[str]:
    """Leaves in forward order, each with the geometry modules run before it (by name)."""
    if isinstance(module, nn.Sequential):
        for child_name, child in module.named_children():
            chain = _walk(child, f"{name}.{child_name}", chain, order, kinds)
        return chain
    if isinstance(module, Parallel):
        outs = [_walk(child, f"{name}.{child_name}", list(chain), order, kinds)
                for child_name, child in module.named_children()]
        return outs[0]  # branches end on one grid; markers follow the first branch
    order.append((name, module, list(chain)))
    kinds[name] = module
    return chain + [name] if _geometry(module) is not None else chain


# ---------------------------------------------------------------------------------------------
# Patches and kernels


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, tuple | list) else (int(v), int(v))


def _patches(x: torch.Tensor, pos: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """(N, C*kh*kw) input patches of ``conv`` (its padding, stride, dilation) for the output
    pixels ``pos`` (N, 2) of one image ``x`` (C, H, W)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_pair(conv.kernel_size), _pair(conv.stride),
                                              _pair(conv.padding), _pair(conv.dilation))
    xp = F.pad(x, (pw, pw, ph, ph))
    rows = pos[:, 0:1] * sh + torch.arange(kh) * dh  # (N, kh)
    cols = pos[:, 1:2] * sw + torch.arange(kw) * dw  # (N, kw)
    patch = xp[:, rows[:, :, None], cols[:, None, :]]  # (C, N, kh, kw)
    return patch.permute(1, 0, 2, 3).reshape(len(pos), -1)


def _center(patches: torch.Tensor, channels: int) -> torch.Tensor:
    """Patches (N, C*kh*kw) less their own mean per channel; 1×1 patches are returned as they are."""
    per = patches.reshape(len(patches), channels, -1)
    if per.shape[2] == 1:
        return patches
    return (per - per.mean(2, keepdim=True)).reshape(len(patches), -1)


def _marker_kernels(patches: torch.Tensor, groups: torch.Tensor, n: int, metric: str, seed: int
                    ) -> tuple[torch.Tensor, int]:
    """k-means per marker (batched): (K, D) kernels, unit norm, in marker order; and the marker count."""
    order = torch.argsort(groups, stable=True)
    patches, groups = patches[order], groups[order]
    uniq, counts = torch.unique_consecutive(groups, return_counts=True)
    gen = torch.Generator().manual_seed(seed)
    starts = torch.cumsum(counts, 0) - counts
    few = counts <= n
    kernels: list[torch.Tensor] = []
    many = torch.nonzero(~few).squeeze(1)
    if len(many):
        take = counts[many].clamp(max=MAX_PATCHES_PER_MARKER)
        width = int(take.max())
        batch = torch.zeros(len(many), width, patches.shape[1], dtype=patches.dtype)
        mask = torch.zeros(len(many), width, dtype=torch.bool)
        for row, g in enumerate(many.tolist()):
            c, s = int(counts[g]), int(starts[g])
            idx = (torch.randperm(c, generator=gen)[:MAX_PATCHES_PER_MARKER] if c > MAX_PATCHES_PER_MARKER
                   else torch.arange(c))
            batch[row, : len(idx)] = patches[s + idx]
            mask[row, : len(idx)] = True
        cents = batched_kmeans(batch, mask, n, metric=metric, seed=seed)
        per_marker = dict(zip(many.tolist(), cents.to(patches.dtype), strict=True))
    else:
        per_marker = {}
    for g in range(len(uniq)):
        if bool(few[g]):
            kernels.append(patches[int(starts[g]): int(starts[g] + counts[g])])
        else:
            kernels.append(per_marker[g])
    k = unit_rows(torch.cat(kernels))
    return k[k.norm(dim=1) > 0.5], len(uniq)


def _global_kernels(patches: torch.Tensor, n: int, metric: str, seed: int, where: str) -> torch.Tensor:
    """One k-means of every marker patch (a seeded sample of at most ``MAX_GLOBAL_PATCHES``)
    straight to ``n`` unit kernels."""
    if len(patches) < n:
        raise LearnError(f"{where}: the markers give {len(patches)} patches, fewer than the {n} kernels "
                         "to learn: mark more, or lower out_channels")
    if len(patches) > MAX_GLOBAL_PATCHES:
        gen = torch.Generator().manual_seed(seed)
        patches = patches[torch.randperm(len(patches), generator=gen)[:MAX_GLOBAL_PATCHES]]
    mask = torch.ones(1, len(patches), dtype=torch.bool)
    return unit_rows(batched_kmeans(patches[None], mask, n, metric=metric, seed=seed)[0]).to(patches.dtype)


def _complement(kernels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` unit kernels drawn at random (seeded) in the orthogonal complement of the span of
    ``kernels`` (K, D); plain random ones where the kernels span every direction."""
    gen = torch.Generator().manual_seed(seed)
    k = kernels.to(torch.float64)
    _, sv, vh = torch.linalg.svd(k, full_matrices=False)
    basis = vh[sv > 1e-6 * float(sv.max().clamp_min(_TINY))]
    rand = torch.randn(n, k.shape[1], generator=gen, dtype=torch.float64)
    if len(basis) < k.shape[1]:
        rand = rand - (rand @ basis.T) @ basis
    return unit_rows(rand).to(kernels.dtype)


def _zca(patches: torch.Tensor, eps: float = WHITEN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """ZCA whitening of patches (N, D): the symmetric (D, D) matrix and the mean (D,), with the
    eigenvalues regularised by ``eps`` × their mean (directions with no variance stay put)."""
    x = patches.to(torch.float64)
    mu = x.mean(0)
    cov = (x - mu).T @ (x - mu) / max(len(x) - 1, 1)
    val, vec = torch.linalg.eigh(cov)
    val = val.clamp_min(0)
    reg = eps * float(val.mean()) + _TINY
    zca = (vec * (1.0 / torch.sqrt(val + reg))) @ vec.T
    return zca.to(patches.dtype), mu.to(patches.dtype)


def _reduce(kernels: torch.Tensor, out: int, how: str, seed: int, where: str) -> torch.Tensor:
    """``out`` unit kernels from ``kernels`` (K, D), K > out: cosine k-means centroids or PCA axes."""
    if how == "kmeans":
        mask = torch.ones(1, len(kernels), dtype=torch.bool)
        return unit_rows(batched_kmeans(kernels[None], mask, out, metric="cosine", seed=seed)[0]
                         ).to(kernels.dtype)
    dim = kernels.shape[1]
    if out > min(len(kernels), dim):
        raise LearnError(f"{where}: PCA gives at most {min(len(kernels), dim)} kernels here "
                         f"(kernel size × channels = {dim}); out_channels is {out}: use reduce 'kmeans'")
    centred = kernels.to(torch.float64) - kernels.to(torch.float64).mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:out]
    # a component's sign is arbitrary; choose the one the kernels lean towards (matters after ReLU)
    sign = torch.sign((kernels.to(torch.float64) @ axes.T).sum(0))
    sign[sign == 0] = 1
    return unit_rows(axes * sign[:, None]).to(kernels.dtype)


# ---------------------------------------------------------------------------------------------
# The walk


@dataclass
class _Image:
    pixels: torch.Tensor  # (3, H, W) RGB in [0, 1]
    pos: torch.Tensor  # (N, 2) rows, cols at image resolution
    group: torch.Tensor  # (N,) global marker id


def _dedupe(pos: torch.Tensor, group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    key = torch.stack([group, pos[:, 0], pos[:, 1]], 1)
    uniq = torch.unique(key, dim=0)
    return uniq[:, 1:], uniq[:, 0]


def _batches(images: list[_Image], batch_size: int) -> list[list[int]]:
    """Image indices in same-size batches of at most ``batch_size`` (the order learning runs them)."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        by_size.setdefault(tuple(im.pixels.shape[-2:]), []).append(i)
    return [idx[s: s + batch_size] for idx in by_size.values() for s in range(0, len(idx), batch_size)]


class _MapCache:
    """Every marked image's map at the input of one leaf module, advanced leaf by leaf as layers
    are learned, so learning a layer runs only the modules since the last one (not the whole
    network again). For chains of leaves only (no ``parallel`` module)."""

    def __init__(self, net: FlimNetwork, leaves: list[nn.Module], images: list[_Image], batch_size: int):
        self.net, self.leaves, self.images = net, leaves, images
        self.batches = _batches(images, batch_size)
        self.at = 0
        self.maps: list[torch.Tensor] | None = None
        self.pos = [im.pos for im in images]
        self.group = [im.group for im in images]

    def advance(self, target: nn.Module) -> None:
        """Bring the maps to ``target``'s input (the modules before it are final by now)."""
        stop = next(i for i, m in enumerate(self.leaves) if m is target)
        with torch.no_grad():
            if self.maps is None:
                self.maps = [torch.empty(0)] * len(self.images)
                for part in self.batches:
                    x = self.net.input(torch.stack([self.images[i].pixels for i in part]))
                    for j, i in enumerate(part):
                        self.maps[i] = x[j]
            for mod in self.leaves[self.at: stop]:
                for part in self.batches:
                    x = torch.stack([self.maps[i] for i in part])
                    y = mod(x)
                    in_size, out_size = tuple(x.shape[-2:]), tuple(y.shape[-2:])
                    for j, i in enumerate(part):
                        self.maps[i] = y[j]
                        if _geometry(mod) is not None:
                            self.pos[i], self.group[i] = _dedupe(
                                map_positions(self.pos[i], mod, in_size, out_size), self.group[i])
        self.at = stop


def _capture(net: FlimNetwork, target: nn.Module, chain: list[nn.Module], images: list[_Image],
             batch_size: int, use: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None],
             cache: _MapCache | None = None) -> None:
    """Run images (same-size batches) until ``target``; call ``use(i, input, pos, group)`` per image
    with its input map and its markers carried to that map (from ``cache`` when given)."""
    if cache is not None:
        cache.advance(target)
        assert cache.maps is not None
        for part in cache.batches:
            for i in part:
                use(i, cache.maps[i], cache.pos[i], cache.group[i])
        return
    sizes: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}

    def record(mod, inp, out) -> None:
        sizes[id(mod)] = (tuple(inp[0].shape[-2:]), tuple(out.shape[-2:]))

    def stop(mod, inp) -> None:
        raise _Stop(inp[0])

    hooks = [m.register_forward_hook(record) for m in chain]
    hooks.append(target.register_forward_pre_hook(stop))
    try:
        for part in _batches(images, batch_size):
            x = torch.stack([images[i].pixels for i in part])
            try:
                with torch.no_grad():
                    net.forward_features(x)
            except _Stop as caught:
                inp = caught.args[0]
            else:  # pragma: no cover - the target is always reached
                raise RuntimeError("layer not reached")
            for j, i in enumerate(part):
                pos, group = images[i].pos, images[i].group
                for mod in chain:
                    pos = map_positions(pos, mod, *sizes[id(mod)])
                if chain:
                    pos, group = _dedupe(pos, group)
                use(i, inp[j], pos, group)
    finally:
        for h in hooks:
            h.remove()


def learn_filters(
    net: FlimNetwork,
    images: Sequence[torch.Tensor],
    markers: Sequence[Markers],
    *,
    per_label: bool = False,
    seed: int = 0,
    batch_size: int = 16,
    trace: bool = False,
    names: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    random_kernels: bool = False,
    cache_maps: bool = True,
) -> LearnReport:
    """Learn every FLIM layer of ``net`` in place from ``images`` and their ``markers``.

    ``images`` are RGB tensors (3, H, W) in [0, 1] (any sizes); ``markers[i]`` were drawn on
    ``images[i]`` (same size). A marker is a connected stroke, or all pixels of one label with
    ``per_label``. ``trace`` keeps, per layer, its input at the marker pixels (for checks).
    ``names`` (file names) make errors point at the image. ``random_kernels`` is the baseline:
    every convolution gets unit-norm Gaussian kernels from a generator seeded with ``seed`` (the
    normalisation layers are still measured on the markers). ``cache_maps`` keeps every marked
    image's map as layers are learned, so no layer is run twice (networks without a ``parallel``
    module; the same filters as without it). Returns a :class:`LearnReport`.
    """
    t_all = time.perf_counter()
    if len(images) != len(markers):
        raise LearnError(f"{len(images)} images but {len(markers)} marker sets")
    if not images:
        raise LearnError("no marked images to learn from")
    names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
    items: list[_Image] = []
    offset = 0
    for img, mk, name in zip(images, markers, names, strict=True):
        if img.ndim != 3 or img.shape[0] != 3:
            raise LearnError(f"{name}: expected an RGB image (3, H, W), got {list(img.shape)}")
        if (mk.height, mk.width) != tuple(img.shape[-2:]):
            raise LearnError(f"{name}: markers were drawn on a {mk.width}x{mk.height} image, the image is "
                             f"{img.shape[-1]}x{img.shape[-2]}")
        if len(mk) == 0:
            raise LearnError(f"{name}: the image has no markers")
        ids = torch.as_tensor(mk.stroke_ids(per_label=per_label))
        pos = torch.stack([torch.tensor(mk.y, dtype=torch.long), torch.tensor(mk.x, dtype=torch.long)], 1)
        items.append(_Image(img.to(torch.float32), pos, ids + offset))
        offset += int(ids.max()) + 1

    order: list[tuple[str, nn.Module, list[str]]] = []
    kinds: dict[str, nn.Module] = {}
    _walk(net.features, "features", [], order, kinds)
    net.eval()
    chain_only = not any(isinstance(m, Parallel) for m in net.features.modules())
    cache = (_MapCache(net, [m for _, m, _ in order], items, batch_size)
             if cache_maps and chain_only else None)
    report = LearnReport()
    for name, mod, chain_names in order:
        if not isinstance(mod, FlimConv2d | MarkerNorm2d | nn.BatchNorm2d):
            continue
        if any(_geometry(kinds[c]) == "lost" for c in chain_names):
            raise LearnError(f"{name}: markers cannot reach this layer (an unfold, fold or linear "
                             "runs before it)")
        chain = [kinds[c] for c in chain_names]
        t0 = time.perf_counter()
        if progress:
            progress(name)
        rec = LayerRecord(name, type(mod).__name__, samples=[] if trace else None)
        if isinstance(mod, FlimConv2d) and random_kernels:
            _random_conv(net, mod, chain, items, batch_size, seed + len(report.layers), rec, cache)
        elif isinstance(mod, FlimConv2d):
            _learn_conv(net, mod, chain, items, batch_size, seed, rec, name, cache)
            rec.similarity = mean_abs_cosine(mod.weight.detach())
        elif isinstance(mod, MarkerNorm2d):
            _learn_mnorm(net, mod, chain, items, batch_size, rec, cache)
        else:
            _learn_batchnorm(net, mod, chain, items, batch_size, rec, cache)
        rec.seconds = time.perf_counter() - t0
        report.layers.append(rec)
    report.seconds = time.perf_counter() - t_all
    return report


def mean_abs_cosine(weight: torch.Tensor) -> float:
    """Mean |cosine| between the distinct kernels of a conv weight (out, in, kh, kw)."""
    k = unit_rows(weight.flatten(1).to(torch.float64))
    n = len(k)
    if n < 2:
        return 0.0
    c = (k @ k.T).abs()
    return float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))


def _trace(rec: LayerRecord, x: torch.Tensor, pos: torch.Tensor) -> None:
    if rec.samples is not None:
        rec.samples.append((pos[:, 0].clone(), pos[:, 1].clone(), x[:, pos[:, 0], pos[:, 1]].clone()))


def _marker_stats(net, mod, chain, items, batch_size, rec, cache=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std per channel of ``mod``'s input over the marker pixels (float64)."""
    acc: dict[str, torch.Tensor] = {}

    def use(i, x, pos, group) -> None:
        v = x[:, pos[:, 0], pos[:, 1]].to(torch.float64)
        acc["n"] = acc.get("n", 0) + v.shape[1]
        acc["s"] = acc.get("s", 0) + v.sum(1)
        acc["q"] = acc.get("q", 0) + (v * v).sum(1)
        rec.pixels += v.shape[1]
        _trace(rec, x, pos)

    _capture(net, mod, chain, items, batch_size, use, cache)
    mean = acc["s"] / acc["n"]
    std = (acc["q"] / acc["n"] - mean * mean).clamp_min(0).sqrt()
    return mean, std


def _learn_mnorm(net, mod: MarkerNorm2d, chain, items, batch_size, rec: LayerRecord, cache=None) -> None:
    mean, std = _marker_stats(net, mod, chain, items, batch_size, rec, cache)
    # a channel constant at the markers (a, b of grey images in L*a*b*; a unit ReLU never opens
    # there) would have its rounding noise, or whatever it shows off the markers, multiplied by
    # 1/epsilon: it is only centred instead
    std = torch.where(std <= CONSTANT_STD * std.max().clamp_min(_TINY), torch.ones_like(std), std)
    mod.mean.copy_(mean.to(mod.mean.dtype))
    mod.std.copy_(std.to(mod.std.dtype))
    rec.out_channels = mod.num_features


def _learn_batchnorm(net, mod: nn.BatchNorm2d, chain, items, batch_size, rec: LayerRecord,
                     cache=None) -> None:
    acc: dict[str, torch.Tensor] = {}

    def use(i, x, pos, group) -> None:
        v = x.reshape(x.shape[0], -1).to(torch.float64)
        acc["n"] = acc.get("n", 0) + v.shape[1]
        acc["s"] = acc.get("s", 0) + v.sum(1)
        acc["q"] = acc.get("q", 0) + (v * v).sum(1)
        rec.pixels += len(pos)
        _trace(rec, x, pos)

    _capture(net, mod, chain, items, batch_size, use, cache)
    mean = acc["s"] / acc["n"]
    var = (acc["q"] / acc["n"] - mean * mean).clamp_min(0)
    mod.running_mean.copy_(mean.to(mod.running_mean.dtype))
    mod.running_var.copy_(var.to(mod.running_var.dtype))
    rec.out_channels = mod.num_features


def _learn_conv(net, conv: FlimConv2d, chain, items, batch_size, seed, rec: LayerRecord, name: str,
                cache=None) -> None:
    if conv.fold_norm:
        mean, std = _marker_stats(net, conv, chain, items, batch_size,
                                  LayerRecord(name, "stats"), cache)
        scale = (std + _EPS).to(torch.float32)
        mean32 = mean.to(torch.float32)
    patches: list[torch.Tensor] = []
    groups: list[torch.Tensor] = []

    def use(i, x, pos, group) -> None:
        _trace(rec, x, pos)
        in_size = tuple(x.shape[-2:])
        out_pos = map_positions(pos, conv, in_size, _conv_out_size(conv, in_size))
        out_pos, out_group = _dedupe(out_pos, group)
        p = _patches(x, out_pos, conv)
        if conv.fold_norm:
            p = p.reshape(len(p), x.shape[0], -1)
            p = ((p - mean32[None, :, None]) / scale[None, :, None]).reshape(len(p), -1)
        if conv.center_patches:
            p = _center(p, x.shape[0])
        patches.append(p)
        groups.append(out_group)
        rec.pixels += len(pos)

    _capture(net, conv, chain, items, batch_size, use, cache)
    allp, allg = torch.cat(patches), torch.cat(groups)
    if conv.whiten:
        zca, mu = _zca(allp)
        allp = (allp - mu) @ zca
    out = conv.out_channels - conv.complement_kernels
    if conv.clustering == "global":
        kernels, n_markers = _global_kernels(allp, out, conv.metric, seed, name), len(torch.unique(allg))
        per = "all of them together"
    else:
        kernels, n_markers = _marker_kernels(allp, allg, conv.kernels_per_marker, conv.metric, seed)
        per = f"up to {conv.kernels_per_marker} each"
    rec.markers, rec.kernels, rec.out_channels = n_markers, len(kernels), conv.out_channels
    if len(kernels) < out:
        raise LearnError(f"{name}: the markers give {len(kernels)} kernels ({n_markers} markers, {per}), "
                         f"fewer than out_channels {conv.out_channels}"
                         + (f" less complement_kernels {conv.complement_kernels}" if conv.complement_kernels
                            else "") + ": mark more, or lower out_channels")
    if len(kernels) > out:
        kernels = _reduce(kernels, out, conv.reduce, seed, name)
        rec.reduction = conv.reduce
    if conv.whiten:  # a kernel k on whitened patches is k·Z on the layer's own patches
        kernels = kernels @ zca
        if conv.center_patches:
            kernels = _center(kernels, conv.in_channels)
        kernels = unit_rows(kernels)
    if conv.complement_kernels:
        kernels = torch.cat([kernels, _complement(kernels, conv.complement_kernels, seed)])
    weight = kernels.reshape(conv.weight.shape).to(conv.weight.dtype)
    with torch.no_grad():
        if conv.fold_norm:
            per_in = scale.reshape(1, -1, 1, 1)
            conv.bias.copy_(-(weight * (mean32.reshape(1, -1, 1, 1) / per_in)).sum(dim=(1, 2, 3)))
            weight = weight / per_in
        conv.weight.copy_(weight)


def _random_conv(net, conv: FlimConv2d, chain, items, batch_size, seed: int, rec: LayerRecord,
                 cache=None) -> None:
    """The baseline: unit-norm Gaussian kernels (with ``fold_norm``, the same folding of the
    marker statistics as a learned layer)."""
    gen = torch.Generator().manual_seed(seed)
    kernels = unit_rows(torch.randn(conv.out_channels, conv.weight[0].numel(), generator=gen))
    weight = kernels.reshape(conv.weight.shape).to(conv.weight.dtype)
    rec.out_channels, rec.reduction = conv.out_channels, "random"
    with torch.no_grad():
        if conv.fold_norm:
            mean, std = _marker_stats(net, conv, chain, items, batch_size, rec, cache)
            per_in = (std + _EPS).to(torch.float32).reshape(1, -1, 1, 1)
            conv.bias.copy_(-(weight * (mean.to(torch.float32).reshape(1, -1, 1, 1) / per_in)).sum((1, 2, 3)))
            weight = weight / per_in
        conv.weight.copy_(weight)


def _conv_out_size(conv: nn.Conv2d, size: tuple[int, int]) -> tuple[int, int]:
    k, s, p, d = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.padding), _pair(conv.dilation)
    return tuple((size[a] + 2 * p[a] - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a in range(2))
