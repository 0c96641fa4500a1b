"""Exact rows from captures of real clients (fixtures/wire/make_captures.py), damaged
captures, capture formats and bad input."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import struct

import polars as pl
import pytest
from wire_helpers import FIXTURES, errors, parsed

from pipeline.ingest.pcap import CaptureParser, read_capture
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext, Probe
from pipeline.tables import TABLES

CODECS = ["gzip", "lz4", "none", "snappy", "zstd"]
TIMES = ["request_first_at", "arrival_at", "response_first_at", "end_at"]


def topic_id(name: str) -> str:
    """The id the responder gives a topic, as Kafka prints ids."""
    return base64.urlsafe_b64encode(hashlib.md5(name.encode()).digest()).rstrip(b"=").decode()


def by_request(reqs: pl.DataFrame) -> pl.DataFrame:
    return reqs.sort("conn_id", "correlation_id")


def test_frames_match_the_declared_tables():
    tables, _ = parsed("librdkafka.pcap")
    for name, frame in tables.items():
        assert frame.schema == TABLES[name].parser_columns


def test_librdkafka_every_codec_flexible_produce():
    tables, ctx = parsed("librdkafka.pcap")
    reqs, parts = tables["kafka_requests"], tables["produce_partitions"]
    counts = reqs.group_by("api_name", "api_version").len().sort("api_name").rows()
    assert counts == [("ApiVersions", 3, 10), ("Metadata", 12, 11), ("Produce", 10, 30)]
    assert reqs["complete"].all() and reqs["conn_id"].n_unique() == 10
    assert (
        reqs["latency_ms"] - (reqs["end_at"] - reqs["arrival_at"]).dt.total_microseconds() / 1000
    ).abs().max() < 1e-3
    # 5 codecs x 2 topics x 3 partitions, 2 records each (make_captures: 6 messages, partition i % 3)
    assert parts.height == 30
    assert sorted(parts["compression"].unique()) == CODECS
    assert parts["records"].to_list() == [2] * 30 and parts["batches"].to_list() == [1] * 30
    assert parts["crc_valid"].all() and (parts["error_code"] == 0).all()
    assert parts["acks"].unique().to_list() == [-1] and parts["timeout_ms"].unique().to_list() == [30000.0]
    zstd = parts.filter(pl.col("compression") == "zstd").sort("topic", "partition")
    assert zstd.select("topic", "partition", "message_ids", "base_offset").rows() == [
        ("orders", 0, ["ord-zstd-0", "ord-zstd-3"], 8),
        ("orders", 1, ["ord-zstd-1", "ord-zstd-4"], 8),
        ("orders", 2, ["ord-zstd-2", "ord-zstd-5"], 8),
        # 8-byte header values are shown as big-endian integers: 375783615 + 100 * 4 + i
        ("payments", 0, ["375784015", "375784018"], 8),
        ("payments", 1, ["375784016", "375784019"], 8),
        ("payments", 2, ["375784017", "375784020"], 8),
    ]
    assert errors(ctx) == []
    assert ctx.hints["capture_date"] == dt.date(2026, 11, 26)
    # Metadata v12 responses carry topic ids (the responder's default topic is listed too)
    assert ctx.hints["topic_ids"] == {topic_id(t): t for t in ("orders", "payments", "forensics")}


def test_kafka_python_idempotent_producer():
    tables, ctx = parsed("kafka_python.pcap")
    parts = tables["produce_partitions"]
    assert parts["api_version"].unique().to_list() == [9]
    assert parts["producer_id"].unique().to_list() == [4242]  # from the responder's InitProducerId
    assert parts["producer_epoch"].unique().to_list() == [0]
    gz = parts.filter(pl.col("compression") == "gzip", pl.col("topic") == "orders", pl.col("partition") == 0)
    assert gz.sort("base_sequence").select("correlation_id", "base_sequence", "message_ids", "base_offset").rows() == [
        (4, 0, ["ord-gzip-0"], 2),
        (6, 1, ["ord-gzip-3"], 3),
    ]
    assert errors(ctx) == []


def test_kcat_v7_and_header_per_invocation():
    tables, _ = parsed("kcat.pcap")
    parts = tables["produce_partitions"].sort("partition")
    assert parts.select("api_version", "topic", "partition", "compression", "records").rows() == [
        (7, "orders", 0, "snappy", 4),
        (7, "orders", 1, "gzip", 4),
        (7, "orders", 2, "lz4", 4),
    ]
    assert parts["message_ids"].to_list() == [["kcat-snappy"] * 4, ["kcat-gzip"] * 4, ["kcat-lz4"] * 4]
    assert parts["producer_id"].to_list() == [-1, -1, -1]


def test_acks_zero_requests_are_kept_incomplete():
    tables, _ = parsed("librdkafka_v7.pcap")
    reqs, parts = tables["kafka_requests"], tables["produce_partitions"]
    acks0 = parts.filter(pl.col("acks") == 0)
    assert acks0.height == 6 and set(acks0["compression"]) == {"snappy"}
    assert acks0["latency_ms"].is_null().all() and acks0["end_at"].is_null().all()
    incomplete = reqs.filter(~pl.col("complete"))
    assert incomplete.height == 6 and set(incomplete["api_name"]) == {"Produce"}
    assert incomplete["response_bytes"].is_null().all()
    assert parts.filter(pl.col("acks") == -1)["error_code"].to_list() == [0] * 12


def test_same_capture_in_other_containers_gives_the_same_rows():
    """Big-endian ns pcap, gzip, pcapng with two interfaces (SLL2 ns + Ethernet µs)."""
    kcat = parsed("kcat.pcap")[0]
    for variant in ("kcat_be_ns.pcap", "kcat_vlan.pcap", "kcat_null.pcap", "kcat_raw.pcap", "kcat_wrap.pcap"):
        other = parsed(variant)[0]
        for t in ("kafka_requests", "produce_partitions"):
            assert other[t].equals(kcat[t]), variant
    v7 = parsed("librdkafka_v7.pcap")[0]
    gz = parsed("librdkafka_v7.pcap.gz")[0]
    assert gz["kafka_requests"].equals(v7["kafka_requests"])
    two = parsed("two_interfaces.pcapng")[0]["kafka_requests"]
    sll2 = parsed("sll2_ns.pcap")[0]["kafka_requests"]
    cols = ["conn_id", "correlation_id", "api_key", *TIMES, "latency_ms", "request_bytes", "response_bytes"]
    merged = pl.concat([sll2, kcat["kafka_requests"]])
    assert by_request(two).select(cols).equals(by_request(merged).select(cols))
    # nanosecond timestamps are kept to the microsecond, latency to the nanosecond
    ns = sll2.sort("position").row(0, named=True)
    assert ns["arrival_at"] == dt.datetime(2026, 11, 26, 0, 35, 18, 966229)
    assert ns["latency_ms"] == pytest.approx((1795653318966464752 - 1795653318966229839) / 1e6, abs=1e-9)


def test_segmented_and_reordered_streams_reassemble_exactly():
    plain = by_request(parsed("librdkafka.pcap")[0]["kafka_requests"])
    seg = by_request(parsed("librdkafka_segmented.pcap")[0]["kafka_requests"])
    reorder_tables, ctx = parsed("reorder.pcap")
    reordered = by_request(reorder_tables["kafka_requests"])
    cols = ["conn_id", "correlation_id", "api_key", *TIMES, "request_bytes", "response_bytes"]
    assert seg.select(cols).equals(plain.select(cols))
    assert reordered.select(cols).equals(seg.select(cols))
    assert errors(ctx) == [("tcp_stats", "info")]
    assert "2 retransmitted segments (1436 bytes) ignored, 6 out-of-order segments reordered" in ctx.errors[0].message
    p1 = parsed("librdkafka_segmented.pcap")[0]["produce_partitions"].drop("position")
    p2 = reorder_tables["produce_partitions"].drop("position")
    key = ["conn_id", "correlation_id", "topic", "partition"]
    assert p2.sort(key).equals(p1.sort(key))


def test_midstream_start_finds_the_next_frame():
    tables, ctx = parsed("midstream.pcap")
    assert errors(ctx) == [("midstream_start", "info"), ("midstream_start", "info")]
    assert "capture starts inside a request; skipped 2511 stream bytes 0..2511" in ctx.errors[0].message
    assert "capture starts inside a response; skipped 234 stream bytes 0..234" in ctx.errors[1].message
    full = parsed("librdkafka_segmented.pcap")[0]["kafka_requests"]
    cut = tables["kafka_requests"]
    client = int(ctx.errors[0].message.split(">")[0].rsplit(":", 1)[1])
    # on the cut connection: the requests after the cut, with the times the full capture has
    mine = cut.filter(pl.col("client_port") == client).sort("correlation_id")
    ref = full.filter(pl.col("client_port") == client, pl.col("correlation_id") >= 6).sort("correlation_id")
    assert mine["correlation_id"].to_list() == [6, 7]
    assert mine.select(TIMES).equals(ref.select(TIMES))
    # the other connections are whole
    others = cut.filter(pl.col("client_port") != client)
    assert others.height == 42 and others["complete"].all()


def test_lost_segments_are_data_loss_and_the_rest_survives():
    tables, ctx = parsed("loss.pcap")
    assert errors(ctx) == [
        ("tcp_gap", "data_loss"),
        ("lost_frame", "data_loss"),
        ("orphan_response", "info"),
        ("tcp_gap", "data_loss"),
        ("tcp_stats", "info"),
    ]
    assert "1200 bytes from 127.0.0.1:48868 missing from the capture (stream bytes 6891..8091" in ctx.errors[0].message
    assert "(Produce v10, correlation id 4) damaged by a capture gap" in ctx.errors[1].message
    assert "73 bytes from 127.0.0.1:48882 missing from the capture (stream bytes 0..73" in ctx.errors[3].message
    reqs = tables["kafka_requests"]
    full = parsed("librdkafka_segmented.pcap")[0]["kafka_requests"]
    # the damaged produce request keeps its row and its response; its partitions are unknown
    damaged = reqs.filter(pl.col("client_port") == 48868, pl.col("correlation_id") == 4).row(0, named=True)
    ref = full.filter(pl.col("client_port") == 48868, pl.col("correlation_id") == 4).row(0, named=True)
    assert damaged["complete"] and damaged["end_at"] == ref["end_at"] and damaged["arrival_at"] == ref["arrival_at"]
    assert damaged["request_bytes"] == ref["request_bytes"]
    parts = tables["produce_partitions"]
    assert parts.filter(pl.col("client_port") == 48868, pl.col("correlation_id") == 4).height == 0
    # the lost ApiVersions request: its response is an orphan, the next request is found
    assert reqs.filter(pl.col("client_port") == 48882)["correlation_id"].to_list() == [2]
    assert reqs.height == full.height - 1


def test_real_capture_loss_on_any_interface():
    """tcpdump -i any lost two packets at capture time: both gaps are accounted for."""
    tables, ctx = parsed("sll2_ns.pcap")
    assert errors(ctx) == [
        ("orphan_response", "info"),
        ("tcp_gap", "data_loss"),
        ("tcp_gap", "data_loss"),
        ("tcp_stats", "info"),
    ]
    assert tables["kafka_requests"].height == 15


def test_kafka_ports_filter_and_auto_detection_agree():
    auto = parsed("kcat.pcap")[0]["kafka_requests"]
    given = parsed("kcat.pcap", (29184,))[0]["kafka_requests"]
    assert auto.equals(given)
    other = parsed("kcat.pcap", (9092,))[0]["kafka_requests"]
    assert other.height == 0
    # a connection already open when the capture started is identified by its requests
    for name in ("midstream.pcap", "loss.pcap"):
        auto, actx = parsed(name)
        given, gctx = parsed(name, (29181,))
        assert auto["kafka_requests"].equals(given["kafka_requests"]), name
        assert auto["produce_partitions"].equals(given["produce_partitions"]), name
        assert errors(actx) == errors(gctx)


def test_detect():
    assert CaptureParser.detect(Probe.of(FIXTURES / "kcat.pcap"))
    assert CaptureParser.detect(Probe.of(FIXTURES / "two_interfaces.pcapng"))
    assert CaptureParser.detect(Probe.of(FIXTURES / "librdkafka_v7.pcap.gz"))
    assert not CaptureParser.detect(Probe.of(FIXTURES / "make_captures.py"))


def test_truncated_capture_keeps_what_was_read(tmp_path):
    raw = (FIXTURES / "kcat.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: len(raw) - 30])
    ctx = ParseContext(cut, cut.name, "t")
    tables = read_capture(cut, ctx)
    assert ("truncated_capture", "data_loss") in errors(ctx)
    assert tables["kafka_requests"].height == 9


def test_garbage_after_the_header(tmp_path):
    raw = (FIXTURES / "kcat.pcap").read_bytes()
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(raw[:24] + struct.pack("<IIII", 1, 2, 0x7FFFFFFF, 5) + b"\x00" * 100)
    ctx = ParseContext(bad, bad.name, "t")
    tables = read_capture(bad, ctx)
    assert errors(ctx) == [("bad_record", "data_loss")]
    assert tables["kafka_requests"].height == 0


def test_gzip_cut_short_is_an_error_not_a_crash(tmp_path):
    raw = gzip.compress((FIXTURES / "kcat.pcap").read_bytes())
    bad = tmp_path / "cut.pcap.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    ctx = ParseContext(bad, bad.name, "t")
    tables = read_capture(bad, ctx)
    # ctx.open() may salvage the gzip itself (gzip_damaged) or raise on the cut (read_error here)
    assert errors(ctx)[0] in (("read_error", "data_loss"), ("gzip_damaged", "data_loss"))
    assert 0 < tables["kafka_requests"].height < 9


def test_manifest_topic_ids_and_header_name():
    ctx = ParseContext(FIXTURES / "kcat.pcap", "kcat.pcap", "t", manifest=Manifest(message_id_header="no-such-header"))
    parts = read_capture(FIXTURES / "kcat.pcap", ctx)["produce_partitions"]
    assert parts["message_ids"].to_list() == [[], [], []]


def test_ipv6_over_linux_cooked_v1_with_capture_loss():
    tables, ctx = parsed("sll_ipv6.pcap")
    reqs = tables["kafka_requests"]
    assert set(reqs["client_addr"]) == {"::1"} and set(reqs["broker_port"]) == {29186}
    assert reqs["conn_id"].str.starts_with("[::1]:").all()
    # tcpdump -i any missed the client's requests 6 and 7: their responses are orphans and
    # the bytes the broker acknowledged are a gap
    assert errors(ctx) == [("orphan_response", "info"), ("orphan_response", "info"), ("tcp_gap", "data_loss")]
    assert "408 bytes from [::1]:34960 missing from the capture (stream bytes 874..1282" in ctx.errors[2].message
    parts = tables["produce_partitions"]
    assert parts.height == 4 and set(parts["compression"]) == {"gzip"} and (parts["error_code"] == 0).all()
    # the same packets with an IPv6 hop-by-hop options header in each
    hbh, hctx = parsed("sll_ipv6_hbh.pcap")
    assert hbh["kafka_requests"].equals(reqs) and hbh["produce_partitions"].equals(parts)
    assert errors(hctx) == errors(ctx)


def test_reused_four_tuple_starts_new_connections():
    tables, ctx = parsed("kcat_reuse.pcap")
    reqs = tables["kafka_requests"]
    assert set(reqs["client_port"]) == {60266} and reqs["conn_id"].n_unique() == 3
    kcat = parsed("kcat.pcap")[0]["kafka_requests"]
    cols = ["correlation_id", "api_key", *TIMES, "request_bytes", "response_bytes"]
    assert reqs.sort("request_first_at").select(cols).equals(kcat.sort("request_first_at").select(cols))
    assert errors(ctx) == []  # the ACKs of FINs the capture missed are not data


def test_snaplen_cut_frames_keep_their_requests():
    tables, ctx = parsed("kcat_snaplen.pcap")
    reqs = tables["kafka_requests"]
    kcat = parsed("kcat.pcap")[0]["kafka_requests"]
    cols = ["conn_id", "correlation_id", "api_key", *TIMES, "request_bytes", "response_bytes", "complete"]
    # each cut frame's size prefix survived: framing holds, every request pairs, times are exact
    assert reqs.sort("position").select(cols).equals(kcat.sort("position").select(cols))
    assert tables["produce_partitions"].height == 0  # produce bodies were cut
    assert errors(ctx) == [("tcp_gap", "data_loss"), ("lost_frame", "data_loss")] * 6
    assert "387 bytes from 127.0.0.1:60266 cut by the snapshot length" in ctx.errors[2].message


def test_tls_connections_are_skipped_with_a_note():
    """librdkafka over SSL (security.protocol=SSL) to a TLS server on a Kafka port."""
    tables, ctx = parsed("tls.pcap", (29187,))
    assert tables["kafka_requests"].height == 0
    assert errors(ctx) == [("encrypted", "info"), ("encrypted", "info"), ("not_kafka", "info")]
    assert ctx.errors[0].message.endswith(">127.0.0.1:29187: TLS connection skipped")
    auto, actx = parsed("tls.pcap")  # without the port it is simply not Kafka, and said so
    assert auto["kafka_requests"].height == 0 and errors(actx) == [("not_kafka", "info")]
    assert actx.errors[0].message.startswith("2 TCP connections (5093 bytes) not decoded as Kafka")


def test_clock_offset_shifts_instants_and_keeps_the_capture_clock():
    path = FIXTURES / "sll2_ns.pcap"
    ctx = ParseContext(path, path.name, "t", manifest=Manifest(clock_offsets_ms={"capture": 1500.0}))
    shifted = read_capture(path, ctx)["kafka_requests"].sort("position")
    plain = parsed("sll2_ns.pcap")[0]["kafka_requests"].sort("position")
    assert (shifted["arrival_at"] - plain["arrival_at"]).unique().to_list() == [dt.timedelta(milliseconds=1500)]
    assert shifted["arrival_ns"].equals(plain["arrival_ns"]) and shifted["latency_ms"].equals(plain["latency_ms"])
    # the capture's nanoseconds are kept whole (tshark: frame 4 at 1795653318.966229839)
    assert plain.row(0, named=True)["arrival_ns"] == 1795653318966229839
