"""Writing outputs so that a kill never leaves half a file: everything is written to a
temporary file beside the target and moved into place with ``os.replace`` (atomic on POSIX),
so a reader sees the old file or the new one, never a part of either."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from hinttune.core.errors import HinttuneError


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _remove_leftovers(path: Path) -> None:
    """Temporaries of ``path`` left by a killed write (nothing else writes them: one run per
    run directory holds its lock)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if leftover.is_dir():  # atomic_dir's half-written folder, or the old one it replaced
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.name.endswith(".tmp"):
            leftover.unlink(missing_ok=True)


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); an output is as readable as any file a tool
        # writes, so a colleague or a training job under another user can read the dataset
        os.fchmod(fd, 0o666 & ~_umask())
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
    _remove_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
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


# --- reading: one clear line for a file that is not what it should be ----------------------

def read_text(path: Path) -> str:
    """A file as text: UTF-8 (a byte-order mark is accepted); anything else is an error naming
    the byte where decoding failed."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise HinttuneError(f"{path}: not UTF-8 text: byte {exc.start} (line {line}) is "
                            f"{raw[exc.start:exc.start + 1]!r}; re-save the file as UTF-8 "
                            "(e.g. `iconv -f latin1 -t utf-8`)") from None


class _Repeated(dict):
    """An object in which a key was given twice (``json`` keeps the last without a word: a
    record's second "problem" would silently replace its first); found after parsing."""

    repeated = ""


def _marking_repeats(found: list[bool]) -> Any:
    """An ``object_pairs_hook`` that marks an object with a key given twice, and notes in
    ``found`` that one exists (the parsed value is searched only then)."""
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        value = dict(pairs)
        if len(value) == len(pairs):
            return value
        marked, seen = _Repeated(value), set()
        marked.repeated = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        found.append(True)
        return marked
    return hook


def _first(value: Any, test: Any, path: str = "") -> tuple[str, Any] | None:
    """(where, value) of the first value in document order for which ``test`` holds."""
    if test(value):
        return path, value
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, child in children:
        found = _first(child, test, f"{path}[{json.dumps(name, ensure_ascii=False)}]")
        if found is not None:
            return found
    return None


def parse_json(text: str, where: str, line: int | None = None) -> Any:
    """JSON, with one line for what the parser cannot take: bad syntax, nesting deeper than
    Python's recursion limit, an integer longer than Python converts (4,300 digits). ``line``:
    the text is that line of the file (JSONL)."""
    try:
        repeats: list[bool] = []
        value = json.loads(text, object_pairs_hook=_marking_repeats(repeats))
    except json.JSONDecodeError as exc:
        at = (f"line {line} is not valid JSON (column {exc.colno})" if line is not None
              else f"not valid JSON (line {exc.lineno}, column {exc.colno})")
        raise HinttuneError(f"{where}: {at}: {exc.msg}") from None
    except RecursionError:
        at = f"line {line}: " if line is not None else ""
        raise HinttuneError(f"{where}: {at}JSON nested too deeply to read") from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        at = f"line {line}: " if line is not None else ""
        raise HinttuneError(f"{where}: {at}a JSON value is out of range: {exc}") from None
    def place(path: str, what: str) -> str:
        at = ", ".join(part for part in (f"line {line}" if line is not None else "",
                                         f"{what} at {path}" if path else "") if part)
        return f"{where}: {at + ': ' if at else ''}"

    repeated = _first(value, lambda v: isinstance(v, _Repeated)) if repeats else None
    if repeated is not None:
        raise HinttuneError(f"{place(repeated[0], 'the object')}the key {repeated[1].repeated!r} is given "
                            "twice in one object (JSON keeps only the last); keep one")
    return value


def read_json(path: Path) -> Any:
    return parse_json(read_text(path), str(path))


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of each non-empty line of JSONL text. Only "\n" ends a line (a
    "\r" before it is dropped): JSON strings may hold U+2028, U+0085 and the other separators
    that ``str.splitlines()`` also splits at, and a record must not be cut inside them."""
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if line.strip():
            yield lineno, line


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-empty line."""
    for lineno, line in jsonl_lines(read_text(path)):
        yield lineno, parse_json(line, str(path), lineno)
