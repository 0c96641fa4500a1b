"""`kforensics correlate` and `kforensics explain` on a database loaded with a scenario's frames."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from fixtures.scenarios.catalog import SCENARIOS
from fixtures.scenarios.frames import build_frames, load_into
from fixtures.scenarios.model import simulate
from pipeline.cli import cli
from pipeline.store import Store


def loaded(tmp_path: Path, name: str = "seed") -> Path:
    out = tmp_path / "out"
    with Store(out) as store:
        load_into(store.con, build_frames(simulate(SCENARIOS[name]())))
    return out


def test_correlate_prints_the_breakdown_and_the_seed_conclusion(tmp_path):
    out = loaded(tmp_path)
    res = CliRunner().invoke(cli, ["-q", "correlate", str(out)])
    assert res.exit_code == 0, res.output
    assert "85 produce requests x partitions, 4 slower than 65 ms" in res.output
    lines = [ln.strip() for ln in res.output.splitlines() if ln.strip().startswith("17:58:00.6")]
    assert [ln.split("  ")[0] for ln in lines] == ["17:58:00.644", "17:58:00.651", "17:58:00.655", "17:58:00.661"]
    assert "slow_write / journal_commit: own write took 125.6 ms (TID 4462" in lines[0]
    for ln in lines[1:]:
        assert (
            "monitor_wait / journal_commit" in ln
            and "while TID 4462 (data-plane-kafka-request-handler-2) wrote it" in ln
        )
    assert "TID 4484 (data-plane-kafka-request-handler-24)" in lines[1]


def test_correlate_is_rerunnable_with_another_slo(tmp_path):
    out = loaded(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["-q", "correlate", str(out)]).exit_code == 0
    res = runner.invoke(cli, ["-q", "correlate", str(out), "--slo-ms", "120"])
    assert res.exit_code == 0, res.output
    assert "1 slower than 120 ms" in res.output


def test_correlate_needs_a_database(tmp_path):
    res = CliRunner().invoke(cli, ["correlate", str(tmp_path / "none")])
    assert res.exit_code == 2
    assert "no incident.duckdb" in res.output


def test_explain_draws_the_timeline(tmp_path):
    out = loaded(tmp_path)
    runner = CliRunner()
    runner.invoke(cli, ["-q", "correlate", str(out)])
    corr = Store(out, read_only=True)
    try:
        cid = corr.con.execute("select correlation_id from attribution where handler_tid = 4484 and slow").fetchone()[0]
        starts = dict(
            corr.con.execute(
                "select tid, strftime(start_at, '%H:%M:%S.%f') from writes where tid in (4462, 4484) and latency_ms > 0.01 "
                "and start_at between '2026-11-20 17:58:00.64' and '2026-11-20 17:58:00.771'"
            ).fetchall()
        )
    finally:
        corr.close()
    res = runner.invoke(cli, ["explain", str(out), str(cid)])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "cause: monitor_wait   root cause: journal_commit   write link: crc" in text
    rows = {ln.split("  ")[0].strip(): ln for ln in text.splitlines() if "ms" in ln and ("[" in ln or "|" in ln)}
    assert "17:58:00.651600" in rows["request"] and "119.0 ms" in rows["request"]
    assert starts[4462] in rows["TID 4462 write (blocker)"] and "125.6 ms" in rows["TID 4462 write (blocker)"]
    assert "118.1 ms" in rows["TID 4484 monitor wait"]
    assert "131.0 ms  jbd2_journal_commit_transaction" in rows["journal commit"]
    assert starts[4484] in rows["TID 4484 write (own)"]
    assert "4484 = data-plane-kafka-request-handler-24" in text
    bad = runner.invoke(cli, ["explain", str(out), "nonsense"])
    assert bad.exit_code == 2


def test_explain_head_of_line_and_queue_wait(correlated):
    from pipeline.explain import explain, find_requests

    store, _, _ = correlated(SCENARIOS["head_of_line"]())
    pp, pred = store.con.execute(
        "select pp_id, pred_correlation_id from attribution where cause = 'head_of_line' and root_cause = 'journal_commit' "
        "order by arrival_at limit 1"
    ).fetchone()
    text = explain(store.con, pp)
    assert f"request ahead ({pred})" in text and "journal commit" in text
    assert "waited" in text and "behind request" in text

    store, _, _ = correlated(SCENARIOS["saturated"]())
    pp, root = store.con.execute(
        "select a.pp_id, r.correlation_id from attribution a join attribution r on r.pp_id = a.root_pp_id "
        "where a.cause = 'queue_wait' order by a.arrival_at limit 1"
    ).fetchone()
    text = explain(store.con, pp)
    assert f"root request ({root})" in text
    assert "queued" in text and "all 4 request handler threads were busy" in text
    assert find_requests(store.con, f"#{pp}", None, None) == [pp]
