from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl

from pipeline.ingest.pcap import read_capture
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext
from tests.conftest import CORPUS as SHARED_CORPUS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wire"
CORPUS = SHARED_CORPUS / "pcap"

# broker port of every fixture capture (fixtures/wire/make_captures.py)
PORTS = {
    "librdkafka.pcap": 29181,
    "librdkafka_segmented.pcap": 29181,
    "midstream.pcap": 29181,
    "loss.pcap": 29181,
    "reorder.pcap": 29181,
    "librdkafka_v7.pcap": 29182,
    "librdkafka_v7.pcap.gz": 29182,
    "kafka_python.pcap": 29183,
    "kcat.pcap": 29184,
    "kcat_be_ns.pcap": 29184,
    "sll2_ns.pcap": 29185,
}


@cache
def parsed(name: str, ports: tuple[int, ...] = ()) -> tuple[dict[str, pl.DataFrame], ParseContext]:
    """Tables and context of a fixture (or an absolute path), parsed once per test session."""
    path = Path(name) if Path(name).is_absolute() else FIXTURES / name
    ctx = ParseContext(path, path.name, "test", manifest=Manifest(kafka_ports=ports))
    return read_capture(path, ctx), ctx


def errors(ctx: ParseContext) -> list[tuple[str, str]]:
    return [(e.what, e.severity) for e in ctx.errors]
