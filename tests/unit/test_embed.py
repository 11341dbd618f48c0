"""MiniLM graph builder vs the numpy forward pass, on small random weights and on the real ones."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engine.embed.minilm import (
    BertConfig,
    Embedder,
    build_graph,
    pad_batch,
    reference_forward,
    session,
)
from engine.embed.weights import Weights, load_weights, read_safetensors

SMALL = BertConfig(layers=2, hidden=16, heads=4, eps=1e-12)
VOCAB = 40


def random_weights(cfg: BertConfig, seed: int = 0) -> Weights:
    rng = np.random.default_rng(seed)

    def r(*shape: int, scale: float = 0.3) -> npt.NDArray[np.float32]:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    h, f = cfg.hidden, cfg.hidden * 4
    w: Weights = {
        "embeddings.word_embeddings.weight": r(VOCAB, h),
        "embeddings.position_embeddings.weight": r(32, h),
        "embeddings.token_type_embeddings.weight": r(2, h),
        "embeddings.LayerNorm.weight": 1.0 + r(h, scale=0.1),
        "embeddings.LayerNorm.bias": r(h, scale=0.1),
    }
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}."
        for name, (o, n) in {
            "attention.self.query": (h, h),
            "attention.self.key": (h, h),
            "attention.self.value": (h, h),
            "attention.output.dense": (h, h),
            "intermediate.dense": (f, h),
            "output.dense": (h, f),
        }.items():
            w[p + name + ".weight"] = r(o, n)
            w[p + name + ".bias"] = r(o, scale=0.1)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + ln + ".weight"] = 1.0 + r(h, scale=0.1)
            w[p + ln + ".bias"] = r(h, scale=0.1)
    return w


def run_graph(w: Weights, cfg: BertConfig, seqs: list[list[int]]) -> npt.NDArray[np.float32]:
    ids, mask = pad_batch(seqs)
    out: npt.NDArray[np.float32] = session(build_graph(w, cfg)).run(
        ["embedding"], {"input_ids": ids, "attention_mask": mask}
    )[0]
    return out


def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    num = (a * b).sum(axis=1)
    out: npt.NDArray[np.float64] = num / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return out


def test_graph_matches_numpy_forward_on_random_weights() -> None:
    w = random_weights(SMALL)
    seqs = [[1, 5, 7, 9, 2], [1, 30, 2], [1, *range(3, 25), 2]]
    got = run_graph(w, SMALL, seqs)
    ids, mask = pad_batch(seqs)
    want = reference_forward(w, SMALL, ids, mask)
    assert got.shape == (3, SMALL.hidden)
    assert np.all(cosine(got, want) >= 0.99999)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_an_embedding() -> None:
    w = random_weights(SMALL, seed=3)
    short = [1, 4, 6, 2]
    alone = run_graph(w, SMALL, [short])
    batched = run_graph(w, SMALL, [short, [1, *range(5, 30), 2]])
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    assert not np.allclose(batched[0], batched[1], atol=1e-3)


def test_safetensors_reader_round_trip(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1.5, -2.0], dtype=np.float16)
    pos = np.arange(4, dtype=np.int64)
    blobs = [a.tobytes(), b.tobytes(), pos.tobytes()]
    offs = np.cumsum([0, *map(len, blobs)]).tolist()
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": offs[0:2]},
        "b": {"dtype": "F16", "shape": [2], "data_offsets": offs[1:3]},
        "pos": {"dtype": "I64", "shape": [4], "data_offsets": offs[2:4]},
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    got = read_safetensors(path)
    assert set(got) == {"a", "b"}  # integer tensors (position ids) are not weights
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], b.astype(np.float32))
    assert got["b"].dtype == np.float32


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(max_tokens=128)


TEXTS = [
    "What is the capital of France?",
    "Which city is the capital of France?",
    "Solve for x: 3x + 7 = 22.",
    "def add(a, b):\n    return a + b",
]


def test_real_minilm_graph_matches_numpy_forward(embedder: Embedder) -> None:
    got = embedder.embed(TEXTS)
    ids, mask = pad_batch(embedder.encode(TEXTS))
    want = reference_forward(load_weights(), embedder.cfg, ids, mask)
    assert got.shape == (len(TEXTS), 384)
    assert np.all(cosine(got, want) >= 0.999)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)


def test_real_minilm_ranks_a_paraphrase_above_unrelated_text(embedder: Embedder) -> None:
    v = embedder.embed(TEXTS)
    sims = v @ v.T
    assert sims[0, 1] > 0.8
    assert sims[0, 1] > sims[0, 2] + 0.4
    assert sims[0, 1] > sims[0, 3] + 0.4


def test_tokenizer_truncates_without_padding(embedder: Embedder) -> None:
    long_text = "word " * 500
    seqs = embedder.encode([long_text, "hi"])
    assert len(seqs[0]) == 128
    assert seqs[0][0] == 101 and seqs[0][-1] == 102  # [CLS] ... [SEP]
    assert seqs[1] == [101, 7632, 102]  # no padding to 128


def test_embed_order_is_input_order_despite_length_batching(embedder: Embedder) -> None:
    texts = ["a much longer sentence about the history of the Roman empire", "short", "mid size"]
    together = embedder.embed(texts, batch_size=2)
    one_by_one = np.concatenate([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_int8_graph_stays_close_to_fp32_and_is_built_once(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELROUTE_CACHE", str(tmp_path))
    q = Embedder(max_tokens=128, quantized=True)
    built = tmp_path / "minilm-l6-int8.onnx"
    assert built.exists()
    assert built.stat().st_size < 30_000_000  # int8 weights: about a quarter of the fp32 graph
    stamp = built.stat().st_mtime_ns
    got, want = q.embed(TEXTS), embedder.embed(TEXTS)
    assert np.all(cosine(got, want) >= 0.97)
    Embedder(max_tokens=128, quantized=True)
    assert built.stat().st_mtime_ns == stamp
