"""``imgfeat flim annotate``: the web page for drawing FLIM markers (hooked into ``cli/flim.py``)."""

from __future__ import annotations

import argparse


def add_annotate_parser(flim_subparsers) -> argparse.ArgumentParser:
    """Add ``annotate`` to the ``imgfeat flim`` subcommands; returns its parser."""
    from ..flim.options import LABEL_BASES

    a = flim_subparsers.add_parser(
        "annotate", help="draw markers in a local web page",
        description="Serve a page on 127.0.0.1 for drawing FLIM markers on IMAGES (brush per class, "
                    "eraser, zoom/pan, stroke undo/redo); markers are saved as <stem>.txt in "
                    "--markers, and 'learn and preview' shows the maps a FLIM network learns from them.")
    a.add_argument("images", help="image folder or CSV list")
    a.add_argument("--markers", required=True,
                   help="folder of the marker files (created; existing ones are loaded)")
    a.add_argument("--labels", default="foreground,background",
                   help="class names, comma-separated (digits 1-9 pick them)")
    a.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port)")
    a.add_argument("--no-browser", action="store_true", help="print the URL only, do not open a browser")
    a.add_argument("--label-base", type=int, choices=LABEL_BASES, default=1,
                   help="first label in the marker files (1: the original FLIM)")
    a.add_argument("--budget", type=int, default=None,
                   help="warn about an image with more marker pixels than this (default: no budget)")
    a.add_argument("--mask-png", action="store_true",
                   help="also write <stem>.mask.png label masks (0 = unmarked, class k = k)")
    a.add_argument("-a", "--arch", default=None,
                   help="architecture JSON for 'learn and preview' (default: a small 2-layer network)")
    a.add_argument("--preview-size", type=int, default=256,
                   help="'learn and preview' shrinks images to this longer side (pixels)")
    a.set_defaults(func=run_annotate)
    return a


def run_annotate(args: argparse.Namespace) -> int:
    from ..flim.annotate.server import serve

    serve(args.images, args.markers, labels=args.labels, port=args.port, open_browser=not args.no_browser,
          label_base=args.label_base, budget=args.budget, mask_png=args.mask_png, architecture=args.arch,
          preview_side=args.preview_size)
    return 0
