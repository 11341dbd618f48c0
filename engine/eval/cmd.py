"""``modelroute eval --out DIR``: pair metrics (APGR, CPT) LOBO, RouterBench AIQ, the pair on
open-ended chat (AlpacaEval), cascade analysis; prints the tables and writes PNG plots and
``report.md`` into DIR."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from engine.eval.data import default_data_dir

if TYPE_CHECKING:
    from engine.eval.route_select import Corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md and plots")
    parser.add_argument(
        "--data", type=Path, default=None, help="data folder (default: ../shared/data)"
    )
    parser.add_argument(
        "--embeddings",
        action="store_true",
        help="also compare n-gram vs MiniLM embedding vs combined route features; prompts not "
        "yet in the cache (~/.cache/modelroute or $MODELROUTE_CACHE) are embedded once "
        "(~37k prompts, 10-15 CPU-minutes on one core: run it niced)",
    )
    parser.add_argument(
        "--embeddings-only",
        action="store_true",
        help="only the pair benchmarks' n-gram vs embedding comparison (implies --embeddings); "
        "skips the main pair table, RouterBench and cascade sections",
    )


def embedding_comparison(corpus: Corpus, out: Path) -> tuple[str, list[str]]:
    """n-gram vs embedding vs combined, LOBO: prints the table, returns the report section and
    the plot files."""
    from engine.eval.embed_compare import compare
    from engine.eval.embed_data import corpus_embeddings
    from engine.eval.report import (
        choices_table,
        deltas_table,
        features_plot,
        features_section,
        features_table,
    )
    from engine.eval.variants import variants_table
    from engine.eval.wide_select import intervals_table, wide_table

    cmp = compare(corpus, corpus_embeddings(corpus))
    print(features_table(cmp.results), flush=True)
    print(choices_table(cmp.choices), flush=True)
    print(deltas_table(cmp.deltas), flush=True)
    print(variants_table(cmp.results), flush=True)
    wide = f"{wide_table(cmp.wide)}\n\n{intervals_table(cmp.intervals)}"
    print(wide, flush=True)
    for held, hc in cmp.head_c.items():
        print(f"{held} held out: CV-chosen C of the embedding heads: {hc}", flush=True)
    section = features_section(cmp.results, cmp.knobs, cmp.deltas, cmp.choices, cmp.head_c, wide)
    return section, features_plot(out, cmp.results)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from engine.eval.cascade import evaluate_cascades
    from engine.eval.chat_eval import chat_section, evaluate_chat
    from engine.eval.multi import evaluate_multi
    from engine.eval.multi_cv import evaluate_multi_cv
    from engine.eval.pair import evaluate_pair
    from engine.eval.report import (
        cascade_table,
        chat_plot,
        markdown,
        multi_table,
        pair_table,
        plots,
    )

    data = args.data or default_data_dir()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    from engine.eval.pair import load_corpus
    from engine.router.learned import MODELS_DIR
    from engine.router.route import RouteConfig

    corpus = load_corpus(data)
    if args.embeddings_only:
        section, files = embedding_comparison(corpus, out)
        imgs = "\n".join(f"![{f}]({f})" for f in files)
        report = f"# modelroute router evaluation (embeddings only)\n\n{section}\n{imgs}\n"
        (out / "report.md").write_text(report, encoding="utf-8")
        print(f"report: {out / 'report.md'}")
        return 0
    shipped = json.loads((MODELS_DIR / "router.json").read_text(encoding="utf-8"))
    shipped_cfg = RouteConfig.from_json(shipped["route"])
    pair, chosen = evaluate_pair(data, corpus=corpus, shipped=shipped_cfg)
    print(pair_table(pair), flush=True)
    for bench, cfg in chosen.items():
        print(f"{bench}: route knobs chosen by inner LOBO without it: {cfg.to_json()}")
    multi = evaluate_multi(data, corpus=corpus, cfg=shipped_cfg)
    print(multi_table(multi), flush=True)
    multi_cv = evaluate_multi_cv(corpus, shipped_cfg)
    print(multi_table(multi_cv), flush=True)
    chat = evaluate_chat(data, corpus, shipped_cfg)
    chat_md = chat_section(chat)
    print(chat_md, flush=True)
    cs = evaluate_cascades(data)
    print(cascade_table(cs), flush=True)
    files = plots(out, pair, multi, cs) + chat_plot(out, chat.results)
    section = ""
    if args.embeddings:
        section, more = embedding_comparison(corpus, out)
        files += more
    (out / "report.md").write_text(
        markdown(pair, multi, cs, files, chosen, section, chat_md, multi_cv), encoding="utf-8"
    )
    print(f"report: {out / 'report.md'}")
    return 0
