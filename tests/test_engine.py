"""The scoring engine: bucketing and overlap change speed, never scores, order or counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rerank_eval import models as models_mod
from rerank_eval.engine.scorer import PairScorer
from rerank_eval.errors import InputError
from rerank_eval.models import resolve_dtype
from rerank_eval.rerankers import build_reranker


def _cross_encoder(model: Path | str, **params):
    """The CPU paths (on any machine); tests of the GPU paths are in test_cuda_graphs.py."""
    return build_reranker("ce", "cross-encoder", {"model": str(model), "device": "cpu", **params},
                          base_dir=Path.cwd())


def _pairs(n: int = 37) -> list[tuple[str, str]]:
    """Mixed lengths, some past a 64-token window, repeated queries."""
    return [(f"query number {i % 5}", "passage " + "word " * ((i * 13) % 90)) for i in range(n)]


def _reference_scores(model_dir: Path, pairs, max_length: int) -> np.ndarray:
    """One pair at a time, no sorting, no padding: what the engine must reproduce."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    out = []
    with torch.inference_mode():
        for q, p in pairs:
            enc = tok(q, p, truncation="only_second", max_length=max_length, return_tensors="pt")
            out.append(float(model(**enc).logits[0, 0]))
    return np.array(out)


@pytest.fixture
def scorer(tiny_cross_encoder) -> PairScorer:
    return _cross_encoder(tiny_cross_encoder, max_length=64, batch_size=8,
                          dtype="float32", compile=False).scorer


def test_scores_match_one_pair_at_a_time_in_input_order(tiny_cross_encoder, scorer):
    pairs = _pairs()
    scores, _ = scorer.score(pairs)
    np.testing.assert_allclose(scores, _reference_scores(tiny_cross_encoder, pairs, 64),
                               rtol=1e-4, atol=1e-5)


def test_token_budget_and_overlapped_tokenization_leave_scores_unchanged(scorer):
    pairs = _pairs()
    plain, plain_cut = scorer.score(pairs)
    scorer.max_tokens_per_batch = 100  # 1-3 pairs a batch at these lengths
    scorer.overlap, scorer.chunk_pairs = True, 10  # 4 chunks, tokenized on a worker thread
    scores, cut = scorer.score(pairs)
    np.testing.assert_allclose(scores, plain, rtol=1e-4, atol=1e-5)
    assert cut == plain_cut


def test_batches_cover_every_pair_once_longest_first_within_both_caps(scorer):
    lengths = np.array([5, 60, 12, 60, 33, 7, 64, 20, 1, 45, 64, 9])
    scorer.batch_size, scorer.max_tokens_per_batch = 4, 130
    batches = scorer.plan_batches(lengths)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert list(lengths[flat]) == sorted(lengths, reverse=True)
    for rows in batches:
        assert len(rows) <= 4
        assert len(rows) == 1 or len(rows) * lengths[rows].max() <= 130


def test_query_comes_first_and_only_the_passage_is_truncated(scorer):
    pair = ("which protein binds", "long passage " * 100)
    enc = scorer.encode([pair])
    text = scorer.tokenizer.decode(enc.input_ids[0])
    assert len(enc.input_ids[0]) == 64
    assert text.startswith("[CLS] which protein binds [SEP] long passage")
    assert enc.truncated == 1


def test_truncated_pairs_are_counted_exactly(scorer):
    pairs = [("short query", "short passage"), ("short query", "long " * 100),
             ("long query " * 40, "short passage"), ("q", "x " * 60)]  # the last fits: 64 tokens
    _, truncated = scorer.score(pairs)
    assert truncated == 2


def test_cuda_out_of_memory_halves_the_batch_and_continues(scorer):
    pairs = _pairs(20)
    expected, _ = scorer.score(pairs)
    real_model = scorer.model

    def small_batches_only(**inputs):
        if inputs["input_ids"].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_model(**inputs)

    scorer._forward = small_batches_only
    scores, _ = scorer.score(pairs)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    # 8 -> 4 -> 2 once; later batches are split to the new size up front, not halved again.
    assert scorer.oom_halvings == 2 and scorer.batch_size == 2


