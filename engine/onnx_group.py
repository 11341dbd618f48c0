"""Several sparse models merged into one onnxruntime session, run once per request.

Every sparse model reads the same inputs (``indices``, ``values``, ``dense``), so the task
classifier and the router heads can share one graph: one ``run`` instead of three saves the fixed
per-call cost of onnxruntime (input checks, allocation, dispatch), which dominates these tiny
models. Plain linear models are fused further into one gather over side-by-side weight tables.
Members keep the ``SparseHead`` interface; the group caches its last outputs per thread,
so the members asked about the same ``Features`` object share one run.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort

from engine.features import Features
from engine.onnx_sparse import linear_nodes, session_options

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


def fuse_linear_models(models: Mapping[str, onnx.ModelProto]) -> onnx.ModelProto | None:
    """One gather for every model: their weight tables side by side (each tiled to the largest
    folded hash space, which keeps ``W[i mod rows]`` exact since the sizes are powers of two),
    then one slice and activation per model. None when a model is not a plain linear one."""
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
    h = onnx.helper
    tensor = onnx.numpy_helper.from_array
    nodes, consts = linear_nodes(rows)
    inits = [
        tensor(w.astype(np.float32), "W"),
        tensor(wd.astype(np.float32), "Wd"),
        tensor(b.astype(np.float32), "b"),
        *consts,
    ]
    outputs = []
    start = 0
    for name, (wm, _, _, act) in plain.items():
        end = start + wm.shape[1]
        inits += [tensor(np.array([start], dtype=np.int64), f"{name}/start")]
        inits += [tensor(np.array([end], dtype=np.int64), f"{name}/end")]
        nodes.append(h.make_node("Slice", ["z1", f"{name}/start", f"{name}/end"], [f"{name}/z"]))
        if act == "Softmax":
            nodes.append(h.make_node(act, [f"{name}/z"], [f"{name}/probs"], axis=-1))
        else:
            nodes.append(h.make_node(act, [f"{name}/z"], [f"{name}/probs"]))
        outputs.append(h.make_tensor_value_info(f"{name}/probs", onnx.TensorProto.FLOAT, [None]))
        start = end
    inputs = list(next(iter(models.values())).graph.input)
    graph = h.make_graph(nodes, "fused_sparse_models", inputs, outputs, inits)
    fused = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    fused.ir_version = 8
    return fused


class SparseModelGroup:
    """Loads sparse ONNX files by name and serves each as a ``SparseHead`` member."""

    def __init__(self, paths: Mapping[str, str | Path]) -> None:
        protos = {name: onnx.load(str(p)) for name, p in paths.items()}
        merged = fuse_linear_models(protos) or merge_models(protos)
        self._sess = ort.InferenceSession(
            merged.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
        )
        self._names = list(protos)
        self._out = [f"{n}/probs" for n in self._names]
        self._labels = {n: _labels(m) for n, m in protos.items()}
        self._local = threading.local()

    def outputs(self, f: Features) -> dict[str, npt.NDArray[np.float32]]:
        """Every member's output for ``f``; one run per distinct Features object per thread."""
        local = self._local
        if getattr(local, "features", None) is not f:
            res = self._sess.run(
                self._out, {"indices": f.indices, "values": f.values, "dense": f.dense}
            )
            local.outputs = {
                n: np.asarray(r, dtype=np.float32) for n, r in zip(self._names, res, strict=True)
            }
            local.features = f
        out: dict[str, npt.NDArray[np.float32]] = local.outputs
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

    def predict(self, f: Features) -> npt.NDArray[np.float32]:
        return self._group.outputs(f)[self._name]
