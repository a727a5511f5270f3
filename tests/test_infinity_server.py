"""``kind: infinity`` against a real Infinity server (``infinity_emb v2``) on loopback serving a
checkpoint: its scores equal the local model's, and a run survives the server being killed and
restarted in the middle.

Infinity pins numpy < 2, so it is not installed into the project's environment: point
``RERANK_EVAL_INFINITY`` at an ``infinity_emb`` executable from its own virtual environment
(``python3 -m venv /tmp/inf && /tmp/inf/bin/pip install torch==2.13.0
'infinity-emb[server,torch]==0.0.78'``), or have ``infinity_emb`` on PATH. Otherwise these tests
skip, saying so. Start-up takes ~10 s on a quiet machine (minutes on a loaded one).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from rerank_eval.rerankers import build_reranker

EXECUTABLE = os.environ.get("RERANK_EVAL_INFINITY") or shutil.which("infinity_emb")
pytestmark = pytest.mark.skipif(
    EXECUTABLE is None, reason="no infinity_emb executable (set RERANK_EVAL_INFINITY, see the "
                               "module docstring)")
START_TIMEOUT_S = float(os.environ.get("RERANK_EVAL_INFINITY_START_S", "300"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class InfinityServer:
    """``infinity_emb v2`` serving one model on 127.0.0.1 under ``--url-prefix /v1``."""

    def __init__(self, model: Path, port: int, log: Path):
        self.model, self.port, self.log = model, port, log
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        env = {**os.environ, "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1",
               "HF_HUB_OFFLINE": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(EXECUTABLE), "v2", "--model-id", str(self.model), "--host", "127.0.0.1",
                 "--port", str(self.port), "--engine", "torch", "--device", "cpu",
                 "--url-prefix", "/v1", "--batch-size", "32"],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"infinity_emb exited with {self.proc.returncode}; see {self.log}")
            try:
                # /health stays at the root under --url-prefix
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        pytest.fail(f"infinity_emb did not answer within {START_TIMEOUT_S:g} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def infinity(tiny_cross_encoder, tmp_path_factory):
    server = InfinityServer(tiny_cross_encoder, _free_port(),
                            tmp_path_factory.mktemp("infinity") / "server.log")
    server.start()
    yield server
    server.stop()


PAIRS = [("what causes lung cancer", "Smoking is the leading cause of lung cancer."),
         ("what causes lung cancer", "The committee met on Tuesday."),
         ("boiling point of water", "Water boils at 100 degrees Celsius at sea level."),
         ("boiling point of water", "Jazz began in New Orleans.")]


def test_infinity_scores_equal_the_local_model(infinity, tiny_cross_encoder):
    local = build_reranker("local", "cross-encoder", {"model": str(tiny_cross_encoder),
                                                      "dtype": "float32"}, base_dir=Path.cwd())
    served = build_reranker("inf", "infinity", {"base_url": infinity.base_url},
                            base_dir=Path.cwd())
    try:
        np.testing.assert_allclose(served.score(PAIRS), local.score(PAIRS), rtol=0, atol=1e-4)
        usage = served.stats.extra["usage"]
        assert usage["characters"] > 0 and usage["requests"] == 2
    finally:
        served.close()
        local.close()


def test_a_run_survives_the_server_killed_and_restarted(infinity, tmp_path):
    from rerank_eval.config import parse_config
    from rerank_eval.results import read_results
    from rerank_eval.runner import run_experiment

    config = parse_config({
        "name": "restart", "dataset": {"bundled": "quickstart"},
        "first_stage": {"bm25": {}, "depth": 20}, "depths": [20], "metrics": ["ndcg@10"],
        "sanity_check": False, "latency": {"queries": 0}, "cache": {"enabled": False},
        "rerankers": [{"name": "inf", "kind": "infinity", "base_url": infinity.base_url,
                       "max_docs_per_request": 1, "concurrency": 1}]}, base_dir=tmp_path)

    # 36 queries x 20 candidates, one per request: 720 requests, seconds of work even on a quiet
    # machine (with 5 per request the run could end before the kill, and the test flaked).
    def restart() -> None:
        time.sleep(0.5)  # some requests answered first
        infinity.stop()
        time.sleep(2.0)  # down: connections refused
        infinity.start()

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        run_experiment(config, out_dir=tmp_path / "out")  # default retry budget
    finally:
        thread.join()
    entry = read_results(tmp_path / "out").reranker("inf")
    assert entry.usage is not None and entry.usage.retries >= 1
    assert entry.throughput is not None and entry.throughput.retry_wait_s
