"""Pointwise LLM rerankers (kind causal-lm and seq2seq) on tiny random checkpoints with real
trained tokenizers (tests/tiny_lm.py): prompts exact to the model cards, answer token ids,
padding, truncation, prefix reuse, and the scores against the models' own logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rerank_eval.errors import InputError
from rerank_eval.rerankers import RERANKERS, build_reranker
from synthetic import write_beir
from tiny_lm import build_causal_lm, build_t5

# ---------------------------------------------------------------- the model cards' texts
# Written out here from the cards (not imported from the presets), with the cards' own code
# shape: https://huggingface.co/Qwen/Qwen3-Reranker-0.6B (format_instruction, prefix, suffix),
# https://github.com/mixedbread-ai/mxbai-rerank (mxbai_rerank_v2.py),
# https://huggingface.co/BAAI/bge-reranker-v2-gemma (get_inputs),
# https://github.com/castorini/pygaggle (MonoT5: "Query: {q} Document: {d} Relevant:").
QWEN_PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on "
               "the Query and the Instruct provided. Note that the answer can only be \"yes\" or "
               "\"no\".<|im_end|>\n<|im_start|>user\n")
QWEN_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
MXBAI_TASK = ("You are a search relevance expert who evaluates how well documents match search "
              "queries. For each query-document pair, carefully analyze the semantic relationship"
              " between them, then provide your binary relevance judgment (0 for not relevant, 1"
              " for relevant).\nRelevance:")
MXBAI_PREFIX = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                "assistant.<|im_end|>\n<|im_start|>user\n")
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
GEMMA_PROMPT = ("Given a query A and a passage B, determine whether the passage contains an "
                "answer to the query by providing a prediction of either 'Yes' or 'No'.")

QUERY = "What is the capital of China?"
DOC = "The capital of China is Beijing. {Braces} and\nnew lines stay text."


def card_text(preset: str, query: str, doc: str) -> str:
    if preset == "qwen3-reranker":
        body = f"<Instruct>: {QWEN_INSTRUCTION}\n<Query>: {query}\n<Document>: {doc}"
        return QWEN_PREFIX + body + QWEN_SUFFIX
    if preset == "mxbai-rerank-v2":
        return (MXBAI_PREFIX + "query: " + query + "\n" + "document: " + doc + "\n" + MXBAI_TASK
                + MXBAI_SUFFIX)
    if preset == "bge-reranker-gemma":
        return f"A: {query}" + "\n" + f"B: {doc}" + "\n" + GEMMA_PROMPT
    return f"Query: {query} Document: {doc} Relevant:"


def card_ids(preset: str, tokenizer, query: str, doc: str) -> list[int]:
    """The token ids the card's code builds (no truncation)."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    if preset == "qwen3-reranker":
        body = f"<Instruct>: {QWEN_INSTRUCTION}\n<Query>: {query}\n<Document>: {doc}"
        return ids(QWEN_PREFIX) + ids(body) + ids(QWEN_SUFFIX)
    if preset == "mxbai-rerank-v2":
        return (ids(MXBAI_PREFIX) + ids("query: " + query) + ids("\n") + ids("document: " + doc)
                + ids("\n") + ids(MXBAI_TASK) + ids(MXBAI_SUFFIX))
    if preset == "bge-reranker-gemma":
        return ([tokenizer.bos_token_id] + ids(f"A: {query}") + ids("\n") + ids(f"B: {doc}")
                + ids("\n") + ids(GEMMA_PROMPT))
    return tokenizer(f"Query: {query} Document: {doc} Relevant:")["input_ids"]  # + </s>


CAUSAL_PRESETS = ["qwen3-reranker", "mxbai-rerank-v2", "bge-reranker-gemma"]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return build_causal_lm(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="module")
def gemma_like_dir(tmp_path_factory) -> Path:
    return build_causal_lm(tmp_path_factory.mktemp("tiny-gemma-like"), bos=True, seed=1)


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory) -> Path:
    return build_t5(tmp_path_factory.mktemp("tiny-t5"))


def make(kind: str, model: Path, **params):
    params = {"model": str(model), "device": "cpu", "dtype": "float32", **params}
    return build_reranker("llm", kind, params, base_dir=model)


def model_dir(preset: str, qwen_dir: Path, gemma_like_dir: Path, t5_dir: Path) -> Path:
    return {"bge-reranker-gemma": gemma_like_dir, "monot5": t5_dir}.get(preset, qwen_dir)


