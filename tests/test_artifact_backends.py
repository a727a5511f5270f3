"""``kind: cross-encoder`` with ``backend: onnx | openvino``: the checkpoint exported once and
cached by content hash, or a given file; scores against the torch fp32 model on the same pairs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rerank_eval.errors import InputError
from rerank_eval.models import CACHE_ENV, model_identity
from rerank_eval.rerankers import build_reranker

pytest.importorskip("onnxruntime", reason="the artifacts extra (onnxruntime) is not installed")
pytest.importorskip("onnx", reason="the artifacts extra (onnx) is not installed")

PAIRS = [
    ("what causes lung cancer", "Smoking is the leading cause of lung cancer."),
    ("what causes lung cancer", "The committee met on Tuesday to discuss the budget."),
    ("protein folding", "Proteins fold into three-dimensional shapes. " * 40),  # truncated
    ("boiling point of water", "Water boils at 100 degrees Celsius at sea level."),
    ("x", "y"),
]


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export-cache")


@pytest.fixture
def make(tiny_cross_encoder, export_cache, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(export_cache))
    made = []

    def build(**params):
        rr = build_reranker("ce", "cross-encoder", {"model": str(tiny_cross_encoder),
                                                    "max_length": 64, "batch_size": 2,
                                                    **params}, base_dir=Path.cwd())
        made.append(rr)
        return rr

    yield build
    for rr in made:
        rr.close()


def test_onnx_export_scores_like_torch_fp32_and_is_cached_by_content_hash(
        make, tiny_cross_encoder, export_cache):
    torch_rr = make(dtype="float32")
    reference = torch_rr.score(PAIRS)
    onnx_rr = make(backend="onnx")
    np.testing.assert_allclose(onnx_rr.score(PAIRS), reference, rtol=0, atol=1e-5)
    export = (export_cache / "exports" / model_identity(str(tiny_cross_encoder))["weights_sha256"]
              / "model.onnx")
    assert onnx_rr.describe()["artifact"] == str(export) and export.is_file()
    assert onnx_rr.stats.pairs_truncated == torch_rr.stats.pairs_truncated == 1
    stamp = export.stat().st_mtime_ns
    again = make(backend="onnx")
    np.testing.assert_array_equal(again.score(PAIRS), onnx_rr.score(PAIRS))
    assert export.stat().st_mtime_ns == stamp  # read from the cache, not exported again
    # the score cache keeps backends apart; torch's key is what it always was
    assert onnx_rr.fingerprint()["backend"] == "onnx" and "backend" not in torch_rr.fingerprint()


def test_int8_onnx_is_a_separate_quantized_artifact(make):
    reference = make(dtype="float32").score(PAIRS)
    rr = make(backend="onnx", dtype="int8")
    scores = rr.score(PAIRS)
    description = rr.describe()
    assert description["dtype"] == "int8-dynamic"
    assert description["artifact"].endswith("model_qint8_dynamic.onnx")
    assert np.isfinite(scores).all() and not np.array_equal(scores, reference)
    assert rr.fingerprint()["dtype"] == "int8" != make(backend="onnx").fingerprint()["dtype"]


def test_openvino_fp32_scores_like_torch_and_auto_says_which_precision(make):
    pytest.importorskip("openvino", reason="the artifacts extra (openvino) is not installed")
    reference = make(dtype="float32").score(PAIRS)
    fp32 = make(backend="openvino", dtype="float32")
    np.testing.assert_allclose(fp32.score(PAIRS), reference, rtol=0, atol=1e-5)
    assert fp32.describe()["dtype"] == "float32"
    auto = make(backend="openvino")
    assert np.isfinite(auto.score(PAIRS)).all()
    assert auto.describe()["dtype"] in {"float32", "bfloat16"}  # what OpenVINO chose here


def test_a_given_file_runs_as_it_is(make, tmp_path, tiny_cross_encoder):
    exported = Path(make(backend="onnx").describe()["artifact"])
    model = tmp_path / "model"
    shutil.copytree(tiny_cross_encoder, model)
    (model / "onnx").mkdir()
    shutil.copy(exported, model / "onnx" / "model.onnx")
    rr = build_reranker("given", "cross-encoder", {"model": str(model), "backend": "onnx",
                                                   "file": "onnx/model.onnx",
                                                   "max_length": 64}, base_dir=tmp_path)
    assert rr.describe()["artifact"] == str(model / "onnx" / "model.onnx")
    np.testing.assert_allclose(rr.score(PAIRS), make(dtype="float32").score(PAIRS), atol=1e-5)
    assert rr.fingerprint()["file"] is not None
    rr.close()


@pytest.mark.parametrize("params, message", [
    ({"backend": "onnx", "dtype": "bfloat16"}, "backend onnx takes auto, float32, int8"),
    ({"backend": "openvino", "dtype": "int8"}, "backend openvino takes"),
    ({"backend": "onnx", "file": "nope.onnx"}, "file: 'nope.onnx' not found"),
    ({"backend": "onnx", "compile": True}, "compile and cuda_graphs apply to backend torch"),
    ({"backend": "tensorrt"}, "backend"),
])
def test_bad_backend_settings_are_one_line(make, params, message):
    with pytest.raises(InputError, match=message) as err:
        make(**params).score(PAIRS[:1])
    assert "\n" not in str(err.value)


def test_bench_has_a_row_per_backend(tiny_cross_encoder, export_cache, monkeypatch, tmp_path,
                                     capsys):
    import json

    import rerank_eval
    from rerank_eval.cli import main

    pytest.importorskip("openvino", reason="the artifacts extra (openvino) is not installed")
    monkeypatch.setenv(CACHE_ENV, str(export_cache))
    quickstart = Path(rerank_eval.__file__).parent / "datasets" / "data" / "quickstart"
    out = tmp_path / "bench.json"
    assert main(["bench", "--beir", str(quickstart), "--depth", "3", "--queries", "2",
                 "--model", str(tiny_cross_encoder), "--rounds", "1", "--batch-size", "4",
                 "--max-length", "64", "--dtypes", "float32", "--no-peer", "--backends",
                 "onnx,openvino-fp32", "--json", str(out), "--quiet"]) == 0
    assert "backend/onnx" in capsys.readouterr().out
    methods = json.loads(out.read_text())["methods"]
    for name in ("backend/onnx", "backend/openvino-fp32"):
        assert methods[name]["pairs_per_s"] > 0
        assert methods[name]["fidelity_vs_fp32"]["max_abs_diff"] < 1e-4  # fp32 artifacts
    assert methods["backend/onnx"]["path"].startswith("onnx/float32 (onnxruntime")
    assert main(["bench", "--beir", str(quickstart), "--model", str(tiny_cross_encoder),
                 "--backends", "tensorrt", "--quiet"]) == 2
