"""Outputs are written whole or not at all."""

import errno
import sqlite3

import pytest

from hinttune.cli import storage_error
from hinttune.core.files import atomic_dir, write_jsonl, write_text


def test_a_write_that_fails_midway_leaves_the_old_file(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"i": i} for i in range(3)])
    before = path.read_text()

    def rows():
        yield {"i": 0}
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(path, rows())
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]  # no temporary file left


def test_a_folder_is_swapped_in_whole(tmp_path):
    target = tmp_path / "hf"
    with atomic_dir(target) as tmp:
        write_text(tmp / "a.txt", "one")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            write_text(tmp / "a.txt", "two")
            raise RuntimeError("save failed")
    assert (target / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_full_and_read_only_disks_are_one_line():
    full = storage_error(OSError(errno.ENOSPC, "No space left on device", "runs/x/store.sqlite"))
    assert full.startswith("the disk is full (runs/x/store.sqlite)") and "intact" in full
    assert "disk is full" in storage_error(sqlite3.OperationalError("database or disk is full"))
    readonly = storage_error(OSError(errno.EROFS, "Read-only file system", "runs/x"))
    assert "read-only" in readonly and "--run-dir" in readonly
    assert storage_error(OSError(errno.ENOENT, "No such file")) is None


def test_leftovers_of_a_killed_write_are_removed_by_the_next(tmp_path):
    (tmp_path / ".data.json.abc123.tmp").write_text("half")
    (tmp_path / ".other.json.x.tmp").write_text("not ours")
    (tmp_path / ".hf.q1w2").mkdir()
    write_text(tmp_path / "data.json", "whole")
    with atomic_dir(tmp_path / "hf") as tmp:
        (tmp / "f").write_text("x")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".other.json.x.tmp", "data.json", "hf"]


def test_outputs_get_the_umask_mode_not_a_private_one(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "data.json", "x")
        with atomic_dir(tmp_path / "hf") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "hf").stat().st_mode & 0o777 == 0o755


def test_a_jsonl_line_too_deep_or_too_large_is_named_by_its_line(tmp_path):
    from hinttune.core.errors import HinttuneError
    from hinttune.core.files import read_jsonl

    path = tmp_path / "p.jsonl"
    path.write_text('{"a": 1}\n' + "[" * 6000 + "]" * 6000 + "\n")
    with pytest.raises(HinttuneError, match=r"p\.jsonl: line 2: JSON nested too deeply"):
        list(read_jsonl(path))
    path.write_text('{"a": 1}\n\n{"a": ' + "9" * 5000 + "}\n")
    with pytest.raises(HinttuneError, match=r"p\.jsonl: line 3: a JSON value is out of range"):
        list(read_jsonl(path))
