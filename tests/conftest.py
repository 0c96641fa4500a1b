"""Shared test helpers: where the shared corpus lives, and small utilities."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The shared corpus sits beside the checkout; KFORENSICS_CORPUS points elsewhere (a worktree).
CORPUS = Path(os.environ.get("KFORENSICS_CORPUS") or REPO.parent / "shared" / "corpus")


def corpus_file(*parts: str) -> Path:
    """A file of the shared corpus; skips the test cleanly when the corpus is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared corpus not available: {path}")
    return path


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not available: {CORPUS}")
    return CORPUS
