"""Figures of ``make bench-execute``: samples, phases, the table and the ratios."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from loadtest.stats import pct

Call = Callable[[], Coroutine[Any, Any, "Sample"]]


@dataclass
class Sample:
    ttft_s: float | None = None
    total_s: float = 0.0
    chunks: int = 0
    error: str = ""


# A phase's load: (concurrency, steady). Phases with the same key are compared.
Key = tuple[int, bool]


def _lbl(key: Key, steady: str = " steady") -> str:
    return f"{key[0]}{steady if key[1] else ''}"


@dataclass(frozen=True)
class Load:
    """How one phase is driven: ``n`` calls, at most ``concurrency`` at once, the i-th starting
    ``ramp_s * i / n`` seconds in. ``steady``: the ramp is set so that about ``concurrency``
    streams are open throughout (arrivals at concurrency / stream duration), as opposed to a
    burst where they all start at once."""

    concurrency: int
    n: int
    ramp_s: float = 0.0
    steady: bool = False

    def spec(self) -> str:
        """``concurrency:n:ramp_s[:steady]``, as the child benchmarks and goload take it."""
        return f"{self.concurrency}:{self.n}:{self.ramp_s}" + (":steady" if self.steady else "")

    @classmethod
    def parse(cls, spec: str) -> Load:
        c, n, ramp, *rest = spec.split(":")
        return cls(int(c), int(n), float(ramp), rest == ["steady"])


@dataclass
class Phase:
    path: str
    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float | None = None  # CPU of the routing process during the phase
    steady: bool = False

    @property
    def key(self) -> Key:
        return (self.concurrency, self.steady)

    @property
    def label(self) -> str:
        return _lbl(self.key, "/st")

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s.error)

    def ttft_ms(self, q: float) -> float:
        return 1000 * pct([s.ttft_s for s in self.samples if s.ttft_s is not None], q)

    def total_ms(self, q: float) -> float:
        return 1000 * pct([s.total_s for s in self.samples if not s.error], q)

    @property
    def chunks(self) -> int:
        return sum(s.chunks for s in self.samples)

    def relayed(self, direct: Phase | None) -> float:
        """Provider chunks relayed: the direct path's chunks per request times the requests
        served (text deltas may merge several chunks, so deltas undercount the work)."""
        if direct is None or not direct.samples or self is direct:
            return float(self.chunks)
        return direct.chunks / len(direct.samples) * (len(self.samples) - self.errors)

    def chunks_per_cpu_s(self, direct: Phase | None) -> float | None:
        return self.relayed(direct) / self.cpu_s if self.cpu_s else None


def phases_from_json(path: str, text: str) -> list[Phase]:
    """Phases printed by a child benchmark, one JSON object a line (bench_inproc,
    bench_litellm, goload): concurrency, steady, wall_s, cpu_s and the samples."""
    out = []
    for line in text.splitlines():
        doc = json.loads(line)
        phase = Phase(path, doc["concurrency"], wall_s=doc["wall_s"], cpu_s=doc["cpu_s"])
        phase.steady = bool(doc.get("steady", False))
        phase.samples = [Sample(**s) for s in doc["samples"]]
        out.append(phase)
        print(
            f"  {path:<12} c={phase.label:<7} n={len(phase.samples):<5} {phase.wall_s:6.1f}s",
            file=sys.stderr,
        )
    return out


def _f(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None or v != v else format(v, spec)


def report(phases: list[Phase], notes: list[str]) -> None:
    direct = {p.key: p for p in phases if p.path == "direct"}
    head = (
        f"{'path':<10} {'conc':>7} {'n':>5} {'err':>4} {'ttft_p50':>9} {'ttft_p99':>9} "
        f"{'+ttft_p50':>9} {'+ttft_p99':>9} {'tot_p50':>8} {'+tot_p50':>8} {'+tot_p99':>8} "
        f"{'deltas':>7} {'chunks/cpu_s':>12}"
    )
    print(
        "\nAll times in ms; '+' = added over direct at the same concurrency (difference of percentiles);"
        " conc N/st = N streams open throughout (steady arrivals), N alone = N started at once."
        "\ndeltas = text events received; chunks/cpu_s = provider chunks relayed per CPU-second of"
        " the routing process."
    )
    print(head)
    print("-" * len(head))
    for p in phases:
        d = direct.get(p.key)
        add = (lambda a, b: a - b) if d is not None and p.path != "direct" else (lambda a, b: None)
        cps = p.chunks_per_cpu_s(d)
        print(
            f"{p.path:<10} {p.label:>7} {len(p.samples):>5} {p.errors:>4} "
            f"{_f(p.ttft_ms(50)):>9} {_f(p.ttft_ms(99)):>9} "
            f"{_f(add(p.ttft_ms(50), d.ttft_ms(50)) if d else None):>9} "
            f"{_f(add(p.ttft_ms(99), d.ttft_ms(99)) if d else None):>9} "
            f"{_f(p.total_ms(50)):>8} "
            f"{_f(add(p.total_ms(50), d.total_ms(50)) if d else None):>8} "
            f"{_f(add(p.total_ms(99), d.total_ms(99)) if d else None):>8} "
            f"{p.chunks:>7} {_f(cps, '.0f'):>12}"
        )
    _ratios(phases, direct)
    for p in phases:
        if p.errors:
            kinds = Counter(s.error for s in p.samples if s.error).most_common(4)
            print(f"  errors {p.path} c={p.label}: " + ", ".join(f"{k} x{v}" for k, v in kinds))
    for note in notes:
        print(note)


def _ratios(phases: list[Phase], direct: dict[Key, Phase]) -> None:
    by = {(p.path, p.key): p for p in phases}
    keys = sorted({k for _, k in by})
    print("\nRatios (to direct at the same concurrency)")
    for (path, k), p in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        d = direct.get(k)
        if path == "direct" or d is None or p.ttft_ms(50) != p.ttft_ms(50):
            continue
        print(
            f"  c={_lbl(k):<10} {path:<13} TTFT p50 x{p.ttft_ms(50) / d.ttft_ms(50):.3f}, "
            f"p99 x{p.ttft_ms(99) / d.ttft_ms(99):.3f}; total p50 x{p.total_ms(50) / d.total_ms(50):.3f}"
        )
    print("Libraries, same process shape (dispatch-lib = engine + executor + ledger, no gRPC)")
    for k in keys:
        ours, peer, d = by.get(("dispatch-lib", k)), by.get(("litellm", k)), direct.get(k)
        if ours is None or peer is None or d is None or not ours.cpu_s or not peer.cpu_s:
            continue
        ours_add = ours.ttft_ms(50) - d.ttft_ms(50)
        peer_add = peer.ttft_ms(50) - d.ttft_ms(50)
        print(
            f"  c={_lbl(k):<10} added TTFT p50 dispatch-lib {ours_add:.2f} ms vs litellm "
            f"{peer_add:.2f} ms; chunks per CPU-s dispatch-lib/litellm "
            f"x{(ours.chunks / ours.cpu_s) / (peer.chunks / peer.cpu_s):.2f}"
        )
    _floor(by, direct, keys)
    for path in ("dispatcher", "dispatch-lib"):
        for k in ((100, False), (100, True)):
            p100, d100 = by.get((path, k)), direct.get(k)
            if p100 is None or d100 is None:
                continue
            a50 = p100.ttft_ms(50) - d100.ttft_ms(50)
            a99 = p100.ttft_ms(99) - d100.ttft_ms(99)
            verdict = "met" if a50 <= 2 and a99 <= 5 else "NOT met"
            how = "open throughout" if k[1] else "started at once"
            print(
                f"  {path}: target added TTFT at c=100 {how} (p50 <= 2 ms, p99 <= 5 ms): "
                f"{verdict} ({a50:.2f} / {a99:.2f} ms)"
            )
        p1000 = by.get((path, (1000, False)))
        if p1000 is not None:
            print(
                f"  {path}: 1,000 concurrent streams: {p1000.errors} errors of {len(p1000.samples)}"
            )


def _floor(by: dict[tuple[str, Key], Phase], direct: dict[Key, Phase], keys: list[Key]) -> None:
    """The bare relays' added time is the floor of this machine and of gRPC in Python; what the
    dispatcher adds on top of it is ours."""
    for k in keys:
        ours, d = by.get(("dispatcher", k)), direct.get(k)
        floors = [(path, by[(path, k)]) for path in ("relay-raw", "relay-httpx") if (path, k) in by]
        if ours is None or d is None or not floors:
            continue
        print(f"Floor (bare relays, gRPC + HTTP only) vs dispatcher, c={_lbl(k)}")
        for q in (50, 99):
            mine = ours.ttft_ms(q) - d.ttft_ms(q)
            parts = []
            for path, f in floors:
                add = f.ttft_ms(q) - d.ttft_ms(q)
                ratio = f" (x{mine / add:.1f})" if add > 0 else ""
                parts.append(f"{path} +{add:.2f}, dispatcher - {path} +{mine - add:.2f}{ratio}")
            print(f"  added TTFT p{q}: dispatcher +{mine:.2f} ms; " + "; ".join(parts))
        cps = ours.chunks_per_cpu_s(d)
        for path, f in floors:
            fc = f.chunks_per_cpu_s(d)
            if cps and fc:
                print(
                    f"  chunks per CPU-s: dispatcher {cps:.0f}, {path} {fc:.0f} (x{fc / cps:.2f})"
                )
