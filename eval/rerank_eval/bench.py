"""`rerank-eval bench`: how fast the harness scores real pairs, next to what a user would write.

On one set of real pairs (a dataset's first-stage top-d) and one model, in one process, in
interleaved rounds (the order rotates each round, so load drift on a shared machine hits every
method alike), it times:

- ``peer``: sentence-transformers ``CrossEncoder.predict`` (same weights, pairs, batch size and
  max_length; identity activation so scores are raw logits);
- ``ceiling/<dtype>``: a bare forward loop over pre-tokenized, pre-padded, length-sorted
  batches already on the device (no tokenization, no Python around it), through the engine's
  own forward path (replayed CUDA graphs on a GPU): the most a scorer can reach on this
  hardware with this dtype;
- ``engine/<variant>``: the harness's CrossEncoder reranker as a run uses it;
- ``backend/<name>`` (``--backends``): the same reranker through an exported artifact
  (``onnx``, ``onnx-int8``, ``openvino`` at the precision OpenVINO picks, ``openvino-fp32``);
- on a GPU, ``ceiling/<auto>-eager`` and ``engine/<auto>-eager``: the same without CUDA graphs.

Ratios are per round (engine/peer, engine/ceiling of its dtype), reported as medians; fidelity
is measured against the fp32 engine's scores (max |diff|, per-query Kendall tau, nDCG@10).
"""

from __future__ import annotations

import logging
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank_eval.datasets import Dataset, load_dataset
from rerank_eval.errors import InputError
from rerank_eval.hardware import hardware_fingerprint
from rerank_eval.models import (
    cpu_has_native_bf16,
    load_pretrained,
    quiet_transformers,
    resolve_dtype,
)
from rerank_eval.reports.terminal import text_table
from rerank_eval.rerankers.cross_encoder import CrossEncoder

logger = logging.getLogger(__name__)

SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "int8": "int8"}
# --backends names -> the cross-encoder's backend settings
BACKENDS = {"onnx": {"backend": "onnx"}, "onnx-int8": {"backend": "onnx", "dtype": "int8"},
            "openvino": {"backend": "openvino"},
            "openvino-fp32": {"backend": "openvino", "dtype": "float32"}}


@dataclass
class BenchPairs:
    """The pairs to score, with the ranking context needed to measure fidelity."""

    dataset: Dataset
    source: str
    first_stage: dict[str, list[str]]  # query id -> candidate ids (first-stage order)
    keys: list[tuple[str, str]]
    pairs: list[tuple[str, str]] = field(repr=False)


def load_pairs(beir: str, *, run: str | None = None, depth: int = 100, queries: int | None = None,
               seed: int = 0) -> BenchPairs:
    """First-stage top-``depth`` of a BEIR folder: BM25 (the project's) or a TREC run file.
    ``queries``: a seeded random subset of the judged queries (sorted ids)."""
    from rerank_eval.first_stage import BM25, RunFile

    dataset = load_dataset("beir", beir, base_dir=Path.cwd())
    qids = sorted(dataset.queries)
    if queries is not None and queries < len(qids):
        qids = sorted(random.Random(seed).sample(qids, queries))
    dataset.queries = {q: dataset.queries[q] for q in qids}
    if run:
        stage = RunFile({"path": run}, base_dir=Path.cwd())
        ranking = stage.retrieve(dataset, depth).ranking
        ranking = {q: docs for q, docs in ranking.items() if q in dataset.queries}
        source = f"{dataset.id} run {Path(run).name} top-{depth}"
    else:
        ranking = BM25({}, base_dir=Path.cwd()).retrieve(dataset, depth).ranking
        source = f"{dataset.id} BM25 top-{depth}"
    ranking = {q: list(ranking[q]) for q in sorted(ranking) if ranking[q]}
    if not ranking:
        raise InputError(f"bench: no first-stage candidates for the chosen queries of {beir}")
    keys = [(q, d) for q, docs in ranking.items() for d in docs]
    pairs = [(dataset.queries[q], dataset.corpus[d]) for q, d in keys]
    subset = "" if queries is None else f" (seeded subset, seed {seed})"
    return BenchPairs(dataset, f"{source}, {len(ranking)} queries{subset}", ranking, keys, pairs)


