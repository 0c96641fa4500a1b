"""Report and compare speed on synthetic incidents of growing size.

Builds a journal-stall incident and a clean one per size (fixtures/report/synthetic.py),
then times `report` on the stall incident and `compare` on the pair. Prints one row per
size: requests, seconds to build the database (not part of the report), report seconds,
compare seconds, report size.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Result, peak_self_mb, record  # noqa: E402
from fixtures.report.synthetic import generate, write_incident  # noqa: E402
from pipeline.report.compare import compare_outdirs  # noqa: E402
from pipeline.report.report import write_report  # noqa: E402

SIZES = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]


def main() -> None:
    print(f"{'requests':>10} {'build s':>8} {'report s':>9} {'compare s':>10} {'report.html':>12}")
    for n in SIZES:
        with tempfile.TemporaryDirectory(prefix="kf-bench-") as tmp:
            started = time.perf_counter()
            a = write_incident(Path(tmp) / "ext4", generate(n, 3600.0, stall=True, seed=1))
            b = write_incident(Path(tmp) / "xfs", generate(n, 3600.0, stall=False, seed=2))
            build = time.perf_counter() - started
            started = time.perf_counter()
            path, _ = write_report(a)
            report_s = time.perf_counter() - started
            started = time.perf_counter()
            compare_outdirs([a, b], ["ext4", "xfs"], Path(tmp))
            compare_s = time.perf_counter() - started
            size = path.stat().st_size
        print(f"{n:>10,} {build:>8.1f} {report_s:>9.1f} {compare_s:>10.1f} {size / 1024:>9.0f} KiB")
        record(
            Result(
                "report.html",
                "kforensics",
                f"{n:,} requests",
                0,
                report_s,
                peak_self_mb(),
                f"{n / report_s:,.0f} requests/s",
            )
        )
        record(
            Result(
                "compare (2 incidents)",
                "kforensics",
                f"2 x {n:,} requests",
                0,
                compare_s,
                peak_self_mb(),
                f"{2 * n / compare_s:,.0f} requests/s",
            )
        )


if __name__ == "__main__":
    main()
