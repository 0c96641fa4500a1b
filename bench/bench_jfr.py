"""Benchmark: our JFR reader against the JDK's `jfr print --json --events` for the same events.

Both run as child processes on the same recording (≥ 50 MB); we report wall time, CPU time,
events per second and peak memory (max RSS) side by side. The JDK's time includes its JVM
start, ours includes the Python start. Without --file, a recording is made once with
fixtures/jvm/JfrBench.java (request handlers appending to one partition under its
monitor) and kept in $TMPDIR/kforensics-bench/.

    python bench/bench_jfr.py [--file REC.jfr] [--min-mb 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import Result, check, record  # noqa: E402

sys.path.insert(0, str(ROOT))

from pipeline.ingest.jfr import INGESTED_EVENTS  # noqa: E402

FIXTURES = ROOT / "fixtures" / "jvm"

OURS = """
import sys
from pathlib import Path
from pipeline.ingest.jfr import JfrParser
from pipeline.registry import ParseContext
ctx = ParseContext(Path(sys.argv[1]), "bench", "bench")
rows = {}
for table, frame in JfrParser().parse(ctx):
    rows[table] = rows.get(table, 0) + frame.height
print(sum(v for k, v in rows.items() if k != "jfr_threads"))
"""


def run_child(cmd: list[str], stdout=subprocess.PIPE, env=None) -> tuple[float, float, int, bytes]:
    """Wall seconds, CPU seconds (user+sys), max RSS in KiB, stdout of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.read().decode()[:500]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out


def make_recording(min_mb: float) -> Path:
    java, javac = shutil.which("java"), shutil.which("javac")
    if not java or not javac:
        raise SystemExit("no JDK (java, javac) to make the benchmark recording; pass --file")
    work = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "kforensics-bench"
    work.mkdir(exist_ok=True)
    rec = work / "jfr-bench.jfr"
    if rec.exists() and rec.stat().st_size >= min_mb * 1e6:
        return rec
    subprocess.run([javac, "-d", str(work), str(FIXTURES / "JfrBench.java")], check=True)
    seconds = 15
    while True:
        tmp = work / "jfr-bench.tmp.jfr"
        subprocess.run(
            [
                java,
                f"-XX:StartFlightRecording:filename={tmp},settings={FIXTURES / 'bench.jfc'}",
                "-cp",
                str(work),
                "JfrBench",
                str(work),
                str(seconds),
            ],
            check=True,
            capture_output=True,
        )
        size = tmp.stat().st_size
        if size >= min_mb * 1e6:
            tmp.replace(rec)
            return rec
        seconds = int(seconds * min_mb * 1.2e6 / max(size, 1)) + 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, help="recording to read (else one is made with the JDK)")
    ap.add_argument("--min-mb", type=float, default=50.0, help="size of the recording to make")
    args = ap.parse_args()
    rec = args.file or make_recording(args.min_mb)
    jfr = shutil.which("jfr")
    size_mb = rec.stat().st_size / 1e6
    events = ",".join(INGESTED_EVENTS)
    print(f"recording: {rec} ({size_mb:.1f} MB)")
    print(f"events:    {events}")

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    o_wall, o_cpu, o_rss, out = run_child([sys.executable, "-c", OURS, str(rec)], env=env)
    n_events = int(out.decode().strip().splitlines()[-1])
    rows = [("kforensics (this reader)", o_wall, o_cpu, o_rss)]
    if jfr:
        with open(os.devnull, "wb") as devnull:
            j_wall, j_cpu, j_rss, _ = run_child([jfr, "print", "--json", "--events", events, str(rec)], stdout=devnull)
        rows.append(("jfr print --json --events", j_wall, j_cpu, j_rss))
    else:
        print("jfr not installed: only our reader was measured")

    print()
    print("| reader | wall s | cpu s | events/s (wall) | MB/s (wall) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, wall, cpu, rss in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {n_events / wall:,.0f} | {size_mb / wall:.1f} | {rss / 1024:.0f} |")
    for name, wall, cpu, rss in rows:
        record(
            Result(
                "JFR monitor/sample/file/thread events",
                name,
                f"{rec.name} ({n_events:,} events)",
                int(size_mb * 1e6),
                wall,
                rss / 1024,
                f"{n_events / wall:,.0f} events/s, {size_mb / wall:.1f} MB/s",
                f"cpu {cpu:.1f} s; load {os.getloadavg()[0]:.1f}",
            )
        )
    if jfr:
        print()
        print(f"{n_events:,} events ingested; speed-up {j_wall / o_wall:.1f}x wall, {j_cpu / o_cpu:.1f}x cpu")
        check(
            "JFR: at least 3x faster than `jfr print --json --events` on a recording of 50 MB or more",
            f"{size_mb:.1f} MB: {o_wall:.1f} s vs {j_wall:.1f} s ({j_wall / o_wall:.1f}x)",
            j_wall / o_wall >= 3 and size_mb >= 50,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
