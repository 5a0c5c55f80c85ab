"""Export an Extractor's backbone with its taps once, cache it, check it, and run it.

Two cache entries, both under :func:`~.cache.cache_dir`:

* ``models/<key>/``: ``model.onnx`` (the backbone, BatchNorm folded, its taps as outputs, any
  batch size) and ``probe.npz`` (the original network's maps of the probe image), keyed by the
  network (model, weights and their hash, taps, input size, output stride, folding) and the
  exporter's versions;
* ``starts/<key>.json``: what an Extractor needs besides the network (layout, data config,
  provenance) and the runtime the check chose, keyed by the whole model configuration, the
  model files' hashes and every version. A run that finds it never builds the network, so it
  does not import timm.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .._version import __version__
from ..errors import ConfigError, ImgfeatWarning
from . import AUTO_ORDER, installed_runtimes, runtime_version
from .cache import cache_dir, cache_key, publish_dir, read_json, retire_dir, write_json

__all__ = ["Check", "CompiledBackbone", "attach", "cached_start", "export_onnx", "max_relative_error"]

OPSET = 18
#: how the network is written out: part of an export's cache key, so that an export made the
#: old way is made again (2: SAME paddings fixed for the input size)
EXPORT_FORMAT = 2
#: relative error (max |runtime - torch| / max |torch|, per tap) a runtime may show on the probe
TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2, "fp16": 1e-2}


class CompiledBackbone:
    """An exported backbone loaded in a runtime: float32 NCHW tensors in, named maps out.
    Pickles with its model file's bytes, so that it loads wherever it is unpickled (a Ray node
    without the cache included): from its own file when that is there and the same, else from
    the bytes, written to the receiving machine's cache first."""

    def __init__(self, runtime: str, path: Path, names: list[str], threads: int,
                 precision: str):
        self.runtime, self.path, self.names = runtime, Path(path), list(names)
        self.threads, self.precision = threads, precision
        self.sha256 = _file_sha256(self.path)
        self._load()

    def _load(self) -> None:
        if self.runtime == "openvino":
            from .openvino import OpenVinoModel

            self.model = OpenVinoModel(self.path, self.threads, self.precision)
        else:
            from .onnx import OnnxRuntimeModel

            self.model = OnnxRuntimeModel(self.path, self.threads, self.precision)

    def with_threads(self, threads: int) -> CompiledBackbone:
        """This model loaded again to run ``threads`` threads (itself when it does already)."""
        if threads != self.threads:
            self.threads = threads
            self._load()
        return self

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "model"}
        state["blob"] = self.path.read_bytes()
        return state

    def __setstate__(self, state: dict) -> None:
        blob = state.pop("blob")
        self.__dict__.update(state)
        if not (self.path.is_file() and _file_sha256(self.path) == self.sha256):
            folder = cache_dir() / "models" / f"shipped-{self.sha256[:24]}"
            if not (folder / self.path.name).is_file():
                publish_dir(folder, lambda tmp: (tmp / self.path.name).write_bytes(blob))
            self.path = folder / self.path.name
        self._load()

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        arrays = self.model(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32))
        return {n: torch.from_numpy(a) for n, a in zip(self.names, arrays, strict=True)}


def _file_sha256(path: Path) -> str:
    from ..backbones.modelfile import file_sha256

    return file_sha256(path)


class _Taps(torch.nn.Module):
    """The backbone's tap dict as a tuple, in tap order (what an exporter can trace)."""

    def __init__(self, backbone: torch.nn.Module, names: list[str]):
        super().__init__()
        self.backbone, self.names = backbone, names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.backbone(x)
        return tuple(maps[n] for n in self.names)


def export_onnx(backbone: torch.nn.Module, names: list[str], input_size, path: Path) -> None:
    """Export ``backbone`` (its selected taps ``names`` as outputs, batch size free) to ONNX:
    the TorchScript exporter first (fast), then torch.export's. The network is exported in
    NCHW (a channels-last one is put back afterwards)."""
    channels_last = any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
                        and not p.is_contiguous() for p in backbone.parameters())
    try:
        _export_onnx(backbone, names, input_size, path)
    finally:
        if channels_last:
            backbone.to(memory_format=torch.channels_last)


def _export_onnx(backbone: torch.nn.Module, names: list[str], input_size, path: Path) -> None:
    from ..backbones.samepad import static_same_padding

    module = _Taps(backbone.to(memory_format=torch.contiguous_format), names).eval()
    _, h, w = input_size
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1))
    errors = []
    for dynamo in (False, True):
        try:
            with warnings.catch_warnings(), torch.no_grad(), static_same_padding(module, x[:1]):
                warnings.simplefilter("ignore")
                kwargs = ({"dynamic_shapes": ({0: torch.export.Dim("batch")},), "verbose": False}
                          if dynamo else
                          {"dynamic_axes": {"x": {0: "batch"}, **{n: {0: "batch"} for n in names}}})
                torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=names,
                                  opset_version=OPSET, dynamo=dynamo, **kwargs)
            return
        except Exception as exc:  # noqa: BLE001 - any exporter failure: try the next, then say
            errors.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
                          if str(exc).strip() else type(exc).__name__)
    raise RuntimeError(errors[-1])


