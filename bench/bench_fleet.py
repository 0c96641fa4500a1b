"""Fleet: many incident outputs merged into one dataset and queried together.

Writes ``--incidents`` synthetic incident outputs of ``--requests`` produce requests each
(fixtures/report/synthetic.py: half with journal stalls, half clean; each with its own
incident id and one of six broker ids), then times ``kforensics merge`` over all of them
and two fleet queries: the cause breakdown per incident through ``fleet.duckdb``'s views,
and the same over the Parquet glob read directly (as Spark or Trino would read the
folder). Checks that every incident's rows arrive, once, with one schema per table.

Run: ``python bench/bench_fleet.py [--incidents N] [--requests N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import polars as pl  # noqa: E402

from bench.common import Result, check, peak_self_mb, record, run_command  # noqa: E402
from fixtures.report.synthetic import generate, write_incident  # noqa: E402
from pipeline.store import Store  # noqa: E402
from pipeline.tables import TABLES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BREAKDOWN = """
select incident, broker, count(*) filter (where slow) as slow_requests,
       count(*) filter (where cause = 'slow_write') as slow_write,
       count(*) filter (where root_cause = 'journal_commit') as journal_commit
from {source} group by all order by incident
"""


def make_incident(out: Path, i: int, requests: int) -> None:
    write_incident(out, generate(requests, 600.0, stall=i % 2 == 0, seed=100 + i))
    row = dict.fromkeys(TABLES["bundle"].schema)
    row.update(incident=f"incident-{i:03d}", broker_id=i % 6, source=str(out), slo_ms=65.0)
    with Store(out) as store:
        store.insert("bundle", pl.DataFrame([row], schema=TABLES["bundle"].schema))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20_000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kf-bench-fleet-"))
    try:
        started = time.perf_counter()
        outs = []
        for i in range(a.incidents):
            outs.append(tmp / f"out-{i:03d}")
            make_incident(outs[-1], i, a.requests)
        print(f"{a.incidents} incidents of {a.requests:,} requests written in {time.perf_counter() - started:.1f} s")
        size = sum(p.stat().st_size for o in outs for p in o.rglob("*") if p.is_file())
        fleet = tmp / "fleet"
        seconds, peak_mb, _ = run_command(
            [sys.executable, "-m", "pipeline", "-q", "merge", *map(str, outs), "-o", str(fleet)],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        total = a.incidents * a.requests
        record(
            Result(
                "fleet merge",
                "kforensics merge",
                f"{a.incidents} incidents x {a.requests:,} requests",
                size,
                seconds,
                peak_mb,
                f"{a.incidents / seconds:,.1f} incidents/s",
                "Hive partitions by incident and broker + fleet.duckdb views",
            )
        )
        con = duckdb.connect(str(fleet / "fleet.duckdb"), read_only=True)
        t0 = time.perf_counter()
        by_view = con.sql(BREAKDOWN.format(source="attribution")).fetchall()
        view_s = time.perf_counter() - t0
        glob = (fleet / "parquet" / "attribution" / "*" / "*" / "*.parquet").as_posix()
        t0 = time.perf_counter()
        by_glob = duckdb.sql(BREAKDOWN.format(source=f"read_parquet('{glob}', hive_partitioning = true)")).fetchall()
        glob_s = time.perf_counter() - t0
        rows = con.sql("select count(*), count(distinct incident) from attribution").fetchall()[0]
        schemas = con.sql(
            f"select count(distinct schema) from (select file_name, list(name order by name) as schema "
            f"from parquet_schema('{glob}') group by file_name)"
        ).fetchall()[0][0]
        con.close()
        for name, s in (("fleet.duckdb views", view_s), ("read_parquet over the glob", glob_s)):
            record(
                Result(
                    "fleet query: cause breakdown per incident",
                    name,
                    f"{a.incidents} incidents, {total:,} requests",
                    size,
                    s,
                    peak_self_mb(),
                    f"{total / s:,.0f} requests/s",
                )
            )
        print(f"merge {seconds:.1f} s; breakdown via views {view_s:.2f} s, via glob {glob_s:.2f} s")
        check(
            "fleet: incidents merged into one Parquet dataset (one schema per table) and queried as one",
            f"{a.incidents} incidents, {rows[0]:,} attribution rows merged in {seconds:.1f} s, "
            f"breakdown over all in {view_s:.2f} s",
            rows == (total, a.incidents) and by_view == by_glob and len(by_view) == a.incidents and schemas == 1,
        )
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
