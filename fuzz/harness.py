"""Run any registered parser on arbitrary bytes, within a time budget, and judge it.

A parser passes on an input when nothing escapes it (no ``parser_crash`` or
``parser_bug`` rows: every rejection is a recorded error), every error or data-loss row
has a position, and it finishes within the budget. Seeds are found by content: every file of
the shared corpus and of ``fixtures/`` that detection assigns to a kind.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.manifest import Manifest
from pipeline.registry import ParseContext, Parser, Probe, detect, parsers
from pipeline.runner import ParseOutcome, parse_artifact

REPO = Path(__file__).resolve().parents[1]
# The shared corpus sits beside the checkout; KFORENSICS_CORPUS points elsewhere (a worktree).
CORPUS = Path(os.environ.get("KFORENSICS_CORPUS") or REPO.parent / "shared" / "corpus")
# Names under which inputs are written: some kinds are recognised by their path too.
FILENAMES = {"segment": "fuzztopic-3/00000000000000000000.log"}
# A manifest that anchors every clock, so time-of-day and boot-relative lines are parsed.
FUZZ_MANIFEST = Manifest(date=dt.date(2026, 11, 20), timezone="UTC", boot_time_ns=1_763_600_000_000_000_000)
MAX_SEED_BYTES = 256 * 1024


class Hang(BaseException):
    """The parser ran past its time budget (BaseException: parsers cannot swallow it)."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    def alarm(signum, frame):  # noqa: ARG001
        raise Hang(f"no result within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def parser_for(kind: str) -> type[Parser]:
    for p in parsers():
        if p.kind == kind:
            return p
    raise KeyError(f"no parser of kind {kind}")


def parse_bytes(
    kind: str, data: bytes, workdir: Path, budget_s: float = 10.0, manifest: Manifest = FUZZ_MANIFEST
) -> ParseOutcome:
    """Parse ``data`` as ``kind``; rows are counted, not kept."""
    parser = parser_for(kind)
    name = FILENAMES.get(kind, "input.bin")
    path = workdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ctx = ParseContext(path, name, "fuzz", manifest, {})
    with time_budget(budget_s):
        return parse_artifact(parser, ctx, lambda table, frame: None)


def problems(outcome: ParseOutcome) -> list[str]:
    """What makes an outcome a failure of the parser (empty list: it behaved)."""
    out = [f"{e.what}: {e.message}" for e in outcome.errors if e.what in ("parser_crash", "parser_bug")]
    out += [
        f"error without position: {e.what}: {e.message}"
        for e in outcome.errors
        if e.position is None and e.severity != "info"  # file-level notes need no position
    ]
    return out


def seeds(kind: str, roots: tuple[Path, ...] = (CORPUS, REPO / "fixtures")) -> list[Path]:
    """Files under ``roots`` that detection assigns to ``kind``, smallest first."""
    found = []
    for root in roots:
        if not root.is_dir():
            continue
        for p in root.rglob("*"):
            if not p.is_file() or p.stat().st_size > MAX_SEED_BYTES or "generated" in p.parts:
                continue
            name = p.relative_to(root).as_posix()
            if kind == "segment" and p.suffix == ".log" and "-" not in p.parent.name:
                name = FILENAMES["segment"]  # corpus segments are stored with flattened names
            try:
                parser = detect(Probe.of(p, name))
            except OSError:
                continue
            if parser is not None and parser.kind == kind and not parser.skip_reason:
                found.append(p)
    return sorted(found, key=lambda p: (p.stat().st_size, p.as_posix()))


def kinds() -> list[str]:
    return sorted({p.kind for p in parsers() if not p.skip_reason})


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="kf-fuzz-")
