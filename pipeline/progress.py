"""Progress bars on stderr (rich): bytes and rows per second, silent when not a terminal."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress

stderr_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class Progress:
    """A thin wrapper so parsers report bytes and the runner reports rows."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._p = RichProgress(
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[rows]:>10,} rows"),
            TimeRemainingColumn(),
            console=stderr_console,
            disable=not self.enabled,
            transient=True,
        )

    def __enter__(self) -> Progress:
        self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.stop()

    def start(self, name: str, total_bytes: int) -> TaskID:
        label = name if len(name) <= 40 else "…" + name[-39:]
        return self._p.add_task(label, total=total_bytes or None, rows=0)

    def update(self, task: TaskID, bytes_done: int) -> None:
        self._p.update(task, completed=bytes_done)

    def rows(self, task: TaskID, rows: int) -> None:
        self._p.update(task, rows=rows)

    def finish(self, task: TaskID) -> None:
        self._p.remove_task(task)
