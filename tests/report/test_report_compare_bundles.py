"""compare on two generated bundles that went through the whole pipeline: a broker with
journal-commit stalls against the same broker without them, as the seed's before/after."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fixtures.scenarios.bundle import write_bundle
from fixtures.scenarios.catalog import SCENARIOS
from fixtures.scenarios.model import simulate
from pipeline.cli import cli


@pytest.mark.slow
def test_compare_stalled_and_clean_brokers_end_to_end(tmp_path):
    truth = {}
    for name in ("journal_stalls", "clean"):
        sim = simulate(SCENARIOS[name]())
        write_bundle(sim, tmp_path / f"bundle-{name}")
        truth[name] = [t for t in sim.truth() if t["slow"]]
        result = CliRunner().invoke(
            cli, ["-q", "run", str(tmp_path / f"bundle-{name}"), "-o", str(tmp_path / name), "-j", "1"]
        )
        assert result.exit_code == 0, result.output
    assert len(truth["journal_stalls"]) >= 20 and truth["clean"] == []

    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "compare",
            str(tmp_path / "journal_stalls"),
            str(tmp_path / "clean"),
            "-l",
            "ext4-ordered",
            "-l",
            "xfs",
            "-o",
            str(tmp_path / "cmp"),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {r["label"]: r for r in json.loads(result.output[result.output.index("[") :])}
    before, after = rows["ext4-ordered"], rows["xfs"]
    assert before["slow"] == len(truth["journal_stalls"]) and after["slow"] == 0
    assert after["slow_change_pct"] == -100.0
    assert before["p999_ms"] > 65 > after["p999_ms"]
    assert (tmp_path / "cmp" / "compare.html").stat().st_size > 10_000
