"""The provider simulator: OpenAI- and Anthropic-compatible HTTP that replays recorded answers
and injects faults on demand. See docs/simulator.md."""

from dispatcher.simulator.faults import FAULTS, FaultSpecError, parse_odds
from dispatcher.simulator.server import Simulator, Stats, start_simulator

__all__ = ["FAULTS", "FaultSpecError", "Simulator", "Stats", "parse_odds", "start_simulator"]
