"""`rerank-eval bench --kind causal-lm`: the causal-LM engine against the model card's loop.

On one set of real pairs and one model (loaded once, shared by every method), in interleaved
rounds, it times:

- ``peer``: the model card's reference loop (Qwen3-Reranker,
  https://huggingface.co/Qwen/Qwen3-Reranker-0.6B, "Transformers Usage"): batches in input
  order, the body ``<Instruct>: ...\\n<Query>: ...\\n<Document>: ...`` tokenized with
  ``truncation='longest_first'`` to ``max_length`` minus the prefix and suffix, prefix and
  suffix ids added, left-padded by ``tokenizer.pad``, ``model(**inputs).logits[:, -1, :]``,
  fp32; the score read as logit(yes) - logit(no) (the card's probability is a monotone
  function of it). Only for the ``qwen3-reranker`` template;
- ``engine/<dtype>/full``: the engine scoring whole prompts (length-sorted batches, the
  two-row head);
- ``engine/<dtype>/reuse``: the engine with prefix key/value reuse;

for fp32 and for what ``dtype: auto`` resolves to here; where that is half precision, also
``engine/<dtype>/reuse/head-<dtype>``: the two-token head in half precision (the final norm
stays fp32, as the methods share one model), to show what the fp32 head buys. Fidelity of
each method is measured against the fp32 reference (the peer when it runs, else
``engine/fp32/full``): max |diff|, per-query Kendall tau, nDCG@10 change.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank_eval.bench.pairs import (
    SHORT,
    BenchPairs,
    Reference,
    dtype_name,
    hardware,
    hardware_line,
    provenance,
    speed,
    time_rounds,
)
from rerank_eval.engine.lm import CausalLMScorer
from rerank_eval.models import resolve_dtype
from rerank_eval.reports.terminal import text_table
from rerank_eval.rerankers.causal_lm import CausalLM
from rerank_eval.rerankers.prompt_presets import QWEN3_RERANKER

logger = logging.getLogger(__name__)


class CardLoop:
    """The Qwen3-Reranker model card's batched scoring loop (see the module docstring)."""

    def __init__(self, scorer: CausalLMScorer, instruction: str, batch_size: int):
        self.model = scorer.model
        self.tokenizer = scorer.tokenizer
        self.device = scorer.device
        self.yes, self.no = scorer.yes_id, scorer.no_id
        pieces = QWEN3_RERANKER.pieces
        self.prefix = self.tokenizer.encode(pieces[0], add_special_tokens=False)
        self.suffix = self.tokenizer.encode(pieces[-1], add_special_tokens=False)
        self.body_length = scorer.max_length - len(self.prefix) - len(self.suffix)
        self.instruction = instruction
        self.batch_size = batch_size

    def __call__(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        out = []
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            for start in range(0, len(pairs), self.batch_size):
                batch = pairs[start : start + self.batch_size]
                bodies = [f"<Instruct>: {self.instruction}\n<Query>: {q}\n<Document>: {d}"
                          for q, d in batch]
                inputs = self.tokenizer(bodies, padding=False, truncation="longest_first",
                                        return_attention_mask=False,
                                        max_length=self.body_length)
                inputs["input_ids"] = [self.prefix + ids + self.suffix
                                       for ids in inputs["input_ids"]]
                padded = self.tokenizer.pad(inputs, padding=True, return_tensors="pt")
                padded = {k: v.to(self.device) for k, v in padded.items()}
                with torch.inference_mode():
                    logits = self.model(**padded).logits[:, -1, :]
                out.append((logits[:, self.yes] - logits[:, self.no]).float().cpu())
        finally:
            self.tokenizer.padding_side = side
        return torch.cat(out).numpy().astype(np.float64)


def run_lm_bench(
    bp: BenchPairs,
    model: str,
    *,
    template: str = "qwen3-reranker",
    batch_size: int = 16,
    max_length: int = 512,
    rounds: int = 1,
    device: str = "auto",
    max_tokens_per_batch: int | None = None,
    peer: bool = True,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Time every method on ``bp`` in ``rounds`` interleaved rounds; plain data back, with
    the hardware and the provenance (``argv``: the command line that ran it)."""
    n = len(bp.pairs)
    ref = CausalLM("fp32", {"model": model, "template": template, "batch_size": batch_size,
                            "max_length": max_length, "device": device, "dtype": "float32",
                            "max_tokens_per_batch": max_tokens_per_batch,
                            "prefix_reuse": False}, base_dir=Path.cwd())
    origin = provenance(ref.model_path, argv)  # the code as it was when the timing began
    base = ref.scorer
    assert isinstance(base, CausalLMScorer)
    auto = resolve_dtype("auto", base.device)
    scorers = _engine_scorers(base, auto)
    card, peer_note = _card_loop(base, ref.instruction, template, batch_size, peer)
    methods = _lm_methods(bp, scorers, card)
    _lm_warm_up(scorers, card, bp.pairs[: min(4, n)])
    names = list(methods)
    times, scores = time_rounds(methods, rounds, base.device, n, logger, width=20, digits=2)
    reference = "peer" if "peer" in scores else "engine/fp32/full"  # the fp32 reference
    ref_scores = Reference(bp, scores[reference])
    results = _lm_method_results(bp, names, times, scores, scorers, reference, ref_scores)
    spread = {"reference": reference, **ref_scores.spread()}
    prompts = _prompt_stats(base, bp)
    return {
        "provenance": origin,
        "hardware": hardware(),
        "pairs": {"source": bp.source, "count": n, "queries": len(bp.first_stage)},
        "settings": {"kind": "causal-lm", "model": model, "model_path": ref.model_path,
                     "template": template, "batch_size": batch_size,
                     "max_length": max_length, "rounds": rounds, "device": str(base.device),
                     "max_tokens_per_batch": max_tokens_per_batch, **prompts,
                     "peer": "model card loop" if "peer" in methods else peer_note},
        "auto": {"dtype": dtype_name(auto)},
        "reference_spread": spread,
        "methods": results,
    }


def _engine_scorers(base: CausalLMScorer, auto: torch.dtype) -> dict[str, CausalLMScorer]:
    """Full and prefix-reuse scoring for fp32 and the auto dtype, all on ``base``'s one model
    (``base`` itself is fp32/full); in half precision also the half-precision head, to show
    what the fp32 head buys."""
    scorers: dict[str, CausalLMScorer] = {}
    for dtype in dict.fromkeys([torch.float32, auto]):
        for reuse in (False, True):
            name = f"engine/{SHORT[dtype_name(dtype)]}/{'reuse' if reuse else 'full'}"
            scorers[name] = base if (dtype == torch.float32 and not reuse) else base.sibling(
                dtype=dtype, prefix_reuse=reuse)
    if auto != torch.float32:  # what the fp32 head buys (the final norm stays fp32: one model)
        half = SHORT[dtype_name(auto)]
        scorers[f"engine/{half}/reuse/head-{half}"] = base.sibling(
            dtype=auto, prefix_reuse=True, fp32_head=False)
    return scorers


def _card_loop(base: CausalLMScorer, instruction: str, template: str, batch_size: int,
               peer: bool) -> tuple[CardLoop | None, str | None]:
    """The model card's loop as the peer when asked for and the card has one (only
    qwen3-reranker); else None, with a note saying why when it was asked for."""
    if peer and template == "qwen3-reranker":
        return CardLoop(base, instruction, batch_size), None
    if peer:
        return None, f"no card loop for template {template!r} (only qwen3-reranker)"
    return None, None


def _lm_methods(bp: BenchPairs, scorers: dict[str, CausalLMScorer], card: CardLoop | None
                ) -> dict[str, Callable[[], np.ndarray]]:
    """What is timed: each engine scorer on ``bp``, after the peer when there is one (the
    order of the rounds and of the report)."""
    def bind(scorer: CausalLMScorer) -> Callable[[], np.ndarray]:
        return lambda: scorer.score(bp.pairs)[0]

    methods = {name: bind(s) for name, s in scorers.items()}
    if card is not None:
        def run_peer() -> np.ndarray:
            return card(bp.pairs)

        methods = {"peer": run_peer, **methods}
    return methods


def _lm_warm_up(scorers: dict[str, CausalLMScorer], card: CardLoop | None,
                sample: list[tuple[str, str]]) -> None:
    """One small call each before timing (allocator, thread pools, oneDNN primitives)."""
    for s in scorers.values():
        s.score(sample)
    if card is not None:
        card(sample)


def _lm_method_results(bp: BenchPairs, names: list[str], times: dict[str, list[float]],
                       scores: dict[str, np.ndarray], scorers: dict[str, CausalLMScorer],
                       reference: str, ref_scores: Reference) -> dict[str, Any]:
    """Per method: speed, prefix reuse's speed-up over full scoring, the fidelity to the
    fp32 reference (``reference``: the peer when it ran, else engine/fp32/full) and the
    engine's path."""
    n = len(bp.pairs)
    results: dict[str, Any] = {}
    for name in names:
        entry = speed(n, times, name)
        if "/reuse" in name:
            full = name.split("/reuse")[0] + "/full"
            entry["x_full"] = statistics.median(
                tf / t for t, tf in zip(times[name], times[full]))
        entry["fidelity_vs_fp32"] = {"reference": reference, **ref_scores.fidelity(scores[name])}
        if name in scorers:
            entry["path"] = scorers[name].path
        results[name] = entry
    return results


def _prompt_stats(base: CausalLMScorer, bp: BenchPairs) -> dict[str, Any]:
    """How the pairs encode: truncation, prompt length and the part shared within a query
    (what prefix reuse can save)."""
    enc = base.encode(bp.pairs)
    lengths = enc.lengths()
    prefix = len(enc.static) + np.array([len(enc.queries[int(q)]) for q in enc.query_of])
    # Tokens prefix reuse still runs: the static prefix once, each query part once, each
    # candidate's own tail. Full scoring runs every prompt whole; the ratio bounds x_full.
    reuse_tokens = (len(enc.static) + sum(len(x) for x in enc.queries)
                    + float((lengths - prefix).sum()))
    return {"pairs_truncated": int(enc.truncated.sum()),
            "prompt_tokens_mean": float(lengths.mean()),
            "shared_prefix_tokens_mean": float(prefix.mean()),
            "reuse_token_bound_x_full": float(lengths.sum() / reuse_tokens)}


def format_lm_report(report: dict[str, Any]) -> str:
    """The human-readable table printed by the command."""
    hw, st, sp = report["hardware"], report["settings"], report["reference_spread"]
    lines = [
        f"pairs: {report['pairs']['source']}: {report['pairs']['count']} pairs "
        f"({st['pairs_truncated']} truncated to {st['max_length']} tokens; prompts "
        f"{st['prompt_tokens_mean']:.0f} tokens on average, of which "
        f"{st['shared_prefix_tokens_mean']:.0f} shared with the query's other candidates; "
        f"prefix reuse runs {st['reuse_token_bound_x_full']:.2f}x fewer tokens than full "
        "scoring, the bound of its x full at this length)",
        f"model: {st['model']} (causal-lm, template {st['template']}, batch "
        f"{st['batch_size']}, device {st['device']}; peer: {st['peer']})",
        hardware_line(hw),
        f"dtype auto -> {report['auto']['dtype']}; {st['rounds']} interleaved rounds, medians",
        f"{sp['reference']} scores per query: std {sp['std_median']:.3g} (median), smallest gap "
        f"between two candidates {sp['gap_min']:.2e} (an error above a gap can swap the pair)",
        "",
    ]
    rows = []
    for name, e in report["methods"].items():
        f = e["fidelity_vs_fp32"]
        rows.append([name, f"{e['pairs_per_s']:.2f}",
                     f"{e['x_peer']:.2f}" if "x_peer" in e else "-",
                     f"{e['x_full']:.2f}" if "x_full" in e else "-",
                     f"{f['max_abs_diff']:.2e}", f"{f['kendall_tau_mean']:.4f}",
                     f"{f['kendall_tau_min']:.4f}", f"{f['ndcg10_diff']:+.4f}"])
    reference = next(iter(report["methods"].values()))["fidelity_vs_fp32"]["reference"]
    lines.append(text_table(["method", "pairs/s", "x peer", "x full", f"max|d| vs {reference}",
                             "tau mean", "tau min", "dnDCG@10"], rows))
    return "\n".join(lines)
