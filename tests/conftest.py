"""Shared test helpers: where the shared corpus lives, and small utilities."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


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
