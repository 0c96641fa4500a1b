"""Kafka record batches (magic 2) and legacy message sets (magic 0/1), shared by the
wire ingest (produce requests) and the segment reader (``.log`` files).

Layout of a magic 2 batch (big-endian), offsets from the batch start::

    0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
    17 crc u32 | 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64
    35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32
    57 recordCount i32 | 61 records...

The CRC32C covers bytes 21..end, so base offset and leader epoch (which the broker
rewrites) sit outside it and a batch keeps its producer CRC on disk. Decompression is
bounded: a batch that claims to expand beyond ``max_bytes`` raises :class:`BatchError`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import cramjam
import crc32c

BATCH_HEADER_BYTES = 61
LOG_OVERHEAD = 12  # offset + length prefix of every batch / legacy message
MAX_DECOMPRESSED = 64 * 1024 * 1024
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
XERIAL_MAGIC = b"\x82SNAPPY\x00"

_HEADER = struct.Struct(">qiibIhiqqqhii")


class BatchError(ValueError):
    """A batch that cannot be read; ``position`` is relative to the buffer given."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


@dataclass(slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int  # bytes after the length field
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int  # ms since epoch
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Whole batch size including the 12-byte offset/length prefix."""
        return LOG_OVERHEAD + self.batch_length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> str:
        codec = self.attributes & 0x07
        return CODECS[codec] if codec < len(CODECS) else f"unknown-{codec}"

    @property
    def timestamp_type(self) -> str:
        return "LogAppendTime" if self.attributes & 0x08 else "CreateTime"

    @property
    def transactional(self) -> bool:
        return bool(self.attributes & 0x10)

    @property
    def control(self) -> bool:
        return bool(self.attributes & 0x20)


def read_batch_header(buf: bytes | memoryview, pos: int = 0) -> BatchHeader:
    """Decode a magic 2 batch header at ``pos``; checks magic and length sanity only."""
    if len(buf) - pos < BATCH_HEADER_BYTES:
        if len(buf) - pos >= 17 and buf[pos + 16] != 2:
            raise BatchError(f"magic {buf[pos + 16]} is not a v2 record batch", pos)
        raise BatchError(f"truncated batch header: {len(buf) - pos} of {BATCH_HEADER_BYTES} bytes", pos)
    h = BatchHeader(*_HEADER.unpack_from(buf, pos))
    if h.magic != 2:
        raise BatchError(f"magic {h.magic} is not a v2 record batch", pos)
    if h.batch_length < BATCH_HEADER_BYTES - LOG_OVERHEAD:
        raise BatchError(f"batch length {h.batch_length} is shorter than a batch header", pos)
    h.crc &= 0xFFFFFFFF
    return h


def batch_crc_valid(buf: bytes | memoryview, pos: int, header: BatchHeader) -> bool:
    end = pos + header.size
    if end > len(buf):
        return False
    return crc32c.crc32c(buf[pos + 21 : end]) == header.crc


def bounded_decompress(codec: str, data: bytes | memoryview, max_bytes: int = MAX_DECOMPRESSED) -> bytes:
    """Decompress a batch's records section, never producing more than ``max_bytes``."""
    if codec == "none":
        return bytes(data)
    if codec == "gzip":
        d = zlib.decompressobj(wbits=47)  # gzip or zlib header
        try:
            out = d.decompress(bytes(data), max_bytes + 1)
        except zlib.error as exc:
            raise BatchError(f"gzip data is corrupt: {exc}") from None
        if len(out) > max_bytes or d.unconsumed_tail:
            raise BatchError(f"gzip data expands beyond {max_bytes} bytes")
        if not d.eof:
            raise BatchError("gzip data is cut short")
        return out
    if codec == "snappy":
        if bytes(data[:8]) == XERIAL_MAGIC:
            return _xerial(data, max_bytes)
        return _snappy_raw(data, max_bytes)
    if codec in ("lz4", "zstd"):
        mod = cramjam.lz4 if codec == "lz4" else cramjam.zstd
        size = min(max_bytes, max(4 * len(data), 64 * 1024))
        while True:
            buf = bytearray(size)
            try:
                n = mod.decompress_into(bytes(data), buf)
                return bytes(buf[:n])
            except cramjam.DecompressionError as exc:
                if "whole buffer" not in str(exc):
                    raise BatchError(f"{codec} data is corrupt: {exc}") from None
                if size >= max_bytes:
                    raise BatchError(f"{codec} data expands beyond {max_bytes} bytes") from None
                size = min(max_bytes, size * 4)
    raise BatchError(f"unknown compression codec {codec}")


def _snappy_raw(data: bytes | memoryview, max_bytes: int) -> bytes:
    try:
        n = cramjam.snappy.decompress_raw_len(bytes(data))
    except cramjam.DecompressionError as exc:
        raise BatchError(f"snappy data is corrupt: {exc}") from None
    if n > max_bytes:
        raise BatchError(f"snappy data expands beyond {max_bytes} bytes ({n})")
    try:
        return bytes(cramjam.snappy.decompress_raw(bytes(data)))
    except cramjam.DecompressionError as exc:
        raise BatchError(f"snappy data is corrupt: {exc}") from None


def _xerial(data: bytes | memoryview, max_bytes: int) -> bytes:
    """Snappy in the xerial framing Java clients write: 16-byte header, [len][block]..."""
    pos, out, total = 16, [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise BatchError("xerial snappy block length cut short")
        (n,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if n < 0 or pos + n > len(data):
            raise BatchError(f"xerial snappy block of {n} bytes overruns the data")
        block = _snappy_raw(data[pos : pos + n], max_bytes - total)
        total += len(block)
        out.append(block)
        pos += n
    return b"".join(out)


@dataclass(slots=True)
class Record:
    offset: int
    timestamp: int  # ms since epoch
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    position: int  # byte offset of the record within the (decompressed) records section


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint (records use signed zig-zag encoding)."""
    if pos + 1 < len(buf):
        b = buf[pos]
        if b < 0x80:  # one byte: the common case for deltas and counts
            return (b >> 1) ^ -(b & 1), pos + 1
        c = buf[pos + 1]
        if c < 0x80:  # two bytes: record and value lengths up to 8 KiB
            v = (b & 0x7F) | (c << 7)
            return (v >> 1) ^ -(v & 1), pos + 2
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise BatchError("varint runs past the end of the data", pos)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise BatchError("varint longer than 10 bytes", pos)


def decode_records(
    header: BatchHeader, buf: bytes | memoryview, pos: int, max_bytes: int = MAX_DECOMPRESSED
) -> list[Record]:
    """Decode the records of the batch at ``pos`` (decompressing, bounded). In a
    LogAppendTime batch every record's timestamp is the batch's max timestamp (the broker's
    append time), as Kafka's ``DefaultRecordBatch`` reads it."""
    end = pos + header.size
    if end > len(buf):
        raise BatchError(f"batch of {header.size} bytes runs past the end of the data", pos)
    body = bounded_decompress(header.compression, buf[pos + BATCH_HEADER_BYTES : end], max_bytes)
    try:
        return _decode_body(header, body, True)
    except IndexError:
        raise BatchError("a record runs past the end of the batch", len(body)) from None


RecordSummary = tuple[int, int, "int | None", "int | None", list[tuple[str, bytes | None]]]


def record_summaries(
    header: BatchHeader, buf: bytes | memoryview, pos: int, max_bytes: int = MAX_DECOMPRESSED
) -> list[RecordSummary]:
    """Like :func:`decode_records` but without copying keys and values: one
    ``(offset, timestamp, key_bytes, value_bytes, headers)`` tuple per record, sizes None
    for null. The fast path for tables that keep only sizes and headers."""
    end = pos + header.size
    if end > len(buf):
        raise BatchError(f"batch of {header.size} bytes runs past the end of the data", pos)
    body = bounded_decompress(header.compression, buf[pos + BATCH_HEADER_BYTES : end], max_bytes)
    try:
        return _decode_body(header, body, False)
    except IndexError:
        raise BatchError("a record runs past the end of the batch", len(body)) from None


def _decode_body(header: BatchHeader, body: bytes, payload: bool) -> list:
    """The record loop. Varints are read inline when they fit in one byte (deltas and
    counts nearly always do); ``_varint`` takes the rest. Reading past the end raises
    IndexError, turned into :class:`BatchError` by the caller. ``payload``: Records with
    keys and values, else summary tuples with their sizes."""
    n = len(body)
    records: list[Record] = []
    append = records.append
    base_offset = header.base_offset
    fixed_ts = header.max_timestamp if header.attributes & 0x08 else None  # LogAppendTime
    first_ts = header.first_timestamp
    varint = _varint
    p = 0
    for _ in range(header.records_count):
        start = p
        b = body[p]
        if b < 0x80:
            length, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            length, p = varint(body, p)
        fields_start, rec_end = p, p + length
        if length < 0 or rec_end > n:
            raise BatchError(f"record of {length} bytes runs past the end of the batch", p)
        p += 1  # attributes
        b = body[p]
        if b < 0x80:
            ts_delta, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            ts_delta, p = varint(body, p)
        b = body[p]
        if b < 0x80:
            off_delta, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            off_delta, p = varint(body, p)
        b = body[p]
        if b < 0x80:
            k, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            k, p = varint(body, p)
        if k < 0:
            key = None
        else:
            if p + k > n:
                raise BatchError(f"field of {k} bytes runs past the end of the record", p)
            key, p = body[p : p + k] if payload else k, p + k
        b = body[p]
        if b < 0x80:
            k, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            k, p = varint(body, p)
        if k < 0:
            value = None
        else:
            if p + k > n:
                raise BatchError(f"field of {k} bytes runs past the end of the record", p)
            value, p = body[p : p + k] if payload else k, p + k
        b = body[p]
        if b < 0x80:
            n_headers, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            n_headers, p = varint(body, p)
        if n_headers < 0 or n_headers > length:
            raise BatchError(f"record claims {n_headers} headers", p)
        hdrs: list[tuple[str, bytes | None]] = []
        for _h in range(n_headers):
            b = body[p]
            if b < 0x80:
                k, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                k, p = varint(body, p)
            if k < 0 or p + k > n:
                raise BatchError(f"header key of {k} bytes", p)
            hk, p = body[p : p + k].decode("utf-8", "replace"), p + k
            b = body[p]
            if b < 0x80:
                k, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                k, p = varint(body, p)
            if k < 0:
                hdrs.append((hk, None))
                continue
            if p + k > n:
                raise BatchError(f"field of {k} bytes runs past the end of the record", p)
            hdrs.append((hk, body[p : p + k]))
            p += k
        if p != rec_end:
            raise BatchError(f"record length {length} disagrees with its fields ({p - fields_start} bytes read)", p)
        ts = fixed_ts if fixed_ts is not None else first_ts + ts_delta
        append(
            Record(base_offset + off_delta, ts, key, value, hdrs, start)
            if payload
            else (base_offset + off_delta, ts, key, value, hdrs)
        )
    if p != n:
        raise BatchError(f"{n - p} bytes left after {header.records_count} records", p)
    return records


def header_text(value: bytes | None) -> str | None:
    """A header value as text: printable UTF-8 as is, 4 or 8 other bytes as a big-endian
    integer, anything else as hex (DESIGN: message ids)."""
    if value is None:
        return None
    try:
        text = value.decode("utf-8")
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    if len(value) in (4, 8):
        return str(int.from_bytes(value, "big", signed=True))
    return value.hex()


def message_ids(records: list[Record], header_name: str) -> list[str]:
    out = []
    for r in records:
        for k, v in r.headers:
            if k == header_name:
                t = header_text(v)
                if t is not None:
                    out.append(t)
                break
    return out


# -- legacy message sets (magic 0 and 1) --------------------------------------------------

_LEGACY = struct.Struct(">qiIbb")  # offset, size, crc, magic, attributes


@dataclass(slots=True)
class LegacyMessage:
    offset: int
    size: int  # whole entry including the 12-byte prefix
    crc: int
    crc_valid: bool
    magic: int
    attributes: int
    timestamp: int | None  # magic 1 only
    key: bytes | None
    value: bytes | None

    @property
    def compression(self) -> str:
        codec = self.attributes & 0x07
        return CODECS[codec] if codec < len(CODECS) else f"unknown-{codec}"


def read_legacy_message(buf: bytes | memoryview, pos: int) -> LegacyMessage:
    """One magic 0/1 message at ``pos`` (offset, size, crc, magic, attributes, [ts], key, value)."""
    if len(buf) - pos < LOG_OVERHEAD + 6:
        raise BatchError("truncated legacy message header", pos)
    offset, size, crc, magic, attributes = _LEGACY.unpack_from(buf, pos)
    if magic not in (0, 1):
        raise BatchError(f"magic {magic} is not a legacy message", pos)
    end = pos + LOG_OVERHEAD + size
    if size < 14 or end > len(buf):
        raise BatchError(f"legacy message size {size} overruns the data", pos)
    p = pos + LOG_OVERHEAD + 6
    timestamp = None
    if magic == 1:
        (timestamp,) = struct.unpack_from(">q", buf, p)
        p += 8
    fields: list[bytes | None] = []
    for _ in range(2):
        if p + 4 > end:
            raise BatchError("legacy message key/value cut short", p)
        (n,) = struct.unpack_from(">i", buf, p)
        p += 4
        if n < 0:
            fields.append(None)
            continue
        if p + n > end:
            raise BatchError(f"legacy message field of {n} bytes overruns the message", p)
        fields.append(bytes(buf[p : p + n]))
        p += n
    valid = zlib.crc32(buf[pos + 16 : end]) == crc
    return LegacyMessage(offset, LOG_OVERHEAD + size, crc, valid, magic, attributes, timestamp, fields[0], fields[1])


def legacy_inner_messages(msg: LegacyMessage, max_bytes: int = MAX_DECOMPRESSED) -> list[LegacyMessage]:
    """Messages inside a compressed wrapper message (its value is a compressed message set)."""
    if msg.compression == "none" or msg.value is None:
        return []
    data = bounded_decompress(msg.compression, msg.value, max_bytes)
    out, p = [], 0
    while p < len(data):
        inner = read_legacy_message(data, p)
        out.append(inner)
        p += inner.size
    return out
