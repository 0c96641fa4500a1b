"""Correlation speed: the mixed scenario's tables, replicated on renamed topics and connections
up to the target sizes, correlated in an in-memory database; prints seconds per size and the
slowest stages.

    python bench/bench_correlate.py [SIZES...]     # default: 20000 200000 1000000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Result, check, peak_self_mb, record  # noqa: E402
from fixtures.scenarios.catalog import SCENARIOS  # noqa: E402
from fixtures.scenarios.frames import build_frames, load_into  # noqa: E402
from fixtures.scenarios.model import simulate  # noqa: E402
from pipeline.correlate import correlate  # noqa: E402
from pipeline.registry import load_families  # noqa: E402
from pipeline.store import sql_type  # noqa: E402
from pipeline.tables import TABLES  # noqa: E402

SHARED = ("jvm_threads", "jfr_threads")  # one broker: one pool of threads


def replicated(frames: dict[str, pl.DataFrame], copies: int) -> dict[str, pl.DataFrame]:
    out = {}
    for name, f in frames.items():
        parts = []
        for k in range(copies if name not in SHARED else 1):
            g = f
            if "topic" in g.columns:
                g = g.with_columns(pl.col("topic") + f"-c{k}")
            if "conn_id" in g.columns:
                g = g.with_columns(pl.col("conn_id") + f"-c{k}")
            parts.append(g)
        out[name] = pl.concat(parts)
    return out


def main(sizes: list[int]) -> None:
    load_families()
    sim = simulate(SCENARIOS["mixed"]())
    base = build_frames(sim)
    n0 = base["produce_partitions"].height
    print(f"{'requests':>10} {'slow':>6} {'seconds':>8}  slowest stages")
    for size in sizes:
        copies = max(1, round(size / n0))
        con = duckdb.connect()
        for t in TABLES.values():
            con.execute(
                f'create table "{t.name}" (' + ", ".join(f'"{c.name}" {sql_type(c.dtype)}' for c in t.columns) + ")"
            )
        load_into(con, replicated(base, copies))
        started = time.perf_counter()
        result = correlate(con, {"slo_ms": 65})
        seconds = time.perf_counter() - started
        n, slow = con.execute("select count(*), count(*) filter (where slow) from attribution").fetchone()
        top = sorted(result.stages, key=lambda s: -s.seconds)[:3]
        audits = "audits ok" if not result.audit_failures else f"AUDITS FAILED: {sorted(result.audit_failures)}"
        record(
            Result(
                "correlation SQL stages",
                "kforensics (DuckDB)",
                f"generated scenario, {n:,} requests",
                0,
                seconds,
                peak_self_mb(),
                f"{n / seconds:,.0f} requests/s",
                audits,
            )
        )
        limit = {20_000: 5, 1_000_000: 60}.get(size)
        if limit:
            check(
                f"correlation: SQL stages on the {size:,}-request generated scenario in under {limit} s",
                f"{n:,} requests in {seconds:.2f} s, {audits}",
                seconds < limit and not result.audit_failures,
            )
        print(
            f"{n:>10} {slow:>6} {seconds:>8.2f}  "
            + ", ".join(f"{s.stage} {s.seconds:.2f}" for s in top)
            + f"  ({audits})"
        )
        con.close()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [20_000, 200_000, 1_000_000])
