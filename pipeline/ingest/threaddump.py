"""Thread dump ingest: jstack / jcmd Thread.print / kill -3 output / JSON dumps → ``jvm_threads``.

Text dumps from JDK 5 to 25: ``jstack``, ``jstack -l`` (ownable synchronizers), ``jcmd
<pid> Thread.print``, and dumps a JVM printed into its stdout log on SIGQUIT, with other
log lines around them; several dumps per file, each timed by the ``YYYY-MM-DD HH:MM:SS``
line printed just before ``Full thread dump``. ``nid`` is hexadecimal up to JDK 17 and
decimal from JDK 18; both decode to the Linux TID. JSON dumps (``jcmd <pid>
Thread.dump_to_file -format=json``) carry Java thread ids only. UTF-16 files (with a BOM)
are read as text.

The timestamp line is the JVM host's local time: converted from the manifest's
``timezone`` when given, else taken as UTC (an info row says so); ``[clock_offsets_ms]
threaddump`` is then added.
"""

from __future__ import annotations

import gzip
import itertools
import json
import mmap
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import polars as pl

from pipeline.registry import ParseContext, Parser, Probe, decode_text, dump_command, register
from pipeline.tables import BOOL, F64, I32, I64, STR, STR_LIST, TIMESTAMP, declare

JVM_THREADS = declare(
    "jvm_threads",
    "One row per thread per thread dump.",
    ("position", I64, "Line number (1-based) of the thread's header line; JSON: line of its entry."),
    ("dump_at", TIMESTAMP, "Time of the dump when printed (UTC, shifted by clock_offsets_ms.threaddump), else null."),
    ("dump_local", STR, "The dump's timestamp exactly as printed (JVM host local time)."),
    ("dump_index", I32, "0-based index of the dump within the file."),
    ("name", STR, "Thread name."),
    ("java_thread_id", I64, "Java thread number (#N, or id=N) when printed."),
    ("nid", STR, "Native id exactly as printed (0x1184 or 4484)."),
    ("tid", I64, "Linux TID decoded from nid (hex with 0x, else decimal)."),
    ("state", STR, "java.lang.Thread.State (BLOCKED, RUNNABLE...), else the header's state text."),
    ("state_detail", STR, "Detail of the state line, e.g. 'on object monitor', 'parking'."),
    ("header_state", STR, "State text of the header line, e.g. 'waiting for monitor entry'."),
    ("daemon", BOOL, "Daemon thread."),
    ("virtual", BOOL, "Virtual thread (JDK 21+ dumps that list them)."),
    ("prio", I32, "Java priority."),
    ("os_prio", I32, "OS priority."),
    ("cpu_ms", F64, "CPU time in ms when printed (JDK 11+)."),
    ("elapsed_s", F64, "Elapsed seconds since the thread started, when printed (JDK 11+)."),
    ("waiting_to_lock", STR, "Monitor (object address 0x%016x) the thread waits to enter."),
    ("waiting_on", STR, "Object the thread waits on (Object.wait) or parks for (parking to wait for)."),
    ("locked", STR_LIST, "Monitors the thread holds (object addresses), innermost first."),
    ("ownable_synchronizers", STR_LIST, "Locked ownable synchronizers (jstack -l), addresses."),
    ("in_deadlock", BOOL, "Listed in a 'Found one Java-level deadlock' section of its dump."),
    ("stack", STR_LIST, "Stack frames, top first, without the leading 'at '."),
)

_DUMP_START = re.compile(rb"^Full thread dump ", re.M)
_JSON_KEY = re.compile(rb'"threadDump"\s*:')
_THREAD_LINE = re.compile(rb'^"[^\n]*" (?:#\d+ )?[^\n]*(?:prio=|nid=)', re.M)

