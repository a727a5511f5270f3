"""Time from SIGINT (a user's Ctrl-C) to exit of `rerank-eval run`, on each scoring path.

Each path is a real CLI subprocess scoring SciFact test (100 seeded queries, BM25 top-30 =
3,000 pairs, 3 cache chunks) with ../shared/models/minilm-l6-scifact-ce; SIGINT is sent as soon
as the first chunk's scores are in the score cache, i.e. in the middle of a model forward pass.
The child starts with SIGINT at its default, as from a shell prompt (a background job of a
non-interactive shell inherits it ignored). It prints, per path: seconds from the signal to
exit, exit code, cached rows kept, the last line of stderr.
Usage: python scripts/measure_sigint.py [--paths fp32,bf16,compiled,ray] [--signal INT|TERM]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rerank_eval.scoring.cache import count_scores

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PATHS = {
    "fp32": "dtype: float32",
    "bf16": "dtype: bfloat16",
    "compiled": "dtype: float32, compile: true",
    "ray": "dtype: float32",
}


def measure(name: str, tmp: Path, sig: signal.Signals) -> str:
    executor = "executor: {ray: {address: local, workers: 1, num_cpus_per_worker: 2}}\n" \
        if name == "ray" else ""
    config = tmp / f"{name}.yaml"
    config.write_text(
        f"name: sigint-{name}\n"
        f"dataset: {{beir: {SHARED / 'data/scifact'}, sample: {{queries: 100, seed: 0}}}}\n"
        "first_stage: {bm25: {}, depth: 30}\n"
        f"rerankers: [{{name: ce, kind: cross-encoder, model: "
        f"{SHARED / 'models/minilm-l6-scifact-ce'}, max_length: 256, {PATHS[name]}}}]\n"
        "sanity_check: false\nlatency: {queries: 0}\n" + executor, encoding="utf-8")
    cache = tmp / f"{name}.sqlite"
    env = {**os.environ, "RERANK_EVAL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rerank_eval", "run", str(config), "--out",
                             str(tmp / name), "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 900
    while count_scores(cache) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None:
        return f"{name:9s} finished before SIGINT (rc {proc.returncode})"
    proc.send_signal(sig)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=300)
    exit_s = time.monotonic() - sent
    last = (err.strip().splitlines() or [""])[-1]
    return (f"{name:9s} {sig.name}->exit {exit_s:6.2f} s  rc {proc.returncode}  cached rows "
            f"{count_scores(cache)}  stderr: {last}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--signal", default="INT", choices=["INT", "TERM"])
    args = parser.parse_args()
    sig = signal.Signals[f"SIG{args.signal}"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.paths.split(","):
            print(measure(name, Path(tmp), sig), flush=True)


if __name__ == "__main__":
    main()
