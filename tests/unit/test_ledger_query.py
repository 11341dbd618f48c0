"""``modelroute ledger`` aggregates on a small known data set."""

from __future__ import annotations

import argparse
import sqlite3
import time

import pytest

from dispatcher.ledger import cmd
from dispatcher.ledger.sqlite import connect, write_batch
from modelroute.errors import InvalidInput
from tests.unit.test_ledger_rows import make_attempt, make_request

NOW = int(time.time() * 1000)
OLD = NOW - 3 * 86_400_000  # three days ago


def _dataset(conn: sqlite3.Connection) -> None:
    """acme: r1 served by a; r2 a failed (overloaded) then b served; r3 a timed out while a
    hedge on b was cancelled, the request failed. beta: r4 served by b, three days ago."""
    write_batch(
        conn,
        [
            (
                make_request("r1", started_at_ms=NOW, tier="fast"),
                (make_attempt("r1", started_at_ms=NOW),),
            ),
            (
                make_request(
                    "r2", final_model="b", attempts=2, escalated=True, cost_usd=0.03,
                    input_tokens=200, output_tokens=80, ttft_ms=300, decision_time_us=400,
                    started_at_ms=NOW,
                ),
                (
                    make_attempt("r2", 1, outcome="failed", error_class="overloaded",
                                 cost_usd=0.005, output_tokens=0, ttft_ms=None, started_at_ms=NOW),
                    make_attempt("r2", 2, hop=1, model="b", cost_usd=0.025, output_tokens=80,
                                 ttft_ms=280, started_at_ms=NOW),
                ),
            ),
            (
                make_request(
                    "r3", final_model="b", outcome="failed", error_class="timeout", attempts=2,
                    hedged=True, cost_usd=0.02, ttft_ms=None, decision_time_us=600,
                    started_at_ms=NOW,
                ),
                (
                    make_attempt("r3", 1, outcome="failed", error_class="timeout",
                                 cost_usd=0.012, ttft_ms=None, started_at_ms=NOW),
                    make_attempt("r3", 2, hop=1, model="b", outcome="cancelled", hedge=True,
                                 cost_usd=0.008, ttft_ms=None, started_at_ms=NOW),
                ),
            ),
            (
                make_request("r4", tenant="beta", chosen_model="b", final_model="b",
                             cost_usd=0.5, ttft_ms=50, decision_time_us=100, started_at_ms=OLD),
                (make_attempt("r4", model="b", cost_usd=0.5, ttft_ms=50, started_at_ms=OLD),),
            ),
        ],
    )  # fmt: skip


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = connect(":memory:")
    _dataset(c)
    return c


def _by_key(groups: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {g["key"]: g for g in groups}


def test_by_tenant(conn: sqlite3.Connection) -> None:
    groups, total = cmd.aggregate(conn, "tenant")
    assert [g["key"] for g in groups] == ["beta", "acme"]  # highest cost first
    acme = _by_key(groups)["acme"]
    assert acme["n"] == 3
    assert acme["cost_usd"] == pytest.approx(0.06)
    assert acme["input_tokens"] == 400
    assert acme["output_tokens"] == 180
    assert acme["error_rate"] == pytest.approx(1 / 3)
    assert acme["error_rates"] == {"timeout": pytest.approx(1 / 3)}
    assert acme["escalation_rate"] == pytest.approx(1 / 3)
    assert acme["hedge_rate"] == pytest.approx(1 / 3)
    assert (acme["ttft_ms_p50"], acme["ttft_ms_p95"]) == (100, 300)
    assert (acme["overhead_us_p50"], acme["overhead_us_p99"]) == (400, 600)
    assert total["n"] == 4
    assert total["cost_usd"] == pytest.approx(0.56)


def test_by_model_counts_attempts(conn: sqlite3.Connection) -> None:
    groups, total = cmd.aggregate(conn, "model")
    a, b = _by_key(groups)["a"], _by_key(groups)["b"]
    assert a["n"] == 3
    assert a["cost_usd"] == pytest.approx(0.027)
    assert a["error_rates"] == {"overloaded": pytest.approx(1 / 3), "timeout": pytest.approx(1 / 3)}
    assert a["escalation_rate"] == 0.0
    assert b["n"] == 3
    assert b["error_rate"] == 0.0  # a cancelled hedge is not an error
    assert b["hedge_rate"] == pytest.approx(1 / 3)
    assert b["escalation_rate"] == pytest.approx(2 / 3)
    assert (b["ttft_ms_p50"], b["ttft_ms_p95"]) == (50, 280)
    assert total["n"] == 6


def test_by_route_and_tier(conn: sqlite3.Connection) -> None:
    routes = _by_key(cmd.aggregate(conn, "route")[0])
    assert {k: g["n"] for k, g in routes.items()} == {"a -> a": 1, "a -> b": 2, "b -> b": 1}
    assert routes["a -> b"]["cost_usd"] == pytest.approx(0.05)
    tiers = _by_key(cmd.aggregate(conn, "tier")[0])
    assert {k: g["n"] for k, g in tiers.items()} == {"fast": 1, "standard": 3}


def test_since_filters_old_requests(conn: sqlite3.Connection) -> None:
    groups, total = cmd.aggregate(conn, "tenant", since_ms=NOW - 86_400_000)
    assert [g["key"] for g in groups] == ["acme"]
    assert total["n"] == 3
    _, by_model_total = cmd.aggregate(conn, "model", since_ms=NOW - 86_400_000)
    assert by_model_total["n"] == 5


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("1h30m", 5400),
     ("0.5h", 1800), (" 2H ", 7200)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert cmd.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "h", "-1h", "0m", "1h 30m", "2h30", "1.h"])
def test_bad_since_is_a_clear_error(text: str) -> None:
    with pytest.raises(InvalidInput, match="--since") as info:
        cmd.parse_duration(text)
    assert "examples" in info.value.message


def test_percentile_nearest_rank() -> None:
    assert cmd.percentile([], 0.5) is None
    assert cmd.percentile([7], 0.99) == 7
    assert cmd.percentile([4, 1, 3, 2], 0.5) == 2
    assert cmd.percentile(list(range(1, 101)), 0.95) == 95
    assert cmd.percentile(list(range(1, 101)), 0.99) == 99


def test_table_lists_groups_and_total(conn: sqlite3.Connection) -> None:
    groups, total = cmd.aggregate(conn, "tenant")
    lines = cmd.format_table("tenant", groups, total).splitlines()
    assert lines[0].split()[:3] == ["TENANT", "N", "COST_USD"]
    assert lines[2].split()[:2] == ["beta", "1"]
    assert lines[3].split()[:2] == ["acme", "3"]
    assert lines[-1].split()[:3] == ["total", "4", "0.5600"]
    assert lines[3].endswith("timeout=33.3%")


def test_unknown_grouping_is_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(InvalidInput, match="--by"):
        cmd.aggregate(conn, "color")


def test_run_bad_since_fails_before_opening(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(db="/nonexistent/ledger.db", by="tenant", since="yesterday")
    with pytest.raises(InvalidInput, match="--since"):
        cmd.run(args)
    assert capsys.readouterr().out == ""
