"""End-to-end cascade run: GSM8K prompts through the engine, the dispatcher (real gRPC) and the
simulator, which replays both models' recorded answers; costs are read back from the ledger.

The run uses the default policy with the simulator's address, the ``batch`` tier (cascade on) at a
low cost weight so the strong model is the policy's choice, and requests narrowed to the pair
(Mixtral-8x7B-Instruct, GPT-4). The same prompts are then run with GPT-4 only (always-strong).
Quality is each request's final model's recorded correctness on that prompt.

Held out: the verifier used here is fitted (math family, same features) on the GSM8K rows that
are *not* in the run, and its threshold is chosen on those rows' cross-fitted scores, so no
prompt of the run informed either. ``python -m engine.eval.cascade_e2e --n 100`` prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from engine.answer_features import answer_features
from engine.eval.data import STRONG, WEAK, PairRow, load_pair

TIER = "batch"
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


class HeldOutVerifier:
    """A math-family verifier fitted on rows outside the run (sklearn, for measurement only)."""

    def __init__(self, rows: list[PairRow]) -> None:
        from sklearn.linear_model import LogisticRegression

        from engine.eval.cascade import cross_fit_confidence
        from engine.train.train_verifier import pair_from_rows, pick_threshold

        d = pair_from_rows(rows)
        self.threshold = pick_threshold(d, cross_fit_confidence(d.x, d.weak_ok))
        self._clf = LogisticRegression(max_iter=500).fit(d.x, d.weak_ok)

    def confidence(self, prompt: str, answer: str, task: str = "general") -> float:
        x = np.asarray([answer_features(prompt, answer)])
        return float(self._clf.predict_proba(x)[0, 1])


def _config(root_url: str, threshold: float | None) -> Any:
    from modelroute.config import DEFAULT_CONFIG_PATH, parse_config
    from modelroute.domain import TaskType

    raw = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8").replace("http://127.0.0.1:8090", root_url)
    cfg = parse_config(raw.encode(), source="<cascade-e2e>")
    tiers = dict(cfg.tiers)
    tiers[TIER] = dataclasses.replace(cfg.tiers[TIER], cost_weight=0.1, max_cost_usd=1.0)
    tasks = dict(cfg.tasks)
    if threshold is not None:
        math = cfg.tasks[TaskType.MATH]
        tasks[TaskType.MATH] = dataclasses.replace(math, escalate_below=threshold)
    return dataclasses.replace(cfg, tiers=tiers, tasks=tasks)


def _request(prompt: str, allowed: tuple[str, ...]) -> Any:
    from modelroute.v1 import common_pb2, dispatcher_pb2, engine_pb2

    req = engine_pb2.DecideRequest(
        request_id=uuid.uuid4().hex,
        tenant="e2e",
        tier=TIER,
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=prompt)],
        task_hint=common_pb2.TASK_TYPE_MATH,
    )
    req.overrides.allowed_models.extend(allowed)
    return dispatcher_pb2.ExecuteRequest(request=req)


async def _run_all(
    stub: Any, rows: list[PairRow], allowed: tuple[str, ...]
) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        events = [ev async for ev in stub.Execute(_request(r.prompt, allowed), timeout=60)]
        kinds = [ev.WhichOneof("event") for ev in events]
        text = "".join(ev.delta.text for ev in events if ev.WhichOneof("event") == "delta")
        final = events[-1]
        out.append(
            {
                "kinds": kinds,
                "text": text,
                "model": final.completed.model.name if kinds[-1] == "completed" else "",
                "escalated": [
                    ev.escalated for ev in events if ev.WhichOneof("event") == "escalated"
                ],
                "cascade": events[0].decision.HasField("cascade"),
                "request_id": final.request_id,
            }
        )
    return out


async def run_cascade(
    rows: list[PairRow],
    verifier: Any,
    threshold: float | None,
    ledger_path: Path,
    *,
    store: Any = None,
    strong_too: bool = True,
) -> dict[str, Any]:
    """Run ``rows`` on the cascade tier (then always-strong); returns per-request results.

    ``verifier`` None uses the shipped one; ``threshold`` None uses its calibrated threshold."""
    from grpc import aio

    from dispatcher.ledger.sqlite import SqliteLedger
    from dispatcher.runtime import build_dispatcher, in_process
    from dispatcher.simulator import start_simulator
    from dispatcher.simulator.replay import ReplayStore
    from engine.factory import build_engine
    from modelroute.server import start_server
    from modelroute.v1 import dispatcher_pb2_grpc

    store = store if store is not None else ReplayStore(DATA_DIR)
    os.environ.setdefault("MODELROUTE_SIMULATOR_KEY", "e2e-local")
    async with start_simulator(speed=1000, replay=store) as sim:
        cfg = _config(sim.root_url, threshold)
        ledger = await SqliteLedger.open(ledger_path)
        runtime = await build_dispatcher(cfg, decide=in_process(build_engine(cfg)), ledger=ledger)
        if verifier is not None:
            ex = runtime.executor
            ex.options = dataclasses.replace(ex.options, verifier=verifier)
        handle = await start_server([runtime.register], port=0)
        handle.on_close.append(runtime.aclose)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{handle.port}") as ch:
                stub = dispatcher_pb2_grpc.DispatcherStub(ch)
                cascade = await _run_all(stub, rows, (WEAK, STRONG))
                strong = await _run_all(stub, rows, (STRONG,)) if strong_too else []
            await ledger.flush()
        finally:
            await handle.stop(1.0)
    return {"cascade": cascade, "strong": strong}


def _ledger_costs(path: Path) -> dict[str, tuple[float, int, int]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT request_id, cost_usd, escalated, attempts FROM requests")
        return {r[0]: (float(r[1]), int(r[2]), int(r[3])) for r in rows}


def summarize(rows: list[PairRow], res: dict[str, Any], ledger_path: Path) -> dict[str, Any]:
    costs = _ledger_costs(ledger_path)
    ok = {WEAK: [r.weak for r in rows], STRONG: [r.strong for r in rows]}
    casc, strong = res["cascade"], res["strong"]

    def quality(runs: list[dict[str, Any]]) -> float:
        return float(np.mean([ok[x["model"]][i] if x["model"] else 0 for i, x in enumerate(runs)]))

    cost_c = sum(costs[x["request_id"]][0] for x in casc)
    cost_s = sum(costs[x["request_id"]][0] for x in strong)
    return {
        "n": len(rows),
        "planned_cascades": sum(x["cascade"] for x in casc),
        "escalations": sum(bool(x["escalated"]) for x in casc),
        "ledger_escalated_rows": sum(costs[x["request_id"]][1] for x in casc),
        "completed": sum(x["kinds"][-1] == "completed" for x in casc),
        "cost_cascade_usd": round(cost_c, 6),
        "cost_always_strong_usd": round(cost_s, 6),
        "cost_multiplier": round(cost_c / cost_s, 4) if cost_s else None,
        "quality_cascade": round(quality(casc), 4),
        "quality_always_strong": round(quality(strong), 4),
        "quality_weak_only": round(float(np.mean(ok[WEAK])), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--ledger", type=Path, default=None, help="keep the ledger at this path")
    args = ap.parse_args()
    rows = load_pair(DATA_DIR, "gsm8k")
    run_rows, fit_rows = rows[-args.n :], rows[: -args.n]
    verifier = HeldOutVerifier(fit_rows)
    with tempfile.TemporaryDirectory() as tmp:
        ledger_path = args.ledger or Path(tmp) / "ledger.db"
        res = asyncio.run(run_cascade(run_rows, verifier, verifier.threshold, ledger_path))
        out = summarize(run_rows, res, ledger_path)
    out["threshold"] = verifier.threshold
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