_TS = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)\s*$")
_HEADER = re.compile(r'^"(?P<name>.*)"(?P<rest>(?:\s.*)?)$')
_NAMELESS = re.compile(r"^(?P<rest>os_prio=-?\d+ .*nid=.*)$")
_JID = re.compile(r"(?:^|\s)#(\d+)(?:\s|$)")
_ID_OLD = re.compile(r"(?:^|\s)id=(\d+)(?:\s|$)")
_PRIO = re.compile(r"(?:^|\s)prio=(-?\d+)")
_OS_PRIO = re.compile(r"os_prio=(-?\d+)")
_CPU = re.compile(r"cpu=(\d+(?:\.\d+)?)ms")
_ELAPSED = re.compile(r"elapsed=(\d+(?:\.\d+)?)s")
_NID = re.compile(r"nid=(0x[0-9a-fA-F]+|\d+)(?P<after>.*)$")
_OLD_STATE = re.compile(r"(?:^|\s)in (\w+)")
_STATE = re.compile(r"^\s+java\.lang\.Thread\.State: (\w+)(?: \((.*)\))?")
_AT = re.compile(r"^\s+at (.*)$")
_LOCK = re.compile(
    r"^\s+- (?P<kind>waiting to lock|locked|waiting on|parking to wait for|waiting to re-lock in wait\(\))\s+<(?P<addr>0x[0-9a-fA-F]+)>"
)
_OWNABLE_HEAD = re.compile(r"^\s+Locked ownable synchronizers:")
_OWNABLE = re.compile(r"^\s+- <(0x[0-9a-fA-F]+)>")
_DEADLOCK_THREAD = re.compile(r'^"(.*)":$')


def norm_addr(text: str) -> str:
    """``0x69e8f1234`` → ``0x000000069e8f1234`` (the form used by monitor_waits too)."""
    return f"0x{int(text, 16):016x}"


def nid_to_tid(nid: str | None) -> int | None:
    if not nid:
        return None
    return int(nid, 16) if nid.lower().startswith("0x") else int(nid)


# A JVM's deepest real stacks (a StackOverflowError) hold some 10k-60k frames; past this a
# thread's frames are counted, not kept, so one absurd stack cannot exhaust memory.
MAX_STACK_FRAMES = 100_000


@dataclass
class _Thread:
    position: int
    dump_index: int
    name: str
    rest: str
    java_thread_id: int | None = None
    nid: str | None = None
    state: str | None = None
    state_detail: str | None = None
    header_state: str | None = None
    daemon: bool = False
    virtual: bool = False
    prio: int | None = None
    os_prio: int | None = None
    cpu_ms: float | None = None
    elapsed_s: float | None = None
    waiting_to_lock: str | None = None
    waiting_on: str | None = None
    locked: list[str] = field(default_factory=list)
    ownable_synchronizers: list[str] = field(default_factory=list)
    stack: list[str] = field(default_factory=list)
    frames_dropped: int = 0  # frames beyond MAX_STACK_FRAMES
    in_ownable: bool = False

    def parse_header(self) -> None:
        r = self.rest
        if m := _JID.search(r):
            self.java_thread_id = int(m.group(1))
        elif m := _ID_OLD.search(r):
            self.java_thread_id = int(m.group(1))
        padded = f" {r} "
        self.daemon = " daemon " in padded
        self.virtual = " virtual " in padded
        if m := _PRIO.search(r):
            self.prio = int(m.group(1))
        if m := _OS_PRIO.search(r):
            self.os_prio = int(m.group(1))
        if m := _CPU.search(r):
            self.cpu_ms = float(m.group(1))
        if m := _ELAPSED.search(r):
            self.elapsed_s = float(m.group(1))
        if m := _NID.search(r):
            self.nid = m.group(1)
            after = re.sub(r"\[0x[0-9a-fA-F]+\]\s*$", "", m.group("after")).strip()
            self.header_state = after or None
        elif m := _OLD_STATE.search(r):
            self.header_state = m.group(1)


@dataclass
class _Dump:
    index: int
    line: int
    local: str | None  # timestamp as printed
    threads: list[_Thread] = field(default_factory=list)
    deadlocked: set[str] = field(default_factory=set)


def _is_json(head: bytes) -> bool:
    text = head.lstrip()
    return text.startswith(b"{") and b'"threadDump"' in head


