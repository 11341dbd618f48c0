"""``modelroute ledger``: what the traffic cost and how it went, per tenant, model, route or tier.

Grouping by tenant, tier or route (chosen model -> final model) counts requests; grouping by
model counts attempts, so a failed attempt is charged to the model that failed it. Percentiles
are nearest-rank over the rows in the window.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatcher.ledger import DEFAULT_LEDGER_PATH
from modelroute.errors import InvalidInput

GROUPINGS = ("tenant", "model", "route", "tier")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``15m``, ``2h``, ``7d``, ``1w`` or ``1h30m``."""
    s = text.strip().lower()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s) or total <= 0:
        raise InvalidInput(
            "--since",
            f"{text!r} is not a positive duration (examples: 90s, 15m, 2h, 7d, 1w, 1h30m)",
        )
    return total


@dataclass
class Group:
    """Aggregates of one group; ``n`` counts requests (or attempts when grouped by model)."""

    key: str
    n: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    escalated: int = 0
    hedged: int = 0
    ttft_ms: list[int] = field(default_factory=list)
    overhead_us: list[int] = field(default_factory=list)

    def add(self, row: Sequence[Any]) -> None:
        """Add one row: (cost, in, out, failed, error_class, escalated, hedged, ttft, overhead)."""
        cost, tin, tout, failed, error_class, escalated, hedged, ttft, overhead = row
        self.n += 1
        self.cost_usd += float(cost)
        self.input_tokens += int(tin)
        self.output_tokens += int(tout)
        if failed:
            self.errors[str(error_class) or "unknown"] += 1
        self.escalated += bool(escalated)
        self.hedged += bool(hedged)
        if ttft is not None:
            self.ttft_ms.append(int(ttft))
        self.overhead_us.append(int(overhead))

    def summary(self) -> dict[str, Any]:
        n = max(self.n, 1)
        failed = sum(self.errors.values())
        return {
            "key": self.key,
            "n": self.n,
            "cost_usd": round(self.cost_usd, 6),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "error_rate": failed / n,
            "error_rates": {k: v / n for k, v in sorted(self.errors.items())},
            "escalation_rate": self.escalated / n,
            "hedge_rate": self.hedged / n,
            "ttft_ms_p50": percentile(self.ttft_ms, 0.50),
            "ttft_ms_p95": percentile(self.ttft_ms, 0.95),
            "overhead_us_p50": percentile(self.overhead_us, 0.50),
            "overhead_us_p99": percentile(self.overhead_us, 0.99),
        }


def percentile(values: Sequence[int], q: float) -> int | None:
    """Nearest-rank percentile (a value that occurred); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


_REQUEST_SELECT = """
    SELECT {key}, cost_usd, input_tokens, output_tokens, outcome = 'failed', error_class,
           escalated, hedged, ttft_ms, decision_time_us
    FROM requests WHERE started_at_ms >= ? ORDER BY started_at_ms
"""
_ATTEMPT_SELECT = """
    SELECT a.model, a.cost_usd, a.input_tokens, a.output_tokens, a.outcome = 'failed',
           a.error_class, a.hop > 0, a.hedge, a.ttft_ms, r.decision_time_us
    FROM attempts a JOIN requests r ON r.request_id = a.request_id
    WHERE r.started_at_ms >= ? ORDER BY a.started_at_ms
"""
_KEYS = {"tenant": "tenant", "tier": "tier", "route": "chosen_model || ' -> ' || final_model"}


def aggregate(
    conn: sqlite3.Connection, by: str, since_ms: int = 0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-group summaries (sorted by cost, highest first) and the total over all groups."""
    if by not in GROUPINGS:
        raise InvalidInput("--by", f"must be one of {', '.join(GROUPINGS)}, not {by!r}")
    sql = _ATTEMPT_SELECT if by == "model" else _REQUEST_SELECT.format(key=_KEYS[by])
    groups: dict[str, Group] = {}
    total = Group("total")
    for row in conn.execute(sql, (since_ms,)):
        key = str(row[0])
        groups.setdefault(key, Group(key)).add(row[1:])
        total.add(row[1:])
    ordered = sorted(groups.values(), key=lambda g: (-g.cost_usd, g.key))
    return [g.summary() for g in ordered], total.summary()


def open_readonly(path: str | Path) -> sqlite3.Connection:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput("--db", f"no ledger database at {p}")
    conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        conn.execute("SELECT 1 FROM requests LIMIT 1").fetchall()
        conn.execute("SELECT 1 FROM attempts LIMIT 1").fetchall()
    except sqlite3.DatabaseError as e:
        conn.close()
        raise InvalidInput("--db", f"{p} is not a modelroute ledger ({e})") from e
    return conn


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


_COLUMNS = (
    ("N", "n", "d"),
    ("COST_USD", "cost_usd", ".4f"),
    ("IN_TOK", "input_tokens", "d"),
    ("OUT_TOK", "output_tokens", "d"),
    ("ERR%", "error_rate", ".1%"),
    ("ESC%", "escalation_rate", ".1%"),
    ("HEDGE%", "hedge_rate", ".1%"),
    ("TTFT_P50", "ttft_ms_p50", "d"),
    ("TTFT_P95", "ttft_ms_p95", "d"),
    ("OVH_P50_US", "overhead_us_p50", "d"),
    ("OVH_P99_US", "overhead_us_p99", "d"),
)


def format_table(by: str, groups: Iterable[dict[str, Any]], total: dict[str, Any]) -> str:
    head = [by.upper(), *(c[0] for c in _COLUMNS), "ERRORS"]
    rows = [head]
    for g in [*groups, total]:
        errors = " ".join(f"{k}={v:.1%}" for k, v in g["error_rates"].items()) or "-"
        rows.append([g["key"], *(_fmt(g[k], spec) for _, k, spec in _COLUMNS), errors])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(r[1:-1], widths[1:-1], strict=True)]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=DEFAULT_LEDGER_PATH, help=f"ledger database (default {DEFAULT_LEDGER_PATH})"
    )
    parser.add_argument("--by", choices=GROUPINGS, default="tenant", help="grouping (tenant)")
    parser.add_argument("--since", help="only requests started within this duration, e.g. 24h")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    since_s = parse_duration(args.since) if args.since is not None else None
    since_ms = 0 if since_s is None else int((time.time() - since_s) * 1000)
    conn = open_readonly(args.db)
    try:
        groups, total = aggregate(conn, args.by, since_ms)
    finally:
        conn.close()
    if args.json:
        unit = "attempts" if args.by == "model" else "requests"
        doc = {"db": str(args.db), "by": args.by, "since_s": since_s, "unit": unit}
        print(json.dumps({**doc, "groups": groups, "total": total}, indent=2))
    elif total["n"] == 0:
        print(f"no requests in {args.db}" + (f" within {args.since}" if args.since else ""))
    else:
        print(format_table(args.by, groups, total))
    return 0
