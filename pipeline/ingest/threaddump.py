"""Thread dump ingest: jstack / jcmd Thread.print / JSON dumps → ``jvm_threads``."""

from __future__ import annotations

from pipeline.registry import Parser, Probe, register
from pipeline.tables import BOOL, F64, I32, I64, STR, STR_LIST, TIMESTAMP, declare

JVM_THREADS = declare(
    "jvm_threads",
    "One row per thread per thread dump.",
    ("position", I64, "Line number of the thread's header line."),
    ("dump_at", TIMESTAMP, "Time of the dump when printed (UTC), else null."),
    ("dump_index", I32, "0-based index of the dump within the file."),
    ("name", STR, "Thread name."),
    ("java_thread_id", I64, "Java thread number (#N) when printed."),
    ("nid", STR, "Native id exactly as printed (0x1184 or 4484)."),
    ("tid", I64, "Linux TID decoded from nid."),
    ("state", STR, "java.lang.Thread.State, or the header's state text."),
    ("daemon", BOOL, "Daemon thread."),
    ("prio", I32, "Java priority."),
    ("cpu_ms", F64, "CPU time in ms when printed."),
    ("elapsed_s", F64, "Elapsed seconds when printed."),
    ("waiting_to_lock", STR, "Monitor address the thread waits to lock."),
    ("locked", STR_LIST, "Monitor addresses the thread holds."),
    ("stack", STR_LIST, "Stack frames, top first."),
)

MARKERS = (b"Full thread dump", b'"threadDump"')


@register
class ThreadDumpParser(Parser):
    kind = "threaddump"
    tables = ("jvm_threads",)
    priority = 40

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        head = probe.head
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            head = probe.head.decode("utf-16", errors="replace").encode()
        return any(m in head for m in MARKERS)
