"""Several sparse models merged into one onnxruntime session, run once per request.

Every sparse model reads the same inputs (``indices``, ``values``, ``dense``), so the task
classifier and the router heads can share one graph: one ``run`` instead of three saves the fixed
per-call cost of onnxruntime (input checks, allocation, dispatch), which dominates these tiny
models. Members keep the ``SparseHead`` interface; the group caches its last outputs per thread,
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
from engine.onnx_sparse import session_options

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


class SparseModelGroup:
    """Loads sparse ONNX files by name and serves each as a ``SparseHead`` member."""

    def __init__(self, paths: Mapping[str, str | Path]) -> None:
        protos = {name: onnx.load(str(p)) for name, p in paths.items()}
        merged = merge_models(protos)
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
