"""``SqliteLedger``: the embedded ledger store (stdlib sqlite3, WAL mode).

``record`` only appends to an in-memory queue; one writer thread drains it in batches (up to
``batch_size`` records, or whatever arrived within ``flush_interval_s``) and writes each batch in
ONE transaction, so a request row and its attempt rows are committed together or not at all.

Durability: committed batches survive a process crash (WAL; ``synchronous=NORMAL`` may lose the
last commits on power loss, ``synchronous="FULL"`` does not). What a crash can lose is what was
still queued: records not yet committed, bounded by one flush interval of traffic.

Back-pressure: the queue is bounded (``max_queue`` records). When it is full, ``record`` drops
the record and counts it (``stats().dropped``, logged at warning level at most once per
``_DROP_LOG_INTERVAL_S``): blocking would stall every stream on the event loop, and the ledger
must never slow serving down. A full queue means the disk cannot keep up; the counter says so.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import operator
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dispatcher.ledger.rows import AttemptRow, RequestRow

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_DROP_LOG_INTERVAL_S = 10.0

REQUEST_COLUMNS = tuple(f.name for f in dataclasses.fields(RequestRow))
ATTEMPT_COLUMNS = tuple(f.name for f in dataclasses.fields(AttemptRow))

# Each entry migrates the schema from version i to i + 1; applied in order on open.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        decision_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        tier TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        policy_hash TEXT NOT NULL,
        task TEXT NOT NULL,
        difficulty REAL NOT NULL,
        decision_time_us INTEGER NOT NULL,
        signals_json TEXT NOT NULL,
        chosen_model TEXT NOT NULL,
        final_model TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('completed', 'failed')),
        error_class TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        ttft_ms INTEGER,
        duration_ms INTEGER NOT NULL,
        escalated INTEGER NOT NULL,
        hedged INTEGER NOT NULL,
        partial INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        finished_at_ms INTEGER NOT NULL
    );
    CREATE TABLE attempts (
        request_id TEXT NOT NULL REFERENCES requests (request_id),
        attempt INTEGER NOT NULL,
        hop INTEGER NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'cancelled')),
        error_class TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        ttft_ms INTEGER,
        duration_ms INTEGER NOT NULL,
        hedge INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        PRIMARY KEY (request_id, attempt)
    );
    CREATE INDEX requests_started ON requests (started_at_ms);
    CREATE INDEX requests_tenant ON requests (tenant, started_at_ms);
    CREATE INDEX requests_tier ON requests (tier, started_at_ms);
    CREATE INDEX requests_route ON requests (chosen_model, final_model, started_at_ms);
    CREATE INDEX attempts_model ON attempts (model, started_at_ms);
    CREATE INDEX attempts_started ON attempts (started_at_ms);
    """,
    # 2: an attempt's outcome may be 'escalated' (a cascade's cheap answer the verifier rejected).
    """
    CREATE TABLE attempts_v2 (
        request_id TEXT NOT NULL REFERENCES requests (request_id),
        attempt INTEGER NOT NULL,
        hop INTEGER NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'cancelled', 'escalated')),
        error_class TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        ttft_ms INTEGER,
        duration_ms INTEGER NOT NULL,
        hedge INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        PRIMARY KEY (request_id, attempt)
    );
    INSERT INTO attempts_v2 SELECT * FROM attempts;
    DROP TABLE attempts;
    ALTER TABLE attempts_v2 RENAME TO attempts;
    CREATE INDEX attempts_model ON attempts (model, started_at_ms);
    CREATE INDEX attempts_started ON attempts (started_at_ms);
    """,
)


def connect(path: str | Path, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open (creating or migrating) a ledger database in WAL mode, in autocommit mode so that
    transactions are explicit."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={_checked_sync(synchronous)}")
    conn.execute("PRAGMA busy_timeout=5000")
    migrate(conn)
    return conn


def _checked_sync(value: str) -> str:
    upper = value.upper()
    if upper not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {value!r}")
    return upper


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found before."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        found = int(row[0]) if row and row[0] is not None else 0
        if found > SCHEMA_VERSION:
            raise RuntimeError(
                f"ledger schema version {found} is newer than this modelroute ({SCHEMA_VERSION})"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def _statements(script: str) -> Iterable[str]:
    return (s.strip() for s in script.split(";") if s.strip())


_INSERT_REQUEST = (
    f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(REQUEST_COLUMNS))})"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)
# A row's values in column order. The fields are plain values (str, int, float, bool, None), so
# this is what dataclasses.astuple gives, without its deep copies (~15 us a row, on the writer
# thread, holding the GIL the event loop needs).
_request_values = operator.attrgetter(*REQUEST_COLUMNS)
_attempt_values = operator.attrgetter(*ATTEMPT_COLUMNS)

Record = tuple[RequestRow, tuple[AttemptRow, ...]]


def write_batch(conn: sqlite3.Connection, batch: Sequence[Record]) -> int:
    """Write records in one transaction; returns how many were written. A record the schema
    refuses (a request id already present, an unknown outcome, two attempts with one number) is
    skipped whole, its request row with its attempt rows, and logged: never a half record."""
    written = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for request, attempts in batch:
            conn.execute("SAVEPOINT record")
            try:
                conn.execute(_INSERT_REQUEST, _request_values(request))
                conn.executemany(_INSERT_ATTEMPT, map(_attempt_values, attempts))
            except sqlite3.IntegrityError as e:
                conn.execute("ROLLBACK TO record")
                log.warning("ledger: record refused by the schema, skipped: %s", e)
            else:
                written += 1
            conn.execute("RELEASE record")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return written


