"""Small seeded BEIR collections written to a temp folder, for end-to-end tests that need more
queries than the bundled quickstart (several scoring chunks) but no shared data."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("protein cell gene tumor insulin vitamin receptor brain heart lung virus enzyme "
         "immune kidney liver blood bone muscle neuron therapy dose trial risk mouse human "
         "signal pathway expression mutation infection cancer").split()


def write_beir(folder: Path, *, queries: int = 80, docs: int = 240, seed: int = 0) -> Path:
    """A BEIR folder with ``queries`` judged queries (1-3 relevant docs each) over ``docs``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for i in range(docs):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
            f.write(json.dumps({"_id": f"d{i}", "title": f"doc {i}", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for i in range(queries):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
            f.write(json.dumps({"_id": f"q{i}", "text": text}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i in range(queries):
            for d in rng.sample(range(docs), rng.randint(1, 3)):
                f.write(f"q{i}\td{d}\t{rng.randint(1, 2)}\n")
    return folder


def write_config(path: Path, data_dir: Path, model_dir: Path, *, depth: int = 10,
                 depths: list[int] | None = None, metrics: list[str] | None = None,
                 extra: str = "") -> Path:
    """An experiment YAML: BM25 top-``depth`` of ``data_dir`` reranked by ``model_dir``."""
    depths = depths or [depth]
    metrics = metrics or ["ndcg@10", f"recall@{depth}"]
    path.write_text(
        "name: synth\n"
        f"dataset: {{beir: {data_dir}}}\n"
        f"first_stage: {{bm25: {{}}, depth: {depth}}}\n"
        "rerankers:\n"
        f"  - {{name: tiny, kind: cross-encoder, model: {model_dir}, max_length: 64,"
        " batch_size: 16}\n"
        f"depths: {json.dumps(depths)}\n"
        f"metrics: {json.dumps(metrics)}\n"
        "sanity_check: false\n" + extra,
        encoding="utf-8",
    )
    return path
