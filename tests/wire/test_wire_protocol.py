"""The Kafka protocol decoders against kafka-python's implementation of Apache Kafka's
message definitions: flexible-version table, Produce v13 (topic ids), Fetch replica ids,
Metadata topic ids. Request bytes are encoded by kafka-python, record batches are the
ones real clients wrote (taken from the fixture captures)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from wire_helpers import FIXTURES, parsed

from pipeline.ingest import kafka as k
from pipeline.ingest.pcap import WireIngest, read_capture
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext

kafka_protocol = pytest.importorskip("kafka.protocol")


def _schemas() -> dict[int, dict]:
    base = Path(kafka_protocol.__file__).parent / "schemas" / "resources"
    out = {}
    for f in base.glob("*Request.json"):
        d = json.loads(re.sub(r"//.*", "", f.read_text()))
        out[d["apiKey"]] = d
    return out


def test_flexible_versions_match_kafka_message_definitions():
    schemas = _schemas()
    assert len(schemas) >= 50
    for key, d in schemas.items():
        name, first_flexible, highest = k.APIS[key]
        assert name == d["name"].removesuffix("Request")
        flex = d["flexibleVersions"]
        assert first_flexible == (None if flex == "none" else int(flex.rstrip("+"))), name
        assert highest >= int(d["validVersions"].split("-")[-1]), name


def _frame(request, version: int, corr: int = 7) -> bytes:
    request.with_header(correlation_id=corr, client_id="forensics-test")
    return bytes(request.encode(version=version, header=True, framed=True))[4:]


def _real_batch() -> bytes:
    """One record batch as librdkafka wrote it (zstd, message-id headers)."""
    path = FIXTURES / "librdkafka.pcap"
    ctx = ParseContext(path, path.name, "t")
    tables = read_capture(path, ctx)
    row = tables["produce_partitions"].filter(tables["produce_partitions"]["compression"] == "zstd").row(0, named=True)
    assert row["message_ids"] == ["ord-zstd-0", "ord-zstd-3"]
    # re-read the bytes of that request from the capture through the decoder
    ingest = WireIngest(ParseContext(path, path.name, "t"))
    found = []
    orig = ingest._partition

    def spy(conn, h, frame, p, pkt):
        out = orig(conn, h, frame, p, pkt)
        if out["compression"] == "zstd" and not found:
            found.append(frame[p.records_start : p.records_start + p.records_len])
        return out

    ingest._partition = spy
    with open(path, "rb") as f:
        for _ in ingest.run(f):
            pass
    return found[0]


def test_produce_v13_names_topics_by_id():
    from kafka.protocol.producer.produce import ProduceRequest

    records = _real_batch()
    tid = uuid.UUID("1b3fb79c-7b44-4c5b-9f59-2a93a23c6e5f")
    td = ProduceRequest.TopicProduceData
    req = ProduceRequest[13](
        transactional_id=None,
        acks=-1,
        timeout_ms=1500,
        topic_data=[td(topic_id=tid, partition_data=[td.PartitionProduceData(index=3, records=records)])],
    )
    frame = _frame(req, 13)
    h = k.read_request_header(frame)
    assert (h.api_key, h.api_version, h.correlation_id, h.client_id) == (0, 13, 7, "forensics-test")
    pr = k.read_produce_request(frame, h)
    assert (pr.acks, pr.timeout_ms, pr.transactional_id) == (-1, 1500, None)
    [p] = pr.partitions
    assert p.topic is None and p.partition == 3
    assert p.topic_id == "Gz-3nHtETFufWSqTojxuXw" == k.normalise_topic_id(str(tid))
    assert frame[p.records_start : p.records_start + p.records_len] == records


def test_produce_response_v13_and_v8():
    from kafka.protocol.producer.produce import ProduceResponse

    tr = ProduceResponse.TopicProduceResponse
    part = tr.PartitionProduceResponse(
        index=2,
        error_code=6,
        base_offset=41,
        log_append_time_ms=-1,
        log_start_offset=0,
        record_errors=[],
        error_message="not leader",
    )
    tid = uuid.UUID(int=5)
    for version, topic in (
        (13, tr(topic_id=tid, partition_responses=[part])),
        (8, tr(name="orders", partition_responses=[part])),
    ):
        resp = ProduceResponse[version](responses=[topic], throttle_time_ms=3)
        resp.with_header(correlation_id=9)
        frame = bytes(resp.encode(header=True, framed=True))[4:]
        [r] = k.read_produce_response(frame, version)
        assert (r.partition, r.error_code, r.base_offset) == (2, 6, 41)
        assert (r.topic, r.topic_id) == ((None, k.topic_id_text(tid.bytes)) if version == 13 else ("orders", None))


@pytest.mark.parametrize("version", [4, 11, 12, 15, 17])
def test_fetch_replica_id_tells_followers_from_consumers(version):
    from kafka.protocol.consumer.fetch import FetchRequest

    ft = FetchRequest.FetchTopic
    topic = ft(
        topic="orders",
        topic_id=uuid.UUID(int=9),
        partitions=[
            ft.FetchPartition(
                partition=0,
                current_leader_epoch=1,
                fetch_offset=100,
                last_fetched_epoch=1,
                log_start_offset=0,
                partition_max_bytes=1 << 20,
            )
        ],
    )
    for replica in (2, -1):
        kw = (
            {"replica_state": FetchRequest.ReplicaState(replica_id=replica, replica_epoch=5)}
            if version >= 15
            else {"replica_id": replica}
        )
        req = FetchRequest[version](
            max_wait_ms=500,
            min_bytes=1,
            max_bytes=1 << 20,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[topic],
            forgotten_topics_data=[],
            rack_id="",
            **kw,
        )
        frame = _frame(req, version)
        assert k.read_fetch_replica_id(frame, k.read_request_header(frame)) == replica


def test_metadata_v12_topic_ids_in_capture():
    tables, ctx = parsed("kafka_python.pcap")
    assert set(ctx.hints["topic_ids"].values()) == {"orders", "payments", "forensics"}
    assert all(k.normalise_topic_id(t) == t for t in ctx.hints["topic_ids"])


def test_request_header_rejects_what_is_not_a_request():
    with pytest.raises(k.ProtocolError):
        k.read_request_header(b"\x27\x10\x00\x00\x00\x00\x00\x01\x00\x00")  # api key 10000
    with pytest.raises(k.ProtocolError):
        k.read_request_header(b"\x00\x00\x00\x07\x00\x00\x00\x01\x00\x05ab")  # client id cut short
    h = k.read_request_header(b"\x00\x07\x00\x00\x00\x00\x00\x05")  # ControlledShutdown v0: no client id
    assert (h.api_key, h.correlation_id, h.client_id, h.size) == (7, 5, None, 8)


def test_topic_ids_resolve_from_manifest_and_bundle_partition_metadata(tmp_path):
    capture = tmp_path / "captures" / "broker.pcap"
    capture.parent.mkdir()
    capture.write_bytes((FIXTURES / "kcat.pcap").read_bytes())
    (tmp_path / "data" / "orders-0").mkdir(parents=True)
    (tmp_path / "data" / "orders-0" / "partition.metadata").write_text("version: 0\ntopic_id: Gz-3nHtETFufWSqTojxuXw\n")
    manifest = Manifest(topic_ids={"00000000-0000-0000-0000-000000000009": "payments"})
    ingest = WireIngest(ParseContext(capture, "captures/broker.pcap", "t", manifest=manifest))
    assert ingest._topic_name("AAAAAAAAAAAAAAAAAAAACQ") == "payments"
    assert ingest._topic_name("Gz-3nHtETFufWSqTojxuXw") == "orders"
    assert ingest._topic_name("AAAAAAAAAAAAAAAAAAAAAA") is None