def max_relative_error(ref: dict[str, np.ndarray], out: dict[str, torch.Tensor]) -> float:
    """The largest, over taps and rows, of max |out - ref| / max |ref| (rows of ``out`` may
    repeat the one probe image of ``ref``)."""
    worst = 0.0
    for name, a in ref.items():
        b = out[name].float().numpy()
        if b.shape[1:] != a.shape[1:]:
            return float("inf")
        diff = float(np.abs(b - a).max())
        worst = max(worst, diff / (float(np.abs(a).max()) + 1e-12))
    return worst


def _versions(runtime: str | None = None) -> dict:
    out = {"imgfeat": __version__, "torch": torch.__version__, "onnx": runtime_version("onnx"),
           "timm": runtime_version("timm")}
    for name in AUTO_ORDER if runtime is None else [runtime]:
        out[name] = runtime_version(name)
    return out


def _fingerprint(path: str) -> str | None:
    """SHA-256 over a model file, or over the files of a model folder; None when neither."""
    p = Path(path)
    if p.is_file():
        return _file_sha256(p)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return hashlib.sha256("".join(f"{f.relative_to(p)}:{_file_sha256(f)};"
                                      for f in files).encode()).hexdigest()
    return None


def _start_key(extractor, runtime: str) -> str | None:
    """The key of a cached start, or None when the model cannot be named without building it
    (a hub model of timm's ``hf-hub:`` scheme)."""
    cfg = extractor.cfg
    files = {}
    if ":" in cfg.model:
        scheme, _, location = cfg.model.partition(":")
        if scheme == "hf-hub":
            return None
        files["model"] = _fingerprint(location)
    if cfg.weights and cfg.weights != "packaged":
        files["weights"] = _fingerprint(cfg.weights)
    # the export format and how auto measures: a start chosen from an older export, or
    # measured another way, is made again
    return cache_key({"config": dataclasses.asdict(cfg), "precision": extractor.precision,
                      "runtime": runtime, "files": files, "versions": _versions(),
                      "format": EXPORT_FORMAT,
                      "measure": [SPEED_BATCH, SPEED_WARMUP, SPEED_ROUNDS]})


def _model_dir(extractor) -> Path:
    cfg = extractor.cfg
    key = cache_key({
        "model": cfg.model, "network": extractor.description, "taps": extractor.layers.names,
        "input_size": list(extractor.data_config["input_size"]), "img_size": cfg.img_size,
        "output_stride": cfg.output_stride, "folded": extractor.folded_bn,
        "edge_padded": extractor.edge_padded, "opset": OPSET, "format": EXPORT_FORMAT,
        "torch": torch.__version__, "onnx": runtime_version("onnx")})
    return cache_dir() / "models" / key


