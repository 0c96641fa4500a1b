"""The JFR binary format (version 2.x): chunks, metadata, constant pools, events.

A recording is a sequence of chunks; each chunk carries its own header, metadata (type
descriptions: ids differ between writers, so everything is looked up by name) and
constant pools (checkpoint events). Events are ``size, type, fields...``; the reader
walks the chain of sizes and decodes only the event types asked for. Constant-pool
entries are indexed (key → byte offset) while walking and decoded only when an event
refers to them; keys missing from a chunk fall back to earlier chunks' pools (the JDK
writes some references to entries it serialised in a previous chunk) and dangling
keys resolve to ``None``.

Integers are LEB128-style varints (7 bits per byte, least significant group first, the
9th byte carrying 8 bits, two's complement) when the chunk's "compressed integers" flag
is set, else fixed-width big-endian. Strings start with an encoding tag (0 null,
1 empty, 2 constant-pool reference, 3 UTF-8, 4 char array, 5 Latin-1).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"FLR\x00"
HEADER = struct.Struct(">4sHHqqqqqqqBBH")  # 68 bytes
HEADER_SIZE = HEADER.size
METADATA_TYPE = 0
CHECKPOINT_TYPE = 1
IN_PROGRESS_SIZE = 1 << 30  # async-profiler writes 1 GiB until the recording is finished

PRIMITIVE_WIDTH = {"int": 4, "long": 8, "short": 2, "char": 2}  # fixed widths when not compressed
BYTE_TYPES = ("boolean", "byte")
STRING_TYPE = "java.lang.String"

# One compressed varint, as a regular expression over bytes (for skipping runs of fields).
_VARINT_RE = rb"(?:[\x80-\xff]{0,7}[\x00-\x7f]|[\x80-\xff]{8}[\x00-\xff])"
_ANY = rb"[\x00-\xff]"


class JfrFormatError(ValueError):
    """The bytes are not a readable JFR 2.x recording (or a part of it is damaged)."""

    def __init__(self, position: int, message: str):
        super().__init__(f"at byte {position}: {message}")
        self.position = position
        self.message = message


class UnsupportedVersion(JfrFormatError):
    pass


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Decode one compressed integer at ``pos``; return (value, next position)."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    v = b & 0x7F
    shift = 7
    pos += 1
    for _ in range(7):
        b = buf[pos]
        pos += 1
        if b < 0x80:
            return v | (b << shift), pos
        v |= (b & 0x7F) << shift
        shift += 7
    v |= buf[pos] << 56
    if v >= 1 << 63:
        v -= 1 << 64
    return v, pos + 1


def _check_count(n: int, buf, pos: int) -> None:
    """An array length must be possible: every element takes at least one byte."""
    if n < 0 or n > len(buf) - pos:
        raise JfrFormatError(pos, f"array of {n} elements cannot fit in the remaining {len(buf) - pos} bytes")


def _fixed_reader(width: int) -> Callable[[Any, int], tuple[int, int]]:
    def read(buf, pos: int) -> tuple[int, int]:
        return int.from_bytes(buf[pos : pos + width], "big", signed=True), pos + width

    return read


# --------------------------------------------------------------------------- header


@dataclass
class ChunkHeader:
    offset: int  # of the chunk in the file
    major: int
    minor: int
    size: int
    checkpoint_offset: int
    metadata_offset: int
    start_nanos: int
    duration_nanos: int
    start_ticks: int
    ticks_per_second: int
    state: int
    flags: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & 1)

    @property
    def final(self) -> bool:
        return bool(self.flags & 2)

    @property
    def end(self) -> int:
        return self.offset + self.size


def read_header(buf, offset: int) -> ChunkHeader:
    if len(buf) - offset < HEADER_SIZE:
        raise JfrFormatError(offset, f"chunk header cut short ({len(buf) - offset} of {HEADER_SIZE} bytes)")
    magic, major, minor, size, cp, meta, nanos, dur, ticks, tps, state, _b65, flags = HEADER.unpack_from(buf, offset)
    if magic != MAGIC:
        raise JfrFormatError(offset, f"no chunk magic FLR\\0 (found {bytes(magic)!r})")
    if major != 2:
        if major in (0, 1):
            raise UnsupportedVersion(
                offset,
                f"JFR format {major}.{minor} (JDK 7/8 Flight Recorder or JDK 9/10) is not supported; "
                "only format 2.x (JDK 11+, OpenJDK 8u262+, async-profiler) can be read",
            )
        raise UnsupportedVersion(offset, f"unknown JFR format version {major}.{minor}")
    # Older 2.0 writers put the state in byte 64 and the flags in the low byte of 66..67;
    # compressed integers and the final-chunk bit both live in that low byte.
    return ChunkHeader(offset, major, minor, size, cp, meta, nanos, dur, ticks, tps, state, flags & 0xFF)


def sniff_version(head: bytes) -> tuple[int, int] | None:
    if len(head) >= 8 and head[:4] == MAGIC:
        return struct.unpack(">HH", head[4:8])
    return None


# --------------------------------------------------------------------------- metadata


@dataclass
class FieldDesc:
    name: str
    type_id: int
    constant_pool: bool
    array: bool
    annotations: dict[str, str] = field(default_factory=dict)  # annotation type name -> value


@dataclass
class TypeDesc:
    id: int
    name: str
    super_type: str | None
    simple: bool
    fields: list[FieldDesc]

    def index(self, name: str) -> int | None:
        for i, f in enumerate(self.fields):
            if f.name == name:
                return i
        return None


class _Cursor:
    """Sequential reader over a chunk, honouring its integer encoding."""

    __slots__ = ("buf", "pos", "compressed")

    def __init__(self, buf, pos: int, compressed: bool):
        self.buf = buf
        self.pos = pos
        self.compressed = compressed

    def int_(self, width: int = 4) -> int:
        if self.compressed:
            v, self.pos = read_varint(self.buf, self.pos)
            if width == 4 and v >= 1 << 31:
                v = (v & 0xFFFFFFFF) - (1 << 32) if v & 0x80000000 else v & 0xFFFFFFFF
            return v
        v = int.from_bytes(self.buf[self.pos : self.pos + width], "big", signed=True)
        self.pos += width
        return v

    def long(self) -> int:
        return self.int_(8)

    def byte(self) -> int:
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def string(self) -> str | None | tuple[str, int]:
        v, self.pos = read_string(self.buf, self.pos, self.compressed)
        return v


def read_string(buf, pos: int, compressed: bool = True):
    """Read a tagged string. A constant-pool reference comes back as ``("$ref", key)``."""
    tag = buf[pos]
    pos += 1
    if tag == 0:
        return None, pos
    if tag == 1:
        return "", pos
    if compressed:
        n, pos = read_varint(buf, pos)
    else:
        n, pos = (
            int.from_bytes(buf[pos : pos + (8 if tag == 2 else 4)], "big", signed=True),
            pos + (8 if tag == 2 else 4),
        )
    if tag == 2:
        return ("$ref", n), pos
    if n < 0 or n > len(buf) - pos:  # every character takes at least one byte
        raise JfrFormatError(pos, f"string of {n} characters cannot fit in the remaining {len(buf) - pos} bytes")
    if tag == 3:
        return bytes(buf[pos : pos + n]).decode("utf-8", "replace"), pos + n
    if tag == 5:
        return bytes(buf[pos : pos + n]).decode("latin-1"), pos + n
    if tag == 4:
        chars = []
        if compressed:
            for _ in range(n):
                c, pos = read_varint(buf, pos)
                chars.append(c & 0xFFFF)
        else:
            chars = list(struct.unpack_from(f">{n}H", buf, pos))
            pos += 2 * n
        s = "".join(map(chr, chars))
        if any(0xD800 <= c <= 0xDFFF for c in chars):
            s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return s, pos
    raise JfrFormatError(pos - 1, f"unknown string encoding tag {tag}")


def read_metadata(buf, header: ChunkHeader) -> dict[int, TypeDesc]:
    pos = header.offset + header.metadata_offset
    if not header.offset + HEADER_SIZE <= pos < header.end:
        raise JfrFormatError(pos, "metadata offset outside its chunk")
    cur = _Cursor(buf, pos, header.compressed)
    cur.int_()  # size
    if cur.long() != METADATA_TYPE:
        raise JfrFormatError(pos, "metadata offset does not point at a metadata event")
    cur.long()  # start time
    cur.long()  # duration
    cur.long()  # metadata id
    strings = []
    count = cur.int_()
    _check_count(count, buf, cur.pos)
    for _ in range(count):
        s = cur.string()
        strings.append(s if isinstance(s, str) else "")

    def element() -> tuple[str, dict[str, str], list]:
        name = strings[cur.int_()]
        attrs = {}
        for _ in range(cur.int_()):
            k = cur.int_()
            attrs[strings[k]] = strings[cur.int_()]
        children = [element() for _ in range(cur.int_())]
        return name, attrs, children

    _root, _attrs, children = element()
    types: dict[int, TypeDesc] = {}
    for name, _a, kids in children:
        if name != "metadata":
            continue
        for cname, cattrs, ckids in kids:
            if cname != "class":
                continue
            fields = []
            for fname, fattrs, fkids in ckids:
                if fname != "field":
                    continue
                ann = {}
                for aname, aattrs, _ in fkids:
                    if aname == "annotation":
                        ann[aattrs.get("class", "")] = aattrs.get("value", "")
                fields.append(
                    FieldDesc(
                        fattrs["name"],
                        int(fattrs["class"]),
                        fattrs.get("constantPool") == "true",
                        fattrs.get("dimension") == "1",
                        ann,
                    )
                )
            tid = int(cattrs["id"])
            types[tid] = TypeDesc(
                tid, cattrs["name"], cattrs.get("superType"), cattrs.get("simpleType") == "true", fields
            )
    # annotation keys are type ids: give them names
    for t in types.values():
        for f in t.fields:
            f.annotations = {
                types[int(k)].name if k.isdigit() and int(k) in types else k: v for k, v in f.annotations.items()
            }
    return types


# --------------------------------------------------------------------------- values


class Codec:
    """Decoders and skippers for one chunk's types (both depend on the integer encoding)."""

    def __init__(self, types: dict[int, TypeDesc], compressed: bool):
        self.types = types
        self.by_name = {t.name: t for t in types.values()}
        self.compressed = compressed
        self._skip: dict[int, Callable] = {}
        self._flat_re: dict[int, bytes | None] = {}
        self._array_re: dict[tuple[int, bool, int], re.Pattern] = {}

    # ---- kinds of a field: 'v' integer/ref, 'b' byte, 'f' float, 'd' double, 's' string, 'c' inline composite
    def kind(self, f: FieldDesc) -> str:
        if f.constant_pool:
            return "v"
        t = self.types.get(f.type_id)
        if t is None:
            raise JfrFormatError(0, f"field {f.name} has unknown type id {f.type_id}")
        n = t.name
        if n in ("int", "long", "short", "char"):
            return "v"
        if n in BYTE_TYPES:
            return "b"
        if n == "float":
            return "f"
        if n == "double":
            return "d"
        if n == STRING_TYPE:
            return "s"
        return "c"

    def _int_re(self, f: FieldDesc) -> bytes:
        if self.compressed:
            return _VARINT_RE
        name = self.types[f.type_id].name
        return _ANY + b"{%d}" % (8 if f.constant_pool else PRIMITIVE_WIDTH.get(name, 8))

    def flat_re(self, type_id: int) -> bytes | None:
        """Regex source matching one value of a type without strings or arrays, else None."""
        if type_id in self._flat_re:
            return self._flat_re[type_id]
        self._flat_re[type_id] = None  # guards against recursive types
        t = self.types[type_id]
        if not t.fields:
            return None
        parts = []
        for f in t.fields:
            if f.array:
                return None
            k = self.kind(f)
            if k == "v":
                parts.append(self._int_re(f))
            elif k == "b":
                parts.append(_ANY)
            elif k == "f":
                parts.append(_ANY + b"{4}")
            elif k == "d":
                parts.append(_ANY + b"{8}")
            elif k == "c":
                sub = self.flat_re(f.type_id)
                if sub is None:
                    return None
                parts.append(sub)
            else:
                return None
        src = b"(?:" + b"".join(parts) + b")"
        self._flat_re[type_id] = src
        return src

    def _as_field(self, type_id: int) -> FieldDesc | None:
        """A primitive type (or java.lang.String) seen as one field, for pools of such values."""
        t = self.types[type_id]
        if not t.fields and (
            t.name in PRIMITIVE_WIDTH or t.name in BYTE_TYPES or t.name in ("float", "double", STRING_TYPE)
        ):
            return FieldDesc("value", type_id, False, False)
        return None

    def skipper(self, type_id: int) -> Callable[[Any, int], int]:
        """A function (buf, pos) -> position after one value of the type."""
        sk = self._skip.get(type_id)
        if sk is not None:
            return sk
        prim = self._as_field(type_id)
        if prim is not None:
            sk = self._skip[type_id] = self._field_skipper(prim)
            return sk
        flat = self.flat_re(type_id)
        if flat is not None:
            pat = re.compile(flat)

            def skip_flat(buf, pos, _m=pat.match):
                m = _m(buf, pos)
                if m is None:
                    raise JfrFormatError(pos, f"cannot read a {self.types[type_id].name} value")
                return m.end()

            self._skip[type_id] = skip_flat
            return skip_flat
        steps = [self._field_skipper(f) for f in self.types[type_id].fields]

        def skip_struct(buf, pos):
            for s in steps:
                pos = s(buf, pos)
            return pos

        self._skip[type_id] = skip_struct
        return skip_struct

    def _field_skipper(self, f: FieldDesc) -> Callable[[Any, int], int]:
        read_count = read_varint if self.compressed else _fixed_reader(4)
        if f.array:
            elem = FieldDesc(f.name, f.type_id, f.constant_pool, False)
            k = self.kind(elem)
            flat = self._int_re(elem) if k == "v" else (self.flat_re(f.type_id) if k == "c" else None)
            if k in "bfd":
                width = {"b": 1, "f": 4, "d": 8}[k]

                def skip_fixed_array(buf, pos):
                    n, pos = read_count(buf, pos)
                    _check_count(n, buf, pos)
                    return pos + n * width

                return skip_fixed_array
            if flat is not None:
                cache: dict[int, re.Pattern] = {}

                def skip_flat_array(buf, pos):
                    n, pos = read_count(buf, pos)
                    _check_count(n, buf, pos)
                    pat = cache.get(n)
                    if pat is None:
                        pat = cache[n] = re.compile(b"(?:" + flat + b"){%d}" % n)
                    m = pat.match(buf, pos)
                    if m is None:
                        raise JfrFormatError(pos, f"cannot read array {f.name} of {n}")
                    return m.end()

                return skip_flat_array
            one = self._field_skipper(elem)

            def skip_array(buf, pos):
                n, pos = read_count(buf, pos)
                _check_count(n, buf, pos)
                for _ in range(n):
                    pos = one(buf, pos)
                return pos

            return skip_array
        k = self.kind(f)
        if k == "s":
            compressed = self.compressed

            def skip_string(buf, pos):
                return read_string(buf, pos, compressed)[1]

            return skip_string
        if k == "c":
            return self.skipper(f.type_id)
        src = self._int_re(f) if k == "v" else {"b": _ANY, "f": _ANY + b"{4}", "d": _ANY + b"{8}"}[k]
        pat = re.compile(src)

        def skip_prim(buf, pos, _m=pat.match):
            m = _m(buf, pos)
            if m is None:
                raise JfrFormatError(pos, f"cannot read field {f.name}")
            return m.end()

        return skip_prim

    def decoder(self, type_id: int) -> Callable[[Any, int], tuple[list, int]]:
        """A function (buf, pos) -> (list of field values, next pos). References stay keys."""
        t = self.types[type_id]
        prim = self._as_field(type_id)
        steps = [self._field_decoder(f) for f in ([prim] if prim else t.fields)]

        def decode(buf, pos):
            out = []
            for s in steps:
                v, pos = s(buf, pos)
                out.append(v)
            return out, pos

        return decode

    def _field_decoder(self, f: FieldDesc) -> Callable[[Any, int], tuple[Any, int]]:
        compressed = self.compressed
        if f.array:
            elem = self._field_decoder(FieldDesc(f.name, f.type_id, f.constant_pool, False))
            read_count = read_varint if compressed else _fixed_reader(4)

            def dec_array(buf, pos):
                n, pos = read_count(buf, pos)
                _check_count(n, buf, pos)
                out = []
                for _ in range(n):
                    v, pos = elem(buf, pos)
                    out.append(v)
                return out, pos

            return dec_array
        k = self.kind(f)
        if k == "v":
            name = self.types[f.type_id].name
            if not compressed:
                return _fixed_reader(8 if f.constant_pool else PRIMITIVE_WIDTH.get(name, 8))
            if f.constant_pool or name == "long":
                return read_varint
            bits = {"int": 32, "short": 16, "char": 16}.get(name, 64)
            half, full = 1 << (bits - 1), 1 << bits
            signed = name != "char"

            def read_small(buf, pos):
                # the writers encode ints as their unsigned 32-bit (16-bit) pattern: -1 is 0xFFFFFFFF
                v, pos = read_varint(buf, pos)
                v &= full - 1
                return (v - full if signed and v >= half else v), pos

            return read_small
        if k == "b":
            return lambda buf, pos: (buf[pos], pos + 1)
        if k == "f":
            return lambda buf, pos: (struct.unpack_from(">f", buf, pos)[0], pos + 4)
        if k == "d":
            return lambda buf, pos: (struct.unpack_from(">d", buf, pos)[0], pos + 8)
        if k == "s":
            return lambda buf, pos: read_string(buf, pos, compressed)
        sub: list = []

        def dec_inline(buf, pos):
            if not sub:
                sub.append(self.decoder(f.type_id))
            return sub[0](buf, pos)

        return dec_inline