class _TextParser:
    """Line-by-line state machine over one text file (any number of dumps). A dump is
    complete when the next one starts (or at the end, :meth:`finish`); complete dumps wait
    in ``done`` until taken, so only the current one stays in memory."""

    def __init__(self):
        self.done: list[_Dump] = []
        self.count = 0  # dumps started
        self.cur: _Dump | None = None
        self.thread: _Thread | None = None
        self.last_ts: tuple[int, str] | None = None
        self.in_deadlock = False
        self.stray = 0  # thread-like lines before any dump header

    def _new_dump(self, lineno: int) -> _Dump:
        local = None
        if self.last_ts and lineno - self.last_ts[0] <= 3:
            local = self.last_ts[1]
        d = _Dump(self.count, lineno, local)
        self.count += 1
        if self.cur is not None:
            self.done.append(self.cur)
        self.cur = d
        self.thread = None
        self.in_deadlock = False
        return d

    def finish(self) -> None:
        if self.cur is not None:
            self.done.append(self.cur)
        self.cur = self.thread = None

    def take(self) -> list[_Dump]:
        out, self.done = self.done, []
        return out

    def feed(self, lineno: int, line: str) -> None:
        line = line.rstrip("\r\n")
        if not line:
            return
        c0 = line[0]
        if c0.isdigit():
            if m := _TS.match(line):
                self.last_ts = (lineno, m.group(1))
                return
        if line.startswith("Full thread dump"):
            self._new_dump(lineno)
            return
        if line.startswith("Found one Java-level deadlock") or line.startswith("Found a total of"):
            self.in_deadlock = True
            self.thread = None
            return
        if line.startswith("JNI global refs"):
            self.thread = None
            self.in_deadlock = False
            return
        if self.in_deadlock:
            if self.cur is not None and (m := _DEADLOCK_THREAD.match(line)):
                self.cur.deadlocked.add(m.group(1))
            elif line.startswith("Found ") and "deadlock" in line:
                self.in_deadlock = False
            return
        if c0 == '"' or line.startswith("os_prio="):
            m = _HEADER.match(line) or _NAMELESS.match(line)
            if m is None:
                return
            rest = m.group("rest") or ""
            if not any(k in rest for k in ("prio=", "nid=", "id=", "tid=")):
                return  # a quoted line of some log, not a thread header
            if "name" not in m.groupdict():
                name = ""
            else:
                name = m.group("name")
            if self.cur is None:
                # thread lines without a 'Full thread dump' header (jcmd variants, cut logs)
                self._new_dump(lineno)
            t = _Thread(lineno, self.cur.index, name, rest.strip())
            t.parse_header()
            self.cur.threads.append(t)
            self.thread = t
            return
        t = self.thread
        if t is None:
            return
        if c0 not in " \t":
            # any other unindented line ends the thread (log lines around a kill -3 dump)
            self.thread = None
            return
        if m := _AT.match(line):
            if len(t.stack) < MAX_STACK_FRAMES:
                t.stack.append(m.group(1).strip())
            else:
                t.frames_dropped += 1
            return
        if m := _LOCK.match(line):
            addr = norm_addr(m.group("addr"))
            kind = m.group("kind")
            if kind == "locked":
                t.locked.append(addr)
            elif kind in ("waiting to lock", "waiting to re-lock in wait()"):
                t.waiting_to_lock = addr
            else:
                t.waiting_on = addr
            return
        if m := _STATE.match(line):
            t.state, t.state_detail = m.group(1), m.group(2)
            return
        if _OWNABLE_HEAD.match(line):
            t.in_ownable = True
            return
        if t.in_ownable and (m := _OWNABLE.match(line)):
            t.ownable_synchronizers.append(norm_addr(m.group(1)))


_I32, _I64 = (-(1 << 31), (1 << 31) - 1), (-(1 << 63), (1 << 63) - 1)


def _fit(value: int | None, bounds: tuple[int, int], what: str, position: int, ctx: ParseContext) -> int | None:
    """``value`` if its column can hold it, else None with an error at the thread's line."""
    if value is None or bounds[0] <= value <= bounds[1]:
        return value
    ctx.error(position, "bad_number", f"{what} {value} does not fit its column: left null", unit="line")
    return None


