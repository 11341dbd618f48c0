"""SqliteLedger on real database files: batching, flush, close, back-pressure, crash safety."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dispatcher.ledger import SqliteLedger
from dispatcher.ledger.cmd import aggregate, open_readonly
from tests.conftest import REPO
from tests.unit.test_ledger_rows import make_attempt, make_request


def _counts(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        r = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        a = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        return int(r), int(a)
    finally:
        conn.close()


async def _wait_for(predicate: Callable[[], bool]) -> None:
    """Poll state owned by the writer thread (at most ~20 s)."""
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def _record(ledger: SqliteLedger, i: int, n_attempts: int = 1) -> None:
    rid = f"r{i:06d}"
    req = make_request(rid, attempts=n_attempts)
    ledger.record(req, [make_attempt(rid, k + 1, hop=k) for k in range(n_attempts)])


async def test_full_batches_are_written_without_a_flush(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = await SqliteLedger.open(db, batch_size=10, flush_interval_s=3600)
    for i in range(25):
        _record(ledger, i)
    await _wait_for(lambda: ledger.stats().batches == 2)
    assert ledger.stats().written == 20
    assert ledger.stats().queued == 5  # a partial batch waits for its interval
    assert _counts(db) == (20, 20)
    await ledger.flush()
    assert _counts(db) == (25, 25)
    assert ledger.stats().batches == 3
    await ledger.aclose()


async def test_a_partial_batch_is_written_after_the_interval(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = await SqliteLedger.open(db, batch_size=1000, flush_interval_s=0.05)
    for i in range(3):
        _record(ledger, i, n_attempts=2)
    await _wait_for(lambda: ledger.stats().written == 3)
    assert _counts(db) == (3, 6)
    await ledger.aclose()


async def test_close_flushes_and_later_records_are_dropped(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = await SqliteLedger.open(db, batch_size=10_000, flush_interval_s=3600)
    for i in range(500):
        _record(ledger, i, n_attempts=1 + i % 3)
    await ledger.aclose()
    assert _counts(db) == (500, sum(1 + i % 3 for i in range(500)))
    _record(ledger, 999)
    assert ledger.stats().dropped == 1
    await ledger.flush()  # a closed ledger's flush returns at once
    assert _counts(db)[0] == 500


async def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = await SqliteLedger.open(db, batch_size=1000, flush_interval_s=3600, max_queue=5)
    for i in range(8):
        _record(ledger, i)
    assert ledger.stats().dropped == 3
    await ledger.flush()
    assert ledger.stats().written == 5
    await ledger.aclose()


async def test_reopen_keeps_rows_and_schema(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    for round_ in range(2):
        ledger = await SqliteLedger.open(db)
        _record(ledger, round_)
        await ledger.aclose()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,), (2,)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    assert _counts(db) == (2, 2)


async def test_open_fails_clearly_and_close_is_quiet(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await SqliteLedger.open(tmp_path / "missing-dir" / "ledger.db")
    ledger = SqliteLedger(tmp_path / "missing-dir" / "ledger.db")
    await ledger.aclose()
    _record(ledger, 1)
    assert ledger.stats().dropped == 1


async def test_concurrent_writers_on_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = await SqliteLedger.open(db, batch_size=64, flush_interval_s=0.01)

    async def writer(w: int) -> None:
        for i in range(200):
            _record(ledger, w * 1000 + i, n_attempts=2)
            if i % 50 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(writer(w) for w in range(10)))
    await ledger.aclose()
    assert _counts(db) == (2000, 4000)
    assert ledger.stats().dropped == ledger.stats().rejected == 0


_CHILD = """
import asyncio, sys
from dispatcher.ledger import SqliteLedger
from tests.unit.test_ledger_rows import make_attempt, make_request

async def main(path):
    ledger = await SqliteLedger.open(path, batch_size=25, flush_interval_s=0.002)
    i = 0
    while True:
        rid = f"r{i:08d}"
        n = 1 + i % 4
        ledger.record(make_request(rid, attempts=n),
                      [make_attempt(rid, k + 1, hop=k) for k in range(n)])
        i += 1
        if i % 100 == 0:
            await ledger.flush()
            print(i, flush=True)
        if i % 10 == 0:
            await asyncio.sleep(0)

asyncio.run(main(sys.argv[1]))
"""


async def test_sigkill_mid_run_loses_only_the_unflushed_tail(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        str(db),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    acknowledged = 0
    try:
        while acknowledged < 3000:  # records the child saw flushed before it was killed
            line = await child.stdout.readline()
            assert line, "the writer child exited early"
            acknowledged = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ids = [r[0] for r in conn.execute("SELECT request_id FROM requests ORDER BY request_id")]
    # Every acknowledged record is there; what is missing is a tail, never a gap.
    assert len(ids) >= acknowledged
    assert ids == [f"r{i:08d}" for i in range(len(ids))]
    half = conn.execute(
        """SELECT COUNT(*) FROM requests r
           WHERE r.attempts != (SELECT COUNT(*) FROM attempts a WHERE a.request_id = r.request_id)"""
    ).fetchone()[0]
    orphans = conn.execute(
        "SELECT COUNT(*) FROM attempts WHERE request_id NOT IN (SELECT request_id FROM requests)"
    ).fetchone()[0]
    assert (half, orphans) == (0, 0)
    n_attempts = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    assert n_attempts == sum(1 + i % 4 for i in range(len(ids)))
    conn.close()

    # The database recovers and takes new writes; the query command reads it.
    ledger = await SqliteLedger.open(db)
    _record(ledger, 99_999_999)
    await ledger.aclose()
    reader = open_readonly(db)
    _, total = aggregate(reader, "tenant")
    reader.close()
    assert total["n"] == len(ids) + 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from modelroute.cli import main; main()", "ledger", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_reports_and_refuses_bad_input(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = await SqliteLedger.open(db)
    for i in range(4):
        _record(ledger, i)
    await ledger.aclose()

    table = _cli("--db", str(db), "--by", "route", "--since", "3650d")
    assert table.returncode == 0, table.stderr
    assert [ln.split()[:5] for ln in table.stdout.splitlines() if ln.startswith("a")] == [
        ["a", "->", "a", "4", "0.0400"]
    ]
    bad = _cli("--db", str(db), "--since", "a while")
    assert bad.returncode == 2
    assert "--since" in bad.stderr and "not a positive duration" in bad.stderr
    assert bad.stdout == ""
    missing = _cli("--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2
    assert "no ledger database" in missing.stderr


async def test_a_duplicate_record_is_counted_as_rejected(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = await SqliteLedger.open(db, batch_size=10, flush_interval_s=3600)
    _record(ledger, 1, n_attempts=2)
    _record(ledger, 1, n_attempts=3)  # same request id again: skipped whole
    _record(ledger, 2)
    await ledger.aclose()
    stats = ledger.stats()
    assert (stats.written, stats.rejected, stats.failed) == (2, 1, 0)
    assert _counts(db) == (2, 3)
