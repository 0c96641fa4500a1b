"""Shared helpers of the kernel trace tests: parse a file or text, return frames and errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.ingest.ebpf import FS_WRITES, KERNEL_CALLS, EbpfLogParser
from pipeline.manifest import parse_manifest
from pipeline.registry import IngestError, ParseContext
from pipeline.runner import check_frame
from tests.conftest import CORPUS

REPO = Path(__file__).resolve().parents[2]
EBPF_CORPUS = CORPUS / "ebpf"
REAL = REPO / "fixtures" / "ebpf" / "real"


class Parsed:
    def __init__(self, fs: pl.DataFrame, calls: pl.DataFrame, errors: list[IngestError]) -> None:
        self.fs, self.calls, self.errors = fs, calls, errors

    def errs(self, *severities: str) -> list[IngestError]:
        return [e for e in self.errors if not severities or e.severity in severities]

    def whats(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for e in self.errors:
            out[(e.severity, e.what)] = out.get((e.severity, e.what), 0) + 1
        return out


def parse_file(path: Path, manifest: str = "", hints: dict[str, Any] | None = None) -> Parsed:
    ctx = ParseContext(path, path.name, "test", manifest=parse_manifest(manifest), hints=hints or {})
    frames: dict[str, list[pl.DataFrame]] = {"fs_writes": [], "kernel_calls": []}
    for table, frame in EbpfLogParser().parse(ctx):
        frames[table].append(check_frame(EbpfLogParser, table, frame))
    fs = pl.concat(frames["fs_writes"]) if frames["fs_writes"] else pl.DataFrame(schema=FS_WRITES.parser_columns)
    calls = (
        pl.concat(frames["kernel_calls"])
        if frames["kernel_calls"]
        else pl.DataFrame(schema=KERNEL_CALLS.parser_columns)
    )
    return Parsed(fs, calls, ctx.errors)


def parse_text(tmp_path: Path, text: str, manifest: str = "", hints: dict[str, Any] | None = None) -> Parsed:
    path = tmp_path / "trace.txt"
    path.write_text(text)
    return parse_file(path, manifest, hints)


def at(text: str) -> dt.datetime:
    """A naive UTC instant from ISO text."""
    return dt.datetime.fromisoformat(text)
