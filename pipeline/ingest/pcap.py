"""Kafka wire ingest: pcap/pcapng captures → ``kafka_requests`` and ``produce_partitions``."""

from __future__ import annotations

from pipeline.registry import Parser, Probe, register
from pipeline.tables import BOOL, F64, I32, I64, STR, STR_LIST, TIMESTAMP, declare

PCAP_MAGICS = (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

KAFKA_REQUESTS = declare(
    "kafka_requests",
    "One row per Kafka request/response pair seen on the wire, every API. "
    "A request is identified by (conn_id, correlation_id).",
    ("position", I64, "Packet number (1-based) of the request's first packet."),
    ("conn_id", STR, "Stable id of the TCP connection (artifact, 4-tuple and start)."),
    ("client_addr", STR, "Client IP address."),
    ("client_port", I32, "Client TCP port."),
    ("broker_addr", STR, "Broker IP address."),
    ("broker_port", I32, "Broker TCP port."),
    ("correlation_id", I32, "Request correlation id."),
    ("api_key", I32, "Kafka API key."),
    ("api_name", STR, "Kafka API name, e.g. Produce."),
    ("api_version", I32, "Request API version."),
    ("client_id", STR, "Client id from the request header."),
    ("request_first_at", TIMESTAMP, "First byte of the request seen."),
    ("arrival_at", TIMESTAMP, "Last byte of the request seen."),
    ("response_first_at", TIMESTAMP, "First byte of the response seen."),
    ("end_at", TIMESTAMP, "Last byte of the response seen."),
    ("latency_ms", F64, "end_at - arrival_at in milliseconds."),
    ("request_bytes", I64, "Request size including the 4-byte length prefix."),
    ("response_bytes", I64, "Response size including the 4-byte length prefix."),
    ("complete", BOOL, "Both request and response seen."),
)

PRODUCE_PARTITIONS = declare(
    "produce_partitions",
    "One row per produce request x topic x partition, with the batch it carried and the response.",
    ("position", I64, "Packet number (1-based) of the request's first packet."),
    ("conn_id", STR, "Connection id, joins kafka_requests."),
    ("correlation_id", I32, "Request correlation id."),
    ("client_addr", STR, "Client IP address."),
    ("client_port", I32, "Client TCP port."),
    ("api_version", I32, "Produce request version."),
    ("topic", STR, "Topic name (resolved from the topic id for v13+ when known)."),
    ("topic_id", STR, "Topic id (v13+), else null."),
    ("partition", I32, "Partition index."),
    ("acks", I32, "Required acks (-1, 0, 1)."),
    ("timeout_ms", F64, "Request timeout in milliseconds."),
    ("transactional_id", STR, "Transactional id or null."),
    ("batches", I32, "Record batches in the partition's data."),
    ("records", I64, "Records in those batches."),
    ("records_bytes", I64, "Size of the partition's records field in bytes."),
    ("producer_id", I64, "Producer id of the first batch."),
    ("producer_epoch", I32, "Producer epoch of the first batch."),
    ("base_sequence", I32, "Base sequence of the first batch."),
    ("batch_crc", I64, "CRC32C of the first batch as written by the producer (unsigned)."),
    ("compression", STR, "none | gzip | snappy | lz4 | zstd."),
    ("first_timestamp_at", TIMESTAMP, "First timestamp of the first batch."),
    ("message_ids", STR_LIST, "Values of the message-id header of every record."),
    ("error_code", I32, "Partition error code from the response."),
    ("base_offset", I64, "Base offset assigned by the broker (response)."),
    ("arrival_at", TIMESTAMP, "Request arrival (last request byte)."),
    ("end_at", TIMESTAMP, "Response end (last response byte)."),
    ("latency_ms", F64, "end_at - arrival_at in milliseconds."),
)


@register
class CaptureParser(Parser):
    kind = "pcap"
    tables = ("kafka_requests", "produce_partitions")
    priority = 10  # first: the capture's date anchors time-of-day logs

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        return probe.head[:4] in PCAP_MAGICS or probe.head[:4] == PCAPNG_MAGIC