def test_auto_dtype_is_bf16_only_on_cpus_with_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv(models_mod.NATIVE_BF16_ENV, raising=False)
    monkeypatch.setattr(models_mod, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(models_mod, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(models_mod, "cpu_flags", lambda: frozenset({"amx_bf16", "amx_tile"}))
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    # On a GPU: fp16, which kept rankings faithful on the H200 where bf16 did not (benchmarks/).
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(InputError, match="unknown dtype 'int4'"):
        resolve_dtype("int4", cpu)
    # The environment override wins over the flags, both ways; anything else is refused.
    monkeypatch.setenv(models_mod.NATIVE_BF16_ENV, "0")
    assert resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(models_mod, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setenv(models_mod.NATIVE_BF16_ENV, "1")
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setenv(models_mod.NATIVE_BF16_ENV, "yes")
    with pytest.raises(InputError, match="RERANK_EVAL_NATIVE_BF16: expected 0 or 1"):
        resolve_dtype("auto", cpu)


def test_bf16_runs_an_fp32_model_under_autocast_within_bf16_precision(tiny_cross_encoder):
    """Ranking fidelity on real models is what ``rerank-eval bench`` measures; here only the
    path and the size of the error (bf16 keeps ~3 significant digits)."""
    pairs = _pairs()
    fp32 = _cross_encoder(tiny_cross_encoder, max_length=64, dtype="float32").score(pairs)
    bf16 = _cross_encoder(tiny_cross_encoder, max_length=64, dtype="bfloat16")
    scores = bf16.score(pairs)
    assert bf16.describe()["scoring_path"] == "cpu/bfloat16-autocast/eager"
    assert not np.array_equal(scores, fp32)
    np.testing.assert_allclose(scores, fp32, atol=0.05)
    # The head runs in fp32 outside autocast: scores stay continuous, no ties added.
    assert len(np.unique(scores)) == len(np.unique(fp32))


def test_int8_is_an_opt_in_cpu_path_close_to_fp32(tiny_cross_encoder):
    pairs = _pairs()
    fp32 = _cross_encoder(tiny_cross_encoder, max_length=64, dtype="float32").score(pairs)
    int8 = _cross_encoder(tiny_cross_encoder, max_length=64, dtype="int8")
    scores = int8.score(pairs)
    assert int8.describe()["scoring_path"] == "cpu/int8-dynamic/eager"
    assert int8.describe()["dtype"] == "int8"
    np.testing.assert_allclose(scores, fp32, atol=0.1)


def test_compile_auto_waits_for_a_run_large_enough_to_pay_for_it(tiny_cross_encoder,
                                                                 monkeypatch):
    compiled = []
    monkeypatch.setattr(PairScorer, "compile", lambda self: compiled.append(True))
    small = _cross_encoder(tiny_cross_encoder, compile_min_pairs=50)
    small.score(_pairs(20))
    small.score(_pairs(20))
    assert compiled == []  # 40 pairs so far
    small.score(_pairs(20))
    assert compiled == [True]  # 60 >= 50
    hinted = _cross_encoder(tiny_cross_encoder, compile_min_pairs=50)
    hinted.expect_pairs(1000)
    hinted.score(_pairs(5))
    assert compiled == [True, True]
    never = _cross_encoder(tiny_cross_encoder, compile=False, compile_min_pairs=1)
    never.score(_pairs(5))
    assert len(compiled) == 2


def test_describe_records_the_path_that_ran(tiny_cross_encoder):
    reranker = _cross_encoder(tiny_cross_encoder, max_tokens_per_batch=512)
    reranker.score(_pairs(3))
    info = reranker.describe()
    assert info["dtype_requested"] == "auto"
    assert info["compile"] == "auto" and info["compiled"] is False
    assert info["scoring_path"] == f"cpu/{info['dtype']}{'-autocast' * info['autocast']}/eager"
    assert info["max_tokens_per_batch"] == 512


@pytest.mark.parametrize("key,value,message", [
    ("compile", "sometimes", "compile: expected auto, true or false, got 'sometimes'"),
    ("max_tokens_per_batch", 0, "max_tokens_per_batch: must be a positive integer, got 0"),
    ("compile_min_pairs", "many", "compile_min_pairs: expected an integer, got 'many'"),
])
def test_bad_speed_settings_are_input_errors(tiny_cross_encoder, key, value, message):
    with pytest.raises(InputError, match=message):
        _cross_encoder(tiny_cross_encoder, **{key: value})


@pytest.mark.slow
def test_compiled_path_scores_like_eager(tiny_cross_encoder):
    """torch.compile takes ~30-60 s on 2 cores: run with ``pytest -m slow``."""
    pairs = _pairs()
    eager = _cross_encoder(tiny_cross_encoder, max_length=64, compile=False).score(pairs)
    comp = _cross_encoder(tiny_cross_encoder, max_length=64, compile=True)
    np.testing.assert_allclose(comp.score(pairs), eager, rtol=1e-3, atol=1e-4)
    assert comp.describe()["compiled"] is True, comp.describe()["compile_error"]


def _engine_and_transformers_encodings(scorer, pairs, max_length: int):
    """The engine's encoding of ``pairs`` and transformers' own, to compare."""
    enc = scorer.encode(pairs)
    ref = scorer.tokenizer([q for q, _ in pairs], [p for _, p in pairs],
                           truncation="only_second", max_length=max_length)
    return enc, ref


def test_pair_encoding_gives_the_ids_transformers_gives(scorer):
    """The engine encodes with the Rust tokenizer directly; ids, token types and truncation
    must be exactly those of ``tokenizer(q, p, truncation="only_second")``."""
    pairs = _pairs(40) + [("ünïcode query", "Ünïcode pässage, with punctuation!" * 9),
                          ("", "empty query"), ("empty passage", "")]
    enc, ref = _engine_and_transformers_encodings(scorer, pairs, 64)
    assert enc.input_ids == ref["input_ids"]
    assert enc.token_type_ids == ref["token_type_ids"]
    overflowed = [i for i, ids in enumerate(ref["input_ids"]) if len(ids) == 64
                  and len(scorer.tokenizer(pairs[i][0], pairs[i][1])["input_ids"]) > 64]
    assert enc.truncated_index.tolist() == overflowed


def test_half_precision_weights_keep_the_scoring_head_in_fp32(tiny_cross_encoder):
    """The GPU half-precision path (cast once, head in fp32 so scores do not collapse into
    ties), run here on the CPU to check the arithmetic."""
    from rerank_eval.rerankers.cross_encoder import cast_keeping_head_fp32

    pairs = _pairs()
    reference = _cross_encoder(tiny_cross_encoder, max_length=64, dtype="float32")
    fp32 = reference.score(pairs)
    half = _cross_encoder(tiny_cross_encoder, max_length=64, dtype="bfloat16")
    cast_keeping_head_fp32(half.scorer.model, torch.bfloat16)
    half.scorer.autocast = False
    dtypes = {name: p.dtype for name, p in half.scorer.model.named_parameters()}
    assert dtypes["classifier.weight"] == torch.float32
    assert dtypes["bert.pooler.dense.weight"] == torch.float32
    assert dtypes["bert.encoder.layer.0.attention.self.query.weight"] == torch.bfloat16
    scores = half.score(pairs)
    assert not np.array_equal(scores, fp32)
    np.testing.assert_allclose(scores, fp32, atol=0.05)
    # An fp32 head gives continuous scores: no more ties than the fp32 model has.
    assert len(np.unique(scores)) == len(np.unique(fp32))


def test_long_passages_cut_before_tokenizing_give_the_same_ids(scorer):
    """Passages past ``cut_chars_per_token`` characters per window token are cut at a space
    before tokenizing; kept only where the window ends well before the cut, else encoded whole.
    Either way the ids are those of the whole passage."""
    limit = scorer.encoder.cut_chars_per_token * scorer.max_length
    rng = np.random.default_rng(0)
    words = ["a", "protein", "x", "binding-site", "is", "CD4+", "épitope", "of", "3.5", "—"]
    pairs = []
    for i in range(60):  # around the limit, far past it, and single huge "words"
        n = int(rng.integers(limit // 8, limit // 2))
        passage = " ".join(rng.choice(words, size=n))
        if i % 10 == 0:
            passage = "y" * (limit + 50) + " tail"
        pairs.append((f"query {i % 4}", passage))
    assert sum(len(p) > limit for _, p in pairs) > 20
    enc, ref = _engine_and_transformers_encodings(scorer, pairs, 64)
    assert enc.input_ids == ref["input_ids"]
    assert enc.truncated_index.tolist() == [i for i, e in enumerate(ref.encodings)
                                             if e.overflowing]


def test_scifact_pairs_encode_exactly_as_whole_passages(scifact_dir):
    """Real abstracts (most longer than a 128-token window), the packaged tokenizer."""
    import json

    from rerank_eval.models import resolve_model

    model = resolve_model("packaged:all-minilm-l6-v2", Path.cwd(), "model")
    scorer = _cross_encoder(model, max_length=128, dtype="float32").scorer
    with open(scifact_dir / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f][:20]
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line, _ in zip(f, range(600))]
    pairs = [(queries[i % 20], f"{d['title']} {d['text']}") for i, d in enumerate(docs)]
    enc, ref = _engine_and_transformers_encodings(scorer, pairs, 128)
    assert enc.input_ids == ref["input_ids"]
    assert enc.token_type_ids == ref["token_type_ids"]


def test_scores_that_overflow_their_precision_are_an_error_naming_the_dtype(tiny_cross_encoder):
    reranker = _cross_encoder(tiny_cross_encoder, max_length=64, dtype="float32")
    real_model = reranker.scorer.model

    def overflowing(**inputs):
        out = real_model(**inputs)
        out.logits[0, 0] = float("inf")
        return out

    reranker.scorer._forward = overflowing
    with pytest.raises(InputError, match=r"rerankers\[ce\]\.dtype: float32 gave non-finite "
                                         r"scores for 1 of 5 pairs"):
        reranker.score(_pairs(5))


def test_token_types_of_an_unusual_pair_template_are_read_from_the_tokenizer(
        tiny_cross_encoder):
    """Token types are derived from where the passage starts when the template gives
    0...0 1...1; any other template (here [CLS] typed 2) is read pair by pair, still exact."""
    from rerank_eval.engine.encoding import PairEncoder
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_cross_encoder))
    cls, sep = tok.cls_token_id, tok.sep_token_id
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="[CLS]:2 $A:0 [SEP]:0", pair="[CLS]:2 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    encoder = PairEncoder(tok, 64)
    assert encoder.types_from_encodings
    pairs = _pairs(30)
    enc = encoder.encode(pairs, np.arange(len(pairs)), encoder.queries([q for q, _ in pairs]))
    ref = tok([q for q, _ in pairs], [p for _, p in pairs], truncation="only_second",
              max_length=64)
    assert enc.input_ids == ref["input_ids"]
    assert enc.token_type_ids == ref["token_type_ids"]
    assert enc.token_type_ids[0][0] == 2
    padded = enc.pad(np.arange(2), 64, 0)
    assert padded[2, 0, 0] == 2 and padded[2, 0, -1] == 0  # padding has type 0


def test_a_query_cut_mid_word_is_encoded_as_its_cut_text(scorer):
    """A query past half the window is cut at a token boundary; the pair is then exactly the
    cut query's text with the passage (token types included)."""
    long_query = "unaffable antidisestablishmentarianism " * 20
    pairs = [(long_query, "a passage " * 40), ("short query", "another passage")]
    enc = scorer.encode(pairs)
    queries = scorer.encoder.queries([q for q, _ in pairs])
    assert queries.cut == {long_query}
    ref = scorer.tokenizer([queries.text[q] for q, _ in pairs], [p for _, p in pairs],
                           truncation="only_second", max_length=64)
    assert enc.input_ids == ref["input_ids"]
    assert enc.token_type_ids == ref["token_type_ids"]
    assert enc.truncated_index.tolist() == [0]
