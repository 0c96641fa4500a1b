"""Shared helpers: simulate a scenario, load its table frames into a fresh database, correlate."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from pipeline.correlate import correlate
from pipeline.registry import load_families
from pipeline.store import sql_type
from pipeline.tables import TABLES

load_families()


class MemoryStore:
    """An in-memory incident database with every declared table (the tests' stand-in for Store)."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        for t in TABLES.values():
            cols = ", ".join(f'"{c.name}" {sql_type(c.dtype)}' for c in t.columns)
            self.con.execute(f'create table "{t.name}" ({cols})')

    def frame(self, sql: str, params: list | None = None) -> pl.DataFrame:
        return self.con.sql(sql, params=params).pl()

    def close(self) -> None:
        self.con.close()


@pytest.fixture
def correlated():
    """Returns run(scenario, settings) -> (store, simulation, result); closed at teardown."""
    from fixtures.scenarios.frames import build_frames, load_into
    from fixtures.scenarios.model import simulate

    opened: list[MemoryStore] = []

    def run(sc, settings: dict | None = None, before: str | None = None):
        """``before``: SQL run on the loaded inputs first (to take evidence away)."""
        sim = simulate(sc)
        store = MemoryStore()
        opened.append(store)
        load_into(store.con, build_frames(sim))
        if before:
            store.con.execute(before)
        result = correlate(store.con, {"slo_ms": sc.slo_ms, **(settings or {})})
        return store, sim, result

    yield run
    for s in opened:
        s.close()
