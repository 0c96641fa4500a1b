"""Shared benchmark plumbing: time and peak memory of a command or a function, one results
file per run, and the side-by-side table that ``make bench`` prints and BENCHMARKS.md keeps."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("KF_BENCH_RESULTS", "/tmp/kforensics-bench/results.jsonl"))
TARGETS = RESULTS.with_name("targets.jsonl")  # one line per target judged by a benchmark


@dataclass
class Result:
    stage: str  # what is measured, e.g. "capture → produce pairs"
    tool: str  # "kforensics" or the reference tool's name
    input: str  # short description of the input
    input_bytes: int
    seconds: float
    peak_mb: float
    rate: str  # e.g. "812k packets/s, 41 MB/s"
    note: str = ""


def run_command(
    cmd: list[str], ok_codes: tuple[int, ...] = (0,), **kw: Any
) -> tuple[float, float, subprocess.CompletedProcess | None]:
    """Run ``cmd``; wall seconds and the child's own peak RSS in MB (from wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=kw.pop("stdout", subprocess.DEVNULL), stderr=kw.pop("stderr", subprocess.PIPE), **kw
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in ok_codes:
        err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {err}")
    return seconds, usage.ru_maxrss / 1024, None


def run_function(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``fn`` in a forked child so its peak RSS is its own; returns (seconds, MB, result)."""
    r, w = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            out = json.dumps(fn()).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            out = json.dumps({"error": repr(exc)}).encode()
        os.write(w, out)
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    _, _, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    result = json.loads(b"".join(chunks) or b"null")
    if isinstance(result, dict) and "error" in result:
        raise RuntimeError(result["error"])
    return seconds, usage.ru_maxrss / 1024, result


def record(result: Result) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(asdict(result)) + "\n")
    print(
        f"{result.stage:<34} {result.tool:<22} {result.seconds:>8.2f} s {result.peak_mb:>8.0f} MB  {result.rate}",
        flush=True,
    )


def check(target: str, measured: str, met: bool) -> None:
    """Record one of the targets the benchmarks exist to show, with what was measured."""
    TARGETS.parent.mkdir(parents=True, exist_ok=True)
    with open(TARGETS, "a") as f:
        f.write(json.dumps({"target": target, "measured": measured, "met": met}) + "\n")
    print(f"{'met' if met else 'MISSED':>6}: {target}: {measured}", flush=True)


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def peak_self_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
