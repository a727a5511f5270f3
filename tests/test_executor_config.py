"""The executor key: local by default, Ray on request, one-line errors; no Ray needed here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rerank_eval.config import parse_config
from rerank_eval.errors import InputError
from rerank_eval.scoring import make_executor
from rerank_eval.scoring.executors import LocalExecutor

BASE = {"name": "x", "dataset": {"bundled": "quickstart"}, "first_stage": {"bm25": {}, "depth": 5}}


def _parse(**extra):
    return parse_config({**BASE, **extra}, base_dir=Path.cwd())


def test_without_the_key_scoring_stays_local():
    config = _parse()
    assert config.executor.kind == "local"
    assert config.resolved()["executor"] == "local"
    assert isinstance(make_executor(config.executor), LocalExecutor)


def test_ray_options_are_read_with_defaults_for_the_rest():
    config = _parse(executor={"ray": {"address": "auto", "num_gpus_per_worker": 1, "workers": 8}})
    ex = config.executor
    assert (ex.kind, ex.address, ex.num_cpus_per_worker, ex.num_gpus_per_worker, ex.workers) == (
        "ray", "auto", 1, 1, 8)
    assert config.resolved()["executor"]["ray"]["workers"] == 8
    assert _parse(executor="ray").executor.address == "local"
    assert _parse(executor={"ray": None}).executor.kind == "ray"


@pytest.mark.parametrize("executor, message", [
    ("dask", "executor: unknown executor 'dask'"),
    ({"ray": {"gpus": 1}}, "executor.ray: unknown key 'gpus'"),
    ({"ray": {"workers": 0}}, "executor.ray.workers: must be a positive integer, got 0"),
    ({"ray": {"num_cpus_per_worker": -1}}, "executor.ray.num_cpus_per_worker: must be >= 0"),
    ({"ray": {"num_cpus_per_worker": 0}}, "executor.ray: a worker needs num_cpus_per_worker"),
    ({"ray": {"address": 3}}, "executor.ray.address: expected local, auto"),
    ({"ray": {}, "local": None}, "executor: give exactly one of local, ray"),
])
def test_bad_executor_settings_name_the_field(executor, message):
    with pytest.raises(InputError, match="^" + message.replace("(", r"\(")):
        _parse(executor=executor)


def test_ray_executor_without_ray_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    config = _parse(executor={"ray": {"workers": 2}})
    with pytest.raises(InputError) as err:
        make_executor(config.executor)
    assert "pip install 'rerank-eval[ray]'" in str(err.value) and "\n" not in str(err.value)
