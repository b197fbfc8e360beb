"""The run store: one SQLite database (WAL mode) per run directory.

Every generation is committed the moment it completes, keyed by a hash of the model, the
rendered prompt, the sampling parameters and the sample index. A re-run skips keys already
done, so a run killed at any moment (even by SIGKILL) resumes with nothing lost and nothing
duplicated: a row is either fully committed or absent. Failed generations are stored with
their error and raw output, and are retried (replaced) by the next run.

Each stage also writes its *plan* (which keys it needs for which problem, role and sample), so
``hinttune status`` can report progress without loading any model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from hinttune.core.errors import HinttuneError
from hinttune.core.store.write_behind import WriteBehind

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    role TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    sample INTEGER NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    params TEXT NOT NULL,
    text TEXT,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    seconds REAL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS plan (
    stage TEXT NOT NULL,
    role TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    sample INTEGER NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (stage, role, problem_id, sample)
);
CREATE INDEX IF NOT EXISTS plan_key ON plan(key);
CREATE TABLE IF NOT EXISTS grades (
    key TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    correct INTEGER,
    grader TEXT NOT NULL,
    detail TEXT,
    created REAL NOT NULL,
    final INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS stage_results (
    stage TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (stage, problem_id)
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


# The store's format (SQLite's user_version): a store from a newer hinttune is refused rather
# than misread; 0 is a store made before the format was numbered (or one just created).
STORE_VERSION = 1
COLUMNS = {table: [line.split()[0] for line in body.split("\n") if line.strip() and not line.strip().startswith(
    ("PRIMARY", ")"))] for table, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \(\n(.*?)\n\);", SCHEMA, re.S)}
STATUSES = ("ok", "failed")

REJECTED = "rejected"  # finish_reason of a request the backend refuses for good
REFUSED = "refused for good"  # how such a request is named in causes (see retry_hint)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def stable_hash(*parts: Any) -> str:
    return hash_of_json(*map(canonical_json, parts))


def hash_of_json(*encoded: str) -> str:
    """``stable_hash`` of parts given as their ``canonical_json``: a part every key shares
    (the grader's settings) is encoded once, not once per key."""
    return hashlib.sha256(("[" + ",".join(encoded) + "]").encode("utf-8")).hexdigest()


@dataclass
class GenerationRecord:
    key: str
    stage: str
    role: str
    problem_id: str
    sample: int
    model: str
    request: dict[str, Any]
    params: dict[str, Any]
    text: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    status: str = "ok"
    error: str | None = None
    seconds: float | None = None

    @property
    def done(self) -> bool:
        """Needs no new request: finished, or rejected for good (see ``done_keys``)."""
        return self.status == "ok" or self.finish_reason == REJECTED

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    @property
    def failure(self) -> str:
        """What happened to a generation that is not ok, for the item's incomplete cause."""
        how = REFUSED if self.finish_reason == REJECTED else "failed"
        return f"{how}: {self.error or 'no reason given'}"


@dataclass
class PlanStatus:
    stage: str
    role: str
    planned: int
    ok: int
    failed: int
    truncated: int
    completion_tokens: int
    imported: int = 0  # read from a file of traces, not generated


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    """``callback`` on ``loop`` from another thread, unless the loop has ended (what it
    queued is then handed over by ``flush``)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed
        pass


class RunStore:
    def __init__(self, run_dir: Path, readonly: bool = False):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "store.sqlite"
        self._message_ids: set[str] = set()  # messages known to be stored (see put_many)
        self._pending_records: dict[str, GenerationRecord] = {}  # see defer
        self._pending_plan: dict[tuple[str, str], list] = {}
        self._pending_grades: list[tuple] = []
        self._pending_stage: list[tuple] = []  # (stage, problem_id, fingerprint, body)
        self._flush_scheduled: Any = None  # the loop a hand-over is scheduled on
        self._read_messages: dict[str, Any] = {}
        # keys of the rows this store holds, read once: a fresh run asks for every request's
        # record and verdict before sending it, and a set answers "not there" without a query
        # (one process writes a run's store: the run's lock)
        self._generation_keys: set[str] | None = None
        self._final_grade_keys: set[str] | None = None
        self._writer: WriteBehind | None = None
        try:
            self._open(readonly)
        except sqlite3.DatabaseError as exc:
            if not damaged(exc):
                raise
            raise HinttuneError(damaged_message(self.path, exc)) from None

    def _open(self, readonly: bool) -> None:
        if self.path.is_dir():
            raise HinttuneError(f"{self.path}: is a directory, not a run store (an SQLite file); "
                                "move it aside")
        if readonly:  # status of a run, also on a read-only disk: never writes
            self._db = _open_readonly(self.path)
            self._db.row_factory = sqlite3.Row
            self.tables = self._check_format()
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size == 0 and (self.run_dir / "problems.jsonl").exists():
            log.warning("%s is empty (0 bytes) though the run has started before: its generations are "
                        "lost and will be made again", self.path)
        # isolation_level=None: we open transactions ourselves, so each record is one commit.
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        self._db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes (SIGKILL) in WAL mode; only a power loss
        # can drop the last commits, which a re-run regenerates.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._check_format()
        self.db.executescript(SCHEMA)  # a new store's tables, or those an older one lacks
        columns = {row["name"] for row in self.db.execute("PRAGMA table_info(grades)")}
        if "final" not in columns:  # stores written before undecided grades were retried
            try:
                self.db.execute("ALTER TABLE grades ADD COLUMN final INTEGER NOT NULL DEFAULT 1")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise
        self.db.execute(f"PRAGMA user_version={STORE_VERSION}")
        self.tables = set(COLUMNS)

    def _check_format(self) -> set[str]:
        """The store's tables, once its format is one this hinttune reads: not from a newer
        hinttune, no table of a numbered store missing, no column of a table missing. A store
        with no tables yet (a run just starting, an empty file) is a new store."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > STORE_VERSION:
            raise HinttuneError(
                f"{self.path}: written by a newer hinttune (store format {version}; this one reads up "
                f"to {STORE_VERSION}): upgrade hinttune (`pip install -U hinttune`) to read or resume this run")
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version == STORE_VERSION:
            for table in COLUMNS:
                if table not in tables:
                    raise HinttuneError(self._damage(f"its table {table} is missing"))
        for table in tables & set(COLUMNS):
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            lacking = [c for c in COLUMNS[table] if c not in have and not (table, c) == ("grades", "final")]
            if lacking:
                raise HinttuneError(self._damage(f"table {table} has no column {lacking[0]}"))
        return tables

    def _damage(self, what: str, table: str | None = None, where: str | None = None) -> str:
        """One line for a damaged store: what is wrong, where, and the ways out."""
        if table is not None and where is not None:
            return (f"{self.path}: table {table}, row {where}: {what}. The store is damaged there: "
                    f"delete the row to make it again (`sqlite3 {self.path} \"DELETE FROM {table} WHERE "
                    f"{where}\"`), or move the store aside to start over (`mv {self.path} {self.path}.damaged`)")
        return damaged_message(self.path, what)

    def _json(self, value: Any, table: str, column: str, where: str) -> Any:
        """A JSON cell of a row, or one line naming the store, table, row and column."""
        if not isinstance(value, str):
            raise HinttuneError(self._damage(f"{column} is {type(value).__name__}, not JSON text", table, where))
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise HinttuneError(self._damage(f"{column} is not valid JSON ({exc})", table, where)) from None

    @property
    def db(self) -> sqlite3.Connection:
        """The store's connection, once what was written behind is committed (every read and
        write but ``get``'s, which finds what was handed over in memory, sees it) - including
        what waits to join the writer's next transaction."""
        self._write_behind()
        if self._writer is not None and self._writer.busy:
            self._writer.wait()
        return self._db

    def close(self) -> None:
        try:
            self.flush()
        finally:  # a failed write is raised, and everything is closed all the same
            try:
                if self._writer is not None:
                    self._writer.close()
            finally:
                self._db.close()

    # --- written behind: what tasks of one event-loop turn produced, in one transaction ----
    def defer(self, records: list[GenerationRecord] = (), plan: tuple[str, str, list] | None = None,
              grades: list[tuple] = (), stage_results: list[tuple] = ()) -> None:
        """Queue writes; inside a running event loop they are handed to the writer thread
        together when the loop's current turn ends, and committed there in one transaction
        (a kill loses what was in flight or not committed yet, which the next run generates
        again), outside one at once."""
        if self._writer is not None:
            self._writer.check()  # the writer failed: stop the stage (retried by the next run)
        self._pending_records.update((r.key, r) for r in records)
        if plan is not None:
            self._pending_plan.setdefault(plan[:2], []).extend(plan[2])
        self._pending_grades.extend(grades)
        self._pending_stage.extend(stage_results)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_scheduled is not loop:  # (one scheduled on a loop that ended is void)
            self._flush_scheduled = loop
            loop.call_soon(self._hand_over, loop)

    def flush(self) -> None:
        """Commit what ``defer`` queued, and wait until the writer has committed it all."""
        self._write_behind()
        if self._writer is not None:
            self._writer.wait()

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """At the end of a turn of the loop: hand what it queued to the writer, unless the
        writer is still committing an earlier batch - then what comes meanwhile joins the
        next transaction, handed over the moment that commit is done (group commit: the
        slower the disk, the bigger the transactions, and the loop never waits for them)."""
        if self._writer is not None and self._writer.writing():
            self._writer.when_done(lambda: _call_soon(loop, self._hand_over, loop))
            return
        self._write_behind()

    def _write_behind(self) -> None:
        """Hand what ``defer`` queued to the writer thread, as one transaction."""
        self._flush_scheduled = None
        records, plans, grades = self._pending_records, self._pending_plan, self._pending_grades
        stage = self._pending_stage
        if not (records or plans or grades or stage):
            return
        self._pending_records, self._pending_plan, self._pending_grades, self._pending_stage = {}, {}, [], []
        self._note_records(records.values())
        self._note_grades(grades)
        if self._writer is None:
            self._writer = WriteBehind(self.path, self._commit)
        self._writer.submit((list(records.values()), plans, grades, stage), records)

    def _commit(self, db: sqlite3.Connection, batch: tuple) -> None:
        """Write one batch of ``_write_behind`` (on the writer's connection, in its thread)."""
        records, plans, grades, stage_results = batch
        if records:
            self._insert_records(db, records)
        for (stage, role), rows in plans.items():
            self._insert_plan(db, stage, role, rows)
        if grades:
            self._insert_grades(db, grades)
        if stage_results:  # after the records they name: a recall finds their texts
            db.executemany("INSERT OR REPLACE INTO stage_results VALUES (?,?,?,?)",
                           [(stage, pid, fingerprint, json.dumps(body, ensure_ascii=False))
                            for stage, pid, fingerprint, body in stage_results])

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- generations -------------------------------------------------------------------
    def _rows(self, table: str, keys: Iterable[str], where: str = "") -> Iterator[sqlite3.Row]:
        """Rows of ``table`` whose key is in ``keys`` (in chunks: SQLite caps parameters)."""
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            yield from self.db.execute(  # fetched whole: no cursor outlives a failed read
                f"SELECT * FROM {table} WHERE key IN ({','.join('?' * len(chunk))}){where}", chunk).fetchall()

    def done_keys(self, keys: Iterable[str]) -> set[str]:
        """Keys that need no new request: finished, or rejected for good by the backend (a
        prompt longer than the context fails the same way every time)."""
        return {row["key"] for row in self._rows(
            "generations", keys, f" AND (status='ok' OR finish_reason='{REJECTED}')")}

    def records(self, keys: Iterable[str]) -> dict[str, GenerationRecord]:
        return {row["key"]: self._record(row) for row in self._rows("generations", keys)}

    def put(self, rec: GenerationRecord) -> None:
        """Insert one record and commit. An ok record is never overwritten; a failed one is."""
        self.put_many([rec])

    def put_many(self, records: list[GenerationRecord]) -> None:
        """Insert records in one transaction: a kill leaves all of them or none."""
        with self.db:
            self.db.execute("BEGIN")
            self._insert_records(self.db, records)
        self._note_records(records)

    def _note_records(self, records: Iterable[GenerationRecord]) -> None:
        if self._generation_keys is not None:
            self._generation_keys.update(rec.key for rec in records)

    def _insert_records(self, db: sqlite3.Connection, records: list[GenerationRecord]) -> None:
        now = time.time()
        requests, new_messages = [], {}
        for rec in records:
            request, body = self._without_messages(rec.request)
            requests.append(request)
            if body is not None:
                new_messages[request["messages_id"]] = body
        db.executemany("INSERT OR IGNORE INTO messages VALUES (?, ?)", new_messages.items())
        db.executemany(
            """INSERT INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(key) DO UPDATE SET
                 stage=excluded.stage, role=excluded.role, problem_id=excluded.problem_id,
                 sample=excluded.sample, model=excluded.model, request=excluded.request,
                 params=excluded.params, text=excluded.text, finish_reason=excluded.finish_reason,
                 prompt_tokens=excluded.prompt_tokens, completion_tokens=excluded.completion_tokens,
                 status=excluded.status, error=excluded.error, seconds=excluded.seconds,
                 created=excluded.created
               WHERE generations.status != 'ok'""",
            [(rec.key, rec.stage, rec.role, rec.problem_id, rec.sample, rec.model,
              json.dumps(request, ensure_ascii=False), json.dumps(rec.params, sort_keys=True),
              rec.text, rec.finish_reason, rec.prompt_tokens, rec.completion_tokens, rec.status,
              rec.error, rec.seconds, now) for rec, request in zip(records, requests)])
        self._message_ids.update(new_messages)

    def _without_messages(self, request: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The request with its messages replaced by their id, and the messages' JSON if the
        store does not hold them yet: a problem's prompt is stored once, not in every one of
        its probe rows."""
        if "messages" not in request:
            return request, None
        request = dict(request)
        body = json.dumps(request.pop("messages"), ensure_ascii=False)
        request["messages_id"] = hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]
        return request, None if request["messages_id"] in self._message_ids else body

    def _messages(self, message_id: str) -> Any:
        if message_id not in self._read_messages:
            # a committed row's messages are committed (with it or before): no wait for the writer
            found = self._db.execute("SELECT body FROM messages WHERE id=?", (message_id,)).fetchone()
            body = found[0] if found else None
            try:
                self._read_messages[message_id] = json.loads(body) if found else None
            except (TypeError, ValueError, RecursionError):  # the rows that use it are made again
                raise HinttuneError(self._damage(f"the prompt it refers to (messages id {message_id}) is "
                                                 "not valid JSON", "generations",
                                                 f"request LIKE '%{message_id}%'")) from None
        return self._read_messages[message_id]

    def _record(self, row: sqlite3.Row) -> GenerationRecord:
        where = f"key='{row['key']}'"
        request = self._json(row["request"], "generations", "request", where)
        if not isinstance(request, dict):
            raise HinttuneError(self._damage("request is not a JSON object", "generations", where))
        if "messages_id" in request:
            request = {"messages": self._messages(request.pop("messages_id")), **request}
        if row["status"] not in STATUSES:
            raise HinttuneError(self._damage(f"status is {row['status']!r}, not ok or failed", "generations", where))
        text = row["text"]
        if not (isinstance(text, str) or (text is None and row["status"] != "ok")):
            raise HinttuneError(self._damage(f"text is {type(text).__name__ if text is not None else 'NULL'} "
                                             "on a finished generation, not text", "generations", where))
        return GenerationRecord(
            key=row["key"], stage=row["stage"], role=row["role"], problem_id=row["problem_id"],
            sample=row["sample"], model=row["model"], request=request,
            params=self._json(row["params"], "generations", "params", where), text=text,
            finish_reason=row["finish_reason"],
            prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
            status=row["status"], error=row["error"], seconds=row["seconds"])

    def texts(self, keys: Iterable[str]) -> dict[str, str]:
        """The text of each ok generation among ``keys`` (nothing else decoded)."""
        keys = list(keys)
        out: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            out.update(self.db.execute(
                f"SELECT key, text FROM generations WHERE status='ok' AND key IN "
                f"({','.join('?' * len(chunk))})", chunk).fetchall())
        for key, text in out.items():
            if not isinstance(text, str):
                raise HinttuneError(self._damage(f"text is {type(text).__name__ if text is not None else 'NULL'} "
                                                 "on a finished generation, not text", "generations", f"key='{key}'"))
        return out

    def get(self, key: str) -> GenerationRecord | None:
        if key in self._pending_records:  # written behind, not handed to the writer yet
            return self._pending_records[key]
        if self._writer is not None:  # handed over, not committed yet
            handed = self._writer.records.get(key)
            if handed is not None:
                return handed
        if self._generation_keys is None:
            self._generation_keys = {k for (k,) in self.db.execute("SELECT key FROM generations")}
        if key not in self._generation_keys:
            return None
        # not in memory: committed, so readable without waiting for the writer
        row = self._db.execute("SELECT * FROM generations WHERE key=?", (key,)).fetchone()
        return self._record(row) if row else None

    def retry_rejected(self) -> int:
        """Make requests the backend refused for good ask again (``--retry-rejected``: after
        raising max_model_len, say); returns how many."""
        with self.db:
            self.db.execute("BEGIN")
            return self.db.execute(f"UPDATE generations SET status='failed', finish_reason='error' "
                                   f"WHERE finish_reason='{REJECTED}'").rowcount

    def retry_undecided_judge(self) -> int:
        """Forget the judge replies that gave no verdict, so the judge is asked again
        (``--retry-undecided``); returns how many."""
        with self.db:
            self.db.execute("BEGIN")
            rows = self.db.execute(
                """SELECT grades.key, plan.key FROM grades JOIN plan ON plan.stage='grade'
                   AND plan.problem_id=grades.subject
                   WHERE grades.grader='judge' AND grades.correct IS NULL""").fetchall()
            self.db.executemany("DELETE FROM grades WHERE key=?", [(g,) for g, _ in rows])
            self.db.executemany("DELETE FROM generations WHERE key=?", [(k,) for _, k in rows])
            self._forget_keys()
            return len({k for _, k in rows})

    def count(self, status: str | None = None) -> int:
        if "generations" not in self.tables:  # read-only, a run just starting: nothing yet
            return 0
        if status is None:
            return self.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM generations WHERE status=?",
                               (status,)).fetchone()[0]

    # --- grades ------------------------------------------------------------------------
    def put_grade(self, key: str, subject: str, correct: bool | None, grader: str, detail: str,
                  final: bool = True) -> None:
        """Store a verdict. A verdict that is not ``final`` (a timed-out check) is kept for
        the record but graded again by the next run."""
        self.put_grades([(key, subject, correct, grader, detail, final)])

    def put_grades(self, rows: list[tuple[str, str, bool | None, str, str, bool]]) -> None:
        """Store (key, subject, correct, grader, detail, final) verdicts in one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self._insert_grades(self.db, rows)
        self._note_grades(rows)

    def _forget_keys(self) -> None:
        """Rows came or went behind the key sets' back: read them again when next needed."""
        self._generation_keys = self._final_grade_keys = None

    def _note_grades(self, rows: list[tuple]) -> None:
        if self._final_grade_keys is not None:
            for key, *_, final in rows:
                (self._final_grade_keys.add if final else self._final_grade_keys.discard)(key)

    @staticmethod
    def _insert_grades(db: sqlite3.Connection, rows: list[tuple[str, str, bool | None, str, str, bool]]) -> None:
        now = time.time()
        db.executemany(
            "INSERT OR REPLACE INTO grades (key, subject, correct, grader, detail, created, "
            "final) VALUES (?,?,?,?,?,?,?)",
            [(key, subject, None if correct is None else int(correct), grader, detail, now,
              int(final)) for key, subject, correct, grader, detail, final in rows])

    def grades(self, keys: list[str]) -> dict[str, tuple[bool | None, str, str]]:
        """(correct, grader, detail) by grade key, final verdicts only."""
        if self._final_grade_keys is None:
            self._final_grade_keys = {k for (k,) in self.db.execute("SELECT key FROM grades WHERE final=1")}
        keys = [k for k in keys if k in self._final_grade_keys]
        if not keys:
            return {}
        found = {}
        for r in self._rows("grades", keys, " AND final=1"):
            if r["correct"] not in (None, 0, 1) or not isinstance(r["grader"], str):
                raise HinttuneError(self._damage(f"a verdict of {r['correct']!r} by {r['grader']!r}",
                                                 "grades", f"key='{r['key']}'"))
            found[r["key"]] = (None if r["correct"] is None else bool(r["correct"]), r["grader"], r["detail"] or "")
        return found

    # --- a stage's finished results, by problem (see construction/probe/memo.py) ----------------------
    def stage_results(self, stage: str) -> dict[str, tuple[str, Any]]:
        """problem_id -> (fingerprint, body) of what ``stage`` remembered."""
        try:
            rows = self.db.execute("SELECT problem_id, fingerprint, body FROM stage_results "
                                   "WHERE stage=?", (stage,)).fetchall()
        except sqlite3.OperationalError:  # a store written before stage results, read-only
            return {}
        return {pid: (fingerprint, self._json(body, "stage_results", "body", f"stage='{stage}' AND problem_id='{pid}'"))
                for pid, fingerprint, body in rows}

    def put_stage_results(self, stage: str, rows: list[tuple[str, str, Any]]) -> None:
        """Written behind, as generations are (at once outside an event loop)."""
        self.defer(stage_results=[(stage, pid, fingerprint, body) for pid, fingerprint, body in rows])

    # --- merging (shards) ------------------------------------------------------------------
    def merge_from(self, path: Path) -> dict[str, int]:
        """Add another run's store (a shard) to this one, in one transaction: records are keyed
        by content, so nothing conflicts; an ok generation replaces a failed one, never the
        reverse, and a final verdict replaces one that is not. Counters add up. Returns the
        rows each table gained."""
        self.flush()
        with RunStore(Path(path).parent, readonly=True) as shard:  # its format, named as the shard's
            if not {"generations", "plan", "grades"} <= shard.tables:
                raise HinttuneError(f"{path}: holds no run (no generations, plan or grades table)")
        try:
            return self._merge_from(path)
        except sqlite3.DatabaseError as exc:
            raise HinttuneError(damaged_message(path, exc)) from None

    def _merge_from(self, path: Path) -> dict[str, int]:
        columns = [r["name"] for r in self.db.execute("PRAGMA table_info(generations)")]
        updates = ", ".join(f"{c}=excluded.{c}" for c in columns if c != "key")
        before = {t: self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in MERGED}
        self.db.execute("ATTACH DATABASE ? AS shard", (str(Path(path)),))  # only read
        try:
            grade_columns = {r["name"] for r in self.db.execute("PRAGMA shard.table_info(grades)")}
            final = "final" if "final" in grade_columns else "1"
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute(f"INSERT INTO generations SELECT {', '.join(columns)} FROM shard.generations "
                                f"WHERE true ON CONFLICT(key) DO UPDATE SET {updates} "
                                "WHERE generations.status != 'ok' AND excluded.status = 'ok'")
                self.db.execute("INSERT OR IGNORE INTO plan SELECT stage, role, problem_id, sample, key "
                                "FROM shard.plan ORDER BY rowid")
                self.db.execute("INSERT INTO grades (key, subject, correct, grader, detail, created, final) "
                                f"SELECT key, subject, correct, grader, detail, created, {final} FROM shard.grades "
                                "WHERE true ON CONFLICT(key) DO UPDATE SET correct=excluded.correct, "
                                "grader=excluded.grader, detail=excluded.detail, created=excluded.created, "
                                "final=excluded.final WHERE grades.final = 0 AND excluded.final = 1")
                self.db.execute("INSERT OR IGNORE INTO stage_results SELECT * FROM shard.stage_results")
                self.db.execute("INSERT OR IGNORE INTO messages SELECT * FROM shard.messages")
                self.db.execute("INSERT INTO counters SELECT name, value FROM shard.counters WHERE true "
                                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")
        finally:
            self.db.execute("DETACH DATABASE shard")
            self._forget_keys()
        return {t: self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] - before[t] for t in MERGED}

    # --- counters (retries, and other events of a run that no record shows) -------------
    def add_counts(self, counts: dict[str, int]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
                                "SET value = value + excluded.value",
                                [(k, v) for k, v in counts.items() if v])

    def counts(self) -> dict[str, int]:
        try:
            return {r["name"]: r["value"] for r in self.db.execute("SELECT * FROM counters ORDER BY name")}
        except sqlite3.OperationalError:  # a store written before counters existed, read-only
            return {}

    # --- plans -------------------------------------------------------------------------
    def set_plan(self, stage: str, role: str, rows: Iterable[tuple[str, int, str]]) -> None:
        """Replace the plan of (stage, role) with (problem_id, sample, key) rows, atomically."""
        with self.db:  # one transaction: a kill leaves the old plan or the new one
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM plan WHERE stage=? AND role=?", (stage, role))
            self.db.executemany("INSERT INTO plan VALUES (?,?,?,?,?)",
                                ((stage, role, pid, sample, key) for pid, sample, key in rows))

    def add_plan(self, stage: str, role: str, rows: Iterable[tuple[str, int, str]]) -> None:
        """Add (problem_id, sample, key) rows to a plan that grows (e.g. probe rounds)."""
        with self.db:
            self.db.execute("BEGIN")
            self._insert_plan(self.db, stage, role, rows)

    @staticmethod
    def _insert_plan(db: sqlite3.Connection, stage: str, role: str, rows: Iterable[tuple[str, int, str]]) -> None:
        # a row already there is left alone (a resumed stage plans what it planned before)
        db.executemany("INSERT INTO plan VALUES (?,?,?,?,?) ON CONFLICT(stage, role, problem_id, sample) "
                       "DO UPDATE SET key=excluded.key WHERE plan.key != excluded.key",
                       ((stage, role, pid, sample, key) for pid, sample, key in rows))

    def planned(self, stage: str, role: str) -> Iterator[tuple[str, int, GenerationRecord | None]]:
        """(problem_id, sample, record-or-None) for every planned item, in plan order."""
        rows = self.db.execute(
            """SELECT plan.problem_id AS pid, plan.sample AS psample, generations.*
               FROM plan LEFT JOIN generations ON generations.key = plan.key
               WHERE plan.stage=? AND plan.role=? ORDER BY plan.rowid""", (stage, role))
        for row in rows:
            yield row["pid"], row["psample"], (self._record(row) if row["status"] else None)

    def status(self) -> list[PlanStatus]:
        try:
            rows = self.db.execute(
                """SELECT plan.stage, plan.role, COUNT(*) AS planned,
                          SUM(g.status='ok') AS ok, SUM(g.status='failed') AS failed,
                          SUM(g.status='ok' AND g.finish_reason='length') AS truncated,
                          SUM(CASE WHEN g.status='ok' THEN g.completion_tokens ELSE 0 END) AS tokens,
                          SUM(g.status='ok' AND g.finish_reason='imported') AS imported
                   FROM plan LEFT JOIN generations g ON g.key = plan.key
                   GROUP BY plan.stage, plan.role ORDER BY MIN(plan.rowid)""")
        except sqlite3.OperationalError as exc:  # a run just starting: no tables yet
            if "no such table" not in str(exc):
                raise
            return []
        return [PlanStatus(r["stage"], r["role"], r["planned"], r["ok"] or 0, r["failed"] or 0,
                           r["truncated"] or 0, r["tokens"] or 0, r["imported"] or 0) for r in rows]


def damaged(exc: BaseException) -> bool:
    """Whether SQLite says the database file itself is damaged (not: the disk is full)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "encrypted" in text)


def damaged_message(path: Path | str, exc: BaseException | str) -> str:
    return (f"{path}: the run store is damaged ({exc}). Move it aside to start this run over "
            f"(`mv {path} {path}.damaged`; generations are then made again), or try to rescue "
            f"it with `sqlite3 {path} .recover | sqlite3 recovered.sqlite`")


MERGED = ("generations", "plan", "grades", "stage_results", "messages")


def _open_readonly(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True)
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        # a WAL database in a folder we cannot write to: read it as an immutable file
        return sqlite3.connect(f"{uri}?immutable=1", uri=True)
