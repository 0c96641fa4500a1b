"""kafka-forensics: explain Kafka produce tail latency from a broker's artifact bundle."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def sql_dir() -> Path:
    """The correlation SQL folder: ``pipeline/sql`` in a wheel, the repository's ``sql/``
    in a source checkout or an editable install."""
    installed = Path(__file__).parent / "sql"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "sql"
