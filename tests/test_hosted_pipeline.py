"""Acceptance: a local cross-encoder and all four hosted kinds, pointed at a loopback server,
run end to end on a SciFact subset; usage and cost land in results.json, the API key nowhere."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import pytest
import yaml
from fake_rerank_server import FakeRerankServer, overlap_score
from rerank_eval.cli import main
from rerank_eval.config import parse_config
from rerank_eval.rerankers.hosted import HostedAPIError
from rerank_eval.runner import run_experiment

KEY = "sk-live-ACCEPTANCE-never-written-9f8e7d"
ENV = {"cohere": "COHERE_API_KEY", "jina": "JINA_API_KEY", "voyage": "VOYAGE_API_KEY",
       "mixedbread": "MXBAI_API_KEY"}
PRICES = {"cohere": {"per_1k_search_units": 2.0}, "jina": {"per_1m_tokens": 0.02},
          "voyage": {"per_1m_tokens": 0.05}, "mixedbread": {"per_1m_tokens": 0.15}}
CAP = 7  # depth 20 -> requests of 7, 7 and 6 candidates


@pytest.fixture
def server(monkeypatch):
    for env in ENV.values():
        monkeypatch.setenv(env, KEY)
    srv = FakeRerankServer(KEY, doc_cap=CAP, retry_after="0")
    yield srv
    srv.close()


def _raw_config(dataset: dict, cross_encoder: Path | None, server: FakeRerankServer,
                kinds: list[str], **hosted: object) -> dict:
    rerankers = [] if cross_encoder is None else [
        {"name": "local-ce", "kind": "cross-encoder", "model": str(cross_encoder),
         "max_length": 256}]
    rerankers += [{"name": f"{k}-api", "kind": k, "base_url": server.base_url(k),
                   "max_docs_per_request": CAP, "price": PRICES[k], "backoff_base_s": 0.01,
                   "backoff_max_s": 0.05, "concurrency": 3, **hosted} for k in kinds]
    return {"name": "hosted-acceptance",
            "dataset": dataset,
            "first_stage": {"bm25": {}, "depth": 20}, "rerankers": rerankers,
            "depths": [10, 20], "metrics": ["ndcg@10", "mrr@10", "recall@20"]}


def _no_file_contains(root: Path, secret: str) -> list[Path]:
    """Files under ``root``, and the score cache's files (which live outside it), that hold
    ``secret`` or any 6+ character part of its start or end."""
    cache = Path(os.environ["RERANK_EVAL_CACHE"])
    files = [p for p in root.rglob("*") if p.is_file()]
    files += [p for p in cache.parent.glob(cache.name + "*") if p.is_file()]
    parts = [secret[:n].encode() for n in range(6, len(secret) + 1)]
    parts += [secret[-n:].encode() for n in range(6, len(secret) + 1)]
    return [p for p in files if any(part in p.read_bytes() for part in parts)]


def test_the_key_scan_reads_the_score_cache(tmp_path, monkeypatch):
    """The scan above must see the cache file (not under the run's folder): a planted key is
    found there."""
    cache = tmp_path / "elsewhere" / "scores.sqlite"
    cache.parent.mkdir()
    cache.write_bytes(b"SQLite format 3\x00 ... " + KEY[:9].encode())
    monkeypatch.setenv("RERANK_EVAL_CACHE", str(cache))
    assert _no_file_contains(tmp_path / "out", KEY) == [cache]


def test_local_and_hosted_rerankers_end_to_end(tmp_path, scifact_dir, tiny_cross_encoder,
                                               server, caplog):
    server.fail_next("429", "500", "truncated")  # a bumpy network on the way
    dataset = {"beir": str(scifact_dir), "sample": {"queries": 10, "seed": 1}}
    # sanity: true opts the billed hosted rerankers into the probes (default: off for them).
    config = parse_config(_raw_config(dataset, tiny_cross_encoder, server, list(ENV),
                                      sanity=True), base_dir=tmp_path)
    caplog.set_level(logging.DEBUG, logger="rerank_eval")
    result = run_experiment(config, out_dir=tmp_path / "out")
    lines = [record.getMessage() for record in caplog.records]
    assert lines  # the run logged its steps

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    entries = {r["name"]: r for r in results["rerankers"]}
    assert list(entries) == ["local-ce"] + [f"{k}-api" for k in ENV]
    assert "usage" not in entries["local-ce"]
    for kind in ENV:
        entry = entries[f"{kind}-api"]
        usage, unit = entry["usage"], next(iter(PRICES[kind]))
        assert usage["documents"] == entry["pairs_scored"] + 12  # + the 6 sanity probe pairs
        if kind == "cohere":
            assert usage["search_units"] == usage["requests"]  # <= 100 docs: 1 unit each
            assert entry["cost_usd"] == pytest.approx(usage["search_units"] / 1e3 * 2.0)
        else:
            assert entry["cost_usd"] == pytest.approx(
                usage["total_tokens"] / 1e6 * PRICES[kind][unit])
        assert entry["request_latency_summary_ms"]["requests"] == usage["requests"]
        assert entry["sanity"]["inverted"] == 0  # word overlap orders the obvious probes
        # the scores are the server's, mapped back to the right documents
        with open(tmp_path / "out" / "runs" / f"{kind}-api.scores.tsv") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                expected = overlap_score(result.dataset.queries[row["query_id"]],
                                         result.dataset.corpus[row["doc_id"]])
                assert float(row["score"]) == expected
    assert sum(e["usage"]["retries"] for k, e in entries.items() if k != "local-ce") == 3
    metrics = {k: e["metrics"] for k, e in entries.items() if k != "local-ce"}
    assert len({json.dumps(m, sort_keys=True) for m in metrics.values()}) == 1
    assert max(len(r["body"].get("documents") or r["body"]["input"])
               for r in server.requests) == CAP
    assert _no_file_contains(tmp_path, KEY) == []
    assert not any(KEY in line for line in lines)


def test_a_failing_api_loses_nothing_finished_and_fails_in_one_line(tmp_path, server, capsys):
    raw = _raw_config({"bundled": "quickstart"}, None, server, ["jina", "cohere"],
                      max_retries=1)
    raw["metrics"] = ["ndcg@10", "mrr@10"]
    server.broken["cohere"] = "500"
    path = tmp_path / "hosted.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("rerank-eval: error: Cohere reranker 'cohere-api', request #")
    assert "gave up after 2 attempts over" in err and "last: HTTP 500" in err
    assert "raise max_retries, now 1" in err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["name"] for r in results["rerankers"]] == ["jina-api"]  # finished work kept
    assert set(results["rerankers"][0]["metrics"]) == {"10", "20"}
    assert (tmp_path / "out" / "runs" / "jina-api.scores.tsv").is_file()
    assert _no_file_contains(tmp_path, KEY) == [] and KEY not in err
    with pytest.raises(HostedAPIError):  # the Python API raises the same error
        run_experiment(parse_config(raw, base_dir=tmp_path), out_dir=tmp_path / "out2")
