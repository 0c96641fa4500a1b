"""Kernel trace ingest: eBPF/BCC/bpftrace text logs → ``fs_writes`` and ``kernel_calls``.

Formats, each recognised by its content, line by line (one file may mix them, as the BCC
example files do):

* ``seed_write`` / ``seed_call`` — the seed's extended ext4slower lines
  ``start end N ms tid bytes offset dir/file`` and ``start end N ms function``;
* ``fsslower`` / ``fsslower_csv`` — BCC ``ext4slower``, ``xfsslower``, ``btrfsslower``,
  ``zfsslower``, ``nfsslower`` (Python tools) and libbpf-tools ``fsslower``: default
  columns and the ``-j`` (``ENDTIME_us``) / ``-c`` (``ENDTIME_ns``) CSV modes;
* ``funcslower`` — BCC ``funcslower`` with or without ``-T``/``-t`` time columns, ``-a``
  arguments and stack lines under a row;
* ``kit`` — the bpftrace programs of ``collect/`` (tab-separated, self-anchoring);
* ``jsonl`` — one JSON object per event, for custom tools (keys in ``docs/ebpf.md``).

Every instant is anchored to UTC (see :class:`Clock`) and keeps its raw value and clock.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import polars as pl

from pipeline.manifest import Manifest
from pipeline.registry import ParseContext, Parser, Probe, dump_command, register
from pipeline.tables import F64, I32, I64, STR, STR_LIST, TIMESTAMP, declare

FS_WRITES = declare(
    "fs_writes",
    "One row per traced file-system operation (write, read, open, fsync, getattr) from kernel trace logs.",
    ("position", I64, "Line number in the log (1-based)."),
    ("operation", STR, "write | read | open | fsync | getattr."),
    ("start_at", TIMESTAMP, "Operation start (UTC, aligned); null when the log's clock cannot be anchored."),
    ("end_at", TIMESTAMP, "Operation end (UTC, aligned); null when the log's clock cannot be anchored."),
    ("latency_ms", F64, "Duration in milliseconds, as the tool measured it."),
    ("tid", I64, "Linux thread id; null when the tool prints only the process id (stock BCC tools)."),
    ("pid", I64, "Process id (thread group id) when printed."),
    ("comm", STR, "Thread command name (at most 15 characters; BCC text mode shows 14)."),
    ("bytes", I64, "Bytes written or read (the call's return value); null for open, fsync and getattr."),
    ("file_offset", I64, "File offset in bytes; BCC text mode prints KiB, so it is a multiple of 1024 there."),
    ("path", STR, "Path as printed: parent-dir/file, or the bare file name for stock BCC tools."),
    ("topic", STR, "Topic when the path is <topic>-<partition>/<20 digits>.log, else null."),
    ("partition", I32, "Partition, as above."),
    ("segment", STR, "Segment file name (20 digits + .log), as above."),
    ("fs", STR, "File system (ext4, xfs, btrfs, zfs, nfs, f2fs) when the log says."),
    ("source_format", STR, "Format the line was read as: seed_write, fsslower, fsslower_csv, kit, jsonl."),
    ("raw_start", STR, "Start time exactly as printed (null when not printed)."),
    ("raw_end", STR, "End time exactly as printed (null when not printed)."),
    ("clock", STR, "Clock of the raw values: time_of_day | monotonic | epoch | relative | none."),
)

KERNEL_CALLS = declare(
    "kernel_calls",
    "One row per traced kernel function call, journal commit window or off-CPU spell.",
    ("position", I64, "Line number in the log (1-based)."),
    (
        "func",
        STR,
        "Function or event: jbd2_journal_commit_transaction, ext4_dirty_inode, ext4_fc_commit, offcpu_write, ...",
    ),
    ("start_at", TIMESTAMP, "Call start (UTC, aligned); null when the log's clock cannot be anchored."),
    ("end_at", TIMESTAMP, "Call end (UTC, aligned); null when the log's clock cannot be anchored."),
    ("latency_ms", F64, "Duration in milliseconds, as the tool measured it."),
    ("tid", I64, "Linux thread id when printed (funcslower prints only the process id)."),
    ("pid", I64, "Process id (thread group id) when printed."),
    ("comm", STR, "Command name when printed."),
    ("detail", STR, "Further fields as printed: return value and arguments, commit details, device."),
    ("stack", STR_LIST, "Stack frames printed under the row, innermost first, without +offsets; else null."),
    ("source_format", STR, "Format the line was read as: seed_call, funcslower, kit, jsonl."),
    ("raw_start", STR, "Start time exactly as printed (null when not printed)."),
    ("raw_end", STR, "End time exactly as printed (null when not printed)."),
    ("clock", STR, "Clock of the raw values: time_of_day | monotonic | epoch | relative | none."),
)

CHUNK_ROWS = 50_000
US = 1_000_000
DAY_US = 86_400 * US

TOD = r"\d{1,2}:\d{2}:\d{2}(?:\.\d{1,9})?"
SEED_WRITE = re.compile(rf"^({TOD})\s+({TOD})\s+(\d+(?:\.\d+)?)\s*ms\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S.*?)\s*$")
SEED_CALL = re.compile(rf"^({TOD})\s+({TOD})\s+(\d+(?:\.\d+)?)\s*ms\s+([A-Za-z_][\w.:/@$-]*)\s*$")
FSS_BANNER = re.compile(r"^Tracing (\w+) operations")
FSS_HEADER = re.compile(r"^TIME\s+COMM\s+PID\s+T\s+BYTES\s+OFF_KB\s+LAT\(ms\)\s+FILENAME\s*$")
FSS_ROW = re.compile(
    r"^(\d{2}:\d{2}:\d{2}) (.+?)\s+(\d+)\s+([RWOSFG])\s+(\d+|LL_MAX)\s+(-?\d+)\s+(\d+\.\d+)(?: (.*))?$"
)
CSV_HEADER = re.compile(r"^ENDTIME_(us|ns),TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE\s*$")
CSV_ROW = re.compile(r"^(\d+),(.*?),(\d+),([RWOSFG]),(-?\d+|LL_MAX),(-?\d+),(\d+),(.*)$")
FUNC_BANNER = re.compile(r"^Tracing function calls slower than ([\d.]+) (ms|us)")
FUNC_HEADER = re.compile(r"^(TIME\s+)?COMM\s+PID\s+LAT\((ms|us)\)\s+RVAL\s+FUNC( ARGS)?\s*$")
FUNC_TIME = re.compile(r"^(\d{2}:\d{2}:\d{2}|\d+\.\d+)\s")
FUNC_REST = re.compile(r"^ (\d+)\s+(\d+\.\d+)\s+([0-9a-f]+) (\S+)(?: (.*))?$")
KIT_BANNER = re.compile(r"^# kforensics bpftrace (\S+) v(\d+)")
KIT_ANCHOR = re.compile(r"^# anchor nsecs=(\d+) wall=(\S+)\s*$")
KIT_COLUMNS = "# columns\t"
LOST = re.compile(r"(?:^|\s)(?:Possibly lost|Lost|lost) (\d+) (?:samples|events)")
TOOL_COMMAND = re.compile(r"^(?:[#$]\s+|\./)(?:.*?\s)?(?:\S*/)?(ext4|xfs|btrfs|zfs|nfs|f2fs)slower(?:\.py)?(?:\s|$)")
ROW_LIKE = re.compile(r"^(?:\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\s|\d+,|\d+\.\d+\s|\d+\t)")
ATTACHING = re.compile(r"^Attaching \d+ probes?\.\.\.$")
ELISION = re.compile(r"^(\[\.\.\.\]|\^C|\.\.\.)$")
STACK_OFFSET = re.compile(r"\+(?:0x[0-9a-fA-F]+|\d+)$")
SEGMENT_PATH = r"(?:^|/)([^/]+)-(\d+)/(\d{20}\.log)$"

# The kit's fs_writes.bt rows, read column-wise (the bulk of a bundle's kernel trace lines).
KIT_FS_COLUMNS = [
    "event", "start_ns", "end_ns", "tid", "pid", "comm", "bytes", "file_offset", "dev", "fs", "dir_len", "path",
]  # fmt: skip
# Integers of at most 18 digits fit a 64-bit column; longer ones take the line-by-line path.
KIT_FS_ROW = (
    r"^(?:write|fsync|read|open)\t\d{1,18}\t\d{1,18}\t\d{1,18}\t\d{1,18}\t[^\t]*\t(?:-|\d{1,18})\t(?:-|\d{1,18})"
    r"\t\d{1,18}\t[^\t]*\t\d{1,18}\t[^\t]*$"
)

OPERATIONS = {"R": "read", "W": "write", "O": "open", "S": "fsync", "F": "fsync", "G": "getattr"}
FS_EVENTS = {"write", "read", "open", "fsync", "getattr"}
FS_NAMES = {"ext4", "xfs", "btrfs", "zfs", "nfs", "f2fs"}

# Detection: any of these near the top marks a kernel trace log.
DETECT_PATTERNS = (SEED_WRITE, SEED_CALL, FSS_HEADER, CSV_HEADER, FUNC_BANNER, FUNC_HEADER, KIT_BANNER)
JSONL_TIME_KEYS = {"start_ns", "end_ns", "start_epoch_ns", "end_epoch_ns", "start", "end"}


def _tod_us(text: str) -> int:
    """``HH:MM:SS[.fraction]`` → microseconds since midnight (fraction truncated to µs)."""
    hms, _, frac = text.partition(".")
    h, m, s = hms.split(":")
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * US + (int((frac + "000000")[:6]) if frac else 0)


def _wall_to_epoch_ns(text: str) -> int:
    """An ISO-8601 wall time with offset (``2026-11-26T00:26:46.104547+0000``) → epoch ns."""
    t = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z") if "." in text else dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def _iso_to_epoch_us(text: str, tz: dt.tzinfo) -> int:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


@dataclass
class Clock:
    """Turns one file's raw time values into UTC epoch microseconds.

    * time of day: the manifest ``date`` (else the capture's date) is the local date of the
      file's first time-of-day value, in the manifest ``timezone`` (else UTC); a jump back
      by more than 12 h is a midnight rollover, and a jump forward by nearly a day just
      after one is an out-of-order line from before midnight;
    * monotonic (``bpf_ktime_get_ns``): plus the latest ``# anchor`` pair in the file, else
      the manifest ``boot_time_ns``;
    * then the manifest's ``clock_offsets_ms.ebpf`` is added to every instant.
    Values that cannot be anchored give ``None`` and are counted per reason.
    """

    date: dt.date | None = None
    date_source: str | None = None
    tz: dt.tzinfo | None = None
    boot_time_ns: int | None = None
    offset_us: int = 0
    anchor_ns: int | None = None  # epoch ns minus monotonic ns, from the file itself
    _day: int = 0
    _last_sod: int | None = None
    _utc_offsets: dict[tuple[int, int], int] = field(default_factory=dict)
    unanchored: dict[str, list[int]] = field(default_factory=dict)  # reason -> [count, first, last]

    @classmethod
    def for_context(cls, manifest: Manifest, hints: dict[str, Any]) -> Clock:
        date, source = manifest.date, "manifest date"
        if date is None and isinstance(hints.get("capture_date"), dt.date):
            date, source = hints["capture_date"], "capture date"
        return cls(
            date=date,
            date_source=source if date else None,
            tz=manifest.tz,
            boot_time_ns=manifest.boot_time_ns,
            offset_us=round(manifest.offset_ms("ebpf") * 1000),
        )

    def miss(self, reason: str, line: int, count: int = 1, last: int | None = None) -> None:
        slot = self.unanchored.setdefault(reason, [0, line, line])
        slot[0] += count
        slot[2] = line if last is None else last

    def _utc_offset_us(self, day: dt.date, sod_us: int) -> int:
        if self.tz is None:
            return 0
        key = (day.toordinal(), sod_us // (900 * US))
        off = self._utc_offsets.get(key)
        if off is None:
            local = dt.datetime.combine(day, dt.time()) + dt.timedelta(microseconds=sod_us)
            delta = local.replace(tzinfo=self.tz).utcoffset() or dt.timedelta(0)
            off = self._utc_offsets[key] = (delta.days * 86_400 + delta.seconds) * US + delta.microseconds
        return off

    def time_of_day(self, sod_us: int, line: int, *, advance: bool = True) -> int | None:
        """Epoch µs of a local time of day, following the file's day across midnight."""
        if self.date is None:
            self.miss(
                "time of day with no date (no manifest date, no capture in the bundle): set date (and timezone) in bundle.toml",
                line,
            )
            return None
        day = self._day
        if self._last_sod is not None:
            diff = sod_us - self._last_sod
            if diff < -DAY_US // 2:
                day += 1
            elif diff > DAY_US - 600 * US:
                day -= 1
        if advance:
            self._day, self._last_sod = day, sod_us
        local_day = self.date + dt.timedelta(days=day)
        epoch_day_us = (local_day.toordinal() - dt.date(1970, 1, 1).toordinal()) * DAY_US
        return epoch_day_us + sod_us - self._utc_offset_us(local_day, sod_us) + self.offset_us

    def end_after(self, start_us: int | None, start_sod: int, end_sod: int) -> int | None:
        """The end of an interval printed as two times of day: on the start's day or the next."""
        if start_us is None:
            return None
        diff = end_sod - start_sod
        if diff < -DAY_US // 2:
            diff += DAY_US
        return start_us + diff

    MONO_MISS = "boot-relative clock with no anchor line and no boot_time_ns: set boot_time_ns in bundle.toml"

    @property
    def mono_base_ns(self) -> int | None:
        return self.anchor_ns if self.anchor_ns is not None else self.boot_time_ns

    def monotonic(self, ns: int, line: int, *, count: bool = True) -> int | None:
        base = self.mono_base_ns
        if base is None:
            if count:
                self.miss(self.MONO_MISS, line)
            return None
        return _in_range((base + ns) // 1000 + self.offset_us)

    def epoch_ns(self, ns: int) -> int:
        return _in_range(ns // 1000 + self.offset_us)


# Instants a timestamp column holds: years 1 to 9999, in µs since the epoch.
_MIN_US, _MAX_US = -62_135_596_800_000_000, 253_402_300_800_000_000


def _in_range(us: int) -> int:
    if not _MIN_US <= us < _MAX_US:
        raise ValueError(f"instant {us} µs since the epoch is out of range")
    return us


class _Rows:
    """Column lists for one table, flushed to a frame every CHUNK_ROWS rows."""

    def __init__(self, table: str, columns: dict[str, pl.DataType]) -> None:
        self.table, self.columns = table, columns
        self.cols: dict[str, list[Any]] = {c: [] for c in columns}
        self.cut_positions: set[int] = set()  # rows whose directory name the tracer cut short
        bounds = {"I64": (-(1 << 63), (1 << 63) - 1), "I32": (-(1 << 31), (1 << 31) - 1)}
        self.int_columns = [
            (name, *bounds["I32" if dtype == I32 else "I64"])
            for name, dtype in columns.items()
            if dtype in (I64, I32, TIMESTAMP)
        ]

    def __len__(self) -> int:
        return len(self.cols["position"])

    def add(self, **values: Any) -> None:
        for name, lo, hi in self.int_columns:
            v = values.get(name)
            if v is not None and not lo <= v <= hi:
                raise ValueError(f"{name} {v} does not fit its column")
        for name, col in self.cols.items():
            col.append(values.get(name))

    def frame(self) -> pl.DataFrame:
        data: dict[str, pl.Series] = {}
        for name, dtype in self.columns.items():
            values = self.cols[name]
            if dtype == TIMESTAMP:
                data[name] = pl.Series(name, values, dtype=pl.Int64).cast(TIMESTAMP)
            elif dtype == STR_LIST:
                data[name] = pl.Series(name, [v or None for v in values], dtype=dtype)
            else:
                data[name] = pl.Series(name, values, dtype=dtype)
        self.cols = {c: [] for c in self.columns}
        out = pl.DataFrame(data)
        if self.table != "fs_writes":
            return out
        cut, self.cut_positions = self.cut_positions, set()
        return _with_segment_columns(out, pl.col("position").is_in(sorted(cut)) if cut else None)


def _with_segment_columns(frame: pl.DataFrame, cut: pl.Expr | None = None) -> pl.DataFrame:
    """Fill topic, partition and segment from paths ``<topic>-<partition>/<20 digits>.log``.

    Rows where ``cut`` is true had their directory name cut short by the tracer: a cut
    ``my-topic-15`` may read ``my-topic-1``, so they get no topic rather than a wrong one.
    """
    parts = pl.col("path").str.extract_groups(SEGMENT_PATH)
    # a partition number no int32 holds is no Kafka partition: the path is not a segment's
    partition = parts.struct.field("2").cast(I32, strict=False)
    fields = [
        pl.when(partition.is_not_null()).then(parts.struct.field("1")).alias("topic"),
        partition.alias("partition"),
        pl.when(partition.is_not_null()).then(parts.struct.field("3")).alias("segment"),
    ]
    if cut is not None:
        fields = [pl.when(cut).then(None).otherwise(f).alias(f.meta.output_name()) for f in fields]
    return frame.with_columns(fields)


def _int(text: str | None) -> int | None:
    if text is None or text in ("", "-"):
        return None
    return int(text)


def _frame_name(line: str) -> str:
    return STACK_OFFSET.sub("", line.strip())


class EbpfLogReader:
    """Reads one log, line by line, into fs_writes / kernel_calls rows and error records."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx
        self.clock = Clock.for_context(ctx.manifest, ctx.hints)
        self.tz = ctx.manifest.tz or dt.UTC
        self.fs = _Rows("fs_writes", FS_WRITES.parser_columns)
        self.calls = _Rows("kernel_calls", KERNEL_CALLS.parser_columns)
        # Context set by banners and headers.
        self.fs_name: str | None = None
        self.csv_unit: str | None = None
        self.func_unit: str | None = None
        self.func_time = False
        self.kit_columns: list[str] | None = None
        self.stack_target: list[str] | None = None  # stack of the last row that may carry one
        self.kit_fast = False  # the current kit columns are fs_writes.bt's: rows are read in bulk
        self.pending: list[tuple[int, str, int]] = []  # (line number, line, bytes) of such rows
        self.ready: list[tuple[str, pl.DataFrame]] = []  # frames built in bulk, to be yielded
        self.cut: list[int] = [0, 0, 0]  # rows with a directory name cut short: count, first, last line
        self.tod_rows = 0

    # -- errors -----------------------------------------------------------------------
    def note(self, line_no: int, what: str, message: str, severity: str = "info", skipped: int = 0) -> None:
        self.ctx.error(line_no, what, message, unit="line", severity=severity, skipped_bytes=skipped)

    # -- main loop --------------------------------------------------------------------
    def read(self) -> Iterator[tuple[str, pl.DataFrame]]:
        done = 0
        with self.ctx.open_text() as text:
            for line_no, raw in enumerate(text, start=1):
                nbytes = len(raw) if raw.isascii() else len(raw.encode("utf-8", errors="replace"))
                done += nbytes
                if line_no % 20_000 == 0:
                    self.ctx.progress(done)
                self.line(line_no, raw.rstrip("\r\n"), nbytes)
                if self.ready:
                    yield from self.ready
                    self.ready.clear()
                for rows in (self.fs, self.calls):
                    if len(rows) >= CHUNK_ROWS and self.stack_target is None:
                        yield rows.table, rows.frame()
        self.ctx.progress(done)
        self.flush_kit()
        yield from self.ready
        self.ready.clear()
        for rows in (self.fs, self.calls):
            if len(rows):
                yield rows.table, rows.frame()
        self.finish()

    def finish(self) -> None:
        for reason, (count, first, last) in self.clock.unanchored.items():
            self.note(
                first,
                "unanchored",
                f"{count} rows (lines {first}..{last}) kept with null instants: {reason}",
                severity="error",
            )
        if self.cut[0]:
            count, first, last = self.cut
            self.note(
                first,
                "truncated_path",
                f"{count} rows (lines {first}..{last}) name a directory longer than the tracer printed "
                "(bpftrace strings hold 63 bytes): topic, partition and segment left null",
                severity="error",
            )
        if self.tod_rows and self.clock.date is not None:
            zone = self.ctx.manifest.timezone or "UTC (no timezone in bundle.toml)"
            self.note(
                None,
                "clock",
                f"{self.tod_rows} time-of-day rows anchored on the {self.clock.date_source} "
                f"{self.clock.date.isoformat()} in {zone}",
            )

    def line(self, no: int, line: str, nbytes: int) -> None:
        try:
            self._line(no, line, nbytes)
        except (ValueError, OverflowError) as exc:  # numbers no column can hold
            self.note(no, "bad_row", f"row not understood ({exc}): {line[:200]!r}", "error", nbytes)

    def _line(self, no: int, line: str, nbytes: int) -> None:
        if not line.strip():
            return
        if self.kit_fast and line[0] not in " \t#" and "\t" in line:
            self.pending.append((no, line, nbytes))
            if len(self.pending) >= CHUNK_ROWS:
                self.flush_kit()
            return
        if self.pending:
            self.flush_kit()
        if line[0] in " \t" and self.stack_target is not None:
            self.stack_target.append(_frame_name(line))
            return
        self.stack_target = None
        if line.startswith("#"):
            self.comment(no, line, nbytes)
            return
        if self.kit_columns is not None and "\t" in line:
            self.kit_row(no, line, nbytes)
            return
        if line.startswith("{"):
            self.json_row(no, line, nbytes)
            return
        if m := SEED_WRITE.match(line):
            self.seed_write(no, m)
            return
        if m := SEED_CALL.match(line):
            self.seed_call(no, m)
            return
        if self.func_unit is not None and self.funcslower_row(no, line):
            return
        if m := FSS_ROW.match(line):
            self.fsslower_row(no, m)
            return
        if m := CSV_ROW.match(line):
            self.csv_row(no, m, nbytes)
            return
        self.other(no, line, nbytes)

    # -- context lines ----------------------------------------------------------------
    def comment(self, no: int, line: str, nbytes: int) -> None:
        if KIT_BANNER.match(line):
            self.kit_columns = None
            self.kit_fast = False
            self.note(no, "banner", line)
        elif m := KIT_ANCHOR.match(line):
            try:
                wall = _wall_to_epoch_ns(m.group(2))
            except ValueError:
                self.note(no, "bad_anchor", f"anchor wall time not understood: {m.group(2)!r}", "error", nbytes)
                return
            self.clock.anchor_ns = wall - int(m.group(1))
            self.note(no, "anchor", f"monotonic {m.group(1)} ns = {m.group(2)}")
        elif line.startswith(KIT_COLUMNS):
            self.kit_columns = line.split("\t")[1:]
            self.kit_fast = self.kit_columns == KIT_FS_COLUMNS
            self.note(no, "header", line.replace("\t", " "))
        elif m := TOOL_COMMAND.match(line):
            self.fs_name = m.group(1)
            self.note(no, "command", line)
        else:
            self.note(no, "text", line[:200], skipped=nbytes)

    def other(self, no: int, line: str, nbytes: int) -> None:
        s = line.strip()
        if m := LOST.search(s):
            self.note(no, "lost_events", f"the tracer lost {m.group(1)} events: {s}", "data_loss", nbytes)
        elif m := FSS_BANNER.match(s):
            name = m.group(1).lower()
            self.fs_name = name if name in FS_NAMES else None
            self.func_unit = None
            self.note(no, "banner", s)
        elif FSS_HEADER.match(s):
            self.func_unit = None
            self.note(no, "header", s)
        elif m := CSV_HEADER.match(s):
            self.csv_unit = m.group(1)
            self.func_unit = None
            self.note(no, "header", s)
        elif m := FUNC_BANNER.match(s):
            self.func_unit = m.group(2)
            self.note(no, "banner", s)
        elif m := FUNC_HEADER.match(line):
            self.func_unit = m.group(2)
            self.func_time = m.group(1) is not None
            self.note(no, "header", s)
        elif ATTACHING.match(s) or ELISION.match(s):
            self.note(no, "banner", s)
        elif m := TOOL_COMMAND.match(s):
            self.fs_name = m.group(1)
            self.note(no, "command", s[:200])
        elif ROW_LIKE.match(s):
            self.note(no, "bad_row", f"looks like a row but no format matches: {s[:200]!r}", "error", nbytes)
        else:
            self.note(no, "text", s[:200], skipped=nbytes)

    # -- formats ----------------------------------------------------------------------
    def seed_write(self, no: int, m: re.Match[str]) -> None:
        raw_start, raw_end = m.group(1), m.group(2)
        s_sod, e_sod = _tod_us(raw_start), _tod_us(raw_end)
        start = self.clock.time_of_day(s_sod, no)
        self.tod_rows += 1
        self.fs.add(
            position=no,
            operation="write",
            start_at=start,
            end_at=self.clock.end_after(start, s_sod, e_sod),
            latency_ms=float(m.group(3)),
            tid=int(m.group(4)),
            bytes=int(m.group(5)),
            file_offset=int(m.group(6)),
            path=m.group(7),
            fs="ext4",
            source_format="seed_write",
            raw_start=raw_start,
            raw_end=raw_end,
            clock="time_of_day",
        )

    def seed_call(self, no: int, m: re.Match[str]) -> None:
        raw_start, raw_end = m.group(1), m.group(2)
        s_sod, e_sod = _tod_us(raw_start), _tod_us(raw_end)
        start = self.clock.time_of_day(s_sod, no)
        self.tod_rows += 1
        self.calls.add(
            position=no,
            func=m.group(4),
            start_at=start,
            end_at=self.clock.end_after(start, s_sod, e_sod),
            latency_ms=float(m.group(3)),
            source_format="seed_call",
            raw_start=raw_start,
            raw_end=raw_end,
            clock="time_of_day",
        )

    def fsslower_row(self, no: int, m: re.Match[str]) -> None:
        raw_end = m.group(1)
        end = self.clock.time_of_day(_tod_us(raw_end), no)
        self.tod_rows += 1
        latency = float(m.group(7))
        op = OPERATIONS[m.group(4)]
        size = m.group(5)
        self.fs.add(
            position=no,
            operation=op,
            start_at=None if end is None else end - round(latency * 1000),
            end_at=end,
            latency_ms=latency,
            pid=int(m.group(3)),
            comm=m.group(2).strip(),
            bytes=None if size == "LL_MAX" or op in ("open", "fsync", "getattr") else int(size),
            file_offset=int(m.group(6)) * 1024,
            path=m.group(8) or "",
            fs=self.fs_name,
            source_format="fsslower",
            raw_end=raw_end,
            clock="time_of_day",
        )

    def csv_row(self, no: int, m: re.Match[str], nbytes: int) -> None:
        if self.csv_unit is None:
            self.note(no, "bad_row", "CSV row before any ENDTIME_us/ENDTIME_ns header: unit unknown", "error", nbytes)
            return
        raw_end = m.group(1)
        end_ns = int(raw_end) * (1000 if self.csv_unit == "us" else 1)
        end = self.clock.monotonic(end_ns, no)
        latency_us = int(m.group(7))
        op = OPERATIONS[m.group(4)]
        size = m.group(5)
        self.fs.add(
            position=no,
            operation=op,
            start_at=None if end is None else end - latency_us,
            end_at=end,
            latency_ms=latency_us / 1000,
            pid=int(m.group(3)),
            comm=m.group(2),
            bytes=None if size == "LL_MAX" or op in ("open", "fsync", "getattr") else int(size),
            file_offset=int(m.group(6)),
            path=m.group(8),
            fs=self.fs_name,
            source_format="fsslower_csv",
            raw_end=raw_end,
            clock="monotonic",
        )

    def funcslower_row(self, no: int, line: str) -> bool:
        raw_time = None
        rest = line
        if self.func_time:
            t = FUNC_TIME.match(line)
            if t is None:
                return False
            raw_time = t.group(1)
            rest = line[max(10, len(raw_time)) :]
        comm, tail = rest[1:15] if self.func_time else rest[:14], rest[15:] if self.func_time else rest[14:]
        m = FUNC_REST.match(tail)
        if m is None:
            return False
        latency = float(m.group(2)) / (1000 if self.func_unit == "us" else 1)
        start = end = None
        clock = "none"
        if raw_time is None:
            self.clock.miss("funcslower without -T prints no time: run it with -T", no)
        elif ":" in raw_time:
            clock = "time_of_day"
            self.tod_rows += 1
            end = self.clock.time_of_day(_tod_us(raw_time), no)
            start = None if end is None else end - round(latency * 1000)
        else:
            clock = "relative"
            self.clock.miss(
                "funcslower -t prints seconds since its first event, which cannot be anchored: run it with -T", no
            )
        detail = f"rval={m.group(3)}" + (f" args={m.group(5).strip()}" if m.group(5) and m.group(5).strip() else "")
        stack: list[str] = []
        self.calls.add(
            position=no,
            func=m.group(4),
            start_at=start,
            end_at=end,
            latency_ms=latency,
            pid=int(m.group(1)),
            comm=comm.strip(),
            detail=detail,
            stack=stack,
            source_format="funcslower",
            raw_start=raw_time if clock == "relative" else None,
            raw_end=raw_time if clock == "time_of_day" else None,
            clock=clock,
        )
        self.stack_target = stack
        return True

    def cut_count(self, first: int, last: int, count: int) -> None:
        if not self.cut[0]:
            self.cut[1] = first
        self.cut[0] += count
        self.cut[2] = last

    def flush_kit(self) -> None:
        """Turn the pending fs_writes.bt rows into one frame, column-wise; odd rows go one by one."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        lines = pl.DataFrame(
            {"position": [p[0] for p in pending], "line": [p[1] for p in pending]},
            schema={"position": I64, "line": STR},
        )
        plain = lines["line"].str.contains(KIT_FS_ROW)
        if not plain.all():
            for i in (~plain).arg_true().to_list():
                self.kit_row(*pending[i])
            lines = lines.filter(plain)
        if lines.height == 0:
            return
        f = lines.with_columns(
            pl.col("line").str.split_exact("\t", len(KIT_FS_COLUMNS) - 1).struct.rename_fields(KIT_FS_COLUMNS)
        ).unnest("line")
        base = self.clock.mono_base_ns
        if base is None:
            self.clock.miss(self.clock.MONO_MISS, f["position"][0], f.height, f["position"][-1])

        def instant(col: str) -> pl.Expr:
            if base is None:
                return pl.lit(None, dtype=TIMESTAMP)
            return ((pl.col(col).cast(I64) + base) // 1000 + self.clock.offset_us).cast(TIMESTAMP)

        out = f.select(
            pl.col("position"),
            pl.col("event").alias("operation"),
            instant("start_ns").alias("start_at"),
            instant("end_ns").alias("end_at"),
            (pl.col("end_ns").cast(I64) - pl.col("start_ns").cast(I64)).alias("latency_ms"),  # ns for now
            pl.col("tid").cast(I64),
            pl.col("pid").cast(I64),
            pl.col("comm"),
            pl.col("bytes").cast(I64, strict=False),
            pl.col("file_offset").cast(I64, strict=False),
            pl.col("path"),
            pl.lit(None, dtype=STR).alias("topic"),
            pl.lit(None, dtype=I32).alias("partition"),
            pl.lit(None, dtype=STR).alias("segment"),
            pl.when(pl.col("fs") == "").then(pl.lit(self.fs_name, dtype=STR)).otherwise(pl.col("fs")).alias("fs"),
            pl.lit("kit").alias("source_format"),
            pl.col("start_ns").alias("raw_start"),
            pl.col("end_ns").alias("raw_end"),
            pl.lit("monotonic").alias("clock"),
        )
        # ns -> ms with numpy's correctly rounded division, as the line-by-line path does
        latency = pl.Series("latency_ms", out["latency_ms"].to_numpy() / 1e6, dtype=F64)
        cut = pl.Series(
            "cut", f["path"].str.extract(r"^(.*)/", 1).str.len_bytes().fill_null(0) < f["dir_len"].cast(I64)
        )
        if cut.any():
            positions = f["position"].filter(cut)
            self.cut_count(positions[0], positions[-1], positions.len())
        out = out.with_columns(latency, cut)
        self.ready.append(("fs_writes", _with_segment_columns(out, pl.col("cut")).drop("cut")))

    def kit_row(self, no: int, line: str, nbytes: int) -> None:
        cols = self.kit_columns or []
        values = line.split("\t")
        if len(values) < len(cols):
            self.note(no, "bad_row", f"{len(values)} fields, {len(cols)} columns: {line[:200]!r}", "error", nbytes)
            return
        if len(values) > len(cols):  # a tab inside the last field (a path)
            values = values[: len(cols) - 1] + ["\t".join(values[len(cols) - 1 :])]
        rec = dict(zip(cols, values, strict=True))
        try:
            start_ns, end_ns = int(rec["start_ns"]), int(rec["end_ns"])
            self.add_event(
                no,
                event=rec["event"],
                start=self.clock.monotonic(start_ns, no),
                end=self.clock.monotonic(end_ns, no, count=False),
                latency_ms=(end_ns - start_ns) / 1e6,
                rec=rec,
                source="kit",
                raw_start=rec["start_ns"],
                raw_end=rec["end_ns"],
                clock="monotonic",
            )
        except (KeyError, ValueError) as exc:
            self.note(no, "bad_row", f"kit row not understood ({exc}): {line[:200]!r}", "error", nbytes)

    def json_row(self, no: int, line: str, nbytes: int) -> None:
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
            if "anchor" in rec:
                a = rec["anchor"]
                epoch = int(a["epoch_ns"]) if "epoch_ns" in a else _wall_to_epoch_ns(a["wall"])
                self.clock.anchor_ns = epoch - int(a["nsecs"])
                self.note(no, "anchor", f"monotonic {a['nsecs']} ns = epoch {epoch} ns")
                return
            event = rec["event"]
            start = end = None
            raw_start = raw_end = None
            span_us = None  # end - start in µs, known even when the clock is not anchored
            clock = "none"
            if "start_ns" in rec or "end_ns" in rec or "start_epoch_ns" in rec or "end_epoch_ns" in rec:
                mono = "start_ns" in rec or "end_ns" in rec
                clock = "monotonic" if mono else "epoch"
                raw_start = rec.get("start_ns" if mono else "start_epoch_ns")
                raw_end = rec.get("end_ns" if mono else "end_epoch_ns")
                s_ns = None if raw_start is None else int(raw_start)
                e_ns = None if raw_end is None else int(raw_end)
                if mono:
                    start = None if s_ns is None else self.clock.monotonic(s_ns, no)
                    end = None if e_ns is None else self.clock.monotonic(e_ns, no, count=s_ns is None)
                else:
                    start = None if s_ns is None else self.clock.epoch_ns(s_ns)
                    end = None if e_ns is None else self.clock.epoch_ns(e_ns)
                if s_ns is not None and e_ns is not None:
                    span_us = (e_ns - s_ns) / 1000
            elif "start" in rec or "end" in rec:
                clock = "epoch"
                raw_start, raw_end = rec.get("start"), rec.get("end")
                off = self.clock.offset_us
                start = None if raw_start is None else _iso_to_epoch_us(raw_start, self.tz) + off
                end = None if raw_end is None else _iso_to_epoch_us(raw_end, self.tz) + off
                if start is not None and end is not None:
                    span_us = end - start
            else:
                self.clock.miss("JSON event without start/end keys", no)
            latency = None
            for key, div in (("latency_ms", 1), ("latency_us", 1e3), ("latency_ns", 1e6)):
                if rec.get(key) is not None:
                    latency = float(rec[key]) / div
                    break
            if latency is None and span_us is not None:
                latency = span_us / 1000
            if latency is not None:
                if start is None and end is not None and raw_start is None:
                    start = end - round(latency * 1000)
                elif end is None and start is not None and raw_end is None:
                    end = start + round(latency * 1000)
            self.add_event(
                no,
                event=str(event),
                start=start,
                end=end,
                latency_ms=latency,
                rec=rec,
                source="jsonl",
                raw_start=None if raw_start is None else str(raw_start),
                raw_end=None if raw_end is None else str(raw_end),
                clock=clock,
            )
        except (ValueError, KeyError, TypeError) as exc:
            self.note(no, "bad_row", f"JSON event not understood ({exc}): {line[:200]!r}", "error", nbytes)

    def add_event(self, no: int, *, event: str, start, end, latency_ms, rec: dict, source: str, **raw: Any) -> None:
        def num(key: str) -> int | None:
            v = rec.get(key)
            return None if v is None else _int(str(v))

        if event in FS_EVENTS:
            size = num("bytes")
            dir_len = num("dir_len")
            path = rec.get("path")
            if dir_len is not None and path is not None and len(path.rpartition("/")[0].encode()) < dir_len:
                self.fs.cut_positions.add(no)
                self.cut_count(no, no, 1)
            self.fs.add(
                position=no,
                operation=event,
                start_at=start,
                end_at=end,
                latency_ms=latency_ms,
                tid=num("tid"),
                pid=num("pid"),
                comm=rec.get("comm"),
                bytes=size if size is None or size >= 0 else None,
                file_offset=num("file_offset"),
                path=rec.get("path"),
                fs=rec.get("fs") or self.fs_name,
                source_format=source,
                **raw,
            )
            if size is not None and size < 0:
                self.note(no, "failed_call", f"{event} returned {size} (-errno); bytes left null")
            return
        stack = rec.get("stack")
        if isinstance(stack, list):
            stack = [str(s) for s in stack]
        elif source == "kit":
            stack = []
        detail = rec.get("detail")
        detail = None if detail in (None, "", "-") else str(detail)
        if rec.get("dev") not in (None, "", "-"):
            detail = f"dev={rec['dev']}" + (f" {detail}" if detail else "")
        self.calls.add(
            position=no,
            func=event,
            start_at=start,
            end_at=end,
            latency_ms=latency_ms,
            tid=num("tid"),
            pid=num("pid"),
            comm=rec.get("comm"),
            detail=detail,
            stack=stack,
            source_format=source,
            **raw,
        )
        if isinstance(stack, list) and source == "kit":
            self.stack_target = stack


@register
class EbpfLogParser(Parser):
    kind = "ebpf"
    tables = ("fs_writes", "kernel_calls")
    version = "2"
    priority = 50

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        if b"\x00" in probe.head[:4096]:
            return False
        for line in probe.text_lines(400):
            s = line.strip()
            if not s:
                continue
            if any(p.match(s) for p in DETECT_PATTERNS):
                return True
            if s.startswith("{") and s.endswith("}"):
                try:
                    rec = json.loads(s)
                except ValueError:
                    return False
                return isinstance(rec, dict) and (
                    ("event" in rec and bool(JSONL_TIME_KEYS & rec.keys()))
                    or (isinstance(rec.get("anchor"), dict) and "nsecs" in rec["anchor"])
                )
        return False

    def parse(self, ctx: ParseContext) -> Iterator[tuple[str, pl.DataFrame]]:
        yield from EbpfLogReader(ctx).read()

    @classmethod
    def summarise(cls, tables: dict[str, pl.DataFrame]) -> list[tuple[str, pl.DataFrame]]:
        out = []
        fs = tables.get("fs_writes")
        if fs is not None and fs.height:
            out.append(
                (
                    "file-system operations",
                    fs.group_by("source_format", "operation", "fs")
                    .agg(
                        pl.len().alias("rows"),
                        pl.col("path").n_unique().alias("files"),
                        pl.col("topic").drop_nulls().n_unique().alias("topics"),
                        pl.col("latency_ms").quantile(0.5).alias("p50_ms"),
                        pl.col("latency_ms").quantile(0.99).alias("p99_ms"),
                        pl.col("latency_ms").max().alias("max_ms"),
                        pl.col("start_at").min().alias("first_at"),
                        pl.col("end_at").max().alias("last_at"),
                    )
                    .sort("rows", descending=True),
                )
            )
        calls = tables.get("kernel_calls")
        if calls is not None and calls.height:
            out.append(
                (
                    "kernel calls",
                    calls.group_by("source_format", "func")
                    .agg(
                        pl.len().alias("rows"),
                        pl.col("latency_ms").quantile(0.5).alias("p50_ms"),
                        pl.col("latency_ms").max().alias("max_ms"),
                        pl.col("start_at").min().alias("first_at"),
                        pl.col("end_at").max().alias("last_at"),
                    )
                    .sort("rows", descending=True),
                )
            )
        return out


# -- kforensics dump ebpf ----------------------------------------------------------------


def _seed_time(t: dt.datetime | None, tz: dt.tzinfo | None) -> str:
    if t is None:
        return "?" * 12
    if tz is not None:
        t = t.replace(tzinfo=dt.UTC).astimezone(tz)
    return t.strftime("%H:%M:%S.%f")[:12]


def seed_lines(fs: pl.DataFrame, calls: pl.DataFrame, tz: dt.tzinfo | None = None) -> list[str]:
    """Rows in the seed write-up's layout, ordered by start time."""
    rows: list[tuple[Any, int, str]] = []
    for r in fs.iter_rows(named=True):
        lat = "?" if r["latency_ms"] is None else f"{int(r['latency_ms'])} ms"
        who = r["tid"] if r["tid"] is not None else r["pid"]
        text = (
            f"{_seed_time(r['start_at'], tz)}  {_seed_time(r['end_at'], tz)}  {lat:<8} "
            f"{who if who is not None else '-':<5} {r['bytes'] if r['bytes'] is not None else '-':<6} "
            f"{r['file_offset'] if r['file_offset'] is not None else '-':<10} {r['path']}"
            + ("" if r["operation"] == "write" else f"  ({r['operation']})")
        )
        rows.append((r["start_at"], r["position"], text))
    for r in calls.iter_rows(named=True):
        lat = "?" if r["latency_ms"] is None else f"{int(r['latency_ms'])} ms"
        who = f"  tid {r['tid']}" if r["tid"] is not None else ""
        text = f"{_seed_time(r['start_at'], tz)}  {_seed_time(r['end_at'], tz)}  {lat:<8} {r['func']}{who}"
        rows.append((r["start_at"], r["position"], text))
    rows.sort(key=lambda x: (x[0] is None, x[0] or dt.datetime.min, x[1]))
    return [t for _, _, t in rows]


@dump_command
@click.command("ebpf")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--date", "date_", type=click.DateTime(["%Y-%m-%d"]), help="Local date of the first time-of-day line.")
@click.option("--timezone", "timezone", help="IANA zone of time-of-day lines (default UTC).")
@click.option("--boot-time-ns", type=int, help="Epoch ns at boot, for boot-relative clocks without an anchor.")
@click.option("--offset-ms", type=float, default=0.0, show_default=True, help="Added to every instant.")
@click.option("--show-tz", help="Print times in this IANA zone instead of UTC.")
def dump_ebpf(
    file: Path,
    date_: dt.datetime | None,
    timezone: str | None,
    boot_time_ns: int | None,
    offset_ms: float,
    show_tz: str | None,
) -> None:
    """Print FILE's kernel trace rows in the seed's layout (start end latency tid bytes offset path)."""
    try:
        tz_out = zoneinfo.ZoneInfo(show_tz) if show_tz else None
        manifest = Manifest(
            timezone=timezone,
            date=date_.date() if date_ else None,
            boot_time_ns=boot_time_ns,
            clock_offsets_ms={"ebpf": offset_ms},
        )
        manifest.tz  # noqa: B018 - validates the zone name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    ctx = ParseContext(file, file.as_posix(), "dump", manifest=manifest)
    frames: dict[str, list[pl.DataFrame]] = {"fs_writes": [], "kernel_calls": []}
    for table, frame in EbpfLogParser().parse(ctx):
        frames[table].append(frame)
    fs = pl.concat(frames["fs_writes"]) if frames["fs_writes"] else pl.DataFrame(schema=FS_WRITES.parser_columns)
    calls = (
        pl.concat(frames["kernel_calls"])
        if frames["kernel_calls"]
        else pl.DataFrame(schema=KERNEL_CALLS.parser_columns)
    )
    for text in seed_lines(fs, calls, tz_out):
        click.echo(text)
    problems = [e for e in ctx.errors if e.severity != "info"]
    for e in problems[:20]:
        click.echo(f"line {e.position}: {e.severity} {e.what}: {e.message}", err=True)
    if len(problems) > 20:
        click.echo(f"... {len(problems) - 20} more", err=True)
