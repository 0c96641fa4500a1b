"""The wire ingest against Wireshark's Kafka dissector and kafka-python, capture by capture.

tshark 4.0 judges request keys, versions, correlation ids and response frames for every
request, and produce topics/partitions up to v8. It does not register requests of versions
it does not know (Produce v9+, Metadata v10+), so their responses print "Request Missing":
the reference joins those on (connection, correlation id). Produce bodies of every version
(flexible v9+, legacy v0-v2 that tshark misreads) are checked with kafka-python's protocol
classes and record readers over tshark's reassembled streams.
"""

from __future__ import annotations

import shutil

import polars as pl
import pytest
from wire_helpers import CORPUS, FIXTURES, parsed
from wire_reference import kafka_python_produce, tshark_pdus

from pipeline.ingest.records import header_text

pytestmark = pytest.mark.needs_tool
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

CLEAN = [
    ("librdkafka.pcap", (29181,)),
    ("librdkafka_segmented.pcap", (29181,)),
    ("reorder.pcap", (29181,)),
    ("librdkafka_v7.pcap", (29182,)),
    ("librdkafka_v7.pcap.gz", (29182,)),
    ("kafka_python.pcap", (29183,)),
    ("kcat.pcap", (29184,)),
    ("kcat_be_ns.pcap", (29184,)),
    ("kcat_vlan.pcap", (29184,)),
    ("kcat_null.pcap", (29184,)),
    ("kcat_raw.pcap", (29184,)),
    ("kcat_reuse.pcap", (29184,)),  # one 4-tuple, three connections, FINs not captured
    ("kcat_wrap.pcap", (29184,)),  # client sequence numbers wrap past 2^32 inside a request
]
# captures with loss (made, or real: sll2_ns lost packets at capture time) or a mid-stream start
LOSSY = [
    ("loss.pcap", (29181,)),
    ("midstream.pcap", (29181,)),
    ("sll2_ns.pcap", (29185,)),
    ("sll_ipv6.pcap", (29186,)),  # IPv6 over Linux cooked v1; the capture lost two requests
    ("two_interfaces.pcapng", (29184, 29185)),  # sll2_ns.pcap merged with kcat.pcap
    ("kcat_snaplen.pcap", (29184,)),  # segments cut at 250 bytes
    ("sll_ipv6_hbh.pcap", (29186,)),  # sll_ipv6.pcap with an IPv6 hop-by-hop header in every packet
]
# distinct produce bodies (the other captures repeat these bytes in other containers, and
# test_wire_ingest checks that they give identical rows); the snaplen capture has none whole
WITH_BODIES = [
    c
    for c in CLEAN + LOSSY
    if c[0] in ("librdkafka.pcap", "reorder.pcap", "librdkafka_v7.pcap", "kafka_python.pcap", "kcat.pcap")
    or c in LOSSY[:4]
]


def _requests(reqs: pl.DataFrame) -> list[tuple]:
    return sorted(
        reqs.select(
            "client_port", "broker_port", "correlation_id", "api_key", "api_version", "response_position"
        ).rows()
    )


def _tshark_requests(pdus) -> list[tuple]:
    return sorted(
        (d["sport"], d["dport"], d["corr"], d["key"], d["version"], d["response_frame"])
        for d in pdus
        if d["kind"] == "request"
    )


def _produce_rows(parts: pl.DataFrame) -> list[tuple]:
    cols = ("client_port", "correlation_id", "topic", "partition", "acks", "batches", "records", "records_bytes")
    return sorted((*r[:-1], tuple(r[-1])) for r in parts.select(*cols, "message_ids").rows())


def _kafka_python_rows(path, ports) -> list[tuple]:
    return sorted(
        (
            d["client_port"],
            d["correlation_id"],
            d["topic"],
            d["partition"],
            d["acks"],
            d["batches"],
            d["records"],
            d["records_bytes"],
            tuple(header_text(v) for v in d["message_ids"]),
        )
        for d in kafka_python_produce(path, ports)
    )


def _assert_times(tables, pdus) -> None:
    """arrival_at / end_at are the times of the frames tshark completes the PDUs in."""
    epoch = pl.datetime(1970, 1, 1)
    times = tables["kafka_requests"].select(
        "client_port",
        "correlation_id",
        (pl.col("arrival_at") - epoch).dt.total_microseconds().alias("arrival"),
        (pl.col("end_at") - epoch).dt.total_microseconds().alias("end"),
    )
    ref = [(d["sport"], d["corr"], d["time_us"], d.get("response_time_us")) for d in pdus if d["kind"] == "request"]
    assert sorted(times.rows()) == sorted(ref)


