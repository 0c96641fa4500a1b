"""Kafka wire ingest: pcap/pcapng captures → ``kafka_requests`` and ``produce_partitions``.

Pipeline per packet: capture record (pcap µs/ns either byte order, pcapng with
per-interface resolution and offset, gzip) → link layer (Ethernet with 802.1Q/802.1ad
tags, Linux SLL/SLL2, BSD null/loopback, raw IP) → IPv4/IPv6 → TCP → per-direction
reassembly (retransmissions, overlaps, reordering, snaplen cuts, capture loss) →
Kafka framing (4-byte size prefix; resynchronisation after gaps and at mid-stream
starts) → request/response pairing by correlation id per connection.

The common headers are unpacked with ``struct`` (exact and fast); dpkt decodes what the
fast path does not cover (IPv6 extension headers). Memory is bounded by the open
connections' in-flight data: rows leave in columnar chunks as responses complete.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import heapq
import io
import multiprocessing
import os
import re
import socket
import struct
import zlib
from collections.abc import Iterator
from multiprocessing import connection as mp_connection
from pathlib import Path, PurePosixPath
from typing import Any

import click
import dpkt
import polars as pl
import pyarrow as pa

from pipeline.ingest import kafka as k
from pipeline.ingest import records as rec
from pipeline.registry import ParseContext, Parser, Probe, dump_command, register
from pipeline.tables import BOOL, F64, I32, I64, STR, STR_LIST, TIMESTAMP, declare

PCAP_MAGICS = (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

KAFKA_REQUESTS = declare(
    "kafka_requests",
    "One row per Kafka request/response pair seen on the wire, every API. "
    "A request is identified by (conn_id, correlation_id).",
    ("position", I64, "Packet number (1-based) of the request's first packet."),
    ("conn_id", STR, "Stable id of the TCP connection: client>broker 4-tuple and first packet time (µs)."),
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
    ("replica_id", I32, "Fetch only: the fetching broker's id (>= 0: a follower replica), -1 for a consumer."),
    ("response_position", I64, "Packet number of the response's last packet."),
    ("arrival_ns", I64, "arrival_at on the capture's own clock: ns since the epoch, before any clock offset."),
    ("end_ns", I64, "end_at on the capture's own clock: ns since the epoch, before any clock offset."),
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
    ("topic_id", STR, "Topic id (v13+; Kafka's base64 form), else null."),
    ("partition", I32, "Partition index."),
    ("acks", I32, "Required acks (-1, 0, 1)."),
    ("timeout_ms", F64, "Request timeout in milliseconds."),
    ("transactional_id", STR, "Transactional id or null."),
    ("batches", I32, "Record batches (legacy: top-level messages) in the partition's data."),
    ("records", I64, "Records in those batches (legacy: inner messages of compressed wrappers)."),
    ("records_bytes", I64, "Size of the partition's records field in bytes."),
    ("magic", I32, "Record format of the first batch (2 = record batch, 0/1 = legacy message)."),
    ("producer_id", I64, "Producer id of the first batch."),
    ("producer_epoch", I32, "Producer epoch of the first batch."),
    ("base_sequence", I32, "Base sequence of the first batch."),
    ("batch_crc", I64, "CRC of the first batch as written by the producer (unsigned; CRC32C for magic 2)."),
    ("crc_valid", BOOL, "Every batch's stored CRC matches its bytes."),
    ("compression", STR, "none | gzip | snappy | lz4 | zstd."),
    ("first_timestamp_at", TIMESTAMP, "First timestamp of the first batch."),
    ("message_ids", STR_LIST, "Values of the message-id header of every record."),
    ("error_code", I32, "Partition error code from the response."),
    ("base_offset", I64, "Base offset assigned by the broker (response)."),
    ("arrival_at", TIMESTAMP, "Request arrival (last request byte)."),
    ("end_at", TIMESTAMP, "Response end (last response byte)."),
    ("latency_ms", F64, "end_at - arrival_at in milliseconds."),
    ("arrival_ns", I64, "arrival_at on the capture's own clock: ns since the epoch, before any clock offset."),
    ("end_ns", I64, "end_at on the capture's own clock: ns since the epoch, before any clock offset."),
)

CHUNK_ROWS = 50_000
READ_CHUNK = 1 << 20
MAX_FRAME = 100 * 1024 * 1024  # the broker's default socket.request.max.bytes is 100 MiB
MAX_PENDING = 8 * 1024 * 1024  # out-of-order bytes held per direction before declaring a gap
PROBE_LIMIT = 256 * 1024  # bytes buffered per direction of an unidentified connection
U32 = 0xFFFFFFFF
MAX_TIMESTAMP_MS = 253402300799999  # 9999-12-31: a batch timestamp beyond is damage, shown as null
MAX_TIMESTAMP_NS = 1 << 62  # year 2116: capture instants must fit nanoseconds in 64 bits

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
# What a body decoder may raise on damaged bytes: recorded against the frame, never fatal.
BODY_ERRORS = (k.ProtocolError, rec.BatchError, struct.error, IndexError, ValueError, zlib.error, OverflowError)

_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_IP4 = struct.Struct(">BxHxxHxB")  # ver/ihl, total length, flags/frag, protocol
_TCP = struct.Struct(">HHIIBB")  # sport, dport, seq, ack, data offset, flags
# Ethernet, IPv4 with a 20-byte header, TCP: total length, flags/fragment, protocol, addresses, then _TCP
_ETH_IP4_TCP = struct.Struct(">16xH2xHxB2x4s4sHHIIBB")

# A request frame start: size < 100 MiB, api key < 256, version < 64.
_REQUEST_START = re.compile(rb"(?=[\x00-\x06][\x00-\xff]{3}\x00[\x00-\xff]\x00[\x00-\x3f])", re.S)

LINKTYPES = {
    0: "null",
    1: "ethernet",
    12: "raw",
    14: "raw",
    101: "raw",
    108: "loop",
    113: "sll",
    228: "ipv4",
    229: "ipv6",
    276: "sll2",
}
AF_INET6 = (10, 24, 28, 30)  # Linux, BSDs, Darwin


# -- capture records --------------------------------------------------------------------------


class CaptureError(Exception):
    pass


def _packets(f, ctx: ParseContext | None) -> Iterator[tuple[int, int, bytes, int, int, int]]:
    """(ts_ns, linktype, buf, start, caplen, origlen) for every packet record in a capture."""
    head = f.read(4)
    if head in PCAP_MAGICS:
        yield from _pcap(f, head, ctx)
    elif head == PCAPNG_MAGIC:
        yield from _pcapng(f, head, ctx)
    else:
        raise CaptureError(f"not a pcap or pcapng capture (magic {head.hex()})")


class _Buffered:
    """Chunked reads over a stream; ``need(n)`` makes n bytes available at ``pos``. A stream
    that cannot be read further (a gzip cut short) ends the capture with a data_loss error."""

    def __init__(self, f, initial: bytes = b"", ctx: ParseContext | None = None) -> None:
        self.f = f
        self.buf = initial
        self.pos = 0
        self.consumed = 0  # file offset of buf[0]
        self.ctx = ctx
        self.broken = False

    def need(self, n: int) -> bool:
        if len(self.buf) - self.pos >= n:
            return True
        rest = self.buf[self.pos :]
        self.consumed += self.pos
        want = max(READ_CHUNK, n - len(rest))
        read = getattr(self.f, "read1", self.f.read)  # read1: a cut gzip still yields what it decoded
        parts = [rest]
        while not self.broken and want > 0:
            try:
                chunk = read(want)
            except (EOFError, OSError, zlib.error) as exc:
                self.broken = True
                if self.ctx:
                    self.ctx.error(
                        self.consumed + len(rest),
                        "read_error",
                        f"capture stream unreadable after this point: {exc}",
                        severity="data_loss",
                    )
                break
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
        self.buf, self.pos = b"".join(parts), 0
        return len(self.buf) >= n

    @property
    def offset(self) -> int:
        return self.consumed + self.pos

    def lost(self, what: str, message: str, *, skipped: bool) -> None:
        """Record a data_loss error at the read position; ``skipped``: the bytes still
        buffered from there on are lost with it."""
        if self.ctx:
            left = len(self.buf) - self.pos if skipped else 0
            self.ctx.error(self.offset, what, message, severity="data_loss", unit="byte", skipped_bytes=left)


def _pcap(f, magic: bytes, ctx) -> Iterator[tuple[int, int, bytes, int, int, int]]:
    little = magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    nano = magic in (b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
    e = "<" if little else ">"
    rest = f.read(20)
    if len(rest) < 20:
        raise CaptureError("pcap global header cut short")
    _vmaj, _vmin, _zone, _sigfigs, _snaplen, linktype = struct.unpack(e + "HHiIII", rest)
    linktype &= 0x0FFFFFFF
    rec_hdr = struct.Struct(e + "IIII")
    mult = 1 if nano else 1000
    r = _Buffered(f, ctx=ctx)
    r.consumed = 24
    while True:
        buf, pos = r.buf, r.pos
        n = len(buf)
        while n - pos >= 16:  # records wholly inside the buffer, without a call each
            sec, frac, incl, orig = rec_hdr.unpack_from(buf, pos)
            if incl > 0x4000000 or n - pos - 16 < incl:
                break
            yield sec * 1_000_000_000 + frac * mult, linktype, buf, pos + 16, incl, orig
            pos += 16 + incl
        r.pos = pos
        if not r.need(16):
            break
        sec, frac, incl, orig = rec_hdr.unpack_from(r.buf, r.pos)
        if incl > 0x4000000:
            r.lost("bad_record", f"packet record claims {incl} bytes; rest of capture unreadable", skipped=False)
            return
        if not r.need(16 + incl):
            have = len(r.buf) - r.pos - 16
            r.lost("truncated_capture", f"last packet record cut short ({have} of {incl} bytes)", skipped=True)
            return
        yield sec * 1_000_000_000 + frac * mult, linktype, r.buf, r.pos + 16, incl, orig
        r.pos += 16 + incl
    if len(r.buf) - r.pos:
        r.lost("truncated_capture", f"{len(r.buf) - r.pos} trailing bytes after the last packet", skipped=True)


def _tsresol_ns(code: int) -> tuple[int, int]:
    """pcapng if_tsresol → (multiplier, divisor) from ticks to nanoseconds."""
    if code & 0x80:
        return 1_000_000_000, 1 << (code & 0x7F)
    n = code & 0x7F
    return (10 ** (9 - n), 1) if n <= 9 else (1, 10 ** (n - 9))


def _pcapng(f, magic: bytes, ctx) -> Iterator[tuple[int, int, bytes, int, int, int]]:
    r = _Buffered(f, magic, ctx)
    e = ">"
    ifaces: list[tuple[int, int, int, int]] = []  # linktype, mult, div, offset ns
    while r.need(12):
        if r.buf[r.pos : r.pos + 4] == PCAPNG_MAGIC:  # section header: byte order may change
            bom = r.buf[r.pos + 8 : r.pos + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        btype, blen = struct.unpack_from(e + "II", r.buf, r.pos)
        if blen < 12 or blen % 4 or blen > 0x4000000:
            r.lost("bad_block", f"pcapng block of type {btype:#x} claims {blen} bytes; rest unreadable", skipped=False)
            return
        if not r.need(blen):
            have = len(r.buf) - r.pos
            r.lost("truncated_capture", f"last pcapng block cut short ({have} of {blen} bytes)", skipped=True)
            return
        p = r.pos
        if btype == 6:  # enhanced packet block
            iface, hi, lo, cap, orig = struct.unpack_from(e + "IIIII", r.buf, p + 8)
            if iface >= len(ifaces):
                if ctx:
                    ctx.error(r.offset, "bad_block", f"packet on undeclared interface {iface}", unit="byte")
            else:
                lt, mult, div, off = ifaces[iface]
                ts = ((hi << 32) | lo) * mult // div + off
                yield ts, lt, r.buf, p + 28, min(cap, blen - 32), orig
        elif btype == 1:  # interface description block
            lt = struct.unpack_from(e + "H", r.buf, p + 8)[0]
            mult, div, off = 1000, 1, 0
            q, end = p + 16, p + blen - 4
            while q + 4 <= end:
                code, olen = struct.unpack_from(e + "HH", r.buf, q)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    mult, div = _tsresol_ns(r.buf[q + 4])
                elif code == 14 and olen == 8:
                    off = struct.unpack_from(e + "q", r.buf, q + 4)[0] * 1_000_000_000
                q += 4 + ((olen + 3) & ~3)
            ifaces.append((lt, mult, div, off))
        elif btype == 2:  # obsolete packet block
            iface, _drops, hi, lo, cap, orig = struct.unpack_from(e + "HHIIII", r.buf, p + 8)
            if iface < len(ifaces):
                lt, mult, div, off = ifaces[iface]
                yield ((hi << 32) | lo) * mult // div + off, lt, r.buf, p + 28, min(cap, blen - 32), orig
        elif btype == 3 and ctx:  # simple packet block: no timestamp
            ctx.error(
                r.offset,
                "no_timestamp",
                "simple packet block without a timestamp skipped",
                unit="byte",
                skipped_bytes=blen,
            )
        r.pos += blen
    if len(r.buf) - r.pos:
        r.lost("truncated_capture", f"{len(r.buf) - r.pos} trailing bytes after the last block", skipped=True)


# -- link, IP, TCP -----------------------------------------------------------------------------


def _ip_offset(lt: int, buf: bytes, s: int, end: int) -> tuple[int, int]:
    """(offset of the IP header, IP version) or (-1, 0) when not IP."""
    if lt == 1:
        if end - s < 14:
            return -1, 0
        et = _U16.unpack_from(buf, s + 12)[0]
        s += 14
        while et in (0x8100, 0x88A8, 0x9100) and end - s >= 4:
            et = _U16.unpack_from(buf, s + 2)[0]
            s += 4
    elif lt == 113:
        if end - s < 16:
            return -1, 0
        et = _U16.unpack_from(buf, s + 14)[0]
        s += 16
    elif lt == 276:
        if end - s < 20:
            return -1, 0
        et = _U16.unpack_from(buf, s)[0]
        s += 20
    elif lt in (0, 108):
        if end - s < 4:
            return -1, 0
        fam_be = struct.unpack_from(">I", buf, s)[0]
        fam = fam_be if lt == 108 or fam_be < 256 else struct.unpack_from("<I", buf, s)[0]
        s += 4
        et = 0x0800 if fam == 2 else 0x86DD if fam in AF_INET6 else 0
    elif lt in (101, 12, 14, 228, 229):
        if end - s < 1:
            return -1, 0
        v = buf[s] >> 4
        et = 0x0800 if v == 4 else 0x86DD if v == 6 else 0
    else:
        return -2, 0
    if et == 0x0800:
        return s, 4
    if et == 0x86DD:
        return s, 6
    return -1, 0


def _decode(lt: int, buf: bytes, s: int, caplen: int):
    """Decode to TCP: (src, dst, sport, dport, seq, ack, flags, payload, missing) or a reason string."""
    end = s + caplen
    if lt == 1 and caplen >= 34 and buf[s + 12] == 8 and buf[s + 13] == 0:  # IPv4 over Ethernet
        ip, ver = s + 14, 4
    else:
        ip, ver = _ip_offset(lt, buf, s, end)
    if ip < 0:
        return "unsupported_link" if ip == -2 else None
    if ver == 4:
        if end - ip < 20:
            return "truncated_ip"
        vihl, total, frag, proto = _IP4.unpack_from(buf, ip)
        if proto != 6:
            return None
        if frag & 0x3FFF:
            return "ip_fragment"
        ihl = (vihl & 0x0F) * 4
        src, dst = buf[ip + 12 : ip + 16], buf[ip + 16 : ip + 20]
        t = ip + ihl
        ip_end = ip + total if total else end  # total 0: segmentation offload, trust the capture
    else:
        if end - ip < 40:
            return "truncated_ip"
        nh = buf[ip + 6]
        plen = _U16.unpack_from(buf, ip + 4)[0]
        src, dst = buf[ip + 8 : ip + 24], buf[ip + 24 : ip + 40]
        t = ip + 40
        ip_end = t + plen if plen else end
        if nh != 6:
            if nh not in (0, 43, 44, 60):
                return None
            try:  # extension headers: dpkt walks them
                pkt = dpkt.ip6.IP6(bytes(buf[ip:end]))
            except (dpkt.UnpackError, IndexError, struct.error):
                return "truncated_ip"
            if 44 in pkt.extension_hdrs:
                return "ip_fragment"
            if pkt.p != 6:
                return None
            t += sum(ext.length for ext in pkt.all_extension_headers)
    if end - t < 20:
        return "truncated_tcp"
    sport, dport, seq, ack, off, flags = _TCP.unpack_from(buf, t)
    d = t + (off >> 4) * 4
    if d > end:
        return "truncated_tcp"
    pe = min(ip_end, end)
    payload = buf[d:pe] if pe > d else b""
    missing = max(ip_end - max(pe, d), 0)  # bytes the snaplen cut off
    return src, dst, sport, dport, seq, ack, flags, payload, missing


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


# -- reassembly and framing ---------------------------------------------------------------------


class Framer:
    """Cuts one direction's byte stream into Kafka frames, resynchronising when lost."""

    __slots__ = (
        "conn",
        "is_request",
        "side",
        "buf",
        "base",
        "marks",
        "synced",
        "ever_synced",
        "skip_until",
        "from_syn",
        "skipping",
        "resynced",
        "damaged",
    )

    def __init__(self, conn: Conn, is_request: bool, side: Side) -> None:
        self.conn = conn
        self.is_request = is_request
        self.side = side
        self.buf = bytearray()
        self.base = 0  # stream offset of buf[0]
        self.marks: list[tuple[int, int, int]] = []  # (stream offset, ts ns, packet) per chunk
        self.synced = False
        self.ever_synced = False
        self.skip_until = -1
        self.from_syn = False
        self.skipping: list[int] | None = None
        self.damaged: dict | None = None  # frame a gap cut, awaiting its last byte (its end time)
        self.resynced = False  # sync was lost after a gap or a bad frame (else: a mid-stream start)

    @property
    def trusted(self) -> bool:
        """Framing followed from the stream's first byte without ever losing sync."""
        return self.from_syn and self.synced

    def feed(self, off: int, data: bytes, ts: int, pkt: int) -> None:
        if off < self.skip_until:  # inside a frame already known to be damaged
            dmg = self.damaged
            if dmg is not None:  # the damaged frame's last byte arrives with this chunk or later
                obj = dmg["obj"]
                if ts >= obj[dmg["field"]]:
                    obj[dmg["field"]] = ts
                    if dmg["pkt_field"]:
                        obj[dmg["pkt_field"]] = pkt
                if off + len(data) >= self.skip_until:
                    self._damaged_done()
            cut = min(self.skip_until - off, len(data))
            data, off = data[cut:], off + cut
            if not data:
                return
        if not self.buf:
            if off == 0 and not self.ever_synced and self.side.syn_seq is not None:
                self.synced = self.ever_synced = self.from_syn = True  # the stream's very first byte
            if self.synced and self.skipping is None:
                # fast path: whole frames in this chunk are cut straight from it
                p = self._direct(off, data, ts, pkt)
                if p == len(data):
                    return
                data, off = data[p:], off + p
            self.base = off
            self.marks.clear()
        self.marks.append((off, ts, pkt))
        self.buf += data
        self._run(False)

    def _direct(self, off: int, data: bytes, ts: int, pkt: int) -> int:
        """Frames wholly inside one chunk (first and last byte in the same packet); returns
        where the first frame that needs the general path starts."""
        p, n = 0, len(data)
        conn = self.conn
        while n - p >= 8:
            size = _I32.unpack_from(data, p)[0]
            if size < 4 or size > n - p - 4 or conn.state != "kafka":
                break  # incomplete (or implausible: the general path reports it)
            if self.is_request and not self.trusted and not k.plausible_request_start(data, p + 4):
                break
            if not conn.on_frame(self, data[p + 4 : p + 4 + size], off + p, ts, pkt, ts, pkt):
                self.synced = self.from_syn = False
                self.resynced = True
                return p + 1
            p += 4 + size
        return p

    def gap(self, start: int, end: int, pkt: int) -> None:
        """Bytes [start, end) of the stream were never seen."""
        p = self.base  # where the current (partial) frame starts
        if self.synced and len(self.buf) >= 4:
            size = _I32.unpack_from(self.buf, 0)[0]
            frame_end = p + 4 + size
            if 0 <= size <= MAX_FRAME and end <= frame_end:
                first_ts, first_pkt = self._at(p)
                self.damaged = self.conn.lost_frame(
                    self, p, frame_end, pkt, self.buf, first_ts, first_pkt, self.marks[-1][1]
                )
                self.skip_until = frame_end
                self.buf.clear()
                self.marks.clear()
                self.base = frame_end
                return
        if self.buf:
            self._skip(self.base, self.base + len(self.buf), pkt)
        self._flush_skip()
        self.buf.clear()
        self.marks.clear()
        self.base = end
        self.synced = self.from_syn = False
        self.resynced = True

    def _skip(self, start: int, end: int, pkt: int) -> None:
        """Bytes passed over while hunting for a frame boundary; contiguous ranges merge."""
        sk = self.skipping
        if sk is not None and sk[1] == start:
            sk[1] = end
        else:
            self._flush_skip()
            self.skipping = [start, end, pkt]

    def _flush_skip(self) -> None:
        sk = self.skipping
        if sk is not None:
            self.skipping = None
            self.conn.skipped(self, sk[0], sk[1], sk[2], after_gap=self.resynced)

    def _damaged_done(self) -> None:
        dmg, self.damaged = self.damaged, None
        if dmg is not None and dmg["done"] is not None:
            dmg["done"]()

    def flush(self, pkt: int) -> None:
        """End of the stream: whatever is buffered is an incomplete frame."""
        self._damaged_done()
        self._run(True)
        self._flush_skip()
        if self.buf:
            self.conn.skipped(self, self.base, self.base + len(self.buf), pkt, after_gap=False, at_end=True)
            self.buf.clear()

    def _at(self, off: int) -> tuple[int, int]:
        """(ts, packet) of the chunk holding stream offset ``off``."""
        marks = self.marks
        i = bisect.bisect_right(marks, (off, 1 << 62, 0)) - 1
        m = marks[max(i, 0)]
        return m[1], m[2]

    def _end(self, start: int, end: int) -> tuple[int, int]:
        """(latest ts, its packet) among the chunks that carried bytes [start, end)."""
        marks = self.marks
        i = max(bisect.bisect_right(marks, (start, 1 << 62, 0)) - 1, 0)
        ts, pkt = marks[i][1], marks[i][2]
        for j in range(i + 1, len(marks)):
            m = marks[j]
            if m[0] >= end:
                break
            if m[1] >= ts:
                ts, pkt = m[1], m[2]
        return ts, pkt

    def _run(self, final: bool) -> None:
        buf = self.buf
        n = len(buf)
        p = 0
        while p < n:
            if self.conn.state != "kafka":
                p = n
                break
            if not self.synced:
                q = self._scan(p, final)
                if q is None:  # nothing plausible yet: keep a tail a header could start in
                    keep = 0 if final else min(n - p, 16 if self.is_request else 8)
                    if n - keep > p:
                        self._skip(self.base + p, self.base + n - keep, self._at(self.base + p)[1])
                    p = n - keep
                    break
                if q > p:
                    self._skip(self.base + p, self.base + q, self._at(self.base + p)[1])
                self._flush_skip()
                p = q
                self.synced = self.ever_synced = True
            if n - p < 4:
                break
            size = _I32.unpack_from(buf, p)[0]
            if (
                size < 4
                or size > MAX_FRAME
                or (self.is_request and not self.trusted and n - p >= 8 and not k.plausible_request_start(buf, p + 4))
            ):
                self.conn.bad_frame(
                    self,
                    self.base + p,
                    f"implausible frame size {size}" if size < 4 or size > MAX_FRAME else "not a request header",
                    self._at(self.base + p)[1],
                )
                self.synced = self.from_syn = False
                self.resynced = True
                p += 1
                continue
            if n - p - 4 < size:
                break
            start = self.base + p
            first_ts, first_pkt = self._at(start)
            end_ts, end_pkt = self._end(start, start + 4 + size)
            frame = bytes(buf[p + 4 : p + 4 + size])
            if not self.conn.on_frame(self, frame, start, first_ts, first_pkt, end_ts, end_pkt):
                self.synced = self.from_syn = False
                self.resynced = True
                p += 1
                continue
            p += 4 + size
        if p:
            del buf[:p]
            self.base += p
            marks = self.marks
            i = bisect.bisect_right(marks, (self.base, 1 << 62, 0)) - 1
            if i > 0:
                del marks[:i]

    def _scan(self, p: int, final: bool) -> int | None:
        buf = self.buf
        n = len(buf)
        if self.is_request:
            for m in _REQUEST_START.finditer(buf, p):
                q = m.start()
                if n - q < 14:
                    return q if not final else None
                size = _I32.unpack_from(buf, q)[0]
                if size < 10 or not k.plausible_request_start(buf, q + 4):
                    continue
                try:
                    k.read_request_header(memoryview(buf)[q + 4 : min(n, q + 4 + size)], strict=True)
                except k.ProtocolError:
                    if n - q - 4 < size and n - q < 14 + k.MAX_CLIENT_ID and not final:
                        return q  # header not complete yet: wait for more bytes
                    continue
                return q
            return None
        # responses: a size followed by the correlation id of a request awaiting its response
        best = None
        for corr in self.conn.outstanding:
            needle = _I32.pack(corr)
            i = buf.find(needle, p + 4)
            while i >= 0:
                size = _I32.unpack_from(buf, i - 4)[0]
                if 4 <= size <= MAX_FRAME:
                    if best is None or i - 4 < best:
                        best = i - 4
                    break
                i = buf.find(needle, i + 1)
        return best


