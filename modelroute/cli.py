"""The ``modelroute`` command line. Each subcommand lives in its own module, listed in COMMANDS;
a module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and is imported only when used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from modelroute.errors import ModelrouteError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("modelroute.cmd_serve", "serve the engine and dispatcher over gRPC"),
    "decide": ("modelroute.cmd_decide", "print the routing plan for a prompt as JSON"),
    "execute": ("dispatcher.cmd_execute", "stream a prompt through the dispatcher to the terminal"),
    "simulate": (
        "dispatcher.simulator.cmd",
        "run the provider simulator (OpenAI and Anthropic HTTP)",
    ),
    "ledger": ("dispatcher.ledger.cmd", "query the cost ledger"),
    "admin": ("dispatcher.cmd_admin", "kill switches and circuit breakers of a running dispatcher"),
    "train": ("engine.train.cmd", "train the learned signals and router from ../shared/data"),
    "score": ("engine.router.cmd_score", "score JSON-lines prompts for given models (offline)"),
    "eval": ("engine.eval.cmd", "evaluate routers (APGR, CPT, AIQ) and write a report"),
    "calibrate": ("engine.eval.cmd_calibrate", "set the policy's thresholds from a stated target"),
}


def build_parser(names: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelroute", description="modelroute: an LLM model router"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if names is None or name in names:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = [a for a in args_list if a in COMMANDS][:1]
    parser = build_parser(chosen)
    args = parser.parse_args(args_list)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        code = int(module.run(args))
    except ModelrouteError as e:
        print(f"modelroute {args.command}: {e.message}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
