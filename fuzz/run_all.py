"""``make fuzz``: atheris on every parser for FUZZ_SECONDS each, then a summary table
(inputs tried, coverage reached, crashes) that is also written to ROBUSTNESS.md."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz.harness import REPO, kinds, seeds  # noqa: E402

MARK = "<!-- fuzz-run -->"
LOGS = Path("/tmp/kforensics-fuzz")


def main() -> int:
    seconds = int(os.environ.get("FUZZ_SECONDS", "60"))
    LOGS.mkdir(parents=True, exist_ok=True)
    rows, failed = [], []
    for kind in kinds():
        log = LOGS / f"{kind}.log"
        print(f"== fuzz {kind} for {seconds} s", flush=True)
        with open(log, "w") as f:
            rc = subprocess.run(
                [
                    sys.executable,
                    str(REPO / "fuzz" / "fuzz_parser.py"),
                    kind,
                    f"-max_total_time={seconds}",
                    "-timeout=20",
                    "-rss_limit_mb=3072",
                    "-print_final_stats=1",
                    f"-artifact_prefix={LOGS}/{kind}-",
                ],
                cwd=REPO,
                stdout=f,
                stderr=subprocess.STDOUT,
            ).returncode
        text = log.read_text(errors="replace")
        runs = re.findall(r"Done (\d+) runs", text) or re.findall(r"#(\d+)\s", text)
        cov = re.findall(r"cov: (\d+)", text)
        ft = re.findall(r"ft: (\d+)", text)
        rows.append(
            (
                kind,
                len(seeds(kind)),
                runs[-1] if runs else "?",
                cov[-1] if cov else "?",
                ft[-1] if ft else "?",
                "ok" if rc == 0 else f"FAILED (see {log})",
            )
        )
        if rc != 0:
            failed.append(kind)
            print(text[-3000:], file=sys.stderr)
    table = [
        "| parser | seeds | inputs tried | coverage (edges) | features | result |",
        "|---|---:|---:|---:|---:|---|",
    ]
    table += [f"| {k} | {s} | {r} | {c} | {f} | {res} |" for k, s, r, c, f, res in rows]
    print("\n".join(table))
    doc = REPO / "ROBUSTNESS.md"
    text = doc.read_text() if doc.exists() else "# Robustness\n\n## Latest fuzzing run\n\n" + MARK + "\n"
    head = text.split(MARK)[0]
    tail = text.split(MARK, 2)[2] if text.count(MARK) >= 2 else ""
    doc.write_text(
        head
        + MARK
        + f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {seconds} s per parser:\n\n"
        + "\n".join(table)
        + "\n"
        + MARK
        + tail
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