def _sample(maps: dict[str, np.ndarray], n: int = 256) -> dict[str, list[float]]:
    """A few values of each probe map, evenly spread: enough to tell one network from another
    in a cached fallback without storing the maps."""
    return {k: np.asarray(a, np.float32).reshape(-1)[:: max(1, a.size // n)][:n].tolist()
            for k, a in maps.items()}


def _same_network(sample: dict | None, ref: dict[str, np.ndarray], precision: str) -> bool:
    """Whether ``ref`` (this network's probe maps) matches a stored :func:`_sample`."""
    if not sample or sorted(sample) != sorted(ref):
        return False
    now = _sample(ref)
    return all(len(now[k]) == len(sample[k]) and
               np.abs(np.subtract(now[k], sample[k])).max(initial=0.0)
               <= TOLERANCE[precision] * (np.abs(now[k]).max(initial=0.0) + 1e-12)
               for k in now)


def _transient(exc: BaseException) -> bool:
    """Failures that say nothing of the model (disk, memory, files): not remembered."""
    return isinstance(exc, (OSError, MemoryError))


def _probe_file_matches(folder: Path, ref: dict[str, np.ndarray], precision: str) -> bool:
    """Whether a cached export was made from a network whose probe maps equal ``ref``."""
    try:
        with np.load(folder / "probe.npz") as npz:
            old = {k: npz[k] for k in npz.files}
    except (OSError, ValueError):
        return False
    return sorted(old) == sorted(ref) and all(old[k].shape == ref[k].shape for k in ref) and \
        max_relative_error(old, {k: torch.from_numpy(v) for k, v in ref.items()}) \
        <= TOLERANCE[precision]


def _candidates(runtime: str, precision: str) -> list[str]:
    if runtime != "auto":
        return [runtime]
    if precision != "fp32":  # bf16/fp16 on another runtime only when asked for by name
        return []
    return [r for r in AUTO_ORDER if r in installed_runtimes()]


class Check(NamedTuple):
    """A runtime loaded and checked on the probe: ``compiled`` (None when it failed), its
    relative error on the probe image alone, why it failed and whether that cause is
    transient (disk, memory: not remembered)."""

    compiled: CompiledBackbone | None
    error: float | None
    why: str = ""
    transient: bool = False


def _check(name: str, folder: Path, names: list[str], probe: torch.Tensor,
           ref: dict[str, np.ndarray], threads: int, precision: str) -> Check:
    """The runtime ``name`` loaded and checked on the probe, alone and in a batch of three."""
    try:
        compiled = CompiledBackbone(name, folder / "model.onnx", names, threads, precision)
        alone = max_relative_error(ref, compiled(probe))
        err = max(alone, max_relative_error(ref, compiled(probe.repeat(3, 1, 1, 1))))
    except ConfigError:  # a precision the runtime does not run: the user's to change
        raise
    except Exception as exc:  # noqa: BLE001 - a runtime that cannot run it is not used
        return Check(None, None, f"{name} cannot run it ({type(exc).__name__}: "
                     f"{str(exc)[:160]})", _transient(exc))
    if err <= TOLERANCE[precision]:
        return Check(compiled, alone)
    return Check(None, None, f"{name} differs from torch by {err:.1e} (relative) on the probe")


def attach(extractor, probe: torch.Tensor, maps: dict[str, torch.Tensor], runtime: str,
           threads: int) -> tuple[str, CompiledBackbone | None, float | None]:
    """Export the extractor's (built) backbone once and return (runtime, compiled, probe
    error): the first runtime of ``runtime`` (``auto``: :data:`~imgfeat.runtimes.AUTO_ORDER`)
    whose maps of the probe equal the original network's (``auto``: of those, and torch, the
    fastest measured on a batch of the probe); ``torch`` with one warning when the export fails
    or no runtime passes. The choice is cached for the next start; a fallback to
    torch only when its cause is the model's (an exporter or runtime that cannot take it, or
    maps that differ), and only for a network whose probe maps are the ones it was found on."""
    candidates = _candidates(runtime, extractor.precision)
    if not candidates:
        return "torch", None, None
    names = extractor.layers.names
    ref = {n: maps[n].float().cpu().numpy() for n in names}
    failed = getattr(extractor, "_export_failed", None)  # a cached fallback of this config
    if failed and _same_network(failed.get("sample"), ref, extractor.precision):
        extractor.runtime_speeds = failed.get("speeds") or {}
        if not failed.get("measured"):  # measured slower than torch: no warning, just torch
            warnings.warn(f"runtime {runtime}: {failed['why']}; running torch (remembered: "
                          f"delete {cache_dir()} to try again)", ImgfeatWarning, stacklevel=3)
        return "torch", None, None
    folder, why, remember = _export_once(extractor, names, ref)
    chosen, best, speeds = "torch", Check(None, None), {}
    if not why:
        reasons, passed = [], {}
        for name in candidates:
            check = _check(name, folder, names, probe, ref, threads, extractor.precision)
            if check.compiled is None:
                reasons.append(check.why)
                remember = remember and not check.transient
                continue
            passed[name] = check
            if runtime != "auto":
                break
        why = "; ".join(reasons)
        if runtime == "auto" and passed:  # the fastest of torch and those that passed
            speeds = measure_speeds(extractor, {k: c.compiled for k, c in passed.items()},
                                    probe)
            fastest = max(speeds, key=speeds.get)
            passed = {fastest: passed[fastest]} if fastest != "torch" else {}
            if not passed:
                why = "torch measured fastest (" + ", ".join(
                    f"{k} {v:.1f} img/s" for k, v in speeds.items()) + ")"
        if passed:
            chosen, best = next(iter(passed.items()))
    extractor.runtime_speeds = speeds
    measured = chosen == "torch" and bool(speeds)
    if chosen == "torch" and not measured:
        warnings.warn(f"runtime {runtime}: {why}; running torch", ImgfeatWarning, stacklevel=3)
    start = _start_key(extractor, runtime)
    if start is not None and (chosen != "torch" or remember):
        write_json(cache_dir() / "starts" / f"{start}.json",
                   {**_manifest(extractor, chosen, folder, why, _sample(ref)),
                    "speeds": speeds, "measured": measured})
    return chosen, best.compiled, best.error


def _export_once(extractor, names: list[str], ref: dict[str, np.ndarray]
                 ) -> tuple[Path, str, bool]:
    """The cache folder of the extractor's export, made when missing (or made again when it
    holds another network's export under the same name): (folder, why the export failed or
    "", whether that failure may be remembered)."""
    folder = _model_dir(extractor)
    if (folder / "model.onnx").is_file() and not _probe_file_matches(folder, ref,
                                                                     extractor.precision):
        retire_dir(folder)  # exported from another network under the same name: export again
    if (folder / "model.onnx").is_file():
        return folder, "", True

    def fill(tmp: Path) -> None:
        export_onnx(extractor.backbone, names, extractor.data_config["input_size"],
                    tmp / "model.onnx")
        np.savez(tmp / "probe.npz", **ref)

    try:
        publish_dir(folder, fill)
    except Exception as exc:  # noqa: BLE001 - any export failure: torch runs it
        return folder, f"cannot export {extractor.cfg.model} ({exc})", not _transient(exc)
    return folder, "", True


#: images per timed batch, warm-up batches, and timed rounds (each runtime once per round)
#: when ``auto`` measures
SPEED_BATCH, SPEED_WARMUP, SPEED_ROUNDS = 8, 2, 3


def measure_speeds(extractor, compiled: dict[str, CompiledBackbone], probe: torch.Tensor
                   ) -> dict[str, float]:
    """Images/s of the torch network and of each runtime in ``compiled`` on a batch of the
    probe: what ``auto`` picks by. Each is warmed up (:data:`SPEED_WARMUP` batches), then
    timed in :data:`SPEED_ROUNDS` interleaved rounds, its best round counting: a moment's
    load on the machine (a just-compiled runtime's threads settling) slows one round, not the
    choice."""
    import time

    x = probe.repeat(SPEED_BATCH, 1, 1, 1)
    xt = x.contiguous(memory_format=torch.channels_last) if extractor.channels_last else x

    def torch_net(_: torch.Tensor) -> object:
        with torch.inference_mode():
            return extractor.backbone(xt)

    nets = {"torch": torch_net, **compiled}
    for fn in nets.values():
        for _ in range(SPEED_WARMUP):
            fn(x)
    best = dict.fromkeys(nets, float("inf"))
    for _ in range(SPEED_ROUNDS):
        for name, fn in nets.items():
            t0 = time.perf_counter()
            fn(x)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: SPEED_BATCH / seconds for name, seconds in best.items()}


def _manifest(extractor, chosen: str, folder: Path, why: str, sample: dict) -> dict:
    return {"runtime": chosen, "why": why, "model_dir": folder.name, "sample": sample,
            "weights": extractor.weights.to_dict(), "description": extractor.description,
            "output_stride": extractor.output_stride, "architecture": extractor.arch,
            "layer_spec": extractor.layer_spec,
            "taps": [dataclasses.asdict(t) for t in extractor.layers.taps],
            "data_config": {k: list(v) if isinstance(v, tuple) else v
                            for k, v in extractor.data_config.items()},
            "layout": extractor.layout, "folded_bn": extractor.folded_bn,
            "edge_padded": extractor.edge_padded}


def cached_start(extractor, runtime: str, threads: int) -> dict | None:
    """The cached start of this configuration with its compiled backbone loaded and checked
    again on the probe (``compiled``, ``probe_error`` added), or None: then the network is
    built. A cached fallback to torch returns None too, after its one warning line, and skips
    exporting again."""
    start = _start_key(extractor, runtime)
    if start is None or not _candidates(runtime, extractor.precision):
        return None
    manifest = read_json(cache_dir() / "starts" / f"{start}.json")
    if manifest is None:
        return None
    if manifest["runtime"] == "torch":
        extractor._export_failed = {"why": manifest.get("why") or "cached",
                                     "sample": manifest.get("sample"),
                                     "measured": manifest.get("measured", False),
                                     "speeds": manifest.get("speeds")}
        return None
    folder = cache_dir() / "models" / manifest["model_dir"]
    try:
        with np.load(folder / "probe.npz") as npz:
            ref = {k: npz[k] for k in npz.files}
    except OSError:
        return None
    names = [t["name"] for t in manifest["taps"]]
    _, h, w = manifest["data_config"]["input_size"]
    probe = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    check = _check(manifest["runtime"], folder, names, probe, ref, threads,
                   extractor.precision)
    if check.compiled is None:
        return None
    extractor.runtime_speeds = manifest.get("speeds") or {}
    return {**manifest, "compiled": check.compiled, "probe_error": check.error}


def clear_cache() -> None:  # pragma: no cover - a helper for benchmarks
    """Remove every cached export and start."""
    import shutil

    shutil.rmtree(cache_dir(), ignore_errors=True)
