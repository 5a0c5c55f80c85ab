"""Orange's widget registry for loading workflows outside the canvas (tests, scripts)."""

from __future__ import annotations

from importlib.metadata import EntryPoint

__all__ = ["WIDGETS_PACKAGE", "widget_registry"]

#: the package Orange's ``orange.widgets`` entry point names for this add-on
WIDGETS_PACKAGE = "imgfeat.orange.widgets"


def widget_registry():
    """Every installed add-on's widgets, and this package's category also when it runs from a
    checkout whose entry points are not installed (``PYTHONPATH=src``)."""
    from Orange.canvas.config import Config
    from orangecanvas.registry import WidgetRegistry

    discovery = Config.widget_discovery(WidgetRegistry())
    eps = list(Config.widgets_entry_points())
    if not any(ep.value == WIDGETS_PACKAGE for ep in eps):
        eps.append(EntryPoint("imgfeat", WIDGETS_PACKAGE, "orange.widgets"))
    discovery.run(eps)
    return discovery.registry
