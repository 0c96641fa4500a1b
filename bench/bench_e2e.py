"""Benchmark: `kforensics run` end to end on a ~1 GB bundle (capture, segments, eBPF log, JFR).

The bundle is built in a temporary folder from the other benchmarks' generators: a real
librdkafka capture replicated to 1 M packets, a generated segment, seed-format write lines
for it, and a JDK recording of at least 50 MB. Target (issue "Scale"): under 2 minutes on
the 2-core machine. Deleted afterwards.

    python bench/bench_e2e.py [--segment-mb 550] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import Result, check, record, run_command  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_ebpf_lines(path: Path, lines: int, topic_dir: str, segment: str) -> None:
    """Seed-format ext4slower lines (start end latency tid bytes offset dir/file)."""
    t0 = dt.datetime(2026, 11, 20, 17, 0, 0)
    with open(path, "w") as f:
        for i in range(lines):
            start = t0 + dt.timedelta(microseconds=i * 997)
            end = start + dt.timedelta(microseconds=150 + i % 700)
            f.write(
                f"{start:%H:%M:%S.%f}  {end:%H:%M:%S.%f}  {(end - start).total_seconds() * 1000:.0f} ms   "
                f"{4400 + i % 48}  {500 + i % 4000}  {i * 2048}  {topic_dir}/{segment}\n"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segment-mb", type=int, default=550)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--packets", type=int, default=1_000_000)
    args = ap.parse_args()
    wire, segs, jfr = _load("bench_wire"), _load("bench_segments"), _load("bench_jfr")
    tmp = Path(tempfile.mkdtemp(prefix="kf-bench-e2e-"))
    try:
        bundle = tmp / "bundle"
        (bundle / "capture").mkdir(parents=True)
        wire.make_capture(bundle / "capture" / "broker.pcap", args.packets)
        seg_dir, seg_name = "bench.orders-0", "00000000000000000000.log"
        segs.make_segment(bundle / "segments" / seg_dir / seg_name, args.segment_mb << 20)
        (bundle / "ebpf").mkdir()
        write_ebpf_lines(bundle / "ebpf" / "ext4slower.log", args.lines, seg_dir, seg_name)
        (bundle / "jvm").mkdir()
        try:
            shutil.copy(jfr.make_recording(50.0), bundle / "jvm" / "broker.jfr")
        except SystemExit as exc:  # no JDK: the bundle goes without its recording
            print(exc)
        (bundle / "bundle.toml").write_text(
            f'kafka_ports = [{wire.BROKER_PORT}]\ndate = "2026-11-20"\ntimezone = "UTC"\n'
        )
        size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
        print(f"bundle: {size / 1e9:.2f} GB in {bundle}")
        out = tmp / "out"
        seconds, peak_mb, _ = run_command(
            [sys.executable, "-m", "pipeline", "-q", "run", str(bundle), "-o", str(out)],
            ok_codes=(0, 1),  # 1: some artifact partial, still a finished run
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        record(
            Result(
                "kforensics run, end to end",
                "kforensics",
                "capture + segment + eBPF log + JFR",
                size,
                seconds,
                peak_mb,
                f"{size / 1e6 / seconds:,.1f} MB/s",
                f"target < 120 s; largest process's peak; load {os.getloadavg()[0]:.1f}",
            )
        )
        check(
            "end to end: `kforensics run` on a 1 GB bundle (capture, segment, log, JFR) in under 2 minutes",
            f"{size / 1e9:.2f} GB in {seconds:.1f} s",
            seconds < 120 and size >= 1e9,
        )
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
