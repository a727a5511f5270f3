"""rerank_eval.files: every output file is written atomically, under a temp name no other
writer shares; a failed write leaves the old file and no temp file, and says so in one line."""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest
from rerank_eval.errors import InputError
from rerank_eval.files import FILE_MODE, atomic_open, atomic_write_bytes, atomic_write_text


def test_writes_text_and_bytes_and_creates_the_folder(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b.txt", "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE  # not mkstemp's 0600
    assert os.listdir(path.parent) == ["b.txt"]


def test_two_threads_writing_one_path_never_collide(tmp_path):
    """The per-process ``.tmp<pid>`` name this replaced made two writers in one process (or
    two runs sharing a folder) rename each other's temp file away."""
    path = tmp_path / "results.json"
    contents = {w: (f"writer {w}\n" * 2000) for w in range(2)}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write(w: int) -> None:
        start.wait()
        try:
            for _ in range(300):
                atomic_write_text(path, contents[w])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_text(encoding="utf-8") in contents.values()  # one whole file, not a mix
    assert os.listdir(tmp_path) == ["results.json"]  # no temp file left


def test_a_failed_write_keeps_the_old_file_removes_the_temp_and_is_one_line(tmp_path,
                                                                             monkeypatch):
    path = tmp_path / "results.json"
    path.write_text("old\n", encoding="utf-8")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(InputError) as e:
        atomic_write_text(path, "new\n")
    assert str(e.value) == f"{path}: cannot write the file (No space left on device)"
    assert "\n" not in str(e.value)
    assert path.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["results.json"]


def test_an_exception_inside_the_block_leaves_the_target_untouched(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as f:
        f.write("half a file")
        raise KeyboardInterrupt
    assert path.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["run.trec"]


def test_an_unwritable_folder_names_the_path(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="not-a-folder/out.json: cannot write the file"):
        atomic_write_text(blocker / "out.json", "{}")
