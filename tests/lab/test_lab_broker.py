"""The lab broker against real Kafka clients: librdkafka (confluent-kafka and kcat).

Every codec, acks=1 and acks=-1, message-id headers; the segments it writes must be valid
Kafka segments (read with kafka-python and with pipeline.ingest.records), with offsets
assigned in order and the partition leader epoch stamped outside the CRC.
"""

from __future__ import annotations

import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import lab
from pipeline.ingest.records import batch_crc_valid, decode_records, read_batch_header

pytestmark = pytest.mark.needs_tool

LEADER_EPOCH = 3
PARTITIONS = 2
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: the lab broker needs a JDK")
    root = tmp_path_factory.mktemp("broker")
    classes = lab.compile_broker(root)
    log_dir = root / "logs"
    request_log = root / "requests.tsv"
    out = root / "stdout"
    with out.open("w") as f:
        proc = subprocess.Popen(
            [
                "java",
                "-Xmx128m",
                "-cp",
                str(classes),
                "Broker",
                "--port",
                "0",
                "--log-dir",
                str(log_dir),
                "--topic",
                "lab",
                "--partitions",
                str(PARTITIONS),
                "--leader-epoch",
                str(LEADER_EPOCH),
                "--handlers",
                "4",
                "--checkpoint-ms",
                "0",
                "--request-log",
                str(request_log),
            ],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
        )
    deadline = time.monotonic() + 30
    port = None
    while time.monotonic() < deadline and port is None:
        for line in out.read_text().splitlines():
            if line.startswith("LISTENING "):
                port = int(line.split()[1])
        time.sleep(0.05)
    assert port, "broker did not start"
    yield {"port": port, "log_dir": log_dir, "proc": proc, "request_log": request_log}
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def segment_batches(log_dir: Path, partition: int):
    data = (log_dir / f"lab-{partition}" / "00000000000000000000.log").read_bytes()
    pos, out = 0, []
    while pos < len(data):
        h = read_batch_header(data, pos)
        out.append((pos, h, decode_records(h, data, pos), batch_crc_valid(data, pos, h), data[pos + 12 : pos + 16]))
        pos += h.size
    assert pos == len(data)
    return out


def test_confluent_kafka_every_codec_and_acks(broker):
    from confluent_kafka import Producer

    delivered: dict[str, tuple[int, int]] = {}
    sent = []
    for i, codec in enumerate(CODECS):
        for acks in ("1", "all"):
            p = Producer(
                {
                    "bootstrap.servers": f"127.0.0.1:{broker['port']}",
                    "compression.type": codec,
                    "acks": acks,
                    "enable.idempotence": acks == "all",
                    "linger.ms": 5,
                    "message.timeout.ms": 20000,
                }
            )
            partition = i % PARTITIONS
            for n in range(3):
                mid = f"{codec}-{acks}-{n}"
                # compressible values, so that librdkafka keeps the codec (it sends uncompressed otherwise)
                value = (f"value {mid} " * 60).encode()
                sent.append((mid, partition, value))

                def report(err, msg, mid=mid):
                    assert err is None, err
                    delivered[mid] = (msg.partition(), msg.offset())

                p.produce(
                    "lab",
                    value=value,
                    key=mid.encode(),
                    partition=partition,
                    headers=[("message-id", mid.encode())],
                    on_delivery=report,
                )
            assert p.flush(20) == 0
    assert len(delivered) == len(sent) == 30

    found: dict[str, tuple[int, int, bytes]] = {}
    codecs_on_disk = set()
    for partition in range(PARTITIONS):
        expected_offset = None
        for pos, h, records, crc_ok, epoch_bytes in segment_batches(broker["log_dir"], partition):
            assert crc_ok, f"CRC of batch at {pos} in partition {partition}"
            assert h.magic == 2
            assert h.partition_leader_epoch == LEADER_EPOCH
            assert struct.unpack(">i", epoch_bytes)[0] == LEADER_EPOCH
            if expected_offset is not None:
                assert h.base_offset == expected_offset
            expected_offset = h.last_offset + 1
            codecs_on_disk.add(h.compression)
            for r in records:
                mid = dict(r.headers)["message-id"].decode()
                found[mid] = (partition, r.offset, r.value)
    assert codecs_on_disk == set(CODECS)
    for mid, partition, value in sent:
        assert found[mid] == (partition, delivered[mid][1], value)
    # idempotent producers got a producer id from InitProducerId
    pids = {h.producer_id for p in range(PARTITIONS) for _, h, *_ in segment_batches(broker["log_dir"], p)}
    assert -1 in pids and any(pid >= 1000 for pid in pids)


