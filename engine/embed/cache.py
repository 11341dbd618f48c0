"""On-disk cache of prompt embeddings, keyed by the SHA-1 of the prompt text.

One ``.npz`` file per embedder setting (e.g. ``minilm-l6-t128.npz`` under ``~/.cache/modelroute``
or ``$MODELROUTE_CACHE``), never in git. Missing prompts are embedded once, longest-last in
batches of similar length, and the file is rewritten every ``save_every`` prompts (atomically),
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


class Encoder(Protocol):
    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> list[list[int]]: ...

    def embed_encoded(
        self, seqs: Sequence[Sequence[int]], batch_size: int = 16, bar: Any = None
    ) -> F32: ...


def cache_dir() -> Path:
    env = os.environ.get("MODELROUTE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "modelroute"


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_cache(path: Path) -> dict[str, F32]:
    if not path.exists():
        return {}
    with np.load(path) as z:
        keys = [str(k) for k in z["keys"]]
        vecs = z["vecs"].astype(np.float32)
    return dict(zip(keys, vecs, strict=True))


def save_cache(path: Path, table: dict[str, F32], dim: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = np.array(sorted(table), dtype="U40")
    vecs = np.stack([table[k] for k in keys]) if len(keys) else np.zeros((0, dim), np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, keys=keys, vecs=vecs.astype(np.float32))
    tmp.replace(path)


def cached_embeddings(
    texts: Sequence[str],
    path: Path,
    make_encoder: Callable[[], Encoder],
    progress: bool = True,
    save_every: int = 2048,
) -> F32:
    """Embeddings of ``texts`` [N, dim], computing only the ones not yet in the cache file."""
    table = load_cache(path)
    keys = [text_key(t) for t in texts]
    missing: dict[str, str] = {}
    for k, t in zip(keys, texts, strict=True):
        if k not in table:
            missing.setdefault(k, t)
    if missing:
        enc = make_encoder()
        todo = list(missing.items())
        seqs = enc.encode([t for _, t in todo])
        order = sorted(range(len(todo)), key=lambda i: len(seqs[i]))
        bar: Any = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=f"embed -> {path.name}", unit="prompt")
        try:
            for start in range(0, len(order), save_every):
                chunk = order[start : start + save_every]
                vecs = enc.embed_encoded([seqs[i] for i in chunk], bar=bar)
                for i, v in zip(chunk, vecs, strict=True):
                    table[todo[i][0]] = v
                save_cache(path, table, enc.dim)
        finally:
            if bar is not None:
                bar.close()
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([table[k] for k in keys]).astype(np.float32)
