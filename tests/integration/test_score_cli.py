"""``modelroute score`` run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def _run(models: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "modelroute"), "score", "--models", models],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_scores_every_line_in_order() -> None:
    lines = [
        {"id": "a", "prompt": "What is 2 + 2?"},
        {"id": "b", "prompt": "Prove that there are infinitely many primes of the form 4k+3."},
        {"id": "c", "prompt": "Write a haiku about autumn."},
    ]
    # claude-v2 is only in the policy file: scored from its ability prior.
    res = _run(f"{STRONG},{WEAK},claude-v2", "\n".join(json.dumps(x) for x in lines) + "\n")
    assert res.returncode == 0, res.stderr
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a", "b", "c"]
    for o in out:
        assert set(o["scores"]) == {STRONG, WEAK, "claude-v2"}
        assert all(0.0 < p < 1.0 for p in o["scores"].values())
        assert 0.0 <= o["difficulty"] <= 1.0
        assert isinstance(o["task"], str) and o["task"]


def test_unknown_model_exits_nonzero_with_message() -> None:
    res = _run(f"{STRONG},no-such-model", '{"id": "x", "prompt": "hi"}\n')
    assert res.returncode != 0
    assert "unknown model 'no-such-model'" in res.stderr


def test_bad_json_line_is_named() -> None:
    res = _run(STRONG, '{"id": "x", "prompt": "hi"}\n{not json\n')
    assert res.returncode != 0
    assert "line 2" in res.stderr
