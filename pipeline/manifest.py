"""``bundle.toml``: the optional manifest of a bundle, validated key by key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ManifestError

MANIFEST_NAME = "bundle.toml"

# Sources whose clock can be shifted by [clock_offsets_ms].
CLOCK_SOURCES = ("capture", "ebpf", "jfr", "threaddump", "segment")

DEFAULT_MESSAGE_ID_HEADER = "message-id"
DEFAULT_SLO_MS = 65.0


@dataclass(frozen=True)
class Manifest:
    """What the responder told us about the bundle. Every field is optional."""

    broker_id: int | None = None
    kafka_ports: tuple[int, ...] = ()
    timezone: str | None = None
    date: dt.date | None = None
    boot_time_ns: int | None = None
    message_id_header: str = DEFAULT_MESSAGE_ID_HEADER
    slo_ms: float = DEFAULT_SLO_MS
    clock_offsets_ms: dict[str, float] = field(default_factory=dict)
    topic_ids: dict[str, str] = field(default_factory=dict)  # topic id (base64 or uuid) -> name
    description: str | None = None
    incident: str | None = None  # id of the incident, for fleet merges (default: bundle name)
    segment_records: bool = True  # False: read segment batch headers only (no segment_records rows)

    @property
    def tz(self) -> zoneinfo.ZoneInfo | None:
        return zoneinfo.ZoneInfo(self.timezone) if self.timezone else None

    def offset_ms(self, source: str) -> float:
        return self.clock_offsets_ms.get(source, 0.0)

    def to_json(self) -> str:
        """The manifest with defaults filled in, as stored in the ``bundle`` table."""
        d = dataclasses.asdict(self)
        d["date"] = self.date.isoformat() if self.date else None
        d["kafka_ports"] = list(self.kafka_ports)
        return json.dumps(d, sort_keys=True)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def parse_manifest(text: str, where: str = MANIFEST_NAME) -> Manifest:
    """Parse and validate manifest text; raise :class:`ManifestError` naming the bad key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where}: not valid TOML: {exc}") from None

    def bad(key: str, expected: str) -> ManifestError:
        return ManifestError(f"{where}: key '{key}' must be {expected}, got {raw[key]!r}")

    known = {
        "broker_id",
        "kafka_ports",
        "timezone",
        "date",
        "boot_time_ns",
        "message_id_header",
        "slo_ms",
        "clock_offsets_ms",
        "topic_ids",
        "description",
        "incident",
        "segment_records",
    }
    for key in raw:
        if key not in known:
            raise ManifestError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    if "broker_id" in raw:
        if not _is_int(raw["broker_id"]) or raw["broker_id"] < 0:
            raise bad("broker_id", "a non-negative integer")
        out["broker_id"] = raw["broker_id"]
    if "kafka_ports" in raw:
        ports = raw["kafka_ports"]
        if not isinstance(ports, list) or not all(_is_int(p) and 0 < p < 65536 for p in ports):
            raise bad("kafka_ports", "a list of TCP ports (1-65535)")
        out["kafka_ports"] = tuple(ports)
    if "timezone" in raw:
        tz = raw["timezone"]
        if not isinstance(tz, str):
            raise bad("timezone", 'an IANA time zone name such as "Europe/Warsaw"')
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise bad("timezone", "a known IANA time zone name") from None
        out["timezone"] = tz
    if "date" in raw:
        d = raw["date"]
        if isinstance(d, str):
            try:
                d = dt.date.fromisoformat(d)
            except ValueError:
                raise bad("date", "a date YYYY-MM-DD") from None
        if not isinstance(d, dt.date) or isinstance(d, dt.datetime):
            raise bad("date", "a date YYYY-MM-DD")
        out["date"] = d
    if "boot_time_ns" in raw:
        if not _is_int(raw["boot_time_ns"]) or raw["boot_time_ns"] <= 0:
            raise bad("boot_time_ns", "a positive integer (ns since the Unix epoch)")
        out["boot_time_ns"] = raw["boot_time_ns"]
    if "message_id_header" in raw:
        if not isinstance(raw["message_id_header"], str) or not raw["message_id_header"]:
            raise bad("message_id_header", "a non-empty string")
        out["message_id_header"] = raw["message_id_header"]
    if "slo_ms" in raw:
        if not _is_number(raw["slo_ms"]) or raw["slo_ms"] <= 0:
            raise bad("slo_ms", "a positive number of milliseconds")
        out["slo_ms"] = float(raw["slo_ms"])
    if "description" in raw:
        if not isinstance(raw["description"], str):
            raise bad("description", "a string")
        out["description"] = raw["description"]
    if "segment_records" in raw:
        if not isinstance(raw["segment_records"], bool):
            raise bad("segment_records", "true or false")
        out["segment_records"] = raw["segment_records"]
    if "incident" in raw:
        inc = raw["incident"]
        if not isinstance(inc, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", inc):
            raise bad("incident", "an id of letters, digits, '.', '_' or '-'")
        out["incident"] = inc
    if "clock_offsets_ms" in raw:
        offsets = raw["clock_offsets_ms"]
        if not isinstance(offsets, dict):
            raise bad("clock_offsets_ms", "a table of source = milliseconds")
        for src, ms in offsets.items():
            if src not in CLOCK_SOURCES:
                raise ManifestError(
                    f"{where}: unknown key 'clock_offsets_ms.{src}' (sources: {', '.join(CLOCK_SOURCES)})"
                )
            if not _is_number(ms):
                raise ManifestError(f"{where}: key 'clock_offsets_ms.{src}' must be a number, got {ms!r}")
        out["clock_offsets_ms"] = {k: float(v) for k, v in offsets.items()}
    if "topic_ids" in raw:
        ids = raw["topic_ids"]
        if not isinstance(ids, dict) or not all(isinstance(v, str) for v in ids.values()):
            raise bad("topic_ids", "a table of topic id = topic name")
        out["topic_ids"] = dict(ids)
    return Manifest(**out)


def load_manifest(path: Path | None) -> Manifest:
    if path is None:
        return Manifest()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{path.name}: not UTF-8 text") from None
    return parse_manifest(text, where=path.name)
