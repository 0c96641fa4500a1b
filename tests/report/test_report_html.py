"""report.html and the report command: every section present, or saying why it is not."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import polars as pl
from click.testing import CliRunner
from PIL import Image

from fixtures.report.synthetic import write_incident
from pipeline.report.report import write_report
from tests.report.conftest import colours, tiny_frames

SECTIONS = ["summary", "latency", "slo", "causes", "heatmap", "disk", "worst", "blockers", "bundle"]


def charts_in(page: str) -> dict[str, bytes]:
    found = re.findall(r'<img class="chart" data-chart="([^"]+)" alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    return {name: base64.b64decode(data) for name, data in found}


def assert_not_blank(png: bytes) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 300
    assert colours(pixels) > 20


def test_report_on_a_journal_stall(stall_report, stall_frames):
    path, rep = stall_report
    page = path.read_text()
    assert path.name == "report.html" and page == rep.html
    assert re.findall(r'<section id="([a-z]+)"><h2>', page) == SECTIONS
    slow = stall_frames["attribution"].filter(pl.col("slow"))
    journal = slow.filter(pl.col("root_cause") == "journal_commit").height
    assert f"<h2>{round(100 * journal / slow.height)}% of slow requests waited on a journal commit</h2>" in page
    assert f"<b>{slow.height:,}</b> of 20,000 produce requests" in page
    charts = charts_in(page)
    assert sorted(charts) == ["causes", "disk", "heatmap", "timeline-1", "timeline-2", "timeline-3"]
    for png in charts.values():
        assert_not_blank(png)
    assert rep.missing == []
    assert "trace/jbd2.log" in page and "clock_offset_ms.ebpf" in page
    assert "<h3>Correlation stages run</h3>" in page and "90_attribution" in page
    # Offline: nothing to fetch, and the page forbids fetching.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "default-src 'none'" in page


def test_report_without_correlation_or_traces_says_why(tmp_path):
    out = write_incident(tmp_path / "cap", tiny_frames())
    path, rep = write_report(out)
    page = path.read_text()
    assert "Not shown: correlation has not run: no attribution table, so slow requests have no cause yet." in page
    assert "Not shown: write latency: fs_writes is empty: no traced writes." in page
    assert "Not shown: the artifacts table is empty: nothing was ingested." in page
    assert sorted(charts_in(page)) == ["heatmap", "timeline-1"]  # the two slow requests are 0.1 s apart
    assert "Source: produce_partitions (capture only: correlation has not run)" in page


def test_unanswered_requests_are_counted_aside(tmp_path):
    frames = tiny_frames()
    frames["produce_partitions"] = frames["produce_partitions"].with_columns(
        pl.when(pl.col("correlation_id") <= 2).then(None).otherwise(pl.col("latency_ms")).alias("latency_ms")
    )
    path, rep = write_report(write_incident(tmp_path / "noresp", frames))
    assert rep.percentiles.row(0, named=True)["requests"] == 10
    assert "2 request partitions had no response in the capture and are not counted." in path.read_text()


def test_report_on_an_empty_incident(tmp_path):
    out = write_incident(tmp_path / "empty", {})
    path, rep = write_report(out)
    page = path.read_text()
    assert charts_in(page) == {}
    assert page.count("Not shown: no produce requests: the bundle holds no packet capture.") >= 4
    assert "Nothing to conclude: no data." in page


def test_report_command_formats(cli, tiny_incident):
    result = CliRunner().invoke(cli, ["report", str(tiny_incident), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["scope"] for r in rows] == ["all topics", "b", "a"]
    assert rows[0]["slow"] == 2 and rows[0]["cause_slow_write"] == 1 and rows[0]["cause_monitor_wait"] == 1
    assert rows[2]["cause_slow_write"] == 0
    assert (tiny_incident / "report.html").exists()
    result = CliRunner().invoke(cli, ["report", "-o", str(tiny_incident), "--format", "csv"], catch_exceptions=False)
    assert result.stdout.splitlines()[0] == (
        "scope,requests,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,slow,slow_pct,cause_monitor_wait,cause_slow_write"
    )
    assert result.stdout.splitlines()[1] == "all topics,12,6.5,91.0,189.0,198.9,200.0,2,16.667,1,1"
    page = (tiny_incident / "report.html").read_text()
    assert "<title>Kafka produce latency — broker 3</title>" in page
    assert "<h3>Slow requests by topic and cause</h3>" in page
    assert "<h3>The 2 slowest requests and their evidence chains</h3>" in page
    assert '<td class="chain">journal_commits</td>' in page
    result = CliRunner().invoke(cli, ["report", str(tiny_incident)], catch_exceptions=False)
    assert "2 of 12 produce requests (16.7%) took 65 ms or more" in result.stdout
    assert "Slow requests by cause" in result.stdout


def test_report_command_on_a_missing_directory(cli, tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert (
        str(result.exception)
        == f"no incident.duckdb in {tmp_path / 'nope'}: run `kforensics run BUNDLE -o {tmp_path / 'nope'}` first"
    )


def test_run_report_through_an_open_store(tiny_incident):
    """`run` holds the store open for writing: the report reads through its connection."""
    from pipeline.report.commands import run_report
    from pipeline.store import Store

    (tiny_incident / "report.html").unlink(missing_ok=True)
    with Store(tiny_incident) as store:
        path = run_report(tiny_incident, store.con, quiet=True)
        store.con.execute("select count(*) from attribution").fetchall()  # the connection is still usable
    assert path == tiny_incident / "report.html" and path.stat().st_size > 10_000


def test_report_on_traces_without_a_capture(tmp_path, stall_frames):
    """Only eBPF traces: the disk section is drawn on their own time window, the rest says why."""
    frames = {k: stall_frames[k] for k in ("fs_writes", "kernel_calls")}
    path, rep = write_report(write_incident(tmp_path / "traces", frames))
    page = path.read_text()
    assert sorted(charts_in(page)) == ["disk"]
    assert "Not shown: no produce requests: the bundle holds no packet capture." in page
    start = stall_frames["fs_writes"]["start_at"].min()
    assert f"{start:%Y-%m-%d %H:%M:%S.%f}"[:-3] in page  # the window comes from the traces
