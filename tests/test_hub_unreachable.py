"""A hub id that is neither cached nor reachable fails in seconds, before any scoring, with the
download command of the installed huggingface-hub: one request per hub (not one per
reranker), none with HF_HUB_OFFLINE set."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from huggingface_hub import constants
from rerank_eval import models
from rerank_eval.errors import InputError

MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"


@pytest.fixture
def silent_hub(monkeypatch, tmp_path):
    """A hub endpoint that accepts connections and never answers (a black hole), an empty
    hub cache, and no memory of earlier checks."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(models, "_hub_unreachable", {})
    yield accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def _fails_within(seconds: float, model: str = MODEL) -> str:
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        models.check_model_available(model, "rerankers[ce].model")
    assert time.perf_counter() - t0 < seconds
    return str(e.value)


def test_a_silent_hub_fails_once_in_seconds_then_at_once(silent_hub):
    message = _fails_within(models.HUB_CHECK_TIMEOUT_S + 5)
    assert models.HUB_CHECK_TIMEOUT_S <= 5
    assert message.startswith(f"rerankers[ce].model: model {MODEL!r}")
    assert f"hf download {MODEL}" in message and "huggingface-cli" not in message
    assert message.count("\n") == 0
    # A second reranker (another hub id): no second wait, the same reason.
    assert "could not be reached" in _fails_within(1.0, "BAAI/bge-reranker-base")
    assert len(silent_hub) == 1  # one request reached the hub


def test_hf_hub_offline_set_after_import_makes_no_request(silent_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE is set" in _fails_within(1.0)
    time.sleep(0.3)  # let the accept loop see a connection, if one was made
    assert silent_hub == []


def test_the_hint_follows_the_installed_huggingface_hub(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.30.2")
    assert models.download_hint("m/x") == "huggingface-cli download m/x"
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.2.0")
    assert models.download_hint("m/x") == "hf download m/x"
