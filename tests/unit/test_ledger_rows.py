"""Ledger rows and the SQLite schema/batch writer, on in-memory databases."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence

import pytest

from dispatcher.ledger import DEFAULT_LEDGER_PATH, AttemptRow, LedgerStore, RequestRow
from dispatcher.ledger.sqlite import SCHEMA_VERSION, SqliteLedger, connect, migrate, write_batch

T0 = 1_700_000_000_000


def make_request(request_id: str, **overrides: object) -> RequestRow:
    row = RequestRow(
        request_id=request_id,
        decision_id=f"d-{request_id}",
        tenant="acme",
        tier="standard",
        policy_version="1",
        policy_hash="abc",
        task="chat",
        difficulty=0.5,
        decision_time_us=200,
        signals_json='{"task": "chat"}',
        chosen_model="a",
        final_model="a",
        outcome="completed",
        error_class="",
        attempts=1,
        input_tokens=100,
        output_tokens=50,
        cost_usd=0.01,
        ttft_ms=100,
        duration_ms=900,
        escalated=False,
        hedged=False,
        partial=False,
        started_at_ms=T0,
        finished_at_ms=T0 + 900,
    )
    return dataclasses.replace(row, **overrides)  # type: ignore[arg-type]


def make_attempt(request_id: str, attempt: int = 1, **overrides: object) -> AttemptRow:
    row = AttemptRow(
        request_id=request_id,
        attempt=attempt,
        hop=0,
        provider="sim",
        model="a",
        outcome="ok",
        error_class="",
        input_tokens=100,
        output_tokens=50,
        cost_usd=0.01,
        ttft_ms=100,
        duration_ms=900,
        hedge=False,
        started_at_ms=T0,
    )
    return dataclasses.replace(row, **overrides)  # type: ignore[arg-type]


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    r = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    a = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    return int(r), int(a)


def test_rows_are_frozen() -> None:
    row = make_request("r1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.cost_usd = 1.0  # type: ignore[misc]


def test_default_path_and_protocol() -> None:
    assert DEFAULT_LEDGER_PATH == "modelroute-ledger.db"
    assert issubclass(SqliteLedger, LedgerStore)


def test_migrate_creates_schema_once() -> None:
    conn = connect(":memory:")
    assert migrate(conn) == SCHEMA_VERSION  # already migrated by connect
    versions = conn.execute("SELECT version FROM schema_version").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"requests_tenant", "requests_route", "attempts_model"} <= indexes


def test_newer_schema_is_refused() -> None:
    conn = connect(":memory:")
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="newer"):
        migrate(conn)


def test_write_batch_round_trips_every_field() -> None:
    conn = connect(":memory:")
    req = make_request("r1", ttft_ms=None, escalated=True, attempts=2)
    atts = [
        make_attempt("r1", 1, outcome="failed", error_class="timeout", ttft_ms=None, hedge=True),
        make_attempt("r1", 2, hop=1, provider="p2", model="b", cost_usd=0.5, duration_ms=7),
    ]
    assert write_batch(conn, [(req, tuple(atts))]) == 1
    got = conn.execute("SELECT * FROM requests").fetchone()
    assert got == _stored(req)
    rows = conn.execute("SELECT * FROM attempts ORDER BY attempt").fetchall()
    assert rows == [_stored(a) for a in atts]
    assert rows[0][:7] == ("r1", 1, 0, "sim", "a", "failed", "timeout")


def _stored(row: RequestRow | AttemptRow) -> tuple[object, ...]:
    """A row's fields as SQLite returns them (booleans as integers)."""
    return tuple(int(v) if isinstance(v, bool) else v for v in dataclasses.astuple(row))


def _batch(ids: Sequence[str]) -> list[tuple[RequestRow, tuple[AttemptRow, ...]]]:
    return [(make_request(i), (make_attempt(i),)) for i in ids]


def test_a_refused_record_is_skipped_whole() -> None:
    conn = connect(":memory:")
    batch = _batch(["r1", "r2"])
    batch.append((make_request("r3", outcome="bogus"), (make_attempt("r3"),)))
    batch.append((make_request("r4"), (make_attempt("r4"), make_attempt("r4"))))  # same number
    batch += _batch(["r5"])
    assert write_batch(conn, batch) == 3
    ids = [r[0] for r in conn.execute("SELECT request_id FROM requests ORDER BY request_id")]
    assert ids == ["r1", "r2", "r5"]
    att = [r[0] for r in conn.execute("SELECT request_id FROM attempts ORDER BY request_id")]
    assert att == ["r1", "r2", "r5"]


def test_a_failing_batch_is_rolled_back_whole() -> None:
    conn = connect(":memory:")
    batch = _batch(["r1", "r2"])
    batch.append((make_request("r3", tenant=object()), ()))
    with pytest.raises(sqlite3.ProgrammingError):
        write_batch(conn, batch)
    assert counts(conn) == (0, 0)
    assert write_batch(conn, _batch(["r4"])) == 1
    assert counts(conn) == (1, 1)


def test_duplicate_request_is_skipped_with_its_attempts() -> None:
    conn = connect(":memory:")
    write_batch(conn, _batch(["r1"]))
    dup = make_request("r1", tenant="other")
    assert write_batch(conn, [(dup, (make_attempt("r1", 2),))]) == 0
    assert counts(conn) == (1, 1)
    assert conn.execute("SELECT tenant FROM requests").fetchone() == ("acme",)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SqliteLedger(":memory:", batch_size=0)
    with pytest.raises(ValueError, match="synchronous"):
        SqliteLedger(":memory:", synchronous="sometimes")


def test_version_1_ledger_migrates_to_accept_escalated_attempts() -> None:
    import sqlite3

    from dispatcher.ledger.sqlite import MIGRATIONS

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO schema_version (version) VALUES (1)")
    conn.execute(
        "INSERT INTO requests VALUES "
        "('r1','d','t','batch','v','h','math',0.5,10,'{}','a','b','completed','',2,1,1,0.1,"
        "NULL,5,1,0,0,1,2)"
    )
    conn.execute("INSERT INTO attempts VALUES ('r1',1,0,'p','a','ok','',1,1,0.1,NULL,5,0,1)")
    assert migrate(conn) == 1
    conn.execute("INSERT INTO attempts VALUES ('r1',2,0,'p','a','escalated','',1,1,0.1,NULL,5,0,1)")
    outcomes = [r[0] for r in conn.execute("SELECT outcome FROM attempts ORDER BY attempt")]
    assert outcomes == ["ok", "escalated"]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"attempts_model", "attempts_started"} <= indexes
