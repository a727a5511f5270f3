"""The machine a measurement ran on, and a short stable id for it.

Latency and throughput mean nothing without the hardware beside them, so every results.json
carries this fingerprint. The id hashes only what identifies the *setup* (CPU model, logical
cores, RAM, GPU model/count/memory, torch threads used): software versions are recorded but
left out of the id, because a library upgrade should not split one machine's history in two.
Runs with a different thread count are a different setup (latency depends on it), so they get
a different id. The load average at start is recorded (not hashed): on a shared machine it
explains noisy latency.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from typing import Any

ID_FIELDS = ("cpu_model", "cores", "ram_gb", "gpu_model", "gpu_count", "gpu_memory_gb",
             "threads_used")
ID_RULE = ("hw- + first 10 hex of sha256 over " + ", ".join(ID_FIELDS)
           + " (software versions excluded)")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """CPU model name and feature flags from ``/proc/cpuinfo`` (as ``lscpu`` shows them),
    read once per process: the one place this project reads it."""
    model, flags = "", frozenset[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key == "model name" and not model:
                    model = line.split(":", 1)[1].strip()
                elif key == "flags" and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown", flags


def _cpu_model() -> str:
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports; empty where there is no /proc/cpuinfo."""
    return _cpuinfo()[1]


def _ram_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def _gpu() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"gpu_model": None, "gpu_count": 0, "gpu_memory_gb": None, "driver": None,
                "cuda": torch.version.cuda}
    props = torch.cuda.get_device_properties(0)
    return {"gpu_model": props.name, "gpu_count": torch.cuda.device_count(),
            "gpu_memory_gb": round(props.total_memory / 2**30, 1), "driver": _nvidia_driver(),
            "cuda": torch.version.cuda}


def _load_avg() -> float | None:
    """Machine load when the run started: shared machines make latency noisy, say so."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def hardware_id(fingerprint: dict[str, Any]) -> str:
    """Short stable id over the setup-identifying fields (see ``ID_FIELDS``)."""
    key = json.dumps({k: fingerprint.get(k) for k in ID_FIELDS}, sort_keys=True)
    return "hw-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


def hardware_fingerprint() -> dict[str, Any]:
    """CPU, cores and threads used, RAM, GPU, driver/CUDA, OS and library versions, plus ``id``."""
    import torch

    available: int | None
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count()
    fp: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": available,
        "threads_used": torch.get_num_threads(),
        "ram_gb": _ram_gb(),
        # What decides the CPU's kernels (and dtype: auto): AVX2, AVX-512, AMX flags.
        "cpu_flags": sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx"))
                            or f == "avx2"),
        **_gpu(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "sentence_transformers": _version("sentence-transformers"),
        "load_avg_1m": _load_avg(),
    }
    return {"id": hardware_id(fp), **fp, "id_rule": ID_RULE}
