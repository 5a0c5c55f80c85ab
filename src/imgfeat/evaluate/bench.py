"""``bench()``: a grid of models × poolings × classifiers on one texture benchmark, cached and
resumable, with one summary table over the whole grid."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from ..config import ModelConfig, options_doc, pick_model_options
from ..errors import StoreError
from ..storage import atomic_path, read_json
from .classify import classify


def _slug(*parts: str) -> str:
    return "_".join(re.sub(r"[^\w.\-]", "-", p) for p in parts)


def bench(dataset: str, data_path: str | os.PathLike, output: str | os.PathLike, *,
          models=("tf_efficientnet_lite0",), pools=("avg",), classifiers=("knn", "lda", "svm"),
          layers: str | None = None, pretrained: bool = True, weights: str | None = None,
          img_size: int | None = 224, resize: str | None = "squash", output_stride: int | None = None,
          precision: str = "auto", pool_args: dict | None = None, fold_bn: bool = True,
          protocol: str | None = None, folds: int = 10, repeats: int = 10, seed: int = 0,
          shots: int = 2, batch_size: int | None = None, progress: bool | None = None,
          n_jobs: int | None = None, download: bool = False, runtime: str = "auto",
          log=print) -> list[dict]:
    """Run the grid; features go to ``OUTPUT/feature_matrix/``, results to
    ``OUTPUT/classification/``, the table to ``OUTPUT/summary.md`` and ``summary.csv``.
    Finished cells are reused, so an interrupted bench resumes where it stopped.

    The model options are ``extract()``'s, with the texture papers' defaults: 224 px squashed
    (no crop), and ``layers`` unset meaning the final map for map poolings (global average of
    the last map, as the papers' GAP baseline) and the pooling's own stages for RADAM.
    ``pool_args`` go to every pooling that takes them. Every model, pooling and layer name is
    checked before any work starts. ``runtime`` is ``extract()``'s."""
    from ..runner import extract
    from ..sources.benchmarks import DEFAULT_PROTOCOL, open_benchmark

    options = pick_model_options(locals())  # every model option but the grid's models and pools
    ModelConfig.from_options(**options)  # checks them before any work
    cell_layers = check_grid(models, pools, layers, pool_args)
    out = Path(output)
    src = open_benchmark(dataset, data_path, download=download)
    protocol = protocol or DEFAULT_PROTOCOL[src.name]
    rows = []
    for model in models:
        for pool in pools:
            lay = cell_layers[pool]
            cell = _slug(src.name, model, lay or "stages", pool, str(img_size))
            feats = out / "feature_matrix" / cell
            try:
                extracted = extract(src, feats, **{**options, "model": model, "pool": pool,
                                                   "layers": lay,
                                                   "pool_args": args_for(pool, pool_args)},
                                    resume=(feats / "_imgfeat.json").is_file(),
                                    batch_size=batch_size, progress=progress,
                                    runtime=runtime)
            except StoreError as exc:
                raise StoreError(f"{feats}: {exc}") from None
            cls_dir = out / "classification" / f"{cell}_{protocol}"
            done = cls_dir / "summary.json"
            wanted = {"folds": folds, "repeats": repeats, "seed": seed, "shots": shots}
            cached = _cached(done, wanted, set(classifiers), read_json(feats / "_imgfeat.json"))
            if cached:
                results = read_json(done)["results"]
            else:
                report = classify(feats, classifiers=classifiers, protocol=protocol, folds=folds,
                                  repeats=repeats, seed=seed, shots=shots, n_jobs=n_jobs)
                report.write(cls_dir)
                results = [r.summary() for r in report.results]
            for r in results:
                if r["classifier"] in classifiers:
                    rows.append({"dataset": src.name, "model": model, "layers": lay or "stages",
                                 "pool": pool, "protocol": protocol, **r})
            if log:
                reused = [what for what, yes in (
                    ("features", extracted.shards_skipped == extracted.shards),
                    ("results", cached)) if yes]
                scores = ", ".join(f"{r['classifier']} {100 * r['accuracy']:.2f}%"
                                   for r in results if r["classifier"] in classifiers)
                log(f"{cell}: {scores}" + (f" ({' and '.join(reused)} cached)" if reused else ""))
    write_summary(out, rows)
    return rows


if bench.__doc__:  # the model options' help, from their one definition
    bench.__doc__ += options_doc(rename={"model": "models", "pool": "pools"},
                                 defaults={"img_size": 224, "resize": "squash"})


def _cached(done: Path, wanted: dict, classifiers: set[str], features_meta: dict) -> bool:
    """True when ``done`` holds results of these settings, classifiers and features."""
    if not done.is_file():
        return False
    old = read_json(done)
    settings = old.get("settings", {})
    made_from = (settings.get("features") or {}).get("config_hash")
    return (all(settings.get(k) == v for k, v in wanted.items())
            and made_from in (None, features_meta.get("config_hash"))
            and {r["classifier"] for r in old.get("results", [])} >= classifiers)


def args_for(pool: str, pool_args: dict | None) -> dict | None:
    """The options of ``pool_args`` that ``pool`` takes."""
    from ..pooling.registry import pooling_options

    if not pool_args:
        return None
    takes = {o["param"] for o in pooling_options().values() if pool in o["pools"]}
    return {k: v for k, v in pool_args.items() if k in takes} or None


def check_grid(models, pools, layers: str | None, pool_args: dict | None) -> dict:
    """Check every model, pooling and layer name before any work; returns the layers of each
    pooling's cells."""
    from ..backbones.registry import parse_model_name
    from ..errors import ConfigError
    from ..pooling import create_pooling

    for model in models:
        kind, location = parse_model_name(model)
        if kind == "timm" and ":" not in location:
            from ..backbones.timm import check_model_name

            check_model_name(location)
    used = set()
    cell_layers = {}
    for pool in pools:
        own = args_for(pool, pool_args) or {}
        used |= set(own)
        pooling = create_pooling(pool, **own)
        multi = getattr(pooling, "multi_layer", False)
        cell_layers[pool] = layers if layers is not None else (None if multi else "final")
    if pool_args and set(pool_args) - used:
        raise ConfigError(f"pooling option(s) {', '.join(sorted(set(pool_args) - used))} apply "
                          f"to none of the poolings {', '.join(pools)}")
    if layers is not None:
        for token in (t.strip() for t in str(layers).split(",")):
            if token not in ("pooled", "final", "all") and not token.lstrip("-").isdigit():
                raise ConfigError(f"bad layer {token!r}: use pooled, final, all, or stage "
                                  f"indices like 1,-1")
    return cell_layers


def write_summary(out: Path, rows: list[dict]) -> None:
    """The grid as Markdown (accuracy mean ± std, %) and as CSV (every metric)."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "summary.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| dataset | model | layers | pool | protocol | classifier | accuracy (%) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['layers']} | {r['pool']} | "
                     f"{r['protocol']} | {r['classifier']} | {100 * r['accuracy']:.2f} ± "
                     f"{100 * r['accuracy_std']:.2f} |")
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
