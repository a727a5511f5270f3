"""`rerank-eval bench` of a cross-encoder: how fast the harness scores real pairs, next to what a
user would write.

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
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank_eval.bench.pairs import (
    SHORT,
    UNKNOWN,
    BenchPairs,
    Reference,
    dtype_name,
    hardware,
    hardware_line,
    provenance,
    speed,
    time_rounds,
)
from rerank_eval.errors import InputError
from rerank_eval.models import load_pretrained, quiet_transformers, resolve_dtype
from rerank_eval.reports.terminal import text_table
from rerank_eval.rerankers.cross_encoder import CrossEncoder

logger = logging.getLogger(__name__)

# --backends names -> the cross-encoder's backend settings
BACKENDS = {"onnx": {"backend": "onnx"}, "onnx-int8": {"backend": "onnx", "dtype": "int8"},
            "openvino": {"backend": "openvino"},
            "openvino-fp32": {"backend": "openvino", "dtype": "float32"}}

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
    argv: Sequence[str] | None = None,
    backends: Sequence[str] = (),
) -> dict[str, Any]:
    """Time every method on ``bp`` in ``rounds`` interleaved rounds; plain data back, with
    the hardware and the :func:`provenance` (``argv``: the command line that ran it).
    ``backends``: names of :data:`BACKENDS` to time beside the torch engine."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise InputError(f"bench: --backends: unknown {unknown[0]!r} (one of "
                         f"{', '.join(BACKENDS)})")
    n = len(bp.pairs)
    base = {"model": model, "batch_size": batch_size, "max_length": max_length,
            "device": device, "compile": False, "max_tokens_per_batch": max_tokens_per_batch}
    ref = CrossEncoder("fp32", {**base, "dtype": "float32"}, base_dir=Path.cwd())
    origin = provenance(ref.model_path, argv)  # the code as it was when the timing began
    dev = ref.scorer.device
    auto_dtype = resolve_dtype("auto", dev)
    auto_name = f"engine/{SHORT[dtype_name(auto_dtype)]}"
    engines, methods = _engine_methods(bp, ref, base, dtypes, auto_dtype)
    _add_backends(bp, base, backends, engines, methods)
    compile_s = _add_compiled(bp, base, batch_size, engines, methods) if compile_ else None
    with tempfile.TemporaryDirectory(prefix="rerank-eval-bench-") as tmp:
        st = None
        if peer:
            st = _peer(ref.model_path, ref.scorer.model, ref.scorer.tokenizer,
                       ref.head_untrained, ref.scorer.max_length, dev, Path(tmp))
            methods["peer"] = _peer_method(st, ref, bp.pairs, batch_size)
        _warm_up(methods, engines, st, bp.pairs, batch_size)
        times, scores = time_rounds(methods, rounds, dev, n, logger)
    return {
        "provenance": origin,
        "hardware": hardware(),
        "pairs": {"source": bp.source, "count": n, "queries": len(bp.first_stage)},
        "settings": {"model": model, "model_path": ref.model_path, "batch_size": batch_size,
                     "max_length": ref.scorer.max_length, "rounds": rounds, "device": str(dev),
                     "max_tokens_per_batch": max_tokens_per_batch,
                     "head_untrained": ref.resolved["head_untrained"],
                     "pairs_truncated": _truncated(ref, bp)},
        "auto": {"dtype": dtype_name(auto_dtype), "method": auto_name},
        "compile_s": compile_s,
        "methods": _method_results(bp, times, scores, engines, auto_name),
    }


def _engine_methods(bp: BenchPairs, ref: CrossEncoder, base: dict[str, Any],
                    dtypes: Sequence[str], auto_dtype: torch.dtype
                    ) -> tuple[dict[str, CrossEncoder], dict[str, Callable[[], np.ndarray]]]:
    """The engine and the ceiling of each dtype asked for, plus fp32 (fidelity is measured
    against it) and the auto dtype; where the engine uses CUDA graphs, the auto dtype without
    them too. ``ref`` is the fp32 engine."""
    dev = ref.scorer.device
    # Variants by name: fp32 / bf16 / fp16 (autocast), int8 (dynamic quantization, opt-in).
    wanted = ["int8" if d == "int8" else dtype_name(resolve_dtype(d, dev)) for d in dtypes]
    for must in ("float32", dtype_name(auto_dtype)):  # fidelity is measured against fp32
        if must not in wanted:
            wanted.insert(0 if must == "float32" else len(wanted), must)
    engines: dict[str, CrossEncoder] = {}
    methods: dict[str, Callable[[], np.ndarray]] = {}

    def add(short: str, eng: CrossEncoder) -> None:
        engines[f"engine/{short}"] = eng
        methods[f"ceiling/{short}"] = Ceiling(eng, bp.pairs)
        methods[f"engine/{short}"] = _engine_scores(eng, bp.pairs)

    for dt in dict.fromkeys(wanted):
        short = SHORT.get(dt, dt)
        add(short, ref if dt == "float32" else CrossEncoder(short, {**base, "dtype": dt},
                                                            base_dir=Path.cwd()))
    if engines[f"engine/{SHORT[dtype_name(auto_dtype)]}"].scorer.graphs is not None:
        # What CUDA graphs bring, side by side.
        short = f"{SHORT[dtype_name(auto_dtype)]}-eager"
        eager = {**base, "dtype": dtype_name(auto_dtype), "cuda_graphs": False}
        add(short, CrossEncoder(short, eager, base_dir=Path.cwd()))
    return engines, methods