def _rows_from_text(dumps: list[_Dump], ctx: ParseContext) -> list[dict]:
    rows = []
    for d in dumps:
        for t in d.threads:
            pos = t.position
            t.java_thread_id = _fit(t.java_thread_id, _I64, "java thread id", pos, ctx)
            t.prio = _fit(t.prio, _I32, "prio", pos, ctx)
            t.os_prio = _fit(t.os_prio, _I32, "os_prio", pos, ctx)
            tid = _fit(nid_to_tid(t.nid), _I64, "nid", pos, ctx)
            rows.append(
                {
                    "position": t.position,
                    "dump_local": d.local,
                    "dump_index": d.index,
                    "name": t.name,
                    "java_thread_id": t.java_thread_id,
                    "nid": t.nid,
                    "tid": tid,
                    "state": t.state or (t.header_state.upper().replace(" ", "_") if t.header_state else None),
                    "state_detail": t.state_detail,
                    "header_state": t.header_state,
                    "daemon": t.daemon,
                    "virtual": t.virtual,
                    "prio": t.prio,
                    "os_prio": t.os_prio,
                    "cpu_ms": t.cpu_ms,
                    "elapsed_s": t.elapsed_s,
                    "waiting_to_lock": t.waiting_to_lock,
                    "waiting_on": t.waiting_on,
                    "locked": t.locked,
                    "ownable_synchronizers": t.ownable_synchronizers,
                    "in_deadlock": t.name in d.deadlocked,
                    "stack": t.stack,
                }
            )
    return rows


def _text(v) -> str | None:
    """JSON dumps name objects as ``Class@identityHash`` (not addresses)."""
    return v if isinstance(v, str) else None


def _list(v) -> list:
    return v if isinstance(v, list) else []


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def _rows_from_json(text: str, ctx: ParseContext) -> list[dict]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        ctx.error(
            exc.lineno, "bad_json", f"JSON thread dump does not parse: {exc.msg}", unit="line", skipped_bytes=len(text)
        )
        return []
    except RecursionError:
        ctx.error(1, "bad_json", "JSON thread dump nests too deeply to be read", unit="line", skipped_bytes=len(text))
        return []
    td = doc.get("threadDump") if isinstance(doc, dict) else None
    if not isinstance(td, dict):
        ctx.error(1, "bad_json", "no threadDump object", unit="line", skipped_bytes=len(text))
        return []
    local = _text(td.get("time"))
    lines = text.splitlines()
    # line of each thread entry, for positions: the n-th '"tid":' key
    tid_lines = [i + 1 for i, line in enumerate(lines) if line.lstrip().startswith('"tid"')]
    rows = []
    n = 0
    for cont in _list(td.get("threadContainers")):
        for th in _list(cont.get("threads")) if isinstance(cont, dict) else []:
            pos = tid_lines[n] if n < len(tid_lines) else None
            if not isinstance(th, dict):
                ctx.error(pos or 1, "bad_json", f"thread entry is not an object: {str(th)[:80]!r}", unit="line")
                continue
            n += 1
            jid = th.get("tid")
            jid = int(jid) if jid is not None and str(jid).isdigit() else None
            owned = _list(th.get("monitorsOwned"))
            locked = []
            for o in owned:
                for lock in o.get("locks", []) if isinstance(o, dict) else []:
                    if isinstance(lock, str) and "@" in lock:
                        locked.append(lock)
            rows.append(
                {
                    "position": pos,
                    "dump_local": local,
                    "dump_index": 0,
                    "name": _text(th.get("name")),
                    "java_thread_id": _fit(jid, _I64, "java thread id", pos or 1, ctx),
                    "nid": None,
                    "tid": None,
                    "state": _text(th.get("state")),
                    "state_detail": None,
                    "header_state": None,
                    "daemon": None,
                    "virtual": th.get("virtual") if isinstance(th.get("virtual"), bool) else None,
                    "prio": None,
                    "os_prio": None,
                    "cpu_ms": None,
                    "elapsed_s": None,
                    "waiting_to_lock": _text(th.get("blockedOn")),
                    "waiting_on": _text(th.get("waitingOn")) or _text(_dict(th.get("parkBlocker")).get("object")),
                    "locked": locked,
                    "ownable_synchronizers": [],
                    "in_deadlock": False,
                    "stack": [str(s) for s in _list(th.get("stack"))],
                }
            )
    ctx.error(
        None,
        "no_native_ids",
        "JSON thread dumps carry Java thread ids only: tid (Linux) is null; map through jfr_threads",
        severity="info",
    )
    return rows


