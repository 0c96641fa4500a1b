"""Re-encode a JDK recording with fixed-width integers (chunk flag bit 0 cleared).

No writer available here produces such chunks, so tests make one from a real recording:
every event, checkpoint and the metadata are decoded with our reader and written back with
``int`` as 4 bytes, ``long`` and pool references as 8, ``short``/``char`` as 2, string
lengths as 4 (big-endian), the layout the JDK's reader expects when the flag is clear.
"""

from __future__ import annotations

import struct

from pipeline.ingest.jfr_format import (
    BYTE_TYPES,
    CHECKPOINT_TYPE,
    HEADER,
    HEADER_SIZE,
    METADATA_TYPE,
    PRIMITIVE_WIDTH,
    STRING_TYPE,
    Codec,
    FieldDesc,
    _Cursor,
    read_header,
    read_metadata,
    read_string,
    read_varint,
    split_chunks,
)


def _int(v: int, width: int) -> bytes:
    return (v & ((1 << (8 * width)) - 1)).to_bytes(width, "big")


def _string(v) -> bytes:
    if v is None:
        return b"\x00"
    if isinstance(v, tuple):
        return b"\x02" + _int(v[1], 8)
    if v == "":
        return b"\x01"
    data = v.encode("utf-8", "surrogatepass")
    return b"\x03" + _int(len(data), 4) + data


class _Writer:
    def __init__(self, codec: Codec):
        self.codec = codec
        self.types = codec.types

    def value(self, type_id: int, vals) -> bytes:
        t = self.types[type_id]
        prim = self.codec._as_field(type_id)
        fields = [prim] if prim else t.fields
        return b"".join(self.field(f, v) for f, v in zip(fields, vals, strict=True))

    def field(self, f: FieldDesc, v) -> bytes:
        if f.array:
            one = FieldDesc(f.name, f.type_id, f.constant_pool, False)
            return _int(len(v), 4) + b"".join(self.field(one, x) for x in v)
        if f.constant_pool:
            return _int(v, 8)
        name = self.types[f.type_id].name
        if name in PRIMITIVE_WIDTH:
            return _int(v, PRIMITIVE_WIDTH[name])
        if name in BYTE_TYPES:
            return bytes([v])
        if name == "float":
            return struct.pack(">f", v)
        if name == "double":
            return struct.pack(">d", v)
        if name == STRING_TYPE:
            return _string(v)
        return self.value(f.type_id, v)


def _metadata(buf, pos: int) -> bytes:
    cur = _Cursor(buf, pos, True)
    cur.int_()
    out = [_int(METADATA_TYPE, 8)]
    cur.long()
    out += [_int(cur.long(), 8), _int(cur.long(), 8), _int(cur.long(), 8)]
    n = cur.int_()
    out.append(_int(n, 4))
    for _ in range(n):
        out.append(_string(cur.string()))

    def element() -> None:
        out.append(_int(cur.int_(), 4))
        na = cur.int_()
        out.append(_int(na, 4))
        for _ in range(2 * na):
            out.append(_int(cur.int_(), 4))
        nc = cur.int_()
        out.append(_int(nc, 4))
        for _ in range(nc):
            element()

    element()
    body = b"".join(out)
    return _int(len(body) + 4, 4) + body


def transcode(data: bytes) -> bytes:
    headers, _ = split_chunks(data)
    out = bytearray()
    for h in headers:
        types = read_metadata(data, h)
        codec = Codec(types, True)
        w = _Writer(codec)
        chunk = bytearray(HEADER_SIZE)
        meta_off = cp_off = 0
        pos = h.offset + HEADER_SIZE
        while pos < h.end:
            size, p = read_varint(data, pos)
            typ, body = read_varint(data, p)
            if typ == METADATA_TYPE:
                meta_off = len(chunk)
                chunk += _metadata(data, pos)
            elif typ == CHECKPOINT_TYPE:
                cp_off = len(chunk)
                cur = _Cursor(data, body, True)
                parts = [_int(CHECKPOINT_TYPE, 8), _int(cur.long(), 8), _int(cur.long(), 8)]
                cur.long()
                parts.append(_int(0, 8))  # delta: this reader walks checkpoints in order
                parts.append(bytes([cur.byte()]))
                npools = cur.int_()
                parts.append(_int(npools, 4))
                for _ in range(npools):
                    tid = cur.long()
                    count = cur.int_()
                    parts += [_int(tid, 8), _int(count, 4)]
                    dec = codec.decoder(tid)
                    q = cur.pos
                    for _ in range(count):
                        key, q = read_varint(data, q)
                        vals, q = dec(data, q)
                        parts += [_int(key, 8), w.value(tid, vals)]
                    cur.pos = q
                blob = b"".join(parts)
                chunk += _int(len(blob) + 4, 4) + blob
            else:
                vals, _ = codec.decoder(typ)(data, body)
                blob = _int(typ, 8) + w.value(typ, vals)
                chunk += _int(len(blob) + 4, 4) + blob
            pos += size
        hdr = read_header(data, h.offset)
        chunk[:HEADER_SIZE] = HEADER.pack(
            b"FLR\x00",
            hdr.major,
            hdr.minor,
            len(chunk),
            cp_off,
            meta_off,
            hdr.start_nanos,
            hdr.duration_nanos,
            hdr.start_ticks,
            hdr.ticks_per_second,
            hdr.state,
            0,
            hdr.flags & ~1,
        )
        out += chunk
    return bytes(out)


__all__ = ["transcode", "read_string"]
