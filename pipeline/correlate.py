"""Correlation: run the SQL stages under ``sql/`` in order, time them, then run the audits.

The stages are plain DuckDB SQL files (``sql/NN_name.sql``), each with a header naming what it
reads and creates; they run as they are in the ``duckdb`` shell. Python only orchestrates: it
fills ``run_settings`` (name, value) from the manifest and the command line, runs every file in
number order, records ``stage_runs(stage, seconds, rows, ran_at)``, and runs ``sql/audits/*.sql``,
each of which must return zero rows.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipeline import sql_dir
from pipeline.errors import ForensicsError
from pipeline.manifest import CLOCK_SOURCES, Manifest

STAGE_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.sql$")
CREATES = re.compile(r"^--\s*creates:\s*([a-z_][a-z0-9_]*)", re.MULTILINE)
CAUSE_ORDER = ("slow_write", "monitor_wait", "head_of_line", "queue_wait", "replication_wait", "unexplained")

# Input tables a stage reads that no parser of this build may have declared yet: created empty
# (with the columns the stages use) so correlation runs on whatever evidence there is.
FALLBACK_INPUTS = {
    "segment_records": """
        create table if not exists segment_records (
            artifact_id VARCHAR, position BIGINT, topic VARCHAR, "partition" INTEGER, segment VARCHAR,
            "offset" BIGINT, file_position BIGINT, batch_position BIGINT, timestamp_at TIMESTAMP,
            key_bytes BIGINT, value_bytes BIGINT, headers VARCHAR, message_id VARCHAR)
    """,
}


class AuditFailed(ForensicsError):
    exit_code = 1


def stage_files() -> list[Path]:
    files = [f for f in sql_dir().iterdir() if STAGE_NAME.match(f.name)]
    return sorted(files, key=lambda f: f.name)


def audit_files() -> list[Path]:
    d = sql_dir().joinpath("audits")
    return sorted((f for f in d.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)


def settings_from_manifest(manifest: Manifest) -> dict[str, float]:
    out = {"slo_ms": float(manifest.slo_ms)}
    for src in CLOCK_SOURCES:
        if src in manifest.clock_offsets_ms:
            out[f"clock_offset_ms.{src}"] = float(manifest.clock_offsets_ms[src])
    return out


def write_settings(con: duckdb.DuckDBPyConnection, values: dict[str, float], *, replace: bool = True) -> None:
    """Store the run's settings in ``run_settings``; later values of a name win."""
    con.execute("create table if not exists run_settings (name VARCHAR, value DOUBLE)")
    if replace:
        con.execute("delete from run_settings")
    for name, value in values.items():
        con.execute("delete from run_settings where name = ?", [name])
        con.execute("insert into run_settings values (?, ?)", [name, float(value)])


@dataclass
class StageRun:
    stage: str
    creates: str | None
    seconds: float
    rows: int | None


@dataclass
class CorrelationResult:
    stages: list[StageRun] = field(default_factory=list)
    audit_failures: dict[str, pl.DataFrame] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


def _ensure_inputs(con: duckdb.DuckDBPyConnection) -> None:
    have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    for name, ddl in FALLBACK_INPUTS.items():
        if name not in have:
            con.execute(ddl)


def run_stages(con: duckdb.DuckDBPyConnection) -> list[StageRun]:
    """Run every stage file in order and record each into ``stage_runs``."""
    _ensure_inputs(con)
    runs: list[StageRun] = []
    for f in stage_files():
        text = f.read_text(encoding="utf-8")
        m = CREATES.search(text)
        creates = m.group(1) if m else None
        started = time.perf_counter()
        try:
            con.execute(text)
        except duckdb.Error as exc:
            raise ForensicsError(f"stage {f.name} failed: {str(exc).splitlines()[0]}") from exc
        seconds = time.perf_counter() - started
        rows = con.execute(f'select count(*) from "{creates}"').fetchone()[0] if creates else None
        runs.append(StageRun(f.name.removesuffix(".sql"), creates, seconds, rows))
    ran_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        "create or replace table stage_runs (stage VARCHAR, creates VARCHAR, seconds DOUBLE, rows BIGINT, ran_at TIMESTAMP)"
    )
    for r in runs:
        con.execute("insert into stage_runs values (?, ?, ?, ?, ?)", [r.stage, r.creates, r.seconds, r.rows, ran_at])
    return runs


def run_audits(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """Each audit must return zero rows; returns the failing ones with their rows."""
    failures = {}
    for f in audit_files():
        frame = con.sql(f.read_text(encoding="utf-8")).pl()
        if frame.height:
            failures[f.name.removesuffix(".sql")] = frame
    return failures


def correlate(
    con: duckdb.DuckDBPyConnection, settings: dict[str, float] | None = None, *, audits: bool = True
) -> CorrelationResult:
    """Run correlation on an open incident database. ``settings`` override stored ones."""
    if settings:
        write_settings(con, settings, replace=False)
    result = CorrelationResult(run_stages(con))
    if audits:
        result.audit_failures = run_audits(con)
    return result


def cause_breakdown(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql("select * from cause_breakdown").pl()
