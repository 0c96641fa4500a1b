"""Damaged bytes anywhere in a real capture never crash the wire ingest: every run ends
with rows for what could be read and errors for the rest."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_helpers import FIXTURES

from pipeline.ingest.pcap import read_capture
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext
from pipeline.tables import TABLES

RAW = {
    name: (FIXTURES / name).read_bytes() for name in ("kcat.pcap", "librdkafka_segmented.pcap", "two_interfaces.pcapng")
}


def _run(tmp_path, data: bytes, ports=()):
    path = tmp_path / "damaged.pcap"
    path.write_bytes(data)
    ctx = ParseContext(path, path.name, "t", manifest=Manifest(kafka_ports=ports))
    tables = read_capture(path, ctx)
    for name, frame in tables.items():
        assert frame.schema == TABLES[name].parser_columns
    return tables, ctx


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(RAW)),
    seed=st.integers(0, 2**32 - 1),
    flips=st.integers(1, 120),
    ports=st.sampled_from([(), (29181, 29184, 29185)]),
)
def test_flipped_bytes_never_crash(tmp_path, name, seed, flips, ports):
    rng = random.Random(seed)
    data = bytearray(RAW[name])
    head = 24 if name.endswith(".pcap") else 0
    for _ in range(flips):
        data[rng.randrange(head, len(data))] = rng.randrange(256)
    _run(tmp_path, bytes(data), ports)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(25, len(RAW["librdkafka_segmented.pcap"]) - 1))
def test_any_cut_keeps_earlier_requests(tmp_path, cut):
    tables, ctx = _run(tmp_path, RAW["librdkafka_segmented.pcap"][:cut], (29181,))
    full = read_capture(FIXTURES / "librdkafka_segmented.pcap")["kafka_requests"]
    got = tables["kafka_requests"].filter(tables["kafka_requests"]["complete"])
    # every complete pair read from a prefix is exactly the pair in the whole capture
    assert got.join(full, on=["conn_id", "correlation_id"], how="anti").height == 0
    cols = ["conn_id", "correlation_id", "arrival_at", "end_at"]
    assert got.select(cols).join(full.select(cols), on=cols, how="anti").height == 0
