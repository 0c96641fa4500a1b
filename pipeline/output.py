"""Rendering frames for people (aligned rich tables) and for scripts (CSV, JSON)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json")

stdout_console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _cell(v: Any) -> str:
    if v is None:
        return "∅"
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ", timespec="microseconds")
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return str(v)


def rich_table(frame: pl.DataFrame, title: str | None = None, max_rows: int | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    numeric = {n for n, t in frame.schema.items() if t.is_numeric()}
    for name in frame.columns:
        table.add_column(name, justify="right" if name in numeric else "left", overflow="fold")
    rows = frame.rows() if max_rows is None else frame.head(max_rows).rows()
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    if max_rows is not None and frame.height > max_rows:
        table.caption = f"{max_rows} of {frame.height} rows shown"
    return table


def _jsonable(v: Any) -> Any:
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def emit(frame: pl.DataFrame, fmt: str = "table", title: str | None = None) -> None:
    """Write a frame to stdout in the chosen format."""
    if fmt == "csv":
        flat = frame.with_columns(
            [pl.col(n).cast(pl.List(pl.Utf8)).list.join(";") for n, t in frame.schema.items() if isinstance(t, pl.List)]
        )
        sys.stdout.write(flat.write_csv())
    elif fmt == "json":
        rows = [{k: _jsonable(v) for k, v in r.items()} for r in frame.iter_rows(named=True)]
        sys.stdout.write(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    else:
        stdout_console.print(rich_table(frame, title))
