"""Queries are cut too, not only passages: a cross-encoder keeps at least half its window for
the passage, so a query longer than that half is cut, and results.json counts such queries
(``queries_truncated``) next to ``pairs_truncated``."""

from __future__ import annotations

from pathlib import Path

from rerank_eval.rerankers.bi_encoder import BiEncoder
from rerank_eval.rerankers.cross_encoder import CrossEncoder
from rerank_eval.results import RerankerEntry, results_json
from transformers import AutoTokenizer

SHORT = "vitamin d"
LONG = ("does a daily dose of vitamin d during the winter months reduce the risk of bone "
        "fractures in adults over sixty who live far from the equator")


def test_cross_encoder_counts_queries_longer_than_half_the_window(tiny_cross_encoder):
    max_length = 16
    reranker = CrossEncoder("ce", {"model": str(tiny_cross_encoder), "max_length": max_length,
                                   "device": "cpu", "dtype": "float32"},
                            base_dir=Path.cwd())
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_cross_encoder))
    # Oracle from the raw tokenizer: a pair has 3 special tokens ([CLS] q [SEP] p [SEP]); the
    # query may use at most half of the rest.
    budget = (max_length - 3) // 2
    lengths = {q: len(tokenizer(q, add_special_tokens=False)["input_ids"]) for q in (SHORT, LONG)}
    assert lengths[SHORT] <= budget < lengths[LONG]
    assert reranker.queries_truncated([SHORT, LONG, LONG]) == 1  # distinct queries
    assert reranker.queries_truncated([SHORT]) == 0
    # Scoring the long query's pair truncates it (pairs_truncated counts the pair).
    reranker.score([(LONG, "bone density")])
    assert reranker.stats.pairs_truncated == 1


def test_bi_encoder_counts_queries_longer_than_its_window():
    bi = BiEncoder("bi", {"model": "packaged:all-minilm-l6-v2", "max_length": 8,
                          "dtype": "float32", "device": "cpu"}, base_dir=Path.cwd())
    tokenizer = bi.model.tokenizer
    assert len(tokenizer(LONG)["input_ids"]) > 8 >= len(tokenizer(SHORT)["input_ids"])
    assert bi.queries_truncated([LONG, SHORT]) == 1


def test_queries_truncated_is_written_only_where_known():
    known = RerankerEntry(name="ce", queries_truncated=3)
    assert '"queries_truncated": 3' in _file(known)
    assert "queries_truncated" not in _file(RerankerEntry(name="hosted"))


def _file(entry: RerankerEntry) -> str:
    from rerank_eval.results import FirstStage, Results

    return results_json(Results(first_stage=FirstStage(name="bm25", depth=10),
                                rerankers=[entry]))
