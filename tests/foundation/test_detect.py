"""Detection by content on files real tools produced (the shared corpus)."""

import shutil
from pathlib import Path

import pytest

from pipeline.registry import Probe, detect
from tests.conftest import corpus_file


@pytest.mark.parametrize(
    ("parts", "kind"),
    [
        (("pcap", "arkime__arkime__kafka.pcap"), "pcap"),
        (("pcap", "deepflowio__deepflow__00-produce-v2.pcap"), "pcap"),
        (("pcap", "realjimmy__sample-captures__kafka-testcases-v4_produce.pcapng"), "pcap"),
        (("jfr", "grafana__jfr-parser__async-profiler.jfr"), "jfr"),
        (("jfr", "openjdk__jmc__io_test.jfr"), "jfr"),
        (("jstack", "irockel__tda__java11dump.log"), "threaddump"),
        (("jstack", "irockel__tda__java21dump.log"), "threaddump"),
        (("jstack", "irockel__tda__java8dump.log"), "threaddump"),
        (("ebpf", "iovisor__bcc__ext4slower_example.txt"), "ebpf"),
        (("ebpf", "iovisor__bcc__funcslower_example.txt"), "ebpf"),
    ],
)
def test_corpus_files_are_detected_by_content(parts, kind, tmp_path):
    src = corpus_file(*parts)
    renamed = tmp_path / "no-telling-name.bin"  # detection must not rely on the name
    shutil.copy(src, renamed)
    parser = detect(Probe.of(renamed))
    assert parser is not None and parser.kind == kind


def test_segment_detected_in_partition_directory(tmp_path):
    src = corpus_file("segment", "Niloufar1171__LDI-POC__TestTopicPatient-0_00000000000000000000.log")
    seg = tmp_path / "TestTopicPatient-0" / "00000000000000000000.log"
    seg.parent.mkdir()
    shutil.copy(src, seg)
    parser = detect(Probe.of(seg, "TestTopicPatient-0/00000000000000000000.log"))
    assert parser is not None and parser.kind == "segment"


def test_gzip_capture_detected_through_compression(tmp_path):
    import gzip

    src = corpus_file("pcap", "arkime__arkime__kafka.pcap")
    gz = tmp_path / "cap.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    probe = Probe.of(gz)
    assert probe.gzipped and detect(probe).kind == "pcap"


def test_prose_and_yaml_are_not_detected(tmp_path):
    src = corpus_file("ebpf", "cloudflare__ebpf_exporter__biolatency.yaml")
    assert detect(Probe.of(src)) is None


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("wire/librdkafka.pcap", "pcap"),  # tcpdump of librdkafka producing to the test responder
        ("wire/kafka_python.pcap", "pcap"),  # tcpdump of kafka-python
        ("wire/two_interfaces.pcapng", "pcap"),
        ("wire/librdkafka_v7.pcap.gz", "pcap"),
        ("jvm/generated/kafka-lock-sim-jdk17.jfr", "jfr"),  # the JDK's own recording
        ("jvm/generated/kafka-lock-sim-jdk17.jstack-l.txt", "threaddump"),  # jstack -l
        ("jvm/generated/kafka-lock-sim-jdk17.stdout.log", "threaddump"),  # kill -3 in a JVM's stdout
        ("ebpf/real/fs_writes.txt", "ebpf"),  # bpftrace on a loop-mounted ext4 here
        ("ebpf/real/journal.txt", "ebpf"),
    ],
)
def test_files_made_here_by_real_tools_are_detected(path, kind, tmp_path):
    renamed = tmp_path / "artifact"
    shutil.copy(FIXTURES / path, renamed)
    parser = detect(Probe.of(renamed))
    assert parser is not None and parser.kind == kind
