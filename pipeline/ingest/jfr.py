"""JFR ingest: our own reader of JDK and async-profiler recordings → JVM event tables.

Reads JFR format 2.x (JDK 11+, OpenJDK 8u262+, async-profiler) with
:mod:`pipeline.ingest.jfr_format`; refuses JFR 0.9/1.0 (JDK 7-10) with a clear error.
Time: ticks of every chunk are converted with the first chunk's startTicks/startNanos,
as the JDK's own reader does, so ``start_ns`` equals ``jfr print``'s instant when
ticksPerSecond is 10⁹ (see docs/jvm.md for TSC clocks). ``[clock_offsets_ms] jfr`` in
the manifest shifts the ``*_at`` columns; ``*_ns`` columns keep the recording's clock.
"""

from __future__ import annotations

import datetime as dt
import json
import mmap
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np
import polars as pl

from pipeline.ingest.jfr_format import (
    Chunk,
    JfrFormatError,
    Recording,
    StringColumn,
    TypeDesc,
    UnsupportedVersion,
    decode_columns,
    sniff_version,
)
from pipeline.registry import ParseContext, Parser, Probe, dump_command, register
from pipeline.tables import F64, I64, STR, STR_LIST, TIMESTAMP, declare

JFR_MAGIC = b"FLR\x00"
TOP_FRAMES = 8  # frames kept per event, top first
CHUNK_ROWS = 50_000

MONITOR_EVENTS = ("jdk.JavaMonitorEnter", "jdk.JavaMonitorWait", "jdk.ThreadPark")
SAMPLE_EVENTS = ("jdk.ExecutionSample", "jdk.NativeMethodSample", "profiler.WallClockSample")
FILE_EVENTS = ("jdk.FileWrite", "jdk.FileForce")
THREAD_EVENTS = ("jdk.ThreadStart", "jdk.ThreadEnd")
INGESTED_EVENTS = MONITOR_EVENTS + SAMPLE_EVENTS + FILE_EVENTS + THREAD_EVENTS

MONITOR_WAITS = declare(
    "monitor_waits",
    "One row per JFR monitor-enter, monitor-wait or park event: a thread blocked on a lock.",
    ("position", I64, "Byte offset of the event in the recording."),
    ("event_type", STR, "jdk.JavaMonitorEnter | jdk.JavaMonitorWait | jdk.ThreadPark."),
    ("start_at", TIMESTAMP, "Wait start (UTC, shifted by clock_offsets_ms.jfr)."),
    ("end_at", TIMESTAMP, "Wait end (UTC, shifted by clock_offsets_ms.jfr)."),
    ("duration_ms", F64, "Wait duration in milliseconds."),
    ("start_ns", I64, "Wait start in ns since the epoch on the recording's clock (as jfr print shows it)."),
    ("duration_ns", I64, "Wait duration in ns (as jfr print shows it)."),
    ("tid", I64, "Linux TID of the waiting thread (osThreadId)."),
    ("java_thread_id", I64, "Java thread id of the waiting thread."),
    ("thread_name", STR, "Java name of the waiting thread (OS name for non-Java threads)."),
    ("monitor_class", STR, "Class of the monitor (or parked-on) object, dotted."),
    ("monitor_address", STR, "Monitor address as 0x%016x (HotSpot: ObjectMonitor*; async-profiler: the object)."),
    ("owner_tid", I64, "previousOwner's TID (Enter) or notifier's (Wait): only a hint, the last releaser."),
    ("owner_name", STR, "previousOwner's or notifier's name: only a hint."),
    ("top_frames", STR_LIST, "Top stack frames as Class.method:line, top first."),
    ("source", STR, "jdk | async-profiler (who wrote the recording)."),
)

