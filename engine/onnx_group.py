"""Several sparse models merged into one onnxruntime session, run once per request.

Every sparse model reads the same inputs (``indices``, ``values``, ``dense``), so the task
classifier and the router heads can share one graph: one ``run`` instead of three saves the fixed
per-call cost of onnxruntime (input checks, allocation, dispatch), which dominates these tiny
models. Plain linear models are fused further into one gather over side-by-side weight tables.
Members keep the ``SparseHead`` interface; the group caches its last outputs per thread,
so the members asked about the same ``Features`` object share one run.

The fused graph (one Gather, one MatMul, one Add) can run in onnxruntime or, by default, in a
native kernel (``engine._heads.linear_logits``) that reads the graph's own ``W`` and ``b``
tensors. onnxruntime's fixed cost per run (~15-20 us in a tight loop, 100-200 us inside the
server where its code path is cold between requests) is most of a decision's time for a product
over ~100 rows; the kernel costs ~1 us. At load the kernel is checked against onnxruntime on probe
inputs and refused when they disagree.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort

from engine._heads import activate, linear_logits
from engine.features import DENSE_DIM, Features, featurize
from engine.onnx_sparse import Probs, session_options

KERNELS = ("native", "onnxruntime")
# Largest |native - onnxruntime| logit difference accepted at load (float32 sums in another order).
KERNEL_TOLERANCE = 1e-4
PROBES = (
    "Write a Python function that merges two sorted lists.",
    "If 3 apples cost $1.20, how much do 7 apples cost?",
    "Summarize: the meeting moved to Tuesday; bring the Q3 figures.\n\nThanks!",
    "Traduis en français : « where is the station? »",
)

_INPUTS = ("indices", "values", "dense")


def merge_models(models: Mapping[str, onnx.ModelProto]) -> onnx.ModelProto:
    """One graph computing every model; model ``name``'s output is ``{name}/probs``."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    outputs: list[onnx.ValueInfoProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    for name, model in models.items():
        g = model.graph

        def rename(edge: str, prefix: str = f"{name}/") -> str:
            return edge if edge in _INPUTS or not edge else prefix + edge

        for node in g.node:
            new = onnx.NodeProto()
            new.CopyFrom(node)
            new.name = rename(node.name)
            new.input[:] = [rename(e) for e in node.input]
            new.output[:] = [rename(e) for e in node.output]
            nodes.append(new)
        for init in g.initializer:
            new_init = onnx.TensorProto()
            new_init.CopyFrom(init)
            new_init.name = rename(init.name)
            inits.append(new_init)
        for out in g.output:
            new_out = onnx.ValueInfoProto()
            new_out.CopyFrom(out)
            new_out.name = rename(out.name)
            outputs.append(new_out)
        if not inputs:
            inputs = list(g.input)
    graph = onnx.helper.make_graph(nodes, "merged_sparse_models", inputs, outputs, inits)
    first = next(iter(models.values()))
    merged = onnx.helper.make_model(graph, opset_imports=list(first.opset_import))
    merged.ir_version = first.ir_version
    return merged


def _labels(model: onnx.ModelProto) -> list[str]:
    props = {p.key: p.value for p in model.metadata_props}
    return props["labels"].split(",") if props.get("labels") else []


