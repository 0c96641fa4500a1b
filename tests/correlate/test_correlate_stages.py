"""The stage files themselves: headers, order, settings without templating, stage_runs, audits."""

from __future__ import annotations

import re

import pytest

from fixtures.scenarios.catalog import SCENARIOS
from pipeline.correlate import audit_files, run_audits, stage_files
from pipeline.tables import TABLES

HEADER_KEYS = ("stage", "purpose", "grain", "reads", "creates")


def header(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = re.match(r"^--\s*(\w+):\s*(.*)$", line)
        if m and m.group(1) in HEADER_KEYS:
            key = m.group(1)
            out[key] = m.group(2).strip()
        elif key:
            out[key] += " " + line.lstrip("- ").strip()
    return out


def test_every_stage_has_a_header_and_reads_only_earlier_outputs():
    files = stage_files()
    assert [f.name[:2] for f in files] == [f"{i:02d}" for i in range(1, len(files) + 1)]
    created: set[str] = {"run_settings", "segment_records", *TABLES}
    for f in files:
        h = header(f.read_text())
        assert set(HEADER_KEYS) <= h.keys(), f"{f.name}: header lacks {set(HEADER_KEYS) - h.keys()}"
        assert h["stage"] == f.name.removesuffix(".sql")
        reads = {r.strip() for r in h["reads"].split(",")}
        assert reads <= created, f"{f.name} reads {reads - created} before any stage creates it"
        target = h["creates"].split()[0]
        body = f.read_text()
        assert re.search(rf"CREATE OR REPLACE (TABLE|VIEW) {target} AS", body), f.name
        assert not re.search(r"\{\{|\{[A-Za-z_]\w*\}|\$\{|%\([a-z_]+\)s", body), f"{f.name}: looks templated"
        created.add(target)


def test_stage_runs_are_recorded_and_settings_come_from_a_table(correlated):
    store, sim, result = correlated(SCENARIOS["seed"](), {"slo_ms": 120.0})
    runs = store.frame("select stage, creates, rows from stage_runs order by stage").rows()
    assert [r[0] for r in runs] == [f.name.removesuffix(".sql") for f in stage_files()]
    assert dict((r[1], r[2]) for r in runs)["attribution"] == len(sim.requests)
    assert store.frame("select slo_ms from settings")["slo_ms"][0] == 120.0
    # at a 120 ms SLO only the 126 ms request is slow
    assert store.frame("select count(*) as n from attribution where slow")["n"][0] == 1
    # re-running with the stored settings gives the same answer
    from pipeline.correlate import correlate

    again = correlate(store.con)
    assert again.audit_failures == {}
    assert store.frame("select count(*) as n from attribution where slow")["n"][0] == 1


@pytest.mark.parametrize(
    ("breakage", "audit"),
    [
        ("insert into attribution select * from attribution limit 1", "attribution_grain"),
        ("update attribution set cause = null where slow", "slow_has_one_cause"),
        ("update attribution set cause = 'slow_write' where not slow", "slow_has_one_cause"),
        ("update attribution set topic = null where pp_id = 1", "attribution_keys_not_null"),
        ("delete from writes where write_id in (select write_id from request_writes limit 1)", "links_exist"),
    ],
)
def test_audits_catch_broken_results(correlated, breakage, audit):
    store, _, result = correlated(SCENARIOS["seed"]())
    assert result.audit_failures == {}
    assert {f.name.removesuffix(".sql") for f in audit_files()} >= {audit}
    store.con.execute(breakage)
    assert audit in run_audits(store.con)
