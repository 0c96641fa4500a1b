"""The whole capture job against tshark on the same capture of a million packets and more.

The capture is generated at run time in a temporary folder (never committed): the
librdkafka capture of fixtures/wire, replicated with a new client address per copy and its
timestamps shifted, so every copy is a distinct set of TCP connections. Measured, each in
its own process:

- ``kforensics ingest`` of a bundle holding just that capture (reassembly, Kafka decoding,
  pairing, produce partitions with message ids, loaded into DuckDB and written as Parquet),
  with the default ``--jobs`` (the machine's cores: the capture is split by connection over
  worker processes) and with ``--jobs 1``;
- tshark's bare dissection into 7 fields (the reference: ``-T fields`` of frame time,
  stream, correlation id, request key, api version, topic and partition);
- tshark printing the produce request/response PDUs, and tshark dissecting with no output.

Wall time, CPU time (user + sys of the process and its workers, from ``wait4``), and peak
memory: the largest single process (``wait4``) and the sum over the process tree, sampled
from /proc every 20 ms (what the machine must hold). The job is repeated on captures 3×
and 10× larger (``--scales``) to show that its memory does not grow with the capture; tshark
runs up to ``--tshark-max-scale`` (its memory does grow: about 7 GB at 10×). Other jobs
share the machine: the load average is printed with every figure. The targets judged are
recorded with ``check``.

Run: ``python bench/bench_wire.py [--packets N] [--scales 1,3,10] [--tshark-max-scale 3] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Result, check, machine, record  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "fixtures" / "wire" / "librdkafka_segmented.pcap"
BROKER_PORT = 29181
FIELDS = [
    "frame.time_epoch",
    "tcp.stream",
    "kafka.correlation_id",
    "kafka.request_key",
    "kafka.api_version",
    "kafka.topic_name",
    "kafka.partition_id",
]


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


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(cmd: list[str], stdout=subprocess.DEVNULL, **kw) -> dict:
    """Wall and CPU seconds, peak RSS of the largest process and of the process tree."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, **kw)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1: finished with partial artifacts (not expected here)
        raise SystemExit(f"{cmd[0]} failed with status {code}: {err[-2000:]}")
    return {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "max_mb": usage.ru_maxrss / 1024,
        "tree_mb": max(peak[0], usage.ru_maxrss * 1024) / 2**20,
        "load": (load + os.getloadavg()[0]) / 2,
    }


