"""The hardware fingerprint and its id: stable for a setup, blind to software versions."""

from __future__ import annotations

from rerank_eval.hardware import hardware_fingerprint, hardware_id


def test_fingerprint_names_the_machine():
    fp = hardware_fingerprint()
    for key in ("id", "cpu_model", "cores", "threads_used", "ram_gb", "gpu_model",
                "gpu_memory_gb", "driver", "cuda", "os", "python", "torch", "transformers"):
        assert key in fp
    assert fp["id"].startswith("hw-") and len(fp["id"]) == 13
    assert fp["threads_used"] >= 1


def test_id_is_stable_and_ignores_versions_but_not_threads():
    fp = hardware_fingerprint()
    assert hardware_id(fp) == fp["id"] == hardware_fingerprint()["id"]
    assert hardware_id({**fp, "torch": "0.0.1", "os": "other"}) == fp["id"]
    assert hardware_id({**fp, "threads_used": fp["threads_used"] + 1}) != fp["id"]
    assert hardware_id({**fp, "gpu_model": "Some GPU"}) != fp["id"]
