"""``make bench``: run every bench/bench_*.py, then print the targets they judged and one
side-by-side table, and write both to BENCHMARKS.md under "Latest run"."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import REPO, RESULTS, TARGETS, machine  # noqa: E402

MARK = "<!-- latest-run -->"


def main() -> int:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("")
    TARGETS.write_text("")
    scripts = sorted((REPO / "bench").glob("bench_*.py"))
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=REPO).returncode != 0:
            failed.append(script.name)
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    table = [
        "| stage | tool | input | size | time | rate | peak memory | note |",
        "|---|---|---|---:|---:|---|---:|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['stage']} | {r['tool']} | {r['input']} | {r['input_bytes'] / 1e6:,.1f} MB | "
            f"{r['seconds']:.2f} s | {r['rate']} | {r['peak_mb']:,.0f} MB | {r['note']} |"
        )
    targets = [json.loads(line) for line in TARGETS.read_text().splitlines() if line.strip()]
    verdicts = ["| target | measured | met |", "|---|---|---|"]
    verdicts += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in targets]
    section = "\n".join(
        [MARK, f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()}.", "", *verdicts, "", *table, ""]
    )
    print("\n".join(table))
    print("\n".join(["", *verdicts]))
    bench_md = REPO / "BENCHMARKS.md"
    text = bench_md.read_text() if bench_md.exists() else "# Benchmarks\n\n## Latest run\n\n" + MARK + "\n"
    head = text.split(MARK)[0]
    bench_md.write_text(head + section)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
