"""Kafka segment ingest: ``<topic>-<partition>/<base offset>.log`` → batches and records.

A segment is a plain concatenation of record batches (magic 2) or legacy messages (magic
0/1), each prefixed by its offset and length. The reader walks it with ``struct`` on an
``mmap`` (nothing is loaded whole), checks every batch's CRC in C, and decodes record
bodies only when asked. Damage is data: a partial batch at the end of an active segment,
zero padding of a preallocated one, a corrupt batch skipped by its length, a resync on the
next batch whose CRC checks: each is one :class:`Damage` with its byte range.

The ``.index`` / ``.timeindex`` files and ``partition.metadata`` beside a segment are
read with it (cross-check, topic id); as bundle artifacts of their own they are listed
as skipped with that reason, like the other files of a Kafka log directory.
"""

from __future__ import annotations

import dataclasses
import mmap
import re
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import click
import crc32c
import polars as pl
import pyarrow as pa

from pipeline.ingest.records import (
    _HEADER,
    BATCH_HEADER_BYTES,
    CODECS,
    LOG_OVERHEAD,
    MAX_DECOMPRESSED,
    BatchError,
    BatchHeader,
    LegacyMessage,
    Record,
    decode_records,
    header_text,
    legacy_inner_messages,
    message_ids,
    read_legacy_message,
    record_summaries,
)
from pipeline.manifest import DEFAULT_MESSAGE_ID_HEADER
from pipeline.registry import Chunk, ParseContext, Parser, Probe, dump_command, register
from pipeline.tables import BOOL, I32, I64, STR, STR_LIST, TIMESTAMP, declare

# <topic>-<partition>, or the directory of a partition being deleted or moved between log
# dirs: <topic>-<partition>.<uuid hex>-delete | -future | -stray
PARTITION_DIR = re.compile(r"^(?P<topic>.+)-(?P<partition>\d+)(?:\.[0-9a-f]{32}-(?:delete|future|stray))?$")
SEGMENT_NAME = re.compile(r"^(?P<base>\d{20})\.log(?:\.gz)?$")  # .gz: a bundle may compress files
LOOSE_NAME = re.compile(r"(?:^|\D)(?P<base>\d{20})\.log$")  # a base offset ending any other name
INDEX_NAME = re.compile(r"^\d{20}\.(index|timeindex|txnindex)$")
BATCH_HEADER = BATCH_HEADER_BYTES  # magic 2 record batch header, bytes
MIN_LENGTH = {0: 14, 1: 22, 2: BATCH_HEADER_BYTES - LOG_OVERHEAD}  # smallest length field per magic
CHUNK_ROWS = 50_000
GZIP_MAGIC = b"\x1f\x8b"
ZERO_CHUNK = 1 << 20
# org.apache.kafka.common.record.ControlRecordType
CONTROL_TYPES = {0: "ABORT", 1: "COMMIT", 2: "LEADER_CHANGE", 3: "SNAPSHOT_HEADER", 4: "SNAPSHOT_FOOTER"}
CONTROL_TYPES.update({5: "KRAFT_VERSION", 6: "KRAFT_VOTERS"})

SEGMENT_BATCHES = declare(
    "segment_batches",
    "One row per record batch (or legacy message) found in a Kafka .log segment.",
    ("position", I64, "Byte offset of the batch in the segment file (same as file_position)."),
    ("topic", STR, "Topic, from the partition directory name."),
    ("partition", I32, "Partition, from the partition directory name."),
    ("topic_id", STR, "Topic id from partition.metadata beside the segment (Kafka's base64 form), else null."),
    ("segment", STR, "Segment file name (20-digit base offset + .log)."),
    ("segment_base_offset", I64, "Base offset of the segment, from its file name."),
    ("file_position", I64, "Byte offset of the batch in the segment file."),
    ("batch_bytes", I64, "Batch size on disk including the 12-byte offset/length prefix."),
    ("base_offset", I64, "First offset of the batch (legacy wrapper: first inner offset)."),
    ("last_offset", I64, "Last offset of the batch."),
    ("magic", I32, "Record format magic (0, 1, 2)."),
    ("crc", I64, "Stored CRC (unsigned): CRC32C for magic 2, CRC32 for legacy messages."),
    ("crc_valid", BOOL, "Stored CRC equals the computed one."),
    ("compression", STR, "none | gzip | snappy | lz4 | zstd."),
    ("timestamp_type", STR, "CreateTime | LogAppendTime (null for magic 0, which has no timestamps)."),
    ("first_timestamp_at", TIMESTAMP, "Base timestamp (null when the batch stores -1, i.e. no timestamp)."),
    ("max_timestamp_at", TIMESTAMP, "Max timestamp (null when the batch stores -1)."),
    ("first_timestamp_raw", I64, "Base timestamp as stored: ms since the epoch, before any clock offset."),
    ("max_timestamp_raw", I64, "Max timestamp as stored: ms since the epoch, before any clock offset."),
    ("producer_id", I64, "Producer id (-1 when none)."),
    ("producer_epoch", I32, "Producer epoch (-1 when none)."),
    ("base_sequence", I32, "Base sequence (-1 when none)."),
    ("transactional", BOOL, "Transactional flag."),
    ("control", BOOL, "Control batch (transaction marker or KRaft control record)."),
    ("control_type", STR, "Control record type (ABORT, COMMIT, LEADER_CHANGE, ...) of a control batch, else null."),
    ("records", I32, "Record count (legacy: inner messages of a compressed wrapper, else 1)."),
    ("partition_leader_epoch", I32, "Partition leader epoch (-1 for legacy messages)."),
)

SEGMENT_RECORDS = declare(
    "segment_records",
    "One row per record of a Kafka .log segment (inner messages of legacy compressed wrappers included).",
    ("position", I64, "Byte offset of the record's batch in the segment file (records inside a batch share it)."),
    ("topic", STR, "Topic, from the partition directory name."),
    ("partition", I32, "Partition, from the partition directory name."),
    ("segment", STR, "Segment file name (20-digit base offset + .log)."),
    ("offset", I64, "Record offset."),
    ("file_position", I64, "Byte offset of the record's batch in the file: joins segment_batches.file_position."),
    ("batch_position", I64, "Same value as file_position, named for what it is (records have no own file offset)."),
    ("record_in_batch", I32, "Index of the record within its batch, from 0."),
    ("timestamp_at", TIMESTAMP, "Record timestamp (null when -1 / magic 0)."),
    ("timestamp_raw", I64, "Record timestamp as stored: ms since the epoch, before any clock offset."),
    ("key_bytes", I32, "Key size in bytes, null for a null key."),
    ("value_bytes", I32, "Value size in bytes, null for a null value (tombstone)."),
    (
        "headers",
        STR_LIST,
        "Headers as 'key=value' strings, value rendered like message ids; 'key' alone for a null value.",
    ),
    ("message_id", STR, "Value of the manifest's message_id_header (default message-id) as text, else null."),
)


