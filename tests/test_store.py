import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from hinttune.core.errors import HinttuneError
from hinttune.core.store import GenerationRecord, RunStore, canonical_json, hash_of_json, stable_hash


def record(key, status="ok", text="t", finish="stop"):
    return GenerationRecord(key=key, stage="attempts", role="think", problem_id="p", sample=0,
                            model="m", request={"messages": []}, params={"temperature": 0},
                            text=text, finish_reason=finish, prompt_tokens=3, completion_tokens=5,
                            status=status, error=None if status == "ok" else "boom")


def test_put_get_roundtrip(tmp_path):
    with RunStore(tmp_path) as store:
        store.put(record("a", finish="length"))
        got = store.get("a")
        assert got.text == "t" and got.truncated and got.params == {"temperature": 0}
        assert store.get("missing") is None


def test_a_problems_messages_are_stored_once_and_read_back_whole(tmp_path):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x" * 2000}]
    records = [record(f"k{i}") for i in range(40)]
    for rec in records:
        rec.request = {"messages": messages, "continuation_chars": 10, "seed": 1}
    with RunStore(tmp_path) as store:
        store.put_many(records[:20])
        store.put_many(records[20:])
    with RunStore(tmp_path) as store:  # a fresh connection: nothing remembered in memory
        assert store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
        assert store.db.execute("SELECT MAX(LENGTH(request)) FROM generations").fetchone()[0] < 200
        late = record("k99")
        late.request = {"messages": messages}
        store.put(late)  # a later record with the same messages adds no copy
        assert store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
        assert {k: r.request for k, r in store.records(["k0", "k39"]).items()} == {
            k: {"messages": messages, "continuation_chars": 10, "seed": 1} for k in ("k0", "k39")}
        assert store.get("k99").request == {"messages": messages}


def test_ok_is_kept_failed_is_replaced(tmp_path):
    with RunStore(tmp_path) as store:
        store.put(record("a", status="failed", text="raw"))
        assert store.get("a").status == "failed" and store.done_keys(["a"]) == set()
        store.put(record("a", text="good"))
        assert store.get("a").text == "good"
        store.put(record("a", text="other"))  # an ok record is never overwritten
        assert store.get("a").text == "good"
        assert store.count() == 1


def test_plan_and_status(tmp_path):
    with RunStore(tmp_path) as store:
        store.set_plan("attempts", "think", [("p1", 0, "a"), ("p2", 0, "b"), ("p3", 0, "c")])
        store.put(record("a", finish="length"))
        store.put(record("b", status="failed"))
        (row,) = store.status()
        assert (row.planned, row.ok, row.failed, row.truncated, row.completion_tokens) == (3, 1, 1, 1, 5)
        store.set_plan("attempts", "think", [("p1", 0, "a")])  # replaced, not appended
        assert store.status()[0].planned == 1
        assert [(pid, rec.key) for pid, _, rec in store.planned("attempts", "think")] == [("p1", "a")]


def test_stable_hash_is_order_insensitive_for_dicts():
    assert stable_hash({"a": 1, "b": 2}, "x") == stable_hash({"b": 2, "a": 1}, "x")
    assert stable_hash({"a": 1}, "x") != stable_hash({"a": 1}, "y")


def test_a_hash_of_encoded_parts_is_the_hash_of_the_parts():
    settings = {"judge": {"model": "q", "sampling": {"top_p": 0.9, "n": 1}}, "kind": "hybrid"}
    assert hash_of_json(canonical_json("k/é"), canonical_json("7"), canonical_json(settings)) == \
        stable_hash("k/é", "7", settings)


def committed(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]


