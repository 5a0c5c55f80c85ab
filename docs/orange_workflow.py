"""Make docs/imgfeat-embedder.ows (Import Images → imgfeat Embedder → Test & Score ← Logistic
Regression) and docs/orange-widget.png (the widget, drawn under Qt's offscreen platform).

    QT_QPA_PLATFORM=offscreen python docs/orange_workflow.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
DOCS = Path(__file__).resolve().parent


def make_workflow(path: Path) -> None:
    """The example workflow, laid out left to right; Import Images reads ``images/`` beside it."""
    from orangecanvas.scheme import SchemeLink, SchemeNode
    from orangewidget.utils.filedialogs import RecentPath
    from orangewidget.workflow.widgetsscheme import WidgetsScheme

    from imgfeat.orange.registry import widget_registry

    reg = widget_registry()
    scheme = WidgetsScheme()
    scheme.title = "imgfeat Embedder: images to a cross-validated classifier"
    scheme.description = ("Import Images reads a folder of images in one sub-folder per class; "
                          "imgfeat Embedder embeds them locally (EfficientNet-Lite0's packaged "
                          "weights, RADAM pooling); Test & Score cross-validates a logistic "
                          "regression on the vectors, the class taken from the sub-folders.")

    def node(qualified: str, title: str, x: int, y: int, **props) -> SchemeNode:
        n = SchemeNode(reg.widget(qualified), title=title, position=(x, y))
        n.properties = props
        scheme.add_node(n)
        return n

    images = node("orangecontrib.imageanalytics.widgets.owimageimport.OWImportImages",
                  "Import Images", 0, 100,
                  recent_paths=[RecentPath("images", "basedir", "images")])
    embedder = node("imgfeat.orange.widgets.owimgfeatembedder.OWImgfeatEmbedder",
                    "imgfeat Embedder", 180, 100, model="tf_efficientnet_lite0",
                    pool="radam", precision="fp32", auto_apply=True)
    learner = node("Orange.widgets.model.owlogisticregression.OWLogisticRegression",
                   "Logistic Regression", 180, 250)
    score = node("Orange.widgets.evaluate.owtestandscore.OWTestAndScore", "Test and Score",
                 360, 150)
    for src, out, sink, inp in ((images, "data", embedder, "images"),
                                (embedder, "embeddings", score, "train_data"),
                                (learner, "learner", score, "learner")):
        scheme.add_link(SchemeLink(src, _channel(src.output_channels(), out), sink,
                                   _channel(sink.input_channels(), inp)))
    with open(path, "wb") as f:
        scheme.save_to(f, pretty=True, pickle_fallback=True)
    scheme.clear()


def _channel(channels, name: str):
    return next(c for c in channels if c.id == name or c.name.lower() == name.lower())


def screenshot(path: Path) -> None:
    """The widget after embedding a few generated images, saved with ``grab()``."""
    import tempfile

    import numpy as np
    from AnyQt.QtWidgets import QApplication
    from Orange.data import DiscreteVariable, Domain, StringVariable, Table
    from PIL import Image

    from imgfeat.orange.widgets.owimgfeatembedder import OWImgfeatEmbedder

    app = QApplication.instance() or QApplication(sys.argv)
    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("IMGFEAT_ORANGE_CACHE", str(tmp / "cache.sqlite"))
    rng = np.random.default_rng(0)
    rows = []
    for c in range(2):
        (tmp / f"c{c}").mkdir()
        for k in range(4):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(
                tmp / f"c{c}" / f"{k}.png")
            rows.append((c, f"c{c}/{k}.png"))
    (tmp / "c1" / "broken.png").write_bytes(b"not an image")
    rows.append((1, "c1/broken.png"))
    image = StringVariable("image")
    image.attributes.update(type="image", origin=str(tmp))
    domain = Domain([], DiscreteVariable("category", values=["c0", "c1"]), [image])
    data = Table.from_numpy(domain, np.empty((len(rows), 0)), np.array([r[0] for r in rows], float),
                            np.array([[r[1]] for r in rows], dtype=object))
    w = OWImgfeatEmbedder()
    w.controls.pool.setCurrentText("radam")
    w.pool = "radam"
    w._build_pool_form()
    w.set_data(data)
    while w.task is not None:
        app.processEvents()
    w.show()
    app.processEvents()
    w.grab().save(str(path))
    w.onDeleteWidget()


if __name__ == "__main__":
    from AnyQt.QtWidgets import QApplication

    app = QApplication(sys.argv)
    make_workflow(DOCS / "imgfeat-embedder.ows")
    screenshot(DOCS / "orange-widget.png")
    print("wrote", DOCS / "imgfeat-embedder.ows", DOCS / "orange-widget.png")
