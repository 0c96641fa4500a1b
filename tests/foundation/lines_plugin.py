"""A tiny line-format parser used by the runner tests (loaded as a plugin in subprocesses)."""

from __future__ import annotations

import time

import polars as pl

from pipeline.registry import Parser, Probe, register
from pipeline.tables import I64, TABLES, declare

MAGIC = b"#kf-test\n"


class LinesParser(Parser):
    """``#kf-test`` then one integer per line; 'crash' raises, 'interrupt' aborts the process."""

    kind = "test-lines"
    tables = ("test_lines",)

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        return probe.head.startswith(MAGIC)

    def parse(self, ctx):
        values, positions = [], []
        with ctx.open_text() as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if lineno == 1:
                    continue
                if line == "crash":
                    yield "test_lines", pl.DataFrame({"position": positions, "value": values})
                    raise RuntimeError(f"boom at line {lineno}")
                if line == "interrupt":
                    raise KeyboardInterrupt
                if line.startswith("sleep"):
                    time.sleep(float(line.split()[1]))
                    continue
                if line == "badframe":
                    yield "test_lines", pl.DataFrame({"position": [lineno]})
                    return
                if not line.isdigit():
                    ctx.error(lineno, "not_a_number", f"line {lineno}: {line!r}", unit="line")
                    continue
                values.append(int(line))
                positions.append(lineno)
        yield "test_lines", pl.DataFrame({"position": positions, "value": values})


TABLE = declare("test_lines", "Test rows.", ("position", I64, "Line."), ("value", I64, "Value."))
TABLES.pop("test_lines")  # declared for tests that install it, not for everyone


def install() -> None:
    TABLES["test_lines"] = TABLE
    register(LinesParser)
