"""Untrusted bytes: the decoder raises only BatchError, the walk never raises and always
accounts for every byte."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest.records import BatchError, decode_records, read_batch_header
from pipeline.ingest.segments import SegmentWalk


def _batch(body: bytes, codec: int, count: int) -> bytearray:
    buf = bytearray(61) + body
    struct.pack_into(">qiib", buf, 0, 0, len(buf) - 12, 0, 2)
    struct.pack_into(">hiqqqhii", buf, 21, codec, max(count - 1, 0), 0, 0, -1, -1, -1, count)
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return buf


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300), codec=st.integers(0, 7), count=st.integers(-3, 40))
def test_decode_records_raises_only_batch_error(body, codec, count):
    buf = _batch(body, codec, count)
    h = read_batch_header(buf)
    try:
        decode_records(h, buf, 0, max_bytes=1 << 16)
    except BatchError:
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_walk_tiles_any_input(data):
    walk = SegmentWalk(data)
    covered = 0
    for item in walk:
        covered += item.size if hasattr(item, "crc") else item.skipped_bytes
    walk.close()
    assert covered == len(data)


ORDERS_LOG = (
    Path(__file__).resolve().parents[2] / "fixtures/segments/generated/orders.eu-west_1-3/00000000000000000100.log"
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 8967), st.integers(0, 255)), max_size=12),
    cut=st.integers(0, 8968),
)
def test_parser_survives_mutated_real_segments(tmp_path_factory, edits, cut):
    from pipeline.ingest.segments import SegmentParser
    from pipeline.registry import ParseContext
    from pipeline.runner import check_frame

    data = bytearray(ORDERS_LOG.read_bytes())
    for at, value in edits:
        data[at] = value
    d = tmp_path_factory.mktemp("m") / "orders-3"
    d.mkdir()
    f = d / "00000000000000000100.log"
    f.write_bytes(bytes(data[:cut]))
    ctx = ParseContext(f, "orders-3/00000000000000000100.log", "fuzz")
    batch_bytes = 0
    for table, frame in SegmentParser().parse(ctx):
        check_frame(SegmentParser, table, frame)
        if table == "segment_batches":
            batch_bytes += frame["batch_bytes"].sum()
    assert all(e.position is None or 0 <= e.position <= cut for e in ctx.errors)
    assert batch_bytes <= cut
