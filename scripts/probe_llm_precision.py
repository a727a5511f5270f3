"""Where a causal-LM reranker's bf16 ranking error comes from: an exploration, not a test.

Scores one set of real pairs with prefix reuse in fp32 (the reference) and in bf16 autocast
(the engine's ``dtype: auto`` on a CPU with native bf16: fp32 weights, matmuls in bf16, the
residual stream, norms and the two-token head in fp32), then in bf16 with parts of the body
kept in fp32:

- ``bf16+attention-fp32``: scaled-dot-product attention in fp32 (projections stay bf16);
- ``bf16+first4-fp32`` / ``bf16+last4-fp32``: the first / last four decoder layers in fp32.

For each it prints fidelity against the reference (max |diff|, per-query Kendall tau, nDCG@10
change) and the reference's score spread per query, which is what a rounding error is
compared with. Timings are printed but are only indicative (one pass, no warm-up rounds).

Usage (the random-weight architecture from scripts/build_random_llm.py):
  python scripts/probe_llm_precision.py --model /tmp/qwen3-reranker-0.6b-random \\
      --beir ../shared/data/scifact --depth 20 --queries 10 --max-length 512 \\
      --json benchmarks/probe_llm_precision_cpu_epyc2_scifact10q_top20.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


def _fp32_attention() -> str:
    """Register an attention implementation that runs PyTorch SDPA in fp32 under autocast."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def sdpa_fp32(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                  **kwargs: Any) -> Any:
        with torch.autocast(query.device.type, enabled=False):
            return sdpa_attention_forward(module, query.float(), key.float(), value.float(),
                                          attention_mask, **kwargs)

    AttentionInterface.register("sdpa_fp32", sdpa_fp32)
    AttentionMaskInterface.register("sdpa_fp32", sdpa_mask)  # the same masks as sdpa
    return "sdpa_fp32"


@contextmanager
def fp32_layers(layers: Any, which: set[int]) -> Iterator[None]:
    """Decoder layers ``which`` run with autocast off, on fp32 inputs."""
    saved = {i: layers[i].forward for i in which}

    def wrap(forward: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast("cpu", enabled=False):
                return forward(*(a.float() if torch.is_tensor(a) and a.is_floating_point()
                                 else a for a in args), **kwargs)
        return run

    for i in which:
        layers[i].forward = wrap(saved[i])
    try:
        yield
    finally:
        for i, forward in saved.items():
            layers[i].forward = forward


@contextmanager
def attention(model: Any, name: str) -> Iterator[None]:
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation("sdpa")


def main(argv: list[str] | None = None) -> int:
    from rerank_eval.bench.pairs import Reference, hardware, hardware_line, load_pairs, provenance
    from rerank_eval.engine.lm import CausalLMScorer
    from rerank_eval.rerankers.causal_lm import CausalLM

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--beir", required=True)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    bp = load_pairs(args.beir, depth=args.depth, queries=args.queries)
    ref = CausalLM("fp32", {"model": args.model, "template": "qwen3-reranker",
                            "batch_size": args.batch_size, "max_length": args.max_length,
                            "device": "cpu", "dtype": "float32", "prefix_reuse": True},
                   base_dir=Path.cwd())
    origin = provenance(ref.model_path, ["python", *sys.argv])
    fp32 = ref.scorer
    assert isinstance(fp32, CausalLMScorer)

    def bf16() -> CausalLMScorer:
        """A fresh scorer per variant: a scorer keeps its static prefix's cache across calls,
        and each variant must compute its own."""
        return fp32.sibling(dtype=torch.bfloat16)

    layers = fp32.body.layers
    n = len(layers)
    variants: dict[str, tuple[CausalLMScorer, Callable[[], Any]]] = {
        "fp32": (fp32, lambda: fp32_layers(layers, set())),
        "bf16": (bf16(), lambda: fp32_layers(layers, set())),
        "bf16+attention-fp32": (bf16(), lambda: attention(fp32.model, _fp32_attention())),
        "bf16+first4-fp32": (bf16(), lambda: fp32_layers(layers, set(range(min(4, n))))),
        "bf16+last4-fp32": (bf16(), lambda: fp32_layers(layers, set(range(max(0, n - 4), n)))),
    }
    print(f"pairs: {bp.source}: {len(bp.pairs)}\n{hardware_line(hardware())}", flush=True)
    rows: dict[str, Any] = {}
    reference: Reference | None = None
    for name, (scorer, context) in variants.items():
        with context():
            start = time.perf_counter()
            scores = scorer.score(bp.pairs)[0]
            seconds = time.perf_counter() - start
        if reference is None:
            reference = Reference(bp, scores)
            print("fp32 scores per query: std {std_median:.3g} (median), smallest gap "
                  "{gap_min:.2e}".format(**reference.spread()))
        rows[name] = {"pairs_per_s": len(scores) / seconds, **reference.fidelity(scores)}
        r = rows[name]
        print(f"{name:22s} {r['pairs_per_s']:6.3f} pairs/s  max|d| {r['max_abs_diff']:.2e}  "
              f"tau mean {r['kendall_tau_mean']:.4f}  min {r['kendall_tau_min']:.4f}  "
              f"dnDCG@10 {r['ndcg10_diff']:+.4f}", flush=True)
    if args.json:
        assert reference is not None
        Path(args.json).write_text(json.dumps(
            {"provenance": origin, "hardware": hardware(), "pairs": bp.source,
             "reference_spread": reference.spread(), "variants": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
