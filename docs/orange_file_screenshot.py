"""Take docs/orange-file.png: Orange's File widget on an imgfeat CSV, with no display.

    imgfeat demo                       # or any folder of images
    imgfeat extract imgfeat-demo/textures -o feats --format csv
    pip install PyQt6                  # a Qt binding for Orange's widgets
    QT_QPA_PLATFORM=offscreen python docs/orange_file_screenshot.py feats/features.csv docs/orange-file.png
"""

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyqt6")

from AnyQt.QtWidgets import QApplication, QLabel  # noqa: E402

app = QApplication([])

from Orange.widgets.data.owfile import OWFile  # noqa: E402


def main(path: str, png: str) -> None:
    w = OWFile()
    w.add_path(path)
    w.source = OWFile.LOCAL_FILE
    w.load_data()
    w.resize(620, 560)
    w.show()
    app.processEvents()
    for label in w.findChildren(QLabel):  # the "use CSV File Import" tip over the file box
        if "CSV File Import" in (label.text() or ""):
            label.parentWidget().hide()
    w.domain_editor.scrollToBottom()  # the last feature, the target, the metas
    for _ in range(20):
        app.processEvents()
    print(w.infolabel.text())
    w.grab().save(png)


if __name__ == "__main__":
    main(*sys.argv[1:3])
