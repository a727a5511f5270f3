"""CUDA graphs: fixed batch shapes (padded widths, filler rows) and replayed forwards change
speed only, never scores. The shape logic runs everywhere; replay needs a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rerank_eval.engine.cuda_graphs import CudaGraphs
from rerank_eval.engine.encoding import CHANNELS
from rerank_eval.errors import InputError
from rerank_eval.rerankers import build_reranker

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _cross_encoder(model: Path, **params):
    return build_reranker("ce", "cross-encoder", {"model": str(model), "max_length": 64,
                                                   "batch_size": 16, **params},
                          base_dir=Path.cwd())


def _pairs(n: int = 53) -> list[tuple[str, str]]:
    return [(f"query {i % 7}", "passage " + "token " * ((i * 17) % 80)) for i in range(n)]


class EagerShapes(CudaGraphs):
    """The shape logic of CUDA graphs with an eager forward instead of a replay (CPU)."""

    def __init__(self, forward, device):
        super().__init__(forward, device)
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(batch.shape))
        return self.forward({name: batch[i] for i, name in enumerate(CHANNELS[: len(batch)])})


def test_fixed_batch_shapes_leave_scores_unchanged(tiny_cross_encoder):
    pairs = _pairs()
    plain = _cross_encoder(tiny_cross_encoder, device="cpu", dtype="float32").scorer
    expected, expected_cut = plain.score(pairs)
    shaped = _cross_encoder(tiny_cross_encoder, device="cpu", dtype="float32").scorer
    shaped.graphs = EagerShapes(shaped._scores, shaped.device)
    scores, cut = shaped.score(pairs)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert cut == expected_cut
    widths = {w for _, _, w in shaped.graphs.shapes}
    rows = {r for _, r, _ in shaped.graphs.shapes}
    assert all(w % 8 == 0 or w == 64 for w in widths)  # multiples of 8, capped at max_length
    assert rows <= {8, 16}  # powers of two from 8, capped at batch_size: filler rows added
    assert len(shaped.graphs.shapes) == len(plain.plan_batches(plain.encode(pairs).lengths))


def test_filler_rows_attend_one_token_and_real_rows_are_untouched(tiny_cross_encoder):
    scorer = _cross_encoder(tiny_cross_encoder, device="cpu", dtype="float32").scorer
    enc = scorer.encode(_pairs(3))
    packed = enc.pad(np.arange(3), 40, scorer.pad_id, height=8)
    assert packed.shape == (3, 8, 40)
    np.testing.assert_array_equal(packed[:, :3], enc.pad(np.arange(3), 40, scorer.pad_id))
    assert (packed[1, 3:].sum(axis=1) == 1).all() and (packed[0, 3:] == scorer.pad_id).all()


def test_cuda_graphs_on_a_machine_without_a_gpu_is_an_input_error(tiny_cross_encoder):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(InputError, match=r"rerankers\[ce\]\.cuda_graphs: true needs a CUDA"):
        _ = _cross_encoder(tiny_cross_encoder, device="cpu", cuda_graphs=True).scorer
    with pytest.raises(InputError,
                       match=r"rerankers\[ce\]\.cuda_graphs: expected auto, true or false"):
        _cross_encoder(tiny_cross_encoder, cuda_graphs="yes")
    assert _cross_encoder(tiny_cross_encoder, device="cpu").scorer.graphs is None


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_replayed_graphs_score_like_the_eager_forward(tiny_cross_encoder, dtype):
    pairs = _pairs(300)
    eager = _cross_encoder(tiny_cross_encoder, device="cuda", dtype=dtype, cuda_graphs=False)
    graphed = _cross_encoder(tiny_cross_encoder, device="cuda", dtype=dtype)
    expected = eager.score(pairs)
    for _ in range(3):  # shapes are captured on their second occurrence, then replayed
        scores = graphed.score(pairs)
        np.testing.assert_allclose(scores, expected, rtol=1e-2, atol=1e-3)
    info = graphed.describe()
    assert info["scoring_path"].endswith("/cuda-graphs"), info
    assert info["cuda_graphs_error"] is None and info["cuda_graph_captures"] > 0


@needs_gpu
def test_a_forward_that_cannot_be_captured_runs_eagerly_and_says_why(tiny_cross_encoder):
    reranker = _cross_encoder(tiny_cross_encoder, device="cuda", dtype="float32")
    scorer = reranker.scorer
    expected = _cross_encoder(tiny_cross_encoder, device="cuda", dtype="float32",
                              cuda_graphs=False).score(_pairs())
    real_model = scorer.model

    def syncing(**inputs):  # reads a value back to Python: not allowed while capturing
        out = real_model(**inputs)
        if float(out.logits.sum()) > 1e9:
            raise AssertionError
        return out

    scorer._forward = syncing
    for _ in range(2):
        np.testing.assert_allclose(reranker.score(_pairs()), expected, rtol=1e-4, atol=1e-5)
    assert scorer.graphs is None and scorer.graphs_error
    assert reranker.describe()["scoring_path"].endswith("/eager")