def _add_backends(bp: BenchPairs, base: dict[str, Any], backends: Sequence[str],
                  engines: dict[str, CrossEncoder],
                  methods: dict[str, Callable[[], np.ndarray]]) -> None:
    """The same reranker through each exported artifact asked for (``backend/<name>``)."""
    for name in dict.fromkeys(backends):
        art = CrossEncoder(name, {**base, "device": "cpu", **BACKENDS[name]},
                           base_dir=Path.cwd())
        engines[f"backend/{name}"] = art
        methods[f"backend/{name}"] = _engine_scores(art, bp.pairs)


def _engine_scores(eng: CrossEncoder, pairs: list[tuple[str, str]]
                   ) -> Callable[[], np.ndarray]:
    """The engine's scores of ``pairs``, as a run computes them."""
    return lambda: eng.scorer.score(pairs)[0]


def _add_compiled(bp: BenchPairs, base: dict[str, Any], batch_size: int,
                  engines: dict[str, CrossEncoder],
                  methods: dict[str, Callable[[], np.ndarray]]) -> float:
    """Add ``engine/auto+compile`` and compile it on the shortest and longest pairs before any
    timing; returns the seconds that took."""
    comp = CrossEncoder("auto+compile", {**base, "dtype": "auto", "compile": True},
                        base_dir=Path.cwd())
    engines["engine/auto+compile"] = comp
    methods["engine/auto+compile"] = _engine_scores(comp, bp.pairs)
    warm = sorted(range(len(bp.pairs)), key=lambda i: len(bp.pairs[i][1]))
    sample = [bp.pairs[i] for i in warm[: 2 * batch_size] + warm[-2 * batch_size :]]
    t0 = time.perf_counter()
    comp.scorer.score(sample)
    compile_s = time.perf_counter() - t0
    logger.info(f"compile + first batches: {compile_s:.1f} s")
    return compile_s


def _peer_method(st: Any, ref: CrossEncoder, pairs: list[tuple[str, str]], batch_size: int
                 ) -> Callable[[], np.ndarray]:
    """The peer's raw scores of ``pairs`` (``st``: the sentence-transformers CrossEncoder)."""
    def predict() -> np.ndarray:
        out = st.predict(pairs, batch_size=batch_size, show_progress_bar=False,
                         activation_fn=torch.nn.Identity(), convert_to_tensor=True)
        if out.ndim == 2:  # several labels: the harness's choice of the relevant one
            out = ref.scorer.head(out)
        return out.float().cpu().numpy().astype(np.float64)

    return predict


def _warm_up(methods: dict[str, Callable[[], np.ndarray]], engines: dict[str, CrossEncoder],
             st: Any, pairs: list[tuple[str, str]], batch_size: int) -> None:
    """One small call each (allocator, thread pools, oneDNN primitives); with CUDA graphs,
    every batch shape twice (a shape is captured on its second occurrence)."""
    for name in methods:
        if name.startswith("backend/"):
            engines[name].scorer.score(pairs[:batch_size])
        elif name.startswith(("engine/", "ceiling/")):
            scorer = engines[name.replace("ceiling/", "engine/")].scorer
            if scorer.graphs is not None:
                methods[name]()
                methods[name]()
            elif name.startswith("engine/"):
                scorer.score(pairs[:batch_size])
        elif name == "peer":
            st.predict(pairs[:batch_size], batch_size=batch_size, show_progress_bar=False)


def _method_results(bp: BenchPairs, times: dict[str, list[float]],
                    scores: dict[str, np.ndarray], engines: dict[str, CrossEncoder],
                    auto_name: str) -> dict[str, Any]:
    """Per method: speed, its ratios to the peer and to its ceiling, and its fidelity to the
    fp32 engine."""
    n = len(bp.pairs)
    results: dict[str, Any] = {}
    fp32 = Reference(bp, scores["engine/fp32"])
    for name in times:
        entry = speed(n, times, name)
        # The compiled engine is compared with the eager ceiling of the same dtype.
        ceiling = auto_name if name == "engine/auto+compile" else name
        ceiling = ceiling.replace("engine/", "ceiling/")
        if ceiling in times and ceiling != name:
            entry["x_ceiling"] = statistics.median(
                tc / t for t, tc in zip(times[name], times[ceiling]))
        entry["fidelity_vs_fp32"] = fp32.fidelity(scores[name])
        if name.startswith("backend/"):
            r = engines[name].resolved
            entry["path"] = f"{r['backend']}/{r['dtype']} ({r['runtime']})"
            entry["compile_error"] = None
        elif name in engines:
            entry["path"] = engines[name].scorer.path
            entry["compile_error"] = engines[name].scorer.compile_error
        results[name] = entry
    return results


def _truncated(engine: CrossEncoder, bp: BenchPairs) -> int:
    return engine.scorer.encode(bp.pairs).truncated


def format_report(report: dict[str, Any]) -> str:
    """The human-readable table printed by the command."""
    hw, st = report["hardware"], report["settings"]
    prov = report.get("provenance") or {}
    dirty = prov.get("dirty")
    lines = [
        f"rerank-eval {prov.get('versions', {}).get('rerank-eval', '?')} at commit "
        f"{prov.get('commit', UNKNOWN)}" + (" (dirty tree)" if dirty is True else "")
        + f"; model sha256 {prov.get('model', {}).get('weights_sha256', UNKNOWN)[:12]}",
        f"pairs: {report['pairs']['source']}: {report['pairs']['count']} pairs "
        f"({st['pairs_truncated']} truncated to {st['max_length']} tokens)",
        f"model: {st['model']} (batch {st['batch_size']}, max_length {st['max_length']}, "
        f"device {st['device']}{', untrained head (seeded)' if st['head_untrained'] else ''})",
        hardware_line(hw),
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
