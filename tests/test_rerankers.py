"""Reranker backends: scores follow the pair order, the label index and the input order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rerank_eval.errors import InputError
from rerank_eval.rerankers import build_reranker
from rerank_eval.rerankers.sanity import PROBES, run_sanity_probes


def _cross_encoder(model: Path | str, **params):
    return build_reranker("ce", "cross-encoder", {"model": str(model), **params},
                          base_dir=Path.cwd())


def test_scores_do_not_depend_on_batch_size_or_length_sorting(tiny_cross_encoder):
    pairs = [(f"query {i}", "passage " + "word " * (i * 7 % 50)) for i in range(23)]
    one_by_one = _cross_encoder(tiny_cross_encoder, batch_size=1).score(pairs)
    batched = _cross_encoder(tiny_cross_encoder, batch_size=8).score(pairs)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)
    reversed_scores = _cross_encoder(tiny_cross_encoder, batch_size=8).score(pairs[::-1])
    np.testing.assert_allclose(reversed_scores[::-1], batched, rtol=1e-4, atol=1e-5)


def test_truncated_pairs_are_counted(tiny_cross_encoder):
    reranker = _cross_encoder(tiny_cross_encoder, max_length=32)
    reranker.score([("short query", "short passage"), ("short query", "long " * 100),
                    ("long query " * 40, "short passage")])
    assert reranker.stats.pairs_scored == 3
    assert reranker.stats.pairs_truncated == 2


def test_real_cross_encoder_orders_obvious_pairs_right(scifact_ce):
    sanity = run_sanity_probes(_cross_encoder(scifact_ce, max_length=256))
    assert sanity.inverted <= 1 and not sanity.failed


@pytest.fixture(scope="module")
def two_label_model(tmp_path_factory, scifact_ce) -> Path:
    """The SciFact cross-encoder rebuilt with two labels: label 1 = +logit, label 0 = -logit."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(scifact_ce)
    two = AutoModelForSequenceClassification.from_pretrained(scifact_ce, num_labels=2,
                                                             ignore_mismatched_sizes=True)
    with torch.no_grad():
        w, b = model.classifier.weight[0], model.classifier.bias[0]
        two.classifier.weight.copy_(torch.stack([-w, w]))
        two.classifier.bias.copy_(torch.stack([-b, b]))
    out = tmp_path_factory.mktemp("two-label")
    two.save_pretrained(out)
    AutoTokenizer.from_pretrained(scifact_ce).save_pretrained(out)
    return out


def test_two_label_models_score_the_relevant_class(two_label_model, scifact_ce):
    pairs = [(q, p) for q, rel, irr in PROBES for p in (rel, irr)]
    one = _cross_encoder(scifact_ce, max_length=256).score(pairs)
    two = _cross_encoder(two_label_model, max_length=256).score(pairs)
    np.testing.assert_allclose(two, one, rtol=1e-3, atol=1e-3)


def test_sanity_probes_catch_a_wrong_label_index(two_label_model):
    """Choosing the wrong label inverts relevance: the classic silent failure is flagged."""
    right = run_sanity_probes(_cross_encoder(two_label_model, max_length=256))
    wrong = run_sanity_probes(_cross_encoder(two_label_model, max_length=256, label_index=0))
    assert not right.failed
    assert wrong.failed and wrong.inverted >= len(PROBES) - 1


def test_the_harness_feeds_the_query_first_and_the_passage_second(scifact_ce):
    """The pipeline builds (query text, passage text) pairs and the engine encodes the query
    as segment A: its scores are the checkpoint's on tokenizer(query, passage), computed here
    with transformers alone, and not those on tokenizer(passage, query)."""
    from rerank_eval.datasets import Dataset
    from rerank_eval.scoring.shortlist import chunk_pairs
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    dataset = Dataset("probes", corpus={f"d{i}": p for i, (_, r, x) in enumerate(PROBES)
                                        for p in [r + " " + x]},
                      queries={f"q{i}": q for i, (q, _, _) in enumerate(PROBES)}, qrels={})
    keys = [(f"q{i}", f"d{j}") for i in range(len(PROBES)) for j in range(len(PROBES))]
    pairs = chunk_pairs(dataset, keys)
    assert pairs == [(dataset.queries[q], dataset.corpus[d]) for q, d in keys]
    pairs += [(q, p) for q, r, i in PROBES for p in (r, i)]
    ours = _cross_encoder(scifact_ce, max_length=256, dtype="float32").score(pairs)

    tokenizer = AutoTokenizer.from_pretrained(scifact_ce)
    model = AutoModelForSequenceClassification.from_pretrained(scifact_ce).eval()

    def reference(first: list[str], second: list[str]) -> np.ndarray:
        enc = tokenizer(first, second, padding=True, truncation=True, max_length=256,
                        return_tensors="pt")
        with torch.no_grad():
            return model(**enc).logits[:, 0].numpy()

    queries, passages = [q for q, _ in pairs], [p for _, p in pairs]
    np.testing.assert_allclose(ours, reference(queries, passages), rtol=1e-4, atol=1e-4)
    swapped = reference(passages, queries)
    assert np.abs(ours - swapped).max() > 0.1, "pair order must matter to this cross-encoder"


def test_packaged_bi_encoder_is_a_real_baseline():
    reranker = build_reranker("bi", "bi-encoder", {"model": "packaged:all-minilm-l6-v2"},
                              base_dir=Path.cwd())
    sanity = run_sanity_probes(reranker)
    assert sanity.inverted == 0


def test_missing_model_path_is_a_one_line_error(tmp_path):
    with pytest.raises(InputError, match=r"rerankers\[ce\]\.model: model path not found"):
        _cross_encoder(tmp_path / "no-such-model")


def test_unknown_reranker_key_names_the_field(tiny_cross_encoder):
    with pytest.raises(InputError, match=r"rerankers\[ce\]: unknown key 'batchsize'"):
        _cross_encoder(tiny_cross_encoder, batchsize=3)