THREAD_SAMPLES = declare(
    "thread_samples",
    "One row per execution, native-method or wall-clock sample.",
    ("position", I64, "Byte offset of the event."),
    ("at", TIMESTAMP, "Sample time (UTC, shifted by clock_offsets_ms.jfr)."),
    ("at_ns", I64, "Sample time in ns since the epoch on the recording's clock."),
    ("tid", I64, "Linux TID."),
    ("java_thread_id", I64, "Java thread id."),
    ("thread_name", STR, "Java thread name (OS name for non-Java threads)."),
    ("state", STR, "Thread state, e.g. STATE_RUNNABLE."),
    ("event_type", STR, "jdk.ExecutionSample | jdk.NativeMethodSample | profiler.WallClockSample."),
    ("top_frame", STR, "Top stack frame as Class.method:line."),
    ("top_frames", STR_LIST, "Top stack frames, top first."),
)

JVM_FILE_WRITES = declare(
    "jvm_file_writes",
    "One row per jdk.FileWrite or jdk.FileForce event.",
    ("position", I64, "Byte offset of the event."),
    ("event_type", STR, "jdk.FileWrite | jdk.FileForce."),
    ("start_at", TIMESTAMP, "Start (UTC, shifted by clock_offsets_ms.jfr)."),
    ("end_at", TIMESTAMP, "End (UTC, shifted by clock_offsets_ms.jfr)."),
    ("duration_ms", F64, "Duration in milliseconds."),
    ("start_ns", I64, "Start in ns since the epoch on the recording's clock."),
    ("duration_ns", I64, "Duration in ns."),
    ("tid", I64, "Linux TID."),
    ("java_thread_id", I64, "Java thread id."),
    ("thread_name", STR, "Java thread name."),
    ("path", STR, "File path."),
    ("bytes", I64, "Bytes written (FileWrite; null for FileForce)."),
    ("top_frames", STR_LIST, "Top stack frames, top first."),
)

JFR_THREADS = declare(
    "jfr_threads",
    "One row per distinct thread known to a recording: Linux TID <-> Java thread id <-> name.",
    ("position", I64, "Byte offset of the thread's constant-pool entry."),
    ("os_tid", I64, "Linux TID (osThreadId)."),
    ("java_thread_id", I64, "Java thread id (0 for non-Java threads)."),
    ("name", STR, "Java name (or OS name for non-Java threads)."),
    ("os_name", STR, "OS thread name."),
    ("started_at", TIMESTAMP, "jdk.ThreadStart time when recorded (UTC, shifted)."),
    ("ended_at", TIMESTAMP, "jdk.ThreadEnd time when recorded (UTC, shifted)."),
)


def _field(t: TypeDesc, *names: str) -> int | None:
    for n in names:
        i = t.index(n)
        if i is not None:
            return i
    return None


