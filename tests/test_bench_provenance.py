"""The provenance `rerank-eval bench --json` records: the commit and whether the tree was
dirty ("unknown" outside git), and package versions (the end-to-end check of the report's
provenance block is in test_bench.py's smoke test)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from rerank_eval.bench import git_state, package_versions


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_git_state_sees_a_dirty_tree_and_is_unknown_outside_git(tmp_path):
    assert git_state(tmp_path) == {"commit": "unknown", "dirty": "unknown"}
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    (repo / "a.py").write_text("x = 1\n")
    _git("add", "a.py", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "a",
         cwd=repo)
    commit = _git("rev-parse", "HEAD", cwd=repo)
    assert git_state(repo) == {"commit": commit, "dirty": False}
    (repo / "untracked.txt").write_text("not part of the tree\n")
    assert git_state(repo)["dirty"] is False
    (repo / "a.py").write_text("x = 2\n")
    assert git_state(repo) == {"commit": commit, "dirty": True}


def test_package_versions_say_when_a_package_is_missing():
    versions = package_versions(["numpy", "no-such-package-rerank-eval"])
    assert versions["numpy"] and versions["numpy"] != "not installed"
    assert versions["no-such-package-rerank-eval"] == "not installed"
