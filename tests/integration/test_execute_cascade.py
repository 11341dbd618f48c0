"""Cascade end to end: engine plan, dispatcher over real gRPC, simulator replaying both models'
recorded GSM8K answers, the shipped verifier, and the SQLite ledger."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dispatcher.simulator.replay import ReplayStore
from engine.eval.cascade_e2e import run_cascade
from engine.eval.data import STRONG, WEAK, load_pair
from engine.verifier import Verifier

N = 8


async def test_cascade_escalates_exactly_the_unconfident_answers(
    store: ReplayStore, shared_data: Path, tmp_path: Path
) -> None:
    rows = load_pair(shared_data, "gsm8k")[:N]
    verifier = Verifier.load()
    threshold = verifier.threshold("math")
    expected = [
        verifier.confidence(r.prompt, store.answer(WEAK, r.prompt), "math") < threshold
        for r in rows
    ]
    ledger_path = tmp_path / "ledger.db"
    res = await run_cascade(rows, None, None, ledger_path, store=store, strong_too=False)
    runs = res["cascade"]
    planned = [x["cascade"] for x in runs]
    assert sum(planned) >= N // 2  # math on the cascade tier: the policy plans most as cascades
    assert [bool(x["escalated"]) for x in runs] == [
        e and p for e, p in zip(expected, planned, strict=True)
    ]
    got = [bool(x["escalated"]) for x, p in zip(runs, planned, strict=True) if p]
    assert any(got) and not all(got)  # the sample holds both outcomes
    with sqlite3.connect(ledger_path) as db:
        for r, x in zip(rows, runs, strict=True):
            kinds = x["kinds"]
            assert sum(k in ("completed", "failed") for k in kinds) == 1
            assert kinds[-1] == "completed"
            weak_answer = store.answer(WEAK, r.prompt)
            esc_row = db.execute(
                "SELECT escalated, attempts FROM requests WHERE request_id = ?",
                (x["request_id"],),
            ).fetchone()
            outcomes = [
                o
                for (o,) in db.execute(
                    "SELECT outcome FROM attempts WHERE request_id = ? ORDER BY attempt",
                    (x["request_id"],),
                )
            ]
            if x["escalated"]:
                (e,) = x["escalated"]
                assert e.model.name == WEAK and e.confidence < e.threshold
                assert e.threshold == pytest.approx(threshold, abs=1e-6)
                assert kinds.index("escalated") < len(kinds) - 1
                assert x["model"] == STRONG
                assert weak_answer.strip()[:40] not in x["text"]
                assert "delta" not in kinds[: kinds.index("escalated")]
                assert esc_row == (1, 2) and outcomes == ["escalated", "ok"]
            elif x["cascade"]:
                assert x["model"] == WEAK
                assert x["text"].strip() == weak_answer.strip()
                assert kinds.count("delta") == 1
                assert esc_row == (0, 1) and outcomes == ["ok"]
            else:
                assert "escalated" not in kinds and outcomes[-1] == "ok"