class Side:
    """One direction of a TCP connection: reassembly of the bytes this side sent."""

    __slots__ = (
        "addr",
        "port",
        "raw",
        "isn",
        "next",
        "pending",
        "pending_bytes",
        "acked",
        "fin",
        "framer",
        "syn_seq",
        "end_off",
    )

    def __init__(self, raw: bytes, port: int) -> None:
        self.raw = raw
        self.addr = _addr(raw)
        self.port = port
        self.isn: int | None = None
        self.next = 0
        self.pending: dict[int, tuple[bytes, int, int, int]] = {}
        self.pending_bytes = 0
        self.acked = 0  # highest stream offset the peer acknowledged
        self.fin = False
        self.framer: Framer | None = None
        self.syn_seq: int | None = None
        self.end_off: int | None = None  # stream offset of the FIN

    def offset(self, seq: int) -> int:
        d = ((seq - self.isn) - self.next) & U32
        if d >= 0x80000000:
            d -= 0x100000000
        return self.next + d


class Conn:
    """A TCP connection: reassembly of both sides, Kafka framing, request/response pairing."""

    def __init__(self, ingest: WireIngest, a: Side, b: Side, ts: int, pkt: int) -> None:
        self.ingest = ingest
        self.sides = (a, b)
        self.first_ts = ts
        self.first_pkt = pkt
        self.state = "probe"  # probe | kafka | other
        self.client: Side | None = None
        self.broker: Side | None = None
        self.conn_id = ""
        self.outstanding: dict[int, dict[str, Any]] = {}
        self.probe_buf: dict[int, list[tuple[int, bytes, int, int]]] = {0: [], 1: []}
        self.probe_bytes = [0, 0]
        self.requests = 0
        self.closed = False
        self.confirmed = False
        self.other_bytes = 0  # payload passed over once the connection was found not to be Kafka

    # roles ------------------------------------------------------------------------------------
    def decide(self, client_index: int, confirmed: bool) -> None:
        c, b = self.sides[client_index], self.sides[1 - client_index]
        self.client, self.broker = c, b
        self.state = "kafka"
        self.confirmed = confirmed
        self.conn_id = f"{_endpoint(c.addr, c.port)}>{_endpoint(b.addr, b.port)}/{self.first_ts // 1000}"
        c.framer = Framer(self, True, c)
        b.framer = Framer(self, False, b)
        if confirmed:
            self.ingest.broker_endpoints.add((b.raw, b.port))
        for i in (client_index, 1 - client_index):
            for off, data, ts, pkt in self.probe_buf[i]:
                if data is None:
                    self.sides[i].framer.gap(off, off + ts, pkt)
                else:
                    self.sides[i].framer.feed(off, data, ts, pkt)
        self.probe_buf = {0: [], 1: []}

    def role_by_port(self) -> int | None:
        ports = self.ingest.kafka_ports
        a, b = self.sides
        for i, s in enumerate((a, b)):
            if s.port in ports or (s.raw, s.port) in self.ingest.broker_endpoints:
                return 1 - i
        return None

    def probe(self, index: int, off: int, data: bytes | None, ts: int, pkt: int, final: bool = False) -> None:
        """Data on a connection not yet known to be Kafka: find which side sends requests."""
        self.probe_buf[index].append((off, data, ts, pkt))
        if data is not None:
            self.probe_bytes[index] += len(data)
        n = len(self.probe_buf[index])
        if n & (n - 1) == 0 or final:  # look again at 1, 2, 4, 8... chunks: linear work overall
            self.identify(index)
        if self.state == "probe" and (min(self.probe_bytes) > PROBE_LIMIT or max(self.probe_bytes) > 4 * PROBE_LIMIT):
            self.state = "other"
            self.probe_buf = {0: [], 1: []}

    def identify(self, index: int) -> None:
        """Decide the client side if one side's buffered bytes hold requests."""
        for i in (index, 1 - index):
            side = self.sides[i]
            chunks = self.probe_buf[i]
            if not chunks:
                continue
            # contiguous bytes since the last gap
            tail = []
            for c in reversed(chunks):
                if c[1] is None:
                    break
                tail.append(c[1])
            buf = b"".join(reversed(tail))
            from_start = side.syn_seq is not None and not any(c[1] is None for c in chunks)
            if self._looks_like_requests(buf, from_start):
                self.decide(i, confirmed=True)
                return

    @staticmethod
    def _looks_like_requests(buf: bytes, from_start: bool) -> bool:
        """A request frame whose header parses and which is followed by another one or the end."""
        starts = [0] if from_start else [m.start() for m in _REQUEST_START.finditer(buf)]
        for q in starts:
            if len(buf) - q < 14:
                return False
            size = _I32.unpack_from(buf, q)[0]
            if size < 10 or size > MAX_FRAME or not k.plausible_request_start(buf, q + 4):
                if from_start:
                    return False
                continue
            if len(buf) < q + 4 + size:
                if from_start:
                    return False  # wait for the whole first request
                continue
            try:
                h = k.read_request_header(buf[q + 4 : q + 4 + size], strict=True)
            except k.ProtocolError:
                if from_start:
                    return False
                continue
            nxt = q + 4 + size
            if from_start or h.api_key == k.API_VERSIONS or nxt == len(buf):
                return True
            if len(buf) - nxt >= 8 and k.plausible_request_start(buf, nxt + 4):
                return True
        return False

    # events from the framers -----------------------------------------------------------------
    def encrypted(self, pkt: int) -> None:
        """A TLS connection (SSL or SASL_SSL listener): nothing to read without the keys."""
        if self.state == "kafka" and self.confirmed:
            a, b = self.broker, self.client
            self.ingest.ctx.error(
                pkt,
                "encrypted",
                f"{_endpoint(b.addr, b.port)}>{_endpoint(a.addr, a.port)}: TLS connection skipped",
                unit="packet",
                severity="info",
            )
        self.state = "other"
        self.outstanding.clear()

    def not_kafka(self) -> bool:
        """An unconfirmed connection whose request stream does not parse is some other protocol."""
        if self.confirmed:
            return False
        self.state = "other"
        self.outstanding.clear()
        return True

    def skipped(self, fr: Framer, start: int, end: int, pkt: int, *, after_gap: bool, at_end: bool = False) -> None:
        n = end - start
        if n <= 0 or (fr.is_request and self.not_kafka()):
            return
        d = "request" if fr.is_request else "response"
        if at_end:
            self.ingest.ctx.error(
                pkt,
                "incomplete_frame",
                f"{self.conn_id}: capture ends inside a {d} frame (stream bytes {start}..{end}, {n} bytes)",
                unit="packet",
                severity="info",
                skipped_bytes=n,
            )
        elif after_gap:
            self.ingest.ctx.error(
                pkt,
                "resync",
                f"{self.conn_id}: skipped {n} {d} stream bytes {start}..{end} to the next plausible frame",
                unit="packet",
                severity="data_loss",
                skipped_bytes=n,
            )
        else:
            self.ingest.ctx.error(
                pkt,
                "midstream_start",
                f"{self.conn_id}: capture starts inside a {d}; skipped "
                f"{n} stream bytes {start}..{end} to the first frame boundary",
                unit="packet",
                severity="info",
                skipped_bytes=n,
            )

    def lost_frame(
        self, fr: Framer, start: int, end: int, pkt: int, head: bytearray, first_ts: int, first_pkt: int, ts: int
    ) -> dict | None:
        """A gap fell inside a frame whose size is known: the frame is damaged, the framing
        holds. A request whose header survived still gets its row (and its response)."""
        d = "request" if fr.is_request else "response"
        what, damaged = "", None
        if fr.is_request:
            try:
                h = k.read_request_header(bytes(head[4:]), strict=True)
                what = f" ({k.api_name(h.api_key)} v{h.api_version}, correlation id {h.correlation_id})"
                req = self.ingest.on_request(self, h, None, first_ts, first_pkt, ts, pkt, size=end - start)
                damaged = {"obj": req, "field": "arrival_ts", "pkt_field": None, "done": None}
            except k.ProtocolError:
                what = " (header lost too)"
        elif len(head) >= 8:
            corr = _I32.unpack_from(head, 4)[0]
            what = f" (correlation id {corr})"
            req = self.outstanding.pop(corr, None)
            if req is not None:  # paired; the body is unknown, the row is emitted at its last byte
                resp = {"first_ts": first_ts, "end_ts": ts, "bytes": end - start, "pkt": pkt, "parts": None}
                damaged = {
                    "obj": resp,
                    "field": "end_ts",
                    "pkt_field": "pkt",
                    "done": lambda: self.ingest.emit(self, req, resp),
                }
        self.ingest.ctx.error(
            pkt,
            "lost_frame",
            f"{self.conn_id}: {d} frame at stream bytes {start}..{end}{what} damaged by a capture gap",
            unit="packet",
            severity="data_loss",
        )
        return damaged

    def bad_frame(self, fr: Framer, start: int, why: str, pkt: int) -> None:
        if self.not_kafka():
            return
        d = "request" if fr.is_request else "response"
        self.ingest.ctx.error(
            pkt,
            "bad_frame",
            f"{self.conn_id}: {d} stream byte {start}: {why}; resynchronising",
            unit="packet",
            severity="error",
        )

    def on_frame(
        self, fr: Framer, frame: bytes, start: int, first_ts: int, first_pkt: int, end_ts: int, end_pkt: int
    ) -> bool:
        if fr.is_request:
            lenient = fr.trusted and self.confirmed  # framing known from the SYN: any header is a request
            try:
                h = k.read_request_header(frame, strict=not lenient)
            except k.ProtocolError as exc:
                self.bad_frame(fr, start, f"request header: {exc}", first_pkt)
                return False
            if lenient and (h.api_key not in k.APIS or h.api_version > k.APIS[h.api_key][2] + k.VERSION_SLACK):
                self.ingest.ctx.error(
                    first_pkt,
                    "unknown_api",
                    f"{self.conn_id}: request correlation id "
                    f"{h.correlation_id} has api key {h.api_key} version {h.api_version}, "
                    "not a known request",
                    unit="packet",
                    severity="info",
                )
            if not self.confirmed:
                self.confirmed = True
                self.ingest.broker_endpoints.add((self.broker.raw, self.broker.port))
            self.ingest.on_request(self, h, frame, first_ts, first_pkt, end_ts, end_pkt)
            return True
        corr = _I32.unpack_from(frame, 0)[0]
        req = self.outstanding.pop(corr, None)
        if req is None:
            self.ingest.ctx.error(
                first_pkt,
                "orphan_response",
                f"{self.conn_id}: response with correlation id {corr} "
                f"({len(frame) + 4} bytes) has no request in the capture",
                unit="packet",
                severity="info",
            )
            return True
        self.ingest.on_response(self, req, frame, first_ts, end_ts, end_pkt)
        return True

    def close(self, pkt: int) -> None:
        if self.closed:
            return
        self.closed = True
        if self.state == "probe" and any(self.probe_buf.values()):
            self.identify(0)  # last look at what the connection carried
        if self.state != "kafka":
            # reassembled before the connection was set aside, and passed over after
            carried = sum(side.next for side in self.sides) + self.other_bytes
            if carried:  # accounted at the end, never silently dropped
                st = self.ingest.stats
                st["other_conns"] += 1
                st["other_bytes"] += carried
                if not st["other_first_pkt"] or self.first_pkt < st["other_first_pkt"]:
                    st["other_first_pkt"] = self.first_pkt
            return
        for side in (self.client, self.broker):
            self.ingest.flush_pending(side, pkt, self)
            # bytes the peer acknowledged (or the FIN placed) beyond what the capture holds
            end = side.end_off
            if end is None:  # no FIN seen: an acknowledgement one past the data is of a FIN not captured
                end = side.acked - 1 if side.acked == side.next + 1 else side.acked
            if side.isn is not None and end > side.next:
                self.ingest._gap(self, side, side.next, end, pkt, "capture")
            side.framer.flush(pkt)
        for req in list(self.outstanding.values()):
            self.ingest.emit(self, req, None)
        self.outstanding.clear()


