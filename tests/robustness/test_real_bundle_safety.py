"""The demo bundle, read by every real parser: byte-identical Parquet across runs and worker
counts, and an ingest killed with SIGKILL at random points then re-run gives the same tables."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "fixtures" / "demo"
WALL_CLOCK = ["ingested_at", "seconds"]  # provenance only: when and how long each file took

pytestmark = pytest.mark.slow


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "-q", *args]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def _ingest(out: Path, jobs: int = 1) -> int:
    return subprocess.run(
        _cmd("ingest", str(DEMO), "-o", str(out), "-j", str(jobs)), env=_env(), cwd=REPO, capture_output=True
    ).returncode


def _parquet(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "parquet").glob("*.parquet"))}


def _same(a: Path, b: Path) -> None:
    pa, pb = _parquet(a), _parquet(b)
    assert sorted(pa) == sorted(pb)
    assert len(pa) >= 10
    differ = [name for name in pa if pa[name] != pb[name]]
    assert differ in ([], ["artifacts.parquet"]), differ
    arts_a = pl.read_parquet(a / "parquet" / "artifacts.parquet").drop(WALL_CLOCK)
    arts_b = pl.read_parquet(b / "parquet" / "artifacts.parquet").drop(WALL_CLOCK)
    assert arts_a.equals(arts_b)


def test_demo_parquet_is_byte_identical_across_runs_and_workers(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert _ingest(one, 1) == 0
    first = _parquet(one)
    assert _ingest(two, 2) == 0
    _same(one, two)
    assert _ingest(one, 1) == 0  # re-ingest into the same folder: replaces, never duplicates
    assert _parquet(one).keys() == first.keys()
    assert {k: v for k, v in _parquet(one).items() if k != "artifacts.parquet"} == {
        k: v for k, v in first.items() if k != "artifacts.parquet"
    }


def test_demo_ingest_killed_at_random_points_then_rerun_is_the_same(tmp_path):
    clean = tmp_path / "clean"
    assert _ingest(clean) == 0
    started = time.perf_counter()
    killed = tmp_path / "killed"
    assert _ingest(killed) == 0
    run_s = time.perf_counter() - started
    rng = random.Random(20261126)
    for _ in range(4):
        proc = subprocess.Popen(
            _cmd("ingest", str(DEMO), "-o", str(killed), "-j", "1"),
            env=_env(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.1, 1.0) * run_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _ingest(killed) == 0
    _same(clean, killed)
