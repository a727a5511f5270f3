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


def test_pair_order_matters_to_a_cross_encoder(scifact_ce):
    class Swapped:
        def __init__(self, inner):
            self.inner, self.stats = inner, inner.stats

        def score(self, pairs):
            return self.inner.score([(p, q) for q, p in pairs])

    straight = _cross_encoder(scifact_ce, max_length=256)
    swapped_scores = Swapped(straight).score([(q, p) for q, r, i in PROBES for p in (r, i)])
    straight_scores = straight.score([(q, p) for q, r, i in PROBES for p in (r, i)])
    assert not np.allclose(swapped_scores, straight_scores, atol=1e-3), \
        "pair order must matter to a cross-encoder"


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
