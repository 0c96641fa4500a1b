"""records.py: the batch decoder shared by the wire and segment ingest, checked against
batches a real client library built and against kafka-python's own reader."""

from __future__ import annotations

import gzip
import struct
import zlib

import crc32c
import pytest

from pipeline.ingest.records import (
    BatchError,
    batch_crc_valid,
    bounded_decompress,
    decode_records,
    header_text,
    legacy_inner_messages,
    message_ids,
    read_batch_header,
    read_legacy_message,
)

pytest.importorskip("kafka")
from segments_testlib import T_CODECS, reference_batches  # noqa: E402


@pytest.mark.parametrize("codec", T_CODECS)
def test_v2_batch_every_codec_equals_reference(gen, codec):
    recs = [
        (gen.T0 + i, f"k{i}".encode(), b"payload-" * (20 + i), [("message-id", f"id-{i}".encode()), ("n", None)])
        for i in range(5)
    ]
    buf = gen.v2_batch(recs, codec=codec, producer=(77, 3, 1000))
    h = read_batch_header(buf)
    ref = reference_batches(buf)[0]
    assert (h.base_offset, h.last_offset, h.crc, h.records_count) == (0, 4, ref["crc"], 5)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (77, 3, 1000)
    assert h.compression == codec and h.size == len(buf)
    assert (h.first_timestamp, h.max_timestamp) == (gen.T0, gen.T0 + 4)
    assert batch_crc_valid(buf, 0, h)
    records = decode_records(h, buf, 0)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in records] == [
        (r.offset, r.timestamp, r.key, r.value, r.headers) for r in ref["records"]
    ]
    assert message_ids(records, "message-id") == [f"id-{i}" for i in range(5)]


def test_log_append_time_records_take_the_batch_max_timestamp(gen):
    buf = gen.v2_batch([(gen.T0, None, b"a", []), (gen.T0 + 5, None, b"b", [])])
    gen.log_append_time(buf, gen.T0 + 60_000)
    h = read_batch_header(buf)
    assert h.timestamp_type == "LogAppendTime" and batch_crc_valid(buf, 0, h)
    assert [r.timestamp for r in decode_records(h, buf, 0)] == [gen.T0 + 60_000] * 2
    assert [r.timestamp for r in reference_batches(buf)[0]["records"]] == [gen.T0 + 60_000] * 2


def test_control_batch_flags(gen):
    buf = gen.control_batch((9, 1), commit=False, coordinator_epoch=4, ts=gen.T0)
    h = read_batch_header(buf)
    assert h.control and h.transactional and batch_crc_valid(buf, 0, h)
    (rec,) = decode_records(h, buf, 0)
    assert struct.unpack(">hh", rec.key) == (0, 0)  # version 0, ABORT
    ref = reference_batches(buf)[0]
    assert ref["control"] and ref["records"][0].abort


def test_crc_excludes_base_offset_and_leader_epoch(gen):
    buf = gen.v2_batch([(gen.T0, None, b"x", [])], codec="lz4")
    crc = read_batch_header(buf).crc
    struct.pack_into(">q", buf, 0, 123456789)
    struct.pack_into(">i", buf, 12, 42)
    h = read_batch_header(buf)
    assert (h.base_offset, h.partition_leader_epoch, h.crc) == (123456789, 42, crc)
    assert batch_crc_valid(buf, 0, h)
    buf[-1] ^= 0xFF
    assert not batch_crc_valid(buf, 0, read_batch_header(buf))


def test_header_errors_carry_positions():
    head = bytearray(30)
    head[16] = 2
    with pytest.raises(BatchError) as e:
        read_batch_header(bytes(head), 0)
    assert "truncated batch header: 30 of 61" in str(e.value) and e.value.position == 0
    bad = bytearray(70)
    bad[16] = 7
    with pytest.raises(BatchError, match="magic 7"):
        read_batch_header(bytes(bad), 0)
    short = bytearray(61)
    short[16] = 2
    struct.pack_into(">i", short, 8, 20)
    with pytest.raises(BatchError, match="length 20 is shorter"):
        read_batch_header(bytes(short), 0)


def test_decompression_is_bounded():
    bomb = gzip.compress(b"\0" * (4 << 20))
    with pytest.raises(BatchError, match="expands beyond"):
        bounded_decompress("gzip", bomb, max_bytes=1 << 20)
    assert len(bounded_decompress("gzip", bomb, max_bytes=8 << 20)) == 4 << 20
    with pytest.raises(BatchError, match="cut short"):
        bounded_decompress("gzip", bomb[:-20], max_bytes=8 << 20)
    import cramjam

    z = bytes(cramjam.zstd.compress(b"a" * (3 << 20)))
    with pytest.raises(BatchError, match="zstd data expands beyond"):
        bounded_decompress("zstd", z, max_bytes=1 << 20)
    assert bounded_decompress("zstd", z, max_bytes=4 << 20) == b"a" * (3 << 20)
    raw = bytes(cramjam.snappy.compress_raw(b"b" * (2 << 20)))  # librdkafka writes raw snappy
    with pytest.raises(BatchError, match="snappy data expands beyond"):
        bounded_decompress("snappy", raw, max_bytes=1 << 20)
    assert bounded_decompress("snappy", raw) == b"b" * (2 << 20)
    with pytest.raises(BatchError, match="lz4 data is corrupt"):
        bounded_decompress("lz4", b"not lz4 at all")


