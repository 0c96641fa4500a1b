"""Figures for ROBUSTNESS.md: a real capture damaged Wireshark-style (editcap byte errors at
several rates, random truncation, duplicated and dropped packets), each ingested; prints how
many produce pairs survive and how the damage is accounted (error rows, bytes skipped).

    python fuzz/corruption_figures.py [CAPTURE]
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import polars as pl  # noqa: E402

from pipeline.ingest.pcap import CaptureParser  # noqa: E402
from pipeline.registry import ParseContext  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEY = ["conn_id", "correlation_id"]


def ingest(path: Path) -> tuple[pl.DataFrame, ParseContext]:
    ctx = ParseContext(path, path.name, "f")
    frames = [f for t, f in CaptureParser().parse(ctx) if t == "kafka_requests"]
    return (pl.concat(frames) if frames else pl.DataFrame(schema={k: pl.Int64 for k in KEY})), ctx


def row(label: str, clean: pl.DataFrame, path: Path) -> str:
    got, ctx = ingest(path)
    crashes = sum(e.what in ("parser_crash", "parser_bug") for e in ctx.errors)
    same = got.join(clean.select(KEY), on=KEY, how="semi").height if got.height else 0
    sev = Counter(e.severity for e in ctx.errors)
    loss_rows = sev.get("data_loss", 0)
    return (
        f"| {label} | {path.stat().st_size} | {same}/{clean.height} | {sev.get('error', 0)} | {loss_rows} "
        f"| {ctx.bytes_skipped} | {crashes} |"
    )


def main() -> None:
    capture = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "fixtures" / "wire" / "librdkafka.pcap"
    clean, _ = ingest(capture)
    print(f"{capture.name}: {capture.stat().st_size} bytes, {clean.height} request/response pairs\n")
    print("| damage | bytes | pairs found | error rows | data-loss rows | bytes skipped | crashes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row("none", clean, capture))
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for rate in (0.001, 0.01, 0.05, 0.1):
            out = work / f"e{rate}.pcap"
            subprocess.run(["editcap", "--seed", "20261126", "-E", str(rate), str(capture), str(out)], check=True)
            print(row(f"editcap -E {rate}", clean, out))
        rng = random.Random(20261126)
        data = capture.read_bytes()
        for _ in range(3):
            keep = rng.randrange(24, len(data))
            out = work / f"cut{keep}.pcap"
            out.write_bytes(data[:keep])
            print(row(f"cut at byte {keep}", clean, out))
        out = work / "dup.pcap"
        subprocess.run(["mergecap", "-F", "pcap", "-w", str(out), str(capture), str(capture)], check=True)
        print(row("every packet twice", clean, out))
        count = int(
            subprocess.run(["capinfos", "-Mc", str(capture)], capture_output=True, text=True).stdout.split()[-1]
        )
        drop = sorted(rng.sample(range(1, count + 1), max(1, count // 20)))
        out = work / "drop.pcap"
        subprocess.run(["editcap", "-F", "pcap", str(capture), str(out), *map(str, drop)], check=True)
        print(row(f"{len(drop)} random packets dropped", clean, out))


if __name__ == "__main__":
    main()
