"""Hugging Face cross-encoders: any AutoModelForSequenceClassification checkpoint."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch

from rerank_eval.engine.scorer import PairScorer
from rerank_eval.errors import InputError
from rerank_eval.models import (
    DTYPE_ALIASES,
    Device,
    DType,
    check_model_available,
    cpu_has_native_bf16,
    file_sha256,
    load_pretrained,
    model_identity,
    resolve_device,
    resolve_dtype,
    resolve_model,
)
from rerank_eval.params import NonEmptyStr, NonNegativeInt, PositiveInt, check_before
from rerank_eval.rerankers.base import ContextParams, Reranker

HEAD_MODULES = ("pooler", "classifier", "score")  # Hugging Face names of the scoring head


def cast_keeping_head_fp32(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Half-precision weights for the encoder, fp32 for the pooler and classification head.

    Why: on a GPU, casting once beats autocast, which re-casts every weight on every forward
    (measured on an H200: bf16 autocast was slower than fp32 for MiniLM).
    """
    model.to(dtype)
    keep_head_fp32(model)


def keep_head_fp32(model: torch.nn.Module) -> None:
    """Run the pooler and classification head in fp32, outside autocast, on fp32 inputs.

    Why: a logit computed in bf16 has 8 significant bits (steps of 0.06 near 8), so rankings
    fill with ties, whether the weights were cast or autocast casts them (measured on an AMX
    CPU, SciFact: per-query Kendall tau 0.955 against fp32 with the head in bf16, 0.993 with
    it in fp32). Computing the head in fp32 from half-precision hidden states keeps scores
    continuous.
    """
    device_type = next(model.parameters()).device.type
    for name, module in model.named_modules():
        if name.split(".")[-1] in HEAD_MODULES:
            module.float()
            module.forward = _outside_autocast(module.forward, device_type)


