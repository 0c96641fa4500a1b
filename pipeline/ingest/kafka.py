"""Kafka wire protocol: request/response headers and the bodies the pipeline needs.

Decoded bodies: Produce requests (v0-v13, flexible from v9, topic ids from v13) and
responses, Metadata responses (topic names and ids), ApiVersions responses, Fetch
requests (replica id: a follower broker or a consumer). Every other API is recognised
by its header only. Field layouts follow Apache Kafka's message definitions
(``clients/src/main/resources/common/message/*.json``); the flexible-version table
below is checked against them in the tests.

All decoders take a ``bytes`` frame *without* its 4-byte size prefix and raise
:class:`ProtocolError` on malformed input.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field

# api key -> (name, first flexible version or None, highest version known)
APIS: dict[int, tuple[str, int | None, int]] = {
    0: ("Produce", 9, 13),
    1: ("Fetch", 12, 18),
    2: ("ListOffsets", 6, 11),
    3: ("Metadata", 9, 13),
    4: ("LeaderAndIsr", 4, 7),
    5: ("StopReplica", 2, 4),
    6: ("UpdateMetadata", 6, 8),
    7: ("ControlledShutdown", 3, 3),
    8: ("OffsetCommit", 8, 10),
    9: ("OffsetFetch", 6, 10),
    10: ("FindCoordinator", 3, 6),
    11: ("JoinGroup", 6, 9),
    12: ("Heartbeat", 4, 4),
    13: ("LeaveGroup", 4, 5),
    14: ("SyncGroup", 4, 5),
    15: ("DescribeGroups", 5, 6),
    16: ("ListGroups", 3, 5),
    17: ("SaslHandshake", None, 1),
    18: ("ApiVersions", 3, 4),
    19: ("CreateTopics", 5, 7),
    20: ("DeleteTopics", 4, 6),
    21: ("DeleteRecords", 2, 2),
    22: ("InitProducerId", 2, 6),
    23: ("OffsetForLeaderEpoch", 4, 4),
    24: ("AddPartitionsToTxn", 3, 5),
    25: ("AddOffsetsToTxn", 3, 4),
    26: ("EndTxn", 3, 5),
    27: ("WriteTxnMarkers", 1, 2),
    28: ("TxnOffsetCommit", 3, 5),
    29: ("DescribeAcls", 2, 3),
    30: ("CreateAcls", 2, 3),
    31: ("DeleteAcls", 2, 3),
    32: ("DescribeConfigs", 4, 4),
    33: ("AlterConfigs", 2, 2),
    34: ("AlterReplicaLogDirs", 2, 2),
    35: ("DescribeLogDirs", 2, 5),
    36: ("SaslAuthenticate", 2, 2),
    37: ("CreatePartitions", 2, 3),
    38: ("CreateDelegationToken", 2, 3),
    39: ("RenewDelegationToken", 2, 2),
    40: ("ExpireDelegationToken", 2, 2),
    41: ("DescribeDelegationToken", 2, 3),
    42: ("DeleteGroups", 2, 2),
    43: ("ElectLeaders", 2, 2),
    44: ("IncrementalAlterConfigs", 1, 1),
    45: ("AlterPartitionReassignments", 0, 1),
    46: ("ListPartitionReassignments", 0, 0),
    47: ("OffsetDelete", None, 0),
    48: ("DescribeClientQuotas", 1, 1),
    49: ("AlterClientQuotas", 1, 1),
    50: ("DescribeUserScramCredentials", 0, 0),
    51: ("AlterUserScramCredentials", 0, 0),
    52: ("Vote", 0, 2),
    53: ("BeginQuorumEpoch", 1, 1),
    54: ("EndQuorumEpoch", 1, 1),
    55: ("DescribeQuorum", 0, 2),
    56: ("AlterPartition", 0, 3),
    57: ("UpdateFeatures", 0, 2),
    58: ("Envelope", 0, 0),
    59: ("FetchSnapshot", 0, 1),
    60: ("DescribeCluster", 0, 2),
    61: ("DescribeProducers", 0, 0),
    62: ("BrokerRegistration", 0, 4),
    63: ("BrokerHeartbeat", 0, 1),
    64: ("UnregisterBroker", 0, 0),
    65: ("DescribeTransactions", 0, 0),
    66: ("ListTransactions", 0, 2),
    67: ("AllocateProducerIds", 0, 0),
    68: ("ConsumerGroupHeartbeat", 0, 1),
    69: ("ConsumerGroupDescribe", 0, 1),
    70: ("ControllerRegistration", 0, 0),
    71: ("GetTelemetrySubscriptions", 0, 0),
    72: ("PushTelemetry", 0, 0),
    73: ("AssignReplicasToDirs", 0, 0),
    74: ("ListConfigResources", 0, 1),
    75: ("DescribeTopicPartitions", 0, 0),
    76: ("ShareGroupHeartbeat", 0, 1),
    77: ("ShareGroupDescribe", 0, 1),
    78: ("ShareFetch", 0, 1),
    79: ("ShareAcknowledge", 0, 1),
    80: ("AddRaftVoter", 0, 0),
    81: ("RemoveRaftVoter", 0, 0),
    82: ("UpdateRaftVoter", 0, 0),
    83: ("InitializeShareGroupState", 0, 0),
    84: ("ReadShareGroupState", 0, 0),
    85: ("WriteShareGroupState", 0, 0),
    86: ("DeleteShareGroupState", 0, 0),
    87: ("ReadShareGroupStateSummary", 0, 0),
    88: ("StreamsGroupHeartbeat", 0, 0),
    89: ("StreamsGroupDescribe", 0, 0),
    90: ("DescribeShareGroupOffsets", 0, 0),
    91: ("AlterShareGroupOffsets", 0, 0),
    92: ("DeleteShareGroupOffsets", 0, 0),
}
PRODUCE, FETCH, METADATA, API_VERSIONS = 0, 1, 3, 18
# Header plausibility when hunting for a frame boundary: versions a little above the
# highest known are accepted (newer brokers), anything beyond is not a request header.
VERSION_SLACK = 3
MAX_CLIENT_ID = 1024


class ProtocolError(ValueError):
    """A frame that does not follow the protocol; ``position`` is relative to the frame."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


