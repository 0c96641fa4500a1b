"""Record batch decoding on hostile bytes: only BatchError, bounded output."""

from __future__ import annotations

import resource
import struct

import cramjam
import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.records import (
    BATCH_HEADER_BYTES,
    BatchError,
    bounded_decompress,
    decode_records,
    read_batch_header,
    read_legacy_message,
)


def _batch(records_section: bytes, codec: int, count: int) -> bytes:
    """A magic 2 batch around an (already compressed) records section, with a valid CRC."""
    body = struct.pack(">hiqqqhii", codec, count - 1, 0, 0, -1, -1, -1, count) + records_section
    crc = crc32c.crc32c(body)
    return struct.pack(">qiibI", 0, len(body) + 9, 0, 2, crc) + body


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_raise_only_batch_error(data):
    try:
        h = read_batch_header(data, 0)
        decode_records(h, data, 0, max_bytes=1 << 20)
    except BatchError:
        pass
    try:
        read_legacy_message(data, 0)
    except BatchError:
        pass


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 4), st.integers(1, 1000))
def test_garbage_records_sections_raise_only_batch_error(section, codec, count):
    data = _batch(section, codec, count)
    h = read_batch_header(data, 0)
    assert h.size == len(data)
    try:
        decode_records(h, data, 0, max_bytes=1 << 20)
    except BatchError:
        pass


@pytest.mark.parametrize("codec", ["gzip", "zstd", "lz4", "snappy"])
def test_decompression_bombs_are_refused_without_the_memory(codec):
    payload = b"\0" * (64 * 1024 * 1024)
    if codec == "snappy":
        compressed = bytes(cramjam.snappy.compress_raw(payload))
    else:
        compressed = bytes(getattr(cramjam, codec).compress(payload))
    del payload
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BatchError, match="expands beyond 4194304 bytes"):
        bounded_decompress(codec, compressed, max_bytes=4 * 1024 * 1024)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 48 * 1024, f"{codec}: peak memory grew by {grown_kib} KiB"


def test_bomb_inside_a_batch_is_a_batch_error():
    section = bytes(cramjam.zstd.compress(b"\0" * (32 * 1024 * 1024)))
    data = _batch(section, 4, 1)
    h = read_batch_header(data, 0)
    with pytest.raises(BatchError, match="zstd data expands beyond"):
        decode_records(h, data, 0, max_bytes=1024 * 1024)
    assert len(data) - BATCH_HEADER_BYTES == len(section)