class _Extract:
    """Turns one recording's wanted events into columns (numpy arrays and interned values)."""

    def __init__(self, rec: Recording):
        self.rec = rec
        self.source = (
            "async-profiler"
            if any(t.name.startswith("profiler.") for c in rec.chunks for t in c.types.values())
            else "jdk"
        )
        self.stacks: list[list[str] | None] = [None]  # interned top frames; 0 = no stack
        self._stack_ids: dict[tuple[int, int], int] = {}
        self.problems: list[tuple[int, str, int]] = []  # (position, message, bytes) of unreadable events

    def _events(self, name: str, only: Chunk | None):
        """rec.events in batches of at most CHUNK_ROWS, decoded; a damaged batch is reported, not raised."""
        for chunk, t, (all_starts, all_bodies, all_sizes) in self.rec.events(name, only):
            for b0 in range(0, len(all_starts), CHUNK_ROWS):
                yield from self._batch(
                    name,
                    chunk,
                    t,
                    all_starts[b0 : b0 + CHUNK_ROWS],
                    all_bodies[b0 : b0 + CHUNK_ROWS],
                    all_sizes[b0 : b0 + CHUNK_ROWS],
                )

    def _batch(self, name, chunk, t, starts, bodies, sizes):
        if not len(starts):
            return
        try:
            cols = self._columns(chunk, t, bodies, starts, sizes)
        except (JfrFormatError, IndexError, KeyError, ValueError, OverflowError, RecursionError) as exc:
            pos = exc.position if isinstance(exc, JfrFormatError) else int(starts[0])
            msg = f"{len(starts)} {name} events of chunk {chunk.index + 1} unreadable: {exc}"
            self.problems.append((pos, msg, int(np.sum(sizes))))
            return
        yield chunk, t, starts, cols

    def _columns(self, chunk: Chunk, t: TypeDesc, bodies: list[int], starts: list[int], sizes: list[int]) -> list:
        """One column per field of the events at ``bodies``: int64 arrays when every field is an integer."""
        codec = chunk.codec
        if codec.compressed and not any(f.array for f in t.fields):
            ends = np.asarray(starts, np.int64) + np.asarray(sizes, np.int64)
            cols = decode_columns(self.rec.buf, bodies, [codec.kind(f) for f in t.fields], ends)
            if cols is not None:
                for i, f in enumerate(t.fields):
                    if not f.constant_pool and chunk.types[f.type_id].name == "int":
                        c = cols[i] & 0xFFFFFFFF
                        cols[i] = np.where(c >= 1 << 31, c - (1 << 32), c)
                return cols
        dec = codec.decoder(t.id)
        buf = self.rec.buf
        rows = [dec(buf, p)[0] for p in bodies]
        return [[r[i] for r in rows] for i in range(len(t.fields))]

    def _threads(self, chunk: Chunk, keys) -> dict[str, pl.Series]:
        uniq, inv = np.unique(np.asarray(keys, dtype=np.int64), return_inverse=True)
        tids, jids, names = [], [], []
        for k in uniq.tolist():
            th = self.rec.thread(k, chunk)
            tids.append(th.get("osThreadId") if th else None)
            jids.append(th.get("javaThreadId") if th else None)
            names.append((th.get("javaName") or th.get("osName")) if th else None)
        idx = pl.Series(inv.reshape(-1), dtype=pl.UInt32)
        return {
            "tid": pl.Series(tids, dtype=pl.Int64).gather(idx),
            "java_thread_id": pl.Series(jids, dtype=pl.Int64).gather(idx),
            "thread_name": pl.Series(names, dtype=pl.Utf8).gather(idx),
        }

    def _stack_idx(self, chunk: Chunk, keys) -> np.ndarray:
        uniq, inv = np.unique(np.asarray(keys, dtype=np.int64), return_inverse=True)
        ids = np.zeros(len(uniq), np.int64)
        for j, k in enumerate(uniq.tolist()):
            found = self.rec.lookup("jdk.types.StackTrace", k, chunk)
            if found is None:
                continue
            sid = self._stack_ids.get((found[0].index, k))
            if sid is None:
                sid = self._stack_ids[(found[0].index, k)] = len(self.stacks)
                self.stacks.append(self.rec.stack(k, chunk, TOP_FRAMES))
            ids[j] = sid
        return ids[inv.reshape(-1)]

    def _strings(self, chunk: Chunk, col) -> pl.Series:
        """A string column (decoded values, or a StringColumn of pool keys) as text."""
        if not isinstance(col, StringColumn):
            return pl.Series([self.rec.string(v, chunk) for v in col], dtype=pl.Utf8)
        out = self._lookup(np.where(col.tags == 2, col.keys, 0), lambda k: self.rec.string(("$ref", k), chunk))
        if (col.tags == 1).any() or col.inline:
            vals = out.to_list()
            for r in np.flatnonzero(col.tags == 1).tolist():
                vals[r] = ""
            for r, v in col.inline.items():
                vals[r] = v
            out = pl.Series(vals, dtype=pl.Utf8)
        return out

    def _lookup(self, keys, fn) -> pl.Series:
        uniq, inv = np.unique(np.asarray(keys, dtype=np.int64), return_inverse=True)
        vals = [fn(k) for k in uniq.tolist()]
        return pl.Series(vals, dtype=pl.Utf8).gather(pl.Series(inv.reshape(-1), dtype=pl.UInt32))

    def _part(self, name: str, starts, cols: list, t: TypeDesc, chunk: Chunk, **idx) -> dict:
        n = len(starts)
        zeros = np.zeros(n, np.int64)

        def col(i):
            return zeros if i is None else cols[i]

        part = {
            "position": np.asarray(starts, np.int64),
            "event_type": pl.Series([name], dtype=pl.Utf8).gather(pl.Series(np.zeros(n, np.uint32))),
            "ticks": np.asarray(col(idx["start"]), np.int64),
            "stack": self._stack_idx(chunk, col(idx["stack"])),
            **self._threads(chunk, col(idx["thread"])),
        }
        if "span" in idx:
            part["span"] = np.asarray(col(idx["span"]), np.int64)
        return part

    def monitor_waits(self, only: Chunk | None = None) -> Iterator[dict]:
        rec = self.rec
        for name in MONITOR_EVENTS:
            for chunk, t, starts, cols in self._events(name, only):
                f = lambda *n, t=t: _field(t, *n)  # noqa: E731
                part = self._part(
                    name,
                    starts,
                    cols,
                    t,
                    chunk,
                    start=f("startTime"),
                    span=f("duration"),
                    thread=f("eventThread"),
                    stack=f("stackTrace"),
                )
                n = len(starts)
                i_cls, i_own, i_adr = f("monitorClass", "parkedClass"), f("previousOwner", "notifier"), f("address")
                zeros = np.zeros(n, np.int64)
                part["monitor_class"] = self._lookup(
                    zeros if i_cls is None else cols[i_cls], lambda k, c=chunk: rec.class_name(k, c)
                )
                adr = np.asarray(zeros if i_adr is None else cols[i_adr], np.int64)
                part["monitor_address"] = pl.Series(
                    [f"0x{a & 0xFFFFFFFFFFFFFFFF:016x}" if a else None for a in adr.tolist()], dtype=pl.Utf8
                )
                owner = self._threads(chunk, zeros if i_own is None else cols[i_own])
                part["owner_tid"] = owner["tid"]
                part["owner_name"] = owner["thread_name"]
                part["source"] = pl.Series([self.source], dtype=pl.Utf8).gather(pl.Series(np.zeros(n, np.uint32)))
                yield part

    def samples(self, only: Chunk | None = None) -> Iterator[dict]:
        rec = self.rec
        for name in SAMPLE_EVENTS:
            for chunk, t, starts, cols in self._events(name, only):
                f = lambda *n, t=t: _field(t, *n)  # noqa: E731
                part = self._part(
                    name,
                    starts,
                    cols,
                    t,
                    chunk,
                    start=f("startTime"),
                    thread=f("sampledThread", "eventThread"),
                    stack=f("stackTrace"),
                )
                i_state = f("state")
                if i_state is None:
                    part["state"] = pl.Series([None] * len(starts), dtype=pl.Utf8)
                else:
                    fd = t.fields[i_state]
                    tname = chunk.types[fd.type_id].name
                    if fd.constant_pool:
                        part["state"] = self._lookup(cols[i_state], lambda k, c=chunk, n=tname: rec.simple(n, k, c))
                    else:
                        part["state"] = self._strings(chunk, cols[i_state])
                yield part

    def file_writes(self, only: Chunk | None = None) -> Iterator[dict]:
        for name in FILE_EVENTS:
            for chunk, t, starts, cols in self._events(name, only):
                f = lambda *n, t=t: _field(t, *n)  # noqa: E731
                part = self._part(
                    name,
                    starts,
                    cols,
                    t,
                    chunk,
                    start=f("startTime"),
                    span=f("duration"),
                    thread=f("eventThread"),
                    stack=f("stackTrace"),
                )
                i_path, i_bytes = f("path"), f("bytesWritten")
                n = len(starts)
                part["path"] = (
                    self._strings(chunk, cols[i_path]) if i_path is not None else pl.Series([None] * n, dtype=pl.Utf8)
                )
                part["bytes"] = pl.Series(list(cols[i_bytes]) if i_bytes is not None else [None] * n, dtype=pl.Int64)
                yield part

    def threads(self) -> dict:
        rec = self.rec
        seen: set[tuple] = set()
        rows: list[dict] = []
        for chunk in rec.chunks:
            pool = chunk.pools.get("java.lang.Thread", {})
            for key, off in pool.items():
                th = rec.thread(key, chunk)
                if th is None:
                    continue
                ident = (th.get("osThreadId"), th.get("javaThreadId"), th.get("javaName"), th.get("osName"))
                if ident in seen:
                    continue
                seen.add(ident)
                rows.append(
                    {
                        "position": off,
                        "os_tid": th.get("osThreadId"),
                        "java_thread_id": th.get("javaThreadId"),
                        "name": th.get("javaName") or th.get("osName"),
                        "os_name": th.get("osName"),
                        "start_ticks": None,
                        "end_ticks": None,
                    }
                )
        by_ids: dict[tuple, list[dict]] = {}
        for r in rows:
            by_ids.setdefault((r["os_tid"], r["java_thread_id"]), []).append(r)
        for name, slot in (("jdk.ThreadStart", "start_ticks"), ("jdk.ThreadEnd", "end_ticks")):
            for chunk, t, _starts, cols in self._events(name, None):
                i_st, i_thread = _field(t, "startTime"), _field(t, "thread")
                if i_thread is None:
                    continue
                for ticks, key in zip(list(cols[i_st]), list(cols[i_thread]), strict=True):
                    th = rec.thread(int(key), chunk) if key else None
                    if th is None:
                        continue
                    for r in by_ids.get((th.get("osThreadId"), th.get("javaThreadId")), []):
                        if r[slot] is None:
                            r[slot] = int(ticks)
        return {k: [r[k] for r in rows] for k in (rows[0] if rows else ["position"])}