def api_name(key: int) -> str:
    api = APIS.get(key)
    return api[0] if api else f"Unknown{key}"


def is_flexible(key: int, version: int) -> bool:
    api = APIS.get(key)
    return api is not None and api[1] is not None and version >= api[1]


def request_header_version(key: int, version: int) -> int:
    if key == 7 and version == 0:  # ControlledShutdown v0 has no client id
        return 0
    return 2 if is_flexible(key, version) else 1


def response_header_version(key: int, version: int) -> int:
    if key == API_VERSIONS:  # always v0 so that any client can read the versions
        return 0
    return 1 if is_flexible(key, version) else 0


def topic_id_text(raw: bytes) -> str:
    """A topic id as Kafka prints it (``Uuid.toString``): URL-safe base64, no padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def normalise_topic_id(text: str) -> str:
    """Accept a topic id as Kafka's base64 or as a dashed/plain hex UUID."""
    t = text.strip()
    hexed = t.replace("-", "")
    if len(hexed) == 32:
        try:
            return topic_id_text(bytes.fromhex(hexed))
        except ValueError:
            pass
    return t


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class Cursor:
    """Reads protocol primitives from a frame, raising :class:`ProtocolError` on overrun."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def _need(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise ProtocolError(f"field of {n} bytes runs past the end of the frame", p)
        self.pos = p + n
        return p

    def i8(self) -> int:
        p = self._need(1)
        v = self.buf[p]
        return v - 256 if v > 127 else v

    def i16(self) -> int:
        return _I16.unpack_from(self.buf, self._need(2))[0]

    def i32(self) -> int:
        return _I32.unpack_from(self.buf, self._need(4))[0]

    def i64(self) -> int:
        return _I64.unpack_from(self.buf, self._need(8))[0]

    def uuid(self) -> bytes:
        p = self._need(16)
        return bytes(self.buf[p : p + 16])

    def uvarint(self) -> int:
        p = self.pos
        if p < self.end:
            b = self.buf[p]
            if b < 0x80:  # one byte: the common case (lengths, empty tagged fields)
                self.pos = p + 1
                return b
        result = shift = 0
        while True:
            p = self._need(1)
            b = self.buf[p]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 35:
                raise ProtocolError("unsigned varint longer than 5 bytes", p)

    def raw(self, n: int) -> bytes:
        if n < 0:
            raise ProtocolError(f"negative length {n}", self.pos)
        p = self._need(n)
        return bytes(self.buf[p : p + n])

    def skip(self, n: int) -> None:
        if n < 0:
            raise ProtocolError(f"negative length {n}", self.pos)
        self._need(n)

    def string(self, flexible: bool) -> str | None:
        """A (nullable) string: int16 length, or unsigned varint length+1 when flexible."""
        n = self.uvarint() - 1 if flexible else self.i16()
        if n < 0:
            return None
        return self.raw(n).decode("utf-8", "replace")

    def skip_string(self, flexible: bool) -> None:
        n = self.uvarint() - 1 if flexible else self.i16()
        if n > 0:
            self.skip(n)

    def bytes_span(self, flexible: bool) -> tuple[int, int]:
        """A (nullable) bytes field: returns (start, length) within the frame; length -1 is null."""
        n = self.uvarint() - 1 if flexible else self.i32()
        if n < 0:
            return self.pos, -1
        return self._need(n), n

    def array_len(self, flexible: bool) -> int:
        n = self.uvarint() - 1 if flexible else self.i32()
        if n > self.end - self.pos:  # every element takes at least one byte
            raise ProtocolError(f"array of {n} elements cannot fit in the frame", self.pos)
        return n

    def tagged_fields(self) -> dict[int, tuple[int, int]]:
        """Tagged fields: tag -> (start, length) within the frame."""
        out = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            size = self.uvarint()
            out[tag] = (self._need(size), size)
        return out

    def skip_tagged(self) -> None:
        p = self.pos
        if p < self.end and self.buf[p] == 0:  # no tagged fields
            self.pos = p + 1
            return
        for _ in range(self.uvarint()):
            self.uvarint()
            self.skip(self.uvarint())


@dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    size: int  # header bytes (the body starts here)

    @property
    def flexible(self) -> bool:
        return is_flexible(self.api_key, self.api_version)


def plausible_request_start(buf: bytes | memoryview, pos: int) -> bool:
    """Cheap check of api key and version at a frame's body start (after the size)."""
    key, ver = struct.unpack_from(">hh", buf, pos)
    api = APIS.get(key)
    return api is not None and 0 <= ver <= api[2] + VERSION_SLACK


