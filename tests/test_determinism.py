"""The same config twice gives byte-identical results.json (apart from timing fields), runs and
per-query tables; a rerun served from the score cache differs only in the cache counters."""

from __future__ import annotations

import json
from pathlib import Path

from rerank_eval.cli import main
from rerank_eval.results import strip_measurements
from synthetic import write_beir, write_config


def _run(config: Path, workdir: Path, *extra: str) -> Path:
    workdir.mkdir()
    # A relative --out, so the paths written into results.json are the same for both runs.
    import os

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        assert main(["run", str(config), "--out", "out", "--quiet", *extra]) == 0
    finally:
        os.chdir(cwd)
    return workdir / "out"


def _canonical(out: Path) -> str:
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return json.dumps(strip_measurements(results), indent=2, sort_keys=False)


def test_same_config_twice_gives_identical_outputs(tmp_path, tiny_cross_encoder, monkeypatch):
    monkeypatch.setenv("RERANK_EVAL_CACHE", str(tmp_path / "cache.sqlite"))
    data = write_beir(tmp_path / "synth", queries=30, docs=100, seed=5)
    config = write_config(tmp_path / "c.yaml", data, tiny_cross_encoder, depth=10,
                          depths=[5, 10])
    a = _run(config, tmp_path / "a", "--no-cache")
    b = _run(config, tmp_path / "b", "--no-cache")
    assert _canonical(a) == _canonical(b)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        # results.json is compared above without measurements; these files show latency.
        if rel.name not in {"results.json", "report.md", "report.html", "latency_vs_depth.png",
                            "quality_vs_latency.png"}:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel

    # Fresh run into the cache, then a run served from it: only the counters differ.
    c = _run(config, tmp_path / "c")
    d = _run(config, tmp_path / "d")
    counters = {"pairs_scored", "pairs_from_cache", "cache_fingerprint"}
    for out, scored in ((a, 300), (c, 300), (d, 0)):
        entry = json.loads((out / "results.json").read_text())["rerankers"][0]
        assert entry["pairs_scored"] == scored
    strip = [json.loads(_canonical(o)) for o in (a, c, d)]
    for results in strip:
        results["config"]["cache"]["enabled"] = None
        for entry in results["rerankers"]:
            for key in counters:
                entry.pop(key, None)
    assert strip[0] == strip[1] == strip[2]
    assert (c / "per_query.csv").read_bytes() == (d / "per_query.csv").read_bytes()
