import datetime as dt

import pytest

from pipeline.errors import ManifestError
from pipeline.manifest import Manifest, parse_manifest


def test_full_manifest_parses_with_types():
    m = parse_manifest(
        """
        broker_id = 7
        kafka_ports = [9092, 9093]
        timezone = "Europe/Warsaw"
        date = "2026-11-20"
        boot_time_ns = 1763651234000000000
        message_id_header = "msg-id"
        slo_ms = 65
        [clock_offsets_ms]
        ebpf = -1.5
        jfr = 2
        [topic_ids]
        "B3_HiNPgSQ6oxG9ZZ6ED5A" = "TestTopicPatient"
        """
    )
    assert m.broker_id == 7
    assert m.kafka_ports == (9092, 9093)
    assert m.date == dt.date(2026, 11, 20)
    assert m.tz is not None and m.tz.key == "Europe/Warsaw"
    assert m.boot_time_ns == 1763651234000000000
    assert m.message_id_header == "msg-id"
    assert m.slo_ms == 65.0
    assert m.offset_ms("ebpf") == -1.5 and m.offset_ms("jfr") == 2.0 and m.offset_ms("capture") == 0.0
    assert m.topic_ids == {"B3_HiNPgSQ6oxG9ZZ6ED5A": "TestTopicPatient"}


def test_empty_manifest_gives_defaults():
    assert parse_manifest("") == Manifest()
    assert Manifest().message_id_header == "message-id" and Manifest().slo_ms == 65.0


def test_toml_date_literal_is_accepted():
    assert parse_manifest("date = 2026-11-20").date == dt.date(2026, 11, 20)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("brokr_id = 1", "unknown key 'brokr_id'"),
        ('broker_id = "7"', "key 'broker_id' must be a non-negative integer"),
        ("kafka_ports = 9092", "key 'kafka_ports' must be a list of TCP ports"),
        ("kafka_ports = [0]", "key 'kafka_ports'"),
        ('timezone = "Mars/Olympus"', "key 'timezone' must be a known IANA time zone"),
        ('date = "20-11-2026"', "key 'date' must be a date YYYY-MM-DD"),
        ("boot_time_ns = -5", "key 'boot_time_ns'"),
        ("slo_ms = true", "key 'slo_ms' must be a positive number"),
        ("[clock_offsets_ms]\nkernel = 3", "unknown key 'clock_offsets_ms.kernel'"),
        ('[clock_offsets_ms]\nebpf = "3"', "key 'clock_offsets_ms.ebpf' must be a number"),
        ("slo_ms = = 3", "not valid TOML"),
    ],
)
def test_manifest_errors_name_the_key(text, fragment):
    with pytest.raises(ManifestError) as err:
        parse_manifest(text)
    assert fragment in str(err.value)
    assert str(err.value).startswith("bundle.toml: ")


def test_segment_records_switch():
    assert Manifest().segment_records is True
    assert parse_manifest("segment_records = false").segment_records is False
    with pytest.raises(ManifestError, match="key 'segment_records' must be true or false"):
        parse_manifest('segment_records = "no"')
