"""``modelroute eval --out DIR``: pair metrics (APGR, CPT) LOBO, RouterBench AIQ, cascade
analysis; prints the tables and writes PNG plots and ``report.md`` into DIR."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from engine.eval.data import default_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md and plots")
    parser.add_argument(
        "--data", type=Path, default=None, help="data folder (default: ../shared/data)"
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from engine.eval.cascade import evaluate_cascades
    from engine.eval.multi import evaluate_multi
    from engine.eval.pair import evaluate_pair
    from engine.eval.report import cascade_table, markdown, multi_table, pair_table, plots

    data = args.data or default_data_dir()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    from engine.eval.pair import load_corpus
    from engine.router.learned import MODELS_DIR
    from engine.router.route import RouteConfig

    corpus = load_corpus(data)
    pair, chosen = evaluate_pair(data, corpus=corpus)
    print(pair_table(pair), flush=True)
    for bench, cfg in chosen.items():
        print(f"{bench}: route knobs chosen by inner LOBO without it: {cfg.to_json()}")
    shipped = json.loads((MODELS_DIR / "router.json").read_text(encoding="utf-8"))
    multi = evaluate_multi(data, corpus=corpus, cfg=RouteConfig.from_json(shipped["route"]))
    print(multi_table(multi), flush=True)
    cs = evaluate_cascades(data)
    print(cascade_table(cs), flush=True)
    files = plots(out, pair, multi, cs)
    (out / "report.md").write_text(markdown(pair, multi, cs, files, chosen), encoding="utf-8")
    print(f"report: {out / 'report.md'}")
    return 0