def test_xerial_snappy_from_the_java_style_framing():
    from kafka.codec import snappy_encode

    data = bytes(range(256)) * 600  # several 32 KiB xerial blocks
    enc = snappy_encode(data, xerial_compatible=True)
    assert enc[:8] == b"\x82SNAPPY\x00"
    assert bounded_decompress("snappy", enc) == data


def test_header_text_rendering():
    assert header_text(None) is None
    assert header_text(b"order-17") == "order-17"
    assert header_text(struct.pack(">q", -5)) == "-5"
    assert header_text(struct.pack(">i", 70000)) == "70000"
    assert header_text(b"\x00\x01\xff") == "0001ff"


def test_record_length_disagreement_is_an_error(gen):
    buf = gen.v2_batch([(gen.T0, b"k", b"v", [])])
    # the record length varint is the first body byte: claim one byte more, fix the CRC
    assert buf[61] == 16  # zig-zag 8: attributes, ts delta, offset delta, key, value, header count
    buf[61] = 12  # claim 6
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    h = read_batch_header(buf)
    with pytest.raises(BatchError, match=r"record length 6 disagrees with its fields \(8 bytes read\)"):
        decode_records(h, buf, 0)


@pytest.mark.parametrize(("magic", "codec"), [(0, "gzip"), (1, "gzip"), (1, "snappy"), (1, "lz4")])
def test_legacy_wrappers_equal_reference(gen, magic, codec):
    recs = [(gen.T0 + 100 * i, f"k{i}".encode(), f"value {i}".encode()) for i in range(4)]
    buf = gen.legacy_set(magic, recs, base_offset=50, codec=codec)
    msg = read_legacy_message(buf, 0)
    assert msg.crc_valid and msg.compression == codec and msg.size == len(buf) and msg.offset == 53
    inner = legacy_inner_messages(msg)
    ref = reference_batches(buf)[0]
    assert ref["crc"] == msg.crc
    # inner offsets as stored: absolute for magic 0, relative for magic 1
    assert [m.offset for m in inner] == ([50, 51, 52, 53] if magic == 0 else [0, 1, 2, 3])
    assert [r.offset for r in ref["records"]] == [50, 51, 52, 53]
    assert [(m.key, m.value) for m in inner] == [(r.key, r.value) for r in ref["records"]]
    if magic == 1:
        assert [m.timestamp for m in inner] == [r.timestamp for r in ref["records"]]


def test_legacy_message_damage():
    with pytest.raises(BatchError, match="truncated legacy"):
        read_legacy_message(b"\0" * 10, 0)
    body = struct.pack(">bbii", 0, 0, -1, 3) + b"abc"
    msg = struct.pack(">qiI", 5, len(body) + 4, zlib.crc32(body)) + body
    assert read_legacy_message(msg, 0).value == b"abc"
    with pytest.raises(BatchError, match="overruns"):
        read_legacy_message(msg[:-1], 0)


def test_long_varints_and_negative_deltas(gen):
    recs = [
        (gen.T0 + 5000, b"k" * 200, b"v" * 100_000, [("message-id", b"big")]),
        (gen.T0 - 123_456, None, b"x" * 9000, [("h" * 150, b"y" * 20_000)]),
        (gen.T0, b"", None, [(f"n{i}", bytes([i])) for i in range(70)]),
    ]
    for codec in ("none", "zstd"):
        buf = gen.v2_batch(recs, codec=codec)
        h = read_batch_header(buf)
        got = decode_records(h, buf, 0)
        ref = reference_batches(buf)[0]["records"]
        assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in got] == [
            (r.offset, r.timestamp, r.key, r.value, r.headers) for r in ref
        ]
        assert got[1].timestamp == gen.T0 - 123_456 and len(got[2].headers) == 70


def test_records_cut_short_raise_batch_error(gen):
    buf = gen.v2_batch([(gen.T0, b"k", b"v" * 300, [])])
    struct.pack_into(">i", buf, 57, 2)  # claims two records, holds one
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    with pytest.raises(BatchError, match="runs past the end"):
        decode_records(read_batch_header(buf), buf, 0)


@pytest.mark.parametrize("codec", T_CODECS)
def test_record_summaries_match_decoded_records(gen, codec):
    from pipeline.ingest.records import record_summaries

    recs = [
        (gen.T0 + i, None if i % 3 == 0 else b"k" * i, None if i == 4 else b"v" * (40 * i), [("a", b"1"), ("b", None)])
        for i in range(7)
    ]
    buf = gen.v2_batch(recs, codec=codec)
    h = read_batch_header(buf)
    full = decode_records(h, buf, 0)
    assert record_summaries(h, buf, 0) == [
        (
            r.offset,
            r.timestamp,
            None if r.key is None else len(r.key),
            None if r.value is None else len(r.value),
            r.headers,
        )
        for r in full
    ]
