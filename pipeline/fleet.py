"""Fleet analysis: many incident outputs as one dataset.

Each ``kforensics run`` writes one incident's tables. :func:`merge` lays them out as
Hive-partitioned Parquet, ``FLEET/parquet/<table>/incident=<id>/broker=<id>/data.parquet``
(identical schemas; Spark, Trino and DuckDB read the folder as one table), and writes
``FLEET/fleet.duckdb`` whose views union every incident over a glob::

    select * from read_parquet('FLEET/parquet/attribution/*/*/*.parquet', hive_partitioning = true)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

from pipeline.errors import ForensicsError, UsageError
from pipeline.store import DB_NAME, Store

FLEET_DB = "fleet.duckdb"


def _incident_of(outdir: Path) -> tuple[str, str]:
    with Store(outdir, read_only=True) as store:
        rows = store.con.execute("select incident, broker_id from bundle").fetchall()
    if not rows:
        raise UsageError(f"{outdir}: no bundle row: ingest it with this version of kforensics first")
    incident, broker = rows[0]
    return incident, "unknown" if broker is None else str(broker)


def merge(outdirs: list[Path], fleet: Path) -> dict[str, int]:
    """Merge incident outputs into ``fleet``; returns rows per table. Replaces earlier
    partitions of the same incident and broker, so re-merging is idempotent."""
    seen: dict[tuple[str, str], Path] = {}
    for out in outdirs:
        if not (out / DB_NAME).exists():
            raise UsageError(f"{out}: no {DB_NAME} (run `kforensics run BUNDLE -o {out}` first)")
        key = _incident_of(out)
        if key in seen:
            raise UsageError(f"{out} and {seen[key]} are both incident {key[0]} on broker {key[1]}")
        seen[key] = out
    pdir = fleet / "parquet"
    pdir.mkdir(parents=True, exist_ok=True)
    for (incident, broker), out in seen.items():
        with Store(out, read_only=True) as store:
            for table in store.table_names():
                part = pdir / table / f"incident={incident}" / f"broker={broker}"
                if part.exists():
                    shutil.rmtree(part)
                part.mkdir(parents=True)
                tmp = part / ".data.parquet.tmp"
                store.con.execute(f"copy (select * from \"{table}\") to '{tmp}' (format parquet, compression zstd)")
                os.replace(tmp, part / "data.parquet")
    counts: dict[str, int] = {}
    db = fleet / FLEET_DB
    try:
        con = duckdb.connect(str(db))
    except duckdb.IOException as exc:
        raise ForensicsError(f"{db}: {exc}") from None
    with con:
        for tdir in sorted(p for p in pdir.iterdir() if p.is_dir()):
            glob = (tdir / "*" / "*" / "*.parquet").as_posix()
            con.execute(
                f'create or replace view "{tdir.name}" as '
                f"select * from read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
            )
            counts[tdir.name] = con.sql(f'select count(*) from "{tdir.name}"').fetchall()[0][0]
    return counts
