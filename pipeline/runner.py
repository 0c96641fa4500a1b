"""Ingest orchestration: detect every bundle file, run its parser, check, load, account.

One broken file never stops a bundle: a parser that raises marks its artifact ``partial``
or ``failed`` with the error recorded, and the next file is read.

With ``jobs > 1`` artifacts are parsed in worker processes that spill their checked
frames to Parquet files under ``OUTDIR/.work``; the main process loads each artifact's
files in one transaction, in the same order as a serial run, so memory stays bounded, the
database has one writer and the tables' row order does not depend on the workers. An
artifact of 64 MiB or more parsed in the main process spills the same way, so the parser
and the database never hold memory at the same time.
Artifacts run in priority waves (captures first) because earlier waves leave hints, such
as the capture's date, for later ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import logging
import multiprocessing
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import __version__
from pipeline.bundle import Bundle, BundleFile
from pipeline.errors import ForensicsError
from pipeline.manifest import Manifest
from pipeline.progress import Progress
from pipeline.registry import IngestError, ParseContext, Parser, Probe, detect, parsers
from pipeline.store import Store
from pipeline.tables import TABLES

log = logging.getLogger(__name__)

HASH_CHUNK = 4 * 1024 * 1024
WORK_DIR = ".work"
PARALLEL_MIN_BYTES = 16 * 1024 * 1024  # smaller waves parse faster than workers start
SPILL_MIN_BYTES = 64 * 1024 * 1024  # larger artifacts are parsed to Parquet first, then loaded


class ContractError(TypeError):
    """A parser yielded a frame that does not match its table declaration (our bug)."""


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


@dataclass
class ParseOutcome:
    """What parsing one artifact produced, independent of where the rows went."""

    rows: int
    status: str
    message: str | None
    errors: list[IngestError]
    bytes_skipped: int
    hints: dict[str, Any]
    seconds: float
    spilled: list[tuple[str, str]] = field(default_factory=list)  # (table, parquet path)


@dataclass
class _Job:
    bf: BundleFile
    parser: type[Parser]
    aid: str
    sha: str
    size: int


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_frame(parser: type[Parser], table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Cast a parser's frame to the declared schema; a missing or extra column is a bug."""
    if table not in parser.tables:
        raise ContractError(f"{parser.__name__} yielded rows for undeclared table {table}")
    want = TABLES[table].parser_columns
    have = set(frame.columns)
    if have != set(want):
        missing, extra = sorted(set(want) - have), sorted(have - set(want))
        raise ContractError(f"{parser.__name__} frame for {table}: missing {missing}, unexpected {extra}")
    try:
        return frame.select([pl.col(n).cast(t, strict=True) for n, t in want.items()])
    except pl.exceptions.PolarsError as exc:
        raise ContractError(f"{parser.__name__} frame for {table}: {exc}") from None


def parse_artifact(
    parser: type[Parser],
    ctx: ParseContext,
    sink: Callable[[str, pl.DataFrame], None],
    on_rows: Callable[[int], None] = lambda n: None,
) -> ParseOutcome:
    """Run one parser over one artifact, sending checked frames to ``sink``."""
    started = time.perf_counter()
    rows, status, message = 0, "ok", None
    try:
        for table, frame in parser().parse(ctx):
            frame = check_frame(parser, table, frame).with_columns(pl.lit(ctx.artifact_id).alias("artifact_id"))
            sink(table, frame)
            rows += frame.height
            on_rows(rows)
    except ContractError as exc:
        log.error("%s: %s", ctx.name, exc)
        status, message = "failed", f"parser contract violated: {exc}"
        ctx.error(None, "parser_bug", message)
    except Exception as exc:  # noqa: BLE001 - one broken file never kills a bundle
        log.debug("%s", traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}"
        status = "partial" if rows else "failed"  # rows read before the crash are kept
        ctx.error(None, "parser_crash", message)
    problems = [e for e in ctx.errors if e.severity in ("error", "data_loss")]
    if status == "ok" and problems:
        status = "partial" if rows else "failed"
        message = f"{problems[0].what}: {problems[0].message}"
    return ParseOutcome(rows, status, message, ctx.errors, ctx.bytes_skipped, ctx.hints, time.perf_counter() - started)


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
        path=name,
        rows=0,
        bytes_parsed=0,
        bytes_skipped=0,
        ingested_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
    )
    base.update(kw)
    return base


def incident_id(bundle: Bundle) -> str:
    """The manifest's incident id, else the bundle's name without archive suffixes."""
    if bundle.manifest.incident:
        return bundle.manifest.incident
    name = bundle.source.resolve().name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "incident"


def _record_bundle(store: Store, bundle: Bundle) -> None:
    m = bundle.manifest
    row = {
        "incident": incident_id(bundle),
        "broker_id": m.broker_id,
        "source": str(bundle.source),
        "slo_ms": m.slo_ms,
        "message_id_header": m.message_id_header,
        "manifest_json": m.to_json(),
        "kforensics_version": __version__,
    }
    store.con.begin()
    store.con.execute("delete from bundle")
    store.insert("bundle", pl.DataFrame([row], schema=TABLES["bundle"].schema))
    store.commit()