def _instant(ns: pl.Expr, offset_ns: int) -> pl.Expr:
    return ((ns + offset_ns) // 1000).cast(pl.Datetime("us"))


def _frames(rec: Recording, ex: _Extract, parts: list[dict], kind: str, offset_ns: int) -> pl.DataFrame | None:
    """Rows of one table in file order; ``stack`` indexes ``ex.stacks`` (expanded by _emit)."""
    parts = [p for p in parts if len(p["position"])]
    if not parts:
        return None
    cols: dict[str, pl.Series] = {}
    for k in parts[0]:
        vals = [p[k] for p in parts]
        if isinstance(vals[0], np.ndarray):
            cols[k] = pl.Series(k, np.concatenate(vals))
        else:
            cols[k] = pl.concat(vals).alias(k)
    ticks = cols.pop("ticks").to_numpy()
    start_ns = pl.Series(rec.ticks_to_ns(ticks), dtype=pl.Int64)
    df = pl.DataFrame(list(cols.values())).with_columns(pl.col("stack").cast(pl.UInt32))
    if kind == "samples":
        df = df.with_columns(start_ns.alias("at_ns"))
        return df.with_columns(_instant(pl.col("at_ns"), offset_ns).alias("at")).sort("position")
    dur = np.asarray(rec.span_to_ns(cols.pop("span").to_numpy()), dtype=np.int64)
    df = df.drop("span").with_columns(
        start_ns.alias("start_ns"),
        pl.Series(dur, dtype=pl.Int64).alias("duration_ns"),
        pl.Series(dur / 1e6, dtype=pl.Float64).alias("duration_ms"),  # correctly rounded division
    )
    return df.with_columns(
        _instant(pl.col("start_ns"), offset_ns).alias("start_at"),
        _instant(pl.col("start_ns") + pl.col("duration_ns"), offset_ns).alias("end_at"),
    ).sort("position")


def _threads_frame(rec: Recording, cols: dict, offset_ns: int) -> pl.DataFrame | None:
    if not cols.get("position"):
        return None
    start = cols.pop("start_ticks")
    end = cols.pop("end_ticks")
    df = pl.DataFrame(cols)

    def conv(vals):
        return pl.Series([None if v is None else rec.ticks_to_ns(v) for v in vals], dtype=pl.Int64)

    return df.with_columns(
        _instant(pl.lit(conv(start)), offset_ns).alias("started_at"),
        _instant(pl.lit(conv(end)), offset_ns).alias("ended_at"),
    ).sort("os_tid", "java_thread_id", "position", nulls_last=True)


def _load(ctx: ParseContext):
    """The recording's bytes: memory-mapped when plain, read into memory when gzipped."""
    with open(ctx.path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        with ctx.open() as g:
            return g.read()
    with open(ctx.path, "rb") as f:
        if Path(ctx.path).stat().st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _emit(df: pl.DataFrame | None, table: str, stacks: pl.Series | None = None) -> Iterator[tuple[str, pl.DataFrame]]:
    """Yield ``df`` in slices; stack indexes become the top-frame lists slice by slice."""
    if df is None or df.height == 0:
        return
    for off in range(0, df.height, CHUNK_ROWS):
        part = df.slice(off, CHUNK_ROWS)
        if stacks is not None:
            top = stacks.gather(part["stack"]).alias("top_frames")
            part = part.drop("stack").with_columns(top)
            if table == "thread_samples":
                part = part.with_columns(top.list.first().alias("top_frame"))
        yield table, part


@register
class JfrParser(Parser):
    kind = "jfr"
    tables = ("monitor_waits", "thread_samples", "jvm_file_writes", "jfr_threads")
    priority = 5
    version = "1"

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        return probe.head[:4] == JFR_MAGIC

    def parse(self, ctx: ParseContext) -> Iterator[tuple[str, pl.DataFrame]]:
        data = _load(ctx)
        version = sniff_version(bytes(data[:8]))
        try:
            rec = Recording(data, INGESTED_EVENTS, progress=ctx.progress)
        except UnsupportedVersion as exc:
            ctx.error(exc.position, "unsupported_version", exc.message, skipped_bytes=len(data))
            return
        except JfrFormatError as exc:
            ctx.error(exc.position, "bad_recording", exc.message, skipped_bytes=len(data))
            return
        for p in rec.problems:
            ctx.error(p.position, p.what, p.message, severity=p.severity, skipped_bytes=p.skipped_bytes)
        if not rec.chunks:
            if not rec.problems:
                ctx.error(0, "empty_recording", "no complete chunk in the recording", skipped_bytes=len(data))
            return
        h = rec.first
        if version and version[0] == 2:
            ctx.error(
                0,
                "recording",
                f"JFR {version[0]}.{version[1]}, {len(rec.chunks)} chunk(s), "
                f"start {dt.datetime.fromtimestamp(h.start_nanos / 1e9, dt.UTC):%Y-%m-%d %H:%M:%S} UTC",
                severity="info",
            )
        offset_ns = round(ctx.manifest.offset_ms("jfr") * 1e6)
        ex = _Extract(rec)
        # Batch by batch (one event type of one chunk, CHUNK_ROWS at most), so memory stays
        # bounded. Rows of one type come in file order; events are not time-ordered in a
        # recording: sort on start_ns to read them in time.
        for chunk in rec.chunks:
            for table, kind, parts in (
                ("monitor_waits", "waits", ex.monitor_waits(chunk)),
                ("thread_samples", "samples", ex.samples(chunk)),
                ("jvm_file_writes", "writes", ex.file_writes(chunk)),
            ):
                try:
                    for part in parts:  # at most CHUNK_ROWS events of one type
                        frame = _frames(rec, ex, [part], kind, offset_ns)
                        yield from _emit(frame, table, pl.Series("stacks", ex.stacks, dtype=STR_LIST))
                except Exception as exc:  # noqa: BLE001 - metadata that lies about a field's type
                    ctx.error(
                        chunk.header.offset,
                        "bad_events",
                        f"chunk {chunk.index + 1}: {table} events not readable "
                        f"({type(exc).__name__}: {str(exc)[:200]}); the rest of the chunk is kept",
                        severity="data_loss",
                    )
        try:
            yield from _emit(_threads_frame(rec, ex.threads(), offset_ns), "jfr_threads")
        except Exception as exc:  # noqa: BLE001
            ctx.error(
                0, "bad_events", f"threads not readable ({type(exc).__name__}: {str(exc)[:200]})", severity="data_loss"
            )
        for pos, msg, nbytes in ex.problems:
            ctx.error(pos, "bad_events", msg, severity="data_loss", skipped_bytes=nbytes)

    @classmethod
    def summarise(cls, tables: dict[str, pl.DataFrame]) -> list[tuple[str, pl.DataFrame]]:
        out = []
        mw = tables.get("monitor_waits")
        if mw is not None and mw.height:
            out.append(
                (
                    "longest waits",
                    mw.sort("duration_ms", descending=True)
                    .head(15)
                    .select("event_type", "start_at", "duration_ms", "tid", "thread_name", "monitor_class"),
                )
            )
        ts = tables.get("thread_samples")
        if ts is not None and ts.height:
            out.append(
                (
                    "samples by thread",
                    ts.group_by("tid", "thread_name").len("samples").sort("samples", descending=True).head(15),
                )
            )
        return out


# --------------------------------------------------------------------------- dump


def _render(rec: Recording, chunk: Chunk, t: TypeDesc, vals: list) -> dict:
    out: dict = {}
    for f, v in zip(t.fields, vals, strict=False):
        tname = chunk.types[f.type_id].name
        if f.name == "startTime":
            ns = rec.ticks_to_ns(v)
            out[f.name] = (
                dt.datetime.fromtimestamp(ns // 10**9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"
            )
        elif f.name == "duration":
            out["duration_ns"] = rec.span_to_ns(v)
        elif f.constant_pool and not f.array:
            if not v:
                out[f.name] = None
            elif tname == "java.lang.Thread":
                th = rec.thread(v, chunk)
                out[f.name] = (
                    None if th is None else f"{th.get('javaName') or th.get('osName')} (tid {th.get('osThreadId')})"
                )
            elif tname == "java.lang.Class":
                out[f.name] = rec.class_name(v, chunk)
            elif tname == "jdk.types.StackTrace":
                s = rec.stack(v, chunk, 3)
                out[f.name] = s
            elif chunk.types[f.type_id].simple:
                out[f.name] = rec.simple(tname, v, chunk)
            else:
                out[f.name] = f"#{v}"
        elif isinstance(v, tuple):
            out[f.name] = rec.string(v, chunk)
        elif tname == "long" and "MemoryAddress" in "".join(f.annotations):
            out[f.name] = f"0x{v & 0xFFFFFFFFFFFFFFFF:x}"
        else:
            out[f.name] = v
    return out


@dump_command
@click.command("jfr")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--events", "names", default=None, help="Comma-separated event type names to print, e.g. jdk.JavaMonitorEnter."
)
@click.option("--limit", default=0, show_default="no limit", help="Print at most this many events per type.")
def dump_jfr(file: Path, names: str | None, limit: int) -> None:
    """Chunks and event counts of a JFR recording; with --events, the events themselves (JSON lines)."""
    ctx = ParseContext(file, file.as_posix(), "dump")
    data = _load(ctx)
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else []
    try:
        rec = Recording(data, wanted, count_all=not wanted)
    except JfrFormatError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    if not wanted:
        for c in rec.chunks:
            h = c.header
            click.echo(
                f"chunk {c.index + 1} at {h.offset}: version {h.major}.{h.minor} size {h.size} "
                f"start {h.start_nanos} ns ticks {h.start_ticks} @ {h.ticks_per_second}/s "
                f"{'compressed' if h.compressed else 'uncompressed'} integers"
            )
        for name, n in sorted(rec.event_type_names().items(), key=lambda kv: (-kv[1], kv[0])):
            click.echo(f"{n:>10}  {name}")
    for name in wanted:
        rows = []
        for chunk, t, (starts, bodies, _sizes) in rec.events(name):
            dec = chunk.codec.decoder(t.id)
            for s, b in zip(starts.tolist(), bodies.tolist(), strict=True):
                row = {"type": name, "position": s, **_render(rec, chunk, t, dec(rec.buf, b)[0])}
                rows.append(row)
        rows.sort(key=lambda r: (r.get("startTime") or "", r["position"]))
        for r in rows[: limit or None]:
            click.echo(json.dumps(r, default=str))
    for p in rec.problems:
        click.echo(f"{p.severity}: {p.what} at byte {p.position}: {p.message}", err=True)
