"""Curve plots: one PNG per benchmark, named by the plot's prefix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.eval.metrics import PairCurve
from engine.eval.pair import PairResult
from engine.eval.report import features_plot


def test_one_png_per_benchmark(tmp_path: Path) -> None:
    curve = PairCurve(np.array([0.0, 50.0, 100.0]), np.array([60.0, 75.0, 85.0]), 85.0, 60.0)
    results = [
        PairResult(bench, router, curve, 0.6, 30.0, 70.0, 40.0)
        for bench in ("gsm8k", "mmlu")
        for router in ("n-gram", "embedding")
    ]
    files = features_plot(tmp_path, results)
    assert files == ["features_gsm8k.png", "features_mmlu.png"]
    for name in files:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