def _linear_parts(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | None:
    """(W, Wd, b, activation) of a plain sparse linear model, or None (e.g. a hidden layer)."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    ops = [n.op_type for n in model.graph.node]
    if "W2" in inits or not {"W", "Wd", "b"} <= set(inits):
        return None
    act = "Softmax" if "Softmax" in ops else "Sigmoid" if "Sigmoid" in ops else ""
    return (inits["W"], inits["Wd"], inits["b"], act) if act else None


class Fused(NamedTuple):
    """Plain linear models fused into one graph: ``z = values @ W[indices] + b``.

    ``W`` holds every model's weight table side by side (``rows`` folded hash rows, then one row
    per dense feature), so the sparse and dense parts are one gather and one product. Inputs:
    ``indices`` [N] int64 (hash buckets folded to ``rows``, then ``rows + j`` for dense feature
    ``j``) and ``values`` [1, N] float32; output ``z`` [1, K], the logits of every model.
    ``slices[name]`` = (start, end, activation) of model ``name`` in ``z``.
    """

    model: onnx.ModelProto
    rows: int
    dense_dim: int
    slices: dict[str, tuple[int, int, str]]


def fuse_linear_models(models: Mapping[str, onnx.ModelProto]) -> Fused | None:
    """One gather for every model: their weight tables side by side (each tiled to the largest
    folded hash space, which keeps ``W[i mod rows]`` exact since the sizes are powers of two);
    activations are applied by the caller per slice. None when a model is not a plain linear one."""
    parts = {n: _linear_parts(m) for n, m in models.items()}
    if any(p is None for p in parts.values()):
        return None
    plain = {n: p for n, p in parts.items() if p is not None}
    rows = max(p[0].shape[0] for p in plain.values())
    if any(rows % p[0].shape[0] for p in plain.values()):
        return None
    w = np.concatenate([np.tile(p[0], (rows // p[0].shape[0], 1)) for p in plain.values()], axis=1)
    wd = np.concatenate([p[1] for p in plain.values()], axis=1)
    b = np.concatenate([p[2] for p in plain.values()])
    slices = {}
    start = 0
    for name, (wm, _, _, act) in plain.items():
        slices[name] = (start, start + wm.shape[1], act)
        start += wm.shape[1]
    h = onnx.helper
    tensor = onnx.numpy_helper.from_array
    table = np.concatenate([w, wd], axis=0).astype(np.float32)
    nodes = [
        h.make_node("Gather", ["W", "indices"], ["rows"], axis=0),
        h.make_node("MatMul", ["values", "rows"], ["zb"]),
        h.make_node("Add", ["zb", "b"], ["z"]),
    ]
    inputs = [
        h.make_tensor_value_info("indices", onnx.TensorProto.INT64, ["N"]),
        h.make_tensor_value_info("values", onnx.TensorProto.FLOAT, [1, "N"]),
    ]
    outputs = [h.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, start])]
    inits = [tensor(table, "W"), tensor(b.astype(np.float32), "b")]
    graph = h.make_graph(nodes, "fused_sparse_models", inputs, outputs, inits)
    fused = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    fused.ir_version = 8
    return Fused(fused, rows, int(wd.shape[0]), slices)


def _activate(z: list[float], act: str) -> list[float]:
    """Softmax or sigmoid of a few logits, in plain floats (numpy costs more on ~10 values)."""
    if act == "Softmax":
        top = max(z)
        e = [math.exp(v - top) for v in z]
        total = sum(e)
        return [v / total for v in e]
    return [1.0 / (1.0 + math.exp(-v)) if v > -700.0 else 0.0 for v in z]


def _native_parts(fused: Fused) -> tuple[np.ndarray, int, int, int, np.ndarray]:
    """(table, k, mask, dense_base, bias) for ``linear_logits``, read from the fused graph's own
    ``W`` and ``b`` tensors."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in fused.model.graph.initializer}
    table = np.ascontiguousarray(inits["W"], dtype=np.float32)
    bias = np.ascontiguousarray(inits["b"], dtype=np.float32).ravel()
    if fused.dense_dim != DENSE_DIM or table.shape[0] != fused.rows + fused.dense_dim:
        raise ValueError("fused graph does not match the featurizer's layout")
    return table, int(table.shape[1]), fused.rows - 1, fused.rows, bias


class NativeKernel(NamedTuple):
    """``linear_logits(table, k, mask, base, bias, ...)`` then ``activate(z, spec)``: one list
    of probabilities per member, in the order of ``names``."""

    table: np.ndarray
    k: int
    mask: int
    base: int
    bias: np.ndarray
    spec: tuple[tuple[int, int, bool], ...]
    names: tuple[str, ...]