def _record_simple(store: Store, row: dict[str, Any]) -> None:
    store.con.begin()
    store.con.execute("delete from artifacts where path = ?", [row["path"]])
    store.insert_artifact_row(row)
    store.commit()


def _finish(store: Store, job: _Job, outcome: ParseOutcome) -> ArtifactResult:
    """Write the artifact's errors and provenance row and commit its transaction."""
    store.insert("ingest_errors", _errors_frame(job.aid, outcome.errors))
    store.insert_artifact_row(
        _row(
            job.bf.name,
            artifact_id=job.aid,
            kind=job.parser.kind,
            size_bytes=job.size,
            sha256=job.sha,
            parser_version=f"{job.parser.__name__} {job.parser.version} (kforensics {__version__})",
            status=outcome.status,
            rows=outcome.rows,
            bytes_parsed=max(job.size - outcome.bytes_skipped, 0),
            bytes_skipped=outcome.bytes_skipped,
            error=outcome.message,
            seconds=outcome.seconds,
        )
    )
    store.commit()
    return ArtifactResult(
        job.bf.name,
        job.parser.kind,
        outcome.status,
        outcome.rows,
        len(outcome.errors),
        outcome.seconds,
        outcome.message,
    )


def ingest_bundle(
    bundle: Bundle, store: Store, *, progress: Progress, strict: bool = False, jobs: int = 1
) -> IngestSummary:
    """Read every file of ``bundle`` into ``store``; returns one result per file."""
    summary = IngestSummary()
    _record_bundle(store, bundle)
    hints: dict[str, Any] = {}
    keep_ids: set[str] = set()
    keep_paths: set[str] = {name for name, _ in bundle.skipped}
    for name, reason in bundle.skipped:
        _record_simple(store, _row(name, status="skipped", error=reason))
        summary.results.append(ArtifactResult(name, None, "skipped", message=reason))

    seen: dict[str, str] = {}
    todo: list[_Job] = []
    for bf in bundle.files:
        keep_paths.add(bf.name)
        size = bf.path.stat().st_size
        sha = sha256_of(bf.path)
        aid = sha[:16]
        keep_ids.add(aid)
        parser: type[Parser] | None = None
        if bf.name == bundle.manifest_name:
            kind, status, reason = "manifest", "ok", None
        else:
            probe = Probe.of(bf.path, bf.name)
            parser = detect(probe)
            if parser is None:
                kind, status, reason = None, "skipped", _undetected_reason(probe)
            elif parser.skip_reason:
                kind, status, reason = parser.kind, "skipped", parser.skip_reason
            elif aid in seen:
                kind, status, reason = parser.kind, "skipped", f"same content as {seen[aid]}"
            else:
                kind, status, reason = parser.kind, None, None
        if status is None and parser is not None:
            seen[aid] = bf.name
            todo.append(_Job(bf, parser, aid, sha, size))
            continue
        duplicate = reason is not None and reason.startswith("same content as")
        _record_simple(
            store,
            _row(
                bf.name,
                artifact_id=None if duplicate else aid,
                kind=kind,
                size_bytes=size,
                sha256=sha,
                status=status,
                error=reason,
            ),
        )
        summary.results.append(ArtifactResult(bf.name, kind, status, message=reason))

    # Waves by priority (captures first): later waves may use earlier waves' hints. Worker
    # processes start once, and only for waves big enough to pay for their start-up.
    todo.sort(key=lambda j: (j.parser.priority, j.bf.name))
    min_bytes = int(os.environ.get("KFORENSICS_PARALLEL_MIN_BYTES", PARALLEL_MIN_BYTES))
    with contextlib.ExitStack() as stack:
        pool: ProcessPoolExecutor | None = None
        for _, group in itertools.groupby(todo, key=lambda j: j.parser.priority):
            wave = list(group)
            if jobs > 1 and len(wave) > 1 and sum(j.size for j in wave) >= min_bytes:
                if pool is None:
                    pool = stack.enter_context(
                        ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
                    )
                results = _run_parallel(pool, wave, bundle.manifest, store, progress, hints, jobs)
            else:
                results = [_run_serial(job, bundle.manifest, store, progress, hints, jobs) for job in wave]
            for result in results:
                summary.results.append(result)
                if strict and result.status != "ok":
                    raise ForensicsError(f"--strict: {result.path} is {result.status}: {result.message}")

    dropped = store.drop_artifacts_not_in(keep_ids, keep_paths)
    if dropped:
        log.info("removed %d artifacts that are no longer in the bundle", dropped)
    return summary


def _undetected_reason(probe: Probe) -> str:
    if probe.size == 0:
        return "empty file"
    if probe.gzipped and not probe.head:
        return "damaged gzip stream"
    return "content not recognised as any artifact kind"