def _dump_at(frame: pl.DataFrame, ctx: ParseContext, is_json: bool) -> pl.DataFrame:
    offset_us = round(ctx.manifest.offset_ms("threaddump") * 1000)
    local = frame["dump_local"]
    if is_json:
        parsed = local.str.strptime(
            pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%.fZ", strict=False
        ).dt.replace_time_zone(None)
    else:
        naive = local.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
        tz = ctx.manifest.timezone
        if tz:
            parsed = naive.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone(
                "UTC"
            )
            parsed = parsed.dt.replace_time_zone(None)
        else:
            parsed = naive
    return frame.with_columns((parsed + pl.duration(microseconds=offset_us)).alias("dump_at"))


SCHEMA = {c.name: c.dtype for c in JVM_THREADS.columns if c.name != "artifact_id"}


BATCH_ROWS = 20_000  # threads per frame: a log of many dumps is never held whole


def parse_dump_text(lines, ctx: ParseContext) -> Iterator[list[dict]]:
    """Rows of every thread of every dump in ``lines``, in batches of whole dumps."""
    p = _TextParser()
    chars = 0
    pending: list[_Dump] = []
    held = 0
    for lineno, line in enumerate(lines, 1):
        p.feed(lineno, line)
        chars += len(line)
        if p.done:
            for d in p.take():
                _check_dump(d, ctx)
                pending.append(d)
                held += len(d.threads)
            if held >= BATCH_ROWS:
                yield _rows_from_text(pending, ctx)
                pending, held = [], 0
        if lineno % 100_000 == 0:
            ctx.progress(chars)  # characters: close to bytes for these ASCII files
    p.finish()
    for d in p.take():
        _check_dump(d, ctx)
        pending.append(d)
    if not p.count:
        ctx.error(1, "no_dump", "no thread dump found in the file", unit="line", severity="error")
    if pending:
        yield _rows_from_text(pending, ctx)


def _check_dump(d: _Dump, ctx: ParseContext) -> None:
    """Record what a complete dump lacks: its timestamp, deep frames, any thread."""
    if d.local is None:
        ctx.error(
            d.line,
            "no_timestamp",
            f"dump {d.index} has no timestamp line: dump_at is null",
            unit="line",
            severity="info",
        )
    for t in d.threads:
        if t.frames_dropped:
            ctx.error(
                t.position,
                "stack_too_deep",
                f"thread {t.name!r} has {MAX_STACK_FRAMES + t.frames_dropped} frames: "
                f"the first {MAX_STACK_FRAMES} are kept",
                unit="line",
                severity="data_loss",
            )
    if not d.threads:
        ctx.error(d.line, "empty_dump", f"dump {d.index} lists no thread", unit="line")


DEEP_SCAN_GZIP_BYTES = 1 << 30  # text looked through in a gzipped log, decompressed
PROBE_WINDOW = 64 * 1024  # how far after a dump's first line its first thread must start


def _is_dump_at(text: bytes, at: int) -> bool:
    """A dump's first line at ``at``, followed by a thread header line."""
    return _THREAD_LINE.search(text, at, at + PROBE_WINDOW) is not None


def _find_dump_start(path: Path, gzipped: bool) -> bool:
    """Whether ``\\nFull thread dump `` followed by a thread line occurs anywhere in the file:
    a memory-mapped search, or a streamed one through the first GiB of a gzipped file."""
    needle = b"\nFull thread dump "
    try:
        if not gzipped:
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                at = m.find(needle)
                while at >= 0:
                    if _is_dump_at(m[at : at + PROBE_WINDOW], 0):
                        return True
                    at = m.find(needle, at + 1)
            return False
        with gzip.open(path, "rb") as g:
            tail, seen = b"", 0
            while seen < DEEP_SCAN_GZIP_BYTES and (chunk := g.read(8 << 20)):
                seen += len(chunk)
                text = tail + chunk
                at = text.find(needle)
                while at >= 0:
                    if _is_dump_at(text, at):
                        return True
                    at = text.find(needle, at + 1)
                tail = text[-PROBE_WINDOW:]
    except (OSError, ValueError, EOFError, zlib.error):
        return False  # unreadable or cut: not this parser's to claim
    return False


