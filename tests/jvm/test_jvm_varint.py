"""The vectorised integer decoder agrees with the byte-by-byte one on every shape of value."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.jfr_format import decode_varint_columns, read_varint


def encode(v: int) -> bytes:
    """JFR's compressed integer: 7 bits per byte, the 9th byte carries 8 bits."""
    u = v & (2**64 - 1)
    out = bytearray()
    for _ in range(8):
        if u < 0x80:
            out.append(u)
            return bytes(out)
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u & 0xFF)
    return bytes(out)


values = st.one_of(st.integers(0, 127), st.integers(0, 2**56 - 1), st.integers(-(2**63), 2**63 - 1))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(values, min_size=3, max_size=3), min_size=1, max_size=40), st.binary(max_size=5))
def test_decode_columns_equals_read_varint(rows, pad):
    buf = bytearray(pad)
    offsets = []
    for r in rows:
        offsets.append(len(buf))
        for v in r:
            buf += encode(v)
        buf += b"\x05\x81"  # what follows must not leak into the values
    data = bytes(buf)
    ends = np.empty(len(rows), np.int64)
    cols = decode_varint_columns(data, offsets, 3, ends)
    for i, off in enumerate(offsets):
        p = off
        want = []
        for _ in range(3):
            v, p = read_varint(data, p)
            want.append(v)
        assert [int(c[i]) for c in cols] == want == rows[i]
        assert ends[i] == p


def test_encoding_examples():
    assert read_varint(encode(-1), 0) == (-1, 9)
    assert read_varint(b"\xee\x33", 0) == (0x19EE, 2)
