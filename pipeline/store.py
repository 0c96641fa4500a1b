"""The incident store: ``OUTDIR/incident.duckdb`` plus ``OUTDIR/parquet/<table>.parquet``.

Rows arrive as polars frames and are loaded through Arrow. Each artifact is written in
one transaction that first deletes the artifact's earlier rows, so a re-ingest replaces
instead of duplicating and a crash mid-artifact leaves the previous state intact. The
runner loads artifacts in one order whatever the number of workers (by priority, then
path), so ingested tables are exported in the order their rows were inserted.
An exclusive lock on ``OUTDIR/.kforensics.lock`` keeps two processes apart.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.errors import ForensicsError, StoreLocked
from pipeline.registry import load_families
from pipeline.tables import TABLES, Table

DB_NAME = "incident.duckdb"
DUCKDB_MEMORY = "1GB"  # for analysis: range joins and sorts over whole tables ($KFORENSICS_DUCKDB_MEMORY overrides)
INGEST_MEMORY = "256MB"  # for ingest: loads stream through, and a larger cache only grows with the bundle
LOCK_NAME = ".kforensics.lock"


def sql_type(dtype: pl.DataType) -> str:
    """DuckDB type for a polars dtype used in table declarations."""
    if dtype == pl.Utf8:
        return "VARCHAR"
    if dtype == pl.Int64:
        return "BIGINT"
    if dtype == pl.Int32:
        return "INTEGER"
    if dtype == pl.Int16:
        return "SMALLINT"
    if dtype == pl.Float64:
        return "DOUBLE"
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if dtype == pl.Binary:
        return "BLOB"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    if isinstance(dtype, pl.List):
        return sql_type(dtype.inner) + "[]"
    if isinstance(dtype, pl.Struct):
        inner = ", ".join(f'"{f.name}" {sql_type(f.dtype)}' for f in dtype.fields)
        return f"STRUCT({inner})"
    raise TypeError(f"no DuckDB type for {dtype}")


class Store:
    """An open incident database. Use as a context manager; holds the directory lock."""

    def __init__(self, outdir: Path, *, read_only: bool = False, memory_limit: str = DUCKDB_MEMORY) -> None:
        self.outdir = Path(outdir)
        self.path = self.outdir / DB_NAME
        self.read_only = read_only
        self._lock_fd: int | None = None
        if read_only:
            if not self.path.exists():
                raise ForensicsError(
                    f"no {DB_NAME} in {self.outdir}: run `kforensics run BUNDLE -o {self.outdir}` first"
                )
            self.con = duckdb.connect(str(self.path), read_only=True)
            return
        self.outdir.mkdir(parents=True, exist_ok=True)
        self._lock()
        self.con = duckdb.connect(str(self.path))
        # Bounded memory whatever the bundle's size: DuckDB spills past this to OUTDIR/.spill.
        self.con.execute(f"set memory_limit = '{os.environ.get('KFORENSICS_DUCKDB_MEMORY', memory_limit)}'")
        self.con.execute(f"set temp_directory = '{self.outdir / '.spill'}'")
        self.con.execute("set enable_progress_bar = false")  # stdout carries query results
        self.ensure_tables()

    def _lock(self) -> None:
        fd = os.open(self.outdir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreLocked(f"{self.outdir} is in use by another kforensics process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        self.con.close()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -----------------------------------------------------------------------
    def existing_columns(self, name: str) -> list[tuple[str, str]] | None:
        rows = self.con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'main' and table_name = ? order by ordinal_position",
            [name],
        ).fetchall()
        return rows or None

    def ensure_tables(self, tables: Iterable[Table] | None = None) -> None:
        """Create declared tables; a table whose columns changed is rebuilt empty."""
        load_families()
        for table in tables or list(TABLES.values()):
            wanted = [(c.name, sql_type(c.dtype)) for c in table.columns]
            have = self.existing_columns(table.name)
            if have == wanted:
                continue
            cols = ", ".join(f'"{n}" {t}' for n, t in wanted)
            self.con.execute(f'create or replace table "{table.name}" ({cols})')
            if table.ingested and have is not None:
                # Rows from an older schema are gone: their artifacts must be read again.
                self.con.execute("delete from artifacts where kind is not null")

    # -- writing ----------------------------------------------------------------------
    def begin_artifact(self, artifact_id: str, path: str) -> None:
        """Open the artifact's transaction and clear whatever it wrote before."""
        self.con.begin()
        for table in TABLES.values():
            if table.ingested:
                self.con.execute(f'delete from "{table.name}" where artifact_id = ?', [artifact_id])
        self.con.execute("delete from artifacts where artifact_id = ? or path = ?", [artifact_id, path])

    def insert(self, table: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        arrow = frame.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan below
        self.con.execute(f'insert into "{table}" by name select * from arrow')

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def insert_artifact_row(self, row: dict[str, Any]) -> None:
        self.insert("artifacts", pl.DataFrame([row], schema=TABLES["artifacts"].schema))

    def drop_artifacts_not_in(self, keep_ids: set[str], keep_paths: set[str]) -> int:
        """Remove rows of artifacts that are no longer part of the bundle."""
        old = self.con.execute("select artifact_id, path from artifacts").fetchall()
        gone = [(a, p) for a, p in old if p not in keep_paths or (a is not None and a not in keep_ids)]
        if not gone:
            return 0
        self.con.begin()
        for aid, path in gone:
            if aid is not None and aid not in keep_ids:
                for table in TABLES.values():
                    if table.ingested:
                        self.con.execute(f'delete from "{table.name}" where artifact_id = ?', [aid])
            self.con.execute(
                "delete from artifacts where path = ? and (artifact_id is null or artifact_id = ?)",
                [path, aid],
            )
        self.con.commit()
        return len(gone)

    # -- export -----------------------------------------------------------------------
    def export_parquet(self, tables: Iterable[str] | None = None) -> Path:
        """Write every table to ``OUTDIR/parquet/<table>.parquet`` in a stable order:
        ingested tables in the order the runner inserted them (artifact by artifact, each
        in the parser's order; no sort of millions of rows), the others sorted."""
        pdir = self.outdir / "parquet"
        pdir.mkdir(exist_ok=True)
        names = list(tables) if tables is not None else self.table_names()
        for name in names:
            query = f'select * from "{name}"'
            if not (name in TABLES and TABLES[name].ingested):
                cols = [r[0] for r in self.existing_columns(name) or []]
                query += " order by " + ", ".join(f'"{c}"' for c in cols[:8])
            tmp = pdir / f".{name}.parquet.tmp"
            self.con.execute(f"copy ({query}) to '{tmp}' (format parquet, compression zstd)")
            os.replace(tmp, pdir / f"{name}.parquet")
        return pdir

    def derived_tables(self) -> list[str]:
        """Tables not loaded from artifacts: correlation results, settings, provenance."""
        return [t for t in self.table_names() if not (t in TABLES and TABLES[t].ingested)]

    def frame(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """Run a query and return its rows as a polars frame."""
        return self.con.sql(sql, params=params).pl()

    def table_names(self) -> list[str]:
        rows = self.con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' "
            "and table_type = 'BASE TABLE' order by table_name"
        ).fetchall()
        return [r[0] for r in rows]
