"""compare: a journal-stall broker against a clean one, the seed's before/after table."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
from click.testing import CliRunner

from fixtures.report.synthetic import write_incident
from pipeline.errors import UsageError
from pipeline.report.compare import compare_outdirs
from tests.report.conftest import tiny_frames


def _slow(frames, slo=65.0) -> int:
    return frames["attribution"].filter(pl.col("latency_ms") >= slo).height


def test_compare_stall_against_clean(comparison, stall_frames, clean_frames):
    path, comp = comparison
    assert path.name == "compare.html" and path.read_text() == comp.html
    before, after = _slow(stall_frames), _slow(clean_frames)
    assert comp.side["slow"].to_list() == [before, after]
    change = 100.0 * (after - before) / before
    assert comp.side["slow_change_pct"].to_list() == [None, pytest.approx(change)]
    assert change < -50  # the clean broker has far fewer violations
    assert comp.side["slow_pct"].to_list() == [
        pytest.approx(100 * before / 20_000),
        pytest.approx(100 * after / 20_000),
    ]
    assert comp.headlines[0].startswith(
        f"<b>xfs</b>: {abs(change):.0f}% fewer requests over the 65 ms SLO than ext4-ordered ({before:,} → {after:,};"
    )
    causes = comp.causes.group_by("label", "cause").agg(pl.col("requests").sum()).sort("label", "cause")
    want = (
        pl.concat(
            [
                f["attribution"].filter(pl.col("slow")).group_by("cause").len().with_columns(label=pl.lit(label))
                for label, f in (("ext4-ordered", stall_frames), ("xfs", clean_frames))
            ]
        )
        .select("label", "cause", pl.col("len").cast(pl.Int64).alias("requests"))
        .sort("label", "cause")
    )
    assert causes.rows() == want.rows()
    assert comp.side["top_cause"].to_list()[1] in ("queue_wait", "unexplained")
    assert comp.side["max_commit_ms"][0] > 100 > comp.side["max_commit_ms"][1]
    page = path.read_text()
    assert re.findall(r'data-chart="([^"]+)"', page) == ["distributions", "heatmaps", "cause_bars"]
    assert "Fewest SLO violations: xfs" in page


def test_compare_uses_one_slo(stall_incident, clean_incident, stall_frames, clean_frames, tmp_path):
    _, comp = compare_outdirs([stall_incident, clean_incident], ["a", "b"], tmp_path, slo_ms=500.0)
    assert comp.side["slow"].to_list() == [_slow(stall_frames, 500.0), _slow(clean_frames, 500.0)]
    assert comp.slo_ms == 500.0


def test_compare_with_an_uncorrelated_incident(stall_incident, tmp_path):
    cap = write_incident(tmp_path / "cap", tiny_frames())
    path, comp = compare_outdirs([stall_incident, cap], ["stall", "capture-only"], tmp_path)
    assert comp.side["requests"].to_list() == [20_000, 12]
    assert comp.side["slow"][1] == 2 and comp.side["top_cause"][1] is None
    assert "capture-only: causes not shown: correlation has not run: no attribution table" in path.read_text()
    # 20,000 against 12 requests: the headline compares shares, not counts
    before = 100 * comp.side["slow"][0] / 20_000
    rate = 100 * (100 * 2 / 12 - before) / before
    assert comp.headlines[0].startswith(
        f"<b>capture-only</b>: {abs(rate):.0f}% {'lower' if rate < 0 else 'higher'} share of requests over the 65 ms SLO"
    )


def test_compare_command(cli, stall_incident, clean_incident, tmp_path):
    args = ["compare", str(stall_incident), str(clean_incident), "-l", "ext4-ordered", "-l", "xfs", "-o", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["label"] for r in rows] == ["ext4-ordered", "xfs"]
    assert rows[0]["slow_change_pct"] is None and rows[1]["slow_change_pct"] < -50
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "fewer requests over the 65 ms SLO than ext4-ordered" in result.stdout
    assert "Slow requests by cause" in result.stdout
    assert (tmp_path / "compare.html").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-l", "one"], "1 --label given for 2 incidents: give one per incident or none"),
        (["-l", "x", "-l", "x"], "labels must differ: x, x (use --label)"),
        (["--slo-ms", "0"], "--slo-ms must be positive"),
    ],
)
def test_compare_usage_errors(cli, stall_incident, clean_incident, tmp_path, extra, message):
    result = CliRunner().invoke(cli, ["compare", str(stall_incident), str(clean_incident), "-o", str(tmp_path), *extra])
    assert isinstance(result.exception, UsageError) and str(result.exception) == message
    result = CliRunner().invoke(cli, ["compare", str(stall_incident)])
    assert str(result.exception) == "compare needs at least two incident directories"
