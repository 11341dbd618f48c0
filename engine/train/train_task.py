"""Train the task-type classifier (``engine/models/task.onnx``) on ``task_data.build``.

Multinomial logistic regression over the featurizer's hashed n-grams, folded to
``FOLD_ROWS`` rows exactly as the ONNX graph folds them, plus its dense features. Metrics are
per-class precision and recall on the held-out rows; the exported graph is checked against
scikit-learn's probabilities before it is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.features import DENSE_DIM, Features, featurize
from engine.onnx_sparse import SparseModel, build_sparse_model
from engine.train.task_data import Example, build
from modelroute.domain import TaskType

FOLD_ROWS = 1 << 15
C = 8.0
SEED = 11
PROBE_ROWS = 60
CLASSES: tuple[TaskType, ...] = tuple(TaskType)


def design(feats: list[Features]) -> object:
    """CSR matrix [n, FOLD_ROWS + DENSE_DIM]: folded sparse features then dense ones."""
    from scipy.sparse import csr_matrix

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, f in enumerate(feats):
        n = len(f.indices) + DENSE_DIM
        rows.extend([i] * n)
        cols.extend((f.indices % FOLD_ROWS).tolist())
        cols.extend(range(FOLD_ROWS, FOLD_ROWS + DENSE_DIM))
        vals.extend(f.values.tolist())
        vals.extend(f.dense.tolist())
    shape = (len(feats), FOLD_ROWS + DENSE_DIM)
    return csr_matrix((vals, (rows, cols)), shape=shape, dtype=np.float64)


def per_class(y: npt.NDArray[np.int64], pred: npt.NDArray[np.int64]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, task in enumerate(CLASSES):
        tp = int(((pred == k) & (y == k)).sum())
        n_pred = int((pred == k).sum())
        n_true = int((y == k).sum())
        out[task.label] = {
            "precision": round(tp / n_pred, 3) if n_pred else None,
            "recall": round(tp / n_true, 3) if n_true else None,
            "support": n_true,
        }
    return out


def per_source(
    examples: list[Example], y: npt.NDArray[np.int64], pred: npt.NDArray[np.int64]
) -> dict[str, float]:
    acc: dict[str, list[bool]] = {}
    for ex, t, p in zip(examples, y, pred, strict=True):
        acc.setdefault(f"{ex.source}/{ex.task.label}", []).append(bool(t == p))
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(acc.items()) if len(v) >= 5}


def with_probe(blob: bytes, rows: list[int], probs: npt.NDArray[np.float64]) -> bytes:
    """Record scikit-learn's probabilities for some held-out rows in the model's metadata,
    so a test can check the committed file still reproduces them."""
    import onnx

    model = onnx.load_from_string(blob)
    probe = {"held_out_rows": rows, "probs": np.round(probs, 6).tolist()}
    onnx.helper.set_model_props(
        model, {"labels": ",".join(t.label for t in CLASSES), "probe": json.dumps(probe)}
    )
    return bytes(model.SerializeToString())


def export(clf: object, out_path: Path, check: list[Features], rows: list[int]) -> float:
    """Write the ONNX model; return the largest |onnx - sklearn| probability on ``check``."""
    coef = np.asarray(clf.coef_, dtype=np.float32)  # type: ignore[attr-defined]
    bias = np.asarray(clf.intercept_, dtype=np.float32)  # type: ignore[attr-defined]
    blob = build_sparse_model(
        np.ascontiguousarray(coef[:, :FOLD_ROWS].T),
        np.ascontiguousarray(coef[:, FOLD_ROWS:].T),
        bias,
        "softmax",
        labels=[t.label for t in CLASSES],
    )
    expected = clf.predict_proba(design(check))  # type: ignore[attr-defined]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(with_probe(blob, rows, expected))
    model = SparseModel(out_path)
    got = np.stack([model.predict(f) for f in check])
    return float(np.abs(got - expected).max())


def train(data_dir: Path, out_dir: Path) -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression

    examples = build(data_dir)
    train_ex = [e for e in examples if not e.held_out]
    test_ex = [e for e in examples if e.held_out]
    index = {t: k for k, t in enumerate(CLASSES)}
    feats_tr = [featurize(e.text) for e in train_ex]
    feats_te = [featurize(e.text) for e in test_ex]
    y_tr = np.asarray([index[e.task] for e in train_ex], dtype=np.int64)
    y_te = np.asarray([index[e.task] for e in test_ex], dtype=np.int64)
    clf = LogisticRegression(C=C, max_iter=600, class_weight="balanced", random_state=SEED)
    clf.fit(design(feats_tr), y_tr)
    pred = np.asarray(clf.predict(design(feats_te)), dtype=np.int64)
    rows = list(range(0, len(feats_te), max(1, len(feats_te) // PROBE_ROWS)))
    max_diff = export(clf, out_dir / "task.onnx", [feats_te[i] for i in rows], rows)
    if max_diff > 1e-4:
        raise RuntimeError(f"task.onnx disagrees with scikit-learn by {max_diff:.2e}")
    return {
        "train_rows": len(train_ex),
        "held_out_rows": len(test_ex),
        "held_out_accuracy": round(float((pred == y_te).mean()), 4),
        "per_class": per_class(y_te, pred),
        "per_source_accuracy": per_source(test_ex, y_te, pred),
        "onnx_max_abs_diff": max_diff,
        "onnx_bytes": (out_dir / "task.onnx").stat().st_size,
    }
