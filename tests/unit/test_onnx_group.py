"""Merged and fused sessions give exactly what each model gives alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from engine.features import DENSE_DIM, featurize
from engine.onnx_group import SparseModelGroup, fuse_linear_models
from engine.onnx_sparse import SparseModel, build_sparse_model

TEXTS = ["What is 2+2?", "Write a haiku about rain.", "Translate 'merci' into English, please."]


def _write(path: Path, rows: int, k: int, act: str, seed: int, hidden: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    f32 = np.float32
    width = 4 if hidden else k
    kw = {}
    if hidden:
        kw = {"w2": rng.normal(size=(4, k)).astype(f32), "b2": rng.normal(size=k).astype(f32)}
    path.write_bytes(
        build_sparse_model(
            rng.normal(size=(rows, width)).astype(f32),
            rng.normal(size=(DENSE_DIM, width)).astype(f32),
            rng.normal(size=width).astype(f32),
            act,  # type: ignore[arg-type]
            labels=[f"l{i}" for i in range(k)],
            **kw,  # type: ignore[arg-type]
        )
    )
    return path


@pytest.mark.parametrize("kernel", ["native", "onnxruntime"])
@pytest.mark.parametrize("hidden", [False, True])
def test_group_equals_single_models(tmp_path: Path, hidden: bool, kernel: str) -> None:
    paths = {
        "a": _write(tmp_path / "a.onnx", 1 << 12, 5, "softmax", 1),
        "b": _write(tmp_path / "b.onnx", 1 << 10, 3, "sigmoid", 2, hidden=hidden),
        "c": _write(tmp_path / "c.onnx", 1 << 14, 2, "sigmoid", 3),
    }
    fused = fuse_linear_models({n: onnx.load(str(p)) for n, p in paths.items()})
    assert (fused is None) == hidden
    group = SparseModelGroup(paths, kernel=kernel)
    assert group.kernel == ("onnxruntime" if hidden else kernel)
    for text in TEXTS:
        f = featurize(text)
        for name, p in paths.items():
            member = group.member(name)
            single = SparseModel(p)
            assert member.labels == single.labels
            np.testing.assert_allclose(member.predict(f), single.predict(f), rtol=1e-5, atol=1e-6)


def test_unknown_member_is_named(tmp_path: Path) -> None:
    group = SparseModelGroup({"a": _write(tmp_path / "a.onnx", 1 << 10, 2, "sigmoid", 1)})
    with pytest.raises(KeyError, match="no model 'z'"):
        group.member("z")


def test_native_kernel_equals_onnxruntime_on_real_prompts(tmp_path: Path) -> None:
    """The native kernel evaluates the fused graph's own tensors: its logits match
    onnxruntime's to float32 rounding on prompts of every size, including the empty one."""
    paths = {
        "a": _write(tmp_path / "a.onnx", 1 << 16, 9, "softmax", 4),
        "b": _write(tmp_path / "b.onnx", 1 << 12, 3, "sigmoid", 5),
    }
    native = SparseModelGroup(paths, kernel="native")
    ort = SparseModelGroup(paths, kernel="onnxruntime")
    texts = [*TEXTS, "", "x" * 9000, "def f(x):\n    return x * 2\n" * 40, "Ünïcödé 日本語 " * 30]
    for text in texts:
        f = featurize(text)
        np.testing.assert_allclose(native._logits(f), ort._logits(f), rtol=1e-5, atol=1e-5)
        for name in paths:
            np.testing.assert_allclose(
                native.member(name).predict(f), ort.member(name).predict(f), rtol=1e-5, atol=1e-6
            )


def test_native_kernel_refused_when_it_disagrees(tmp_path: Path) -> None:
    """The load-time check compares the kernel with onnxruntime and refuses a mismatch."""
    paths = {"a": _write(tmp_path / "a.onnx", 1 << 10, 2, "sigmoid", 1)}
    group = SparseModelGroup(paths, kernel="native")
    assert group._native is not None
    table, k, mask, base, bias = group._native
    # corrupt the kernel's copy of W (the graph's own tensor stays as it was)
    group._native = (table + np.float32(1.0), k, mask, base, bias)
    with pytest.raises(RuntimeError, match="native kernel differs from onnxruntime"):
        group._check_native()


def test_unknown_kernel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kernel must be one of native, onnxruntime"):
        SparseModelGroup({"a": _write(tmp_path / "a.onnx", 1 << 10, 2, "sigmoid", 1)}, "gpu")


def test_c_activations_equal_the_python_ones() -> None:
    """``engine._heads.activate`` gives the very floats of ``_activate`` (softmax and
    sigmoid, including logits far in the tails)."""
    from engine._heads import activate
    from engine.onnx_group import _activate

    rng = np.random.default_rng(9)
    for scale in (0.1, 3.0, 40.0, 800.0):
        z = (rng.normal(size=12) * scale).tolist()
        soft, sig = activate(z, ((0, 9, True), (9, 12, False)))
        assert soft == _activate(z[0:9], "Softmax") and sig == _activate(z[9:12], "Sigmoid")
    with pytest.raises(ValueError, match="slice out of range"):
        activate([0.0, 1.0], ((0, 3, True),))


def test_c_links_equal_the_python_formula() -> None:
    import math

    from engine._heads import links

    a, b = (0.3, -1.2, 2.0), (1.5, 0.25, -3.0)
    for r in (-4.0, -0.3, 0.0, 0.7, 12.0):
        assert links(r, a, b) == [
            1.0 / (1.0 + math.exp(-(x + y * r))) for x, y in zip(a, b, strict=True)
        ]


def test_c_links_with_a_level_term_equal_the_python_formula() -> None:
    import math

    from engine._heads import links

    a, b, c = (0.3, -1.2, 2.0), (1.5, 0.25, -3.0), (0.0, -2.5, 0.75)
    for r, level in ((-4.0, 1.2), (0.0, -9.2), (0.7, 0.0), (12.0, 3.3)):
        assert links(r, a, b, c, level) == [
            1.0 / (1.0 + math.exp(-(x + y * r + z * level)))
            for x, y, z in zip(a, b, c, strict=True)
        ]
    with pytest.raises(TypeError, match="c needs the level"):
        links(0.0, a, b, c)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="differ in length"):
        links(0.0, a, b, c[:2], 1.0)