def test_what_is_written_behind_is_read_back_before_and_after_its_commit(tmp_path):
    """Records handed to the writer thread are found by get() while it writes them, and every
    other read (and write) waits until they are committed."""
    import asyncio
    import threading

    release = threading.Event()
    with RunStore(tmp_path) as store:
        real = store._insert_records

        def slow(db, records):
            release.wait(10)
            real(db, records)

        store._insert_records = slow

        async def main():
            store.defer([record(f"k{i}", text=f"text {i}") for i in range(3)])
            await asyncio.sleep(0)  # the turn ended: handed over, not committed
            assert committed(tmp_path) == 0
            assert store.get("k1").text == "text 1" and store.get("k9") is None
            release.set()
            assert store.count() == 3  # waited for the writer

        asyncio.run(main())
        assert committed(tmp_path) == 3 and store.get("k2").text == "text 2"


def test_what_comes_while_the_writer_commits_joins_the_next_transaction(tmp_path):
    """Group commit: while a batch is being committed, the loop goes on (it never waits for
    the writer) and what its later turns store is handed over together, in one transaction,
    the moment that commit is done; a stage result goes with them."""
    import asyncio
    import threading

    release, groups = threading.Event(), []
    with RunStore(tmp_path) as store:
        real = store._commit

        def slow(db, batch):
            release.wait(10)
            groups.append((len(batch[0]), len(batch[3])))
            real(db, batch)

        store._commit = slow

        async def main():
            store.defer([record("a")])
            await asyncio.sleep(0)  # handed over; its commit waits for `release`
            for key in ("b", "c", "d"):  # three more turns, none of them waits
                store.defer([record(key)])
                await asyncio.sleep(0)
            store.put_stage_results("probe", [("p1", "print", {"k_star": 3})])
            await asyncio.sleep(0)
            assert groups == [] and store.get("c") is not None  # read from memory
            release.set()
            for _ in range(500):
                if len(groups) == 2:
                    break
                await asyncio.sleep(0.01)

        asyncio.run(main())
        assert groups == [(1, 0), (3, 1)]
        assert committed(tmp_path) == 4
        assert store.stage_results("probe") == {"p1": ("print", {"k_star": 3})}


def test_a_read_sees_what_waits_for_the_next_transaction(tmp_path):
    """A read through the store's connection (a count, a query) sees a record still waiting to
    join the writer's next transaction, not only those handed over."""
    import asyncio
    import threading

    release = threading.Event()
    with RunStore(tmp_path) as store:
        real = store._commit

        def slow(db, batch):
            release.wait(10)
            real(db, batch)

        store._commit = slow

        async def main():
            store.defer([record("a")])
            await asyncio.sleep(0)  # handed over; its commit waits for `release`
            store.defer([record("b")])
            await asyncio.sleep(0)  # waits for the next transaction
            threading.Timer(0.1, release.set).start()
            return store.count()

        assert asyncio.run(main()) == 2


def test_a_failed_write_behind_stops_the_stage_naming_the_store(tmp_path):
    import asyncio
    import sqlite3

    store = RunStore(tmp_path)

    def full(db, batch):
        raise sqlite3.OperationalError("database or disk is full")

    store._commit = full

    async def main():
        store.defer([record("a")])
        await asyncio.sleep(0)
        store._writer._last.result()  # the writer has tried
        store.defer([record("b")])  # the next task to store something stops

    with pytest.raises(HinttuneError, match="store.sqlite: writing the run store failed .*disk is full"):
        asyncio.run(main())
    with pytest.raises(HinttuneError, match="disk is full"):
        store.close()
    with pytest.raises(Exception, match="closed"):  # closed all the same
        store._db.execute("SELECT 1")
    assert committed(tmp_path) == 0