PAIRS = [
    (QUERY, DOC),
    (QUERY, "Gravity is a force that attracts two bodies towards each other."),
    (QUERY, "yes"),
    ("Explain gravity", "Gravity gives weight to physical objects and moves the planets. " * 3),
    ("Explain gravity", "Vitamin D deficiency is associated with fractures."),
    ("Vitamin D and fractures?", "Vitamin D deficiency is associated with an increased risk."),
]


# ---------------------------------------------------------------- prompts and token ids
def test_kinds_are_registered():
    assert RERANKERS["causal-lm"].kind == "causal-lm"
    assert RERANKERS["seq2seq"].kind == "seq2seq"


@pytest.mark.parametrize("preset", [*CAUSAL_PRESETS, "monot5"])
def test_preset_renders_the_model_cards_text(preset, qwen_dir, gemma_like_dir, t5_dir):
    kind = "seq2seq" if preset == "monot5" else "causal-lm"
    r = make(kind, model_dir(preset, qwen_dir, gemma_like_dir, t5_dir), template=preset)
    assert r.template.render(QUERY, DOC, r.instruction) == card_text(preset, QUERY, DOC)


@pytest.mark.parametrize("preset", [*CAUSAL_PRESETS, "monot5"])
def test_preset_token_ids_equal_the_cards_code(preset, qwen_dir, gemma_like_dir, t5_dir):
    kind = "seq2seq" if preset == "monot5" else "causal-lm"
    r = make(kind, model_dir(preset, qwen_dir, gemma_like_dir, t5_dir), template=preset,
             max_length=1024)
    tokenizer = r.scorer.tokenizer
    enc = r.scorer.encode(PAIRS)
    assert not enc.truncated.any()
    for i, (q, d) in enumerate(PAIRS):
        assert enc.ids(i) == card_ids(preset, tokenizer, q, d), (preset, q, d)
    # decoding gives the rendered prompt back (special tokens included)
    if preset == "qwen3-reranker":
        assert tokenizer.decode(enc.ids(0)) == card_text(preset, QUERY, DOC)


@pytest.mark.parametrize("preset,yes,no", [
    ("qwen3-reranker", "yes", "no"), ("mxbai-rerank-v2", "1", "0"),
    ("bge-reranker-gemma", "Yes", None), ("monot5", "\u2581true", "\u2581false")])
def test_answer_token_ids_are_the_templates(preset, yes, no, qwen_dir, gemma_like_dir, t5_dir):
    kind = "seq2seq" if preset == "monot5" else "causal-lm"
    r = make(kind, model_dir(preset, qwen_dir, gemma_like_dir, t5_dir), template=preset)
    tokenizer = r.scorer.tokenizer
    assert r.scorer.yes_id == tokenizer.convert_tokens_to_ids(yes)
    assert tokenizer.convert_ids_to_tokens(r.scorer.yes_id) == yes
    if no is None:
        assert r.scorer.no_id is None
    else:
        assert tokenizer.convert_ids_to_tokens(r.scorer.no_id) == no
    if preset == "mxbai-rerank-v2":  # the card: tokenizer("1")["input_ids"][0]
        assert r.scorer.yes_id == tokenizer("1", add_special_tokens=False)["input_ids"][0]


def test_custom_template_from_strings(qwen_dir):
    r = make("causal-lm", qwen_dir, template=["Instr: {instruction}\n", "Q: {query}\n",
                                             "D: {document}", "\nAnswer:"],
             instruction="be strict", yes_token="yes", no_token="no")
    rendered = r.template.render("q {x}", "d", r.instruction)
    assert rendered == "Instr: be strict\nQ: q {x}\nD: d\nAnswer:"
    enc = r.scorer.encode([("q", "some document")])
    tok = r.scorer.tokenizer
    assert tok.decode(enc.ids(0)) == "Instr: be strict\nQ: q\nD: some document\nAnswer:"


