"""A run writes cost measurements into results.json and a self-contained report beside it;
`rerank-eval report` merges results from several hardware setups side by side."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from rerank_eval.cli import main
from rerank_eval.config import parse_config
from rerank_eval.models import resolve_dtype
from rerank_eval.runner import run_experiment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tiny_cross_encoder, tmp_path_factory) -> tuple[Path, object]:
    raw = {
        "name": "tiny-report",
        "dataset": {"bundled": "quickstart", "split": "test"},
        "first_stage": {"bm25": {}, "depth": 20},
        "rerankers": [{"name": "tiny-ce", "kind": "cross-encoder",
                       "model": str(tiny_cross_encoder), "max_length": 128}],
        "depths": [5, 10, 20],
        "metrics": ["ndcg@10", "recall@20"],
        "relevance_threshold": 2,
        "sanity_check": False,
        "latency": {"queries": 4, "warmup": 1},
        "recommendation": {"output_k": [3, 5, 10]},
    }
    out = tmp_path_factory.mktemp("tiny-report")
    result = run_experiment(parse_config(raw, base_dir=out), out_dir=out)
    return out, result


def test_results_json_carries_hardware_latency_throughput_and_recommendation(tiny_run):
    out, result = tiny_run
    data = json.loads((out / "results.json").read_text())
    assert data["hardware"]["id"].startswith("hw-")
    assert data["hardware"]["threads_used"] >= 1
    rr = data["rerankers"][0]
    assert set(rr["latency_ms"]) == {"5", "10", "20"}
    for stats in rr["latency_ms"].values():
        assert stats["queries"] == 4
        assert 0 < stats["p50"] <= stats["p95"] <= stats["p99"]
    assert rr["latency_setup"]["score_cache"].startswith("bypassed")
    assert rr["throughput"]["pairs_per_s"] > 0 and rr["throughput"]["threads"] >= 1
    # What dtype: auto is on this CPU is the engine's decision (tests/test_dtype_branches.py
    # forces both branches), not an assumption about the machine.
    auto = str(resolve_dtype("auto", torch.device("cpu"))).removeprefix("torch.")
    assert rr["throughput"]["batch_size"] == 32 and rr["throughput"]["dtype"] == auto
    # The rule, from the metrics alone: the smallest depth within 0.005 of the best ndcg@10.
    quality = {int(d): m["ndcg@10"] for d, m in rr["metrics"].items()}
    best = max(quality.values())
    assert rr["recommended_depth"] == min(d for d, q in quality.items() if q >= best - 0.005
                                          - 1e-12)
    assert rr["recommendation"]["reasoning"]
    assert set(rr["output_cut"][str(rr["recommended_depth"])]) == {
        "ndcg@3", "recall@3", "ndcg@5", "recall@5", "ndcg@10", "recall@10"}
    for depth, cut in rr["output_cut"].items():  # same ranking as the depth curve
        assert cut["ndcg@10"] == pytest.approx(rr["metrics"][depth]["ndcg@10"], abs=1e-12)
    dist = rr["score_distribution"]
    assert sum(dist["histogram"]["relevant"]) + sum(dist["histogram"]["other"]) == dist["count"]
    assert data["first_stage"]["latency_ms"]["queries"] == 4


def test_latency_probes_are_not_counted_as_scored_pairs(tiny_run):
    out, _ = tiny_run
    data = json.loads((out / "results.json").read_text())
    shortlist_pairs = len((out / "runs" / "first_stage.trec").read_text().splitlines())
    scored = len((out / "runs" / "tiny-ce.scores.tsv").read_text().splitlines()) - 1
    assert data["rerankers"][0]["pairs_scored"] == shortlist_pairs == scored


def test_report_html_is_self_contained_with_plots_and_tables(tiny_run):
    out, _ = tiny_run
    html = (out / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4  # quality, latency, Pareto, score distributions
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing fetched from outside
    assert html.count("<table") >= 6
    for heading in ("Recommendation", "Quality per depth", "Latency per query",
                    "Throughput", "Hardware setups", "Conventions"):
        assert heading in html
    md = (out / "report.md").read_text()
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)
    assert "p50 (ms)" in md and "pairs/s" in md


def test_report_merges_two_hardware_setups_side_by_side(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    data = json.loads((out / "results.json").read_text())
    other = json.loads(json.dumps(data))
    other["hardware"] = {**other["hardware"], "id": "hw-otherbox00", "threads_used": 1}
    for rr in other["rerankers"]:
        for stats in rr["latency_ms"].values():
            stats["p50"] *= 2
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text(json.dumps(other))
    code = main(["report", str(out / "results.json"), str(tmp_path / "b"),
                 "--out", str(tmp_path / "merged")])
    assert code == 0
    md = (tmp_path / "merged" / "report.md").read_text()
    assert f"{data['hardware']['id']} p50 (ms)" in md and "hw-otherbox00 p50 (ms)" in md
    assert "all setups" in md  # identical quality is shown once
    assert "hw-otherbox00" in capsys.readouterr().out


def test_report_rejects_a_file_that_is_not_results(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert main(["report", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "not a rerank-eval results.json" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    out, _ = tiny_run
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1200,3000", (out / "report.html").resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] == 3000 and pixels.shape[1] == 1200
    assert pixels[..., :3].std() > 0.05  # not a blank page: text, tables and plots drew


def test_latency_measured_on_a_ray_worker_is_shown_under_the_workers_hardware():
    """The driver's hardware describes the run; latency belongs to where it was measured."""
    from rerank_eval.reports.tables import latency_side_by_side
    from rerank_eval.results import Results

    lat = {"10": {"p50": 12.0}, "20": {"p50": 20.0}}
    results = Results.model_validate({
        "name": "exp", "hardware": {"id": "hw-driver"},
        "first_stage": {"name": "bm25", "depth": 20}, "rerankers": [
        {"name": "on-worker", "latency_ms": lat, "latency_hardware": {"id": "hw-gpu-node"}},
        {"name": "two-setups", "latency_ms": lat, "latency_hardware": {"id": "hw-a"},
         "latency_ms_by_hardware": {"hw-a": lat, "hw-b": {"10": {"p50": 30.0}}}},
        {"name": "here", "latency_ms": {"10": {"p50": 5.0}}},
    ]})
    table = latency_side_by_side([results]).set_index(["system", "rerank depth"])
    assert table.loc[("on-worker", 10), "hw-gpu-node p50 (ms)"] == "12.0"
    assert table.loc[("on-worker", 10), "hw-driver p50 (ms)"] == "—"
    assert table.loc[("two-setups", 10), "hw-b p50 (ms)"] == "30.0"
    assert table.loc[("two-setups", 20), "hw-b p50 (ms)"] == "—"
    assert table.loc[("here", 10), "hw-driver p50 (ms)"] == "5.0"