def _config(tmp_path, problems, delay):
    problems_file = tmp_path / "problems.jsonl"
    problems_file.write_text("".join(json.dumps({"problem": f"What is {i}+{i}?",
                                                 "gold_answer": str(2 * i)}) + "\n"
                                     for i in range(problems)))
    cfg = {"run_dir": str(tmp_path / "run"), "problems": {"source": str(problems_file)},
           "think": {"backend": "fake", "model": "think", "delay": delay},
           "instruct": {"backend": "fake", "model": "instruct", "delay": delay}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_resume_after_sigkill(tmp_path):
    """Kill a real run with SIGKILL mid-stage; the re-run completes it with every record once
    and never regenerates what was finished before the kill."""
    config = _config(tmp_path, problems=30, delay=0.1)
    cmd = [sys.executable, "-m", "hinttune", "attempts", "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "run" / "store.sqlite"
    deadline = time.time() + 60
    before = 0
    while time.time() < deadline and before < 20:
        time.sleep(0.05)
        if db.exists():
            with RunStore(tmp_path / "run") as store:
                before = store.count()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 20 <= before < 60, "the kill should land mid-run"
    with RunStore(tmp_path / "run") as store:
        survived = {r["key"]: r["created"] for r in store.db.execute("SELECT key, created FROM generations")}
    assert len(survived) >= before

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with RunStore(tmp_path / "run") as store:
        rows = {r["key"]: r["created"] for r in store.db.execute("SELECT key, created FROM generations")}
        assert tuple(store.db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM generations").fetchone()) == (60, 60)
        assert [(s.role, s.planned, s.ok) for s in store.status()] == [("think", 30, 30), ("instruct", 30, 30)]
    # records finished before the kill were not generated again
    assert all(rows[key] == created for key, created in survived.items())


def test_status_reads_a_store_without_writing(tmp_path):
    from hinttune.core.store import RunStore

    with RunStore(tmp_path) as store:
        store.set_plan("attempts", "think", [("p", 0, "k")])
        store.add_counts({"retries: timeout": 2})
        store.add_counts({"retries: timeout": 1, "retries: HTTP 503": 4})
    before = (tmp_path / "store.sqlite").read_bytes()
    with RunStore(tmp_path, readonly=True) as store:
        assert store.status()[0].planned == 1
        assert store.counts() == {"retries: HTTP 503": 4, "retries: timeout": 3}
        with pytest.raises(Exception, match="readonly"):
            store.add_counts({"x": 1})
    assert (tmp_path / "store.sqlite").read_bytes() == before


def test_rejected_requests_are_not_sent_again(tmp_path):
    from hinttune.core.store import GenerationRecord, RunStore

    with RunStore(tmp_path) as store:
        for key, reason in (("a", "error"), ("b", "rejected")):
            store.put(GenerationRecord(key, "attempts", "think", key, 0, "m", {}, {}, "", reason,
                                       None, None, status="failed", error="why"))
        assert store.done_keys(["a", "b"]) == {"b"}


def test_a_damaged_store_is_one_line_naming_it_and_the_way_out(tmp_path):
    from hinttune.core.errors import HinttuneError

    (tmp_path / "store.sqlite").write_bytes(b"this is no database" * 100)
    for readonly in (False, True):
        with pytest.raises(HinttuneError, match=r"store\.sqlite: the run store is damaged .*`mv "):
            RunStore(tmp_path, readonly=readonly)


def test_retry_rejected_and_retry_undecided_make_the_next_run_ask_again(tmp_path):
    with RunStore(tmp_path) as store:
        store.put(record("r", status="failed", finish="rejected"))
        store.put(record("j", text="I cannot tell."))  # a judge reply with no verdict
        store.set_plan("grade", "judge:x", [("item", 0, "j")])
        store.put_grade("g", "item", None, "judge", "no verdict", final=False)
        store.put_grade("g2", "other", True, "judge", "yes")
        assert store.done_keys(["r", "j"]) == {"r", "j"}
        assert store.retry_rejected() == 1 and store.retry_undecided_judge() == 1
        assert store.done_keys(["r", "j"]) == set()
        assert set(store.grades(["g", "g2"])) == {"g2"}  # a decided verdict is kept


def test_status_of_a_store_whose_tables_are_not_made_yet_is_empty(tmp_path):
    """A run just starting has created its file before its tables: `hinttune status` (and a
    shard's watcher) reads nothing planned, not an SQL error."""
    import sqlite3

    sqlite3.connect(tmp_path / "store.sqlite").close()
    with RunStore(tmp_path, readonly=True) as store:
        assert store.status() == []


def damaged_store(tmp_path, *sql):
    """A store with one generation, a grade, a stage result, then ``sql`` run on it."""
    import sqlite3

    with RunStore(tmp_path) as store:
        store.put(GenerationRecord(key="a", stage="attempts", role="think", problem_id="p", sample=0,
                                   model="m", request={"messages": [{"role": "user", "content": "q"}]},
                                   params={}, text="t", finish_reason="stop", prompt_tokens=1, completion_tokens=1))
        store.set_plan("attempts", "think", [("p", 0, "a")])
        store.put_stage_results("probe", [("p", "f", {"k_star": 1})])
    db = sqlite3.connect(tmp_path / "store.sqlite")
    for statement in sql:
        db.execute(statement)
    db.commit()
    db.close()


@pytest.mark.parametrize("sql,message", [
    (["ALTER TABLE generations DROP COLUMN seconds"], r"damaged \(table generations has no column seconds\)"),
    (["DROP TABLE plan"], r"damaged \(its table plan is missing\)"),
    (["PRAGMA user_version=7"], r"written by a newer hinttune \(store format 7; this one reads up to 1\)"),
])
def test_a_store_is_checked_when_opened(tmp_path, sql, message):
    damaged_store(tmp_path, *sql)
    for readonly in (False, True):
        with pytest.raises(HinttuneError, match=message):
            RunStore(tmp_path, readonly=readonly)


@pytest.mark.parametrize("sql,read,message", [
    (["UPDATE generations SET request='{bad'"], "get", r"table generations, row key='a': request is not valid JSON"),
    (["UPDATE generations SET params='[1'"], "get", r"row key='a': params is not valid JSON"),
    (["UPDATE messages SET body='[bad'"], "get", r"the prompt it refers to \(messages id \w+\) is not valid JSON"),
    (["UPDATE generations SET text=CAST(text AS BLOB)"], "get", r"row key='a': text is bytes on a finished"),
    (["UPDATE generations SET text=NULL"], "texts", r"row key='a': text is NULL on a finished generation"),
    (["UPDATE stage_results SET body='nope'"], "stage", r"table stage_results, row stage='probe' AND problem_id='p': body"),
    (["PRAGMA ignore_check_constraints=ON", "UPDATE generations SET status='maybe'"], "get",
     r"row key='a': status is 'maybe', not ok or failed"),
])
def test_a_damaged_row_is_one_line_naming_the_store_table_row_and_the_way_out(tmp_path, sql, read, message):
    damaged_store(tmp_path, *sql)
    with RunStore(tmp_path) as store:
        with pytest.raises(HinttuneError, match=message) as error:
            {"get": lambda: store.get("a"), "texts": lambda: store.texts(["a"]),
             "stage": lambda: store.stage_results("probe")}[read]()
    assert "store.sqlite" in str(error.value) and ("DELETE FROM" in str(error.value)) and "\n" not in str(error.value)


def test_an_empty_store_file_is_a_new_store_and_a_folder_is_refused(tmp_path):
    (tmp_path / "store.sqlite").write_bytes(b"")
    with RunStore(tmp_path, readonly=True) as store:
        assert store.count() == 0 and store.status() == []
    with RunStore(tmp_path) as store:
        assert store.count() == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "store.sqlite").mkdir()
    with pytest.raises(HinttuneError, match=r"store.sqlite: is a directory, not a run store"):
        RunStore(tmp_path / "other")


def test_a_store_from_before_the_format_was_numbered_is_read_and_upgraded(tmp_path):
    """user_version 0 with tables: an older hinttune's store, whose missing tables are made."""
    damaged_store(tmp_path, "PRAGMA user_version=0", "DROP TABLE counters")
    with RunStore(tmp_path) as store:
        assert store.get("a").text == "t" and store.counts() == {}
    import sqlite3

    assert sqlite3.connect(tmp_path / "store.sqlite").execute("PRAGMA user_version").fetchone()[0] == 1