# ---------------------------------------------------------------- truncation
def test_truncation_cuts_the_document_only(qwen_dir):
    long_doc = "Gravity gives weight to physical objects and moves the planets. " * 40
    r = make("causal-lm", qwen_dir, template="qwen3-reranker", max_length=160)
    enc = r.scorer.encode([(QUERY, long_doc), (QUERY, "short")])
    full = card_ids("qwen3-reranker", r.scorer.tokenizer, QUERY, long_doc)
    cut = enc.ids(0)
    assert len(cut) == 160 and len(full) > 160
    assert enc.truncated.tolist() == [True, False]
    suffix = r.scorer.tokenizer(QWEN_SUFFIX, add_special_tokens=False)["input_ids"]
    head = 160 - len(suffix)
    assert cut[-len(suffix):] == suffix  # the suffix (the answer's cue) is kept
    assert cut[:head] == full[:head]  # prefix, query and the document's start unchanged
    text = r.scorer.tokenizer.decode(cut)
    assert QUERY in text and text.startswith(QWEN_PREFIX) and text.endswith(QWEN_SUFFIX)
    scores = r.score([(QUERY, long_doc), (QUERY, "short")])
    assert r.stats.pairs_truncated == 1 and r.last_truncated.tolist() == [True, False]
    assert np.isfinite(scores).all()


def test_too_small_max_length_is_one_line_error(qwen_dir):
    r = make("causal-lm", qwen_dir, template="qwen3-reranker", max_length=8)
    with pytest.raises(InputError, match=r"rerankers\[llm\]\.max_length: 8 tokens leave no"):
        r.score([(QUERY, DOC)])


