"""``imgfeat flim train|validate|markers|outputs``: learn a feature extractor from markers."""

from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    from ..flim.options import COLOR_SPACES, HEADS, LABEL_BASES

    p = sub.add_parser("flim", help="FLIM: learn a CNN's filters from markers drawn on a few images",
                       description="Learn a convolutional feature extractor from user-drawn markers "
                                   "(no backpropagation), then use it as 'flim:MODEL' anywhere a "
                                   "model is taken.")
    fsub = p.add_subparsers(dest="flim_command", metavar="SUBCOMMAND", required=True,
                            help="what to do (SUBCOMMAND --help tells more)")

    t = fsub.add_parser("train", help="learn a FLIM model from images + markers",
                        description="Learn the filters of ARCH from the marked images of DATA "
                                    "(images with a <stem>.txt marker file) and write one model file.")
    _data_args(t)
    t.add_argument("-a", "--arch", required=True,
                   help="architecture JSON file, or 'texture' (shipped, for texture classes: 3 × "
                        "[m-norm, 3×3 conv, ReLU, max-pool], tuned on half of USPtex's classes)")
    t.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    t.add_argument("--markers", help="folder of marker files (default: beside the images)")
    t.add_argument("--label-base", type=int, choices=LABEL_BASES, default=None,
                   help="marker labels start at 0 or 1 (default: detected; warns when ambiguous)")
    t.add_argument("--per-label", action="store_true",
                   help="one marker per label instead of one per connected stroke")
    t.add_argument("--color", choices=COLOR_SPACES, default="lab", help="the network's input colour space")
    t.add_argument("--size", type=int, nargs="+", metavar="PX",
                   help="input size: one value (square) or H W (default: the first marked image's)")
    t.add_argument("--seed", type=int, default=0, help="seed of every k-means and of the classifier")
    t.add_argument("--random-filters", action="store_true",
                   help="baseline: random unit-norm kernels instead of learned ones (same seed)")
    t.add_argument("--svm", action="store_true", help="also train a linear SVM on the flattened features")
    t.add_argument("--svm-c", type=float, default=100.0, help="C of --svm (the original's)")
    t.add_argument("--classifier", action="store_true",
                   help="also train the architecture's JSON classifier by backpropagation")
    t.add_argument("--epochs", type=int, default=30, help="epochs of --classifier")
    t.add_argument("--lr", type=float, default=1e-3, help="learning rate of --classifier (Adam)")
    t.add_argument("--weight-decay", type=float, default=1e-3, help="weight decay of --classifier")
    t.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=run_train)

    v = fsub.add_parser("validate", help="score a FLIM model's classifier",
                        description="Accuracy, per-class precision/recall/F1, Cohen's kappa and a "
                                    "confusion matrix of MODEL's classifier on DATA.")
    v.add_argument("model", help="FLIM model file")
    _data_args(v)
    v.add_argument("--head", choices=HEADS, default="auto", help="which trained classifier scores")
    v.add_argument("-o", "--output", help="folder for validation.json and confusion.png")
    v.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    v.set_defaults(func=run_validate)

    m = fsub.add_parser("markers", help="make marker files for users who drew none",
                        description="Write <image stem>.txt marker files: a few strokes in a few "
                                    "images per class (from class labels), or strokes inside the "
                                    "regions of label masks (--masks).")
    _data_args(m)
    m.add_argument("-o", "--output", required=True,
                   help="folder for the marker files (and flim-markers.json, saying their label base)")
    m.add_argument("--masks", help="folder of <image stem>.png label masks (one value per class)")
    m.add_argument("--ignore", type=int, nargs="*", default=None, help="mask values that get no markers")
    m.add_argument("--images-per-class", type=int, default=2, help="images marked per class (labels)")
    m.add_argument("--strokes", type=int, default=3, help="strokes per image (labels) or per region (masks)")
    m.add_argument("--length", type=int, default=None,
                   help="stroke length in pixels (default: a quarter of the shorter side; 15 for masks)")
    m.add_argument("--thickness", type=int, default=3, help="stroke width in pixels")
    m.add_argument("--label-base", type=int, choices=LABEL_BASES, default=1,
                   help="write labels from 0 or 1 (1: the original FLIM)")
    m.add_argument("--seed", type=int, default=0, help="seed of the choice of images and strokes")
    m.set_defaults(func=run_markers)

    o = fsub.add_parser("outputs", help="save every layer's maps per image (npy)",
                        description="Write OUTPUT/<layer>/<image stem>.npy (float32, C×H×W) for each "
                                    "image of DATA.")
    o.add_argument("model", help="FLIM model file")
    _data_args(o)
    o.add_argument("-o", "--output", required=True, help="output folder")
    o.add_argument("--layers", nargs="+", help="layer names (default: every layer)")
    o.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    o.set_defaults(func=run_outputs)
    from .flim_annotate import add_annotate_parser

    add_annotate_parser(fsub)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="image folder, CSV list, or lids:FOLDER[,SPLIT] (<class>_<id>.png layout)")
    p.add_argument("--split", help="split file listing the image names to use (LIDS layout)")
    p.add_argument("--label-pattern", metavar="REGEX",
                   help=r"take labels from file names, e.g. '(\d+)C\d+' (first group)")


