"""README's two setup commands are exactly what CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


CHECKS = ("ruff check", "mypy", "lint-imports", ". .venv/bin/activate")
# Besides them, CI installs Infinity in its own environment so its real-server tests run.
SERVERS = 'eval "$(scripts/install_infinity.sh'


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_commands = [line for line in lines
                   if line and not line.startswith(("#", "set ", "cd ", "rm ", SERVERS))]
    assert any(line.startswith(SERVERS) for line in lines)
    assert "scripts/install_infinity.sh" in readme
    setup = [c for c in ci_commands if not c.startswith(CHECKS) or "&&" in c]
    assert len(setup) == 2
    for command in setup:
        assert f"   {command}\n" in readme, command
    # Between them, the lint, type and layer checks, each also named in README.
    for check in CHECKS[:3]:
        assert any(c.startswith(check) for c in ci_commands), check
        assert check in readme, check


def test_example_configs_are_valid():
    """Every example config loads; gate rules files (``rules:``) load as rules."""
    import yaml
    from rerank_eval.compare.gate import load_rules
    from rerank_eval.config import load_config

    for path in sorted((ROOT / "configs").glob("*.yaml")):
        if "rules" in yaml.safe_load(path.read_text()):
            assert load_rules(path)[0], path
        else:
            assert load_config(path).name == path.stem, path
