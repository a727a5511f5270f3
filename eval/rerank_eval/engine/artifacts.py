"""Exported artifacts (ONNX, OpenVINO IR) as the model behind the engine.

Why: what gets deployed is often not the torch checkpoint but an export of it, sometimes
quantized; evaluating the artifact itself shows what the export changed. The artifact runs
behind the same interface :class:`~rerank_eval.engine.scorer.PairScorer` calls on a torch model
(keyword inputs, ``.logits`` out), so tokenization, length buckets, truncation counts and the
head are the engine's, unchanged.

Without a ``file``, the checkpoint is exported once with ``torch.onnx.export`` and the export is
cached under ``$RERANK_EVAL_CACHE_DIR/exports/<content hash>/`` (keyed by the model's content
hash, so an edited checkpoint is exported again); ``int8`` is ONNX Runtime's dynamic
quantization of that export, cached beside it. Both runtimes are optional (the ``artifacts``
extra: ``pip install rerank-eval[artifacts]``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank_eval.engine.encoding import CHANNELS
from rerank_eval.errors import InputError
from rerank_eval.files import atomic_write_text
from rerank_eval.models import cache_root, model_identity

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "openvino")
EXPORT_OPSET = 17
RUNTIME_PACKAGES = {"onnx": "onnxruntime", "openvino": "openvino"}


@dataclass
class LogitsOutput:
    """What a transformers classifier returns, as far as the engine reads it."""

    logits: torch.Tensor


class ArtifactModel(torch.nn.Module):
    """A compiled artifact behind a torch module's call: ``run`` maps the graph's inputs
    (numpy int64, by name) to its logits."""

    def __init__(self, run: Callable[[dict[str, np.ndarray]], np.ndarray],
                 input_names: Sequence[str]):
        super().__init__()
        unknown = [n for n in input_names if n not in CHANNELS]
        if unknown:
            raise ValueError(f"the graph takes inputs the engine does not make: {unknown}")
        self.run = run
        self.input_names = list(input_names)

    def forward(self, **inputs: torch.Tensor) -> LogitsOutput:
        feeds = {n: inputs[n].cpu().numpy().astype(np.int64, copy=False)
                 for n in self.input_names}
        logits = np.asarray(self.run(feeds), dtype=np.float32)
        if logits.ndim == 1:
            logits = logits[:, None]
        return LogitsOutput(torch.from_numpy(logits))


def require(backend: str, field: str) -> Any:
    """The runtime module of ``backend``, or a one-line error saying what to install."""
    package = RUNTIME_PACKAGES[backend]
    try:
        return importlib.import_module(package)
    except ImportError:
        raise InputError(f"{field}: backend {backend} needs the {package} package (pip install "
                         f"'rerank-eval[artifacts]')") from None


def export_dir(model_path: str) -> Path:
    """Where the exports of ``model_path`` are cached (by content hash)."""
    identity = model_identity(model_path)
    key = identity.get("weights_sha256")
    if key is None:
        raise InputError(f"model {model_path!r}: an export needs the checkpoint on disk (a local "
                         "folder or the hub cache) to key it by content hash")
    return cache_root() / "exports" / key


def exported_onnx(model_path: str, field: str, *, int8: bool = False) -> Path:
    """The cached fp32 ONNX export of ``model_path`` (made on first use), or its dynamic int8
    quantization."""
    folder = export_dir(model_path)
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        _export(model_path, fp32, field)
    if not int8:
        return fp32
    qint8 = folder / "model_qint8_dynamic.onnx"
    if not qint8.is_file():
        require("onnx", field)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _staging(qint8) as tmp:
            logging.disable(logging.WARNING)  # its root-logger advice to pre-process first
            try:
                quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
            finally:
                logging.disable(logging.NOTSET)
        logger.info(f"{field}: int8 (dynamic) quantization of the export cached at {qint8}")
    return qint8


class _staging:
    """A temporary path beside ``target``, renamed onto it when the block succeeds (another
    process exporting the same model at once simply wins or loses the rename)."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=".export-", dir=self.target.parent))
        return self.dir / self.target.name

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            if kind is None:
                os.replace(self.dir / self.target.name, self.target)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _export(model_path: str, target: Path, field: str) -> None:
    """``torch.onnx.export`` (TorchScript exporter) of the fp32 checkpoint with dynamic batch
    and sequence axes; the model is loaded afresh (export may leave a module changed)."""
    try:
        import onnx  # noqa: F401 - the exporter needs it
    except ImportError:
        raise InputError(f"{field}: exporting to ONNX needs the onnx package (pip install "
                         "'rerank-eval[artifacts]')") from None
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerank_eval.models import load_pretrained

    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model_path, field)
    model = load_pretrained(AutoModelForSequenceClassification.from_pretrained, model_path,
                            field, dtype=torch.float32, attn_implementation="eager").eval()
    sample = tokenizer(["a query", "another query"], ["a passage", "a longer second passage"],
                       return_tensors="pt", padding=True)
    names = [n for n in CHANNELS if n in sample]

    class _Logits(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, args))).logits

    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    logger.info(f"{field}: exporting {model_path} to ONNX (once; cached at {target})")
    import warnings

    with _staging(target) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings of the exporter
        torch.onnx.export(_Logits(model), tuple(sample[n] for n in names), str(tmp),
                          input_names=names, output_names=["logits"],
                          dynamic_axes={**axes, "logits": {0: "batch"}},
                          opset_version=EXPORT_OPSET, dynamo=False)
    atomic_write_text(target.parent / "export.json", json.dumps(
        {"source": str(model_path), "exporter": "torch.onnx.export (TorchScript)",
         "opset": EXPORT_OPSET, "torch": torch.__version__}, indent=2) + "\n")


def onnx_model(path: Path, threads: int, field: str) -> tuple[ArtifactModel, dict[str, Any]]:
    """An ONNX Runtime session (CPU, all graph optimizations) as the engine's model."""
    ort = require("onnx", field)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: one line naming it
        raise InputError(f"{field}: ONNX Runtime cannot load {path}: "
                         f"{str(e).splitlines()[0][:200]}") from None
    names = [i.name for i in session.get_inputs()]
    output = session.get_outputs()[0].name
    info = {"runtime": f"onnxruntime {ort.__version__}", "artifact": str(path),
            "graph_optimization": "ORT_ENABLE_ALL", "runtime_threads": threads}
    return ArtifactModel(lambda feeds: session.run([output], feeds)[0], names), info


def openvino_model(path: Path, precision: str | None, threads: int,
                   field: str) -> tuple[ArtifactModel, dict[str, Any]]:
    """An OpenVINO model (an IR ``.xml`` or an ONNX file) compiled for the CPU. ``precision``
    None: OpenVINO's choice for this CPU (bf16 where the CPU has it natively); ``f32``: exact
    fp32 inference."""
    ov = require("openvino", field)
    core = ov.Core()
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    try:
        compiled = core.compile_model(str(path), "CPU", config)
    except Exception as e:  # noqa: BLE001 - one line naming the file
        raise InputError(f"{field}: OpenVINO cannot load {path}: "
                         f"{str(e).splitlines()[0][:200]}") from None
    names = [next(iter(i.get_names())) for i in compiled.inputs]
    request = compiled.create_infer_request()
    output = compiled.outputs[0]

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.array(request.infer(feeds)[output])

    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    precision = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}.get(
        getattr(hint, "get_type_name", lambda: str(hint))(), str(hint))
    info = {"runtime": f"openvino {ov.__version__.split('-')[0]}", "artifact": str(path),
            "inference_precision": precision,
            "runtime_threads": threads}
    return ArtifactModel(run, names), info
