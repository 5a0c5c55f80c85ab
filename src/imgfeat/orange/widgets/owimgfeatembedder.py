"""The imgfeat Embedder widget: a table with image paths in, the table with vectors out."""

from __future__ import annotations

import os
from pathlib import Path

from AnyQt.QtCore import Qt
from AnyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)
from Orange.data import Table
from Orange.widgets import gui
from Orange.widgets.settings import Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin, TaskState
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from ..cache import VectorCache
from ..embed import EmbedResult, config_key, embed_paths, make_extractor
from ..models import model_choices
from ..tables import image_columns, image_paths, skipped_table, with_vectors

DEFAULT_LABEL = "(the pooling's default)"
OWN_LABEL = "(the model's own)"


def default_cache_path() -> Path:
    """``$IMGFEAT_ORANGE_CACHE``, else a file in Orange's cache folder."""
    if env := os.environ.get("IMGFEAT_ORANGE_CACHE"):
        return Path(env)
    from Orange.misc.environ import cache_dir

    return Path(cache_dir()) / "imgfeat" / "vectors.sqlite"


def run(paths: list[str | None], options: dict, cache: VectorCache, extractor,
        state: TaskState) -> EmbedResult:
    """The task run in a thread: the public API does the work, the state reports progress."""
    state.set_status("Embedding…")
    return embed_paths(paths, options, cache=cache, extractor=extractor,
                       progress=state.set_progress_value,
                       cancelled=state.is_interruption_requested)