def partition_of(name: str) -> tuple[str, int] | None:
    """Topic and partition from a path's parent directory (split at the last dash)."""
    parent = PurePosixPath(name).parent.name
    m = PARTITION_DIR.match(parent)
    return (m["topic"], int(m["partition"])) if m else None


# -- the walk --------------------------------------------------------------------------------


@dataclass(slots=True)
class Batch:
    """One magic 2 batch or one top-level legacy message, as found at ``position``."""

    position: int
    size: int
    base_offset: int
    last_offset: int
    magic: int
    crc: int
    crc_valid: bool
    attributes: int
    first_timestamp: int | None  # ms since epoch as stored; None for magic 0
    max_timestamp: int | None
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    records_count: int = 1
    partition_leader_epoch: int = -1
    header: BatchHeader | None = None
    legacy: LegacyMessage | None = None
    inner: list[LegacyMessage] | None = None  # legacy compressed wrapper's messages
    problem: str | None = None  # why the content could not be fully read (legacy wrappers)

    @property
    def compression(self) -> str:
        codec = self.attributes & 0x07
        return CODECS[codec] if codec < len(CODECS) else f"unknown-{codec}"

    @property
    def timestamp_type(self) -> str | None:
        if self.magic == 0:
            return None
        return "LogAppendTime" if self.attributes & 0x08 else "CreateTime"

    @property
    def transactional(self) -> bool:
        return self.magic == 2 and bool(self.attributes & 0x10)

    @property
    def control(self) -> bool:
        return self.magic == 2 and bool(self.attributes & 0x20)

    @property
    def end(self) -> int:
        return self.position + self.size

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset - self.base_offset) & 0x7FFFFFFF


@dataclass(slots=True)
class Damage:
    """A byte range the walk could not read as batches."""

    position: int
    skipped_bytes: int
    what: str  # truncated_tail | zero_padding | corrupt_batch | resync | unreadable_tail
    severity: str  # info | error | data_loss
    message: str


def header_sane(buf, pos: int) -> bool:
    """Cheap checks of the batch or legacy header at ``pos`` (at least 61 bytes there for
    magic 2, 18 for legacy): known magic, length at least a header, non-negative base
    offset; magic 2: known attribute bits (codec 0-4, timestamp type, transactional,
    control, delete horizon), non-negative last offset delta and record count; legacy:
    codec 0-3 and the timestamp type bit only."""
    if len(buf) - pos < 18:
        return False
    magic = buf[pos + 16]
    if magic not in MIN_LENGTH or _i32(buf, pos + 8) < MIN_LENGTH[magic] or buf[pos] & 0x80:
        return False
    if magic == 2:
        if len(buf) - pos < BATCH_HEADER:
            return False
        attrs = int.from_bytes(buf[pos + 21 : pos + 23], "big")
        return not (attrs & 0xFF80 or attrs & 0x07 > 4 or buf[pos + 23] & 0x80 or buf[pos + 57] & 0x80)
    return not buf[pos + 17] & 0xF4


def _u32(buf, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + 4], "big")


def _i32(buf, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + 4], "big", signed=True)