class WireIngest:
    """Turns a capture into rows; one instance per artifact."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx
        m = ctx.manifest
        self.kafka_ports = set(m.kafka_ports)
        self.broker_endpoints: set[tuple[bytes, int]] = set()
        self.offset_ns = int(m.offset_ms("capture") * 1_000_000)
        self.header_name = m.message_id_header
        self.header_bytes = self.header_name.encode()
        self.topic_ids: dict[str, str] = ctx.hints.setdefault("topic_ids", {})
        for tid, name in m.topic_ids.items():
            self.topic_ids.setdefault(k.normalise_topic_id(tid), name)
        self._bundle_ids_loaded = False
        self._metadata_seen: set[int] = set()
        self.conns: dict[tuple, tuple[Conn, int]] = {}
        self.req_rows: list[tuple] = []
        self.part_rows: list[tuple] = []
        self.stats = {
            "packets": 0,
            "retransmitted_segments": 0,
            "retransmitted_bytes": 0,
            "out_of_order_segments": 0,
            "gaps": 0,
            "gap_bytes": 0,
            "other_conns": 0,  # connections never decoded as Kafka (another protocol, TLS, implausible)
            "other_bytes": 0,
            "other_first_pkt": 0,
        }
        self.reasons: dict[str, tuple[int, int]] = {}
        self.first_ts: int | None = None
        # Split runs (one worker process per share of the connections, see _split_parse):
        # this worker's share, and the order keys that let the rows merge in serial order.
        self.share: tuple[int, int] | None = None
        self.chunk_rows = CHUNK_ROWS
        self.keyed = False
        self.resolve_topics = True
        self.cur_pkt = 0
        self.cur_ord = 0
        self.seq = 0
        self.req_keys: list[tuple[int, int, int]] = []
        self.part_keys: list[tuple[int, int, int]] = []
        self.learned: list[tuple[tuple[int, int, int], str, str]] = []  # topic ids from Metadata
        self.api_version_keys: dict[str, tuple[int, int, int]] = {}

    def key(self) -> tuple[int, int, int]:
        """Where the serial run is: (packet being processed, 0 or — while closing the
        connections at the end — the closing connection's first packet, event number)."""
        self.seq += 1
        return self.cur_pkt, self.cur_ord, self.seq

    # packets ------------------------------------------------------------------------------------
    def run(self, f, reader_ctx: ParseContext | None = None) -> Iterator[tuple[str, Any]]:
        """Rows of every packet in ``f``. The cyclic garbage collector runs every million
        packets instead of every few hundred allocations: per-packet objects die by
        reference counting, a closed connection's cycles are broken when it is dropped, and
        frequent collections over the pending rows cost more than a tenth of the run."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield from self._run(f, reader_ctx)
        finally:
            if enabled:
                gc.enable()

    def _run(self, f, reader_ctx: ParseContext | None) -> Iterator[tuple[str, Any]]:
        pkt = 0
        last_gc = 0
        ctx = self.ctx
        conns = self.conns
        ports = self.kafka_ports
        last_progress = 0
        reader = _packets(f, reader_ctx or ctx)
        reasons = self.reasons
        share, shares = self.share or (0, 1)
        keyed = self.keyed
        owners: dict[bytes, int] = {}
        for ts, lt, buf, s, caplen, _orig in reader:
            pkt += 1
            if keyed:
                self.cur_pkt = pkt
            ts += self.offset_ns
            if not 0 <= ts <= MAX_TIMESTAMP_NS:  # a damaged record header or interface resolution
                c, first = reasons.get("bad_timestamp", (0, pkt))
                reasons["bad_timestamp"] = (c + 1, first)
                continue
            if self.first_ts is None:
                self.first_ts = ts
                ctx.hints.setdefault("capture_date", dt.datetime.fromtimestamp(ts / 1e9, dt.UTC).date())
            if lt == 1 and caplen >= 54 and buf[s + 14] == 0x45 and buf[s + 12] == 8 and buf[s + 13] == 0:
                # the common case, Ethernet / IPv4 without options / TCP, in one unpack
                total, frag, proto, src, dst, sport, dport, seq, ack, off, flags = _ETH_IP4_TCP.unpack_from(buf, s)
                d = s + 34 + (off >> 4) * 4
                end = s + caplen
                fast = proto == 6 and not frag & 0x3FFF and d <= end
            else:
                fast = False
            if fast:
                if shares > 1:  # another worker's connection: skipped before its payload is cut
                    tuple_key = (src, sport, dst, dport)
                    owner = owners.get(tuple_key)
                    if owner is None:
                        if len(owners) > 100_000:
                            owners.clear()
                        owner = owners[tuple_key] = _share_of(src, sport, dst, dport, shares)
                    if owner != share:
                        continue
                ip_end = s + 14 + total if total else end  # total 0: segmentation offload, trust the capture
                if ip_end < end:
                    end = ip_end
                if end > d:
                    payload = buf[d:end]
                    missing = ip_end - end
                else:
                    payload = b""
                    missing = ip_end - d if ip_end > d else 0
            else:
                r = _decode(lt, buf, s, caplen)
                if r is None:
                    continue
                if type(r) is str:
                    if r == "unsupported_link":
                        r = f"unsupported_link_{lt}"
                    c, first = reasons.get(r, (0, pkt))
                    reasons[r] = (c + 1, first)
                    continue
                src, dst, sport, dport, seq, ack, flags, payload, missing = r
            if ports and sport not in ports and dport not in ports:
                continue
            key = (src, sport, dst, dport)
            got = conns.get(key)
            if got is not None and flags & SYN and not flags & ACK:
                old = got[0].sides[got[1]]
                if old.syn_seq != seq and (old.syn_seq is not None or old.isn is not None):
                    self._drop(got[0], pkt)  # the 4-tuple is reused by a new connection
                    got = None
            if got is None:
                if not payload and not flags & SYN and not missing:
                    continue
                if shares > 1 and _share_of(src, sport, dst, dport, shares) != share:
                    continue  # another worker's connection
                conn = Conn(self, Side(src, sport), Side(dst, dport), ts, pkt)
                conns[key] = (conn, 0)
                conns[(dst, dport, src, sport)] = (conn, 1)
                got = (conn, 0)
                role = conn.role_by_port()
                if role is not None and not flags & SYN:  # mid-stream on a known broker port
                    conn.decide(role, confirmed=True)
            conn, i = got
            if conn.state == "other":
                conn.other_bytes += len(payload)
                continue
            me, peer = conn.sides[i], conn.sides[1 - i]
            if flags & SYN:
                if me.syn_seq is None:
                    me.syn_seq = seq
                    me.isn = (seq + 1) & U32
                    me.next = 0
                if conn.state == "probe":
                    role = conn.role_by_port()
                    if role is not None:
                        conn.decide(role, confirmed=True)
                    else:  # the SYN sender is the client (a SYN-ACK seen first: the other side)
                        conn.decide(1 - i if flags & ACK else i, confirmed=False)
            if flags & ACK and peer.isn is not None:
                a_off = peer.offset(ack)
                if a_off > peer.acked:
                    peer.acked = a_off
                    if peer.pending and a_off > peer.next:
                        self.flush_pending(peer, pkt, conn, upto=a_off)
            if payload or missing:
                if me.isn is None:
                    me.isn = seq
                    me.next = 0
                self._segment(conn, i, me, me.offset(seq) if me.isn is not None else 0, payload, missing, ts, pkt)
            if flags & (FIN | RST):
                if flags & RST:
                    me.fin = peer.fin = True
                else:
                    me.fin = True
                    if me.isn is not None:
                        me.end_off = me.offset(seq) + len(payload) + missing
                if me.fin and peer.fin:
                    self._drop(conn, pkt)
            if pkt - last_progress >= 10000:
                last_progress = pkt
                if pkt - last_gc >= 1_000_000:
                    last_gc = pkt
                    gc.collect()
                ctx.progress(getattr(f, "tell", lambda: 0)())
                if len(self.req_rows) >= self.chunk_rows or len(self.part_rows) >= self.chunk_rows:
                    yield from self.chunks()
                if keyed:
                    yield MARK, pkt  # every later row sorts after this packet's
        self.stats["packets"] = pkt
        for conn, _i in list(conns.values()):
            if keyed:
                self.cur_ord = conn.first_pkt
            conn.close(pkt)
        conns.clear()
        if keyed:  # the caller merges the workers' counts and reports them once
            yield from self.chunks(final=True)
            return
        self.final_errors(reasons, self.stats)
        yield from self.chunks(final=True)

    def final_errors(self, reasons: dict[str, tuple[int, int]], st: dict[str, int]) -> None:
        """Packets not decoded, per reason, and the TCP statistics."""
        ctx = self.ctx
        for what, (count, first) in sorted(reasons.items()):
            sev = "error" if what.startswith(("unsupported_link", "bad_timestamp")) else "info"
            ctx.error(
                first,
                what,
                f"{count} packets not decoded ({what.replace('_', ' ')}); first at packet {first}",
                unit="packet",
                severity=sev,
            )
        if st["other_conns"]:
            ctx.error(
                st["other_first_pkt"],
                "not_kafka",
                f"{st['other_conns']} TCP connections ({st['other_bytes']} bytes) not decoded as Kafka "
                "(another protocol, TLS, or no plausible request header; list the broker ports in "
                "bundle.toml kafka_ports to decode them as Kafka); the first starts at packet "
                f"{st['other_first_pkt']}",
                unit="packet",
                severity="info",
            )
        if st["retransmitted_segments"] or st["out_of_order_segments"]:
            ctx.error(
                None,
                "tcp_stats",
                f"{st['retransmitted_segments']} retransmitted segments "
                f"({st['retransmitted_bytes']} bytes) ignored, {st['out_of_order_segments']} out-of-order "
                "segments reordered",
                unit="packet",
                severity="info",
            )

    def _drop(self, conn: Conn, pkt: int) -> None:
        conn.close(pkt)
        for side in conn.sides:
            side.framer = None  # framer -> connection -> side -> framer: let reference counting free them
        for side_i, side in enumerate(conn.sides):
            peer = conn.sides[1 - side_i]
            key = (side.raw, side.port, peer.raw, peer.port)
            if self.conns.get(key, (None,))[0] is conn:
                del self.conns[key]

    def _segment(self, conn: Conn, i: int, me: Side, off: int, data: bytes, missing: int, ts: int, pkt: int) -> None:
        end = off + len(data) + missing
        if end <= me.next:
            self.stats["retransmitted_segments"] += 1
            self.stats["retransmitted_bytes"] += len(data)
            return
        if off > me.next:
            self.stats["out_of_order_segments"] += 1
            old = me.pending.get(off)
            if old is None or len(old[0]) + old[3] < len(data) + missing:
                me.pending[off] = (data, ts, pkt, missing)
                me.pending_bytes += len(data)
            if me.pending_bytes > MAX_PENDING or me.acked > me.next:
                self.flush_pending(me, pkt, conn, upto=me.acked if me.pending_bytes <= MAX_PENDING else None)
            return
        if off < me.next:
            cut = me.next - off
            data = data[cut:]
            off = me.next
        self._deliver(conn, i, me, off, data, missing, ts, pkt)
        if me.pending:
            self._drain(conn, i, me)

    def _deliver(self, conn: Conn, i: int, me: Side, off: int, data: bytes, missing: int, ts: int, pkt: int) -> None:
        if data:
            me.next = off + len(data)
            if off == 0 and me.syn_seq is not None and data[:2] == b"\x16\x03" and len(data) > 5:
                conn.encrypted(pkt)  # a TLS handshake record opens the stream
                return
            if conn.state == "kafka":
                me.framer.feed(off, data, ts, pkt)
            elif conn.state == "probe":
                conn.probe(i, off, data, ts, pkt)
        if missing:
            self._gap(conn, me, me.next, me.next + missing, pkt, "snaplen")

    def _drain(self, conn: Conn, i: int, me: Side) -> None:
        while me.pending:
            off = min(me.pending)
            if off > me.next:
                return
            data, ts, pkt, missing = me.pending.pop(off)
            me.pending_bytes -= len(data)
            if off + len(data) + missing <= me.next:
                continue
            if off < me.next:
                cut = me.next - off
                if cut > len(data):
                    missing -= cut - len(data)
                    cut = len(data)
                data = data[cut:]
                off = me.next
            self._deliver(conn, i, me, off, data, missing, ts, pkt)

    def flush_pending(self, me: Side, pkt: int, conn: Conn, upto: int | None = None) -> None:
        """Declare the holes before pending data lost (the peer acknowledged past them, too
        much is buffered, or the connection ended), then deliver what follows."""
        i = conn.sides.index(me)
        while me.pending:
            off = min(me.pending)
            if upto is not None and off > upto and me.acked <= me.next:
                return
            if off > me.next:
                self._gap(conn, me, me.next, off, pkt, "capture")
            self._drain(conn, i, me)
            if upto is not None and me.next >= upto:
                return

    def _gap(self, conn: Conn, me: Side, start: int, end: int, pkt: int, why: str) -> None:
        n = end - start
        self.stats["gaps"] += 1
        self.stats["gap_bytes"] += n
        seq0 = (start + (me.isn or 0)) & U32
        who = conn.conn_id or f"{_endpoint(me.addr, me.port)}"
        cause = "cut by the snapshot length" if why == "snaplen" else "missing from the capture"
        self.ctx.error(
            pkt,
            "tcp_gap",
            f"{who}: {n} bytes from {_endpoint(me.addr, me.port)} {cause} "
            f"(stream bytes {start}..{end}, seq {seq0}..{(seq0 + n) & U32})",
            unit="packet",
            severity="data_loss",  # bytes the capture never held: counted here, not as skipped bytes
        )
        me.next = end
        if conn.state == "kafka":
            me.framer.gap(start, end, pkt)
        elif conn.state == "probe":
            conn.probe(conn.sides.index(me), start, None, n, pkt)

    # Kafka --------------------------------------------------------------------------------------
    def on_request(
        self,
        conn: Conn,
        h: k.RequestHeader,
        frame: bytes | None,
        first_ts: int,
        first_pkt: int,
        end_ts: int,
        end_pkt: int,
        size: int = 0,
    ) -> dict:
        """A request frame (``frame`` None: its body was lost, only the header is known)."""
        conn.requests += 1
        req: dict[str, Any] = {
            "h": h,
            "first_ts": first_ts,
            "pkt": first_pkt,
            "arrival_ts": end_ts,
            "bytes": len(frame) + 4 if frame is not None else size,
            "replica_id": None,
            "produce": None,
        }
        if frame is None:
            pass
        elif h.api_key == k.PRODUCE:
            req["produce"] = self._produce(conn, h, frame, first_pkt)
        elif h.api_key == k.FETCH:
            try:
                req["replica_id"] = k.read_fetch_replica_id(frame, h)
            except BODY_ERRORS as exc:
                self.ctx.error(
                    first_pkt,
                    "bad_request",
                    f"{conn.conn_id}: Fetch v{h.api_version} correlation id {h.correlation_id}: {exc}",
                    unit="packet",
                )
        produce = req["produce"]
        if produce is not None and produce[0].acks == 0:
            self.emit(conn, req, None)  # acks=0: the broker sends no response
            return req
        old = conn.outstanding.pop(h.correlation_id, None)
        if old is not None:
            self.ctx.error(
                first_pkt,
                "duplicate_correlation_id",
                f"{conn.conn_id}: correlation id {h.correlation_id} reused before its response",
                unit="packet",
            )
            self.emit(conn, old, None)
        conn.outstanding[h.correlation_id] = req
        return req

    def _produce(self, conn: Conn, h: k.RequestHeader, frame: bytes, pkt: int):
        try:
            pr = k.read_produce_request(frame, h)
        except BODY_ERRORS as exc:
            self.ctx.error(
                pkt,
                "bad_request",
                f"{conn.conn_id}: Produce v{h.api_version} correlation id {h.correlation_id}: {exc}",
                unit="packet",
            )
            return None
        parts = []
        for p in pr.partitions:
            parts.append(self._partition(conn, h, frame, p, pkt))
        return pr, parts

    def _partition(self, conn: Conn, h: k.RequestHeader, frame: bytes, p: k.ProducePartition, pkt: int) -> dict:
        out: dict[str, Any] = {
            "topic": p.topic,
            "topic_id": p.topic_id,
            "partition": p.partition,
            "batches": 0,
            "records": 0,
            "records_bytes": max(p.records_len, 0),
            "magic": None,
            "producer_id": None,
            "producer_epoch": None,
            "base_sequence": None,
            "batch_crc": None,
            "crc_valid": None,
            "compression": None,
            "first_timestamp": None,
            "message_ids": [],
        }
        if p.records_len <= 0:
            return out
        data = memoryview(frame)[p.records_start : p.records_start + p.records_len]
        where = f"{conn.conn_id}: Produce correlation id {h.correlation_id} {p.topic or p.topic_id}-{p.partition}"
        pos, n = 0, len(data)
        valid = True
        try:
            while pos < n:
                if n - pos < 17:
                    raise rec.BatchError(f"{n - pos} trailing bytes after the last batch", pos)
                magic = data[pos + 16]
                if out["magic"] is None:
                    out["magic"] = magic
                if magic == 2:
                    bh = rec.read_batch_header(data, pos)
                    if pos + bh.size > n:
                        raise rec.BatchError(f"batch of {bh.size} bytes overruns the partition data", pos)
                    ok = rec.batch_crc_valid(data, pos, bh)
                    if not ok:
                        valid = False
                        self.ctx.error(
                            pkt,
                            "bad_crc",
                            f"{where}: batch at byte {pos} has CRC {bh.crc:#010x} that does not match its bytes",
                            unit="packet",
                        )
                    if out["batches"] == 0:
                        out.update(
                            producer_id=bh.producer_id,
                            producer_epoch=bh.producer_epoch,
                            base_sequence=bh.base_sequence,
                            batch_crc=bh.crc,
                            compression=bh.compression,
                            first_timestamp=bh.first_timestamp,
                        )
                    out["batches"] += 1
                    out["records"] += bh.records_count
                    base = p.records_start + pos
                    if bh.compression != "none" or frame.find(self.header_bytes, base + 61, base + bh.size) >= 0:
                        records = rec.decode_records(bh, data, pos)
                        out["message_ids"].extend(rec.message_ids(records, self.header_name))
                    pos += bh.size
                elif magic in (0, 1):
                    msg = rec.read_legacy_message(data, pos)
                    if not msg.crc_valid:
                        valid = False
                        self.ctx.error(
                            pkt,
                            "bad_crc",
                            f"{where}: legacy message at byte {pos} has a CRC that does not match its bytes",
                            unit="packet",
                        )
                    if out["batches"] == 0:
                        out.update(batch_crc=msg.crc, compression=msg.compression, first_timestamp=msg.timestamp)
                    out["batches"] += 1
                    inner = rec.legacy_inner_messages(msg)
                    out["records"] += len(inner) if msg.compression != "none" else 1
                    pos += msg.size
                else:
                    raise rec.BatchError(f"unknown record format magic {magic}", pos)
        except rec.BatchError as exc:
            valid = False
            self.ctx.error(pkt, "bad_batch", f"{where}: byte {exc.position}: {exc}", unit="packet")
        except BODY_ERRORS as exc:  # a decoder tripping on damaged bytes: still one bad batch
            valid = False
            self.ctx.error(pkt, "bad_batch", f"{where}: {type(exc).__name__}: {exc}", unit="packet")
        out["crc_valid"] = valid
        return out

    def on_response(self, conn: Conn, req: dict, frame: bytes, first_ts: int, end_ts: int, end_pkt: int) -> None:
        h: k.RequestHeader = req["h"]
        resp = {"first_ts": first_ts, "end_ts": end_ts, "bytes": len(frame) + 4, "pkt": end_pkt, "parts": None}
        try:
            if h.api_key == k.PRODUCE and req["produce"] is not None:
                resp["parts"] = k.read_produce_response(frame, h.api_version)
            elif h.api_key == k.METADATA and h.api_version >= 10 and self._new_metadata(frame):  # ids from v10
                for name, tid in k.read_metadata_response(frame, h.api_version):
                    if tid and name and tid != "AAAAAAAAAAAAAAAAAAAAAA":
                        self.topic_ids[tid] = name
                        if self.keyed:
                            self.learned.append((self.key(), tid, name))
            elif h.api_key == k.API_VERSIONS:
                known = self.ctx.hints.setdefault("api_versions", {})
                broker = _endpoint(conn.broker.addr, conn.broker.port)
                if broker not in known:  # what each broker advertises, read once
                    err, versions = k.read_api_versions_response(frame, h.api_version)
                    if not err:
                        known[broker] = versions
                        if self.keyed:
                            self.api_version_keys[broker] = self.key()
        except BODY_ERRORS as exc:
            self.ctx.error(
                end_pkt,
                "bad_response",
                f"{conn.conn_id}: {k.api_name(h.api_key)} v{h.api_version} "
                f"response to correlation id {h.correlation_id}: {exc}",
                unit="packet",
            )
        self.emit(conn, req, resp)

    def _new_metadata(self, frame: bytes) -> bool:
        """Clients ask the same broker for the same metadata over and over: read each
        distinct response body once."""
        digest = hash(frame[4:])
        if digest in self._metadata_seen:
            return False
        if len(self._metadata_seen) < 100_000:
            self._metadata_seen.add(digest)
        return True

    def _topic_name(self, tid: str) -> str | None:
        name = self.topic_ids.get(tid)
        if name is None and not self._bundle_ids_loaded:
            self._bundle_ids_loaded = True
            for path in _bundle_partition_metadata(self.ctx):
                try:
                    text = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                m = re.search(r"^topic_id:\s*(\S+)", text, re.M)
                topic = path.parent.name.rpartition("-")[0]
                if m and topic:
                    self.topic_ids.setdefault(k.normalise_topic_id(m.group(1)), topic)
            name = self.topic_ids.get(tid)
        return name

    def emit(self, conn: Conn, req: dict, resp: dict | None) -> None:
        h: k.RequestHeader = req["h"]
        c, b = conn.client, conn.broker
        arrival = req["arrival_ts"]
        latency = (resp["end_ts"] - arrival) / 1e6 if resp else None
        arrival_ns = arrival - self.offset_ns
        end_ns = resp["end_ts"] - self.offset_ns if resp else None
        if self.keyed:
            order = self.key()
            self.req_keys.append(order)
        self.req_rows.append(
            (
                req["pkt"],
                conn.conn_id,
                c.addr,
                c.port,
                b.addr,
                b.port,
                h.correlation_id,
                h.api_key,
                k.api_name(h.api_key),
                h.api_version,
                h.client_id,
                req["first_ts"] // 1000,
                arrival // 1000,
                resp["first_ts"] // 1000 if resp else None,
                resp["end_ts"] // 1000 if resp else None,
                latency,
                req["bytes"],
                resp["bytes"] if resp else None,
                resp is not None,
                req["replica_id"],
                resp["pkt"] if resp else None,
                arrival_ns,
                end_ns,
            )
        )
        produce = req["produce"]
        if produce is None:
            return
        pr, parts = produce
        answers: dict[tuple, k.ProducePartitionResponse] = {}
        if resp and resp["parts"]:
            for a in resp["parts"]:
                answers[(a.topic_id or a.topic, a.partition)] = a
        for p in parts:
            topic = p["topic"]
            if topic is None and p["topic_id"] and self.resolve_topics:
                topic = self._topic_name(p["topic_id"])
            if self.keyed:
                self.part_keys.append(order)
            a = answers.get((p["topic_id"] or p["topic"], p["partition"]))
            fts = p["first_timestamp"]
            self.part_rows.append(
                (
                    req["pkt"],
                    conn.conn_id,
                    h.correlation_id,
                    c.addr,
                    c.port,
                    h.api_version,
                    topic,
                    p["topic_id"],
                    p["partition"],
                    pr.acks,
                    float(pr.timeout_ms),
                    pr.transactional_id,
                    p["batches"],
                    p["records"],
                    p["records_bytes"],
                    p["magic"],
                    p["producer_id"],
                    p["producer_epoch"],
                    p["base_sequence"],
                    p["batch_crc"],
                    p["crc_valid"],
                    p["compression"],
                    fts * 1000 if fts is not None and 0 <= fts <= MAX_TIMESTAMP_MS else None,
                    p["message_ids"],
                    a.error_code if a else None,
                    a.base_offset if a else None,
                    arrival // 1000,
                    resp["end_ts"] // 1000 if resp else None,
                    latency,
                    arrival_ns,
                    end_ns,
                )
            )

    def chunks(self, final: bool = False) -> Iterator[tuple[str, pl.DataFrame]]:
        if self.req_rows or final:
            frame = _frame(KAFKA_REQUESTS, self.req_rows)
            if self.keyed:
                frame = _with_keys(frame, self.req_keys)
                self.req_keys = []
            yield "kafka_requests", frame
            self.req_rows = []
        if self.part_rows or final:
            frame = _frame(PRODUCE_PARTITIONS, self.part_rows)
            if self.keyed:
                frame = _with_keys(frame, self.part_keys)
                self.part_keys = []
            yield "produce_partitions", frame
            self.part_rows = []


def _frame(table, rows: list[tuple]) -> pl.DataFrame:
    """Rows to a frame of the declared columns. The cyclic garbage collector is paused
    meanwhile: transposing 50,000 rows allocates a million references and would trigger
    full collections that find nothing (the rows hold no cycles)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _frame_of(table, rows)
    finally:
        if paused:
            gc.enable()


def _frame_of(table, rows: list[tuple]) -> pl.DataFrame:
    schema = {}
    for name, dtype in table.parser_columns.items():
        schema[name] = pl.Int64 if dtype == TIMESTAMP else dtype
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    series = []
    for (n, t), c in zip(schema.items(), columns, strict=True):
        if t == STR_LIST:  # through Arrow: polars builds nested lists from Python one by one
            series.append(pl.Series(n, pa.array(c, type=pa.list_(pa.string()))).cast(t))
        else:
            series.append(pl.Series(n, c, dtype=t))
    frame = pl.DataFrame(series)
    return frame.with_columns([pl.col(n).cast(TIMESTAMP) for n, t in table.parser_columns.items() if t == TIMESTAMP])


# -- one capture on several cores ----------------------------------------------------------------
#
# Each worker process reads the whole capture but reassembles and decodes only its share of
# the connections (by a hash of the unordered 4-tuple, so both directions and every reuse of a
# 4-tuple land in the same worker). Connections are independent once the broker ports are
# known, so the split runs only when the manifest names ``kafka_ports``. Every row and error
# carries the serial run's order key (packet being processed, closing connection, event
# number); the parent merges the workers' streams by that key, so the output is the serial
# run's, row for row. Produce v13 topic names depend on Metadata responses seen on any
# connection before the row: the workers report what they learn, and the parent names the
# topics while merging.

MARK = "__mark__"
KEY_COLUMNS = ("__key_packet", "__key_order", "__key_seq")
SPLIT_MIN_BYTES = 64 * 1024 * 1024  # smaller captures parse faster than workers start
WORKER_CHUNK_ROWS = 10_000  # rows a worker holds as Python objects before sending them
# File-level damage every worker sees: reported by the first worker only, ordered after the
# packet read before it.
READER_ERRORS = frozenset(
    {"truncated_capture", "bad_record", "bad_block", "read_error", "no_timestamp", "gzip_damaged"}
)
READER_SEQ = 1 << 62


def _share_of(src: bytes, sport: int, dst: bytes, dport: int, shares: int) -> int:
    """Which share owns a connection: the same for both directions, in every process.
    Shares are equal: the ingesting process, which also merges the rows, no longer loads
    them into DuckDB while it parses (they are spilled and loaded after)."""
    h = int.from_bytes(src) + int.from_bytes(dst) + ((sport + dport) << 7)
    x = ((h * 0x9E3779B97F4A7C15) >> 40) & 4095
    return x * shares >> 12


def _with_keys(frame: pl.DataFrame, keys: list[tuple[int, int, int]]) -> pl.DataFrame:
    cols = list(zip(*keys, strict=True)) if keys else [(), (), ()]
    return frame.with_columns(pl.Series(n, c, dtype=pl.Int64) for n, c in zip(KEY_COLUMNS, cols, strict=True))


class _KeyedContext(ParseContext):
    """A worker's context: errors carry the serial order key and their skipped bytes."""

    ingest: WireIngest | None = None
    first_worker = True

    def error(self, position, what, message, *, unit="byte", severity="error", skipped_bytes=0) -> None:
        ing = self.ingest
        if what in READER_ERRORS:
            if not self.first_worker:
                return
            order = (ing.cur_pkt, 0, READER_SEQ + ing.key()[2])
        else:
            order = ing.key()
        self.bytes_skipped += skipped_bytes
        if len(self.errors) <= self.max_errors:
            self.errors.append((order, position, what, message, unit, severity, skipped_bytes))


def _share_messages(path: Path, name: str, aid: str, manifest, hints: dict, share: int, shares: int) -> Iterator[tuple]:
    """One share of the connections: ("rows", table, frame with order keys, topic ids
    learned), ("mark", packets done, learned, bytes read) every 10,000 packets, then
    ("done", learned, keyed errors, skipped bytes not in them, reasons, stats, hints,
    ApiVersions order keys)."""
    ctx = _KeyedContext(path, name, aid, manifest, hints)
    ctx.first_worker = share == 0
    ing = WireIngest(ctx)
    ctx.ingest = ing
    ing.share, ing.keyed, ing.resolve_topics = (share, shares), True, False
    ing.chunk_rows = WORKER_CHUNK_ROWS
    reader_ctx = ctx if share == 0 else ParseContext(path, name, aid, manifest)
    f = reader_ctx.open()
    inner = getattr(f, "fileobj", None)
    sent_learned = 0
    try:
        for table, frame in ing.run(f, reader_ctx):
            learned = ing.learned[sent_learned:]
            sent_learned = len(ing.learned)
            if table == MARK:
                yield "mark", frame, learned, f.tell() if share == 0 else None
            else:
                yield "rows", table, frame, learned
    except CaptureError as exc:
        if share == 0:
            ctx.errors.append(((0, 0, 0), 0, "not_a_capture", str(exc), "byte", "error", 0))
    finally:
        f.close()
        if inner is not None:
            inner.close()
    recorded = sum(e[6] for e in ctx.errors)
    yield (
        "done",
        ing.learned[sent_learned:],
        ctx.errors,
        ctx.bytes_skipped - recorded,
        ing.reasons,
        ing.stats,
        {k: v for k, v in ctx.hints.items() if k != "topic_ids"},
        ing.api_version_keys,
    )


def _split_worker(path: Path, name: str, aid: str, manifest, hints: dict, share: int, shares: int, out) -> None:
    """Worker process: one share of the connections; frames go to ``out`` as Arrow IPC."""
    try:
        for msg in _share_messages(path, name, aid, manifest, hints, share, shares):
            if msg[0] == "rows":
                buf = io.BytesIO()
                msg[2].write_ipc(buf, compression="uncompressed")
                msg = ("rows", msg[1], buf.getvalue(), msg[3])
            out.send(msg)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the artifact
        out.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()


def _split_parse(ctx: ParseContext, shares: int) -> Iterator[tuple[str, pl.DataFrame]]:
    """Parse one capture in ``shares`` shares: the first in this process, the others in
    worker processes; rows in the serial run's order."""
    spawn = multiprocessing.get_context("spawn")
    main = WireIngest(ctx)  # names v13 topics as the serial run would
    pipes, procs = [], []
    try:
        for share in range(1, shares):
            recv, send = spawn.Pipe(duplex=False)
            proc = spawn.Process(
                target=_split_worker,
                args=(ctx.path, ctx.name, ctx.artifact_id, ctx.manifest, dict(ctx.hints), share, shares, send),
                daemon=True,
            )
            proc.start()
            send.close()
            pipes.append(recv)
            procs.append(proc)
        marks: list[int | None] = [0] * shares  # packets each share is done with; None: finished
        held: dict[str, list[pl.DataFrame]] = {"kafka_requests": [], "produce_partitions": []}
        held_rows = 0
        learned: list[tuple[tuple[int, int, int], str, str]] = []
        done: list[tuple] = [()] * shares
        live = {pipes[i - 1]: i for i in range(1, shares)}
        local = _share_messages(ctx.path, ctx.name, ctx.artifact_id, ctx.manifest, dict(ctx.hints), 0, shares)
        local_open = True

        def take(i: int, msg: tuple) -> None:
            nonlocal held_rows
            if msg[0] == "rows":
                frame = msg[2] if i == 0 else pl.read_ipc(io.BytesIO(msg[2]))
                held[msg[1]].append(frame)
                held_rows += frame.height
                learned.extend(msg[3])
            elif msg[0] == "failed":
                raise RuntimeError(f"capture worker {i}: {msg[1]}")
            elif msg[0] == "mark":
                marks[i] = msg[1]
                learned.extend(msg[2])
                if msg[3] is not None:
                    ctx.progress(msg[3])
            else:  # done
                learned.extend(msg[1])
                done[i] = msg
                marks[i] = None

        while live or local_open:
            others = [m for m in marks[1:] if m is not None]
            # this process's share runs ahead only while the rows it waits to merge are few
            if local_open and not (live and held_rows >= 4 * CHUNK_ROWS and marks[0] >= min(others, default=0)):
                for msg in local:
                    take(0, msg)
                    if msg[0] != "rows":
                        break
                local_open = marks[0] is not None
                ready = mp_connection.wait(list(live), timeout=0) if live else []
            else:
                ready = mp_connection.wait(list(live))
            for pipe in ready:
                i = live[pipe]
                try:
                    msg = pipe.recv()
                except EOFError:
                    raise RuntimeError(f"capture worker {i} ended without a result") from None
                take(i, msg)
                if msg[0] == "done":
                    del live[pipe]
            open_marks = [m for m in marks if m is not None]
            upto = min(open_marks) if open_marks else None
            if upto is None or held_rows >= CHUNK_ROWS:
                yield from _release(main, held, learned, upto)
                held_rows = sum(f.height for fs in held.values() for f in fs)
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in pipes:
            pipe.close()
    # errors in the serial run's order, then what the serial run reports at its end
    errors = heapq.merge(*(d[2] for d in done), key=lambda e: e[0])
    for _order, position, what, message, unit, severity, skipped in errors:
        ctx.error(position, what, message, unit=unit, severity=severity, skipped_bytes=skipped)
    ctx.bytes_skipped += sum(d[3] for d in done)
    stats = {k: sum(d[5][k] for d in done) for k in main.stats}
    stats["packets"] = done[0][5]["packets"]
    stats["other_first_pkt"] = min((d[5]["other_first_pkt"] for d in done if d[5]["other_first_pkt"]), default=0)
    main.final_errors(done[0][4], stats)
    for key, value in done[0][6].items():
        if key != "api_versions":
            ctx.hints.setdefault(key, value)
    if any("api_versions" in d[6] for d in done):
        known = ctx.hints.setdefault("api_versions", {})
        firsts = sorted((d[7][b], b, d[6]["api_versions"][b]) for d in done for b in d[7])
        for _order, broker, versions in firsts:
            known.setdefault(broker, versions)


def _release(
    main: WireIngest,
    held: dict[str, list[pl.DataFrame]],
    learned: list[tuple[tuple[int, int, int], str, str]],
    upto: int | None,
) -> Iterator[tuple[str, pl.DataFrame]]:
    """Yield the held rows that no worker can still precede (all when ``upto`` is None)."""
    kp, ko, ks = (pl.col(c) for c in KEY_COLUMNS)
    learned.sort(key=lambda e: e[0])
    for table, frames in held.items():
        if not frames:
            if upto is None:  # as the serial run, every table ends with a frame, empty or not
                yield table, _frame(KAFKA_REQUESTS if table == "kafka_requests" else PRODUCE_PARTITIONS, [])
            continue
        frame = pl.concat(frames, how="vertical")
        if upto is None:
            ready, rest = frame, None
        else:
            early = (kp < upto) | ((kp == upto) & (ko == 0))
            ready, rest = frame.filter(early), frame.filter(~early)
        held[table] = [rest] if rest is not None and rest.height else []
        if not ready.height and upto is not None:
            continue
        ready = ready.sort(KEY_COLUMNS, maintain_order=True)
        if table == "produce_partitions":
            ready = _name_topics(main, ready, learned, upto)
        yield table, ready.drop(KEY_COLUMNS)
    # topic ids learned up to here are known to every later row
    cut = len(learned) if upto is None else bisect.bisect_right(learned, (upto, 0, 1 << 63), key=lambda e: e[0])
    for _order, tid, name in learned[:cut]:
        main.topic_ids[tid] = name
    del learned[:cut]


def _name_topics(main: WireIngest, frame: pl.DataFrame, learned: list, upto: int | None) -> pl.DataFrame:
    """Name v13 topics (by id) with what was learned before each row, as the serial run does."""
    need = frame.select((pl.col("topic").is_null() & pl.col("topic_id").is_not_null()).arg_true()).to_series()
    if not need.len():
        return frame
    topics = frame["topic"].to_list()
    ids = frame["topic_id"].to_list()
    keys = frame.select(KEY_COLUMNS).rows()
    j = 0
    for row in need.to_list():
        while j < len(learned) and learned[j][0] < keys[row]:
            main.topic_ids[learned[j][1]] = learned[j][2]
            j += 1
        topics[row] = main._topic_name(ids[row])
    del learned[:j]
    return frame.with_columns(pl.Series("topic", topics, dtype=pl.Utf8))


def _split_shares(ctx: ParseContext) -> int:
    """Worker processes for one capture: the context's ``jobs`` (set by the runner) when the
    capture is large, its broker ports are known, and it is a capture at all."""
    jobs = ctx.jobs
    if jobs < 2 or not ctx.manifest.kafka_ports:
        return 1
    try:
        size = ctx.path.stat().st_size
        with open(ctx.path, "rb") as f:
            head = f.read(4)
    except OSError:
        return 1
    if size < int(os.environ.get("KFORENSICS_SPLIT_MIN_BYTES", SPLIT_MIN_BYTES)):
        return 1
    if head not in PCAP_MAGICS and head != PCAPNG_MAGIC and head[:2] != b"\x1f\x8b":
        return 1
    return jobs


def _bundle_partition_metadata(ctx: ParseContext) -> list[Path]:
    """``partition.metadata`` files of the bundle the capture sits in (topic id → name)."""
    depth = len(PurePosixPath(ctx.name).parts)
    try:
        root = ctx.path.parents[depth - 1] if depth >= 1 else ctx.path.parent
    except IndexError:
        return []
    if root == Path(root.anchor):
        return []
    try:
        return sorted(root.rglob("partition.metadata"))[:100_000]
    except OSError:
        return []


@register
class CaptureParser(Parser):
    kind = "pcap"
    tables = ("kafka_requests", "produce_partitions")
    priority = 10  # first: the capture's date anchors time-of-day logs
    version = "2"

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        return probe.head[:4] in PCAP_MAGICS or probe.head[:4] == PCAPNG_MAGIC

    def parse(self, ctx: ParseContext) -> Iterator[tuple[str, pl.DataFrame]]:
        shares = _split_shares(ctx)
        if shares > 1:
            yield from _split_parse(ctx, shares)
            return
        f = ctx.open()
        inner = getattr(f, "fileobj", None)  # a GzipFile leaves the file it reads open
        try:
            yield from WireIngest(ctx).run(f)
        except CaptureError as exc:
            ctx.error(0, "not_a_capture", str(exc), severity="error")
        finally:
            f.close()
            if inner is not None:
                inner.close()

    @classmethod
    def summarise(cls, tables: dict[str, pl.DataFrame]) -> list[tuple[str, pl.DataFrame]]:
        reqs = tables.get("kafka_requests")
        out = []
        if reqs is None or reqs.height == 0:
            return out
        conns = (
            reqs.group_by("conn_id", "client_addr", "client_port", "broker_addr", "broker_port")
            .agg(
                pl.len().alias("requests"),
                pl.col("complete").sum().alias("complete"),
                pl.col("client_id").drop_nulls().first().alias("client_id"),
                pl.col("request_first_at").min().alias("first_at"),
            )
            .sort("first_at", "conn_id")
        )
        out.append(("connections", conns))
        apis = (
            reqs.group_by("api_key", "api_name", "api_version")
            .agg(
                pl.len().alias("requests"),
                pl.col("complete").sum().alias("complete"),
                pl.col("latency_ms").median().alias("p50_ms"),
                pl.col("latency_ms").max().alias("max_ms"),
            )
            .sort("api_key", "api_version")
        )
        out.append(("APIs by count and version", apis))
        prod = reqs.filter(pl.col("api_key") == k.PRODUCE, pl.col("complete"))
        if prod.height:
            lat = pl.col("latency_ms")
            out.append(
                (
                    "produce latency (ms)",
                    prod.select(
                        pl.len().alias("requests"),
                        lat.min().alias("min"),
                        lat.quantile(0.5, "nearest").alias("p50"),
                        lat.quantile(0.9, "nearest").alias("p90"),
                        lat.quantile(0.99, "nearest").alias("p99"),
                        lat.quantile(0.999, "nearest").alias("p999"),
                        lat.max().alias("max"),
                    ),
                )
            )
        parts = tables.get("produce_partitions")
        if parts is not None and parts.height:
            out.append(
                (
                    "produce partitions by topic",
                    parts.group_by("topic", "partition")
                    .agg(
                        pl.len().alias("requests"),
                        pl.col("records").sum().alias("records"),
                        pl.col("records_bytes").sum().alias("bytes"),
                        pl.col("compression").unique().sort().alias("codecs"),
                    )
                    .sort("topic", "partition"),
                )
            )
        return out


def read_capture(path: Path, ctx: ParseContext | None = None) -> dict[str, pl.DataFrame]:
    """Parse one capture in memory: table name → frame (for tools and tests)."""
    ctx = ctx or ParseContext(path, path.name, "inspect")
    frames: dict[str, list[pl.DataFrame]] = {}
    for table, frame in CaptureParser().parse(ctx):
        frames.setdefault(table, []).append(frame)
    return {t: pl.concat(fs) for t, fs in frames.items()}


@dump_command
@click.command("pcap")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--produce",
    is_flag=True,
    help="One line per produce partition: arrival, end, latency ms, message id, topic, partition.",
)
@click.option("--all-ids", is_flag=True, help="With --produce: one line per message id instead of the first only.")
@click.option("--port", "ports", type=int, multiple=True, help="Kafka broker port (repeatable); default: detect.")
@click.option("--header", "header_name", default=None, help="Record header holding message ids (default: message-id).")
def dump_pcap(file: Path, produce: bool, all_ids: bool, ports: tuple[int, ...], header_name: str | None) -> None:
    """Kafka requests in a capture FILE (pcap, pcapng, gzipped), one line each: arrival,
    end, latency ms, connection, correlation id, API and client id. --produce prints the
    produce partitions in the layout of the seed investigation. Damage goes to stderr."""
    from pipeline.manifest import Manifest

    kw: dict[str, Any] = {"kafka_ports": tuple(ports)}
    if header_name:
        kw["message_id_header"] = header_name
    ctx = ParseContext(file, file.name, "dump", manifest=Manifest(**kw))
    tables = read_capture(file, ctx)

    def hms(v: dt.datetime | None) -> str:
        return v.strftime("%H:%M:%S.%f")[:-3] if v else "-" * 12

    def ms(v: float | None) -> str:
        return f"{v:9.3f}" if v is not None else "        -"

    if produce:
        parts = tables["produce_partitions"].sort("arrival_at", "conn_id", "correlation_id", "topic", "partition")
        for r in parts.iter_rows(named=True):
            ids = r["message_ids"] or ["-"]
            topic = r["topic"] or r["topic_id"] or "-"
            for mid in ids if all_ids else ids[:1]:
                click.echo(
                    f"{hms(r['arrival_at'])}  {hms(r['end_at'])}  {ms(r['latency_ms'])}  {mid:<14} {topic}  {r['partition']}"
                )
    else:
        reqs = tables["kafka_requests"].sort("request_first_at", "conn_id", "correlation_id")
        for r in reqs.iter_rows(named=True):
            click.echo(
                f"{hms(r['arrival_at'])}  {hms(r['end_at'])}  {ms(r['latency_ms'])}  {r['conn_id']}  "
                f"{r['correlation_id']:>6}  {r['api_name']} v{r['api_version']}  {r['client_id'] or '-'}"
            )
    for e in ctx.errors:
        click.echo(f"# {e.severity} {e.what} at {e.unit} {e.position}: {e.message}", err=True)
