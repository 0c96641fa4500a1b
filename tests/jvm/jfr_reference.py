"""Helpers to compare our JFR tables with the JDK's own ``jfr print --json``."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl

from pipeline.ingest.jfr import INGESTED_EVENTS, JfrParser
from pipeline.registry import ParseContext
from pipeline.runner import check_frame
from tests.conftest import CORPUS  # noqa: F401 - the JVM tests take it from here

JFR = shutil.which("jfr")

_INSTANT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
_SPAN = re.compile(r"^(-)?PT(?:(\d+)H)?(?:(\d+)M)?(?:(-?\d+)(?:\.(\d+))?S)?$")


def instant_ns(text: str) -> int:
    """``2025-12-22T16:10:09.062979291+01:00`` → ns since the epoch."""
    m = _INSTANT.match(text)
    assert m, text
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    frac = (m.group(2) or "").ljust(9, "0")
    return int(base.timestamp()) * 10**9 + int(frac or 0)


def span_ns(text: str) -> int:
    m = _SPAN.match(text)
    assert m, text
    neg, h, mi, s, frac = m.groups()
    ns = (int(h or 0) * 3600 + int(mi or 0) * 60) * 10**9 + int(s or 0) * 10**9 + int((frac or "").ljust(9, "0") or 0)
    return -ns if neg else ns


def jfr_print(path: Path, events: list[str], depth: int = 8, jfr: str | None = None) -> list[dict]:
    out = subprocess.run(
        [jfr or JFR, "print", "--json", "--stack-depth", str(depth), "--events", ",".join(events), str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)["recording"]["events"]


def ours(path: Path) -> tuple[dict[str, pl.DataFrame], ParseContext]:
    ctx = ParseContext(path, path.name, "test")
    frames: dict[str, list[pl.DataFrame]] = {}
    for table, df in JfrParser().parse(ctx):
        check_frame(JfrParser, table, df)  # the declared contract: columns and types
        frames.setdefault(table, []).append(df)
    return {t: pl.concat(f) for t, f in frames.items()}, ctx


def _thread(v: dict | None) -> tuple:
    if not v:
        return (None, None, None)
    return (v.get("osThreadId"), v.get("javaThreadId"), v.get("javaName") or v.get("osName"))


def _frames(st: dict | None) -> list[str] | None:
    if not st:
        return None
    out = []
    for fr in st["frames"]:
        m = fr["method"]
        cls = (m.get("type") or {}).get("name")
        name = f"{cls.replace('/', '.')}.{m['name']}" if cls else m["name"]
        line = fr.get("lineNumber")
        out.append(f"{name}:{line}" if line is not None and line >= 0 else name)
    return out


def compare(path: Path, depth: int = 8, jfr: str | None = None) -> dict[str, int]:
    """Assert our rows equal jfr print's for every ingested event type; return counts.

    Stacks are compared on the top ``depth`` frames (we keep 8).
    """
    tables, _ctx = ours(path)
    ref = jfr_print(path, list(INGESTED_EVENTS), depth, jfr)
    by_type: dict[str, list[dict]] = {}
    for e in ref:
        by_type.setdefault(e["type"], []).append(e["values"])
    counts = {}
    spec = {
        "monitor_waits": ("jdk.JavaMonitorEnter", "jdk.JavaMonitorWait", "jdk.ThreadPark"),
        "thread_samples": ("jdk.ExecutionSample", "jdk.NativeMethodSample", "profiler.WallClockSample"),
        "jvm_file_writes": ("jdk.FileWrite", "jdk.FileForce"),
    }
    for table, types in spec.items():
        df = tables.get(table)
        for typ in types:
            want = by_type.get(typ, [])
            got = [] if df is None else df.filter(pl.col("event_type") == typ).to_dicts()
            assert len(got) == len(want), (path.name, typ, len(got), len(want))
            # jfr print does not keep file order: pair events by their content
            tk = "sampledThread" if table == "thread_samples" else "eventThread"
            want.sort(
                key=lambda w: (instant_ns(w["startTime"]), span_ns(w.get("duration", "PT0S")), str(_thread(w.get(tk))))
            )
            got.sort(
                key=lambda g: (
                    g.get("at_ns") or g.get("start_ns"),
                    g.get("duration_ns") or 0,
                    str((g["tid"], g["java_thread_id"], g["thread_name"])),
                )
            )
            counts[typ] = len(want)
            for g, w in zip(got, want, strict=True):

                def same(what, a, b, g=g, typ=typ):
                    assert a == b, f"{path.name} {typ} at byte {g['position']}: {what}: ours {a!r} != jfr print {b!r}"

                at = g["at_ns"] if table == "thread_samples" else g["start_ns"]
                same("startTime", at, instant_ns(w["startTime"]))
                thread = w.get("sampledThread") if table == "thread_samples" else w.get("eventThread")
                same("thread", (g["tid"], g["java_thread_id"], g["thread_name"]), _thread(thread))
                frames = _frames(w.get("stackTrace"))
                if frames is not None:  # jfr print leaves a stack null when its pool entry is in another chunk
                    same("stackTrace", g["top_frames"][:depth], frames)
                if table != "thread_samples":
                    same("duration", g["duration_ns"], span_ns(w["duration"]))
                if table == "monitor_waits":
                    cls = w.get("monitorClass") or w.get("parkedClass")
                    same("monitorClass", g["monitor_class"], cls["name"].replace("/", ".") if cls else None)
                    owner = w.get("previousOwner") or w.get("notifier")
                    same("owner", (g["owner_tid"], g["owner_name"]), (_thread(owner)[0], _thread(owner)[2]))
                    if w.get("address") is not None:
                        same(
                            "address",
                            int(g["monitor_address"], 16) if g["monitor_address"] else 0,
                            w["address"] & (2**64 - 1),
                        )
                if table == "thread_samples":
                    same("state", g["state"], w.get("state"))
                if table == "jvm_file_writes":
                    same("path", g["path"], w.get("path"))
                    same("bytes", g["bytes"], w.get("bytesWritten"))
    return counts


def jfr_summary_counts(path: Path) -> dict[str, int] | None:
    """Event counts by type from ``jfr summary`` (None when the JDK cannot read the file)."""
    r = subprocess.run([JFR, "summary", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    counts: dict[str, int] = {}
    table = False
    for line in r.stdout.splitlines():
        if line.startswith("====="):
            table = True
            continue
        parts = line.split()
        if table and len(parts) == 3 and parts[1].isdigit():
            counts[parts[0]] = counts.get(parts[0], 0) + int(parts[1])
    return counts
