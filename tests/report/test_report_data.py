"""The report's queries: exact values on a hand-made incident, cross-checks on synthetic ones."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import polars as pl
import pytest

from fixtures.report.synthetic import write_incident
from pipeline.report.data import Incident, Missing, nice_bin_s
from pipeline.store import DB_NAME
from tests.report.conftest import tiny_frames


def _open(outdir) -> Incident:
    return Incident(duckdb.connect(str(outdir / DB_NAME), read_only=True), outdir.name)


def test_percentiles_exact_on_known_latencies(tiny_incident):
    inc = _open(tiny_incident)
    frame, source = inc.percentiles()
    assert source == "attribution (correlated)"
    rows = {r["scope"]: r for r in frame.iter_rows(named=True)}
    # 12 latencies 1..10, 100, 200 ms; linear interpolation between closest ranks.
    assert rows["all topics"] == {
        "scope": "all topics",
        "requests": 12,
        "p50_ms": pytest.approx(6.5),
        "p90_ms": pytest.approx(91.0),
        "p99_ms": pytest.approx(189.0),
        "p999_ms": pytest.approx(198.9),
        "max_ms": 200.0,
        "slow": 2,
        "slow_pct": pytest.approx(100 * 2 / 12),
    }
    assert rows["a"]["p50_ms"] == pytest.approx(3.5) and rows["a"]["slow"] == 0
    assert rows["b"]["requests"] == 6 and rows["b"]["slow"] == 2 and rows["b"]["max_ms"] == 200.0
    assert frame["scope"].to_list() == ["all topics", "b", "a"]  # topics with most violations first


def test_causes_and_settings_exact(tiny_incident):
    inc = _open(tiny_incident)
    assert inc.slo_ms == 65.0 and inc.settings()["broker_id"] == 3
    causes = inc.causes()
    assert causes.select("cause", "root_cause", "requests", "pct_of_slow").rows() == [
        ("monitor_wait", "none", 1, 50.0),
        ("slow_write", "journal_commit", 1, 50.0),
    ]
    assert causes["explained_pct"].to_list() == [pytest.approx(98.0), pytest.approx(99.0)]
    counts = inc.cause_counts().sort("scope", "cause").rows()
    assert counts == [
        ("all topics", "monitor_wait", 1),
        ("all topics", "slow_write", 1),
        ("b", "monitor_wait", 1),
        ("b", "slow_write", 1),
    ]
    threads = inc.blockers()["threads"]
    assert threads.select("role", "tid", "thread", "slow_requests").rows() == [
        ("own slow write", 4462, "data-plane-kafka-request-handler-2", 1),
        ("held the lock", 4462, "data-plane-kafka-request-handler-2", 1),
    ]


def test_key_value_settings_and_override(tmp_path):
    frames = tiny_frames()
    frames["settings"] = pl.DataFrame({"key": ["slo_ms", "clock_offset_ms.ebpf"], "value": ["5", "-2.5"]})
    inc = _open(write_incident(tmp_path / "kv", frames))
    assert inc.slo_ms == 5.0 and inc.slo_source == "from the correlation settings"
    frame, source = inc.percentiles()
    assert source.startswith("produce_partitions")
    assert frame.row(0, named=True)["slow"] == 8  # 5..10, 100, 200 ms
    assert inc.clock_offsets().rows() == [("clock_offset_ms.ebpf", "-2.5")]
    inc.slo_override = 100.0
    assert inc.percentiles()[0].row(0, named=True)["slow"] == 2


def test_capture_only_incident_says_why(tmp_path):
    inc = _open(write_incident(tmp_path / "cap", tiny_frames()))
    assert isinstance(inc.causes(), Missing)
    assert inc.causes().reason == "correlation has not run: no attribution table, so slow requests have no cause yet"
    assert inc.blockers()["threads"].reason == "correlation has not run: no attribution table"
    assert inc.clock_offsets().reason.startswith("correlation has not run: no settings or clock_offsets table")
    assert inc.slo_ms == 65.0 and inc.slo_source.startswith("default")
    disk = inc.disk_series()
    assert disk["writes"].reason == "fs_writes is empty: no traced writes"
    assert disk["commits"].reason == "kernel_calls holds no journal commit (jbd2_*commit*) calls"
    assert inc.episodes()[0]["latency_ms"] == 200.0


def test_empty_incident_says_why(tmp_path):
    inc = _open(write_incident(tmp_path / "empty", {}))
    assert inc.percentiles().reason == "no produce requests: the bundle holds no packet capture"
    assert inc.window().reason == "no produce requests: the bundle holds no packet capture"
    assert inc.artifacts().reason == "the artifacts table is empty: nothing was ingested"
    assert inc.disk_summary().reason == "the eBPF traces hold no calls"


def test_synthetic_percentiles_match_numpy(stall_incident, stall_frames):
    inc = _open(stall_incident)
    frame, _ = inc.percentiles()
    lat = stall_frames["attribution"]["latency_ms"].to_numpy()
    row = frame.row(0, named=True)
    assert row["requests"] == lat.size == 20_000
    expect = np.quantile(lat, [0.5, 0.9, 0.99, 0.999])
    assert [row[c] for c in ("p50_ms", "p90_ms", "p99_ms", "p999_ms")] == pytest.approx(expect.tolist(), rel=1e-9)
    assert row["slow"] == int((lat >= 65).sum())
    causes = inc.causes()
    want = (
        stall_frames["attribution"]
        .filter(pl.col("slow"))
        .group_by("cause", "root_cause")
        .len()
        .sort("len", "cause", descending=[True, False])
    )
    assert causes.select("cause", "root_cause", "requests").rows() == want.rows()


def test_heatmap_and_disk_series_cover_everything(stall_incident, stall_frames):
    inc = _open(stall_incident)
    w = inc.window()
    assert w.bin_s == 0.5  # 120 s / 240 bins
    cells = inc.heatmap()
    assert cells["n"].sum() == 20_000
    assert cells["tb"].min() >= 0 and cells["tb"].max() <= int(w.seconds / w.bin_s)
    disk = inc.disk_series()
    assert disk["writes"]["max_ms"].max() == pytest.approx(stall_frames["fs_writes"]["latency_ms"].max())
    assert disk["writes"]["writes"].sum() == 20_000
    commits = stall_frames["kernel_calls"].filter(pl.col("func") == "jbd2_journal_commit_transaction")
    assert disk["commits"]["calls"].sum() == commits.height
    assert disk["commits"]["max_ms"].max() == pytest.approx(commits["latency_ms"].max())


def test_episodes_are_distinct_and_timeline_holds_the_evidence(stall_incident, stall_frames):
    inc = _open(stall_incident)
    eps = inc.episodes(3)
    assert len(eps) == 3
    assert eps[0]["latency_ms"] == stall_frames["attribution"]["latency_ms"].max()
    for a in eps:
        for b in eps:
            if a is not b:
                assert a["arrival_at"] > b["end_at"] + dt.timedelta(seconds=1) or a["end_at"] < b[
                    "arrival_at"
                ] - dt.timedelta(seconds=1)
    tl = inc.timeline(eps[0])
    focus = tl["requests"].filter(
        (pl.col("conn_id") == eps[0]["conn_id"]) & (pl.col("correlation_id") == eps[0]["correlation_id"])
    )
    assert focus.height == 1
    commits = tl["kernel"].filter(pl.col("func") == "jbd2_journal_commit_transaction")
    assert commits.height == 1 and commits["latency_ms"][0] == pytest.approx(eps[0]["commit_latency_ms"])
    slow_writes = tl["writes"].filter(pl.col("latency_ms") >= 65)
    assert slow_writes["tid"].to_list() == [eps[0]["write_tid"]]
    assert set(tl["waits"]["tid"].to_list()) <= set(tl["requests"]["handler_tid"].to_list())


@pytest.mark.parametrize(("seconds", "width"), [(120, 0.5), (600, 5.0), (3600, 20.0), (0.2, 0.001), (86400, 500.0)])
def test_bin_widths_are_round(seconds, width):
    assert nice_bin_s(seconds) == width


def test_a_big_stall_does_not_hide_the_next_one(tmp_path):
    """600 victims of one stall, then three of a smaller one 10 s later: two timelines."""
    t0 = dt.datetime(2026, 11, 20, 12, 0, 0)
    n = 603
    arrival = [t0 + dt.timedelta(milliseconds=i) for i in range(600)] + [
        t0 + dt.timedelta(seconds=10, milliseconds=i) for i in range(3)
    ]
    lat = [900.0 - i for i in range(600)] + [70.0, 71.0, 72.0]
    frame = pl.DataFrame(
        {
            "conn_id": [f"c{i}" for i in range(n)],
            "correlation_id": [1] * n,
            "topic": ["t"] * n,
            "partition": [0] * n,
            "arrival_at": arrival,
            "end_at": [a + dt.timedelta(milliseconds=x) for a, x in zip(arrival, lat, strict=True)],
            "latency_ms": lat,
        },
        schema_overrides={"correlation_id": pl.Int32, "partition": pl.Int32},
    )
    inc = _open(write_incident(tmp_path / "two", {"produce_partitions": frame}))
    eps = inc.episodes(3)
    assert [(e["conn_id"], e["latency_ms"]) for e in eps] == [("c0", 900.0), ("c602", 72.0)]
