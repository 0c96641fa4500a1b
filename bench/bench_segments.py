"""Segment reader benchmark: batches/s and MB/s on a generated 1 GiB segment (Kafka's
default segment size), headers only and with records, beside kafka-python's reader.

The segment is written to a temporary folder at run time (never committed): batches built
by kafka-python's producer-side builder (a mix of codecs, ~16 KiB like the default
batch.size, a message-id header per record), laid out as a broker does.

    python bench/bench_segments.py [--size-mib 1024] [--reference-mib 64]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Result, check, peak_self_mb, record  # noqa: E402
from pipeline.ingest.segments import Batch, SegmentFile, SegmentParser, batches_covering  # noqa: E402
from pipeline.registry import ParseContext  # noqa: E402


def _generator():
    spec = importlib.util.spec_from_file_location("make_segments", ROOT / "fixtures" / "segments" / "make_segments.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_segments"] = mod
    spec.loader.exec_module(mod)
    return mod


def make_segment(path: Path, size: int) -> tuple[int, int]:
    """Write ~``size`` bytes of batches; returns (batches, records)."""
    gen = _generator()
    templates = []
    codecs = ("none", "none", "lz4", "zstd", "snappy", "gzip")
    n = 0
    for t in range(48):
        codec = codecs[t % len(codecs)]
        recs = []
        for _ in range(40):
            value = (f"order {n} " * 30).encode()[:350]
            recs.append((gen.T0 + n, f"key-{n % 97}".encode(), value, [("message-id", f"msg-{n:09d}".encode())]))
            n += 1
        templates.append(gen.v2_batch(recs, codec=codec, producer=(7000 + t, 0, 0)))
    path.parent.mkdir(parents=True, exist_ok=True)
    written = batches = records = 0
    offset = 0
    with open(path, "wb") as f:
        chunk = bytearray()
        while written < size:
            tpl = templates[batches % len(templates)]
            b = bytearray(tpl)
            struct.pack_into(">q", b, 0, offset)
            struct.pack_into(">i", b, 12, 3)
            offset += 40
            records += 40
            batches += 1
            chunk += b
            written += len(b)
            if len(chunk) > 8 << 20:
                f.write(chunk)
                chunk = bytearray()
        f.write(chunk)
    return batches, records


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def walk_headers(path: Path) -> int:
    n = 0
    with SegmentFile(path) as sf:
        w = sf.walk()
        for item in w:
            if isinstance(item, Batch):
                n += 1
        w.close()
    return n


def parse_tables(path: Path, name: str, records: bool) -> tuple[int, int]:
    p = SegmentParser()
    p.decode_records = records
    ctx = ParseContext(path, name, "bench")
    rows = {"segment_batches": 0, "segment_records": 0}
    for table, frame in p.parse(ctx):
        rows[table] += frame.height
    return rows["segment_batches"], rows["segment_records"]


def read_plain(path: Path) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(8 << 20):
            n += len(chunk)
    return n


def reference(path: Path, limit: int, records: bool) -> tuple[int, int]:
    from kafka.record import MemoryRecords

    with open(path, "rb") as f:
        data = f.read(limit)
    mr = MemoryRecords(data)
    nb = nr = 0
    while (b := mr.next_batch()) is not None:
        b.validate_crc()
        nb += 1
        if records:
            for r in b:
                nr += 1
                for k, v in r.headers:
                    if k == "message-id":
                        v.decode()
    return nb, nr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--reference-mib", type=int, default=64)
    ap.add_argument("--keep", action="store_true", help="keep the generated segment")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="segments-bench-"))
    path = tmp / "bench.orders-0" / "00000000000000000000.log"
    name = "bench.orders-0/00000000000000000000.log"
    try:
        t, (nb, nr) = timed(lambda: make_segment(path, args.size_mib << 20))
        size = path.stat().st_size
        mib = size / (1 << 20)
        print(f"generated {path} : {mib:.0f} MiB, {nb} batches, {nr} records in {t:.1f} s")
        read_plain(path)  # warm the page cache
        rows = []

        def row(what, seconds, batches, recs, mib_read):
            rows.append((what, seconds, batches / seconds, recs / seconds if recs else 0, mib_read / seconds))

        t, n = timed(lambda: read_plain(path))
        row("read() 8 MiB chunks (page cache)", t, nb, 0, n / (1 << 20))
        t, n = timed(lambda: walk_headers(path))
        assert n == nb
        row("kforensics walk: headers + CRC32C", t, n, 0, mib)
        t, (b, _) = timed(lambda: parse_tables(path, name, records=False))
        assert b == nb
        row("kforensics ingest --batches-only (frames)", t, b, 0, mib)
        last = None
        with SegmentFile(path) as sf:
            w = sf.walk()
            for item in w:
                last = item
            w.close()
        t, cov = timed(lambda: batches_covering(path, last.position, last.size))
        rows.append((f"batches_covering(P={last.position}) no index", t, 0, 0, 0))
        ref_bytes = args.reference_mib << 20
        ref_mib = min(ref_bytes, size) / (1 << 20)
        t, (rb, _) = timed(lambda: reference(path, ref_bytes, records=False))
        row(f"kafka-python MemoryRecords headers+CRC ({ref_mib:.0f} MiB prefix)", t, rb, 0, ref_mib)
        t, (b, r) = timed(lambda: parse_tables(path, name, records=True))
        assert (b, r) == (nb, nr)
        row("kforensics ingest with records + message ids", t, b, r, mib)
        # the same prefix for both readers, back to back
        prefix = tmp / "bench.prefix-0" / "00000000000000000000.log"
        prefix.parent.mkdir()
        with open(path, "rb") as f:
            data = f.read(ref_bytes)
        with SegmentFile(path) as sf:
            w = sf.walk(0, ref_bytes)
            cut = max(item.position + item.size for item in w if isinstance(item, Batch) and item.end <= ref_bytes)
            w.close()
        prefix.write_bytes(data[:cut])
        cut_mib = cut / (1 << 20)
        t, (b, r) = timed(lambda: parse_tables(prefix, "bench.prefix-0/00000000000000000000.log", records=True))
        row(f"kforensics ingest with records ({cut_mib:.0f} MiB prefix)", t, b, r, cut_mib)
        t, (rb, rr) = timed(lambda: reference(prefix, cut, records=True))
        assert (rb, rr) == (b, r)
        row(f"kafka-python MemoryRecords records ({cut_mib:.0f} MiB prefix)", t, rb, rr, cut_mib)
        w1 = max(len(r[0]) for r in rows)
        print(f"\n{'reader':<{w1}}  {'seconds':>8}  {'batches/s':>11}  {'records/s':>11}  {'MB/s':>8}")
        for what, sec, bps, rps, mbs in rows:
            print(f"{what:<{w1}}  {sec:8.2f}  {bps:11,.0f}  {rps:11,.0f}  {mbs * 1.048576:8.1f}")
        for what, sec, bps, rps, mbs in rows:
            tool = "kafka-python" if what.startswith("kafka-python") else "kforensics"
            rate = f"{mbs * 1.048576:,.0f} MB/s, {bps:,.0f} batches/s" + (f", {rps:,.0f} records/s" if rps else "")
            record(
                Result(
                    "segment read",
                    tool,
                    what,
                    size,
                    sec,
                    peak_self_mb(),
                    rate,
                    f"load {os.getloadavg()[0]:.1f}; peak is this process's",
                )
            )
        rate = {what: mbs * 1.048576 for what, _, _, _, mbs in rows}
        headers, frames = rate["kforensics walk: headers + CRC32C"], rate["kforensics ingest --batches-only (frames)"]
        check(
            "segments: a 1 GiB segment read headers-only at disk speed (hundreds of MB/s from page cache)",
            f"{mib:,.0f} MiB: walk {headers:,.0f} MB/s, ingest of batches {frames:,.0f} MB/s; "
            f"with records {rate['kforensics ingest with records + message ids']:,.0f} MB/s",
            min(headers, frames) >= 200 and mib >= 1000,
        )
        load = os.getloadavg()[0]
        print(
            f"\n(1 MB = 10^6 bytes; {os.cpu_count()} cpus, load average {load:.1f}; covering answer: {len(cov.batches)} batch)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
