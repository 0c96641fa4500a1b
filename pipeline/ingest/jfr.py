"""JFR ingest: our own reader of JDK and async-profiler recordings → JVM event tables."""

from __future__ import annotations

from pipeline.registry import Parser, Probe, register
from pipeline.tables import F64, I64, STR, STR_LIST, TIMESTAMP, declare

JFR_MAGIC = b"FLR\x00"

MONITOR_WAITS = declare(
    "monitor_waits",
    "One row per JFR monitor-enter (or wait/park) event: a thread blocked on a lock.",
    ("position", I64, "Byte offset of the event in the recording."),
    ("event_type", STR, "jdk.JavaMonitorEnter | jdk.JavaMonitorWait | jdk.ThreadPark."),
    ("start_at", TIMESTAMP, "Wait start (UTC)."),
    ("end_at", TIMESTAMP, "Wait end (UTC)."),
    ("duration_ms", F64, "Wait duration in milliseconds."),
    ("tid", I64, "Linux TID of the waiting thread (osThreadId)."),
    ("thread_name", STR, "Java name of the waiting thread."),
    ("monitor_class", STR, "Class of the monitor object."),
    ("monitor_address", STR, "Monitor address as hex."),
    ("owner_tid", I64, "previousOwner's TID: only a hint (the last releaser)."),
    ("owner_name", STR, "previousOwner's name: only a hint."),
    ("top_frames", STR_LIST, "Top stack frames, top first."),
    ("source", STR, "jdk | async-profiler."),
)

THREAD_SAMPLES = declare(
    "thread_samples",
    "One row per execution or wall-clock sample.",
    ("position", I64, "Byte offset of the event."),
    ("at", TIMESTAMP, "Sample time (UTC)."),
    ("tid", I64, "Linux TID."),
    ("thread_name", STR, "Java thread name."),
    ("state", STR, "Thread state, e.g. STATE_RUNNABLE."),
    ("event_type", STR, "jdk.ExecutionSample | profiler.WallClockSample | ..."),
    ("top_frame", STR, "Top stack frame."),
)

JVM_FILE_WRITES = declare(
    "jvm_file_writes",
    "One row per jdk.FileWrite or jdk.FileForce event.",
    ("position", I64, "Byte offset of the event."),
    ("event_type", STR, "jdk.FileWrite | jdk.FileForce."),
    ("start_at", TIMESTAMP, "Start (UTC)."),
    ("end_at", TIMESTAMP, "End (UTC)."),
    ("duration_ms", F64, "Duration in milliseconds."),
    ("tid", I64, "Linux TID."),
    ("thread_name", STR, "Java thread name."),
    ("path", STR, "File path."),
    ("bytes", I64, "Bytes written (FileWrite)."),
)

JFR_THREADS = declare(
    "jfr_threads",
    "One row per thread known to a recording: Linux TID <-> Java thread id <-> name.",
    ("position", I64, "Byte offset of the constant pool entry or event."),
    ("os_tid", I64, "Linux TID (osThreadId)."),
    ("java_thread_id", I64, "Java thread id (0 for non-Java threads)."),
    ("name", STR, "Java name (or OS name for non-Java threads)."),
    ("os_name", STR, "OS thread name."),
)


@register
class JfrParser(Parser):
    kind = "jfr"
    tables = ("monitor_waits", "thread_samples", "jvm_file_writes", "jfr_threads")
    priority = 5

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        return probe.head[:4] == JFR_MAGIC
