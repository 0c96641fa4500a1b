"""Shared helpers: simulate a scenario, load its table frames into a fresh store, correlate."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.correlate import correlate
from pipeline.registry import load_families
from pipeline.store import Store

load_families()


@pytest.fixture
def correlated(tmp_path: Path):
    """Returns run(scenario) -> (store, simulation, result); stores are closed at teardown."""
    from fixtures.scenarios.frames import build_frames, load_into
    from fixtures.scenarios.model import simulate

    opened: list[Store] = []

    def run(sc, settings: dict | None = None):
        sim = simulate(sc)
        store = Store(tmp_path / f"out{len(opened)}")
        opened.append(store)
        load_into(store.con, build_frames(sim))
        result = correlate(store.con, {"slo_ms": sc.slo_ms, **(settings or {})})
        return store, sim, result

    yield run
    for s in opened:
        s.close()