def ingest_job(bundle: Path, out: Path, jobs: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    m = measure(
        [sys.executable, "-m", "pipeline", "-q", "ingest", str(bundle), "-o", str(out), "-j", str(jobs)],
        cwd=REPO,
    )
    import duckdb

    con = duckdb.connect(str(out / "incident.duckdb"), read_only=True)
    reqs = con.sql("select count(*) from kafka_requests").fetchall()[0][0]
    parts = con.sql("select count(*) from produce_partitions").fetchall()[0][0]
    ids = con.sql("select count(*) from produce_partitions, unnest(message_ids)").fetchall()[0][0]
    errors = con.sql("select count(*) from ingest_errors").fetchall()[0][0]
    con.close()
    m["note"] = f"{reqs:,} requests, {parts:,} produce partitions, {ids:,} message ids, {errors} errors"
    return m


PARSE_ONLY = """
import sys
from pathlib import Path
from pipeline.ingest.pcap import CaptureParser
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext

if __name__ == "__main__":
    path = Path(sys.argv[1])
    ctx = ParseContext(path, path.name, "bench", manifest=Manifest(kafka_ports=(int(sys.argv[2]),)))
    ctx.jobs = int(sys.argv[3])
    rows = {}
    for table, frame in CaptureParser().parse(ctx):
        rows[table] = rows.get(table, 0) + frame.height
    print(rows.get("kafka_requests", 0), rows.get("produce_partitions", 0), len(ctx.errors))
"""


def parse_only(cap: Path, jobs: int, tmp: Path) -> dict:
    script = tmp / "parse_only.py"
    script.write_text(PARSE_ONLY)
    with open(tmp / "parse_only.txt", "wb") as f:
        m = measure(
            [sys.executable, str(script), str(cap), str(BROKER_PORT), str(jobs)],
            stdout=f,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    reqs, parts, errs = (int(x) for x in (tmp / "parse_only.txt").read_text().split())
    m["note"] = f"the parser alone, rows counted, nothing stored: {reqs:,} requests, {parts:,} produce partitions"
    return m


def tshark_runs(tshark: str, cap: Path, tmp: Path, extras: bool) -> list[tuple[str, dict]]:
    common = [tshark, "-n", "-r", str(cap), "-d", f"tcp.port=={BROKER_PORT},kafka"]
    out = []
    with open(tmp / "tshark.txt", "wb") as f:
        m = measure([*common, "-T", "fields", *(x for e in FIELDS for x in ("-e", e))], stdout=f)
    lines = sum(1 for _ in open(tmp / "tshark.txt", "rb"))
    m["note"] = f"-T fields, 7 fields: {lines:,} lines"
    out.append(("tshark bare dissection", m))
    if extras:
        with open(tmp / "tshark.txt", "wb") as f:
            m = measure(
                [
                    *common,
                    "-Y",
                    "kafka.request_key == 0 || kafka.response_key == 0",
                    "-T",
                    "fields",
                    *(x for e in ("frame.number", "kafka.request_frame", *FIELDS) for x in ("-e", e)),
                ],
                stdout=f,
            )
        lines = sum(1 for _ in open(tmp / "tshark.txt", "rb"))
        m["note"] = f"produce request/response PDUs: {lines:,} lines"
        out.append(("tshark produce pairs", m))
        m = measure([*common, "-Y", "kafka", "-q"])
        m["note"] = "-Y kafka -q: dissects every packet, prints nothing"
        out.append(("tshark Kafka dissection", m))
    (tmp / "tshark.txt").unlink(missing_ok=True)
    return out


def judge(rows: list[tuple[str, str, int, int, dict]], cores: int) -> None:
    """Record the capture targets: faster than tshark, memory under 1 GiB and flat, both cores."""
    fig = {(tool, label): m for tool, label, _, _, m in rows}
    job = f"kforensics ingest -j {cores}"
    labels = list(dict.fromkeys(label for _, label, _, _, _ in rows))
    for label in labels:
        ours, ref = fig.get((job, label)), fig.get(("tshark bare dissection", label))
        if ours and ref:
            ratio = ours["seconds"] / ref["seconds"]
            check(
                f"capture {label}: whole job in less wall time than tshark's bare dissection (aim: half)",
                f"{ours['seconds']:.1f} s vs {ref['seconds']:.1f} s ({ratio:.2f}x), load {ours['load']:.1f}",
                ratio < 1,
            )
    peaks = [(label, fig[(job, label)]["tree_mb"]) for label in labels if (job, label) in fig]
    if peaks:
        check(
            "capture: whole job's peak memory (all processes) under 1 GiB",
            ", ".join(f"{mb:,.0f} MB at {label}" for label, mb in peaks),
            all(mb < 1024 for _, mb in peaks),
        )
    if len(peaks) > 1:
        (small, base), (large, top) = peaks[0], peaks[-1]
        growth = max(mb for _, mb in peaks[1:]) / base
        check(
            f"capture: a {int(large[:-1]) // int(small[:-1])}x larger capture needs at most 1.2x the memory",
            f"{base:,.0f} MB at {small}, {top:,.0f} MB at {large}: {growth:.2f}x",
            growth <= 1.2,
        )
    one, many = (fig.get(("kforensics ingest -j 1", labels[0])), fig.get((job, labels[0]))) if labels else (None, None)
    if one and many and cores > 1:
        check(
            f"both cores: one capture split over {cores} processes beats one",
            f"-j {cores} {many['seconds']:.1f} s ({many['cpu']:.1f} s CPU) vs -j 1 {one['seconds']:.1f} s, "
            f"load {many['load']:.1f}",
            many["seconds"] < one["seconds"],
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--scales", default="1,3,10", help="capture sizes, in multiples of --packets")
    ap.add_argument("--tshark-max-scale", type=int, default=3, help="largest capture tshark reads")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    a = ap.parse_args()
    tshark = shutil.which("tshark")
    cores = os.cpu_count() or 1
    workdir = Path(tempfile.mkdtemp(prefix="kforensics-bench-wire-"))
    print(f"{machine()}\n")
    rows: list[tuple[str, str, int, int, dict]] = []  # (tool, size label, packets, bytes, figures)
    try:
        for scale in sorted({int(x) for x in a.scales.split(",")}):
            bundle = workdir / f"bundle-{scale}x"
            bundle.mkdir()
            (bundle / "bundle.toml").write_text(f"kafka_ports = [{BROKER_PORT}]\n")
            cap = bundle / "wire.pcap"
            t0 = time.perf_counter()
            packets = make_capture(cap, a.packets * scale)
            size = cap.stat().st_size
            label = f"{scale}x"
            print(f"{label}: {packets:,} packets, {size / 1e6:.1f} MB, generated in {time.perf_counter() - t0:.1f} s")
            out = workdir / "out"
            rows.append((f"kforensics ingest -j {cores}", label, packets, size, ingest_job(bundle, out, cores)))
            if scale == 1 and cores > 1:
                rows.append(("kforensics ingest -j 1", label, packets, size, ingest_job(bundle, out, 1)))
            if scale <= 3:  # the parser's own memory; beyond, the whole job shows it
                rows.append(
                    (f"kforensics parse only -j {cores}", label, packets, size, parse_only(cap, cores, workdir))
                )
            shutil.rmtree(out, ignore_errors=True)
            if tshark and scale <= a.tshark_max_scale:
                for name, m in tshark_runs(tshark, cap, workdir, extras=scale == 1):
                    rows.append((name, label, packets, size, m))
            if not a.keep:
                shutil.rmtree(bundle, ignore_errors=True)
        if not tshark:
            print("tshark not installed: only this ingest is measured")
        for tool, label, packets, size, m in rows:
            record(
                Result(
                    stage="capture → tables" if tool.startswith("kforensics") else "capture → dissection",
                    tool=tool,
                    input=f"replicated librdkafka capture ({label}, {packets:,} packets)",
                    input_bytes=size,
                    seconds=m["seconds"],
                    peak_mb=m["tree_mb"],
                    rate=f"{packets / m['seconds'] / 1000:,.0f}k packets/s, {size / 1e6 / m['seconds']:.1f} MB/s",
                    note=f"cpu {m['cpu']:.1f} s, load {m['load']:.1f}; {m['note']}",
                )
            )
        print()
        head = f"{'tool':<26} {'size':>4} {'wall s':>7} {'cpu s':>6} {'packets/s':>10} {'MB/s':>6}"
        print(f"{head} {'peak MB':>8} {'largest MB':>10} {'load':>5}  result")
        for tool, label, packets, size, m in rows:
            print(
                f"{tool:<26} {label:>4} {m['seconds']:7.1f} {m['cpu']:6.1f} {packets / m['seconds']:10,.0f} "
                f"{size / 1e6 / m['seconds']:6.1f} {m['tree_mb']:8.0f} {m['max_mb']:10.0f} {m['load']:5.1f}  {m['note']}"
            )
        print()
        judge(rows, cores)
    finally:
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
