"""Incident databases for the report tests, built directly (ingest and correlation not run)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import polars as pl
import pytest

from fixtures.report.synthetic import generate, write_incident
from pipeline.report.commands import compare_command, report_command

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def stall_frames() -> dict[str, pl.DataFrame]:
    return generate(20_000, 120.0, stall=True, seed=3)


@pytest.fixture(scope="session")
def clean_frames() -> dict[str, pl.DataFrame]:
    return generate(20_000, 120.0, stall=False, seed=4)


@pytest.fixture(scope="session")
def stall_incident(tmp_path_factory, stall_frames) -> Path:
    return write_incident(tmp_path_factory.mktemp("ext4-ordered"), stall_frames)


@pytest.fixture(scope="session")
def clean_incident(tmp_path_factory, clean_frames) -> Path:
    return write_incident(tmp_path_factory.mktemp("xfs"), clean_frames)


@pytest.fixture(scope="session")
def stall_report(stall_incident):
    """report.html of the stall incident, rendered once: (path, Report)."""
    from pipeline.report.report import write_report

    return write_report(stall_incident)


@pytest.fixture(scope="session")
def comparison(stall_incident, clean_incident, tmp_path_factory):
    """compare.html of the stall (baseline) and clean incidents, rendered once: (path, Comparison)."""
    from pipeline.report.compare import compare_outdirs

    return compare_outdirs([stall_incident, clean_incident], ["ext4-ordered", "xfs"], tmp_path_factory.mktemp("cmp"))


def colours(pixels) -> int:
    """Distinct RGB colours in an image array (packed to one integer each, fast)."""
    import numpy as np

    rgb = pixels[..., :3].astype(np.uint32)
    return int(np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).size)


T0 = dt.datetime(2026, 11, 20, 12, 0, 0)


def tiny_frames() -> dict[str, pl.DataFrame]:
    """Twelve requests with known latencies: 1..10 ms, then 100 and 200 ms (SLO 65 ms)."""
    lat = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 100.0, 200.0]
    arrival = [T0 + dt.timedelta(milliseconds=100 * i) for i in range(12)]
    frame = pl.DataFrame(
        {
            "conn_id": ["c1"] * 6 + ["c2"] * 6,
            "correlation_id": list(range(1, 13)),
            "client_addr": ["10.0.0.1"] * 6 + ["10.0.0.2"] * 6,
            "client_port": [5000] * 6 + [5001] * 6,
            "topic": ["a"] * 6 + ["b"] * 6,
            "partition": [0] * 12,
            "arrival_at": arrival,
            "end_at": [a + dt.timedelta(milliseconds=x) for a, x in zip(arrival, lat, strict=True)],
            "latency_ms": lat,
        },
        schema_overrides={"correlation_id": pl.Int32, "client_port": pl.Int32, "partition": pl.Int32},
    )
    return {"produce_partitions": frame}


def tiny_attribution(frame: pl.DataFrame) -> pl.DataFrame:
    slow = frame["latency_ms"] >= 65
    return frame.with_columns(
        pl.Series("slow", slow),
        pl.when(slow & (pl.col("latency_ms") > 150))
        .then(pl.lit("slow_write"))
        .when(slow)
        .then(pl.lit("monitor_wait"))
        .alias("cause"),
        pl.when(slow & (pl.col("latency_ms") > 150))
        .then(pl.lit("journal_commit"))
        .otherwise(pl.lit("none"))
        .alias("root_cause"),
        pl.when(slow).then(pl.lit(4462)).cast(pl.Int64).alias("write_tid"),
        pl.when(slow).then(pl.col("latency_ms") - 1).alias("write_latency_ms"),
        pl.lit(4484, pl.Int64).alias("handler_tid"),
        pl.lit("data-plane-kafka-request-handler-24").alias("handler_thread"),
        pl.when(pl.col("latency_ms") == 100).then(pl.lit(4462)).cast(pl.Int64).alias("blocker_tid"),
        pl.when(pl.col("latency_ms") == 100).then(pl.lit("data-plane-kafka-request-handler-2")).alias("blocker_thread"),
        pl.lit(None, pl.Datetime("us")).alias("commit_start_at"),
        pl.lit(None, pl.Float64).alias("commit_latency_ms"),
        pl.when(slow).then(pl.col("latency_ms") - 2).otherwise(0.0).alias("explained_ms"),
        pl.when(slow).then(pl.lit("write by handler-2 was slow")).alias("chain"),
        # as the correlation writes it: a list of the evidence kinds that were absent
        pl.when(pl.col("latency_ms") == 100)
        .then(pl.lit(["journal_commits"], pl.List(pl.Utf8)))
        .otherwise(pl.lit([], pl.List(pl.Utf8)))
        .alias("missing"),
    )


@pytest.fixture
def tiny_incident(tmp_path) -> Path:
    frames = tiny_frames()
    frames["attribution"] = tiny_attribution(frames["produce_partitions"])
    frames["settings"] = pl.DataFrame({"slo_ms": [65.0], "broker_id": [3]})
    return write_incident(tmp_path / "tiny", frames)


@pytest.fixture(scope="session")
def cli() -> click.Group:
    """The two commands on a group of their own, as cli.py registers them."""

    @click.group()
    def group() -> None:
        """Test group."""

    group.add_command(report_command)
    group.add_command(compare_command)
    return group
