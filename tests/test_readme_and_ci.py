"""README's two setup commands are exactly what CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci_commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line and not line.startswith(("#", "set ", "cd ", "rm "))]
    assert len(ci_commands) == 2
    for command in ci_commands:
        assert f"   {command}\n" in readme, command


def test_example_configs_are_valid():
    from rerank_eval.config import load_config

    for path in sorted((ROOT / "configs").glob("*.yaml")):
        assert load_config(path).name == path.stem, path