# --------------------------------------------------------------------------- chunks


@dataclass
class Chunk:
    index: int
    header: ChunkHeader
    types: dict[int, TypeDesc]
    codec: Codec
    # constant pools: type name -> {key: byte offset of the value}
    pools: dict[str, dict[int, int]] = field(default_factory=dict)
    # wanted type id -> (event start offsets, body offsets just after size and type, sizes)
    events: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    event_counts: dict[int, int] = field(default_factory=dict)  # all events by type id


@dataclass
class Problem:
    position: int
    what: str
    message: str
    severity: str = "error"
    skipped_bytes: int = 0


def split_chunks(buf) -> tuple[list[ChunkHeader], list[Problem]]:
    """Chunk headers of a recording; an incomplete or damaged tail is reported, not read."""
    headers: list[ChunkHeader] = []
    problems: list[Problem] = []
    pos = 0
    n = len(buf)
    while pos < n:
        try:
            h = read_header(buf, pos)
        except UnsupportedVersion:
            if pos == 0:
                raise
            problems.append(Problem(pos, "unsupported_chunk", "chunk of another format version", "data_loss", n - pos))
            break
        except JfrFormatError as exc:
            if pos == 0:
                raise
            problems.append(Problem(pos, "bad_chunk", exc.message, "data_loss", n - pos))
            break
        if (
            h.size < HEADER_SIZE
            or h.state == 255
            or h.size == IN_PROGRESS_SIZE
            or h.end > n
            or h.checkpoint_offset == 0
        ):
            why = (
                "recording was still being written (chunk not finished)"
                if h.state == 255 or h.size == IN_PROGRESS_SIZE or h.checkpoint_offset == 0
                else f"chunk declares {h.size} bytes but only {n - pos} remain"
            )
            problems.append(
                Problem(
                    pos,
                    "truncated_chunk",
                    f"chunk {len(headers) + 1} is incomplete: {why}; its events are not read",
                    "data_loss",
                    n - pos,
                )
            )
            break
        headers.append(h)
        pos = h.end
    return headers, problems


