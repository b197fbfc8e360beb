"""Writing outputs so that a kill never leaves half a file: everything is written to a
temporary file beside the target and moved into place with ``os.replace`` (atomic on POSIX),
so a reader sees the old file or the new one, never a part of either."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path: Path, text: str) -> Path:
    with atomic_writer(path) as out:
        out.write(text)
    return Path(path)


def write_json(path: Path, data: Any, final_newline: bool = True) -> Path:
    """``final_newline=False`` writes exactly what ``json.dump(..., indent=2)`` writes, as the
    official scripts do (their merge.py wrote the released dataset)."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return write_text(path, text + "\n" if final_newline else text)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    with atomic_writer(path) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A folder written in full beside ``path`` and then swapped in (the old one removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
