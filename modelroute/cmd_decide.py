"""``modelroute decide "text"``: the routing plan for a prompt, as JSON (in-process engine)."""

from __future__ import annotations

import argparse
import json
import sys

from modelroute.config import load_config
from modelroute.domain import DecideInput, Message, Overrides, Role, TaskType


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help="the prompt ('-' reads it from stdin)")
    p.add_argument("--tier", default="")
    p.add_argument("--tenant", default="")
    p.add_argument("--system", help="a system message before the prompt")
    p.add_argument("--task", choices=[t.label for t in TaskType], help="task hint")
    p.add_argument("--max-output-tokens", type=int)
    p.add_argument("--max-cost-usd", type=float)
    p.add_argument("--latency-sla-ms", type=int)
    p.add_argument("--config", help="policy file (default: embedded)")


def run(args: argparse.Namespace) -> int:
    from engine.factory import build_engine
    from engine.service import describe

    text = sys.stdin.read() if args.text == "-" else args.text
    messages = [Message(Role.SYSTEM, args.system)] if args.system else []
    messages.append(Message(Role.USER, text))
    inp = DecideInput(
        messages=tuple(messages),
        tier=args.tier,
        tenant=args.tenant,
        task_hint=TaskType.from_label(args.task) if args.task else None,
        max_output_tokens=args.max_output_tokens,
        overrides=Overrides(latency_sla_ms=args.latency_sla_ms, max_cost_usd=args.max_cost_usd),
    )
    engine = build_engine(load_config(args.config))
    decision = engine.decide(inp)
    if engine.wants_slow(decision):  # the tier asks for the slow-path router
        decision = engine.decide_slow(inp)
    print(json.dumps(describe(decision), indent=2))
    return 0
