"""``modelroute calibrate --target strong-share=X|savings=X|quality-floor=X --tier NAME``.

Sets the real policy's knob: the tier's ``cost_weight`` in ``engine.policy`` (score =
sensitivity * p - cost_weight * cost / max_cost). The engine built by
``engine.factory.build_engine`` decides every reference prompt (default: a seeded sample of the
data's pair prompts; ``--traffic FILE`` = JSON lines ``{"prompt": ...}``) under candidate
weights; a bisection over the weight finds the one meeting the target:

- strong-share: the share of decisions routed to the strong model is at most X;
- savings: the estimated cost is at least X below always-strong;
- quality-floor: the predicted quality is at least X of always-strong's.

"Strong" is the tier's most frequent choice at cost_weight 0 (``--strong`` overrides it);
always-strong = that model on every prompt, with its estimated cost and predicted quality from
the same decisions. The result is written into ``[tiers.NAME] cost_weight`` of the policy file
(everything else kept); the file is reloaded to prove it is still valid.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from modelroute.config import DEFAULT_CONFIG_PATH, Config, load_config
from modelroute.domain import DecideInput, Decision, Message, Role
from modelroute.errors import ConfigError, InvalidInput

KINDS = ("strong-share", "savings", "quality-floor")
MAX_WEIGHT = 1000.0
STEPS = 22


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", required=True, help="strong-share=X | savings=X | quality-floor=X"
    )
    parser.add_argument("--tier", default=None, help="tier to calibrate (default: default tier)")
    parser.add_argument("--traffic", type=Path, default=None, help="JSON lines with a prompt field")
    parser.add_argument("--strong", default=None, help="the strong model (default: see above)")
    parser.add_argument("--limit", type=int, default=600, help="at most this many prompts")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG_PATH, help="policy file to update"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="data folder (default: ../shared/data)"
    )


def parse_target(text: str) -> tuple[str, float]:
    kind, _, val = text.partition("=")
    try:
        x = float(val)
    except ValueError:
        x = -1.0
    if kind not in KINDS or not 0.0 <= x <= 1.0:
        raise InvalidInput("--target", f"expected one of {', '.join(KINDS)} = a number in [0, 1]")
    return kind, x


def with_cost_weight(cfg: Config, tier: str, weight: float) -> Config:
    tiers = dict(cfg.tiers)
    tiers[tier] = replace(tiers[tier], cost_weight=weight)
    return replace(cfg, tiers=tiers)


@dataclass(frozen=True, slots=True)
class Outcome:
    strong_share: float
    savings: float
    quality: float

    def value(self, kind: str) -> float:
        return {"strong-share": self.strong_share, "savings": self.savings}.get(kind, self.quality)


def chosen_model(d: Decision) -> str:
    """The model the policy's score picked: the first hop, or the hop after a cascade's cheap
    first try (calibration counts that choice; escalation costs are not modelled here)."""
    if d.cascade is not None and len(d.chain) > d.cascade.first_hop + 1:
        return d.chain[d.cascade.first_hop + 1].model.name
    return d.model.name


class Trial:
    """Decides the reference traffic with the real engine under a given cost weight."""

    def __init__(self, cfg: Config, tier: str, prompts: list[str], strong: str | None) -> None:
        from engine.factory import build_engine

        self.cfg, self.tier = cfg, tier
        self.engine = build_engine(cfg)
        self.inputs = [DecideInput((Message(Role.USER, p),), tier=tier) for p in prompts]
        first = [chosen_model(d) for d in self._decide(0.0)]
        self.strong = strong or Counter(first).most_common(1)[0][0]

    def _decide(self, weight: float) -> list[Decision]:
        self.engine.cfg = with_cost_weight(self.cfg, self.tier, weight)
        return [self.engine.decide(i) for i in self.inputs]

    def run(self, weight: float) -> Outcome:
        cost = ref_cost = qual = ref_qual = 0.0
        hits = 0
        for d in self._decide(weight):
            cands = {c.model.name: c for c in d.signals.candidates}
            name = chosen_model(d)
            chosen, ref = cands[name], cands.get(self.strong)
            if ref is None:
                raise InvalidInput("--strong", f"{self.strong!r} is not a model of the policy")
            hits += name == self.strong
            cost += chosen.estimated_cost_usd
            qual += chosen.predicted_quality
            ref_cost += ref.estimated_cost_usd
            ref_qual += ref.predicted_quality
        n = len(self.inputs)
        return Outcome(hits / n, 1.0 - cost / ref_cost if ref_cost else 0.0, qual / ref_qual)


def search(trial: Trial, kind: str, x: float) -> tuple[float, Outcome]:
    """Bisection in log weight: the smallest weight meeting a share/savings target, the largest
    keeping a quality floor. Decisions change monotonically with the weight."""

    def met(o: Outcome) -> bool:
        if kind == "strong-share":
            return o.strong_share <= x
        return o.savings >= x if kind == "savings" else o.quality < x

    lo, hi = 1e-4, MAX_WEIGHT
    at_lo = trial.run(lo)
    if met(at_lo):
        return (lo, at_lo) if kind != "quality-floor" else (0.0, trial.run(0.0))
    at_hi = trial.run(hi)
    if not met(at_hi):
        return hi, at_hi
    for _ in range(STEPS):
        mid = (lo * hi) ** 0.5
        if met(trial.run(mid)):
            hi = mid
        else:
            lo = mid
    best = lo if kind == "quality-floor" else hi  # quality: last weight still above the floor
    return best, trial.run(best)


def write_cost_weight(path: Path, tier: str, weight: float, note: str) -> None:
    """Set ``cost_weight`` in ``[tiers.<tier>]`` of the policy file, keeping everything else."""
    text = path.read_text(encoding="utf-8")
    head = re.search(rf"(?m)^\[tiers\.{re.escape(tier)}\][ \t]*\n", text)
    if head is None:
        raise InvalidInput("--tier", f"no [tiers.{tier}] table in {path}")
    end = re.search(r"(?m)^\[", text[head.end() :])
    body_end = head.end() + (end.start() if end else len(text) - head.end())
    body = text[head.end() : body_end]
    body = re.sub(r"(?m)^# calibrated: .*\n", "", body)
    line = f"cost_weight = {weight:.6g}\n"
    tagged = f"# calibrated: {note}\n{line}"
    if re.search(r"(?m)^cost_weight\s*=", body):
        body = re.sub(r"(?m)^cost_weight\s*=.*\n?", lambda _: tagged, body, count=1)
    else:
        body = tagged + body
    new = text[: head.end()] + body + text[body_end:]
    path.write_text(new, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        path.write_text(text, encoding="utf-8")  # never leave a broken policy behind
        raise


def run(args: argparse.Namespace) -> int:
    from engine.eval.calibration_data import reference_prompts

    kind, x = parse_target(str(args.target))
    cfg = load_config(args.config)
    tier = args.tier or cfg.default_tier
    if tier not in cfg.tiers:
        raise InvalidInput("--tier", f"unknown tier {tier!r}; known: {', '.join(cfg.tiers)}")
    prompts, ref = reference_prompts(args.traffic, args.data, max(1, int(args.limit)))
    trial = Trial(cfg, tier, prompts, args.strong)
    weight, out = search(trial, kind, x)
    write_cost_weight(args.config, tier, weight, f"{args.target} on {ref} (strong: {trial.strong})")
    print(
        json.dumps(
            {
                "tier": tier,
                "cost_weight": round(weight, 6),
                "strong": trial.strong,
                "strong_share": round(out.strong_share, 4),
                "savings": round(out.savings, 4),
                "quality_vs_strong": round(out.quality, 4),
                "reference": ref,
                "prompts": len(prompts),
            }
        )
    )
    return 0
