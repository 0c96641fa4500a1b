"""Kernel trace ingest: eBPF/BCC/bpftrace text logs → ``fs_writes`` and ``kernel_calls``."""

from __future__ import annotations

import re

from pipeline.registry import Parser, Probe, register
from pipeline.tables import F64, I32, I64, STR, TIMESTAMP, declare

FS_WRITES = declare(
    "fs_writes",
    "One row per traced file-system operation (write, read, open, fsync) from eBPF logs.",
    ("position", I64, "Line number in the log."),
    ("operation", STR, "write | read | open | fsync."),
    ("start_at", TIMESTAMP, "Operation start (UTC, aligned)."),
    ("end_at", TIMESTAMP, "Operation end (UTC, aligned)."),
    ("latency_ms", F64, "Duration in milliseconds."),
    ("tid", I64, "Linux thread id (or the process id when the tool prints only that)."),
    ("pid", I64, "Process id when known."),
    ("comm", STR, "Thread command name."),
    ("bytes", I64, "Bytes written or read."),
    ("file_offset", I64, "File offset of the operation in bytes."),
    ("path", STR, "Path as printed (parent-dir/file or file name)."),
    ("topic", STR, "Topic when the path is <topic>-<partition>/<segment>.log."),
    ("partition", I32, "Partition, as above."),
    ("segment", STR, "Segment file name, as above."),
    ("fs", STR, "File system (ext4, xfs, btrfs, zfs, nfs) when known."),
    ("source_format", STR, "Which log format the line was read as."),
    ("raw_start", STR, "Start time exactly as printed (null when not printed)."),
    ("raw_end", STR, "End time exactly as printed."),
    ("clock", STR, "Clock the raw values were read on: time_of_day | monotonic | epoch."),
)

KERNEL_CALLS = declare(
    "kernel_calls",
    "One row per traced kernel function call or journal commit window.",
    ("position", I64, "Line number in the log."),
    ("func", STR, "Function or event, e.g. jbd2_journal_commit_transaction, ext4_dirty_inode."),
    ("start_at", TIMESTAMP, "Call start (UTC, aligned)."),
    ("end_at", TIMESTAMP, "Call end (UTC, aligned)."),
    ("latency_ms", F64, "Duration in milliseconds."),
    ("tid", I64, "Thread id when known."),
    ("comm", STR, "Command name when known."),
    ("source_format", STR, "Which log format the line was read as."),
    ("raw_start", STR, "Start time exactly as printed."),
    ("raw_end", STR, "End time exactly as printed."),
    ("clock", STR, "Clock the raw values were read on."),
)

# The seed's extended ext4slower line: start end latency tid bytes offset dir/file
SEED_WRITE = re.compile(
    r"^\d{2}:\d{2}:\d{2}\.\d{3,9}\s+\d{2}:\d{2}:\d{2}\.\d{3,9}\s+\d+(\.\d+)?\s*ms\s+\d+\s+\d+\s+\d+\s+\S+"
)
SEED_CALL = re.compile(
    r"^\d{2}:\d{2}:\d{2}\.\d{3,9}\s+\d{2}:\d{2}:\d{2}\.\d{3,9}\s+\d+(\.\d+)?\s*ms\s+[A-Za-z_]\w*\s*$"
)
BCC_SLOWER_HEADER = re.compile(r"^(TIME|ENDTIME_us|ENDTIME_ns)\s*,?\s*(COMM|TASK)\b")
FUNCSLOWER_BANNER = re.compile(r"^Tracing function calls slower than")


@register
class EbpfLogParser(Parser):
    kind = "ebpf"
    tables = ("fs_writes", "kernel_calls")
    priority = 50

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        if b"\x00" in probe.head[:4096]:
            return False
        for line in probe.text_lines(400):
            s = line.strip()
            if SEED_WRITE.match(s) or SEED_CALL.match(s) or BCC_SLOWER_HEADER.match(s) or FUNCSLOWER_BANNER.match(s):
                return True
        return False
