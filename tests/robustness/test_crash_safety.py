"""Killing an ingest at any point, running twice, running in parallel or concurrently
never changes or corrupts the result."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "tests.foundation.lines_plugin_autoload"


def _env() -> dict[str, str]:
    env = dict(os.environ, KFORENSICS_PLUGINS=PLUGIN, PYTHONPATH=str(REPO), KFORENSICS_PARALLEL_MIN_BYTES="0")
    return env


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "-q", *args]


def _bundle(root: Path, files: int = 8, lines: int = 3000, sleep_s: float = 0.15) -> Path:
    root.mkdir()
    for i in range(files):
        body = "\n".join(str((i * 7919 + n * 31) % 100000) if n % 997 else "oops" for n in range(lines))
        (root / f"part-{i}.txt").write_text(f"#kf-test\n{body}\nsleep {sleep_s}\n{i}\n")
    return root


def _tables(out: Path) -> dict[str, list]:
    with duckdb.connect(str(out / "incident.duckdb"), read_only=True) as con:
        return {
            "test_lines": con.sql("select artifact_id, position, value from test_lines order by all").fetchall(),
            "ingest_errors": con.sql("select * from ingest_errors order by all").fetchall(),
            "artifacts": con.sql(
                "select path, artifact_id, status, rows, bytes_skipped from artifacts order by path"
            ).fetchall(),
        }


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), env=_env(), capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_gives_the_same_tables(tmp_path):
    bundle = _bundle(tmp_path / "bundle")
    clean = tmp_path / "clean"
    assert _run("ingest", str(bundle), "-o", str(clean), "-j", "1").returncode == 1  # 'oops' lines: partial
    expected = _tables(clean)
    assert len(expected["test_lines"]) == 8 * (3000 - 4 + 1)

    out = tmp_path / "killed"
    rng = random.Random(20261126)
    for _ in range(4):
        proc = subprocess.Popen(
            _cmd("ingest", str(bundle), "-o", str(out), "-j", "1"),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 1.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _run("ingest", str(bundle), "-o", str(out), "-j", "1").returncode == 1
    assert _tables(out) == expected


@pytest.mark.slow
def test_parallel_ingest_equals_serial_and_reruns_are_identical(tmp_path):
    bundle = _bundle(tmp_path / "bundle", files=5, lines=500)
    first_file = bundle / "part-0.txt"  # finishes last in parallel: loaded first all the same
    first_file.write_text(first_file.read_text().replace("sleep 0.15", "sleep 1.5"))
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    _run("ingest", str(bundle), "-o", str(serial), "-j", "1")
    _run("ingest", str(bundle), "-o", str(parallel), "-j", "2")
    assert _tables(serial) == _tables(parallel)
    first = (parallel / "parquet" / "test_lines.parquet").read_bytes()
    _run("ingest", str(bundle), "-o", str(parallel), "-j", "2")
    assert _tables(serial) == _tables(parallel)
    assert (parallel / "parquet" / "test_lines.parquet").read_bytes() == first
    assert (serial / "parquet" / "test_lines.parquet").read_bytes() == first


@pytest.mark.slow
def test_a_second_process_on_the_same_outdir_refuses_cleanly(tmp_path):
    bundle = _bundle(tmp_path / "bundle", files=3, lines=200, sleep_s=2.0)  # the first holds the lock >= 6 s
    out = tmp_path / "out"
    first = subprocess.Popen(
        _cmd("ingest", str(bundle), "-o", str(out), "-j", "1"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 20
    while not (out / ".kforensics.lock").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    second = _run("ingest", str(bundle), "-o", str(out), "-j", "1")
    first.wait(timeout=60)
    assert second.returncode == 2
    assert "is in use by another kforensics process" in second.stderr
    assert first.returncode == 1
    assert len(_tables(out)["artifacts"]) == 3


def test_two_bundles_never_mix_rows(tmp_path):
    a = _bundle(tmp_path / "a", files=2, lines=50)
    b = tmp_path / "b"
    b.mkdir()
    (b / "only.txt").write_text("#kf-test\n42\n")
    out = tmp_path / "out"
    _run("ingest", str(a), "-o", str(out), "-j", "1")
    assert _run("ingest", str(b), "-o", str(out), "-j", "1").returncode == 0
    tables = _tables(out)
    assert [r[2] for r in tables["test_lines"]] == [42]
    assert [r[0] for r in tables["artifacts"]] == ["only.txt"]
