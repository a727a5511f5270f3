"""A real model upgrade, offline: the SciFact cross-encoder's final checkpoint against its
early, under-trained one (../shared/models), each run through the pipeline on a SciFact test
subset. The gate must let the better model replace the worse and block the reverse."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from rerank_eval.cli import main
from rerank_eval.config import load_config
from rerank_eval.runner import run_experiment

QUERIES = 40
DEPTH = 10


def _evaluate(model: Path, scifact: Path, out: Path) -> Path:
    cfg = {
        "name": f"upgrade-{model.name}",
        "dataset": {"beir": str(scifact), "split": "test",
                    "sample": {"queries": QUERIES, "seed": 0}},
        "first_stage": {"bm25": {"k1": 0.9, "b": 0.4}, "depth": DEPTH},
        # Same reranker name on both sides, as an upgrade presents it: only the model changed.
        "rerankers": [{"name": "scifact-ce", "kind": "cross-encoder", "model": str(model),
                       "max_length": 256, "batch_size": 32}],
        "depths": [DEPTH],
        "metrics": ["ndcg@10", "mrr@10"],
        "sanity_check": False,
        "latency": {"queries": 5, "warmup": 1, "seed": 0},  # small: the quality gate is the point
    }
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_experiment(load_config(out / "config.yaml"), out_dir=out / "report")
    return out / "report" / "results.json"


@pytest.fixture(scope="module")
def upgrade(tmp_path_factory, scifact_dir, scifact_ce, scifact_ce_early):
    root = tmp_path_factory.mktemp("upgrade")
    return (_evaluate(scifact_ce_early, scifact_dir, root / "early"),
            _evaluate(scifact_ce, scifact_dir, root / "final"))


RULES = ["--metric", "ndcg@10", "--max-drop", "0.01", "--alpha", "0.05",
         "--metric", "mrr@10", "--max-drop", "0.02"]


def test_the_checkpoints_really_differ_in_quality(upgrade):
    early, final = (json.loads(p.read_text()) for p in upgrade)
    e = early["rerankers"][0]["metrics"][str(DEPTH)]["ndcg@10"]
    f = final["rerankers"][0]["metrics"][str(DEPTH)]["ndcg@10"]
    assert f > e + 0.02, (f, e)


def test_gate_passes_the_upgrade_to_the_final_checkpoint(upgrade, tmp_path, capsys):
    early, final = upgrade
    junit = tmp_path / "pass.xml"
    code = main(["gate", "--baseline", str(early), "--candidate", str(final), *RULES,
                 "--junit", str(junit)])
    assert code == 0, capsys.readouterr().out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")


def test_gate_fails_the_downgrade_to_the_early_checkpoint(upgrade, tmp_path, capsys):
    early, final = upgrade
    junit = tmp_path / "fail.xml"
    code = main(["gate", "--baseline", str(final), "--candidate", str(early), *RULES,
                 "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "REGRESSION" in out and "significant" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "2"
    names = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert names == [f"ndcg@10 at depth {DEPTH} (scifact-ce)",
                     f"mrr@10 at depth {DEPTH} (scifact-ce)"]
