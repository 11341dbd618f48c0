"""The on-disk embedding cache: computes each prompt once, keeps input order, resumes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.embed.cache import cached_embeddings, load_cache, text_key


class CountingEncoder:
    """A deterministic stand-in: the vector of a text is [len, first char code, 1]."""

    def __init__(self) -> None:
        self.embedded: list[str] = []
        self._texts: dict[int, str] = {}

    @property
    def dim(self) -> int:
        return 3

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        out = []
        for t in texts:
            key = len(self._texts)
            self._texts[key] = t
            out.append([key] * (1 + len(t) % 5))
        return out

    def embed_encoded(
        self, seqs: Sequence[Sequence[int]], batch_size: int = 16, bar: Any = None
    ) -> npt.NDArray[np.float32]:
        texts = [self._texts[s[0]] for s in seqs]
        self.embedded.extend(texts)
        return np.array([[len(t), ord(t[0]), 1.0] for t in texts], dtype=np.float32)


def test_each_prompt_is_embedded_once_and_order_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    enc = CountingEncoder()
    texts = ["bb", "a", "ccc", "a", "dddd"]
    v1 = cached_embeddings(texts, path, lambda: enc, progress=False, save_every=2)
    assert sorted(enc.embedded) == ["a", "bb", "ccc", "dddd"]
    np.testing.assert_array_equal(v1[:, 0], [2, 1, 3, 1, 4])
    np.testing.assert_array_equal(v1[:, 1], [ord(t[0]) for t in texts])
    assert set(load_cache(path)) == {text_key(t) for t in texts}

    enc2 = CountingEncoder()
    v2 = cached_embeddings([*texts, "e"], path, lambda: enc2, progress=False)
    assert enc2.embedded == ["e"]
    np.testing.assert_array_equal(v2[:5], v1)


def test_no_encoder_is_built_when_everything_is_cached(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    cached_embeddings(["x", "y"], path, CountingEncoder, progress=False)

    def fail() -> CountingEncoder:
        raise AssertionError("the encoder must not be loaded")

    got = cached_embeddings(["y", "x"], path, fail, progress=False)
    np.testing.assert_array_equal(got[:, 1], [ord("y"), ord("x")])