def _damaged_ports(ctx) -> set[int]:
    """Client ports of connections with a gap, a resynchronisation or a mid-stream start."""
    out = set()
    for e in ctx.errors:
        if e.what in ("tcp_gap", "lost_frame", "resync", "midstream_start", "orphan_response"):
            out.add(int(e.message.split(">")[0].rsplit(":", 1)[1]))
    return out


@needs_tshark
@pytest.mark.parametrize(("name", "ports"), CLEAN, ids=[c[0] for c in CLEAN])
def test_agrees_with_tshark(name, ports):
    tables, ctx = parsed(name, ports)
    pdus = tshark_pdus(FIXTURES / name, ports)
    assert _requests(tables["kafka_requests"]) == _tshark_requests(pdus)
    produce = [
        (d["sport"], d["corr"], t, p)
        for d in pdus
        if d["kind"] == "request" and d["key"] == 0 and d["version"] <= 8
        for t, p in d["partitions"]
    ]
    ours = tables["produce_partitions"].filter(pl.col("api_version") <= 8)
    assert sorted(ours.select("client_port", "correlation_id", "topic", "partition").rows()) == sorted(produce)
    assert [e for e in ctx.errors if e.severity != "info"] == []
    if name != "reorder.pcap":  # there the frame completing a request is not its latest packet
        _assert_times(tables, pdus)


@needs_tshark
@pytest.mark.parametrize(("name", "ports"), WITH_BODIES, ids=[c[0] for c in WITH_BODIES])
def test_produce_bodies_agree_with_kafka_python(name, ports):
    pytest.importorskip("kafka")
    tables, ctx = parsed(name, ports)
    damaged = _damaged_ports(ctx)
    ours, ref = _produce_rows(tables["produce_partitions"]), _kafka_python_rows(FIXTURES / name, ports)
    assert [r for r in ours if r[0] not in damaged] == [r for r in ref if r[0] not in damaged]
    # on a damaged connection kafka-python reads the stream up to the damage: all of that is ours too
    assert set(r for r in ref if r[0] in damaged) <= set(ours)
    assert len(ref) >= 3


@needs_tshark
@pytest.mark.parametrize(("name", "ports"), LOSSY, ids=[c[0] for c in LOSSY])
def test_lossy_captures_keep_all_tshark_sees(name, ports):
    """tshark loses whole connections after a gap or a mid-stream start; we keep everything it
    decodes, and what we find beyond it is on connections whose damage is in ingest_errors."""
    tables, ctx = parsed(name, ports)
    ours = _requests(tables["kafka_requests"])
    theirs = _tshark_requests(tshark_pdus(FIXTURES / name, ports))
    damaged = _damaged_ports(ctx)
    assert damaged
    for r in theirs:
        if r[-1] is not None or r[0] not in damaged:
            assert r in ours
    extra = set(ours) - set(theirs)
    assert {r[0] for r in extra} <= damaged


CORPUS_FILES = sorted(CORPUS.glob("*.pcap*")) if CORPUS.is_dir() else []


@needs_tshark
@pytest.mark.slow
@pytest.mark.skipif(not CORPUS_FILES, reason="shared corpus not present")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_corpus_agrees_with_tshark(path):
    ports = (9092, 36333)
    tables, ctx = parsed(str(path), ports)
    pdus = tshark_pdus(path, ports)
    assert _requests(tables["kafka_requests"]) == _tshark_requests(pdus)
    produce = sorted(
        (d["sport"], d["corr"], t, p)
        for d in pdus
        if d["kind"] == "request" and d["key"] == 0
        for t, p in d["partitions"]
    )
    ours = sorted(tables["produce_partitions"].select("client_port", "correlation_id", "topic", "partition").rows())
    _assert_times(tables, pdus)
    fetch = sorted((d["sport"], d["corr"], d["replica_id"]) for d in pdus if "replica_id" in d and d["version"] <= 11)
    reqs = tables["kafka_requests"].filter(pl.col("api_key") == 1, pl.col("api_version") <= 11)
    assert sorted(reqs.select("client_port", "correlation_id", "replica_id").rows()) == fetch
    if path.name.endswith("_produce.pcapng"):
        # tshark marks the third Produce v2 request malformed (legacy message set misread)
        # and drops its partition; kafka-python reads all four as we do
        assert set(produce) < set(ours) and len(ours) == 4
        assert _produce_rows(tables["produce_partitions"]) == _kafka_python_rows(path, ports)
    else:
        assert ours == produce