_HEADER_V1 = struct.Struct(">hhih")


def read_request_header(frame: bytes | memoryview, strict: bool = True) -> RequestHeader:
    """Parse a request header; ``strict`` also demands a plausible key, version and client id."""
    if len(frame) >= 10:  # fast path: a known, non-flexible header with an ASCII client id
        key, ver, corr, n = _HEADER_V1.unpack_from(frame)
        api = APIS.get(key)
        if api is not None and 0 <= ver <= api[2] and key != 7:
            end = 10 + max(n, 0)
            flexible = api[1] is not None and ver >= api[1]
            # flexible headers end with tagged fields: the common case is none (one zero byte)
            if -1 <= n <= MAX_CLIENT_ID and end + flexible <= len(frame) and (not flexible or frame[end] == 0):
                raw = bytes(frame[10:end])
                if raw.isascii() and (text := raw.decode("ascii")).isprintable():
                    return RequestHeader(key, ver, corr, text if n >= 0 else None, end + flexible)
    c = Cursor(frame)
    key, ver, corr = c.i16(), c.i16(), c.i32()
    api = APIS.get(key)
    if strict and (api is None or not 0 <= ver <= api[2] + VERSION_SLACK):
        raise ProtocolError(f"api key {key} version {ver} is not a known request", 0)
    client_id = None
    hv = request_header_version(key, ver)
    if hv >= 1:
        n = c.i16()  # client id is a non-compact nullable string in every header version
        if n >= 0:
            if strict and n > MAX_CLIENT_ID:
                raise ProtocolError(f"client id of {n} bytes", 8)
            raw = c.raw(n)
            try:
                client_id = raw.decode("utf-8")
            except UnicodeDecodeError:
                if strict:
                    raise ProtocolError("client id is not UTF-8", 10) from None
                client_id = raw.decode("utf-8", "replace")
            if strict and not client_id.isprintable():
                raise ProtocolError("client id is not printable", 10)
    if hv >= 2:
        c.skip_tagged()
    return RequestHeader(key, ver, corr, client_id, c.pos)


def response_body_start(frame: bytes | memoryview, api_key: int, api_version: int) -> int:
    """Offset of the response body: after correlation id (and tagged fields for header v1)."""
    c = Cursor(frame, 4)
    if response_header_version(api_key, api_version) >= 1:
        c.skip_tagged()
    return c.pos


# -- Produce --------------------------------------------------------------------------------


@dataclass(slots=True)
class ProducePartition:
    topic: str | None
    topic_id: str | None
    partition: int
    records_start: int  # offset of the records bytes within the frame
    records_len: int  # -1 for null records


@dataclass(slots=True)
class ProduceRequest:
    transactional_id: str | None
    acks: int
    timeout_ms: int
    partitions: list[ProducePartition] = field(default_factory=list)


def read_produce_request(frame: bytes | memoryview, header: RequestHeader) -> ProduceRequest:
    v = header.api_version
    flex = v >= 9
    c = Cursor(frame, header.size)
    txn = c.string(flex) if v >= 3 else None
    req = ProduceRequest(txn, c.i16(), c.i32())
    for _ in range(c.array_len(flex)):
        if v >= 13:
            tid, name = topic_id_text(c.uuid()), None
        else:
            tid, name = None, c.string(flex)
        for _ in range(c.array_len(flex)):
            index = c.i32()
            start, n = c.bytes_span(flex)
            req.partitions.append(ProducePartition(name, tid, index, start, n))
            if flex:
                c.skip_tagged()
        if flex:
            c.skip_tagged()
    if flex:
        c.skip_tagged()
    if c.pos != len(frame):
        raise ProtocolError(f"{len(frame) - c.pos} bytes left after the produce request", c.pos)
    return req


