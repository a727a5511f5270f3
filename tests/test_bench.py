"""`rerank-eval bench` runs end to end and writes every field a reader needs (timings are not
checked here: the bench is a command, its numbers are reported, not asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import rerank_eval
from rerank_eval.bench import kendall_per_query, load_pairs
from rerank_eval.cli import main
from rerank_eval.models import hash_model_files

QUICKSTART = Path(rerank_eval.__file__).parent / "datasets" / "data" / "quickstart"


def test_bench_smoke_writes_speed_fidelity_and_hardware(tiny_cross_encoder, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--beir", str(QUICKSTART), "--depth", "3", "--queries", "2",
            "--model", str(tiny_cross_encoder), "--rounds", "1", "--batch-size", "4",
            "--max-length", "64", "--dtypes", "float32,bfloat16,int8", "--json", str(out),
            "--quiet"]
    rc = main(argv)
    assert rc == 0
    printed = capsys.readouterr().out
    assert "engine/fp32" in printed and "peer" in printed and "x peer" in printed
    report = json.loads(out.read_text())
    assert report["pairs"]["count"] == 6 and report["pairs"]["queries"] == 2
    assert {"cpu_model", "cores_available", "threads_used", "cpu_flags", "torch",
            "cpu_native_bf16"} <= set(
        report["hardware"])
    methods = report["methods"]
    assert {"peer", "ceiling/fp32", "engine/fp32", "ceiling/bf16", "engine/bf16", "engine/int8",
            "ceiling/int8"} <= set(methods)
    assert report["auto"]["method"] in methods
    for name, entry in methods.items():
        assert entry["pairs_per_s"] > 0 and len(entry["rounds_pairs_per_s"]) == 1
        assert {"max_abs_diff", "kendall_tau_mean", "kendall_tau_min", "ndcg10_diff"} <= set(
            entry["fidelity_vs_fp32"]), name
    assert methods["engine/fp32"]["x_ceiling"] > 0 and methods["engine/fp32"]["x_peer"] > 0
    # Same weights and pairs: the peer computes the same function as the fp32 engine.
    assert methods["peer"]["fidelity_vs_fp32"]["max_abs_diff"] < 1e-4
    assert methods["ceiling/fp32"]["fidelity_vs_fp32"]["max_abs_diff"] < 1e-4
    assert methods["engine/fp32"]["path"] == "cpu/float32/eager"
    assert methods["engine/int8"]["path"] == "cpu/int8-dynamic/eager"
    # Provenance: the command line, the model's content hash, versions and the commit.
    prov = report["provenance"]
    assert prov["argv"] == ["rerank-eval", *argv]
    assert prov["model"]["weights_sha256"] == hash_model_files(tiny_cross_encoder)
    assert set(prov["versions"]) == {"torch", "transformers", "sentence-transformers", "numpy",
                                     "rerank-eval"}
    assert prov["versions"]["rerank-eval"] == rerank_eval.__version__
    head = _git_head(Path(rerank_eval.__file__).parent)
    if head is None:  # an installed package, or no git: nothing to record
        assert prov["commit"] == "unknown" and prov["dirty"] == "unknown"
    else:
        assert prov["commit"] == head and isinstance(prov["dirty"], bool)
        assert head[:12] in printed


def _git_head(folder: Path) -> str | None:
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def test_query_subset_is_seeded_and_pairs_follow_the_first_stage():
    a = load_pairs(str(QUICKSTART), depth=4, queries=3, seed=1)
    b = load_pairs(str(QUICKSTART), depth=4, queries=3, seed=1)
    assert a.keys == b.keys and len(a.first_stage) == 3
    assert all(len(docs) == 4 for docs in a.first_stage.values())
    q, d = a.keys[0]
    assert a.pairs[0] == (a.dataset.queries[q], a.dataset.corpus[d])


def test_kendall_tau_per_query_sees_a_swap():
    ref = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"a": 1.0, "b": 2.0}}
    same = {"q1": {"a": 30.0, "b": 20.0, "c": 10.0}, "q2": {"a": 1.5, "b": 2.5}}
    swapped = {"q1": {"a": 2.0, "b": 3.0, "c": 1.0}, "q2": {"a": 1.0, "b": 2.0}}
    assert kendall_per_query(ref, same) == [1.0, 1.0]
    taus = kendall_per_query(ref, swapped)
    assert np.isclose(taus[0], 1 / 3) and taus[1] == 1.0