class SparseModelGroup:
    """Loads sparse ONNX files by name and serves each as a ``SparseHead`` member; ``kernel``
    says what runs a fused graph (``native`` or ``onnxruntime``; see the module docstring)."""

    def __init__(self, paths: Mapping[str, str | Path], kernel: str = "native") -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
        protos = {name: onnx.load(str(p)) for name, p in paths.items()}
        self._fused = fuse_linear_models(protos)
        graph = self._fused.model if self._fused is not None else merge_models(protos)
        self._sess = ort.InferenceSession(
            graph.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
        )
        self._names = list(protos)
        self._out = ["z"] if self._fused is not None else [f"{n}/probs" for n in self._names]
        if self._fused is not None:
            f = self._fused
            self._slice_names = tuple(f.slices)
            # (start, end, softmax?) per member: engine._heads.activate applies what
            # ``_activate`` spells out in Python (tests/unit/test_onnx_group.py holds them equal)
            self._slice_spec = tuple((s, e, act == "Softmax") for s, e, act in f.slices.values())
            self._mask = np.int64(f.rows - 1)
            self._dense_idx = np.arange(f.rows, f.rows + f.dense_dim, dtype=np.int64)
        self._labels = {n: _labels(m) for n, m in protos.items()}
        self._local = threading.local()
        self._native: tuple[np.ndarray, int, int, int, np.ndarray] | None = None
        if kernel == "native" and self._fused is not None:
            self._native = _native_parts(self._fused)
            self._check_native()

    @property
    def kernel(self) -> str:
        return "native" if self._native is not None else "onnxruntime"

    def native_kernel(self) -> NativeKernel | None:
        """What ``engine._heads`` needs to evaluate this group in one flat step (see
        ``engine.signals.fused``); None unless the group is one fused linear graph run natively."""
        if self._native is None:
            return None
        table, k, mask, base, bias = self._native
        return NativeKernel(table, k, mask, base, bias, self._slice_spec, self._slice_names)

    def _check_native(self) -> None:
        """Refuse the native kernel unless it matches onnxruntime on the probe prompts."""
        for text in PROBES:
            f = featurize(text)
            native, ref = self._logits(f), self._ort_logits(f)
            worst = max(abs(a - b) for a, b in zip(native, ref, strict=True))
            if worst > KERNEL_TOLERANCE:
                raise RuntimeError(
                    f"native kernel differs from onnxruntime by {worst:.2e} on a probe input"
                )

    def _ort_logits(self, f: Features) -> list[float]:
        idx = np.concatenate((f.indices & self._mask, self._dense_idx))
        val = np.concatenate((f.values, f.dense)).reshape(1, -1)
        z: list[float] = self._sess.run(self._out, {"indices": idx, "values": val})[0][0].tolist()
        return z

    def _logits(self, f: Features) -> list[float]:
        native = self._native
        if native is None:
            return self._ort_logits(f)
        table, k, mask, base, bias = native
        return linear_logits(table, k, mask, base, bias, f.indices, f.values, f.dense)

    def _run(self, f: Features) -> dict[str, Probs]:
        if self._fused is None:
            res = self._sess.run(
                self._out, {"indices": f.indices, "values": f.values, "dense": f.dense}
            )
            return {
                n: np.asarray(r, dtype=np.float32) for n, r in zip(self._names, res, strict=True)
            }
        return dict(
            zip(self._slice_names, activate(self._logits(f), self._slice_spec), strict=True)
        )

    def outputs(self, f: Features) -> dict[str, Probs]:
        """Every member's output for ``f``; one run per distinct Features object per thread."""
        local = self._local
        if getattr(local, "features", None) is not f:
            local.outputs = self._run(f)
            local.features = f
        out: dict[str, Probs] = local.outputs
        return out

    def member(self, name: str) -> GroupMember:
        if name not in self._labels:
            raise KeyError(f"no model {name!r} in this group (have: {', '.join(self._names)})")
        return GroupMember(self, name, self._labels[name])


class GroupMember:
    """One model of a group; implements ``engine.onnx_sparse.SparseHead``."""

    def __init__(self, group: SparseModelGroup, name: str, labels: list[str]) -> None:
        self._group = group
        self._name = name
        self.labels = labels

    @property
    def group(self) -> SparseModelGroup:
        return self._group

    @property
    def name(self) -> str:
        return self._name

    def predict(self, f: Features) -> Probs:
        return self._group.outputs(f)[self._name]