@register
class ThreadDumpParser(Parser):
    kind = "threaddump"
    tables = ("jvm_threads",)
    priority = 40
    version = "1"

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        head = probe.head
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            head = decode_text(head).encode("utf-8", "replace")
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            return _JSON_KEY.search(head) is not None  # the JSON format (JDK 21+)
        # a dump's first line, or a thread header line; a mere mention in prose or code is neither
        return _DUMP_START.search(head) is not None or _THREAD_LINE.search(head) is not None

    @classmethod
    def detect_deep(cls, probe: Probe) -> bool:
        """A text file with a ``kill -3`` dump past its head (a broker's stdout log)."""
        if b"\0" in probe.head or (not probe.gzipped and probe.size <= len(probe.head)):
            return False
        return _find_dump_start(probe.path, probe.gzipped)

    def parse(self, ctx: ParseContext) -> Iterator[tuple[str, pl.DataFrame]]:
        with ctx.open_text() as f:
            first = f.readline()
            is_json = first.lstrip("\ufeff \t\r\n").startswith("{")
            if is_json:
                batches: Iterator[list[dict]] = iter([_rows_from_json(first + f.read(), ctx)])
            else:
                batches = parse_dump_text(itertools.chain([first.lstrip("\ufeff")], f), ctx)
            local_time_assumed = False
            for rows in batches:
                if not rows:
                    continue
                frame = pl.DataFrame(rows, schema={k: v for k, v in SCHEMA.items() if k != "dump_at"})
                if not (is_json or ctx.manifest.timezone or local_time_assumed):
                    local_time_assumed = frame["dump_local"].drop_nulls().len() > 0
                    if local_time_assumed:
                        ctx.error(
                            None,
                            "timezone_assumed",
                            "dump timestamps are the JVM host's local time and no timezone is in the manifest: "
                            "taken as UTC",
                            unit="line",
                            severity="info",
                        )
                yield "jvm_threads", _dump_at(frame, ctx, is_json).select(list(SCHEMA))

    @classmethod
    def summarise(cls, tables: dict[str, pl.DataFrame]) -> list[tuple[str, pl.DataFrame]]:
        t = tables.get("jvm_threads")
        if t is None or t.height == 0:
            return []
        return [
            ("dumps", t.group_by("dump_index", "dump_at").agg(pl.len().alias("threads")).sort("dump_index")),
            (
                "blocked threads",
                t.filter(pl.col("waiting_to_lock").is_not_null()).select(
                    "dump_index", "name", "tid", "state", "waiting_to_lock"
                ),
            ),
        ]


@dump_command
@click.command("threads")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Aligned table for people, csv or json for scripts.",
)
@click.option("--stack/--no-stack", default=False, help="Show the top stack frame.")
def dump_threads(file: Path, fmt: str, stack: bool) -> None:
    """Threads of every dump in a thread-dump FILE: TID, state, locks."""
    from pipeline.output import emit

    ctx = ParseContext(file, file.as_posix(), "dump")
    frames = [f for _, f in ThreadDumpParser().parse(ctx)]
    if not frames:
        raise click.ClickException(f"{file}: no thread dump found")
    df = pl.concat(frames)
    cols = ["dump_index", "dump_at", "name", "java_thread_id", "nid", "tid", "state", "waiting_to_lock", "locked"]
    if stack:
        df = df.with_columns(pl.col("stack").list.first().alias("top_frame"))
        cols.append("top_frame")
    out = df.select(cols).with_columns(pl.col("locked").list.join(" "))
    emit(out, fmt)
    for e in ctx.errors:
        click.echo(f"{e.severity}: {e.what} at {e.unit} {e.position}: {e.message}", err=True)
