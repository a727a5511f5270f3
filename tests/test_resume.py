"""Resumable runs: kill `rerank-eval run` mid-scoring (SIGINT or SIGKILL), run the same command
again, and it finishes from the cache with results identical to an uninterrupted run.

The run is a real subprocess of the real CLI. To kill it mid-way deterministically, a wrapper
makes each model call sleep after scoring, and the test kills it once the cache holds the first
chunk's scores but not all of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rerank_eval.results import strip_measurements
from rerank_eval.scoring.cache import count_scores
from synthetic import write_beir, write_config

EVAL_DIR = Path(__file__).resolve().parents[1] / "eval"

WRAPPER = """
import sys, time
from rerank_eval.rerankers.cross_encoder import CrossEncoder
_score = CrossEncoder.score
def slow_score(self, pairs):
    out = _score(self, pairs)
    time.sleep({delay})
    return out
CrossEncoder.score = slow_score
from rerank_eval.cli import main
sys.exit(main(sys.argv[1:]))
"""

QUERIES, DEPTH = 100, 30  # 3000 pairs: 3 chunks of score_shortlist's default 1024 pairs


def _start(tmp_path: Path, config: Path, workdir: Path, cache: Path, delay: float,
           native_bf16: str):
    wrapper = tmp_path / "slow_cli.py"
    wrapper.write_text(WRAPPER.format(delay=delay), encoding="utf-8")
    env = {**os.environ, "RERANK_EVAL_CACHE": str(cache), "PYTHONPATH": str(EVAL_DIR),
           "HF_HUB_OFFLINE": "1", "RERANK_EVAL_NATIVE_BF16": native_bf16}
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(wrapper), "run", str(config), "--out", "out",
                             "--quiet"], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal() -> None:
    """SIGINT at its default, as a shell prompt starts a command. A harness that runs pytest in
    the background of a non-interactive shell passes SIGINT down ignored (that, not the dtype,
    is why this test once waited 120 s on a bf16 machine); SIGTERM is never ignored that way."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(tmp_path: Path, config: Path, workdir: Path, cache: Path, native_bf16: str) -> dict:
    proc = _start(tmp_path, config, workdir, cache, delay=0.0, native_bf16=native_bf16)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads((workdir / "out" / "results.json").read_text(encoding="utf-8"))


def _comparable(results: dict) -> dict:
    """results.json without what legitimately differs between a resumed and a fresh run:
    timings and the cache counters."""
    results = strip_measurements(results)
    for entry in results["rerankers"]:
        for key in ("pairs_scored", "pairs_from_cache"):
            entry.pop(key)
    return results


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_cross_encoder):
    tmp = tmp_path_factory.mktemp("resume")
    data = write_beir(tmp / "synth", queries=QUERIES, docs=200, seed=3)
    config = write_config(tmp / "synth.yaml", data, tiny_cross_encoder, depth=DEPTH)
    references = {}
    for branch in ("0", "1"):  # dtype: auto forced to fp32, then to bf16 (tests/conftest.py)
        references[branch] = _run(tmp, config, tmp / f"reference-{branch}",
                                  tmp / f"reference-{branch}.sqlite", branch)
        total = references[branch]["rerankers"][0]["pairs_scored"]
        assert total == QUERIES * DEPTH  # the synthetic queries all get a full BM25 top-30
    return tmp, config, references


SIGINT_EXIT_S = 10.0  # Ctrl-C or SIGTERM stops a run within this many seconds


STOPS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


@pytest.mark.parametrize("sig, branch", [(signal.SIGINT, "1"), (signal.SIGTERM, "0"),
                                         (signal.SIGKILL, "0")],
                         ids=["SIGINT-bf16", "SIGTERM-fp32", "SIGKILL-fp32"])
def test_killed_run_resumes_from_the_cache_with_identical_results(setup, sig, branch):
    tmp, config, references = setup
    reference = references[branch]
    total = reference["rerankers"][0]["pairs_scored"]
    cache = tmp / f"cache-{sig.name}-{branch}.sqlite"
    workdir = tmp / f"killed-{sig.name}-{branch}"
    proc = _start(tmp, config, workdir, cache, delay=3.0, native_bf16=branch)
    deadline = time.monotonic() + 300
    while count_scores(cache) == 0:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no scores reached the cache"
        time.sleep(0.05)
    proc.send_signal(sig)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    exit_s = time.monotonic() - sent
    saved = count_scores(cache)
    assert 0 < saved < total  # killed mid-scoring, first chunk(s) kept
    if sig in STOPS:
        code, word = STOPS[sig]
        assert proc.returncode == code and word in err and "to resume" in err, err
        assert exit_s < SIGINT_EXIT_S, f"{sig.name} took {exit_s:.1f} s to stop the run"
    else:
        assert proc.returncode == -signal.SIGKILL

    resumed = _run(tmp, config, workdir, cache, branch)
    entry = resumed["rerankers"][0]
    assert entry["pairs_from_cache"] == saved
    assert entry["pairs_scored"] == total - saved
    assert _comparable(resumed) == _comparable(reference)
    for name in ("tiny.scores.tsv", f"tiny.depth{DEPTH}.trec", "first_stage.trec"):
        assert ((workdir / "out/runs" / name).read_bytes()
                == (tmp / f"reference-{branch}/out/runs" / name).read_bytes()), name
