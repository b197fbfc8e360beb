"""The run store's writer: commits what a turn of the event loop produced on a thread and a
SQLite connection of its own, so the loop goes on reacting to results while SQLite writes
(SQLite releases the GIL while it works: the B-trees, the WAL, the commit). Batches are
committed in the order they were handed over, each in one transaction; a record handed over
stays readable in memory until its commit is done, so a reader never misses it in between.
A kill loses the batches not committed yet, as it loses what is in flight in an engine; the
next run regenerates them."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from hinttune.core.errors import HinttuneError


class WriteBehind:
    def __init__(self, path: Path, commit: Callable[[sqlite3.Connection, Any], None]):
        self.path, self._commit = path, commit
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="hinttune-store")
        self._db: sqlite3.Connection | None = None  # the writer thread's own
        self._last: Future | None = None
        self._error: HinttuneError | None = None
        self._lock = threading.Lock()
        self.records: dict[str, Any] = {}  # key -> record handed over, not committed yet

    def submit(self, batch: Any, records: dict[str, Any]) -> None:
        self.check()
        with self._lock:
            self.records.update(records)
        self._last = self._thread.submit(self._write, batch, records)

    def _write(self, batch: Any, records: dict[str, Any]) -> None:
        try:
            if self._error is None:  # after a failure nothing more is written: the run stops
                if self._db is None:
                    self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
                    self._db.execute("PRAGMA synchronous=NORMAL")  # as the store's own connection
                with self._db:
                    self._db.execute("BEGIN")
                    self._commit(self._db, batch)
        except Exception as exc:
            self._error = self._error or HinttuneError(
                f"{self.path}: writing the run store failed ({type(exc).__name__}: {exc}); what "
                f"was not written is generated again by the next run")
        finally:
            if self._error is None:
                with self._lock:  # committed: readable from the database from now on
                    for key, record in records.items():
                        if self.records.get(key) is record:
                            del self.records[key]

    def check(self) -> None:
        """Raise the writer's failure, if it had one."""
        if self._error is not None:
            raise self._error

    @property
    def busy(self) -> bool:
        return self._last is not None

    def writing(self) -> bool:
        """Whether a batch handed over is still being committed."""
        return self._last is not None and not self._last.done()

    def when_done(self, callback: Callable[[], None]) -> None:
        """``callback()`` once what was handed over so far is committed (on the writer's
        thread, or at once if it is)."""
        last = self._last
        if last is None:
            callback()
        else:
            last.add_done_callback(lambda _: callback())

    def wait(self) -> None:
        """Until every batch handed over is committed; raises the writer's failure."""
        if self._last is not None:
            self._last.result()
            self._last = None
        self.check()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._db is not None:
                self._thread.submit(self._db.close).result()
            self._thread.shutdown(wait=True)
