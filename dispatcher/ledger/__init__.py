"""The cost ledger: one row per request and one per attempt, SQLite (WAL) by default."""

from __future__ import annotations

from dispatcher.ledger.rows import AttemptRow, RequestRow
from dispatcher.ledger.sqlite import LedgerStats, SqliteLedger
from dispatcher.ledger.store import LedgerStore

# Where the dispatcher writes and ``modelroute ledger`` reads by default (the working directory).
DEFAULT_LEDGER_PATH = "modelroute-ledger.db"

__all__ = [
    "DEFAULT_LEDGER_PATH",
    "AttemptRow",
    "LedgerStats",
    "LedgerStore",
    "RequestRow",
    "SqliteLedger",
]
