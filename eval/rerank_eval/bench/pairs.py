"""What every ``rerank-eval bench`` shares: real first-stage pairs, who measured, and
ranking fidelity between two sets of scores (per-query Kendall tau, nDCG@10)."""

from __future__ import annotations

import importlib.metadata
import logging
import random
import statistics
import subprocess
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
from rerank_eval.models import cpu_has_native_bf16, hash_model_files, model_identity

SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "int8": "int8"}


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


def hardware_line(hw: dict[str, Any]) -> str:
    """The report's ``hardware:`` line."""
    return (f"hardware: {hw['cpu_model']}, {hw['cores_available']} cores, {hw['threads_used']} "
            f"torch threads, native bf16: {hw['cpu_native_bf16']}, torch {hw['torch']}"
            + (f", GPU {hw['gpu_model']}" if hw.get("gpu_model") else "")
            + (f", load avg {hw['load_avg_1m']:.1f}" if hw.get("load_avg_1m") is not None
               else ""))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_rounds(methods: dict[str, Callable[[], np.ndarray]], rounds: int,
                dev: torch.device, n: int, log: logging.Logger, *, width: int = 22,
                digits: int = 1
                ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per round of each method (the order rotates each round), and each method's
    scores from its first round. Each round is logged (method names padded to ``width``,
    pairs/s with ``digits`` decimals)."""
    names = list(methods)
    times: dict[str, list[float]] = {m: [] for m in names}
    scores: dict[str, np.ndarray] = {}
    for r in range(rounds):
        rotated = names[r % len(names):] + names[: r % len(names)]
        for name in rotated:
            sync(dev)
            t0 = time.perf_counter()
            values = methods[name]()
            sync(dev)
            times[name].append(time.perf_counter() - t0)
            scores.setdefault(name, values)
            log.info(f"round {r + 1}/{rounds} {name:<{width}} "
                        f"{n / times[name][-1]:8.{digits}f} pairs/s")
    return times, scores


def speed(n: int, times: dict[str, list[float]], name: str) -> dict[str, Any]:
    """A method's median pairs/s, its rounds, and its median speed-up over the peer."""
    rates = [n / t for t in times[name]]
    entry: dict[str, Any] = {"pairs_per_s": statistics.median(rates),
                             "rounds_pairs_per_s": rates}
    if "peer" in times:
        entry["x_peer"] = statistics.median(
            tp / t for t, tp in zip(times[name], times["peer"]))
    return entry


class Reference:
    """The scores others are compared with, and :meth:`fidelity`: how far other scores rank
    like them (max |difference|, per-query Kendall tau mean and min, nDCG@10 and its
    difference to the reference's)."""

    def __init__(self, bp: BenchPairs, scores: np.ndarray):
        self.bp = bp
        self.scores = scores
        self.by_query = by_query(bp.keys, scores)
        self.ndcg10 = ndcg10(bp, scores)

    def spread(self) -> dict[str, float]:
        """How far apart the reference ranks candidates: the median over queries of the
        scores' standard deviation, and the smallest gap between two candidates of one query.
        A rounding error larger than a gap can swap that pair (one swap among 20 candidates
        is Kendall tau 0.989), so tau is read against these."""
        stds, gaps = [], []
        for scores in self.by_query.values():
            v = np.sort(np.fromiter(scores.values(), dtype=np.float64))
            stds.append(float(v.std()))
            if len(v) > 1:
                gaps.append(float(np.diff(v).min()))
        return {"std_median": float(np.median(stds)) if stds else 0.0,
                "gap_min": min(gaps) if gaps else 0.0}

    def fidelity(self, values: np.ndarray) -> dict[str, float]:
        taus = kendall_per_query(self.by_query, by_query(self.bp.keys, values))
        ndcg = ndcg10(self.bp, values)
        return {"max_abs_diff": float(np.max(np.abs(values - self.scores))),
                "kendall_tau_mean": float(np.mean(taus)),
                "kendall_tau_min": float(np.min(taus)),
                "ndcg10": ndcg, "ndcg10_diff": ndcg - self.ndcg10}


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


def by_query(keys: Sequence[tuple[str, str]], values: np.ndarray) -> dict[str, dict[str, float]]:
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
    run = rerank_at_depth(bp.first_stage, by_query(bp.keys, values), depth, "bench")
    qrels = {q: bp.dataset.qrels[q] for q in bp.first_stage if q in bp.dataset.qrels}
    # Two metrics: evaluate_ranking trips over ranx's single-metric return shape.
    specs = parse_metrics(["ndcg@10", "mrr@10"])
    return float(evaluate_ranking(run.ranking, qrels, specs).means[specs[0].name])




def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


#: Packages whose versions a bench report records (they decide its speed and scores).
PROVENANCE_PACKAGES = ("torch", "transformers", "sentence-transformers", "numpy", "rerank-eval")
UNKNOWN = "unknown"


def git_state(folder: str | Path) -> dict[str, Any]:
    """The commit of the git tree holding ``folder`` and whether tracked files differ from it
    (``dirty``; untracked files do not count); both ``"unknown"`` outside git (an installed
    package) or without git."""
    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                  text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return None

    head = git("rev-parse", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    status = git("status", "--porcelain", "--untracked-files=no")
    dirty: bool | str = UNKNOWN if status is None or status.returncode != 0 \
        else bool(status.stdout.strip())
    return {"commit": head.stdout.strip(), "dirty": dirty}


def package_versions(names: Sequence[str] = PROVENANCE_PACKAGES) -> dict[str, str]:
    """Installed version of each package (``"not installed"`` when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(model_path: str, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """What a recorded bench needs to be trusted and repeated: the rerank-eval commit (and
    whether its tree was dirty), the command line, the model's content hash
    (``models.hash_model_files``, the score cache's) and the package versions."""
    import rerank_eval

    if Path(model_path).is_dir():
        model = {"path": model_path, "weights_sha256": hash_model_files(model_path)}
    else:
        model = {"path": model_path, **model_identity(model_path)}
    return {**git_state(Path(rerank_eval.__file__).parent),
            "argv": list(argv) if argv is not None else None,
            "model": model, "versions": package_versions()}
