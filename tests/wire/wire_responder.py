"""A minimal Kafka broker stand-in that answers real clients (kcat, confluent-kafka,
kafka-python) so their produce requests can be captured on the loopback interface.

It speaks ApiVersions, Metadata, InitProducerId, FindCoordinator and Produce, decoding
requests and encoding responses with kafka-python's protocol classes (an implementation
independent of ``pipeline.ingest.kafka``). It advertises the API versions of a Kafka
3.9 broker, so clients pick the versions they would pick against a real one (librdkafka
only sends record headers to brokers with Fetch >= 4 and zstd with Fetch >= 10);
``max_produce`` caps the Produce version to capture older request layouts.

Run: ``python tests/wire/wire_responder.py PORT [--max-produce N] [--mss N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import struct
import threading
import uuid

from kafka.protocol.metadata.api_versions import ApiVersionsResponse
from kafka.protocol.metadata.find_coordinator import FindCoordinatorResponse
from kafka.protocol.metadata.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer.produce import ProduceRequest, ProduceResponse
from kafka.protocol.producer.transaction import InitProducerIdResponse

# api key -> (min, max) as a Kafka 3.9 broker advertises them
BROKER_VERSIONS = {
    0: (0, 11),
    1: (0, 17),
    2: (0, 9),
    3: (0, 12),
    8: (0, 9),
    9: (0, 9),
    10: (0, 6),
    11: (0, 9),
    12: (0, 4),
    13: (0, 5),
    14: (0, 5),
    15: (0, 5),
    16: (0, 5),
    17: (0, 1),
    18: (0, 4),
    19: (0, 7),
    20: (0, 6),
    21: (0, 2),
    22: (0, 5),
    23: (0, 4),
    24: (0, 5),
    25: (0, 4),
    26: (0, 4),
    28: (0, 4),
    29: (0, 3),
    30: (0, 3),
    31: (0, 3),
    32: (0, 4),
    33: (0, 2),
    36: (0, 2),
    37: (0, 3),
    42: (0, 2),
    44: (0, 1),
    60: (0, 1),
}
PARTITIONS = 4
NODE_ID = 0


def topic_uuid(name: str) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.md5(name.encode()).digest())


class Responder:
    def __init__(self, port: int, max_produce: int = 11, mss: int | None = None, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.versions = dict(BROKER_VERSIONS)
        self.versions[0] = (0, max_produce)
        self.offsets: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mss:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.topics_by_id: dict[uuid.UUID, str] = {}

    def serve_forever(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def start(self) -> Responder:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.sock.close()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            while True:
                head = _recv(conn, 4)
                if head is None:
                    return
                (size,) = struct.unpack(">i", head)
                frame = _recv(conn, size)
                if frame is None:
                    return
                reply = self.answer(frame)
                if reply is not None:
                    conn.sendall(reply)

    def answer(self, frame: bytes) -> bytes | None:
        key, ver, corr = struct.unpack_from(">hhi", frame)
        (n,) = struct.unpack_from(">h", frame, 8)
        pos = 10 + max(n, 0)
        flexible = {0: 9, 3: 9, 10: 3, 18: 3, 22: 2}.get(key, 99) <= ver
        if flexible:
            pos += 1  # empty tagged fields of the request header
        body = frame[pos:]
        if key == 18:
            lo, hi = 0, 4
            v = ver if lo <= ver <= hi else 0
            resp = ApiVersionsResponse[v](
                error_code=0 if v == ver else 35,
                api_keys=[(k, a, b) for k, (a, b) in sorted(self.versions.items())],
                throttle_time_ms=0,
            )
        elif key == 3:
            req = MetadataRequest.decode(body, version=ver)
            names = [t.name for t in req.topics or [] if t.name] or ["forensics"]
            topics = []
            mt = MetadataResponse.MetadataResponseTopic
            for name in names:
                tid = topic_uuid(name)
                self.topics_by_id[tid] = name
                parts = [
                    mt.MetadataResponsePartition(
                        error_code=0,
                        partition_index=p,
                        leader_id=NODE_ID,
                        leader_epoch=0,
                        replica_nodes=[NODE_ID],
                        isr_nodes=[NODE_ID],
                        offline_replicas=[],
                    )
                    for p in range(PARTITIONS)
                ]
                topics.append(
                    mt(
                        error_code=0,
                        name=name,
                        topic_id=tid,
                        is_internal=False,
                        partitions=parts,
                        authorized_operations=None,
                    )
                )
            resp = MetadataResponse[ver](
                throttle_time_ms=0,
                brokers=[
                    MetadataResponse.MetadataResponseBroker(node_id=NODE_ID, host=self.host, port=self.port, rack=None)
                ],
                cluster_id="forensics-test",
                controller_id=NODE_ID,
                topics=topics,
                authorized_operations=None,
                error_code=0,
            )
        elif key == 22:
            resp = InitProducerIdResponse[ver](throttle_time_ms=0, error_code=0, producer_id=4242, producer_epoch=0)
        elif key == 10:
            resp = FindCoordinatorResponse[ver](
                throttle_time_ms=0,
                error_code=0,
                error_message=None,
                node_id=NODE_ID,
                host=self.host,
                port=self.port,
                coordinators=[],
            )
        elif key == 0:
            req = ProduceRequest.decode(body, version=ver)
            if req.acks == 0:
                return None
            tr = ProduceResponse.TopicProduceResponse
            out = []
            for t in req.topic_data:
                name = t.name if ver < 13 else self.topics_by_id.get(t.topic_id, "?")
                parts = []
                for p in t.partition_data:
                    with self.lock:
                        base = self.offsets.get((name, p.index), 0)
                        self.offsets[(name, p.index)] = base + _count_records(p.records)
                    parts.append(
                        tr.PartitionProduceResponse(
                            index=p.index,
                            error_code=0,
                            base_offset=base,
                            log_append_time_ms=-1,
                            log_start_offset=0,
                            record_errors=[],
                            error_message=None,
                        )
                    )
                if ver >= 13:
                    out.append(tr(topic_id=t.topic_id, partition_responses=parts))
                else:
                    out.append(tr(name=t.name, partition_responses=parts))
            resp = ProduceResponse[ver](responses=out, throttle_time_ms=0)
        else:
            return None
        resp.with_header(correlation_id=corr)
        return bytes(resp.encode(header=True, framed=True))


def _count_records(records) -> int:
    data = bytes(records or b"")
    count, pos = 0, 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        if len(data) >= pos + 61 and data[pos + 16] == 2:
            count += struct.unpack_from(">i", data, pos + 57)[0]
        else:
            count += 1
        pos += 12 + length
    return count


def _recv(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = conn.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--max-produce", type=int, default=11)
    ap.add_argument("--mss", type=int)
    a = ap.parse_args()
    Responder(a.port, a.max_produce, a.mss).serve_forever()


if __name__ == "__main__":
    main()
