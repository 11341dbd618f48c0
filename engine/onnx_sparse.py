"""Small ONNX graphs over sparse hashed features, and the runtime that runs them.

A dense 2^18-wide input costs ~180 us per call in onnxruntime; gathering only the active rows
of the weight matrix costs 16-50 us. Graph inputs: ``indices`` [N] int64, ``values`` [N] float32,
``dense`` [D] float32. Output ``probs`` [K] float32 (softmax or sigmoid over K outputs).

    logits = sum_i values[i] * W[indices[i]] + dense @ Wd + b          (linear)
    hidden = relu(that); logits = hidden @ W2 + b2                      (with a hidden layer)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

if TYPE_CHECKING:
    import onnx

from engine.features import HASH_SIZE, Features

Activation = Literal["softmax", "sigmoid"]
# A model's outputs: an array from a standalone session, plain floats from a fused group.
Probs = npt.NDArray[np.float32] | list[float]


def linear_nodes(rows: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes computing ``z1 = sum_i values[i] * W[indices[i] mod rows] + dense @ Wd + b`` and the
    constants they need; the caller supplies the initializers ``W`` (rows x K), ``Wd``, ``b``.
    The indices are folded only when ``rows`` is smaller than the featurizer's hash space."""
    from onnx import helper, numpy_helper

    consts = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
    ]
    nodes = []
    gather_in = "indices"
    if rows < HASH_SIZE:
        consts.append(numpy_helper.from_array(np.array(rows, dtype=np.int64), "fold"))
        nodes.append(helper.make_node("Mod", ["indices", "fold"], ["folded"], fmod=0))
        gather_in = "folded"
    nodes += [
        helper.make_node("Gather", ["W", gather_in], ["rows"], axis=0),
        helper.make_node("Unsqueeze", ["values", "axis1"], ["v2"]),
        helper.make_node("Mul", ["rows", "v2"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axis0"], ["sparse_sum"], keepdims=0),
        helper.make_node("Unsqueeze", ["dense", "axis0"], ["dense2"]),
        helper.make_node("MatMul", ["dense2", "Wd"], ["dense_mm2"]),
        helper.make_node("Squeeze", ["dense_mm2", "axis0"], ["dense_mm"]),
        helper.make_node("Add", ["sparse_sum", "dense_mm"], ["s1"]),
        helper.make_node("Add", ["s1", "b"], ["z1"]),
    ]
    return nodes, consts


def input_infos(dense_dim: int) -> list[onnx.ValueInfoProto]:
    from onnx import TensorProto, helper

    return [
        helper.make_tensor_value_info("indices", TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("dense", TensorProto.FLOAT, [dense_dim]),
    ]


def build_sparse_model(
    w_sparse: npt.NDArray[np.float32],
    w_dense: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    activation: Activation,
    *,
    w2: npt.NDArray[np.float32] | None = None,
    b2: npt.NDArray[np.float32] | None = None,
    labels: list[str] | None = None,
    producer: str = "modelroute",
) -> bytes:
    """Serialize a sparse linear (or one-hidden-layer) model as ONNX bytes. Needs ``onnx``.

    When ``w_sparse`` has fewer rows than the featurizer's hash space (a power of two), the
    graph folds the indices into it (``indices mod rows``): a smaller file for the same input.
    """
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    nodes, consts = linear_nodes(w_sparse.shape[0])
    inits = [
        numpy_helper.from_array(w_sparse.astype(f32), "W"),
        numpy_helper.from_array(w_dense.astype(f32), "Wd"),
        numpy_helper.from_array(bias.astype(f32), "b"),
        *consts,
    ]
    last = "z1"
    if w2 is not None and b2 is not None:
        inits += [
            numpy_helper.from_array(w2.astype(f32), "W2"),
            numpy_helper.from_array(b2.astype(f32), "b2"),
        ]
        nodes += [
            helper.make_node("Relu", ["z1"], ["h"]),
            helper.make_node("Unsqueeze", ["h", "axis0"], ["h2"]),
            helper.make_node("MatMul", ["h2", "W2"], ["z2a"]),
            helper.make_node("Squeeze", ["z2a", "axis0"], ["z2b"]),
            helper.make_node("Add", ["z2b", "b2"], ["z2"]),
        ]
        last = "z2"
    if activation == "softmax":
        nodes.append(helper.make_node("Softmax", [last], ["probs"], axis=-1))
    else:
        nodes.append(helper.make_node("Sigmoid", [last], ["probs"]))
    output = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None])
    graph = helper.make_graph(nodes, "sparse_model", input_infos(w_dense.shape[0]), [output], inits)
    model = helper.make_model(
        graph, producer_name=producer, opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    if labels:
        helper.set_model_props(model, {"labels": ",".join(labels)})
    return bytes(model.SerializeToString())


class SparseHead(Protocol):
    """One sparse model's outputs for a request: a standalone session or a member of a group."""

    labels: list[str]

    def predict(self, f: Features) -> Probs: ...


def session_options() -> ort.SessionOptions:
    """One thread, sequential, no spinning: the sessions share two cores with the gRPC loop."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class SparseModel:
    """An onnxruntime session over one sparse model."""

    def __init__(self, path: str | Path) -> None:
        self._sess = ort.InferenceSession(
            str(path), session_options(), providers=["CPUExecutionProvider"]
        )
        meta = self._sess.get_modelmeta().custom_metadata_map
        self.labels: list[str] = meta["labels"].split(",") if meta.get("labels") else []
        self.path = Path(path)

    def predict(self, f: Features) -> npt.NDArray[np.float32]:
        out = self._sess.run(
            ["probs"], {"indices": f.indices, "values": f.values, "dense": f.dense}
        )
        return np.asarray(out[0], dtype=np.float32)
