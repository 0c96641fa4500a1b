"""Record batch decoding on hostile bytes: only BatchError, bounded output."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import cramjam
import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.records import (
    BATCH_HEADER_BYTES,
    BatchError,
    decode_records,
    read_batch_header,
    read_legacy_message,
)

REPO = Path(__file__).resolve().parents[2]


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


# Run in a child: VmHWM starts afresh at exec, so the peak is the decompression's own (an
# in-process ru_maxrss would hide it under whatever the test process peaked at before).
_BOMB = """
import sys, cramjam
from pipeline.ingest.records import BatchError, bounded_decompress
def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
codec = sys.argv[1]
payload = b"\\0" * (64 * 1024 * 1024)
if codec == "snappy":
    compressed = bytes(cramjam.snappy.compress_raw(payload))
else:
    compressed = bytes(getattr(cramjam, codec).compress(payload))
del payload
before = peak_kib()
try:
    bounded_decompress(codec, compressed, max_bytes=4 * 1024 * 1024)
    print("ACCEPTED", 0)
except BatchError as exc:
    print(exc, "|", peak_kib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from /proc")
@pytest.mark.parametrize("codec", ["gzip", "zstd", "lz4", "snappy"])
def test_decompression_bombs_are_refused_without_the_memory(codec):
    proc = subprocess.run(
        [sys.executable, "-c", _BOMB, codec],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.returncode == 0, proc.stderr
    message, grown_kib = proc.stdout.strip().rsplit("|", 1)
    assert "data expands beyond 4194304 bytes" in message, message
    assert int(grown_kib) < 48 * 1024, f"{codec}: peak memory grew by {grown_kib} KiB"


def test_bomb_inside_a_batch_is_a_batch_error():
    section = bytes(cramjam.zstd.compress(b"\0" * (32 * 1024 * 1024)))
    data = _batch(section, 4, 1)
    h = read_batch_header(data, 0)
    with pytest.raises(BatchError, match="zstd data expands beyond"):
        decode_records(h, data, 0, max_bytes=1024 * 1024)
    assert len(data) - BATCH_HEADER_BYTES == len(section)
