"""``imgfeat ae train|evaluate|report``: the FeXT autoencoder."""

from __future__ import annotations

import argparse
import sys

EXIT_INTERRUPTED = 130


def _add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per AEConfig field; unset options stay out of the namespace."""
    from ..autoencoder.config import config_fields

    group = p.add_argument_group("settings (override the config file; see AEConfig)")
    for name, default, kind, text, choices in config_fields():
        flag = "--" + name.replace("_", "-")
        help_line = f"{text} (default: {default})"
        if kind is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_line)
        else:
            group.add_argument(flag, dest=name, type=kind, choices=choices,
                               default=argparse.SUPPRESS, help=help_line)


def add_parsers(sub) -> None:
    ae = sub.add_parser("ae", help="train a convolutional autoencoder (FeXT) and evaluate it",
                        description="FeXT: a VGG16-shaped convolutional autoencoder trained on "
                                    "your images; extract with its encoder via "
                                    "'imgfeat extract DATA --model ae:RUN'.")
    aesub = ae.add_subparsers(dest="ae_command", metavar="ACTION", required=True,
                              help="train, evaluate or report (ACTION --help tells more)")

    t = aesub.add_parser("train", help="train an autoencoder on DATA",
                         description="Train on DATA (a folder, .csv list or .npy array) into "
                                     "the run folder RUN.")
    t.add_argument("data", help="a folder, a .csv list or a .npy array of images")
    t.add_argument("-o", "--output", required=True, metavar="RUN", help="the run folder")
    t.add_argument("--config", metavar="TOML", help="settings file (flat key = value)")
    t.add_argument("--resume", action="store_true",
                   help="continue RUN from its last finished epoch, with its saved config")
    _add_config_options(t)
    t.set_defaults(func=run_train)

    e = aesub.add_parser("evaluate", help="reconstruction quality of a run",
                         description="MSE, MAE, PSNR, SSIM and cosine similarity per image on "
                                     "the run's test split (or on DATA).")
    e.add_argument("run", help="a run folder (its best, else last checkpoint) or a checkpoint")
    e.add_argument("data", nargs="?", help="images to evaluate on instead of the test split")
    e.add_argument("-o", "--output", help="folder for the results (default: RUN/eval)")
    e.add_argument("--worst", type=int, default=0, help="list this many worst-reconstructed images")
    e.add_argument("--grid", type=int, default=16, help="images in reconstructions.png")
    e.add_argument("--batch-size", type=int, default=16, help="images per batch")
    e.add_argument("--workers", type=int, default=0, help="decode threads")
    e.add_argument("--device", default="cpu", help="cpu, cuda, mps")
    e.set_defaults(func=run_evaluate)

    r = aesub.add_parser("report", help="exploratory report of an image set",
                         description="Count, sizes, aspect ratios, modes, pixel statistics, "
                                     "histograms and unreadable files of DATA, as Markdown + PNG.")
    r.add_argument("data", help="a folder, a .csv list or a .npy array of images")
    r.add_argument("-o", "--output", required=True, help="folder for report.md and figures")
    r.add_argument("--max-side", type=int, default=256,
                   help="images are reduced to this longer side for pixel statistics")
    r.set_defaults(func=run_report)


def run_train(args: argparse.Namespace) -> int:
    from ..autoencoder import AEConfig, train
    from ..autoencoder.config import config_fields, read_toml

    overrides = {name: getattr(args, name) for name, *_ in config_fields() if hasattr(args, name)}
    from_file = read_toml(args.config) if args.config else {}
    cfg = AEConfig.from_dict(from_file, origin=args.config or "config").override(**overrides)
    changed = set(from_file) | set(overrides)
    result = train(args.data, args.output, cfg, resume=args.resume, changed=changed,
                   log=lambda msg: print(msg, file=sys.stderr))
    print(f"{result.stopped}: {result.epochs_done} epochs, best validation loss "
          f"{result.best_val_loss:.5f} at epoch {result.best_epoch}; {result.seconds:.0f} s, "
          f"{result.images_per_s:.1f} images/s; {result.n_failed} unreadable; run: {result.run}")
    if result.stopped == "interrupted":
        print(f"imgfeat: interrupted; epochs up to {result.epochs_done} are kept "
              f"(continue with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..autoencoder import evaluate

    res = evaluate(args.run, args.data, args.output, batch_size=args.batch_size,
                   worst=args.worst, grid=args.grid, workers=args.workers, device=args.device)
    print(f"{len(res.ids)} images ({res.n_failed} unreadable), checkpoint {res.checkpoint.name}")
    print(res.table())
    for rank, (item_id, mse) in enumerate(res.worst, 1):
        print(f"worst {rank}: {item_id} (mse {mse:.5f})")
    print(f"results: {res.output}/per_image.csv, summary.json, reconstructions.png")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from ..autoencoder import report

    rep = report(args.data, args.output, max_side=args.max_side)
    print(f"{rep.count} images, {rep.readable} readable, {len(rep.unreadable)} unreadable; "
          f"report: {rep.output}/report.md")
    return 0