def _outside_autocast(forward, device_type: str):
    def fp32_forward(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return forward(*(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point()
                             else a for a in args), **kwargs)
    return fp32_forward


AutoOrBool = Annotated[Literal["auto", True, False], check_before(
    lambda v: v == "auto" or isinstance(v, bool), "expected auto, true or false, got {value}")]


class CrossEncoderParams(ContextParams):
    """``kind: cross-encoder``: any Hugging Face sequence-classification checkpoint."""

    model: NonEmptyStr
    """A local folder (relative to the config), a hub id, or packaged:all-minilm-l6-v2."""
    batch_size: PositiveInt = 32
    max_length: PositiveInt = 512
    """Tokens per (query, passage) pair; longer pairs are truncated (and counted)."""
    device: Device = "auto"
    dtype: DType = "auto"
    """auto: fp16 on a GPU, bf16 on a CPU with native bf16, else fp32; int8: CPU only."""
    compile: AutoOrBool = "auto"
    """torch.compile; auto: for runs of at least compile_min_pairs pairs."""
    compile_min_pairs: PositiveInt = 20000
    cuda_graphs: AutoOrBool = "auto"
    """Replay the forward as CUDA graphs (auto: on a GPU, without compile)."""
    max_tokens_per_batch: PositiveInt | None = None
    """Cap on padded tokens per batch."""
    label_index: NonNegativeInt | None = None
    """Which output label means relevant (default: the only one, or 1 of 2)."""
    score: Literal["logit", "log_softmax"] = "logit"
    backend: Literal["torch", "onnx", "openvino"] = "torch"
    """What runs the model (CPU for onnx/openvino): torch, ONNX Runtime (all graph
    optimizations; dtype int8: dynamic int8 quantization of the export) or OpenVINO (dtype auto:
    the precision OpenVINO picks for this CPU, bf16 where native; float32: fp32)."""
    file: NonEmptyStr | None = None
    """onnx/openvino: a given artifact (.onnx, or an OpenVINO .xml), relative to the model
    folder or the config; none: the checkpoint is exported once and cached by content hash."""


class CrossEncoder(Reranker):
    """Reads query and passage together; one forward pass per pair.

    Score: with one output label, the logit; with two, the relevant class's logit
    (``label_index``, default 1) or its log-softmax (``score: log_softmax``).

    Speed (see ``scoring/engine.py``): ``dtype: int8`` (CPU, explicit opt-in) quantizes the
    Linear layers dynamically; check its fidelity with ``rerank-eval bench --dtypes int8``.
    ``dtype: auto`` takes fp16 weights on a GPU (head in fp32), bf16 autocast on a CPU with
    native bf16 (flags avx512_bf16/amx), else fp32 (see ``resolve_dtype`` for why).
    ``compile: auto`` uses ``torch.compile`` only for runs of at least ``compile_min_pairs``
    pairs (the compile costs tens of seconds); ``cuda_graphs: auto`` replays the forward as
    CUDA graphs on a GPU (not with compile); ``max_tokens_per_batch`` caps padded tokens per
    batch. ``describe()`` records the path that ran.
    """

    kind = "cross-encoder"
    Params = CrossEncoderParams
    params: CrossEncoderParams

    score_params = ("max_length", "label_index", "score")
    supports_context = True

    def __init__(self, name: str, params: CrossEncoderParams | Mapping[str, Any], *,
                 base_dir: Path):
        super().__init__(name, params, base_dir=base_dir)
        field = f"rerankers[{name}].model"
        self.model_path = resolve_model(self.params.model, base_dir, field)
        self._scorer: PairScorer | None = None
        self.field = field
        self.expected_pairs: int | None = None

    def _load(self) -> PairScorer:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if self.params.backend != "torch":
            return self._load_artifact()
        device = resolve_device(self.params.device)
        quantize = self.params.dtype == "int8"
        if quantize and device.type != "cpu":
            raise InputError(f"rerankers[{self.name}].dtype: int8 runs on the CPU only")
        dtype = torch.float32 if quantize else resolve_dtype(self.params.dtype, device)
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model_path, self.field)
        if not getattr(tokenizer, "is_fast", False):
            raise InputError(f"{self.field}: a fast (Rust) tokenizer is required")
        # A checkpoint without a trained classification head gets a new one; seed it so the same
        # config gives the same numbers, and say so in the results.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, loading = load_pretrained(
                AutoModelForSequenceClassification.from_pretrained, self.model_path, self.field,
                output_loading_info=True, dtype=torch.float32,
            )  # fp32 weights whatever the checkpoint stores; lower precision is autocast
        self.head_untrained = any("classifier" in k or "score" in k
                                  for k in loading.get("missing_keys", []))
        model.eval().to(device)
        if device.type == "cuda" and dtype != torch.float32:
            cast_keeping_head_fp32(model, dtype)
        elif dtype != torch.float32:  # autocast on a CPU
            keep_head_fp32(model)
        if quantize:  # opt-in: int8 weights, dynamic activation scales (Linear layers only)
            import warnings

            from torch.ao.quantization import quantize_dynamic

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch deprecates quantized tensors (torchao)
                model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        max_length = int(self.params.max_length)
        model_max = getattr(tokenizer, "model_max_length", max_length) or max_length
        max_length = min(max_length, int(model_max), int(getattr(
            model.config, "max_position_embeddings", max_length)))
        head = self._head(int(model.config.num_labels))
        self.resolved = {"device": str(device),
                         "dtype": "int8" if quantize else str(dtype).replace("torch.", ""),
                         "head_untrained": self.head_untrained,
                         "max_length": max_length, "num_labels": int(model.config.num_labels)}
        tokens = self.params.max_tokens_per_batch
        graphs = self.params.cuda_graphs
        if graphs is True and device.type != "cuda":
            raise InputError(f"rerankers[{self.name}].cuda_graphs: true needs a CUDA device "
                             f"(this run uses {device})")
        return PairScorer(tokenizer, model, head=head, max_length=max_length,
                          batch_size=int(self.params.batch_size), device=device, dtype=dtype,
                          max_tokens_per_batch=int(tokens) if tokens else None,
                          compiled=self.params.compile is True, quantized=quantize,
                          cuda_graphs=None if graphs == "auto" else bool(graphs))

    def artifact_path(self) -> Path | None:
        """The given ``file`` resolved (model folder first, then the config's folder)."""
        given = self.params.file
        if given is None:
            return None
        for base in (Path(self.model_path), self.base_dir):
            path = Path(os.path.expanduser(given))
            path = path if path.is_absolute() else base / path
            if path.is_file():
                return path
        raise InputError(f"rerankers[{self.name}].file: {given!r} not found in the model folder "
                         "or beside the config")

    def _load_artifact(self) -> PairScorer:
        """The engine over an ONNX Runtime session or an OpenVINO model (CPU only)."""
        from transformers import AutoConfig, AutoTokenizer

        from rerank_eval.engine.artifacts import exported_onnx, onnx_model, openvino_model

        p, where = self.params, f"rerankers[{self.name}]"
        device = resolve_device(p.device)
        if device.type != "cpu":
            raise InputError(f"{where}.device: backend {p.backend} runs on the CPU here")
        if p.compile is True or p.cuda_graphs is True:
            raise InputError(f"{where}: compile and cuda_graphs apply to backend torch only")
        dtype = DTYPE_ALIASES.get(p.dtype, p.dtype)
        allowed = {"onnx": ("auto", "float32", "int8"), "openvino": ("auto", "float32",
                                                                     "bfloat16")}[p.backend]
        if dtype not in allowed:
            raise InputError(f"{where}.dtype: backend {p.backend} takes {', '.join(allowed)}, "
                             f"got {p.dtype}")
        if p.file is not None and dtype == "int8":
            raise InputError(f"{where}.dtype: int8 quantizes the export; a given file runs as it "
                             "is (leave dtype at auto)")
        artifact = self.artifact_path() or exported_onnx(self.model_path, where,
                                                         int8=dtype == "int8")
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model_path, self.field)
        if not getattr(tokenizer, "is_fast", False):
            raise InputError(f"{self.field}: a fast (Rust) tokenizer is required")
        config = load_pretrained(AutoConfig.from_pretrained, self.model_path, self.field)
        threads = torch.get_num_threads()
        if p.backend == "onnx":
            model, info = onnx_model(artifact, threads, where)
        else:
            precision = {"auto": None, "float32": "f32", "bfloat16": "bf16"}[dtype]
            model, info = openvino_model(artifact, precision, threads, where)
        self.head_untrained = False  # an artifact carries whatever head it was exported with
        max_length = min(int(p.max_length), int(getattr(tokenizer, "model_max_length", 0)
                                                or p.max_length),
                         int(getattr(config, "max_position_embeddings", p.max_length)))
        num_labels = int(getattr(config, "num_labels", 1))
        self.resolved = {"device": "cpu", "dtype": info.get("inference_precision", (
                             "int8-dynamic" if dtype == "int8" else "float32")),
                         "head_untrained": False, "max_length": max_length,
                         "num_labels": num_labels, "backend": p.backend, **info}
        tokens = p.max_tokens_per_batch
        return PairScorer(tokenizer, model, head=self._head(num_labels), max_length=max_length,
                          batch_size=int(p.batch_size), device=device, dtype=torch.float32,
                          max_tokens_per_batch=int(tokens) if tokens else None,
                          compiled=False, cuda_graphs=False)

    def expect_pairs(self, n: int) -> None:
        """Hint: the run will score about ``n`` pairs (lets ``compile: auto`` decide up front)."""
        self.expected_pairs = int(n)

    def _maybe_compile(self, scorer: PairScorer, upcoming: int) -> None:
        """``compile: auto``: compile once the run is known (hint) or seen (pairs scored so far
        plus this call) to reach ``compile_min_pairs``; small runs never pay the compile."""
        if (self.params.backend != "torch" or self.params.compile != "auto" or scorer.compiled
                or scorer.compile_error
                or scorer.graphs is not None):  # on a GPU, CUDA graphs already cut the launches
            return
        total = self.expected_pairs or (self.stats.pairs_scored + upcoming)
        if total >= int(self.params.compile_min_pairs):
            scorer.compile()

    def _head(self, num_labels: int):
        label = self.params.label_index
        if num_labels == 1:
            if label not in (None, 0):
                raise InputError(f"rerankers[{self.name}].label_index: the model has one label")
            return lambda logits: logits[:, 0]
        if label is None:
            if num_labels != 2:
                raise InputError(
                    f"rerankers[{self.name}].label_index: the model has {num_labels} labels; "
                    "say which one means relevant"
                )
            label = 1
        if not 0 <= int(label) < num_labels:
            raise InputError(f"rerankers[{self.name}].label_index: {label} out of range")
        index = int(label)
        if self.params.score == "log_softmax":
            return lambda logits: torch.log_softmax(logits.float(), dim=-1)[:, index]
        return lambda logits: logits[:, index]

    @property
    def scorer(self) -> PairScorer:
        if self._scorer is None:
            self._scorer = self._load()
        return self._scorer

    def describe(self) -> dict[str, Any]:
        scorer = self.scorer
        return {**super().describe(), "model_path": self.model_path, **self.resolved,
                "batch_size": scorer.batch_size, "dtype_requested": self.params.dtype,
                "autocast": scorer.autocast, "cpu_native_bf16": cpu_has_native_bf16(),
                "compile": self.params.compile, "compiled": scorer.compiled,
                "compile_error": scorer.compile_error, "scoring_path": scorer.path,
                "cuda_graphs": self.params.cuda_graphs,
                "cuda_graph_captures": scorer.graphs.captures if scorer.graphs else 0,
                "cuda_graphs_error": scorer.graphs_error,
                "max_tokens_per_batch": scorer.max_tokens_per_batch,
                "oom_halvings": scorer.oom_halvings}

    def fingerprint(self) -> dict[str, Any]:
        """Weights (content hash), max_length, head (label index, transform) and the dtype the
        scores are computed in, ``auto`` recorded as what it resolves to here (bf16 and fp32
        differ). Batch size, device, compile and token caps change scores by float noise only."""
        dtype = DTYPE_ALIASES.get(self.params.dtype, self.params.dtype)
        backend = self.params.backend
        if dtype == "auto" and backend == "torch":
            device = resolve_device(self.params.device)
            dtype = str(resolve_dtype("auto", device)).replace("torch.", "")
        out = {**super().fingerprint(), "model": model_identity(self.model_path),
               "dtype": dtype}
        if backend != "torch":  # torch keeps the keys it always had (caches stay valid)
            artifact = self.artifact_path()
            out.update(backend=backend, file=None if artifact is None
                       else file_sha256(artifact))
        return out

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        self._maybe_compile(self.scorer, len(pairs))
        return self._score_local(self.scorer, pairs, self.resolved["dtype"])

    def queries_truncated(self, queries: Sequence[str]) -> int:
        """Queries longer than half the window (less the special tokens) are cut to it, so
        the passage keeps at least half: counted here, as ``pairs_truncated`` counts pairs."""
        return len(self.scorer.encoder.queries(list(queries)).cut)

    def passage_windows(self, texts: Sequence[str], tokens: int, stride: int,
                        first_only: bool = False) -> list[list[str]]:
        from rerank_eval.engine.windows import passage_windows

        return passage_windows(self.scorer.tokenizer, texts, tokens, stride, first_only)

    def latency_warmup_rounds(self) -> int:
        graphs = self.scorer.graphs
        return graphs.capture_after if graphs is not None else 0

    def preflight(self) -> None:
        check_model_available(self.model_path, self.field)

    def close(self) -> None:
        self._scorer = None