class SegmentWalk:
    """Walks batches in ``buf`` (bytes, bytearray or mmap) from ``start``.

    Iterating yields :class:`Batch` and :class:`Damage` in file order. The walk never
    raises on bad data. Record bodies are not touched (see :meth:`records`).
    """

    def __init__(self, buf, start: int = 0, stop: int | None = None, *, max_bytes: int = MAX_DECOMPRESSED) -> None:
        self.buf = buf
        self.mv = memoryview(buf)
        self.n = len(buf)
        self.start = start
        self.stop = self.n if stop is None else min(stop, self.n)
        self.max_bytes = max_bytes
        self.legacy_seen = False

    def close(self) -> None:
        self.mv.release()

    # plausibility -----------------------------------------------------------------------
    def size_at(self, pos: int, *, strict: bool) -> int | None:
        """Size of the batch or legacy message at ``pos`` if its header is plausible and
        it fits in the data; ``strict`` also requires its CRC to check."""
        buf, n = self.buf, self.n
        if pos < 0 or n - pos < 17:
            return None
        magic = buf[pos + 16]
        if magic not in MIN_LENGTH:
            return None
        length = _i32(buf, pos + 8)
        if pos + LOG_OVERHEAD + length > n or not header_sane(buf, pos):
            return None
        end = pos + LOG_OVERHEAD + length
        if strict:
            if magic == 2:
                if crc32c.crc32c(self.mv[pos + 21 : end]) != _u32(buf, pos + 17):
                    return None
            elif zlib.crc32(self.mv[pos + 16 : end]) != _u32(buf, pos + 12):
                return None
        return LOG_OVERHEAD + length

    def chain_ok(self, pos: int) -> bool:
        """True when ``pos`` is the end of the data or starts a believable batch: one whose
        CRC checks, or whose header is plausible and is followed by one whose CRC checks."""
        if pos == self.n:
            return True
        if self.size_at(pos, strict=True):
            return True
        size = self.size_at(pos, strict=False)
        if size is None:
            return False
        nxt = pos + size
        return nxt == self.n or self.size_at(nxt, strict=True) is not None

    def find_next(self, pos: int) -> int | None:
        """First position at or after ``pos`` holding a batch whose CRC checks."""
        buf, n = self.buf, self.n
        magics = (b"\x02", b"\x01", b"\x00") if self.legacy_seen else (b"\x02",)
        p = pos
        while p <= n - 17:
            if self.legacy_seen and not buf[p + 8 : p + 12].strip(b"\0"):
                # a zero run: a header's length field is never zero, so jump near its end
                z = self._first_nonzero(p + 8)
                if z is None:
                    return None
                p = max(p + 1, z - 11)
                continue
            hits = [i for i in (buf.find(m, p + 16, n) for m in magics) if i >= 0]
            if not hits:
                return None
            q = min(hits) - 16
            if self.size_at(q, strict=True):
                return q
            p = q + 1
        return None

    def _first_nonzero(self, pos: int) -> int | None:
        for p in range(pos, self.n, ZERO_CHUNK):
            chunk = self.buf[p : min(p + ZERO_CHUNK, self.n)]
            rest = chunk.lstrip(b"\0")
            if rest:
                return p + len(chunk) - len(rest)
        return None

    def _all_zero(self, pos: int) -> bool:
        for p in range(pos, self.n, ZERO_CHUNK):
            chunk = self.buf[p : min(p + ZERO_CHUNK, self.n)]
            if chunk.count(0) != len(chunk):
                return False
        return True

    # the walk ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Batch | Damage]:
        buf, mv, n, stop = self.buf, self.mv, self.n, self.stop
        unpack = _HEADER.unpack_from
        crc = crc32c.crc32c
        pos = self.start
        while pos < stop:
            magic = buf[pos + 16] if n - pos > 16 else -1
            if magic == 2 and n - pos >= BATCH_HEADER:
                (bo, length, ple, _m, stored, attrs, lod, fts, mts, pid, pep, bseq, cnt) = unpack(buf, pos)
                end = pos + LOG_OVERHEAD + length
                if length >= MIN_LENGTH[2] and end <= n:
                    valid = crc(mv[pos + 21 : end]) == stored
                    if valid or self.chain_ok(end):
                        yield Batch(
                            pos,
                            end - pos,
                            bo,
                            bo + lod,
                            2,
                            stored,
                            valid,
                            attrs,
                            fts,
                            mts,
                            pid,
                            pep,
                            bseq,
                            cnt,
                            ple,
                            BatchHeader(bo, length, ple, 2, stored, attrs, lod, fts, mts, pid, pep, bseq, cnt),
                        )
                        pos = end
                        continue
            elif magic in (0, 1):
                batch = self._legacy(pos)
                if batch is not None:
                    self.legacy_seen = True
                    yield batch
                    pos = batch.end
                    continue
            damage, pos = self._recover(pos)
            yield damage

    def _legacy(self, pos: int) -> Batch | None:
        try:
            msg = read_legacy_message(self.buf, pos)
        except BatchError:
            return None
        if not msg.crc_valid and not self.chain_ok(pos + msg.size):
            return None
        batch = Batch(
            pos,
            msg.size,
            msg.offset,
            msg.offset,
            msg.magic,
            msg.crc,
            msg.crc_valid,
            msg.attributes,
            msg.timestamp,
            msg.timestamp,
            legacy=msg,
        )
        if msg.compression != "none":
            try:
                inner = legacy_inner_messages(msg, self.max_bytes)
            except BatchError as exc:
                batch.problem = f"compressed wrapper message not readable: {exc}"
                return batch
            if not inner:
                batch.problem = "compressed wrapper message holds no messages"
                return batch
            batch.inner = inner
            batch.records_count = len(inner)
            if msg.magic == 1:
                # magic 1 wrappers carry the last absolute offset, inner offsets are relative
                base = msg.offset - inner[-1].offset
                for m in inner:
                    m.offset += base
                    if msg.attributes & 0x08:  # LogAppendTime: the wrapper's time is every message's
                        m.timestamp = msg.timestamp
            batch.base_offset, batch.last_offset = inner[0].offset, inner[-1].offset
            stamps = [m.timestamp for m in inner if m.timestamp is not None]
            if stamps and msg.magic == 1:
                batch.first_timestamp = stamps[0]
                if not msg.attributes & 0x08:  # CreateTime: the wrapper holds the max
                    batch.max_timestamp = max(max(stamps), msg.timestamp or -1)
        return batch

    def _recover(self, pos: int) -> tuple[Damage, int]:
        """Classify the unreadable bytes at ``pos`` and say where the walk goes on."""
        buf, n = self.buf, self.n
        q = self.find_next(pos + 1)
        magic = buf[pos + 16] if n - pos > 16 else None
        length = _i32(buf, pos + 8) if n - pos >= LOG_OVERHEAD else None
        header_ok = magic in MIN_LENGTH and length is not None and length >= MIN_LENGTH[magic]
        if q is None:
            skipped = n - pos
            if self._all_zero(pos):
                return Damage(
                    pos, skipped, "zero_padding", "info", f"{skipped} zero bytes to the end (preallocated segment)"
                ), n
            if n - pos < BATCH_HEADER or (header_ok and pos + LOG_OVERHEAD + length > n):
                want = f"; the batch claims {LOG_OVERHEAD + length} bytes" if header_ok else ""
                return Damage(
                    pos, skipped, "truncated_tail", "info", f"partial batch at the end: {skipped} bytes{want}"
                ), n
            return Damage(
                pos, skipped, "unreadable_tail", "data_loss", f"{skipped} bytes to the end hold no readable batch"
            ), n
        skipped = q - pos
        if length is not None and length >= MIN_LENGTH[0] and pos + LOG_OVERHEAD + length == q:
            why = "CRC mismatch" if header_ok else f"bad magic {magic}"
            return Damage(
                pos,
                skipped,
                "corrupt_batch",
                "error",
                f"corrupt batch ({why}) of {skipped} bytes skipped by its length; next batch at {q}",
            ), q
        return Damage(
            pos,
            skipped,
            "resync",
            "error",
            f"no readable batch at {pos}: {skipped} bytes skipped to the next batch at {q}",
        ), q

    # records ----------------------------------------------------------------------------
    def summaries(self, batch: Batch) -> list[tuple]:
        """(offset, timestamp, key_bytes, value_bytes, headers) per record, keys and values
        not copied (raises :class:`BatchError`)."""
        if batch.header is not None:
            return record_summaries(batch.header, self.mv, batch.position, self.max_bytes)
        return [
            (
                r.offset,
                r.timestamp,
                None if r.key is None else len(r.key),
                None if r.value is None else len(r.value),
                [],
            )
            for r in self.records(batch)
        ]

    def records(self, batch: Batch) -> list[Record]:
        """Decode a batch's records (raises :class:`BatchError`)."""
        if batch.header is not None:
            return decode_records(batch.header, self.mv, batch.position, self.max_bytes)
        if batch.inner is not None:
            msgs = batch.inner
        elif batch.legacy is not None and batch.compression == "none":
            msgs = [batch.legacy]
        else:
            raise BatchError(batch.problem or "legacy message has no readable records", batch.position)
        return [Record(m.offset, m.timestamp if m.timestamp is not None else -1, m.key, m.value, [], 0) for m in msgs]


