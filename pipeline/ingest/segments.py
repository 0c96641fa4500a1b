"""Kafka segment ingest: ``<topic>-<partition>/<base offset>.log`` → batches and records."""

from __future__ import annotations

import re
import struct
from pathlib import PurePosixPath

from pipeline.registry import Parser, Probe, register
from pipeline.tables import BOOL, I32, I64, STR, TIMESTAMP, declare

PARTITION_DIR = re.compile(r"^(?P<topic>.+)-(?P<partition>\d+)$")
SEGMENT_NAME = re.compile(r"^(?P<base>\d{20})\.log$")
BATCH_HEADER = 61  # magic 2 record batch header, bytes

SEGMENT_BATCHES = declare(
    "segment_batches",
    "One row per record batch (or legacy message) found in a Kafka .log segment.",
    ("position", I64, "Byte offset of the batch in the segment file (same as file_position)."),
    ("topic", STR, "Topic, from the partition directory name."),
    ("partition", I32, "Partition, from the partition directory name."),
    ("segment", STR, "Segment file name (20-digit base offset + .log)."),
    ("file_position", I64, "Byte offset of the batch in the segment file."),
    ("batch_bytes", I64, "Batch size on disk including the 12-byte offset/length prefix."),
    ("base_offset", I64, "First offset of the batch."),
    ("last_offset", I64, "Last offset of the batch."),
    ("magic", I32, "Record format magic (0, 1, 2)."),
    ("crc", I64, "Stored CRC (unsigned)."),
    ("crc_valid", BOOL, "Stored CRC equals the computed one."),
    ("compression", STR, "none | gzip | snappy | lz4 | zstd."),
    ("timestamp_type", STR, "CreateTime | LogAppendTime."),
    ("first_timestamp_at", TIMESTAMP, "Base timestamp."),
    ("max_timestamp_at", TIMESTAMP, "Max timestamp."),
    ("producer_id", I64, "Producer id (-1 when none)."),
    ("producer_epoch", I32, "Producer epoch."),
    ("base_sequence", I32, "Base sequence."),
    ("transactional", BOOL, "Transactional flag."),
    ("control", BOOL, "Control batch (transaction marker)."),
    ("records", I32, "Record count."),
    ("partition_leader_epoch", I32, "Partition leader epoch."),
)


def partition_of(name: str) -> tuple[str, int] | None:
    """Topic and partition from a path's parent directory (split at the last dash)."""
    parent = PurePosixPath(name).parent.name
    m = PARTITION_DIR.match(parent)
    return (m["topic"], int(m["partition"])) if m else None


@register
class SegmentParser(Parser):
    kind = "segment"
    tables = ("segment_batches",)
    priority = 20

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        if not SEGMENT_NAME.match(PurePosixPath(probe.name).name) or partition_of(probe.name) is None:
            return False
        head = probe.head
        if len(head) == 0:
            return True  # an empty active segment is still a segment
        if len(head) < 17:
            return False
        (length,) = struct.unpack_from(">i", head, 8)
        return head[16] in (0, 1, 2) and 14 <= length < 2**31 - 12
