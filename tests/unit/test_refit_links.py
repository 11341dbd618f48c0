"""``modelroute train --only links`` reproduces the committed links from the committed heads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.router.learned import MODELS_DIR
from engine.train.train_router import refit_links


def test_refitting_the_links_on_the_committed_heads_gives_the_committed_file(
    shared_data: Path, tmp_path: Path
) -> None:
    for name in ("router.json", "router_difficulty.onnx", "router_quality.onnx"):
        shutil.copy(MODELS_DIR / name, tmp_path / name)
    out = refit_links(shared_data, tmp_path)
    assert (tmp_path / "router.json").read_bytes() == (MODELS_DIR / "router.json").read_bytes()
    # 11 RouterBench models (GPT-4-1106 among them) and 7 7B models; Mixtral-Instruct, with
    # outcomes on the pair benchmarks only, keeps its pair link
    assert out["level_links"] == 11 + 7


def test_refitting_needs_a_router_first(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--only router"):
        refit_links(tmp_path, tmp_path)
