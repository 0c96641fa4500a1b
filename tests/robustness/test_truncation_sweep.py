"""Every kind of real file cut at many points, through the whole ingest: it finishes, each cut
file is partial or failed with a positioned error (or skipped with a reason when too little is
left to recognise), and a capture keeps every produce pair completed before the cut."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import duckdb
import polars as pl
import pytest

from pipeline.ingest.pcap import CaptureParser
from pipeline.registry import ParseContext
from pipeline.runner import check_frame

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "fixtures" / "demo"
FILES = {
    "capture/broker.pcap": "pcap",
    "jvm/broker.jfr": "jfr",
    "jvm/threaddump.txt": "threaddump",
    "ebpf/ext4slower.log": "ebpf",
    "segments/topicD-7/00000000000398845686.log": "segment",
}
BINARY = {"pcap", "jfr", "segment"}  # formats whose cut is always detectable
CUTS = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]


def _ingest(bundle: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "-q", "ingest", str(bundle), "-o", str(out), "-j", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120,
    )


@pytest.mark.parametrize("cut", CUTS)
def test_every_kind_cut_short_is_accounted(tmp_path, cut):
    bundle = tmp_path / "bundle"
    (bundle).mkdir()
    shutil.copy(DEMO / "bundle.toml", bundle / "bundle.toml")
    sizes = {}
    for rel in FILES:
        data = (DEMO / rel).read_bytes()
        keep = int(len(data) * cut)
        sizes[rel] = keep
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundle / rel).write_bytes(data[:keep])
    proc = _ingest(bundle, tmp_path / "out")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    with duckdb.connect(str(tmp_path / "out" / "incident.duckdb"), read_only=True) as con:
        arts = con.sql("select artifact_id, path, kind, status, error from artifacts").pl()
        errs = con.sql("select artifact_id, position, severity, what from ingest_errors").pl()
    assert not errs.filter(pl.col("what").is_in(["parser_crash", "parser_bug"])).height
    assert not errs.filter(pl.col("position").is_null() & (pl.col("severity") != "info")).height
    for rel, kind in FILES.items():
        row = arts.filter(pl.col("path") == rel).row(0, named=True)
        mine = errs.filter((pl.col("artifact_id") == row["artifact_id"]) & (pl.col("severity") != "info"))
        if row["status"] == "skipped":  # too little left to recognise: said so, with the reason
            assert row["error"], row
            assert sizes[rel] < 2048, f"{rel} cut at {cut} ({sizes[rel]} bytes) no longer recognised"
            continue
        assert row["kind"] == kind
        if kind in BINARY:  # the cut is said, at its position
            said = errs.filter((pl.col("artifact_id") == row["artifact_id"]) & pl.col("position").is_not_null())
            assert said.height > 0, (rel, cut, row)
            if kind == "segment":  # a last batch cut short is how a crashed broker leaves it: noted
                assert said.filter(pl.col("what") == "truncated_tail").height == 1
            else:
                assert row["status"] in ("partial", "failed"), (rel, cut, row)
        if row["status"] != "ok":
            assert mine.height > 0, (rel, cut, row)


# -- a capture cut at many points keeps every pair completed before the cut ----------------

CAPTURE = REPO / "fixtures" / "wire" / "librdkafka.pcap"
PAIR_KEY = ["conn_id", "correlation_id"]


def _parse(path: Path) -> tuple[pl.DataFrame, ParseContext]:
    ctx = ParseContext(path, path.name, "t")
    frames = [check_frame(CaptureParser, t, f) for t, f in CaptureParser().parse(ctx) if t == "kafka_requests"]
    return (pl.concat(frames) if frames else pl.DataFrame()), ctx


def _record_ends(path: Path) -> list[int]:
    """Byte offset where each packet record of a pcap file ends (1-based packet n at [n-1])."""
    data = path.read_bytes()
    pos, ends = 24, []
    while pos + 16 <= len(data):
        caplen = int.from_bytes(data[pos + 8 : pos + 12], "little" if data[:4] == b"\xd4\xc3\xb2\xa1" else "big")
        pos += 16 + caplen
        ends.append(pos)
    return ends


def test_capture_cut_anywhere_keeps_completed_pairs(tmp_path):
    full, ctx = _parse(CAPTURE)
    assert full.height > 20 and not [e for e in ctx.errors if e.severity != "info"]
    ends = _record_ends(CAPTURE)
    assert ends[-1] == CAPTURE.stat().st_size and len(ends) == len(list(dpkt.pcap.Reader(open(CAPTURE, "rb"))))
    size = CAPTURE.stat().st_size
    for cut in CUTS:
        keep = int(size * cut)
        complete = sum(1 for e in ends if e <= keep)  # packets wholly before the cut
        path = tmp_path / f"cut-{cut}.pcap"
        path.write_bytes(CAPTURE.read_bytes()[:keep])
        got, ctx = _parse(path)
        assert not [e for e in ctx.errors if e.what in ("parser_crash", "parser_bug")]
        done = full.filter(pl.col("response_position") <= complete)
        found = got.join(done.select(PAIR_KEY), on=PAIR_KEY, how="semi") if got.height else got
        assert found.height == done.height, f"cut at {cut}: {done.height - found.height} completed pairs lost"
        if keep not in ends:  # a packet cut in half is reported where it starts
            cut_errors = [e for e in ctx.errors if e.severity != "info" and e.position is not None]
            assert cut_errors, f"cut at {cut} inside packet {complete + 1} is not reported"
