"""Sentence embeddings of every prompt of the eval corpus, from the on-disk cache.

``corpus_embeddings(corpus)`` returns one [N, 384] array per part of ``engine.eval.route_select
.Corpus`` (each pair benchmark, the 7B rows, the RouterBench rows). Prompts not yet cached are
embedded once with MiniLM-L6 (one onnxruntime thread; run niced on a shared machine), ~15-25
CPU-minutes for the whole corpus at 128 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.embed.cache import cache_dir, cached_embeddings
from engine.eval.route_select import Corpus

F32 = npt.NDArray[np.float32]
MAX_TOKENS = 128


@dataclass(frozen=True, slots=True)
class CorpusEmbeddings:
    pair: dict[str, F32]
    seven: F32
    bench: F32


def cache_path(max_tokens: int = MAX_TOKENS) -> Path:
    return cache_dir() / f"minilm-l6-t{max_tokens}.npz"


def corpus_embeddings(
    corpus: Corpus, progress: bool = True, max_tokens: int = MAX_TOKENS, path: Path | None = None
) -> CorpusEmbeddings:
    from engine.embed.minilm import Embedder

    texts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}

    def add(name: str, prompts: list[str]) -> None:
        spans[name] = (len(texts), len(texts) + len(prompts))
        texts.extend(prompts)

    for b, ps in corpus.pair.items():
        add(b, [r.prompt for r in ps.rows])
    add("7b", [r.prompt for r in corpus.seven])
    add("bench", [r.prompt for r in corpus.bench])
    vecs = cached_embeddings(
        texts, path or cache_path(max_tokens), lambda: Embedder(max_tokens=max_tokens), progress
    )

    def part(name: str) -> F32:
        a, b = spans[name]
        return vecs[a:b]

    return CorpusEmbeddings({b: part(b) for b in corpus.pair}, part("7b"), part("bench"))


def main() -> None:
    """``python -m engine.eval.embed_data``: fill the cache for the default data folder."""
    from engine.eval.data import default_data_dir
    from engine.eval.pair import load_corpus

    emb = corpus_embeddings(load_corpus(default_data_dir()))
    n = sum(len(v) for v in emb.pair.values()) + len(emb.seven) + len(emb.bench)
    print(f"{n} prompt embeddings in {cache_path()}")


if __name__ == "__main__":
    main()
