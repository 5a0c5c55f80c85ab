"""2-D maps of features (PCA, t-SNE, UMAP) coloured by label."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..evaluate.classify import label_order
from ..storage import atomic_path
from ..usage import arg

#: the fewest images each projection can place (t-SNE needs a perplexity below the count)
MIN_POINTS = {"pca": 2, "tsne": 4, "umap": 5}


def embed_2d(X: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Project features to 2-D."""
    if method not in MIN_POINTS:
        raise ConfigError(f"unknown method {method!r}: use pca, tsne or umap")
    X = np.nan_to_num(np.asarray(X, dtype=np.float32))
    if X.ndim != 2 or len(X) < MIN_POINTS[method] or X.shape[1] < 2:
        raise ConfigError(f"{arg('method', method)} needs at least {MIN_POINTS[method]} images of "
                          f"2 or more values; these features are {' x '.join(map(str, X.shape))}")
    if method == "pca":  # the two leading principal axes, by SVD (no scikit-learn to import)
        centred = X - X.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return centred @ vt[:2].T
    if method == "tsne":
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        Xr = PCA(n_components=min(50, *X.shape), random_state=seed).fit_transform(X)
        return TSNE(n_components=2, random_state=seed,
                    perplexity=min(30.0, max(2.0, (len(X) - 1) / 3))).fit_transform(Xr)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ConfigError("--method umap needs umap-learn: pip install umap-learn") from None
        return umap.UMAP(n_neighbors=max(2, min(15, len(X) - 1)), random_state=seed,
                         n_jobs=1).fit_transform(X)
    raise ConfigError(f"unknown method {method!r}: use pca, tsne or umap")


def _load(features):
    from ..store import load_features, no_features_error

    X, y, ids, meta = load_features(features)
    if len(X) == 0:
        raise no_features_error(features, meta)
    return X, y, ids, meta


def plot_features(features, output: str | os.PathLike, method: str = "pca",
                  seed: int = 0) -> Path:
    """Write a PNG scatter of the features' 2-D map, one colour per label."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'imgfeat[viz]'") from None

    X, y, ids, meta = _load(features)
    xy = embed_2d(X, method, seed)
    labels = y.astype(str) if y is not None else np.array(["(no label)"] * len(X))
    classes = label_order(labels.tolist())
    fig, ax = plt.subplots(figsize=(8, 7))
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    for k, c in enumerate(classes):
        m = labels == c
        ax.scatter(xy[m, 0], xy[m, 1], s=14, color=cmap(k % cmap.N), label=c, alpha=0.8)
    if len(classes) <= 20:
        ax.legend(fontsize=8, markerscale=1.5, loc="best")
    ax.set_title(f"{meta.get('model', 'features')}: {method.upper()} of {X.shape[1]}-d vectors, "
                 f"{len(X)} images")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def plot_features_html(features, output: str | os.PathLike, method: str = "pca",
                       seed: int = 0) -> Path:
    """Write a self-contained interactive HTML map: one SVG point per image, coloured by
    label, with its id and label on hover; clicking a legend entry hides or shows a class."""
    import html

    X, y, ids, meta = _load(features)
    xy = embed_2d(X, method, seed)
    labels = y.astype(str).tolist() if y is not None else ["(no label)"] * len(X)
    classes = label_order(labels)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    pts = (xy - lo) / span * 560 + 20
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    color = {c: palette[k % len(palette)] for k, c in enumerate(classes)}
    circles = "\n".join(
        f'<circle cx="{px:.1f}" cy="{600 - py:.1f}" r="4" fill="{color[lab]}" '
        f'data-label="{html.escape(lab)}"><title>{html.escape(i)} ({html.escape(lab)})</title>'
        f"</circle>" for (px, py), lab, i in zip(pts, labels, ids, strict=True))
    legend = "\n".join(
        f'<li data-label="{html.escape(c)}"><span style="background:{color[c]}"></span>'
        f"{html.escape(c)} ({labels.count(c)})</li>" for c in classes)
    title = html.escape(f"{meta.get('model', 'features')}: {method.upper()} of "
                        f"{X.shape[1]}-d vectors, {len(X)} images")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em;display:flex;gap:1em}}
svg{{border:1px solid #ccc;background:#fff}} ul{{list-style:none;padding:0}}
li{{cursor:pointer;margin:2px 0}} li.off{{opacity:.35}}
li span{{display:inline-block;width:12px;height:12px;margin-right:6px}}
circle.off{{display:none}}</style></head>
<body><div><h3>{title}</h3>
<p>Hover a point for its image id; click a class in the legend to hide or show it.</p>
<svg id="map" width="600" height="600" viewBox="0 0 600 600">
{circles}
</svg></div><ul id="legend">
{legend}
</ul>
<script>
document.querySelectorAll('#legend li').forEach(li => li.addEventListener('click', () => {{
  li.classList.toggle('off');
  const off = li.classList.contains('off');
  document.querySelectorAll('circle').forEach(c => {{
    if (c.dataset.label === li.dataset.label) c.classList.toggle('off', off);
  }});
  document.title = document.querySelectorAll('circle:not(.off)').length + ' shown';
}}));
</script></body></html>
"""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
