"""Ingest orchestration: detect every bundle file, run its parser, check, load, account.

One broken file never stops a bundle: a parser that raises marks its artifact ``failed``
with the error recorded, and the next file is read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipeline import __version__
from pipeline.bundle import Bundle
from pipeline.errors import ForensicsError
from pipeline.progress import Progress
from pipeline.registry import IngestError, ParseContext, Parser, Probe, detect
from pipeline.store import Store
from pipeline.tables import TABLES

log = logging.getLogger(__name__)

HASH_CHUNK = 4 * 1024 * 1024


@dataclass
class ArtifactResult:
    path: str
    kind: str | None
    status: str
    rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    message: str | None = None


@dataclass
class IngestSummary:
    results: list[ArtifactResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if any(r.status in ("partial", "failed") for r in self.results) else 0


def sha256_of(path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_frame(parser: type[Parser], table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Cast a parser's frame to the declared schema; a missing or extra column is a bug."""
    if table not in parser.tables:
        raise TypeError(f"{parser.__name__} yielded rows for undeclared table {table}")
    want = TABLES[table].parser_columns
    have = set(frame.columns)
    if have != set(want):
        missing, extra = sorted(set(want) - have), sorted(have - set(want))
        raise TypeError(f"{parser.__name__} frame for {table}: missing {missing}, unexpected {extra}")
    return frame.select([pl.col(n).cast(t, strict=True) for n, t in want.items()])


def _errors_frame(artifact_id: str, errors: list[IngestError]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "artifact_id": [artifact_id] * len(errors),
            "position": [e.position for e in errors],
            "unit": [e.unit for e in errors],
            "severity": [e.severity for e in errors],
            "what": [e.what for e in errors],
            "message": [e.message for e in errors],
        },
        schema=TABLES["ingest_errors"].schema,
    )


def _row(name: str, **kw: Any) -> dict[str, Any]:
    base = dict.fromkeys(TABLES["artifacts"].schema)
    base.update(
        path=name, rows=0, bytes_parsed=0, bytes_skipped=0, ingested_at=dt.datetime.now(dt.UTC).replace(tzinfo=None)
    )
    base.update(kw)
    return base


def ingest_bundle(bundle: Bundle, store: Store, *, progress: Progress, strict: bool = False) -> IngestSummary:
    """Read every file of ``bundle`` into ``store``; returns one result per file."""
    summary = IngestSummary()
    hints: dict[str, Any] = {}
    plan: list[tuple[Any, type[Parser] | None, Probe | None]] = []
    for bf in bundle.files:
        if bf.name == bundle.manifest_name:
            plan.append((bf, None, None))
            continue
        probe = Probe.of(bf.path, bf.name)
        plan.append((bf, detect(probe), probe))
    # Earlier priorities first: captures give later text logs their date.
    plan.sort(key=lambda x: (x[1].priority if x[1] else 1000, x[0].name))

    seen: dict[str, str] = {}
    keep_ids: set[str] = set()
    keep_paths: set[str] = {name for name, _ in bundle.skipped}
    for name, reason in bundle.skipped:
        store.con.begin()
        store.con.execute("delete from artifacts where path = ?", [name])
        store.insert_artifact_row(_row(name, status="skipped", error=reason))
        store.commit()
        summary.results.append(ArtifactResult(name, None, "skipped", message=reason))

    for bf, parser, probe in plan:
        keep_paths.add(bf.name)
        size = bf.path.stat().st_size
        sha = sha256_of(bf.path)
        aid = sha[:16]
        keep_ids.add(aid)
        if bf.name == bundle.manifest_name:
            kind, status, reason = "manifest", "ok", None
        elif parser is None:
            kind, status, reason = None, "skipped", _undetected_reason(probe)
        elif parser.skip_reason:
            kind, status, reason = parser.kind, "skipped", parser.skip_reason
        elif aid in seen:
            kind, status, reason = parser.kind, "skipped", f"same content as {seen[aid]}"
        else:
            kind, status, reason = parser.kind, None, None
        if status is not None:
            store.con.begin()
            store.con.execute("delete from artifacts where path = ?", [bf.name])
            store.insert_artifact_row(
                _row(
                    bf.name,
                    artifact_id=None if status == "skipped" and aid in seen else aid,
                    kind=kind,
                    size_bytes=size,
                    sha256=sha,
                    status=status,
                    error=reason,
                )
            )
            store.commit()
            summary.results.append(ArtifactResult(bf.name, kind, status, message=reason))
            continue
        seen[aid] = bf.name
        result = _ingest_one(bf, parser, aid, sha, size, bundle, store, progress, hints)
        summary.results.append(result)
        if strict and result.status != "ok":
            raise ForensicsError(f"--strict: {bf.name} is {result.status}: {result.message}")

    dropped = store.drop_artifacts_not_in(keep_ids, keep_paths)
    if dropped:
        log.info("removed %d artifacts that are no longer in the bundle", dropped)
    return summary


def _undetected_reason(probe: Probe | None) -> str:
    if probe is None or probe.size == 0:
        return "empty file"
    if probe.gzipped and not probe.head:
        return "damaged gzip stream"
    return "content not recognised as any artifact kind"


def _ingest_one(
    bf,
    parser: type[Parser],
    aid: str,
    sha: str,
    size: int,
    bundle: Bundle,
    store: Store,
    progress: Progress,
    hints: dict[str, Any],
) -> ArtifactResult:
    started = time.perf_counter()
    task = progress.start(bf.name, size)
    ctx = ParseContext(bf.path, bf.name, aid, bundle.manifest, hints, progress=lambda n: progress.update(task, n))
    rows = 0
    status, message = "ok", None
    store.begin_artifact(aid, bf.name)
    try:
        chunks: Iterator = parser().parse(ctx)
        for table, frame in chunks:
            frame = check_frame(parser, table, frame).with_columns(pl.lit(aid).alias("artifact_id"))
            store.insert(table, frame)
            rows += frame.height
            progress.rows(task, rows)
    except TypeError as exc:  # a frame that breaks the contract is our bug: say so loudly
        log.error("%s: %s", bf.name, exc)
        status, message = "failed", f"parser contract violated: {exc}"
        ctx.error(None, "parser_bug", message, unit="byte")
    except Exception as exc:  # noqa: BLE001 - one broken file never kills a bundle
        log.debug("%s", traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}"
        status = "partial" if rows else "failed"  # rows read before the crash are kept
        ctx.error(None, "parser_crash", message)
    problems = [e for e in ctx.errors if e.severity in ("error", "data_loss")]
    if status == "ok" and problems:
        status = "partial" if rows else "failed"
        message = f"{problems[0].what}: {problems[0].message}"
    store.insert("ingest_errors", _errors_frame(aid, ctx.errors))
    seconds = time.perf_counter() - started
    store.insert_artifact_row(
        _row(
            bf.name,
            artifact_id=aid,
            kind=parser.kind,
            size_bytes=size,
            sha256=sha,
            parser_version=f"{parser.__name__} {parser.version} (kforensics {__version__})",
            status=status,
            rows=rows,
            bytes_parsed=max(size - ctx.bytes_skipped, 0),
            bytes_skipped=ctx.bytes_skipped,
            error=message,
            seconds=seconds,
        )
    )
    store.commit()
    progress.finish(task)
    return ArtifactResult(bf.name, parser.kind, status, rows, len(ctx.errors), seconds, message)