# ---------------------------------------------------------------- scores
def hf_last_logits(model_dir: Path, ids: list[int], answer: list[int]) -> torch.Tensor:
    """The oracle: transformers' own forward of one whole prompt, logits at the last position."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0, -1, answer]


@pytest.mark.parametrize("prefix_reuse", [False, True])
def test_causal_scores_equal_the_models_own_logits(qwen_dir, prefix_reuse):
    r = make("causal-lm", qwen_dir, template="qwen3-reranker", batch_size=4,
             prefix_reuse=prefix_reuse)
    scores = r.score(PAIRS)
    tok = r.scorer.tokenizer
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    for (q, d), s in zip(PAIRS, scores):
        logits = hf_last_logits(qwen_dir, card_ids("qwen3-reranker", tok, q, d), [yes, no])
        assert s == pytest.approx(float(logits[0] - logits[1]), abs=1e-4)
    assert np.ptp(scores) > 1e-3  # the random model separates candidates


def test_log_softmax_and_single_token_scores(qwen_dir, gemma_like_dir):
    diff = make("causal-lm", qwen_dir, template="qwen3-reranker").score(PAIRS)
    logsm = make("causal-lm", qwen_dir, template="qwen3-reranker",
                 score="log_softmax").score(PAIRS)
    # log P(yes) over {yes, no} = -log(1 + exp(-(yes - no)))
    np.testing.assert_allclose(logsm, -np.log1p(np.exp(-diff)), atol=1e-5)
    gemma = make("causal-lm", gemma_like_dir, template="bge-reranker-gemma")
    scores = gemma.score(PAIRS[:2])
    tok = gemma.scorer.tokenizer
    yes = tok.convert_tokens_to_ids("Yes")
    for (q, d), s in zip(PAIRS[:2], scores):
        ids = card_ids("bge-reranker-gemma", tok, q, d)
        assert s == pytest.approx(float(hf_last_logits(gemma_like_dir, ids, [yes])[0]), abs=1e-4)


@pytest.mark.parametrize("prefix_reuse", [False, True])
def test_batched_left_padded_equals_one_by_one(qwen_dir, prefix_reuse):
    batched = make("causal-lm", qwen_dir, template="mxbai-rerank-v2", batch_size=8,
                   prefix_reuse=prefix_reuse)
    single = make("causal-lm", qwen_dir, template="mxbai-rerank-v2", batch_size=1,
                  prefix_reuse=False)
    a = batched.score(PAIRS)
    b = np.array([single.score([p])[0] for p in PAIRS])
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("batch_size,max_tokens", [(5, 200), (18, None)])
def test_prefix_reuse_equals_full_recomputation(qwen_dir, batch_size, max_tokens):
    # several candidates per query; batches mix queries whose prefixes differ in length
    # ((18, None): all 18 pairs, 3 queries, in one batch)
    pairs = PAIRS * 3
    full = make("causal-lm", qwen_dir, template="qwen3-reranker", batch_size=5,
                prefix_reuse=False)
    reuse = make("causal-lm", qwen_dir, template="qwen3-reranker", batch_size=batch_size,
                 max_tokens_per_batch=max_tokens)
    np.testing.assert_allclose(reuse.score(pairs), full.score(pairs), atol=1e-5)
    assert reuse.scorer.path.endswith("/prefix-reuse") and full.scorer.path.endswith("/full")
    assert reuse.scorer.prefix_tokens_reused > 0


def test_bf16_autocast_keeps_rankings(qwen_dir):
    fp32 = make("causal-lm", qwen_dir, template="qwen3-reranker").score(PAIRS)
    bf16 = make("causal-lm", qwen_dir, template="qwen3-reranker", dtype="bfloat16")
    scores = bf16.score(PAIRS)
    assert bf16.scorer.path == "cpu/bfloat16-autocast/prefix-reuse"
    assert np.abs(scores - fp32).max() < 0.1 * max(1.0, np.abs(fp32).max())


def test_the_answer_head_runs_in_fp32_under_autocast(qwen_dir):
    scorer = make("causal-lm", qwen_dir, template="qwen3-reranker", dtype="bfloat16").scorer
    hidden = torch.randn(6, scorer.head_weight.shape[1]) * 3
    w = scorer.head_weight.double()
    expected = (hidden.double() @ w.T)[:, 0] - (hidden.double() @ w.T)[:, 1]
    with torch.inference_mode(), scorer._autocast():
        got = scorer._head(hidden)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=1e-4)
    scorer.fp32_head = False  # the half-precision head rounds to bf16 (what the bench compares)
    with torch.inference_mode(), scorer._autocast():
        rounded = scorer._head(hidden)
    assert (rounded.double() - expected).abs().max() > 1e-3


def test_seq2seq_scores_equal_the_models_own_logits(t5_dir):
    from transformers import AutoModelForSeq2SeqLM

    r = make("seq2seq", t5_dir, template="monot5", batch_size=4)
    scores = r.score(PAIRS)
    single = np.array([r.score([p])[0] for p in PAIRS])
    np.testing.assert_allclose(scores, single, atol=1e-5)  # padding changes nothing
    tok = r.scorer.tokenizer
    true, false = tok.convert_tokens_to_ids("\u2581true"), tok.convert_tokens_to_ids("\u2581false")
    model = AutoModelForSeq2SeqLM.from_pretrained(t5_dir, dtype=torch.float32).eval()
    for (q, d), s in zip(PAIRS, scores):
        ids = tok(f"Query: {q} Document: {d} Relevant:", return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=ids, decoder_input_ids=torch.tensor([[0]])).logits[0, 0]
        assert s == pytest.approx(float(logits[true] - logits[false]), abs=1e-4)


# ---------------------------------------------------------------- config errors
@pytest.mark.parametrize("params,match", [
    ({"template": "qwen3-rerank"}, "did you mean 'qwen3-reranker'"),
    ({"template": "monot5"}, "unknown template preset 'monot5' for kind causal-lm"),
    ({"template": ["{document}", "{query}"]}, "must come before"),
    ({"template": ["{query} {document}"]}, "separate pieces"),
    ({"template": ["{query}", "{doc}"]}, "exactly one piece must hold"),
    ({"template": ["{query}", "{document}", "{answer}"]}, "unknown field"),
])
def test_bad_templates_are_one_line_errors(qwen_dir, params, match):
    with pytest.raises(InputError, match=match) as e:
        make("causal-lm", qwen_dir, **params)
    assert "\n" not in str(e.value)


def test_template_errors_name_the_config_line(tmp_path):
    from rerank_eval.config import load_config

    config = tmp_path / "x.yaml"
    config.write_text("name: x\ndataset: {bundled: quickstart}\n"
                      "first_stage: {bm25: {}, depth: 5}\nrerankers:\n"
                      "  - name: t5\n    kind: seq2seq\n    model: some/hub-id\n"
                      "    template: qwen3-reranker\ndepths: [5]\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_config(config)
    assert str(e.value) == (
        f"{config}:8: rerankers[0].template: unknown template preset 'qwen3-reranker' for kind "
        "seq2seq (presets: monot5; or give the template as a list of strings)")


def test_answer_token_must_be_one_token(qwen_dir):
    r = make("causal-lm", qwen_dir, template="qwen3-reranker",
             yes_token="definitely relevant")
    with pytest.raises(InputError, match=r"yes_token: 'definitely relevant' is not one token"):
        r.score(PAIRS[:1])


def test_fingerprint_follows_the_prompt(qwen_dir):
    a = make("causal-lm", qwen_dir, template="qwen3-reranker").fingerprint()
    b = make("causal-lm", qwen_dir, template="qwen3-reranker", instruction="other").fingerprint()
    c = make("causal-lm", qwen_dir, template="qwen3-reranker", batch_size=3,
             prefix_reuse=False).fingerprint()
    assert a != b and a == c
    assert "weights_sha256" in a["model"]


# ---------------------------------------------------------------- through the runner
@pytest.mark.slow  # two whole CLI runs with reports (about 60 s on a busy 2-core box):
# python -m pytest -m slow tests/test_llm_rerankers.py
def test_a_run_scores_caches_and_probes_latency(qwen_dir, tmp_path, monkeypatch):
    """A config with kind causal-lm runs end to end; the rerun reads every score from the
    cache; latency probes run the model."""
    from rerank_eval.cli import main

    monkeypatch.setenv("RERANK_EVAL_CACHE", str(tmp_path / "cache.sqlite"))
    data = write_beir(tmp_path / "synth", queries=4, docs=40)
    config = tmp_path / "llm.yaml"
    config.write_text(
        "name: llm\n"
        f"dataset: {{beir: {data}}}\n"
        "first_stage: {bm25: {}, depth: 5}\n"
        "rerankers:\n"
        f"  - {{name: q3, kind: causal-lm, model: {qwen_dir}, template: qwen3-reranker,"
        " max_length: 256, batch_size: 8, dtype: float32}\n"
        "depths: [5]\nmetrics: [ndcg@10, recall@5]\nsanity_check: false\n"
        "latency: {queries: 1, warmup: 1, seed: 0}\n", encoding="utf-8")
    assert main(["run", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(config), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    first = json.loads((tmp_path / "a/results.json").read_text())["rerankers"][0]
    second = json.loads((tmp_path / "b/results.json").read_text())["rerankers"][0]
    assert first["kind"] == "causal-lm" and first["pairs_scored"] == 20
    assert second["pairs_scored"] == 0 and second["pairs_from_cache"] == 20
    assert second["metrics"] == first["metrics"]
    assert first["latency_ms"]["5"]["queries"] == 1
    assert first["description"]["scoring_path"] == "cpu/float32/prefix-reuse"


# ---------------------------------------------------------------- bench --kind causal-lm
def test_lm_bench_rows_and_fidelity_against_the_card_loop(qwen_dir, tmp_path, capsys):
    from rerank_eval.cli import main

    data = write_beir(tmp_path / "synth", queries=3, docs=30)
    out = tmp_path / "bench.json"
    rc = main(["bench", "--kind", "causal-lm", "--model", str(qwen_dir), "--beir", str(data),
               "--depth", "3", "--max-length", "200", "--batch-size", "4", "--json", str(out),
               "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "engine/fp32/reuse" in printed and "fewer tokens than full scoring" in printed
    report = json.loads(out.read_text())
    methods = report["methods"]
    auto = {"bfloat16": "bf16", "float32": "fp32", "float16": "fp16"}[report["auto"]["dtype"]]
    assert {"peer", "engine/fp32/full", "engine/fp32/reuse", f"engine/{auto}/full",
            f"engine/{auto}/reuse"} <= set(methods)
    assert report["settings"]["pairs_truncated"] > 0  # the card loop and the engine both cut
    for name in ("engine/fp32/full", "engine/fp32/reuse"):  # the card's own loop, to 1e-4
        assert methods[name]["fidelity_vs_fp32"]["reference"] == "peer"
        assert methods[name]["fidelity_vs_fp32"]["max_abs_diff"] < 1e-4, name
        assert methods[name]["fidelity_vs_fp32"]["kendall_tau_min"] == 1.0
    assert methods["engine/fp32/reuse"]["x_full"] > 0 and methods["peer"]["x_peer"] == 1.0
    # 3 candidates a query share their prefix: reuse runs fewer tokens, never 3x fewer
    assert 1.0 < report["settings"]["reuse_token_bound_x_full"] < 3.0
    spread = report["reference_spread"]
    assert spread["reference"] == "peer" and spread["std_median"] > 0 <= spread["gap_min"]