def hardware() -> dict[str, Any]:
    """Who measured: the run's hardware fingerprint (CPU, flags, cores, threads, GPU,
    versions, load) and what ``dtype: auto`` resolves to on this CPU."""
    return {**hardware_fingerprint(), "cpu_native_bf16": cpu_has_native_bf16()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Ceiling:
    """Bare forward passes over batches built and moved to the device before timing starts:
    the engine's batching (real token length, longest first) and the engine's forward path
    (a CUDA graph per shape where the engine uses them, else eager)."""

    def __init__(self, engine: CrossEncoder, pairs: Sequence[tuple[str, str]]):
        self.scorer = engine.scorer
        s = self.scorer
        enc = s.encode(pairs)
        self.order = []
        self.batches = []
        for rows in s.plan_batches(enc.lengths):
            self.batches.append((s.batch(enc, rows).to(s.device), len(rows)))
            self.order.append(enc.index[rows])
        self.n = len(pairs)

    def __call__(self) -> np.ndarray:
        s = self.scorer
        with torch.inference_mode():
            outs = [s.forward(batch, rows) for batch, rows in self.batches]
        flat = torch.cat(outs).cpu().numpy()
        out = np.empty(self.n, dtype=np.float64)
        out[np.concatenate(self.order)] = flat
        return out


def _peer(model_path: str, scorer_model, tokenizer, head_untrained: bool, max_length: int,
          device: torch.device, tmp: Path):
    """sentence-transformers CrossEncoder with the very weights the harness uses (a checkpoint
    without a trained head gets the harness's seeded head, saved to ``tmp``)."""
    from sentence_transformers import CrossEncoder as STCrossEncoder

    path = model_path
    if head_untrained:
        with quiet_transformers("bench: peer"):
            scorer_model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        path = str(tmp)
    return load_pretrained(STCrossEncoder, path, "bench: peer", max_length=max_length,
                           device=str(device), activation_fn=torch.nn.Identity(),
                           model_kwargs={"dtype": torch.float32})


def kendall_per_query(ref: dict[str, dict[str, float]],
                      other: dict[str, dict[str, float]]) -> list[float]:
    """Kendall tau-b between two score lists for each query (1.0 where both are constant)."""
    from scipy.stats import kendalltau

    taus = []
    for q, scores in ref.items():
        docs = list(scores)
        a = [scores[d] for d in docs]
        b = [other[q][d] for d in docs]
        tau = kendalltau(a, b).statistic
        taus.append(1.0 if np.isnan(tau) else float(tau))
    return taus


def _by_query(keys: Sequence[tuple[str, str]], values: np.ndarray) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for (q, d), v in zip(keys, values):
        out.setdefault(q, {})[d] = float(v)
    return out


def ndcg10(bp: BenchPairs, values: np.ndarray) -> float:
    """Mean nDCG@10 of the first stage reranked by ``values`` (project metrics)."""
    from rerank_eval.metrics.evaluate import evaluate_ranking
    from rerank_eval.metrics.specs import parse_metrics
    from rerank_eval.runs import rerank_at_depth

    depth = max(len(d) for d in bp.first_stage.values())
    run = rerank_at_depth(bp.first_stage, _by_query(bp.keys, values), depth, "bench")
    qrels = {q: bp.dataset.qrels[q] for q in bp.first_stage if q in bp.dataset.qrels}
    # Two metrics: evaluate_ranking trips over ranx's single-metric return shape.
    specs = parse_metrics(["ndcg@10", "mrr@10"])
    return float(evaluate_ranking(run.ranking, qrels, specs).means[specs[0].name])


def run_bench(
    bp: BenchPairs,
    model: str,
    *,
    batch_size: int = 32,
    max_length: int = 256,
    rounds: int = 3,
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    compile_: bool = False,
    device: str = "auto",
    max_tokens_per_batch: int | None = None,
    peer: bool = True,
    backends: Sequence[str] = (),
) -> dict[str, Any]:
    """Time every method on ``bp`` in ``rounds`` interleaved rounds; plain data back.
    ``backends``: names of :data:`BACKENDS` to time beside the torch engine."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise InputError(f"bench: --backends: unknown {unknown[0]!r} (one of "
                         f"{', '.join(BACKENDS)})")
    n = len(bp.pairs)
    base = {"model": model, "batch_size": batch_size, "max_length": max_length,
            "device": device, "compile": False, "max_tokens_per_batch": max_tokens_per_batch}
    ref = CrossEncoder("fp32", {**base, "dtype": "float32"}, base_dir=Path.cwd())
    dev = ref.scorer.device
    auto_dtype = resolve_dtype("auto", dev)
    # Variants by name: fp32 / bf16 / fp16 (autocast), int8 (dynamic quantization, opt-in).
    wanted = ["int8" if d == "int8" else _name(resolve_dtype(d, dev)) for d in dtypes]
    for must in ("float32", _name(auto_dtype)):  # fidelity is measured against fp32
        if must not in wanted:
            wanted.insert(0 if must == "float32" else len(wanted), must)
    engines: dict[str, CrossEncoder] = {}
    methods: dict[str, Callable[[], np.ndarray]] = {}
    for dt in dict.fromkeys(wanted):
        short = SHORT.get(dt, dt)
        eng = ref if dt == "float32" else CrossEncoder(short, {**base, "dtype": dt},
                                                       base_dir=Path.cwd())
        engines[f"engine/{short}"] = eng
        methods[f"ceiling/{short}"] = Ceiling(eng, bp.pairs)
        methods[f"engine/{short}"] = (lambda e=eng: e.scorer.score(bp.pairs)[0])
    auto_name = f"engine/{SHORT[_name(auto_dtype)]}"
    if engines[auto_name].scorer.graphs is not None:  # what CUDA graphs bring, side by side
        short = f"{SHORT[_name(auto_dtype)]}-eager"
        eager = CrossEncoder(short, {**base, "dtype": _name(auto_dtype), "cuda_graphs": False},
                             base_dir=Path.cwd())
        engines[f"engine/{short}"] = eager
        methods[f"ceiling/{short}"] = Ceiling(eager, bp.pairs)
        methods[f"engine/{short}"] = lambda: eager.scorer.score(bp.pairs)[0]
    for name in dict.fromkeys(backends):
        settings = {**base, "device": "cpu", **BACKENDS[name]}
        art = CrossEncoder(name, settings, base_dir=Path.cwd())
        engines[f"backend/{name}"] = art
        methods[f"backend/{name}"] = (lambda e=art: e.scorer.score(bp.pairs)[0])
    compile_s = None
    if compile_:
        comp = CrossEncoder("auto+compile", {**base, "dtype": "auto", "compile": True},
                            base_dir=Path.cwd())
        engines["engine/auto+compile"] = comp
        methods["engine/auto+compile"] = lambda: comp.scorer.score(bp.pairs)[0]
        warm = sorted(range(n), key=lambda i: len(bp.pairs[i][1]))
        sample = [bp.pairs[i] for i in warm[: 2 * batch_size] + warm[-2 * batch_size :]]
        t0 = time.perf_counter()
        comp.scorer.score(sample)
        compile_s = time.perf_counter() - t0
        logger.info(f"compile + first batches: {compile_s:.1f} s")
    tmp = tempfile.TemporaryDirectory(prefix="rerank-eval-bench-")
    if peer:
        st = _peer(ref.model_path, ref.scorer.model, ref.scorer.tokenizer,
                   ref.resolved["head_untrained"], ref.scorer.max_length, dev, Path(tmp.name))
        def predict() -> np.ndarray:
            out = st.predict(bp.pairs, batch_size=batch_size, show_progress_bar=False,
                             activation_fn=torch.nn.Identity(), convert_to_tensor=True)
            if out.ndim == 2:  # several labels: the harness's choice of the relevant one
                out = ref.scorer.head(out)
            return out.float().cpu().numpy().astype(np.float64)

        methods["peer"] = predict
    # Warm-up: one small call each (allocator, thread pools, oneDNN primitives); with CUDA
    # graphs, every batch shape twice (a shape is captured on its second occurrence).
    for name in methods:
        if name.startswith("backend/"):
            engines[name].scorer.score(bp.pairs[:batch_size])
        elif name.startswith(("engine/", "ceiling/")):
            scorer = engines[name.replace("ceiling/", "engine/")].scorer
            if scorer.graphs is not None:
                methods[name]()
                methods[name]()
            elif name.startswith("engine/"):
                scorer.score(bp.pairs[:batch_size])
        elif name == "peer":
            st.predict(bp.pairs[:batch_size], batch_size=batch_size, show_progress_bar=False)
    names = list(methods)
    times: dict[str, list[float]] = {m: [] for m in names}
    scores: dict[str, np.ndarray] = {}
    for r in range(rounds):
        rotated = names[r % len(names):] + names[: r % len(names)]
        for name in rotated:
            _sync(dev)
            t0 = time.perf_counter()
            values = methods[name]()
            _sync(dev)
            times[name].append(time.perf_counter() - t0)
            scores.setdefault(name, values)
            logger.info(f"round {r + 1}/{rounds} {name:<22} {n / times[name][-1]:8.1f} pairs/s")
    tmp.cleanup()

    results: dict[str, Any] = {}
    fp32 = scores["engine/fp32"]
    ref_q = _by_query(bp.keys, fp32)
    ref_ndcg = ndcg10(bp, fp32)
    for name in names:
        rates = [n / t for t in times[name]]
        entry: dict[str, Any] = {"pairs_per_s": statistics.median(rates),
                                 "rounds_pairs_per_s": rates}
        if "peer" in times:
            entry["x_peer"] = statistics.median(
                tp / t for t, tp in zip(times[name], times["peer"]))
        # The compiled engine is compared with the eager ceiling of the same dtype.
        ceiling = auto_name if name == "engine/auto+compile" else name
        ceiling = ceiling.replace("engine/", "ceiling/")
        if ceiling in times and ceiling != name:
            entry["x_ceiling"] = statistics.median(
                tc / t for t, tc in zip(times[name], times[ceiling]))
        taus = kendall_per_query(ref_q, _by_query(bp.keys, scores[name]))
        ndcg = ndcg10(bp, scores[name])
        entry["fidelity_vs_fp32"] = {
            "max_abs_diff": float(np.max(np.abs(scores[name] - fp32))),
            "kendall_tau_mean": float(np.mean(taus)), "kendall_tau_min": float(np.min(taus)),
            "ndcg10": ndcg, "ndcg10_diff": ndcg - ref_ndcg,
        }
        if name.startswith("backend/"):
            r = engines[name].resolved
            entry["path"] = f"{r['backend']}/{r['dtype']} ({r['runtime']})"
            entry["compile_error"] = None
        elif name in engines:
            entry["path"] = engines[name].scorer.path
            entry["compile_error"] = engines[name].scorer.compile_error
        results[name] = entry
    return {
        "hardware": hardware(),
        "pairs": {"source": bp.source, "count": n, "queries": len(bp.first_stage)},
        "settings": {"model": model, "model_path": ref.model_path, "batch_size": batch_size,
                     "max_length": ref.scorer.max_length, "rounds": rounds, "device": str(dev),
                     "max_tokens_per_batch": max_tokens_per_batch,
                     "head_untrained": ref.resolved["head_untrained"],
                     "pairs_truncated": _truncated(ref, bp)},
        "auto": {"dtype": _name(auto_dtype), "method": auto_name},
        "compile_s": compile_s,
        "methods": results,
    }


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _truncated(engine: CrossEncoder, bp: BenchPairs) -> int:
    return engine.scorer.encode(bp.pairs).truncated


def format_report(report: dict[str, Any]) -> str:
    """The human-readable table printed by the command."""
    hw, st = report["hardware"], report["settings"]
    lines = [
        f"pairs: {report['pairs']['source']}: {report['pairs']['count']} pairs "
        f"({st['pairs_truncated']} truncated to {st['max_length']} tokens)",
        f"model: {st['model']} (batch {st['batch_size']}, max_length {st['max_length']}, "
        f"device {st['device']}{', untrained head (seeded)' if st['head_untrained'] else ''})",
        f"hardware: {hw['cpu_model']}, {hw['cores_available']} cores, {hw['threads_used']} "
        f"torch threads, native bf16: {hw['cpu_native_bf16']}, torch {hw['torch']}"
        + (f", GPU {hw['gpu_model']}" if hw.get("gpu_model") else "")
        + (f", load avg {hw['load_avg_1m']:.1f}" if hw.get("load_avg_1m") is not None else ""),
        f"dtype auto -> {report['auto']['dtype']} ({report['auto']['method']}); "
        f"{st['rounds']} interleaved rounds, medians"
        + (f"; compile took {report['compile_s']:.1f} s" if report.get("compile_s") else ""),
        "",
    ]
    rows = []
    for name, e in report["methods"].items():
        f = e["fidelity_vs_fp32"]
        rows.append([name, f"{e['pairs_per_s']:.1f}",
                     f"{e['x_peer']:.2f}" if "x_peer" in e else "-",
                     f"{e['x_ceiling']:.2f}" if "x_ceiling" in e else "-",
                     f"{f['max_abs_diff']:.2e}", f"{f['kendall_tau_mean']:.4f}",
                     f"{f['kendall_tau_min']:.4f}", f"{f['ndcg10_diff']:+.4f}"])
    lines.append(text_table(["method", "pairs/s", "x peer", "x ceil", "max|d|", "tau mean",
                             "tau min", "dnDCG@10"], rows))
    return "\n".join(lines)
