"""Damaged segments: every skipped byte range is reported at its exact position."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import polars as pl
import pytest

from pipeline.ingest.segments import SegmentWalk

pytest.importorskip("kafka")
from segments_testlib import GENERATED, reference_batches  # noqa: E402
from test_segments_ingest import ORDERS, parse  # noqa: E402

REF = reference_batches((GENERATED / ORDERS).read_bytes()) if (GENERATED / ORDERS).exists() else []
POS = [r["position"] for r in REF]
SIZE = [r["size"] for r in REF]
TOTAL = POS[-1] + SIZE[-1] if REF else 0


def damaged(tmp_path: Path, edit, *, index: bool = True) -> Path:
    d = tmp_path / "orders.eu-west_1-3"
    d.mkdir()
    data = bytearray((GENERATED / ORDERS).read_bytes())
    data = edit(data) or data
    (d / "00000000000000000100.log").write_bytes(bytes(data))
    if index:
        for ext in (".index", ".timeindex"):
            shutil.copyfile((GENERATED / ORDERS).with_suffix(ext), d / f"00000000000000000100{ext}")
    return d / "00000000000000000100.log"


def errors(ctx) -> list[tuple]:
    return [(e.position, e.severity, e.what) for e in ctx.errors]


def test_crc_mismatch_keeps_the_batch_flags_it_and_goes_on(tmp_path):
    k = 3  # the lz4 batch

    def edit(data):
        data[POS[k] + 100] ^= 0x55

    path = damaged(tmp_path, edit)
    tables, ctx = parse(path)
    assert errors(ctx) == [(POS[k], "error", "bad_crc")]
    assert ctx.errors[0].message.startswith(
        f"batch at {POS[k]} (offsets 112..115): stored CRC 3345617786 does not match"
    )
    assert ctx.bytes_skipped == SIZE[k] - 61
    b = tables["segment_batches"]
    assert b.height == 22 and b.filter(~pl.col("crc_valid"))["position"].to_list() == [POS[k]]
    from kafka.record.default_records import DefaultRecordBatch

    raw = path.read_bytes()[POS[k] : POS[k] + SIZE[k]]
    assert DefaultRecordBatch(raw).validate_crc() is False  # kafka-python agrees
    r = tables["segment_records"]
    assert r.filter(pl.col("batch_position") == POS[k]).height == 0 and r.height == 65 - 4


def test_corrupt_length_resyncs_on_the_next_batch(tmp_path):
    k = 9

    def edit(data):
        struct.pack_into(">i", data, POS[k] + 8, 0x7FFF0000)

    tables, ctx = parse(damaged(tmp_path, edit))
    # the time index names an offset of the lost batch: reported, as a consequence
    assert errors(ctx) == [(POS[k], "error", "resync"), (None, "info", "timeindex_mismatch")]
    assert (
        ctx.errors[0].message
        == f"no readable batch at {POS[k]}: {SIZE[k]} bytes skipped to the next batch at {POS[k + 1]}"
    )
    assert ctx.bytes_skipped == SIZE[k]
    assert tables["segment_batches"]["position"].to_list() == POS[:k] + POS[k + 1 :]


def test_bad_magic_with_a_sane_length_is_skipped_by_its_length(tmp_path):
    k = 12

    def edit(data):
        data[POS[k] + 16] = 9

    tables, ctx = parse(damaged(tmp_path, edit))
    assert errors(ctx) == [(POS[k], "error", "corrupt_batch")]
    assert ctx.errors[0].message == (
        f"corrupt batch (bad magic 9) of {SIZE[k]} bytes skipped by its length; next batch at {POS[k + 1]}"
    )
    assert tables["segment_batches"].height == 21


def test_crc_mismatch_and_broken_length_together(tmp_path):
    k = 2

    def edit(data):
        data[POS[k] + 70] ^= 0xFF
        struct.pack_into(">i", data, POS[k] + 8, SIZE[k] - 12 + 3)  # 3 bytes too long: nothing starts there

    tables, ctx = parse(damaged(tmp_path, edit))
    assert errors(ctx) == [(POS[k], "error", "resync")]
    assert ctx.bytes_skipped == SIZE[k]
    assert POS[k] not in tables["segment_batches"]["position"].to_list()


def test_garbage_between_batches_and_the_index_notices(tmp_path):
    k = 15
    junk = bytes(range(200, 237))  # 37 bytes

    def edit(data):
        return data[: POS[k]] + junk + data[POS[k] :]

    tables, ctx = parse(damaged(tmp_path, edit))
    assert errors(ctx)[0] == (POS[k], "error", "resync")
    assert (
        ctx.errors[0].message == f"no readable batch at {POS[k]}: 37 bytes skipped to the next batch at {POS[k] + 37}"
    )
    assert tables["segment_batches"]["position"].to_list() == POS[:k] + [p + 37 for p in POS[k:]]
    # the .index points at the old positions after the insertion: each entry is reported
    idx = [e for e in ctx.errors if e.what == "index_mismatch"]
    assert idx and all("no batch starts at position" in e.message for e in idx)
    assert [e.position for e in idx] == [
        p
        for rel, p in struct.iter_unpack(">ii", (GENERATED / ORDERS).with_suffix(".index").read_bytes())
        if p >= POS[k]
    ]


def test_truncated_tail_is_normal(tmp_path):
    cut = POS[-1] + 100

    tables, ctx = parse(damaged(tmp_path, lambda d: d[:cut]))
    assert errors(ctx) == [(POS[-1], "info", "truncated_tail"), (POS[-1], "info", "index_mismatch")]
    assert ctx.errors[0].message == f"partial batch at the end: 100 bytes; the batch claims {SIZE[-1]} bytes"
    assert ctx.bytes_skipped == 100
    assert tables["segment_batches"].height == 21


def test_truncated_inside_the_header(tmp_path):
    tables, ctx = parse(damaged(tmp_path, lambda d: d[: POS[-1] + 20], index=False))
    assert errors(ctx) == [(POS[-1], "info", "truncated_tail")]
    assert ctx.errors[0].message == "partial batch at the end: 20 bytes; the batch claims 421 bytes"


def test_zero_padding_of_a_preallocated_segment(tmp_path):
    tables, ctx = parse(damaged(tmp_path, lambda d: d + bytes(3 << 20)))
    assert errors(ctx) == [(TOTAL, "info", "zero_padding")]
    assert ctx.errors[0].message == f"{3 << 20} zero bytes to the end (preallocated segment)"
    assert tables["segment_batches"].height == 22


def test_unreadable_tail(tmp_path):
    tables, ctx = parse(damaged(tmp_path, lambda d: d + b"\xff" * 100))
    assert errors(ctx) == [(TOTAL, "data_loss", "unreadable_tail")]
    assert ctx.bytes_skipped == 100


def test_index_entry_pointing_nowhere(tmp_path):
    path = damaged(tmp_path, lambda d: None)
    idx = bytearray(path.with_suffix(".index").read_bytes())
    rel, pos = struct.unpack_from(">ii", idx, 8)
    struct.pack_into(">ii", idx, 8, rel, pos + 1)
    path.with_suffix(".index").write_bytes(bytes(idx))
    tidx = bytearray(path.with_suffix(".timeindex").read_bytes())
    ts, trel = struct.unpack_from(">qi", tidx, 0)
    struct.pack_into(">qi", tidx, 0, ts + 7, trel)
    path.with_suffix(".timeindex").write_bytes(bytes(tidx))
    _, ctx = parse(path)
    assert [(e.position, e.what, e.message) for e in ctx.errors] == [
        (
            pos + 1,
            "index_mismatch",
            f"00000000000000000100.index entry 1: no batch starts at position {pos + 1} (offset {100 + rel})",
        ),
        (
            POS[[r["last_offset"] for r in REF].index(100 + trel)],
            "timeindex_mismatch",
            f"00000000000000000100.timeindex entry 0: timestamp {ts + 7} but the batch at "
            f"{POS[[r['last_offset'] for r in REF].index(100 + trel)]} holding offset {100 + trel} has max timestamp {ts}",
        ),
    ]


def test_walk_never_raises_on_noise():
    import random

    rng = random.Random(7)
    data = bytearray((GENERATED / ORDERS).read_bytes())
    for _ in range(40):
        data[rng.randrange(len(data))] = rng.randrange(256)
    walk = SegmentWalk(bytes(data))
    covered = 0
    for item in walk:
        covered += getattr(item, "size", 0) or getattr(item, "skipped_bytes", 0)
    walk.close()
    assert covered == len(data)  # batches and damage tile the file exactly


def test_legacy_segment_resyncs_across_zeros_quickly(tmp_path):
    """Resync in a legacy segment (magic 0 headers start with zero bytes) skips zero runs
    in C, not byte by byte."""
    import time

    from segments_testlib import GENERATED as G

    legacy = (G / "legacy-topic-0/00000000000000000000.log").read_bytes()
    first = 74  # the first magic 0 message
    data = legacy[:first] + bytes(8 << 20) + legacy[first:]
    walk = SegmentWalk(data)
    t = time.perf_counter()
    items = list(walk)
    walk.close()
    assert time.perf_counter() - t < 2
    damage = [i for i in items if not hasattr(i, "crc")]
    assert [(d.position, d.skipped_bytes, d.what) for d in damage] == [(first, 8 << 20, "resync")]
    assert sum(1 for i in items if hasattr(i, "crc")) == 9


def test_resync_through_random_garbage_is_fast():
    """Random bytes hold a 0x02 every 256 bytes; cheap header checks keep the CRC attempts
    (each over up to the claimed length) rare."""
    import random
    import time

    garbage = random.Random(11).randbytes(8 << 20)
    src = (GENERATED / ORDERS).read_bytes()
    data = src[: POS[10]] + garbage + src[POS[10] :]
    t = time.perf_counter()
    walk = SegmentWalk(data)
    damage = [(i.position, i.skipped_bytes, i.what) for i in walk if not hasattr(i, "crc")]
    walk.close()
    assert time.perf_counter() - t < 3
    assert damage == [(POS[10], 8 << 20, "resync")]