HOSTILE = "<script>alert(1)</script>|x"


def _md_rows_keep_their_cells(md: str) -> None:
    """Every row of every pipe table has as many cells as its header (no '|' of a name split
    a cell, no line break ended a row)."""
    width = None
    for line in md.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.split(r"(?<!\\)\|", line))
        width = width or cells
        assert cells == width, line


def test_hostile_names_are_text_in_report_md_and_html(tiny_run, tmp_path):
    out, _ = tiny_run
    data = json.loads((out / "results.json").read_text())
    data["name"] = HOSTILE
    data["rerankers"][0]["name"] = HOSTILE + "\n# `heading`"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "results.json").write_text(json.dumps(data))
    assert main(["report", str(tmp_path / "in"), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;\\|x" in md
    assert "\n# `heading`" not in md and "\\|x # \\`heading\\`" in md  # one line, no code
    _md_rows_keep_their_cells(md)
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<script>" not in html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;|x\n# `heading`</td>" in html
    assert "<h1>rerank-eval report: &lt;script&gt;alert(1)&lt;/script&gt;|x</h1>" in html


def test_report_and_compare_pages_share_one_stylesheet(tiny_run, tmp_path):
    from rerank_eval.reports.page import stylesheet

    out, _ = tiny_run
    css = stylesheet()
    assert "td.num" in css and "</" not in css
    cmp = tmp_path / "cmp.html"
    assert main(["compare", str(out / "results.json"), "--format", "html", "--out", str(cmp),
                 "--permutations", "50", "--bootstrap", "50"]) == 0
    for page in (out / "report.html", cmp):
        text = page.read_text()
        assert f"<style>\n{css}\n</style>" in text, page
        assert text.count("<style>") == 1 and 'class="num"' in text
