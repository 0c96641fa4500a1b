"""Independent readings of a capture to check the wire ingest against.

- :func:`tshark_pdus`: Wireshark's Kafka dissector (requests, versions, correlation ids,
  response frames, produce topics/partitions up to v8).
- :func:`kafka_python_produce`: tshark's TCP reassembly (follow stream) + kafka-python's
  protocol classes and record readers, for every produce version (incl. flexible v9+, where
  tshark 4.0 misreads the body, and legacy message sets, which it misreads by one byte).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

TSHARK = shutil.which("tshark")


def _decode_as(ports) -> list[str]:
    out = []
    for p in ports:
        out += ["-d", f"tcp.port=={p},kafka"]
    return out


def tshark_pdus(path: Path, ports=()) -> list[dict]:
    """Every Kafka PDU tshark dissects: requests and responses with their frame numbers."""
    cmd = [
        TSHARK,
        "-2",
        "-r",
        str(path),
        "-o",
        "tcp.reassemble_out_of_order:TRUE",
        "-T",
        "json",
        "--no-duplicate-keys",
        "-J",
        "frame tcp ip ipv6 kafka",
        *_decode_as(ports),
        "-Y",
        "kafka",
    ]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
    pdus = []
    for pkt in json.loads(out or b"[]"):
        layers = pkt["_source"]["layers"]
        frame = int(_one(layers["frame"]["frame.number"]))
        sec, _, frac = _one(layers["frame"]["frame.time_epoch"]).partition(".")
        time_us = int(sec) * 1_000_000 + int((frac + "000000")[:6])
        tcp = layers["tcp"]
        ip = layers.get("ip") or layers.get("ipv6")
        src = _one(ip.get("ip.src") or ip.get("ipv6.src"))
        dst = _one(ip.get("ip.dst") or ip.get("ipv6.dst"))
        kafkas = layers["kafka"] if isinstance(layers["kafka"], list) else [layers["kafka"]]
        for kp in kafkas:
            d = {
                "frame": frame,
                "time_us": time_us,
                "src": src,
                "dst": dst,
                "sport": int(_one(tcp["tcp.srcport"])),
                "dport": int(_one(tcp["tcp.dstport"])),
                "corr": int(_one(kp["kafka.correlation_id"])),
            }
            if "kafka.request_key" in kp:
                d.update(
                    kind="request",
                    key=int(_one(kp["kafka.request_key"])),
                    version=int(_one(kp["kafka.api_version"])),
                    response_frame=None,
                )
                if d["key"] == 0:
                    d["partitions"] = sorted(_produce_partitions(kp))
                if d["key"] == 1 and "kafka.replica_id" in kp:
                    d["replica_id"] = int(_one(kp["kafka.replica_id"]))
            else:
                d.update(
                    kind="response",
                    request_frame=int(_one(kp["kafka.request_frame"])) if "kafka.request_frame" in kp else None,
                )
            pdus.append(d)
    # tshark 4.0 links a response to its request (kafka.request_frame) but not the reverse.
    # It leaves requests of versions it does not know unregistered, so their responses come
    # out as "Request Missing": those are joined on (connection, correlation id), the
    # earliest unanswered request before the response.
    requests = {(d["frame"], d["corr"], d["src"], d["sport"]): d for d in pdus if d["kind"] == "request"}
    for d in pdus:
        if d["kind"] != "response":
            continue
        req = None
        if d["request_frame"] is not None:
            req = requests.get((d["request_frame"], d["corr"], d["dst"], d["dport"]))
        else:
            for r in pdus:
                if r["frame"] >= d["frame"]:
                    break
                if (
                    r["kind"] == "request"
                    and r["response_frame"] is None
                    and r["corr"] == d["corr"]
                    and (r["src"], r["sport"], r["dst"], r["dport"]) == (d["dst"], d["dport"], d["src"], d["sport"])
                ):
                    req = r
                    break
        if req is not None:
            req["response_frame"] = d["frame"]
            req["response_time_us"] = d["time_us"]
    return pdus


def _one(v):
    return v[0] if isinstance(v, list) else v


def _produce_partitions(kp: dict) -> list[tuple[str, int]]:
    out = []
    for key, topics in kp.items():
        if not key.startswith("Topic (Name="):
            continue
        for topic in topics if isinstance(topics, list) else [topics]:
            name = _one(topic["kafka.topic_name"])
            for pkey, parts in topic.items():
                if pkey.startswith("Partition (ID="):
                    for part in parts if isinstance(parts, list) else [parts]:
                        out.append((name, int(_one(part["kafka.partition_id"]))))
    return out


def follow_streams(path: Path) -> list[tuple[tuple[str, int], tuple[str, int], bytes, bytes]]:
    """(first sender, peer, bytes the first sender sent, bytes the peer sent) per TCP stream."""
    n = subprocess.run(
        [TSHARK, "-r", str(path), "-T", "fields", "-e", "tcp.stream"], capture_output=True, check=True, timeout=120
    ).stdout.split()
    count = max((int(x) for x in n), default=-1) + 1
    args = []
    for i in range(count):
        args += ["-z", f"follow,tcp,raw,{i}"]
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE", "-q", *args],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    streams = []
    for block in out.split("=" * 67):
        lines = block.strip("\n").splitlines()
        nodes = [ln for ln in lines if ln.startswith("Node ")]
        if len(nodes) != 2:
            continue
        eps = []
        for ln in nodes:
            host, _, port = ln.split(": ", 1)[1].rpartition(":")
            eps.append((host.strip("[]"), int(port)))
        a, b = bytearray(), bytearray()
        for ln in lines:
            if ln.startswith(("Node ", "Follow:", "Filter:")) or not ln.strip():
                continue
            (b if ln.startswith("\t") else a).extend(bytes.fromhex(ln.strip()))
        streams.append((eps[0], eps[1], bytes(a), bytes(b)))
    return streams


def frames(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from(">i", data, pos)
        if pos + 4 + n > len(data):
            break
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def kafka_python_produce(path: Path, broker_ports, header: str = "message-id") -> list[dict]:
    """Every produce partition of a capture decoded by kafka-python (stream bytes from tshark)."""
    from kafka.protocol.producer.produce import ProduceRequest
    from kafka.record import MemoryRecords

    rows = []
    for first, peer, a, _b in follow_streams(path):
        client, data = (first, a) if peer[1] in broker_ports else (peer, _b)
        if first[1] in broker_ports and peer[1] in broker_ports:
            continue
        for f in frames(data):
            key, ver, corr = struct.unpack_from(">hhi", f)
            if key != 0:
                continue
            (n,) = struct.unpack_from(">h", f, 8)
            pos = 10 + max(n, 0) + (1 if ver >= 9 else 0)
            try:
                req = ProduceRequest.decode(f[pos:], version=ver)
            except Exception:  # noqa: BLE001 - a stream tshark could not follow whole: not comparable
                break
            for t in req.topic_data:
                topic = t.name if ver < 13 else str(t.topic_id)
                for p in t.partition_data:
                    records = bytes(p.records or b"")
                    mr = MemoryRecords(records)
                    batches = nrec = 0
                    ids = []
                    while mr.has_next():
                        batch = mr.next_batch()
                        batches += 1
                        for r in batch:
                            nrec += 1
                            for hk, hv in getattr(r, "headers", None) or []:
                                if hk == header:
                                    ids.append(hv)
                                    break
                    rows.append(
                        {
                            "client_port": client[1],
                            "correlation_id": corr,
                            "api_version": ver,
                            "topic": topic,
                            "partition": p.index,
                            "acks": req.acks,
                            "batches": batches,
                            "records": nrec,
                            "records_bytes": len(records),
                            "message_ids": ids,
                        }
                    )
    return rows
