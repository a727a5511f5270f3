"""The bi-encoder resolves ``dtype: auto`` as the cross-encoder does (models.resolve_dtype):
bf16 on a CPU with native bf16, fp32 without; it computes in what it records, and the score
cache keys it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rerank_eval.errors import InputError
from rerank_eval.rerankers.bi_encoder import BiEncoder
from rerank_eval.rerankers.sanity import PROBES

PAIRS = [(q, p) for q, rel, irr in PROBES for p in (rel, irr)]


def _bi(dtype: str) -> BiEncoder:
    return BiEncoder(f"bi-{dtype}", {"model": "packaged:all-minilm-l6-v2", "dtype": dtype,
                                     "device": "cpu"}, base_dir=Path.cwd())


@pytest.mark.parametrize("native, expected", [("1", "bfloat16"), ("0", "float32")])
def test_auto_follows_the_cpu_and_is_recorded_and_keyed(monkeypatch, native, expected):
    monkeypatch.setenv("RERANK_EVAL_NATIVE_BF16", native)
    bi = _bi("auto")
    assert bi.fingerprint()["dtype"] == expected
    described = bi.describe()
    assert (described["dtype"], described["dtype_requested"]) == (expected, "auto")
    assert described["autocast"] is (expected == "bfloat16")


def test_bf16_computes_in_bf16_and_stays_faithful_to_fp32():
    fp32, bf16 = _bi("float32").score(PAIRS), _bi("bfloat16").score(PAIRS)
    diff = np.abs(fp32 - bf16)
    assert diff.max() > 0  # bf16 really ran (fp32 would be identical to the bit)
    assert diff.max() < 0.02  # cosines in [-1, 1]: a few bf16 steps at most
    # Every obvious pair keeps its order.
    assert np.array_equal(fp32[0::2] > fp32[1::2], bf16[0::2] > bf16[1::2])


def test_float16_on_a_cpu_is_a_one_line_error():
    with pytest.raises(InputError, match=r"rerankers\[bi-float16\]\.dtype: float16 runs on a "
                                         r"GPU only"):
        _bi("float16").score(PAIRS)
