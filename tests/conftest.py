"""Shared pytest fixtures."""

from __future__ import annotations

import os

# numpy's BLAS and OpenMP pools default to one thread per core; on a 2-core machine already busy
# with another job their threads spin against each other (a 9 s fitting test took over 120 s).
# Set before any test module imports numpy; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import pytest

from dispatcher.simulator.replay import ReplayStore

REPO = Path(__file__).resolve().parent.parent
# The public routing data lives beside the repository, never inside it.
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"public routing data expected at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def store(shared_data: Path) -> ReplayStore:
    """The simulator's replay data, loaded once for the whole run."""
    s = ReplayStore(shared_data)
    s.load()
    return s