def control_type(walk: SegmentWalk, batch: Batch) -> str | None:
    """Type of a control batch's record: its key is version i16 + type i16."""
    if not batch.control:
        return None
    try:
        recs = walk.records(batch)
    except BatchError:
        return None
    if not recs or recs[0].key is None or len(recs[0].key) < 4:
        return None
    t = struct.unpack_from(">h", recs[0].key, 2)[0]
    return CONTROL_TYPES.get(t, f"type-{t}")


# -- files ------------------------------------------------------------------------------------


# Kafka's segment.bytes is at most 2^31-1: a gzip segment inflating past that is no segment.
MAX_INFLATED = (1 << 31) - 1


class SegmentFile:
    """A segment mapped read-only (gzip segments are first inflated to a temporary file)."""

    def __init__(self, path: Path | str, ctx: ParseContext | None = None) -> None:
        """With ``ctx``, a damaged gzip stream keeps what inflates and records the loss."""
        self.path = Path(path)
        self._tmp: IO[bytes] | None = None
        f = open(self.path, "rb")
        if f.read(2) == GZIP_MAGIC:
            import gzip

            self._tmp = tempfile.TemporaryFile()
            f.seek(0)
            with ctx.open() if ctx is not None else gzip.GzipFile(fileobj=f) as g:
                written = 0
                while chunk := g.read(1 << 20):
                    if written + len(chunk) > MAX_INFLATED:
                        self._tmp.write(chunk[: MAX_INFLATED - written])
                        if ctx is not None:
                            ctx.error(
                                MAX_INFLATED,
                                "gzip_too_large",
                                f"gzip segment inflates beyond {MAX_INFLATED} bytes, more than a Kafka segment "
                                "holds: the rest is not read",
                                severity="data_loss",
                            )
                        break
                    self._tmp.write(chunk)
                    written += len(chunk)
            f.close()
            f = self._tmp
        self._file = f
        f.seek(0, 2)
        self.size = f.tell()
        self.buf: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""

    def walk(self, start: int = 0, stop: int | None = None) -> SegmentWalk:
        return SegmentWalk(self.buf, start, stop)

    def close(self) -> None:
        if isinstance(self.buf, mmap.mmap):
            self.buf.close()
        self._file.close()

    def __enter__(self) -> SegmentFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_topic_id(directory: Path) -> str | None:
    """``topic_id`` from ``partition.metadata`` (``version: 0`` / ``topic_id: <base64>``)."""
    try:
        text = (directory / "partition.metadata").read_text("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "topic_id" and value.strip():
            return value.strip()
    return None


def read_offset_index(path: Path) -> list[tuple[int, int]]:
    """``.index`` entries (relative offset i32, position i32); zero slots of a preallocated
    index are dropped."""
    return list(struct.iter_unpack(">ii", _used(path.read_bytes(), 8)))


def read_time_index(path: Path) -> list[tuple[int, int]]:
    """``.timeindex`` entries (timestamp ms i64, relative offset i32), padding dropped."""
    return list(struct.iter_unpack(">qi", _used(path.read_bytes(), 12)))


def _used(data: bytes, entry: int) -> bytes:
    """The entries of an index file up to its last non-zero byte (Kafka preallocates
    index files and fills them with zeros)."""
    used = len(data.rstrip(b"\0"))
    return data[: min(-(-used // entry) * entry, len(data) - len(data) % entry)]


@dataclass
class IndexCheck:
    """Cross-check of a segment's index files against its batches."""

    problems: list[tuple[int | None, str, str]] = field(default_factory=list)  # (position, what, message)
    offset_entries: int = 0
    time_entries: int = 0


def _sibling(log_path: Path, suffix: str) -> Path:
    """``<base>.index`` etc. beside ``<base>.log`` (or ``<base>.log.gz``)."""
    return log_path.with_name(log_path.name.split(".", 1)[0] + suffix)


def check_indexes(log_path: Path, base: int, batches: list[tuple[int, int, int, int | None]]) -> IndexCheck:
    """Check ``.index``/``.timeindex`` beside ``log_path`` against ``batches`` given as
    (position, base_offset, last_offset, max_timestamp) in file order.

    Offset index: Kafka appends (last offset of a batch, that batch's position) (older
    brokers: the largest offset of the append that starts at position), so each entry must
    point at a batch start, with that batch's base offset ≤ the entry's offset. Time index:
    (max timestamp so far, last offset of the batch holding it); its offset must lie in a
    batch whose max timestamp equals the entry's. Positions of problems are index entry
    numbers' batch positions when known."""
    out = IndexCheck()
    by_pos = {b[0]: b for b in batches}
    last_offset = batches[-1][2] if batches else None
    idx = _sibling(log_path, ".index")
    if idx.is_file():
        entries = read_offset_index(idx)
        out.offset_entries = len(entries)
        prev = (-1, -1)
        for i, (rel, position) in enumerate(entries):
            offset = base + rel
            b = by_pos.get(position)
            if rel <= prev[0] or position <= prev[1]:
                out.problems.append(
                    (
                        position,
                        "index_mismatch",
                        f"{idx.name} entry {i} ({offset} @ {position}) is not after the previous one",
                    )
                )
            elif b is None:
                out.problems.append(
                    (
                        position,
                        "index_mismatch",
                        f"{idx.name} entry {i}: no batch starts at position {position} (offset {offset})",
                    )
                )
            elif not b[1] <= offset or (last_offset is not None and offset > last_offset):
                out.problems.append(
                    (
                        position,
                        "index_mismatch",
                        f"{idx.name} entry {i}: offset {offset} but the batch at {position} holds {b[1]}..{b[2]}",
                    )
                )
            prev = (rel, position)
    tidx = _sibling(log_path, ".timeindex")
    if tidx.is_file():
        entries = read_time_index(tidx)
        out.time_entries = len(entries)
        import bisect

        lasts = [b[2] for b in batches]
        for i, (ts, rel) in enumerate(entries):
            offset = base + rel
            k = bisect.bisect_left(lasts, offset)
            if k == len(batches) or batches[k][1] > offset:
                out.problems.append(
                    (None, "timeindex_mismatch", f"{tidx.name} entry {i}: offset {offset} is in no batch")
                )
            elif batches[k][3] != ts:
                out.problems.append(
                    (
                        batches[k][0],
                        "timeindex_mismatch",
                        f"{tidx.name} entry {i}: timestamp {ts} but the batch at {batches[k][0]} holding offset {offset} has max timestamp {batches[k][3]}",
                    )
                )
    return out


# -- the question: which records did a write of N bytes at position P carry ----------------------


@dataclass
class Coverage:
    """Batches covering ``[position, position + nbytes)`` of a segment."""

    position: int
    nbytes: int
    batches: list[Batch]
    records: dict[int, list[Record]]  # batch position -> records (when decoded)
    message_ids: dict[int, list[str]]  # batch position -> message ids
    damage: list[Damage]
    starts_on_boundary: bool
    ends_on_boundary: bool
    errors: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        notes = []
        if self.batches and not self.starts_on_boundary:
            b = self.batches[0]
            notes.append(
                f"position {self.position} is not a batch boundary: it is {self.position - b.position} bytes into "
                f"the batch at {b.position} (offsets {b.base_offset}..{b.last_offset})"
            )
        if self.batches and not self.ends_on_boundary:
            b = self.batches[-1]
            notes.append(
                f"the range ends {b.end - (self.position + self.nbytes)} bytes before the end of the batch at {b.position}"
            )
        if not self.batches:
            notes.append(f"no batch covers bytes {self.position}..{self.position + self.nbytes}")
        return "; ".join(notes) or None


def _index_start(path: Path | None, position: int) -> int:
    """Greatest ``.index`` position at or before ``position`` (0 without an index)."""
    if path is None:
        return 0
    idx = _sibling(path, ".index")
    if not idx.is_file():
        return 0
    start = 0
    for _rel, pos in read_offset_index(idx):
        if pos <= position:
            start = max(start, pos)
    return start


def batch_holding_offset(path: Path | str, offset: int) -> Batch | None:
    """The batch whose offsets include ``offset`` (headers only). The walk starts at the
    last ``.index`` entry below ``offset``: that entry's batch (or append) ended before it."""
    path = Path(path)
    m = SEGMENT_NAME.match(path.name) or LOOSE_NAME.search(path.name)
    base = int(m["base"]) if m else 0
    start = 0
    idx = _sibling(path, ".index")
    if idx.is_file():
        for rel, pos in read_offset_index(idx):
            if base + rel < offset:
                start = max(start, pos)
    with SegmentFile(path) as sf:
        walk = sf.walk()
        try:
            walk.start = start if start and walk.size_at(start, strict=True) else 0
            for item in walk:
                if isinstance(item, Batch):
                    if item.base_offset <= offset <= item.last_offset:
                        return item
                    if item.base_offset > offset:
                        return None
        finally:
            walk.close()
    return None


def batches_covering(
    source: Path | str | bytes | bytearray | mmap.mmap,
    position: int,
    nbytes: int,
    *,
    records: bool = True,
    header_name: str = DEFAULT_MESSAGE_ID_HEADER,
) -> Coverage:
    """The batches that a write of ``nbytes`` at file offset ``position`` put on disk, with
    their records and message ids (``records=False``: headers only).

    A path is mapped, not read whole; its ``.index`` (when present and consistent) lets the
    walk start near ``position`` instead of at the file's start."""
    if isinstance(source, (str, Path)):
        with SegmentFile(source) as sf:
            start = _index_start(Path(source), position)
            walk = sf.walk()
            if start and not walk.size_at(start, strict=True):
                start = 0
            walk.close()
            return _covering(sf.buf, position, nbytes, start, records, header_name)
    return _covering(source, position, nbytes, 0, records, header_name)


def _covering(buf, position: int, nbytes: int, start: int, records: bool, header_name: str) -> Coverage:
    walk = SegmentWalk(buf, start)
    end = position + max(nbytes, 0)
    cov = Coverage(position, nbytes, [], {}, {}, [], False, False)
    try:
        for item in walk:
            if isinstance(item, Damage):
                if item.position + item.skipped_bytes > position and item.position < max(end, position + 1):
                    cov.damage.append(item)
                if item.position >= end:
                    break
                continue
            if item.end <= position:
                continue
            if item.position >= max(end, position + 1):
                break
            cov.batches.append(item)
            if item.position == position:
                cov.starts_on_boundary = True
            if item.end == end:
                cov.ends_on_boundary = True
            if records:
                try:
                    recs = walk.records(item)
                except BatchError as exc:
                    cov.errors.append(f"batch at {item.position}: records not readable: {exc}")
                    continue
                cov.records[item.position] = recs
                cov.message_ids[item.position] = message_ids(recs, header_name)
    finally:
        walk.close()
    return cov


# -- the parser ----------------------------------------------------------------------------------


def _ts(raw: list[int | None], offset_us: int) -> pl.Series:
    s = pl.Series(raw, dtype=pl.Int64)
    s = pl.when(s.is_null() | (s < 0)).then(None).otherwise(s * 1000 + offset_us)
    return pl.select(s.cast(pl.Datetime("us"))).to_series()


def _header_strings(headers: list[tuple[str, bytes | None]]) -> list[str]:
    return [k if v is None else f"{k}={header_text(v)}" for k, v in headers]


class _Rows:
    """Column lists for one table, flushed as frames of ``CHUNK_ROWS``."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.cols: dict[str, list] = {n: [] for n in names}

    def __len__(self) -> int:
        return len(self.cols[self.names[0]])

    def take(self) -> dict[str, list]:
        cols, self.cols = self.cols, {n: [] for n in self.names}
        return cols


_CONSTANT = ("topic", "partition", "topic_id", "segment", "segment_base_offset")  # same on every row of a file
BATCH_COLS = [
    c for c in SEGMENT_BATCHES.parser_columns if c not in ("first_timestamp_at", "max_timestamp_at", *_CONSTANT)
]
_DERIVED = ("timestamp_at", "file_position", "batch_position", "headers")
RECORD_COLS = [c for c in SEGMENT_RECORDS.parser_columns if c not in (*_DERIVED, *_CONSTANT)]
RECORD_COLS += ["headers_flat", "headers_end"]


@register
class SegmentParser(Parser):
    kind = "segment"
    tables = ("segment_batches", "segment_records")
    version = "2"
    priority = 20
    decode_records = True  # False: batch headers only (segment_records stays empty)

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        name, head = PurePosixPath(probe.name).name, probe.head
        if SEGMENT_NAME.match(name) and partition_of(probe.name) is not None:
            if len(head) == 0:
                return True  # an empty active segment is still a segment
            if len(head) < 17:
                return False
            (length,) = struct.unpack_from(">i", head, 8)
            return head[16] in (0, 1, 2) and 14 <= length < 2**31 - 12
        # any other *.log: only when its first batch is a sane v2 batch whose CRC checks
        # (or, bigger than the probe, whose header is sane)
        if not name.endswith((".log", ".log.gz")) or len(head) < BATCH_HEADER or head[16] != 2:
            return False
        if LOG_OVERHEAD + _i32(head, 8) > len(head):
            return header_sane(head, 0)
        walk = SegmentWalk(head)
        try:
            return walk.size_at(0, strict=True) is not None
        finally:
            walk.close()

    def parse(self, ctx: ParseContext) -> Iterator[Chunk]:
        where = partition_of(ctx.name) or partition_of(ctx.path.as_posix())
        topic, partition = where or (None, None)
        if where is None:
            ctx.error(
                0,
                "no_partition_dir",
                "not in a <topic>-<partition> directory: topic and partition unknown",
                severity="info",
            )
        seg_name = PurePosixPath(ctx.name).name.removesuffix(".gz")
        m = SEGMENT_NAME.match(seg_name) or LOOSE_NAME.search(seg_name)
        seg_base = int(m["base"]) if m else None
        topic_id = read_topic_id(ctx.path.parent)
        header_name = ctx.manifest.message_id_header
        offset_us = round(ctx.manifest.offset_ms("segment") * 1000)
        const_b = {"topic": topic, "partition": partition, "topic_id": topic_id, "segment": seg_name}
        const_b["segment_base_offset"] = seg_base
        const_r = {"topic": topic, "partition": partition, "segment": seg_name}

        brows, rrows = _Rows(BATCH_COLS), _Rows(RECORD_COLS)
        index_rows: list[tuple[int, int, int, int | None]] = []
        prev_last: int | None = None
        damaged = False
        with SegmentFile(ctx.path, ctx) as sf:
            walk = sf.walk()
            try:
                for n_items, item in enumerate(walk):
                    if isinstance(item, Damage):
                        damaged = True
                        ctx.error(
                            item.position,
                            item.what,
                            item.message,
                            severity=item.severity,
                            skipped_bytes=item.skipped_bytes,
                        )
                        continue
                    b = item
                    if not b.crc_valid:
                        ctx.error(
                            b.position,
                            "bad_crc",
                            f"batch at {b.position} (offsets {b.base_offset}..{b.last_offset}): stored CRC {b.crc} "
                            "does not match its content; records not decoded",
                            skipped_bytes=b.size - (BATCH_HEADER if b.magic == 2 else LOG_OVERHEAD),
                        )
                    if b.problem:
                        ctx.error(b.position, "bad_wrapper", b.problem, skipped_bytes=b.size)
                    if prev_last is None and seg_base is not None and b.base_offset < seg_base:
                        ctx.error(
                            b.position,
                            "offset_order",
                            f"first offset {b.base_offset} is below the segment base {seg_base}",
                        )
                    if prev_last is not None and b.base_offset <= prev_last:
                        ctx.error(
                            b.position,
                            "offset_order",
                            f"batch at {b.position} starts at offset {b.base_offset}, not after the previous last offset {prev_last}",
                        )
                    prev_last = b.last_offset
                    index_rows.append((b.position, b.base_offset, b.last_offset, b.max_timestamp))
                    self._batch_row(brows, b, walk)
                    if self.decode_records and ctx.manifest.segment_records and b.crc_valid and not b.problem:
                        self._record_rows(ctx, rrows, b, walk, header_name)
                    if len(brows) >= CHUNK_ROWS:
                        yield "segment_batches", self._batch_frame(brows, const_b, offset_us)
                    if len(rrows) >= CHUNK_ROWS:
                        yield "segment_records", self._record_frame(rrows, const_r, offset_us)
                    if n_items % 4096 == 0:
                        ctx.progress(b.end)
            finally:
                walk.close()
            ctx.progress(sf.size)
        if len(brows):
            yield "segment_batches", self._batch_frame(brows, const_b, offset_us)
        if len(rrows):
            yield "segment_records", self._record_frame(rrows, const_r, offset_us)
        if seg_base is not None:
            # Index entries that disagree with a damaged segment follow from the damage
            # already reported: info, not a second error.
            for pos, what, message in check_indexes(ctx.path, seg_base, index_rows).problems:
                if damaged:
                    ctx.error(pos, what, f"{message} (the segment is damaged, see above)", severity="info")
                else:
                    ctx.error(pos, what, message)

    @staticmethod
    def _batch_row(rows: _Rows, b: Batch, walk: SegmentWalk) -> None:
        c = rows.cols
        c["position"].append(b.position)
        c["file_position"].append(b.position)
        c["batch_bytes"].append(b.size)
        c["base_offset"].append(b.base_offset)
        c["last_offset"].append(b.last_offset)
        c["magic"].append(b.magic)
        c["crc"].append(b.crc)
        c["crc_valid"].append(b.crc_valid)
        c["compression"].append(b.compression)
        c["timestamp_type"].append(b.timestamp_type)
        c["first_timestamp_raw"].append(b.first_timestamp)
        c["max_timestamp_raw"].append(b.max_timestamp)
        c["producer_id"].append(b.producer_id)
        c["producer_epoch"].append(b.producer_epoch)
        c["base_sequence"].append(b.base_sequence)
        c["transactional"].append(b.transactional)
        c["control"].append(b.control)
        c["control_type"].append(control_type(walk, b) if b.control and b.crc_valid else None)
        c["records"].append(b.records_count)
        c["partition_leader_epoch"].append(b.partition_leader_epoch)

    @staticmethod
    def _record_rows(ctx: ParseContext, rows: _Rows, b: Batch, walk: SegmentWalk, header_name: str) -> None:
        try:
            recs = walk.summaries(b)
        except BatchError as exc:
            ctx.error(
                b.position,
                "bad_records",
                f"batch at {b.position} (offsets {b.base_offset}..{b.last_offset}): records not readable: {exc}",
                skipped_bytes=b.size - BATCH_HEADER,
            )
            return
        c = rows.cols
        n = len(recs)
        c["position"].extend([b.position] * n)
        c["offset"].extend([r[0] for r in recs])
        c["record_in_batch"].extend(range(n))
        c["timestamp_raw"].extend([r[1] for r in recs] if b.magic else [None] * n)
        c["key_bytes"].extend([r[2] for r in recs])
        c["value_bytes"].extend([r[3] for r in recs])
        flat, ends, mids = c["headers_flat"], c["headers_end"], c["message_id"]
        for r in recs:
            mid = None
            if r[4]:
                for k, v in r[4]:
                    if v is None:
                        flat.append(k)
                        continue
                    t = header_text(v)
                    flat.append(f"{k}={t}")
                    if mid is None and k == header_name:
                        mid = t
            ends.append(len(flat))
            mids.append(mid)

    @staticmethod
    def _batch_frame(rows: _Rows, const: dict[str, Any], offset_us: int) -> pl.DataFrame:
        cols = rows.take()
        n = len(cols["position"])
        data: dict[str, Any] = {k: [v] * n for k, v in const.items()}
        data.update(cols)
        data["first_timestamp_at"] = _ts(cols["first_timestamp_raw"], offset_us)
        data["max_timestamp_at"] = _ts(cols["max_timestamp_raw"], offset_us)
        schema = SEGMENT_BATCHES.parser_columns
        return pl.DataFrame({k: pl.Series(k, data[k], dtype=schema[k]) for k in schema})

    @staticmethod
    def _record_frame(rows: _Rows, const: dict[str, Any], offset_us: int) -> pl.DataFrame:
        cols = rows.take()
        n = len(cols["position"])
        schema = SEGMENT_RECORDS.parser_columns
        data: dict[str, Any] = {k: pl.repeat(v, n, dtype=schema[k], eager=True) for k, v in const.items()}
        # headers: one flat list of strings and each record's end in it -> an Arrow list array
        offsets = pa.array([0, *cols.pop("headers_end")], pa.int32())
        data["headers"] = pl.from_arrow(
            pa.ListArray.from_arrays(offsets, pa.array(cols.pop("headers_flat"), pa.string()))
        )
        data.update(cols)
        data["file_position"] = data["batch_position"] = cols["position"]
        data["timestamp_at"] = _ts(cols["timestamp_raw"], offset_us)
        return pl.DataFrame({k: pl.Series(k, data[k], dtype=schema[k]) for k in schema})

    @classmethod
    def summarise(cls, tables: dict[str, pl.DataFrame]) -> list[tuple[str, pl.DataFrame]]:
        b = tables.get("segment_batches")
        if b is None or b.is_empty():
            return []
        summary = b.group_by("topic", "partition", "segment", "magic", "compression").agg(
            pl.len().alias("batches"),
            pl.col("records").sum().alias("records"),
            pl.col("base_offset").min().alias("first_offset"),
            pl.col("last_offset").max().alias("last_offset"),
            (~pl.col("crc_valid")).sum().alias("bad_crc"),
            pl.col("control").sum().alias("control"),
            pl.col("first_timestamp_at").min().alias("first_at"),
            pl.col("max_timestamp_at").max().alias("last_at"),
        )
        return [("segment batches", summary.sort("magic", "compression"))]


# -- the other files of a Kafka log directory ------------------------------------------------------


def _name(probe: Probe) -> str:
    return PurePosixPath(probe.name).name


@register
class SegmentIndexParser(Parser):
    kind = "segment-index"
    priority = 20
    skip_reason = "read with its .log segment (cross-checked against the batches)"

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        name = _name(probe)
        if not INDEX_NAME.match(name) or probe.gzipped:
            return False
        entry = 12 if name.endswith(".timeindex") else 8 if name.endswith(".index") else 40
        return probe.size % entry == 0 or name.endswith(".txnindex")


@register
class PartitionMetadataParser(Parser):
    kind = "partition-metadata"
    priority = 20
    skip_reason = "read with the partition's .log segments (topic_id)"

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        return _name(probe) == "partition.metadata" and probe.head.startswith(b"version:")


@register
class KafkaLogDirFileParser(Parser):
    """Other files of a Kafka log directory: recognised so they are not misread."""

    kind = "kafka-log-dir-file"
    priority = 20
    skip_reason = "Kafka log directory bookkeeping (checkpoint, snapshot, quorum state or broker metadata): no rows"

    NAMES = re.compile(
        r"^(leader-epoch-checkpoint|quorum-state|meta\.properties|bootstrap\.checkpoint|"
        r"(recovery-point-offset|replication-offset|log-start-offset|cleaner-offset)-checkpoint|"
        r"\d{20}\.snapshot|\d{20}-\d{10}\.checkpoint|\.lock)$"
    )

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        return bool(cls.NAMES.match(_name(probe)))


# -- kforensics dump segment -------------------------------------------------------------------------


def _batch_line(b: Batch) -> str:
    ts_name = b.timestamp_type or "NoTimestampType"
    if b.magic == 2:
        return (
            f"baseOffset: {b.base_offset} lastOffset: {b.last_offset} count: {b.records_count} "
            f"baseSequence: {b.base_sequence} lastSequence: {b.last_sequence} producerId: {b.producer_id} "
            f"producerEpoch: {b.producer_epoch} partitionLeaderEpoch: {b.partition_leader_epoch} "
            f"isTransactional: {str(b.transactional).lower()} isControl: {str(b.control).lower()} "
            f"position: {b.position} {ts_name}: {b.max_timestamp} size: {b.size} magic: 2 "
            f"compresscodec: {b.compression} crc: {b.crc} isvalid: {str(b.crc_valid).lower()}"
        )
    return (
        f"offset: {b.last_offset} baseOffset: {b.base_offset} count: {b.records_count} position: {b.position} "
        f"{ts_name}: {b.max_timestamp if b.max_timestamp is not None else -1} size: {b.size} magic: {b.magic} "
        f"compresscodec: {b.compression} crc: {b.crc} isvalid: {str(b.crc_valid).lower()}"
    )


def _record_line(b: Batch, r: Record, i: int) -> str:
    ts_name = b.timestamp_type or "NoTimestampType"
    seq = b.base_sequence + i if b.base_sequence >= 0 else -1
    keys = ", ".join(k for k, _ in r.headers)
    hdrs = ", ".join(_header_strings(r.headers))
    return (
        f"| offset: {r.offset} {ts_name}: {r.timestamp} keySize: {-1 if r.key is None else len(r.key)} "
        f"valueSize: {-1 if r.value is None else len(r.value)} sequence: {seq} headerKeys: [{keys}] headers: [{hdrs}]"
    )


def _batch_dict(b: Batch, mids: list[str] | None) -> dict[str, Any]:
    return {
        "position": b.position,
        "batch_bytes": b.size,
        "base_offset": b.base_offset,
        "last_offset": b.last_offset,
        "records": b.records_count,
        "magic": b.magic,
        "producer_id": b.producer_id,
        "producer_epoch": b.producer_epoch,
        "base_sequence": b.base_sequence,
        "partition_leader_epoch": b.partition_leader_epoch,
        "transactional": b.transactional,
        "control": b.control,
        "compression": b.compression,
        "timestamp_type": b.timestamp_type,
        "first_timestamp_raw": b.first_timestamp,
        "max_timestamp_raw": b.max_timestamp,
        "crc": b.crc,
        "crc_valid": b.crc_valid,
        "message_ids": mids,
    }


@dump_command
@click.command("segment")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--position", "position", type=click.IntRange(min=0), default=None, help="Byte offset of a write in the file."
)
@click.option("--bytes", "nbytes", type=click.IntRange(min=0), default=None, help="Bytes written at --position.")
@click.option("--offset", "offset", type=int, default=None, help="Only the batch holding this record offset.")
@click.option("--records", is_flag=True, help="Also print every record: offset, timestamp, sizes, headers.")
@click.option("--batches-only", is_flag=True, help="Batch headers only: never decode record bodies (fastest).")
@click.option(
    "--message-id-header", default=DEFAULT_MESSAGE_ID_HEADER, show_default=True, help="Header holding message ids."
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
def dump_segment(
    file: Path,
    position: int | None,
    nbytes: int | None,
    offset: int | None,
    records: bool,
    batches_only: bool,
    message_id_header: str,
    fmt: str,
) -> None:
    """Print a Kafka .log segment's batches like Kafka's dump-log tool.

    With --position P --bytes N: only the batches a write of N bytes at file offset P
    carried, with their message ids (and records with --records); says so when P is not
    a batch boundary. With --offset O: the batch holding record offset O. Damage (bad
    CRC, partial tail, skipped ranges) is printed in place.
    """
    import json

    if (position is None) != (nbytes is None):
        raise click.UsageError("--position and --bytes go together")
    if batches_only and records:
        raise click.UsageError("--records and --batches-only exclude each other")
    if offset is not None:
        if position is not None:
            raise click.UsageError("--offset and --position exclude each other")
        holder = batch_holding_offset(file, offset)
        if holder is None:
            raise click.ClickException(f"no batch in {file.name} holds offset {offset}")
        position, nbytes = holder.position, holder.size
    decode = not batches_only and (records or position is not None)
    out: list[dict[str, Any]] = []
    echo = click.echo if fmt == "text" else (lambda *a, **k: None)
    echo(f"Dumping {file}")
    m = SEGMENT_NAME.match(file.name)
    if m:
        echo(f"Log starting offset: {int(m['base'])}")
    if position is not None:
        cov = batches_covering(file, position, nbytes or 0, records=decode, header_name=message_id_header)
        for item in sorted([*cov.damage, *cov.batches], key=lambda x: x.position):
            if isinstance(item, Damage):
                echo(
                    f"!! position: {item.position} skipped: {item.skipped_bytes} {item.what} ({item.severity}): {item.message}"
                )
                continue
            b = item
            mids = cov.message_ids.get(b.position) if decode else None
            line = _batch_line(b)
            if mids is not None:
                line += f" messageIds: [{', '.join(mids)}]"
            echo(line)
            recs = cov.records.get(b.position, [])
            if records:
                for i, r in enumerate(recs):
                    echo(_record_line(b, r, i))
            out.append(_batch_dict(b, mids) | ({"records_list": [_record_json(r) for r in recs]} if records else {}))
        for e in cov.errors:
            echo(f"!! {e}")
        note = cov.note
        if note:
            click.echo(f"note: {note}", err=True)
        if fmt == "json":
            doc = {"file": str(file), "position": position, "bytes": nbytes, "note": note, "batches": out}
            doc["damage"] = [dataclasses.asdict(d) for d in cov.damage]
            click.echo(json.dumps(doc, indent=1))
        return
    damage: list[dict[str, Any]] = []
    with SegmentFile(file) as sf:
        walk = sf.walk()
        try:
            for item in walk:
                if isinstance(item, Damage):
                    echo(
                        f"!! position: {item.position} skipped: {item.skipped_bytes} {item.what} ({item.severity}): {item.message}"
                    )
                    damage.append(dataclasses.asdict(item))
                    continue
                recs: list[Record] = []
                mids = None
                if decode and item.crc_valid:
                    try:
                        recs = walk.records(item)
                        mids = message_ids(recs, message_id_header)
                    except BatchError as exc:
                        echo(f"!! position: {item.position} records not readable: {exc}")
                line = _batch_line(item)
                echo(line if mids is None else f"{line} messageIds: [{', '.join(mids)}]")
                for i, r in enumerate(recs):
                    echo(_record_line(item, r, i))
                if fmt == "json":
                    out.append(
                        _batch_dict(item, mids) | ({"records_list": [_record_json(r) for r in recs]} if records else {})
                    )
        finally:
            walk.close()
    if fmt == "json":
        click.echo(json.dumps({"file": str(file), "batches": out, "damage": damage}, indent=1))


def _record_json(r: Record) -> dict[str, Any]:
    return {
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key_bytes": None if r.key is None else len(r.key),
        "value_bytes": None if r.value is None else len(r.value),
        "headers": _header_strings(r.headers),
    }
