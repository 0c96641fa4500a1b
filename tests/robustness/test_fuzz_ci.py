"""A short coverage-guided fuzzing budget per parser, as CI runs it (``make fuzz`` runs longer)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.harness import CORPUS, kinds

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("atheris") is None, reason="atheris not installed (make fuzz installs it)"
    ),
]


@pytest.mark.parametrize("kind", kinds())
def test_short_fuzz_budget_runs_clean(kind, tmp_path):
    env = dict(os.environ, KFORENSICS_CORPUS=str(CORPUS))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "fuzz" / "fuzz_parser.py"),
            kind,
            "-runs=150",
            "-max_total_time=8",
            "-timeout=20",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"Done \d+ runs", out), out[-3000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
