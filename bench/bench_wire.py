"""Wire ingest against tshark on the same capture of at least a million packets.

The capture is generated at run time in a temporary folder (never committed): the
librdkafka capture of fixtures/wire, replicated with a new client address per copy and its
timestamps shifted, so every copy is a distinct set of TCP connections. Both tools extract
the produce request/response pairs; each runs in its own process, whose peak memory comes
from ``wait4``. Prints one table with packets/s, MB/s and peak memory side by side.

Run: ``python bench/bench_wire.py [--packets N] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "fixtures" / "wire" / "librdkafka_segmented.pcap"
BROKER_PORT = 29181

OURS = """
import sys
from pathlib import Path
from pipeline.ingest.pcap import CaptureParser
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext
path = Path(sys.argv[1])
ctx = ParseContext(path, path.name, "bench", manifest=Manifest(kafka_ports=(int(sys.argv[2]),)))
rows = {}
for table, frame in CaptureParser().parse(ctx):
    rows[table] = rows.get(table, 0) + frame.height
print(rows.get("kafka_requests", 0), rows.get("produce_partitions", 0), len(ctx.errors))
"""


def make_capture(out: Path, packets: int) -> int:
    """Replicate SOURCE until ``packets`` packets; returns the packet count written."""
    raw = SOURCE.read_bytes()
    head, pos, recs = raw[:24], 24, []
    first_ts = None
    while pos < len(raw):
        sec, usec, incl, orig = struct.unpack_from("<IIII", raw, pos)
        data = raw[pos + 16 : pos + 16 + incl]
        ts = sec * 1_000_000 + usec
        first_ts = ts if first_ts is None else first_ts
        sport = struct.unpack_from(">H", data, 14 + 20)[0]
        recs.append((ts - first_ts, data, sport != BROKER_PORT))  # (offset µs, frame, sent by the client)
        pos += 16 + incl
    span = recs[-1][0] + 1000
    base = first_ts
    n = 0
    with open(out, "wb") as f:
        f.write(head)
        copy = 0
        while n < packets:
            client_ip = struct.pack(">BBBB", 10, (copy >> 16) & 0xFF, (copy >> 8) & 0xFF, copy & 0xFF)
            shift = base + copy * span
            chunk = []
            for off, data, from_client in recs:
                b = bytearray(data)
                b[26 + (0 if from_client else 4) : 30 + (0 if from_client else 4)] = client_ip
                ts = shift + off
                chunk.append(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(b), len(b)) + bytes(b))
            f.write(b"".join(chunk))
            n += len(recs)
            copy += 1
    return n


def measure(cmd: list[str], **kw) -> tuple[float, int, bytes]:
    """(wall seconds, peak RSS bytes, stdout) of one process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        data = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed with status {status}")
    return seconds, usage.ru_maxrss * 1024, data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the generated capture")
    a = ap.parse_args()
    tshark = shutil.which("tshark")
    workdir = Path(tempfile.mkdtemp(prefix="kforensics-bench-"))
    cap = workdir / "wire.pcap"
    try:
        t0 = time.perf_counter()
        packets = make_capture(cap, a.packets)
        size = cap.stat().st_size
        print(f"capture: {packets} packets, {size / 1e6:.1f} MB, generated in {time.perf_counter() - t0:.1f} s ({cap})")
        results = []
        secs, rss, out = measure([sys.executable, "-c", OURS, str(cap), str(BROKER_PORT)], cwd=REPO)
        reqs, parts, errs = (int(x) for x in out.split())
        results.append(
            ("kforensics wire ingest", secs, rss, f"{reqs} requests, {parts} produce partitions, {errs} errors")
        )
        if tshark:
            common = [tshark, "-n", "-r", str(cap), "-d", f"tcp.port=={BROKER_PORT},kafka"]
            secs, rss, out = measure(
                [
                    *common,
                    "-Y",
                    "kafka.request_key == 0 || kafka.response_key == 0",
                    "-T",
                    "fields",
                    "-e",
                    "frame.number",
                    "-e",
                    "frame.time_epoch",
                    "-e",
                    "tcp.stream",
                    "-e",
                    "kafka.correlation_id",
                    "-e",
                    "kafka.request_frame",
                    "-e",
                    "kafka.topic_name",
                    "-e",
                    "kafka.partition_id",
                ]
            )
            results.append(("tshark produce pairs", secs, rss, f"{len(out.splitlines())} produce PDU lines"))
            secs, rss, _ = measure([*common, "-Y", "kafka", "-q"])
            results.append(("tshark Kafka dissection", secs, rss, "-Y kafka -q: dissects every packet, prints nothing"))
        else:
            print("tshark not installed: only this ingest is measured")
        print()
        print(f"{'tool':<24} {'seconds':>8} {'packets/s':>11} {'MB/s':>7} {'peak MB':>8}  result")
        for name, secs, rss, note in results:
            print(f"{name:<24} {secs:8.1f} {packets / secs:11.0f} {size / 1e6 / secs:7.1f} {rss / 2**20:8.0f}  {note}")
    finally:
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