def _run_serial(
    job: _Job, manifest: Manifest, store: Store, progress: Progress, hints: dict[str, Any], jobs: int = 1
) -> ArtifactResult:
    task = progress.start(job.bf.name, job.size)
    ctx = ParseContext(
        job.bf.path, job.bf.name, job.aid, manifest, hints, progress=lambda n: progress.update(task, n), jobs=jobs
    )

    def on_rows(n: int) -> None:
        progress.rows(task, n)

    if job.size >= int(os.environ.get("KFORENSICS_SPILL_MIN_BYTES", SPILL_MIN_BYTES)):
        # Parse first, load after: the parser and the database never hold memory at once.
        spill = store.outdir / WORK_DIR / job.aid
        try:
            sink = Spill(spill)
            outcome = parse_artifact(job.parser, ctx, sink, on_rows=on_rows)
            outcome.spilled = sink.files
            store.begin_artifact(job.aid, job.bf.name)
            result = _load_spilled(store, job, outcome)
        finally:
            shutil.rmtree(spill, ignore_errors=True)
            with contextlib.suppress(OSError):
                spill.parent.rmdir()
    else:
        store.begin_artifact(job.aid, job.bf.name)
        outcome = parse_artifact(job.parser, ctx, store.insert, on_rows=on_rows)
        result = _finish(store, job, outcome)
    progress.finish(task)
    return result


# -- parallel ---------------------------------------------------------------------------


class Spill:
    """A sink that writes each checked frame to its own Parquet file under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[tuple[str, str]] = []  # (table, path) in the order they came
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, table: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        out = self.folder / f"{len(self.files):06d}-{table}.parquet"
        frame.write_parquet(out, compression="lz4", statistics=False)
        self.files.append((table, str(out)))


def _load_spilled(store: Store, job: _Job, outcome: ParseOutcome) -> ArtifactResult:
    """Load an artifact's spilled frames in the open transaction, then finish it."""
    by_table: dict[str, list[str]] = {}
    for table, path in outcome.spilled:
        by_table.setdefault(table, []).append(path)
    for table, paths in by_table.items():  # one scan per table, rows in the order they came
        store.con.execute(f'insert into "{table}" by name select * from read_parquet(?)', [paths])
    return _finish(store, job, outcome)


def _parse_in_worker(
    kind: str, path: Path, name: str, aid: str, manifest: Manifest, hints: dict[str, Any], spill: Path
) -> ParseOutcome:
    """Worker process: parse one artifact, spilling checked frames to Parquet files."""
    parser = next(p for p in parsers() if p.kind == kind)
    sink = Spill(spill)
    ctx = ParseContext(path, name, aid, manifest, dict(hints))
    outcome = parse_artifact(parser, ctx, sink)
    outcome.spilled = sink.files
    return outcome


def _run_parallel(
    pool: ProcessPoolExecutor,
    wave: list[_Job],
    manifest: Manifest,
    store: Store,
    progress: Progress,
    hints: dict[str, Any],
    jobs: int,
) -> list[ArtifactResult]:
    work = store.outdir / WORK_DIR
    results: dict[str, ArtifactResult] = {}
    task = progress.start(f"{len(wave)} artifacts on {jobs} processes", sum(j.size for j in wave))
    done_bytes = 0
    new_hints: dict[str, dict[str, Any]] = {}
    parsed: dict[str, ParseOutcome] = {}
    loaded = 0  # artifacts are loaded in the wave's order, as a serial run inserts them
    try:
        pending: dict[Future, _Job] = {
            pool.submit(_parse_in_worker, j.parser.kind, j.bf.path, j.bf.name, j.aid, manifest, hints, work / j.aid): j
            for j in wave
        }
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker fails one artifact
                    err = IngestError(0, "byte", "error", "worker_died", f"{type(exc).__name__}: {exc}")
                    outcome = ParseOutcome(0, "failed", err.message, [err], 0, {}, 0.0)
                parsed[job.bf.name] = outcome
            while loaded < len(wave) and wave[loaded].bf.name in parsed:
                job = wave[loaded]
                outcome = parsed.pop(job.bf.name)
                store.begin_artifact(job.aid, job.bf.name)
                results[job.bf.name] = _load_spilled(store, job, outcome)
                new_hints[job.bf.name] = outcome.hints
                shutil.rmtree(work / job.aid, ignore_errors=True)
                loaded += 1
                done_bytes += job.size
                progress.update(task, done_bytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        progress.finish(task)
    for job in wave:  # in name order, as a serial run would see them
        merge_hints(hints, new_hints.get(job.bf.name, {}))
    return [results[j.bf.name] for j in wave]


def merge_hints(hints: dict[str, Any], new: dict[str, Any]) -> None:
    """Fold one artifact's hints into the bundle's: first value wins, dicts are merged."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(hints.get(key), dict):
            for k, v in value.items():
                hints[key].setdefault(k, v)
        else:
            hints.setdefault(key, value)
