"""The Orange add-on: the imgfeat Embedder widget under Orange's own widget test base.

Skipped where orange3 or a Qt binding is absent. Runs under the offscreen Qt platform."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("Orange", reason="orange3 is not installed (pip install 'imgfeat[orange]')")
try:
    import AnyQt.QtWidgets  # noqa: F401
except Exception:  # noqa: BLE001 - no Qt binding
    pytest.skip("no Qt binding for Orange (pip install 'imgfeat[orange]')", allow_module_level=True)

from Orange.data import ContinuousVariable, DiscreteVariable, Domain, StringVariable, Table  # noqa: E402
from Orange.widgets.tests import base  # noqa: E402 - base.WidgetTest: not collected here
from Orange.widgets.tests.utils import simulate  # noqa: E402
from PIL import Image  # noqa: E402

import imgfeat  # noqa: E402
from imgfeat.orange.cache import VectorCache  # noqa: E402
from imgfeat.orange.embed import EmbedCancelled, embed_paths  # noqa: E402
from imgfeat.orange.widgets.owimgfeatembedder import OWImgfeatEmbedder  # noqa: E402
from tests.conftest import TINY  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "imgfeat-embedder.ows"
#: the widget's settings for the tiny random-weight model of the other tests
SETTINGS = {"model": TINY["model"], "pretrained": False, "img_size": TINY["img_size"],
            "precision": "fp32", "pool": "avg"}


def make_images(root: Path, per_class: int = 6, classes: int = 3) -> list[Path]:
    """``classes`` sub-folders of ``per_class`` 40×40 PNGs, each class tinted its own colour."""
    rng = np.random.default_rng(0)
    paths = []
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            arr = rng.integers(0, 120, (40, 40, 3)).astype(np.uint8)
            arr[..., c] += 120
            p = root / f"class{c}" / f"img{k}.png"
            Image.fromarray(arr).save(p)
            paths.append(p)
    return paths


def image_table(root: Path, paths: list[Path]) -> Table:
    """A table as Import Images makes it: the class, and a ``type=image`` string meta holding
    paths relative to its ``origin`` folder."""
    image = StringVariable("image")
    image.attributes.update(type="image", origin=str(root))
    classes = sorted({p.parent.name for p in paths})
    cls = DiscreteVariable("category", values=classes)
    domain = Domain([], cls, [StringVariable("image name"), image])
    y = np.array([classes.index(p.parent.name) for p in paths], dtype=float)
    metas = np.array([[p.stem, p.relative_to(root).as_posix()] for p in paths], dtype=object)
    return Table.from_numpy(domain, np.empty((len(paths), 0)), y, metas)


class TestImgfeatEmbedder(base.WidgetTest):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.root = self.tmp / "images"
        self.paths = make_images(self.root)
        self.data = image_table(self.root, self.paths)
        self.cache_file = self.tmp / "cache.sqlite"
        os.environ["IMGFEAT_ORANGE_CACHE"] = str(self.cache_file)
        self.widget = self.create_widget(OWImgfeatEmbedder, stored_settings=dict(SETTINGS))

    def tearDown(self):
        self.widget.onDeleteWidget()
        os.environ.pop("IMGFEAT_ORANGE_CACHE", None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def embed(self, data: Table | None = None, widget=None) -> Table:
        w = widget or self.widget
        self.send_signal(w.Inputs.images, self.data if data is None else data, widget=w)
        self.wait_until_finished(w, timeout=60000)
        return self.get_output(w.Outputs.embeddings, widget=w)

    def test_vectors_equal_extract(self):
        out = self.embed()
        res = imgfeat.extract([str(p) for p in self.paths], self.tmp / "feats", model=TINY["model"],
                              pretrained=False, img_size=TINY["img_size"], precision="fp32",
                              progress=False)
        X, _, _, meta = imgfeat.load_features(res.output)
        self.assertEqual(len(out), len(self.paths))
        feats = out.domain.attributes
        self.assertEqual(len(feats), res.dim)
        self.assertTrue(all(isinstance(v, ContinuousVariable) for v in feats))
        self.assertEqual(out.domain.class_var.name, "category")  # the class is kept
        np.testing.assert_array_equal(out.Y, self.data.Y)
        by_path = {os.path.abspath(p): x for p, x in zip(meta["paths"], X, strict=True)}
        want = np.stack([by_path[os.path.abspath(p)] for p in self.paths])
        np.testing.assert_allclose(out.X, want, rtol=1e-4, atol=1e-5)
        self.assertIsNone(self.get_output(self.widget.Outputs.skipped_images))

    def test_corrupt_and_missing_images_are_skipped(self):
        bad = self.root / "class0" / "broken.png"
        bad.write_bytes(b"this is not a PNG")
        paths = [*self.paths, bad, self.root / "class1" / "gone.png"]
        out = self.embed(image_table(self.root, paths))
        skipped = self.get_output(self.widget.Outputs.skipped_images)
        self.assertEqual(len(out), len(self.paths))
        self.assertEqual(len(skipped), 2)
        self.assertEqual(list(skipped.get_column("image name")), ["broken", "gone"])
        errors = list(skipped.get_column("error"))
        self.assertIn("broken.png", errors[0])
        self.assertIn("no such file", errors[1])
        self.assertTrue(self.widget.Warning.images_skipped.is_shown())

    def test_changing_the_pooling_reembeds(self):
        avg = self.embed()
        simulate.combobox_activate_item(self.widget.controls.pool, "max")
        self.wait_until_finished(timeout=60000)
        mx = self.get_output(self.widget.Outputs.embeddings)
        self.assertEqual(self.widget.pool, "max")
        self.assertEqual(mx.X.shape, avg.X.shape)
        self.assertFalse(np.allclose(mx.X, avg.X))
        # a pooling's parameter is a control of its own, and changing it re-embeds too
        simulate.combobox_activate_item(self.widget.controls.pool, "gem")
        self.wait_until_finished(timeout=60000)
        gem3 = self.get_output(self.widget.Outputs.embeddings)
        spin = self.widget.pool_form.itemAt(0, self.widget.pool_form.ItemRole.FieldRole).widget()
        spin.setValue(1.0)
        self.wait_until_finished(timeout=60000)
        gem1 = self.get_output(self.widget.Outputs.embeddings)
        self.assertEqual(self.widget.pool_args, {"gem": {"p": 1.0}})
        self.assertFalse(np.allclose(gem1.X, gem3.X))

    def test_cancel_stops_the_work_and_keeps_the_previous_output(self):
        first = self.embed()
        self.widget.pool = "max"
        self.widget.commit.now()
        self.assertIsNotNone(self.widget.task)
        self.widget.cancel()
        self.assertIsNone(self.widget.task)
        time.sleep(1.5)  # the thread stops at its next batch
        self.process_events()
        self.assertIs(self.get_output(self.widget.Outputs.embeddings), first)
        cache = VectorCache(self.cache_file)
        self.assertLess(len(cache), 2 * len(self.paths))  # max was not computed for all images

    def test_embed_paths_cancelled_raises(self):
        with self.assertRaises(EmbedCancelled):
            embed_paths([str(p) for p in self.paths], {k: v for k, v in SETTINGS.items()},
                        cancelled=lambda: True)

    def test_rerun_reads_the_cache(self):
        first = self.embed()
        self.assertEqual(self.widget.last_result.computed, len(self.paths))
        other = self.create_widget(OWImgfeatEmbedder, stored_settings=dict(SETTINGS))
        again = self.embed(widget=other)
        self.assertEqual(other.last_result.computed, 0)
        self.assertEqual(other.last_result.cached, len(self.paths))
        np.testing.assert_array_equal(again.X, first.X)
        other.onDeleteWidget()
        # a changed file is embedded again
        Image.new("RGB", (40, 40), "white").save(self.paths[0])
        os.utime(self.paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))
        third = self.create_widget(OWImgfeatEmbedder, stored_settings=dict(SETTINGS))
        self.embed(widget=third)
        self.assertEqual(third.last_result.computed, 1)
        third.onDeleteWidget()

    def test_a_learner_cross_validates_on_the_output(self):
        from Orange.classification import LogisticRegressionLearner
        from Orange.evaluation import CA, CrossValidation

        out = self.embed()
        self.assertIsNotNone(out.domain.class_var)
        res = CrossValidation(k=3, random_state=0)(out, [LogisticRegressionLearner()])
        self.assertEqual(len(res.predicted[0]), len(out))
        self.assertGreater(CA(res)[0], 1 / 3)

    def test_a_string_column_of_paths_without_origin(self):
        paths = StringVariable("file")
        data = Table.from_numpy(Domain([], metas=[paths]), np.empty((3, 0)),
                                metas=np.array([[str(p)] for p in self.paths[:3]], dtype=object))
        out = self.embed(data)
        self.assertEqual(len(out), 3)
        self.assertIsNone(out.domain.class_var)

    def test_no_image_column_warns(self):
        data = Table.from_numpy(Domain([ContinuousVariable("x")]), np.zeros((2, 1)))
        self.send_signal(self.widget.Inputs.images, data)
        self.assertTrue(self.widget.Warning.no_image_column.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.embeddings))

    def test_a_bad_model_is_one_line_on_the_widget(self):
        self.widget.set_model("no_such_model_xyz")
        self.send_signal(self.widget.Inputs.images, self.data)
        self.wait_until_finished(timeout=60000)
        shown = self.widget.Error.bad_options.is_shown() or self.widget.Error.failed.is_shown()
        self.assertTrue(shown)
        self.assertIsNone(self.get_output(self.widget.Outputs.embeddings))


def test_entry_points_name_the_widgets():
    """pyproject.toml registers the add-on as Orange discovers add-ons, and the widget module is
    found in the category package it names."""
    import importlib

    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert importlib.import_module(eps["orange3.addon"]["imgfeat"]).__name__ == "imgfeat.orange"
    category = importlib.import_module(eps["orange.widgets"]["imgfeat"])
    assert category.NAME == "imgfeat"
    assert (Path(category.__file__).parent / category.ICON).is_file()
    assert "orange" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]


class TestWorkflowFile(base.GuiTest):
    """docs/imgfeat-embedder.ows runs headless: Import Images → imgfeat Embedder → Test and
    Score with a logistic regression, the class taken from the image folders (no step sets it)."""

    def test_the_workflow_runs(self):
        pytest.importorskip("orangecontrib.imageanalytics", reason="Image Analytics not installed")
        from AnyQt.QtTest import QTest
        from orangewidget.workflow.widgetsscheme import WidgetsScheme

        from imgfeat.orange.registry import widget_registry

        tmp = Path(tempfile.mkdtemp())
        os.environ["IMGFEAT_ORANGE_CACHE"] = str(tmp / "cache.sqlite")
        scheme = WidgetsScheme()
        try:
            make_images(tmp / "images")
            scheme.widget_manager.set_creation_policy(scheme.widget_manager.Immediate)
            with open(WORKFLOW, "rb") as f:
                scheme.load_from(f, registry=widget_registry())
            widgets = {n.title: scheme.widget_for_node(n) for n in scheme.nodes}
            self.assertEqual(set(widgets), {"Import Images", "imgfeat Embedder",
                                            "Logistic Regression", "Test and Score"})
            embedder = widgets["imgfeat Embedder"]
            self.assertEqual((embedder.model, embedder.pool), ("tf_efficientnet_lite0", "radam"))
            embedder.model, embedder.pretrained, embedder.img_size = TINY["model"], False, 64
            widgets["Import Images"].setCurrentPath(str(tmp / "images"))
            widgets["Import Images"].reload()
            score = widgets["Test and Score"]

            def done() -> bool:
                slots = list(score.learners.values())
                return bool(slots) and all(s.results is not None for s in slots)

            deadline = time.monotonic() + 120
            while not done() and time.monotonic() < deadline:
                QTest.qWait(100)
            self.assertTrue(done(), "Test and Score never got results")
            slot = next(iter(score.learners.values()))
            self.assertTrue(slot.results.success, slot.results)
            results = slot.results.value
            self.assertEqual(len(results.actual), 18)
            self.assertEqual(results.domain.class_var.name, "category")
            self.assertEqual(embedder.last_result.ok.sum(), 18)
        finally:
            scheme.clear()
            scheme.deleteLater()
            os.environ.pop("IMGFEAT_ORANGE_CACHE", None)
            shutil.rmtree(tmp, ignore_errors=True)


def test_the_cache_key_follows_the_configuration(tmp_path):
    """Same options, same key; any option that changes the vectors, or a model file rewritten in
    place, another key; a bad option is imgfeat's one-line error before any work."""
    from imgfeat.orange.embed import config_key

    assert config_key(SETTINGS) == config_key(dict(SETTINGS))
    assert config_key(SETTINGS) != config_key({**SETTINGS, "pool": "max"})
    assert config_key(SETTINGS) != config_key({**SETTINGS, "pool_args": {"p": 2.0}, "pool": "gem"})
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"1")
    before = config_key({**SETTINGS, "weights": str(weights)})
    weights.write_bytes(b"22")
    assert config_key({**SETTINGS, "weights": str(weights)}) != before
    with pytest.raises(imgfeat.ImgfeatError):
        config_key({**SETTINGS, "precision": "fp8"})