class Recording:
    """A parsed recording: chunks with their metadata, pool indexes and wanted events."""

    def __init__(
        self,
        buf,
        wanted: Iterable[str] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        count_all: bool = False,
    ):
        self.buf = buf
        self.count_all = count_all  # count every event type (else only the wanted ones)
        self.wanted_names = set(wanted) if wanted is not None else None
        self.chunks: list[Chunk] = []
        self.problems: list[Problem] = []
        headers, self.problems = split_chunks(buf)
        self._resolved: dict[tuple[str, int, int], Any] = {}
        for i, h in enumerate(headers):
            try:
                self.chunks.append(self._read_chunk(i, h))
            except (JfrFormatError, IndexError, KeyError, ValueError, struct.error, RecursionError, re.error) as exc:
                pos = exc.position if isinstance(exc, JfrFormatError) else h.offset
                self.problems.append(Problem(pos, "bad_chunk", f"chunk {i + 1}: {exc}", "data_loss", h.size))
            if progress:
                progress(h.end)

    # ---- time
    @property
    def first(self) -> ChunkHeader | None:
        return self.chunks[0].header if self.chunks else None

    def ticks_to_ns(self, ticks):
        """Epoch ns of tick values (int or int64 array), with the first chunk's start and rate.

        Matches the JDK's reader: ``startNanos + (long)((ticks - startTicks) / (ticksPerSecond / 1e9))``.
        """
        h = self.first
        tps = h.ticks_per_second
        if tps == 1_000_000_000:
            return h.start_nanos + (ticks - h.start_ticks)
        div = tps / 1e9
        if isinstance(ticks, np.ndarray):
            return h.start_nanos + ((ticks - h.start_ticks) / div).astype(np.int64)
        return h.start_nanos + int((ticks - h.start_ticks) / div)

    def span_to_ns(self, ticks):
        """Nanoseconds of a tick duration: ``(long)(ticks / (ticksPerSecond / 1e9))``."""
        tps = self.first.ticks_per_second
        if tps == 1_000_000_000:
            return ticks
        div = tps / 1e9
        if isinstance(ticks, np.ndarray):
            return (ticks / div).astype(np.int64)
        return int(ticks / div)

    # ---- reading
    def _read_chunk(self, index: int, h: ChunkHeader) -> Chunk:
        buf = self.buf
        types = read_metadata(buf, h)
        codec = Codec(types, h.compressed)
        chunk = Chunk(index, h, types, codec)
        wanted_ids = {t.id for t in types.values() if self.wanted_names is None or t.name in self.wanted_names}
        wanted_ids.discard(METADATA_TYPE)
        wanted_ids.discard(CHECKPOINT_TYPE)
        starts_by_type: dict[int, list[int]] = {i: [] for i in wanted_ids}
        counts: dict[int, int] = {}
        count_all = self.count_all
        checkpoints: list[int] = []
        pos = h.offset + HEADER_SIZE
        end = h.end
        if h.compressed:
            while pos < end:
                size = buf[pos]
                if size < 0x80:
                    typ = buf[pos + 1]
                    if typ >= 0x80:
                        b = buf[pos + 2]
                        typ = (typ & 0x7F) | (b << 7) if b < 0x80 else read_varint(buf, pos + 1)[0]
                else:
                    size, p = read_varint(buf, pos)
                    typ = read_varint(buf, p)[0]
                if size <= 0 or pos + size > end:
                    raise JfrFormatError(pos, f"event size {size} runs outside the chunk")
                lst = starts_by_type.get(typ)
                if lst is not None:
                    lst.append(pos)
                elif typ == CHECKPOINT_TYPE:
                    checkpoints.append(pos)
                if count_all:
                    counts[typ] = counts.get(typ, 0) + 1
                pos += size
        else:
            while pos < end:
                size = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
                typ = int.from_bytes(buf[pos + 4 : pos + 12], "big", signed=True)
                if size <= 0 or pos + size > end:
                    raise JfrFormatError(pos, f"event size {size} runs outside the chunk")
                lst = starts_by_type.get(typ)
                if lst is not None:
                    lst.append(pos)
                elif typ == CHECKPOINT_TYPE:
                    checkpoints.append(pos)
                if count_all:
                    counts[typ] = counts.get(typ, 0) + 1
                pos += size
        events: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for typ, starts in starts_by_type.items():
            st = np.asarray(starts, dtype=np.int64)
            if h.compressed:
                body = np.empty_like(st)
                size = decode_varint_columns(buf, st, 2, body, 18)[0]
            else:
                body = st + 12
                size = np.asarray([int.from_bytes(buf[p : p + 4], "big", signed=True) for p in starts], np.int64)
            events[typ] = (st, body, size)
            if not count_all:
                counts[typ] = len(starts)
        cp_bodies = []
        for cp in checkpoints:
            if h.compressed:
                cp_bodies.append(read_varint(buf, read_varint(buf, cp)[1])[1])
            else:
                cp_bodies.append(cp + 12)
        checkpoints = cp_bodies
        chunk.events = events
        chunk.event_counts = counts
        for cp in checkpoints:
            self._read_checkpoint(chunk, cp)
        return chunk

    def _read_checkpoint(self, chunk: Chunk, pos: int) -> None:
        cur = _Cursor(self.buf, pos, chunk.codec.compressed)
        cur.long()  # start time
        cur.long()  # duration
        cur.long()  # delta to the previous checkpoint
        cur.byte()  # type mask (flush, chunk header, statics, thread)
        types = chunk.types
        pools = cur.int_()
        _check_count(pools, self.buf, cur.pos)
        for _ in range(pools):
            type_id = cur.long()
            t = types.get(type_id)
            if t is None:
                raise JfrFormatError(cur.pos, f"constant pool of unknown type id {type_id}")
            skip = chunk.codec.skipper(type_id)
            pool = chunk.pools.setdefault(t.name, {})
            count = cur.int_()
            p = cur.pos
            buf = self.buf
            _check_count(count, buf, p)
            if chunk.codec.compressed:
                for _ in range(count):
                    key, p = read_varint(buf, p)
                    pool[key] = p
                    p = skip(buf, p)
            else:
                for _ in range(count):
                    key = int.from_bytes(buf[p : p + 8], "big", signed=True)
                    pool[key] = p + 8
                    p = skip(buf, p + 8)
            cur.pos = p

    # ---- constant-pool resolution
    def lookup(self, type_name: str, key: int, chunk: Chunk) -> tuple[Chunk, int] | None:
        """Where a pool entry is: this chunk's pool, else the latest earlier chunk's."""
        for c in (chunk, *reversed(self.chunks[: chunk.index])) if chunk.index else (chunk,):
            pool = c.pools.get(type_name)
            if pool is not None:
                off = pool.get(key)
                if off is not None:
                    return c, off
        return None

    def raw(self, type_name: str, key: int, chunk: Chunk) -> tuple[Chunk, list] | None:
        """Decoded field list of a pool entry (references still keys), or None if dangling."""
        cache_key = (type_name, key, chunk.index)
        if cache_key in self._resolved:
            return self._resolved[cache_key]
        found = self.lookup(type_name, key, chunk)
        out = None
        if found is not None:
            c, off = found
            t = c.codec.by_name[type_name]
            dec = _decoder_cache(c, t.id)
            vals, _ = dec(self.buf, off)
            out = (c, vals)
        self._resolved[cache_key] = out
        return out

    def string(self, value, chunk: Chunk) -> str | None:
        if isinstance(value, tuple):
            r = self.raw(STRING_TYPE, value[1], chunk)
            return self.string(r[1][0], r[0]) if r else None
        return value

    def simple(self, type_name: str, key: int, chunk: Chunk) -> str | None:
        """A simple type (Symbol, ThreadState, FrameType...) resolved to its string."""
        r = self.raw(type_name, key, chunk)
        if r is None:
            return None
        c, vals = r
        return self.string(vals[0], c) if vals else None

    def thread(self, key: int, chunk: Chunk) -> dict | None:
        cache_key = ("$thread", key, chunk.index)
        if cache_key in self._resolved:
            return self._resolved[cache_key]
        out = None
        r = self.raw("java.lang.Thread", key, chunk)
        if r is not None:
            c, vals = r
            t = c.codec.by_name["java.lang.Thread"]
            out = {f.name: vals[i] for i, f in enumerate(t.fields)}
            for name in ("osName", "javaName"):
                if name in out:
                    out[name] = self.string(out[name], c)
            out["key"] = key
        self._resolved[cache_key] = out
        return out

    def class_name(self, key: int, chunk: Chunk) -> str | None:
        cache_key = ("$class", key, chunk.index)
        if cache_key in self._resolved:
            return self._resolved[cache_key]
        out = None
        r = self.raw("java.lang.Class", key, chunk)
        if r is not None:
            c, vals = r
            t = c.codec.by_name["java.lang.Class"]
            i = t.index("name")
            if i is not None:
                f = t.fields[i]
                v = vals[i]
                out = self.simple(c.types[f.type_id].name, v, c) if f.constant_pool else self.string(v, c)
                if out is not None:
                    out = out.replace("/", ".")
        self._resolved[cache_key] = out
        return out

    def method(self, key: int, chunk: Chunk) -> str | None:
        cache_key = ("$method", key, chunk.index)
        if cache_key in self._resolved:
            return self._resolved[cache_key]
        out = None
        r = self.raw("jdk.types.Method", key, chunk)
        if r is not None:
            c, vals = r
            t = c.codec.by_name["jdk.types.Method"]
            ti, ni = t.index("type"), t.index("name")
            cls = self.class_name(vals[ti], c) if ti is not None else None
            name = None
            if ni is not None:
                f = t.fields[ni]
                name = (
                    self.simple(c.types[f.type_id].name, vals[ni], c) if f.constant_pool else self.string(vals[ni], c)
                )
            out = f"{cls}.{name}" if cls else (name or "?")
        self._resolved[cache_key] = out
        return out

    def stack(self, key: int, chunk: Chunk, depth: int) -> list[str] | None:
        """Top ``depth`` frames of a stack trace as ``Class.method:line``, top first."""
        cache_key = ("$stack", key, chunk.index)
        if cache_key in self._resolved:
            return self._resolved[cache_key]
        out = None
        r = self.raw("jdk.types.StackTrace", key, chunk)
        if r is not None:
            c, vals = r
            t = c.codec.by_name["jdk.types.StackTrace"]
            fi = t.index("frames")
            frames = vals[fi] if fi is not None else []
            ft = c.types[t.fields[fi].type_id] if fi is not None else None
            mi = ft.index("method") if ft else None
            li = ft.index("lineNumber") if ft else None
            out = []
            for fr in frames[:depth]:
                m = self.method(fr[mi], c) if mi is not None else "?"
                line = fr[li] if li is not None else None
                out.append(f"{m}:{line}" if line is not None and line >= 0 else m)
        self._resolved[cache_key] = out
        return out

    # ---- events
    def event_type_names(self) -> dict[str, int]:
        """Event counts by type name over all chunks (every event in the file)."""
        out: dict[str, int] = {}
        for c in self.chunks:
            for tid, n in c.event_counts.items():
                t = c.types.get(tid)
                name = t.name if t else f"#{tid}"
                out[name] = out.get(name, 0) + n
        return out

    def events(
        self, type_name: str, only: Chunk | None = None
    ) -> Iterable[tuple[Chunk, TypeDesc, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Per chunk (or only ``only``): (chunk, type, (starts, bodies, sizes)) of wanted events of a type."""
        for c in self.chunks if only is None else [only]:
            t = c.codec.by_name.get(type_name)
            if t is None or t.id not in c.events:
                continue
            yield c, t, c.events[t.id]


def _decoder_cache(chunk: Chunk, type_id: int):
    cache = chunk.__dict__.setdefault("_decoders", {})
    d = cache.get(type_id)
    if d is None:
        d = cache[type_id] = chunk.codec.decoder(type_id)
    return d


# --------------------------------------------------------------------------- vectorised decoding

BATCH_ROWS = 65_536


def decode_varint_columns(
    buf, offsets, count: int, ends_out: np.ndarray | None = None, max_width: int | None = None
) -> list[np.ndarray]:
    """The first ``count`` compressed integers after each offset, decoded with numpy.

    Returns ``count`` int64 arrays (one per field); ``ends_out`` (if given) receives the
    offset after the last integer of each row. Rows holding a 9-byte integer (a negative
    value) are decoded one by one.
    """
    n = len(offsets)
    out = [np.zeros(n, np.int64) for _ in range(count)]
    if n == 0 or count == 0:
        if ends_out is not None:
            ends_out[:] = np.asarray(offsets, dtype=np.int64)
        return out
    data = np.frombuffer(buf, dtype=np.uint8)
    width = 9 * count if max_width is None else max(1, min(9 * count, max_width))
    small = np.int16 if width > 120 else np.int8  # column counters fit in a small integer type
    cols = np.arange(width, dtype=small)
    offs = np.arange(width, dtype=np.int64)
    starts_all = np.asarray(offsets, dtype=np.int64)
    last = len(data) - 1
    for b0 in range(0, n, BATCH_ROWS):
        starts = starts_all[b0 : b0 + BATCH_ROWS]
        idx = starts[:, None] + offs[None, :]
        if starts[-1] + width > last or starts.max() + width > last:
            np.minimum(idx, last, out=idx)
        win = data[idx]
        term = win < 0x80
        fieldno = np.cumsum(term, axis=1, dtype=small) - term
        is_start = np.empty_like(term)
        is_start[:, 0] = True
        is_start[:, 1:] = term[:, :-1]
        startcol = np.maximum.accumulate(np.where(is_start, cols[None, :], small(0)), axis=1)
        k = cols[None, :] - startcol
        mask = fieldno < count
        bad = (fieldno[:, -1] + term[:, -1] < count) | ((k >= 8) & mask).any(axis=1)
        if bad.any():
            good = ~bad
            win, k, mask, is_start = win[good], k[good], mask[good], is_start[good]
            rows = np.flatnonzero(good) + b0
            good_starts = starts[good]
        else:
            rows = slice(b0, b0 + len(starts))
            good_starts = starts
        if len(good_starts):
            contrib = (win & 0x7F).astype(np.uint64) << (7 * k).astype(np.uint64)
            flat = contrib[mask]
            seg = np.flatnonzero(is_start[mask])
            sums = np.add.reduceat(flat, seg).view(np.int64).reshape(-1, count)
            for j in range(count):
                out[j][rows] = sums[:, j]
            if ends_out is not None:
                ends_out[rows] = good_starts + mask.sum(axis=1)
        for r in np.flatnonzero(bad):
            p = int(starts[r])
            for j in range(count):
                out[j][b0 + r], p = read_varint(buf, p)
            if ends_out is not None:
                ends_out[b0 + r] = p
    return out


@dataclass
class StringColumn:
    """Strings of many events: constant-pool keys where tagged 2, else the decoded text."""

    tags: np.ndarray  # uint8 encoding tag per row
    keys: np.ndarray  # int64 pool key where tag == 2
    inline: dict[int, str | None]  # row -> text for rows not in the pool


def decode_columns(buf, offsets, kinds: list[str], ends=None) -> list | None:
    """Vectorised decoding of fields that are integers ('v'), bytes ('b') or strings ('s').

    Returns one column per field (int64 arrays, or a :class:`StringColumn`), or None when
    a kind is not supported (the caller decodes row by row).
    """
    if any(k not in "vbs" for k in kinds):
        return None
    data = np.frombuffer(buf, dtype=np.uint8)
    pos = np.asarray(offsets, dtype=np.int64).copy()
    limit = None if ends is None else np.asarray(ends, dtype=np.int64)
    cols: list = []
    i = 0
    while i < len(kinds):
        k = kinds[i]
        if k == "v":
            j = i
            while j < len(kinds) and kinds[j] == "v":
                j += 1
            nxt = np.empty_like(pos)
            width = int((limit - pos).max()) if limit is not None and len(pos) else None
            cols.extend(decode_varint_columns(buf, pos, j - i, nxt, width))
            pos = nxt
            i = j
        elif k == "b":
            cols.append(data[pos].astype(np.int64))
            pos = pos + 1
            i += 1
        else:
            tags = data[pos]
            keys = np.zeros(len(pos), np.int64)
            ref = np.flatnonzero(tags == 2)
            nxt = pos + 1
            if len(ref):
                kend = np.empty(len(ref), np.int64)
                keys[ref] = decode_varint_columns(buf, pos[ref] + 1, 1, kend)[0]
                nxt[ref] = kend
            bad = np.flatnonzero(tags > 5)
            if len(bad):
                raise JfrFormatError(int(pos[bad[0]]), f"unknown string encoding tag {int(tags[bad[0]])}")
            inline: dict[int, str | None] = {}
            for r in np.flatnonzero(tags > 2).tolist():
                inline[r], e = read_string(buf, int(pos[r]))
                nxt[r] = e
            cols.append(StringColumn(tags, keys, inline))
            pos = nxt
            i += 1
    return cols