class OWImgfeatEmbedder(OWWidget, ConcurrentWidgetMixin):
    name = "imgfeat Embedder"
    description = ("Image embeddings computed locally by imgfeat: any timm backbone, the "
                   "packaged offline weights, RADAM and other poolings, ae:/flim: models.")
    icon = "icons/imgfeat.svg"
    priority = 10
    keywords = "image embedding, embedding, image, imgfeat, timm, radam"

    want_main_area = False
    resizing_enabled = False

    class Inputs:
        images = Input("Images", Table)

    class Outputs:
        embeddings = Output("Embeddings", Table, default=True)
        skipped_images = Output("Skipped Images", Table)

    class Warning(OWWidget.Warning):
        no_image_column = Msg("The data have no column of image paths (a string meta).")
        images_skipped = Msg("{} image(s) skipped (see the Skipped Images output).")

    class Error(OWWidget.Error):
        bad_options = Msg("{}")
        failed = Msg("Embedding failed: {}")

    image_column: str = Setting("")
    model: str = Setting("tf_efficientnet_lite0")
    pretrained: bool = Setting(True)
    layers: str = Setting("")
    pool: str = Setting("avg")
    pool_args: dict = Setting({})  # pooling name -> {parameter: value} changed from its default
    img_size: int = Setting(0)  # 0: the model's own
    resize: str = Setting("")  # "": the model's own
    precision: str = Setting("auto")
    auto_apply: bool = Setting(True)

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        from imgfeat import list_poolings
        from imgfeat.config import RESIZE_MODES
        from imgfeat.precision import PRECISIONS

        self.data: Table | None = None
        self.columns: list = []
        self.cache = VectorCache(default_cache_path())
        self._extractor: tuple[str, object] | None = None  # (config key, fitted extractor)
        self.last_result: EmbedResult | None = None

        box = gui.vBox(self.controlArea, "Images")
        self.column_combo = gui.comboBox(box, self, "image_column", label="Image column:",
                                         orientation=Qt.Horizontal, sendSelectedValue=True,
                                         callback=self._changed)

        box = gui.vBox(self.controlArea, "Model")
        self.model_combo = QComboBox(editable=True, minimumContentsLength=28)
        self.model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        choices = list(dict.fromkeys([*model_choices(), self.model]))
        self.model_combo.addItems(choices)
        completer = QCompleter(choices, self.model_combo)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.model_combo.setCompleter(completer)
        self.model_combo.setCurrentText(self.model)
        self.model_combo.setToolTip("A packaged or cached model, any timm name (resnet50.a1_in1k), "
                                    "hf-hub:ORG/NAME, ae:RUN or flim:MODEL")
        self.model_combo.lineEdit().editingFinished.connect(self._model_edited)
        self.model_combo.activated.connect(self._model_edited)
        box.layout().addWidget(self.model_combo)
        row = gui.hBox(box)
        gui.button(row, self, "Autoencoder…", callback=lambda: self._browse("ae"),
                   tooltip="A FeXT run folder or checkpoint (ae:)")
        gui.button(row, self, "FLIM model…", callback=lambda: self._browse("flim"),
                   tooltip="A FLIM model file or folder (flim:)")
        gui.checkBox(box, self, "pretrained", "Pretrained weights (timm models)",
                     callback=self._changed)

        box = gui.vBox(self.controlArea, "Features")
        form = QFormLayout()
        box.layout().addLayout(form)
        self.layers_combo = QComboBox(editable=True)
        self.layers_combo.addItems([DEFAULT_LABEL, "pooled", "final", "all", "-1", "2,-1"])
        self.layers_combo.setCurrentText(self.layers or DEFAULT_LABEL)
        self.layers_combo.setToolTip("pooled, final, all, or stage indices like 2,-1")
        self.layers_combo.lineEdit().editingFinished.connect(self._layers_edited)
        self.layers_combo.activated.connect(self._layers_edited)
        form.addRow("Layers:", self.layers_combo)
        self.pool_combo = gui.comboBox(None, self, "pool", items=list_poolings(),
                                       sendSelectedValue=True, callback=self._pool_changed)
        form.addRow("Pooling:", self.pool_combo)
        self.pool_box = QWidget()
        self.pool_form = QFormLayout(self.pool_box)
        self.pool_form.setContentsMargins(12, 0, 0, 0)
        form.addRow(self.pool_box)
        self.size_spin = gui.spin(None, self, "img_size", 0, 2048, step=32,
                                  callback=self._changed, controlWidth=160)
        self.size_spin.setSpecialValueText(OWN_LABEL)
        form.addRow("Image size:", self.size_spin)
        self.resize_combo = gui.comboBox(None, self, "resize", items=["", *RESIZE_MODES],
                                         sendSelectedValue=True, callback=self._changed)
        self.resize_combo.setItemText(0, OWN_LABEL)
        form.addRow("Resize:", self.resize_combo)
        self.precision_combo = gui.comboBox(None, self, "precision", items=list(PRECISIONS),
                                            sendSelectedValue=True, callback=self._changed)
        form.addRow("Precision:", self.precision_combo)
        self._build_pool_form()

        self.info_label = gui.widgetLabel(self.controlArea, "No data on input.")
        self.info_label.setWordWrap(True)
        row = gui.hBox(self.buttonsArea)
        gui.button(row, self, "Clear cache", callback=self.clear_cache,
                   tooltip="Forget every vector this widget stored")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        row.layout().addWidget(self.cancel_button)
        gui.auto_apply(self.buttonsArea, self, "auto_apply")

    # --- settings -------------------------------------------------------------------------
    def options(self) -> dict:
        """The model options, as :class:`imgfeat.FeatureExtractor` takes them."""
        return {"model": self.model.strip(), "pretrained": self.pretrained,
                "layers": self.layers or None, "pool": self.pool,
                "pool_args": dict(self.pool_args.get(self.pool, {})),
                "img_size": self.img_size or None, "resize": self.resize or None,
                "precision": self.precision}

    def _changed(self) -> None:
        self.commit.deferred()

    def _model_edited(self, *_) -> None:
        text = self.model_combo.currentText().strip()
        if text and text != self.model:
            self.model = text
            self._changed()

    def _browse(self, kind: str) -> None:
        what = "an autoencoder" if kind == "ae" else "a FLIM"
        path, _ = QFileDialog.getOpenFileName(self, f"Choose {what} model", os.path.expanduser("~"),
                                              "Models (*.safetensors *.pt *.pth *.json);;All files (*)")
        if path:
            self.set_model(f"{kind}:{path}")

    def set_model(self, name: str) -> None:
        """Choose a model (what the combo and the file buttons do)."""
        if self.model_combo.findText(name) < 0:
            self.model_combo.addItem(name)
        self.model_combo.setCurrentText(name)
        self.model = name
        self._changed()

    def _layers_edited(self, *_) -> None:
        text = self.layers_combo.currentText().strip()
        value = "" if text in ("", DEFAULT_LABEL) else text
        if value != self.layers:
            self.layers = value
            self._changed()

    def _pool_changed(self) -> None:
        self._build_pool_form()
        self._changed()

    def _build_pool_form(self) -> None:
        """One control per parameter of the chosen pooling, read from its ``__init__``."""
        from imgfeat import create_pooling

        while self.pool_form.rowCount():
            self.pool_form.removeRow(0)
        pooling = create_pooling(self.pool)
        given = self.pool_args.get(self.pool, {})
        choices = getattr(pooling, "option_choices", {})
        for name, default in pooling.get_params().items():
            value = given.get(name, default)
            if isinstance(default, bool):
                w = QCheckBox(checked=bool(value))
                w.toggled.connect(lambda v, n=name: self._set_pool_arg(n, bool(v)))
            elif isinstance(default, int):
                w = QSpinBox(minimum=-10**6, maximum=10**6, value=int(value))
                w.valueChanged.connect(lambda v, n=name: self._set_pool_arg(n, int(v)))
            elif isinstance(default, float):
                w = QDoubleSpinBox(minimum=-1e6, maximum=1e6, decimals=6, value=float(value))
                w.valueChanged.connect(lambda v, n=name: self._set_pool_arg(n, float(v)))
            elif name in choices:
                w = QComboBox()
                w.addItems([str(c) for c in choices[name]])
                w.setCurrentText(str(value))
                w.textActivated.connect(lambda v, n=name: self._set_pool_arg(n, v))
            else:
                w = QLineEdit(str(value))
                w.editingFinished.connect(lambda w=w, n=name: self._set_pool_arg(n, w.text()))
            self.pool_form.addRow(f"{name}:", w)
        self.pool_box.setVisible(self.pool_form.rowCount() > 0)

    def _set_pool_arg(self, name: str, value) -> None:
        from imgfeat import create_pooling

        defaults = create_pooling(self.pool).get_params()
        args = dict(self.pool_args.get(self.pool, {}))
        if value == defaults.get(name):
            args.pop(name, None)
        else:
            args[name] = value
        self.pool_args = {**self.pool_args, self.pool: args}
        self._changed()

    # --- input and work -------------------------------------------------------------------
    @Inputs.images
    def set_data(self, data: Table | None) -> None:
        self.cancel()
        self.Warning.no_image_column.clear()
        self.data = data
        self.columns = image_columns(data.domain) if data is not None else []
        self.column_combo.clear()
        self.column_combo.addItems([v.name for v in self.columns])
        if self.columns and self.image_column not in [v.name for v in self.columns]:
            self.image_column = self.columns[0].name
        self.column_combo.setCurrentText(self.image_column)
        if data is not None and not self.columns:
            self.Warning.no_image_column()
        self.commit.now()

    @gui.deferred
    def commit(self) -> None:
        self.cancel()
        self.Error.clear()
        self.Warning.images_skipped.clear()
        if self.data is None or not self.columns:
            self.info_label.setText("No data on input." if self.data is None else
                                    "No image column.")
            self._send(None, None)
            return
        options = self.options()
        try:
            key = config_key(options)
        except Exception as exc:  # noqa: BLE001 - a bad option is one line on the widget
            self.Error.bad_options(str(exc).splitlines()[0])
            return
        if self._extractor is None or self._extractor[0] != key:
            self._extractor = (key, make_extractor(options))
        var = next(v for v in self.columns if v.name == self.image_column)
        paths = image_paths(self.data, var)
        self.cancel_button.setEnabled(True)
        self.info_label.setText(f"Embedding {len(paths)} images…")
        self.start(run, paths, options, self.cache, self._extractor[1])

    def on_done(self, result: EmbedResult) -> None:
        self.cancel_button.setEnabled(False)
        self.last_result = result
        assert self.data is not None
        emb = with_vectors(self.data, result.ok, result.vectors)
        skipped = skipped_table(self.data, result.ok, result.errors)
        if skipped is not None:
            self.Warning.images_skipped(len(skipped))
        self.info_label.setText(
            f"{int(result.ok.sum())} images embedded ({result.vectors.shape[1]} features): "
            f"{result.cached} from the cache, {result.computed} computed; "
            f"{result.seconds:.1f} s.")
        self._send(emb, skipped)

    def on_exception(self, ex: Exception) -> None:
        self.cancel_button.setEnabled(False)
        self.Error.failed(str(ex).splitlines()[0] if str(ex) else type(ex).__name__)
        self.info_label.setText("Embedding failed.")
        self._send(None, None)

    def on_partial_result(self, result) -> None:
        pass

    def cancel(self) -> None:
        """Stop the work in progress; the outputs stay as they were."""
        if self.task is not None:
            self.info_label.setText("Cancelled: the outputs are those of the previous run.")
        self.cancel_button.setEnabled(False)
        super().cancel()

    def clear_cache(self) -> None:
        self.cache.clear()

    def _send(self, emb: Table | None, skipped: Table | None) -> None:
        self.Outputs.embeddings.send(emb)
        self.Outputs.skipped_images.send(skipped)

    def onDeleteWidget(self) -> None:
        self.shutdown()
        super().onDeleteWidget()

    def send_report(self) -> None:
        self.report_items((("Model", self.model), ("Layers", self.layers or "default"),
                           ("Pooling", self.pool), ("Image size", self.img_size or "model's own"),
                           ("Precision", self.precision)))


if __name__ == "__main__":  # pragma: no cover
    from Orange.widgets.utils.widgetpreview import WidgetPreview

    WidgetPreview(OWImgfeatEmbedder).run()
