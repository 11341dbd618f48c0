"""The slow-path router: export of the embedding heads, the shipped files, ``score --slow``."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest

from engine.embed.router import SlowRouter
from engine.eval.embed_compare import fit_matrix_head, part_matrix
from engine.features import Features, featurize
from engine.onnx_sparse import SparseModel, build_sparse_model
from engine.router import cmd_score
from engine.signals.base import RequestView
from engine.train.train_embed_router import split_coef
from modelroute.config import load_config
from modelroute.domain import Message, Role, TaskType

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


@pytest.mark.parametrize("kind", ["embedding", "embedding + n-gram", "n-gram"])
def test_exported_heads_match_the_fitted_ones(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    texts = [" ".join(rng.choice(words, size=6)) for _ in range(60)]
    feats = [featurize(t) for t in texts]
    emb = rng.normal(size=(60, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    part = part_matrix(kind, feats, emb)
    head = fit_matrix_head(part.x, rng.random(60))
    w_sparse, w_dense = split_coef(kind, head.coef, 8)
    blob = build_sparse_model(
        w_sparse.reshape(-1, 1).astype(np.float32),
        w_dense.reshape(-1, 1).astype(np.float32),
        np.array([head.bias], dtype=np.float32),
        "sigmoid",
    )
    (tmp_path / "h.onnx").write_bytes(blob)
    model = SparseModel(tmp_path / "h.onnx")
    scale = np.sqrt(8.0)
    got = [
        float(
            model.predict(
                Features(
                    f.indices, f.values, np.concatenate([f.dense, v * scale]).astype(np.float32)
                )
            )[0]
        )
        for f, v in zip(feats, emb, strict=True)
    ]
    np.testing.assert_allclose(got, head.predict(part.x), atol=1e-5)


@pytest.fixture(scope="module")
def slow() -> SlowRouter:
    return SlowRouter.load()


def req(text: str) -> RequestView:
    return RequestView((Message(Role.USER, text),))


def test_math_and_chat_keep_the_fast_score_and_other_tasks_are_embedded(
    slow: SlowRouter,
) -> None:
    assert slow.fast_heads == frozenset({"math"})
    organelle = "Which organelle makes ATP in a eukaryotic cell?"
    prompts = ["Solve 3x + 7 = 22 for x.", organelle, organelle]
    reqs = [req(p) for p in prompts]
    # open_qa is of the chat route family, which has its own knobs in the fast router
    tasks = [TaskType.MATH, TaskType.REASONING, TaskType.OPEN_QA]
    assert [slow.is_slow(t) for t in tasks] == [False, True, False]
    # a decision of the pair alone: both pair models on their pair links take the slow p
    out = slow.score_batch(reqs, tasks, pair=True)
    fast = [slow.fast_for(True).score(r, t) for r, t in zip(reqs, tasks, strict=True)]
    assert out[0] == fast[0]
    assert out[1].difficulty != fast[1].difficulty
    assert out[2] == fast[2]
    for o in out:
        assert 0.0 < o.difficulty < 1.0
        assert 0.0 < o.quality[WEAK] < o.quality[STRONG] < 1.0
    assert slow.known_models >= {STRONG, WEAK}


def test_harder_general_prompts_lower_the_weak_models_odds_more(slow: SlowRouter) -> None:
    easy = "What color is the sky on a clear day?"
    hard = (
        "In the context of quantum field theory, explain why the renormalization group flow of "
        "a non-abelian gauge coupling leads to asymptotic freedom, citing the sign of the beta "
        "function and the role of the number of fermion flavours."
    )
    tasks = [TaskType.REASONING, TaskType.REASONING]
    e, h = slow.score_batch([req(easy), req(hard)], tasks, pair=True)
    assert h.difficulty > e.difficulty
    gap_e = e.quality[STRONG] - e.quality[WEAK]
    gap_h = h.quality[STRONG] - h.quality[WEAK]
    assert gap_h > gap_e


def test_score_slow_keeps_input_order_across_batches(
    slow: SlowRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        {"id": "a", "prompt": "What is 12 * 13?"},
        {"id": "b", "prompt": "Name the capital of Australia."},
        {"id": "c", "prompt": "Write a Python function that reverses a list."},
        {"id": "d", "prompt": "Summarize the causes of the First World War in two sentences."},
        {"id": "e", "prompt": "Translate 'good morning' into French."},
    ]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\n"
    out = io.StringIO()
    n = cmd_score.score_stream_slow(
        io.StringIO(stdin),
        out,
        [STRONG, WEAK, "claude-v2"],
        slow,
        load_config(None),
        lambda r: TaskType.MATH if "12" in r.prompt else TaskType.OPEN_QA,
        batch=2,
    )
    recs = [json.loads(x) for x in out.getvalue().splitlines()]
    assert n == 5
    assert [r["id"] for r in recs] == ["a", "b", "c", "d", "e"]
    one = cmd_score.score_stream_slow(
        io.StringIO(json.dumps(lines[3]) + "\n"),
        out2 := io.StringIO(),
        [STRONG, WEAK, "claude-v2"],
        slow,
        load_config(None),
        lambda r: TaskType.OPEN_QA,
        batch=64,
    )
    assert one == 1
    alone = json.loads(out2.getvalue())
    assert alone["scores"] == pytest.approx(recs[3]["scores"], abs=1e-5)
    for r in recs:
        assert set(r["scores"]) == {STRONG, WEAK, "claude-v2"}  # claude-v2: config prior


def test_cli_slow_flag_rejects_an_unknown_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelroute.errors import InvalidInput

    monkeypatch.setattr("sys.stdin", io.StringIO('{"id": "x", "prompt": "hi"}\n'))
    args = argparse.Namespace(
        models=f"{STRONG},nope", config=None, models_dir=None, slow=True, batch=8
    )
    with pytest.raises(InvalidInput, match="unknown model 'nope'"):
        cmd_score.run(args)
