"""Table contracts: every table the pipeline writes, with typed, documented columns.

Ingest modules declare the tables they fill with :func:`declare`; the store creates them
from these declarations and the runner checks every frame a parser yields against them.
Conventions: instants ``*_at`` are UTC ``TIMESTAMP`` (µs), durations ``*_ms`` are
``DOUBLE`` milliseconds, every ingested row carries ``artifact_id`` and ``position``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

TIMESTAMP = pl.Datetime("us")  # naive, always UTC
STR = pl.Utf8
I64 = pl.Int64
I32 = pl.Int32
F64 = pl.Float64
BOOL = pl.Boolean
STR_LIST = pl.List(pl.Utf8)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    doc: str


@dataclass(frozen=True)
class Table:
    """One table: its grain, its columns, and whether rows come from an artifact."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    ingested: bool = True  # rows carry artifact_id and are replaced per artifact
    sort_by: tuple[str, ...] = field(default=())

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}

    @property
    def parser_columns(self) -> dict[str, pl.DataType]:
        """Columns a parser must produce (the runner adds ``artifact_id``)."""
        return {c.name: c.dtype for c in self.columns if c.name != "artifact_id"}


TABLES: dict[str, Table] = {}

ARTIFACT_ID = Column("artifact_id", STR, "Content hash (first 16 hex digits of SHA-256) of the artifact.")


def declare(name: str, doc: str, *columns: tuple[str, pl.DataType, str], ingested: bool = True) -> Table:
    """Register a table. Ingested tables get ``artifact_id`` first; ``position`` must be declared."""
    cols = tuple(Column(n, t, d) for n, t, d in columns)
    if ingested:
        cols = (ARTIFACT_ID, *cols)
        if "position" not in {c.name for c in cols}:
            raise ValueError(f"ingested table {name} must declare a position column")
    if name in TABLES and TABLES[name].columns != cols:
        raise ValueError(f"table {name} declared twice with different columns")
    table = Table(name, doc, cols, ingested, sort_by=("artifact_id", "position") if ingested else ())
    TABLES[name] = table
    return table


ARTIFACTS = declare(
    "artifacts",
    "One row per file found in the bundle: what it is, how it was read, and how it went.",
    ("artifact_id", STR, "Content hash (first 16 hex digits of SHA-256); null for skipped files not hashed."),
    ("path", STR, "Path inside the bundle."),
    ("kind", STR, "Detected artifact kind (pcap, pcapng, segment, ebpf, threaddump, jfr, manifest, ...) or null."),
    ("size_bytes", I64, "File size in bytes as stored in the bundle."),
    ("sha256", STR, "Full SHA-256 of the file content."),
    ("parser_version", STR, "Parser name and version that read it."),
    ("status", STR, "ok | partial | failed | skipped."),
    ("rows", I64, "Rows written to all tables from this artifact."),
    ("bytes_parsed", I64, "Bytes of the artifact that were understood."),
    ("bytes_skipped", I64, "Bytes passed over (damage, gaps, unknown content)."),
    ("error", STR, "Why it was skipped or failed; first error for partial artifacts."),
    ("ingested_at", TIMESTAMP, "Wall-clock time of ingest (provenance only)."),
    ("seconds", F64, "Time spent parsing and loading, in seconds."),
    ingested=False,
)

INGEST_ERRORS = declare(
    "ingest_errors",
    "Everything a parser could not read, with where: nothing is dropped silently.",
    ("position", I64, "Byte offset, packet number, line number or event number (see unit)."),
    ("unit", STR, "What position counts: byte | packet | line | event."),
    ("severity", STR, "info | error | data_loss."),
    ("what", STR, "Short machine-readable category, e.g. truncated, bad_crc, tcp_gap."),
    ("message", STR, "Human-readable detail."),
)
