"""report.html and compare.html looked at in headless Chromium.

Each page is loaded twice: once to dump the DOM after the load event (the page's own
check records on <body> how many charts decoded and drew non-blank pixels) while the
console goes to stderr, once to take a full-page screenshot. The screenshots are kept in
test-artifacts/ at the repository root for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.report.conftest import ARTIFACTS, colours

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

pytestmark = [
    pytest.mark.needs_tool,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]


def chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="kf-chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def look_at(page: Path, png: Path | None) -> dict:
    """Load the page: console lines, chart counts from the DOM, and a full-page screenshot."""
    url = page.resolve().as_uri()
    dom = chromium(
        "--window-size=1280,900", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", url
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, "no <body> in the dumped DOM"
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    if png is not None:
        height = int(attrs.get("height", "2000"))
        shot = chromium(f"--window-size=1280,{min(height + 40, 16000)}", f"--screenshot={png}", url)
        assert shot.returncode == 0, shot.stderr[-2000:]
    return {"charts": int(attrs.get("charts", -1)), "ok": int(attrs.get("charts-ok", -1)), "console": console}


def assert_screenshot_shows_a_page(png: Path) -> None:
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[1] == 1280 and pixels.shape[0] > 1500
    assert colours(pixels[::2, ::2]) > 200  # text and charts, not a blank page
    inked = np.flatnonzero((pixels.min(axis=2) < 200).any(axis=1))
    assert inked.max() > 0.9 * pixels.shape[0]  # the whole page was drawn, down to the footer


def test_report_renders_in_chromium(stall_report):
    ARTIFACTS.mkdir(exist_ok=True)
    path, rep = stall_report
    seen = look_at(path, ARTIFACTS / "report.png")
    assert seen["console"] == []
    assert seen["charts"] == len(rep.charts) == 6
    assert seen["ok"] == 6
    assert_screenshot_shows_a_page(ARTIFACTS / "report.png")


def test_compare_renders_in_chromium(comparison):
    ARTIFACTS.mkdir(exist_ok=True)
    path, comp = comparison
    seen = look_at(path, ARTIFACTS / "compare.png")
    assert seen["console"] == []
    assert seen["charts"] == len(comp.charts) == 3
    assert seen["ok"] == 3
    assert_screenshot_shows_a_page(ARTIFACTS / "compare.png")


def test_the_check_catches_a_broken_chart_and_a_network_fetch(stall_report, tmp_path):
    """The same check on a damaged page fails: it would notice a real breakage."""
    page = stall_report[1].html
    first = page.index('src="data:image/png;base64,') + len('src="data:image/png;base64,')
    broken = page[:first] + "AAAA" + page[first + 4 :]  # corrupt the first chart's PNG signature
    broken = broken.replace("</body>", '<img src="https://example.invalid/x.png"></body>')
    bad = tmp_path / "broken.html"
    bad.write_text(broken)
    seen = look_at(bad, None)
    assert seen["ok"] == seen["charts"] - 1 == 5
    assert any("chart failed to render: causes" in line for line in seen["console"])
    assert any("Content Security Policy" in line for line in seen["console"])