@dataclass(slots=True)
class ProducePartitionResponse:
    topic: str | None
    topic_id: str | None
    partition: int
    error_code: int
    base_offset: int


def read_produce_response(frame: bytes | memoryview, version: int) -> list[ProducePartitionResponse]:
    flex = version >= 9
    c = Cursor(frame, response_body_start(frame, PRODUCE, version))
    out = []
    for _ in range(c.array_len(flex)):
        if version >= 13:
            tid, name = topic_id_text(c.uuid()), None
        else:
            tid, name = None, c.string(flex)
        for _ in range(c.array_len(flex)):
            index, err, base = c.i32(), c.i16(), c.i64()
            if version >= 2:
                c.skip(8)  # log append time
            if version >= 5:
                c.skip(8)  # log start offset
            if version >= 8:
                for _ in range(c.array_len(flex)):
                    c.skip(4)
                    c.skip_string(flex)
                c.skip_string(flex)
            if flex:
                c.skip_tagged()
            out.append(ProducePartitionResponse(name, tid, index, err, base))
        if flex:
            c.skip_tagged()
    if version >= 1:
        c.skip(4)  # throttle time
    if flex:
        c.skip_tagged()
    if c.pos != len(frame):
        raise ProtocolError(f"{len(frame) - c.pos} bytes left after the produce response", c.pos)
    return out


# -- Metadata, ApiVersions, Fetch ------------------------------------------------------------


def read_metadata_response(frame: bytes | memoryview, version: int) -> list[tuple[str | None, str | None]]:
    """(topic name, topic id) of every topic in a Metadata response (id from v10)."""
    flex = version >= 9
    c = Cursor(frame, response_body_start(frame, METADATA, version))
    if version >= 3:
        c.skip(4)
    for _ in range(c.array_len(flex)):
        c.skip(4)  # node id
        c.skip_string(flex)
        c.skip(4)  # port
        if version >= 1:
            c.skip_string(flex)  # rack
        if flex:
            c.skip_tagged()
    if version >= 2:
        c.skip_string(flex)  # cluster id
    if version >= 1:
        c.skip(4)  # controller id
    topics = []
    for _ in range(c.array_len(flex)):
        c.skip(2)  # error code
        name = c.string(flex)
        tid = topic_id_text(c.uuid()) if version >= 10 else None
        if version >= 1:
            c.skip(1)  # is internal
        for _ in range(c.array_len(flex)):
            c.skip(10 + (4 if version >= 7 else 0))  # error, index, leader, [leader epoch]
            for _ in range(3 if version >= 5 else 2):  # replicas, isr, [offline]
                c.skip(4 * c.array_len(flex))
            if flex:
                c.skip_tagged()
        if version >= 8:
            c.skip(4)  # topic authorized operations
        if flex:
            c.skip_tagged()
        topics.append((name, tid))
    return topics


def read_api_versions_response(frame: bytes | memoryview, version: int) -> tuple[int, dict[int, tuple[int, int]]]:
    """Error code and api key -> (min, max) version advertised by the broker."""
    flex = version >= 3
    c = Cursor(frame, 4)
    err = c.i16()
    out = {}
    for _ in range(c.array_len(flex)):
        key, lo, hi = c.i16(), c.i16(), c.i16()
        if flex:
            c.skip_tagged()
        out[key] = (lo, hi)
    return err, out


def read_fetch_replica_id(frame: bytes | memoryview, header: RequestHeader) -> int:
    """The fetching replica's broker id (>= 0 for a follower broker, -1 for a consumer)."""
    v = header.api_version
    flex = v >= 12
    c = Cursor(frame, header.size)
    if v <= 14:
        return c.i32()
    c.skip(4 + 4 + 4 + 1 + 4 + 4)  # max wait, min bytes, max bytes, isolation, session id/epoch
    for _ in range(c.array_len(flex)):
        c.skip(16)  # topic id (v13+)
        for _ in range(c.array_len(flex)):
            c.skip(4 + 4 + 8 + 4 + 8 + 4)
            c.skip_tagged()
        c.skip_tagged()
    for _ in range(c.array_len(flex)):
        c.skip(16)
        c.skip(4 * c.array_len(flex))
        c.skip_tagged()
    c.skip_string(flex)  # rack id
    tags = c.tagged_fields()
    if 1 in tags:
        start, _n = tags[1]
        return _I32.unpack_from(frame, start)[0]
    return -1