def run_train(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..flim.train import train_flim

    size = None
    if args.size:
        if len(args.size) > 2:
            raise ConfigError("--size takes one value (square) or two (H W)")
        size = args.size[0] if len(args.size) == 1 else tuple(args.size)
    r = train_flim(args.data, args.output, architecture=args.arch, markers=args.markers, split=args.split,
                   label_pattern=args.label_pattern, label_base=args.label_base, color=args.color,
                   size=size, per_label=args.per_label, seed=args.seed,
                   random_kernels=args.random_filters, svm=args.svm, svm_c=args.svm_c,
                   classifier=args.classifier, epochs=args.epochs, lr=args.lr,
                   weight_decay=args.weight_decay, batch_size=args.batch_size, progress=not args.quiet)
    for layer in r.learn.layers:
        extra = f", {layer.markers} markers -> {layer.kernels} kernels" if layer.kind == "FlimConv2d" else ""
        red = f" (reduced by {layer.reduction})" if layer.reduction else ""
        print(f"  {layer.name}: {layer.out_channels} channels from {layer.pixels} marker pixels{extra}"
              f"{red}, {layer.seconds:.2f} s")
    acc = "".join(f", train accuracy {name} {100 * v:.2f}%" for name, v in r.train_accuracy.items())
    print(f"learned from {r.marked_images} marked images (label base {r.label_base}) in "
          f"{r.learn.seconds:.2f} s{acc} -> {r.model_path}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from ..flim.validate import validate_flim

    report = validate_flim(args.model, args.data, split=args.split, label_pattern=args.label_pattern,
                           head=args.head, batch_size=args.batch_size, output=args.output)
    print(report.table())
    if args.output:
        print(f"results: {args.output}/validation.json, confusion.png")
    return 0


def run_markers(args: argparse.Namespace) -> int:
    from ..flim.automark import markers_from_labels, markers_from_masks
    from ..flim.data import open_data

    items = open_data(args.data, args.split, args.label_pattern).items
    if args.masks:
        files = markers_from_masks(items, args.masks, args.output, ignore=args.ignore,
                                   strokes_per_region=args.strokes, length=args.length or 15,
                                   thickness=args.thickness, label_base=args.label_base, seed=args.seed)
    else:
        files = markers_from_labels(items, args.output, images_per_class=args.images_per_class,
                                    strokes=args.strokes, length=args.length, thickness=args.thickness,
                                    label_base=args.label_base, seed=args.seed)
    print(f"wrote {len(files)} marker files (label base {args.label_base}) -> {args.output}")
    return 0


def run_outputs(args: argparse.Namespace) -> int:
    from ..flim.validate import save_layer_outputs

    layers = save_layer_outputs(args.model, args.data, args.output, layers=args.layers, split=args.split,
                                label_pattern=args.label_pattern, batch_size=args.batch_size)
    print(f"saved {', '.join(layers)} per image -> {args.output}")
    return 0