@dataclass(frozen=True, slots=True)
class LedgerStats:
    queued: int  # records waiting for the writer
    written: int  # records (request row + attempt rows) committed
    batches: int  # transactions committed
    dropped: int  # records refused because the queue was full or the ledger closed
    failed: int  # records lost to a write error (each failed batch is rolled back whole)
    rejected: int  # records the schema refused (e.g. a duplicate request id), skipped whole


class SqliteLedger:
    """A ``LedgerStore`` writing to a SQLite file from one background thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.2,
        max_queue: int = 50_000,
        synchronous: str = "NORMAL",
    ) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval_s <= 0:
            raise ValueError("batch_size and max_queue must be >= 1, flush_interval_s > 0")
        self.path = Path(path)
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._max_queue = max_queue
        self._synchronous = _checked_sync(synchronous)
        self._cond = threading.Condition()
        self._queue: collections.deque[Record] = collections.deque()
        self._flush_waiters: list[tuple[int, concurrent.futures.Future[None]]] = []
        self._enqueued = 0  # records ever accepted
        self._done = 0  # records handled by the writer (written, duplicates or failed)
        self._written = self._batches = self._dropped = self._failed = self._rejected = 0
        self._closing = False
        self._last_drop_log = 0.0
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.2,
        max_queue: int = 50_000,
        synchronous: str = "NORMAL",
    ) -> SqliteLedger:
        """Create the ledger and wait (off the loop) until its schema is ready; raises if the
        database cannot be opened."""
        ledger = cls(
            path,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_queue=max_queue,
            synchronous=synchronous,
        )
        try:
            await asyncio.wrap_future(ledger._ready)
        except BaseException:
            await ledger.aclose()
            raise
        return ledger

    # -- LedgerStore -------------------------------------------------------------------------
    def record(self, request: RequestRow, attempts: Sequence[AttemptRow]) -> None:
        with self._cond:
            if self._closing or len(self._queue) >= self._max_queue:
                self._dropped += 1
                self._log_drop_locked()
                return
            self._queue.append((request, tuple(attempts)))
            self._enqueued += 1
            if len(self._queue) == 1 or len(self._queue) >= self._batch_size:
                self._cond.notify()  # start the interval clock, or cut a full batch

    async def flush(self) -> None:
        await asyncio.wrap_future(self._flush_future())

    async def aclose(self) -> None:
        """Write everything queued, then stop the writer. A ledger whose database could not be
        opened closes quietly (the error was logged and its records counted as dropped)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        await asyncio.to_thread(self._thread.join)

    def stats(self) -> LedgerStats:
        with self._cond:
            return LedgerStats(
                queued=len(self._queue),
                written=self._written,
                batches=self._batches,
                dropped=self._dropped,
                failed=self._failed,
                rejected=self._rejected,
            )

    # -- internals ---------------------------------------------------------------------------
    def _flush_future(self) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cond:
            if not self._thread.is_alive() or self._done >= self._enqueued:
                fut.set_result(None)
            else:
                self._flush_waiters.append((self._enqueued, fut))
                self._cond.notify()
        return fut

    def _log_drop_locked(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning("ledger: queue full or closed, %d records dropped so far", self._dropped)

    def _run(self) -> None:
        try:
            conn = connect(self.path, synchronous=self._synchronous)
        except (sqlite3.Error, OSError, RuntimeError) as e:  # reported by open()/aclose()
            log.error("ledger: cannot open %s: %s", self.path, e)
            self._ready.set_exception(e)
            with self._cond:
                self._closing = True
                self._dropped += len(self._queue)
                self._queue.clear()
                self._release_waiters_locked(all_waiters=True)
            return
        self._ready.set_result(None)
        try:
            while True:
                batch, stop = self._next_batch()
                if batch:
                    self._write(conn, batch)
                if stop:
                    break
        finally:
            conn.close()
            with self._cond:
                self._release_waiters_locked(all_waiters=True)

    def _next_batch(self) -> tuple[list[Record], bool]:
        """Wait for work, then take up to ``batch_size`` records. A batch is cut when full, when
        the interval since its first record passed, on a flush request, or on close."""
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            deadline = time.monotonic() + self._interval
            while (
                len(self._queue) < self._batch_size
                and not self._closing
                and not self._flush_waiters
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            n = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            stop = self._closing and not self._queue
            return batch, stop

    def _write(self, conn: sqlite3.Connection, batch: list[Record]) -> None:
        try:
            written = write_batch(conn, batch)
        except sqlite3.Error as e:
            log.error("ledger: batch of %d records rolled back: %s", len(batch), e)
            with self._cond:
                self._failed += len(batch)
                self._done += len(batch)
                self._release_waiters_locked()
            return
        with self._cond:
            self._written += written
            self._rejected += len(batch) - written
            self._batches += 1
            self._done += len(batch)
            self._release_waiters_locked()

    def _release_waiters_locked(self, *, all_waiters: bool = False) -> None:
        keep: list[tuple[int, concurrent.futures.Future[None]]] = []
        for target, fut in self._flush_waiters:
            if all_waiters or self._done >= target:
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._flush_waiters = keep
