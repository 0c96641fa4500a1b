"""Our JFR reader against the JDK's own `jfr` on every recording of the shared corpus."""

from __future__ import annotations

import os
import subprocess

import pytest

from pipeline.ingest.jfr_format import Recording
from tests.jvm.jfr_reference import CORPUS, JFR, compare, jfr_summary_counts, ours

JFR_DIR = CORPUS / "jfr"
FILES = sorted(JFR_DIR.glob("*.jfr")) if JFR_DIR.is_dir() else []
LEGACY = {"openjdk__jmc__8u60_jfr-v0.9_legacy.jfr", "openjdk__jmc__9u0_jfr-v1.jfr"}
BIG = {"grafana__jfr-parser__async-profiler.jfr"}  # 200k samples: jfr print --json takes long
READABLE = [f for f in FILES if f.name not in LEGACY]

needs_corpus = pytest.mark.skipif(not FILES, reason="shared corpus not present")
needs_jfr = pytest.mark.skipif(JFR is None, reason="JDK jfr tool not installed")


SLOW = os.environ.get("KFORENSICS_SLOW_TESTS") == "1"


def _param(f, skip_big: bool = False):
    marks = [pytest.mark.slow] if f.name in BIG else []
    if skip_big and f.name in BIG and not SLOW:
        marks.append(pytest.mark.skip(reason="jfr print --json of 200k events takes ~20 s: KFORENSICS_SLOW_TESTS=1"))
    return pytest.param(f, id=f.name, marks=marks)


@needs_corpus
@needs_jfr
@pytest.mark.needs_tool
@pytest.mark.parametrize("path", [_param(f) for f in READABLE])
def test_event_counts_equal_jfr_summary(path):
    want = jfr_summary_counts(path)
    assert want is not None, "jfr summary failed"
    data = path.read_bytes()
    rec = Recording(data, [], count_all=True)
    assert not rec.problems
    got = rec.event_type_names()
    # jfr summary counts metadata and checkpoint events under their own names
    got["jdk.Metadata"] = got.pop("#0", 0) + got.pop("jdk.Metadata", 0)
    got["jdk.CheckPoint"] = got.pop("#1", 0) + got.pop("jdk.CheckPoint", 0)
    if path.name == "grafana__jfr-parser__FastSlow_2024_01_16_180855.jfr":
        # Type ids differ between this file's chunks; jfr summary names chunk 2-3's 44
        # jdk.NativeLibrary events with chunk 1's id for jdk.JVMInformation. We read by name.
        assert (got.get("jdk.NativeLibrary"), got.get("jdk.JVMInformation"), want["jdk.JVMInformation"]) == (44, 1, 45)
        got["jdk.JVMInformation"] += got.pop("jdk.NativeLibrary")
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}


@needs_corpus
@needs_jfr
@pytest.mark.needs_tool
@pytest.mark.parametrize("path", [_param(f, skip_big=True) for f in READABLE])
def test_ingested_events_equal_jfr_print(path):
    try:
        counts = compare(path, depth=1 if path.name in BIG else 8)
    except subprocess.CalledProcessError:
        # jfr print itself cannot read this file (FastSlow: async-profiler's WallClockSleeping
        # in a multi-chunk file); jfr summary's counts are checked above.
        pytest.skip("jfr print cannot read this recording")
    assert sum(counts.values()) > 0 or path.name in {
        "grafana__jfr-parser__nativemem.jfr",
        "openjdk__jmc__full_gc_g1.jfr",
        "openjdk__jmc__openjdk8u292.jfr",
    }


@needs_corpus
@pytest.mark.parametrize("name", sorted(LEGACY))
def test_old_formats_are_refused(name):
    tables, ctx = ours(JFR_DIR / name)
    assert tables == {}
    errors = [e for e in ctx.errors if e.severity != "info"]
    assert [(e.what, e.position) for e in errors] == [("unsupported_version", 0)]
    version = "0.9" if "0.9" in name else "1.0"
    assert f"JFR format {version} " in errors[0].message
    assert ctx.bytes_skipped > 0


@needs_corpus
def test_kafka_broker_async_profiler_recording():
    """async-profiler 2.9 on a real Kafka broker: thread pool keyed by Linux TID."""
    tables, ctx = ours(JFR_DIR / "grafana__jfr-parser__cortex-dev-01__kafka-0__cpu__0.jfr")
    s = tables["thread_samples"]
    assert s.height == 478
    assert set(s["state"].unique()) == {"STATE_RUNNABLE"}
    handlers = s.filter(s["thread_name"].str.starts_with("data-plane-kafka-request-handler-"))
    assert handlers.height > 0
    th = tables["jfr_threads"]
    assert th.height == 30
    assert th.filter(th["name"] == "data-plane-kafka-network-thread-0-ListenerName(CLIENT)-PLAINTEXT-5")[
        "os_tid"
    ].to_list() == [1368]
    assert s["position"].is_sorted()  # one event type: file order