def test_segments_read_by_kafka_python(broker):
    from kafka.record import MemoryRecords

    total = 0
    for partition in range(PARTITIONS):
        data = (broker["log_dir"] / f"lab-{partition}" / "00000000000000000000.log").read_bytes()
        mr = MemoryRecords(data)
        batch = mr.next_batch()
        while batch is not None:
            assert batch.validate_crc()
            for rec in batch:
                assert dict(rec.headers)["message-id"]
                total += 1
            batch = mr.next_batch()
    assert total >= 30


def test_kcat_with_headers(broker):
    if shutil.which("kcat") is None:
        pytest.skip("kcat not found")
    out = subprocess.run(
        [
            "kcat",
            "-P",
            "-b",
            f"127.0.0.1:{broker['port']}",
            "-t",
            "lab",
            "-p",
            "1",
            "-H",
            "message-id=kcat-1",
            "-z",
            "zstd",
            "-X",
            "acks=all",
        ],
        input="one\ntwo\n" * 200,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    batches = [(h, records) for _, h, records, _, _ in segment_batches(broker["log_dir"], 1)]
    kcat = [(h, r) for h, records in batches for r in records if dict(r.headers).get("message-id") == b"kcat-1"]
    assert len(kcat) == 400
    assert [r.value for _, r in kcat[:2]] == [b"one", b"two"]
    # librdkafka sends a batch uncompressed when compressing would not make it smaller
    assert "zstd" in {h.compression for h, _ in kcat} <= {"zstd", "none"}


def _produce_v3(port: int, records: bytes, correlation_id: int = 7) -> tuple[int, int]:
    """A hand-built Produce v3 request for lab-0; returns (error_code, base_offset)."""
    client = b"raw"
    body = struct.pack(">hhih", 0, 3, correlation_id, len(client)) + client
    body += struct.pack(">hhi", -1, 1, 5000)  # transactional_id null, acks 1, timeout
    body += struct.pack(">ih", 1, 3) + b"lab" + struct.pack(">ii", 1, 0) + struct.pack(">i", len(records)) + records
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
        resp = s.recv(size, socket.MSG_WAITALL)
    corr, n_topics, name_len = struct.unpack_from(">iih", resp, 0)
    assert (corr, n_topics) == (correlation_id, 1)
    p = 10 + name_len
    n_parts, index, error, base = struct.unpack_from(">iihq", resp, p)
    assert (n_parts, index) == (1, 0)
    return error, base


def test_corrupt_batch_is_refused_and_not_written(broker):
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    b.append(0, 1_700_000_000_000, None, b"hello", [("message-id", b"raw-1")])
    good = bytes(b.build())
    seg = broker["log_dir"] / "lab-0" / "00000000000000000000.log"
    size = seg.stat().st_size
    bad = bytearray(good)
    bad[-3] ^= 0xFF  # inside the CRC-covered records
    assert _produce_v3(broker["port"], bytes(bad)) == (2, -1)  # CORRUPT_MESSAGE
    assert seg.stat().st_size == size
    error, base = _produce_v3(broker["port"], good, correlation_id=8)
    assert error == 0
    h = read_batch_header(seg.read_bytes(), size)
    assert (h.base_offset, h.partition_leader_epoch) == (base, LEADER_EPOCH)


def test_request_log_matches_the_segments(broker):
    from pipeline.lab_checks import read_broker_log

    broker["proc"].send_signal(signal.SIGTERM)  # the log is written at shutdown
    broker["proc"].wait(30)
    requests, appends, handlers = read_broker_log(broker["request_log"])
    assert sorted(handlers.values()) == [f"data-plane-kafka-request-handler-{i}" for i in range(4)]
    assert set(requests["handler_tid"].to_list()) <= set(handlers)
    ok = appends.filter(appends["error_code"] == 0)
    for row in ok.iter_rows(named=True):
        data = (broker["log_dir"] / f"lab-{row['partition']}" / row["segment"]).read_bytes()
        h = read_batch_header(data, row["file_position"])
        assert h.base_offset == row["base_offset"]
        assert row["lock_requested_ns"] <= row["lock_acquired_ns"] <= row["write_start_ns"] <= row["write_end_ns"]
    assert (appends["error_code"] == 2).sum() == 1
    produce = requests.filter(requests["api_key"] == 0)
    assert set(produce["api_version"].to_list()) >= {3, 9}
