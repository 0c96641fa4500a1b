"""The package installs from a wheel with its SQL stages as package data."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline import sql_dir

REPO = Path(__file__).resolve().parents[2]


def test_sql_dir_in_a_checkout_is_the_repository_folder():
    assert sql_dir() == REPO / "sql"


@pytest.mark.slow
def test_wheel_ships_every_sql_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("kafka_forensics-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"pipeline/sql/{p.relative_to(REPO / 'sql').as_posix()}" for p in (REPO / "sql").rglob("*.sql")}
    assert len(expected) >= 20 and expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert "pipeline/cli.py" in names
