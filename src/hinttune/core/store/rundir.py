"""A run directory: the resolved config, the problems as loaded, the run log and the store."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hinttune.core.config import RunConfig, dump_config
from hinttune.core.errors import HinttuneError
from hinttune.core.files import write_jsonl, write_text
from hinttune.core.problems import LoadedProblems, load_problems
from hinttune.core.progress import console
from hinttune.core.store import RunStore

LOCK_FILE = ".lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One writer per run directory. The lock is an ``flock`` on ``RUN_DIR/.lock``, which
    the system releases when its process dies, so a killed run leaves no stale lock; the
    file holds the holder's PID and host for the message a second run gets."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as exc:
        raise HinttuneError(f"{run_dir}: cannot write to the run directory: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise HinttuneError(f"{run_dir} is in use by {holder}: one run at a time per run "
                            "directory (wait for it, or stop it; a killed run frees it)") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

def lock_holder(run_dir: Path) -> str | None:
    """Who holds the run directory's lock (a run still going), or None; never takes it for
    longer than the check, and writes nothing."""
    try:
        handle = open(Path(run_dir) / LOCK_FILE, encoding="utf-8")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


log = logging.getLogger(__name__)


def setup_logging(run_dir: Path, verbose: bool = False) -> None:
    from rich.logging import RichHandler

    from hinttune.core.progress import console

    run_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hinttune", False):
            root.removeHandler(handler)
    file_handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.setLevel(logging.INFO)
    screen = RichHandler(console=console, show_path=False, show_time=False)
    screen.setLevel(logging.INFO if verbose else logging.WARNING)
    from hinttune.core.secrets import RedactingFilter

    for handler in (file_handler, screen):
        handler._hinttune = True  # type: ignore[attr-defined]
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpx2", "openai", "urllib3", "filelock", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def open_run(cfg: RunConfig) -> tuple[RunStore, LoadedProblems]:
    """Write the config and problems into the run directory and open its store."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.yaml"
    text = dump_config(cfg)
    previous = config_path.read_text(encoding="utf-8") if config_path.exists() else None
    if previous is not None and previous != text:
        _refuse_other_problems(run_dir, previous, cfg)
        log.info("configuration changed since the last run: work whose inputs changed is redone")
    loaded = load_problems(cfg.problems)
    if cfg.problems.decontaminate != "off":  # before anything is generated for them
        from hinttune.core.decontamination import decontaminate

        loaded.problems, loaded.contamination = decontaminate(cfg.problems, loaded.problems, run_dir)
    if loaded.shard is not None:
        seed_shard_store(run_dir)
    if previous != text:
        write_text(config_path, text)
    write_jsonl(run_dir / "problems.jsonl", ({"id": p.id, "index": p.index, "problem": p.problem,
                                              "gold_answer": p.gold_answer} for p in loaded.problems))
    log.info("%d problems from %s (%d skipped, %d duplicate notes)", len(loaded.problems),
             loaded.source, len(loaded.skipped), len(loaded.duplicates))
    console.print(f"[bold]{len(loaded.problems)}[/] problems from {loaded.source}"
                  + (f", {len(loaded.skipped)} skipped (see run.log)" if loaded.skipped else "")
                  + (f" (shard {loaded.shard})" if loaded.shard else "")
                  + f" → {run_dir}", highlight=False)
    console.print(f"think: {_model_line(cfg.think)} · instruct: {_model_line(cfg.instruct)}",
                  highlight=False)
    return RunStore(run_dir), loaded


def _refuse_other_problems(run_dir: Path, previous: str, cfg: RunConfig) -> None:
    """A run directory holds one set of problems: `-p a.jsonl` then `-p a.csv` both default
    to runs/a, and the second would replace the first's dataset (and mix into its status)."""
    import yaml

    try:
        before = (yaml.safe_load(previous) or {}).get("problems", {}).get("source")
    except yaml.YAMLError:
        return
    now = cfg.problems.source

    def same(a: str, b: str) -> bool:
        if a == b:
            return True
        pa, pb = Path(a).expanduser(), Path(b).expanduser()
        return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()

    if before is not None and not same(str(before), now):
        raise HinttuneError(f"{run_dir} holds a run of the problems in {before}, not {now}: give this "
                            f"run its own directory (-o runs/NAME), or remove {run_dir} to start it over")


def seed_shard_store(shard_dir: Path) -> None:
    """A new shard of a run that has a store (a merged run, split again) starts from a copy of
    it: what is done is never generated again, and a straggler can be split further."""
    parent = shard_dir.parent.parent / "store.sqlite"
    mine = shard_dir / "store.sqlite"
    if mine.exists() or not parent.exists():
        return
    import sqlite3

    log.info("shard %s starts from the store of %s", shard_dir.name, parent.parent)
    tmp = mine.with_name(".store.sqlite.tmp")
    source, target = sqlite3.connect(parent), sqlite3.connect(tmp)
    try:
        source.backup(target)  # consistent even while the parent's store is open
    finally:
        source.close()
        target.close()
    os.replace(tmp, mine)


def _model_line(model: object) -> str:
    backend, name = getattr(model, "backend"), getattr(model, "model")
    where = getattr(model, "base_url", None)
    return f"{name} ({backend}{' at ' + str(where) if where else ''})"
