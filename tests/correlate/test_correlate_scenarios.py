"""Attribution against the ground truth of simulated incidents, loaded as the parsers' frames."""

from __future__ import annotations

import pytest

from fixtures.scenarios.catalog import SCENARIOS
from fixtures.scenarios.model import ROOT_DEPTH

FULL_EVIDENCE = [
    "seed",
    "slow_writes",
    "lock_contention",
    "head_of_line",
    "saturated",
    "replication_waits",
    "unexplained",
    "multi_partition",
    "mixed",
    "skewed",
    "crowded",
]


def attribution(store) -> dict[tuple, dict]:
    rows = store.frame("select * from attribution").to_dicts()
    return {(r["correlation_id"], r["topic"], r["partition"]): r for r in rows}


def truth(sim) -> dict[tuple, dict]:
    return {(t["correlation_id"], t["topic"], t["partition"]): t for t in sim.truth()}


def test_seed_is_attributed_as_the_seed_concludes(correlated):
    store, sim, result = correlated(SCENARIOS["seed"]())
    assert result.audit_failures == {}
    slow = store.frame(
        "select strftime(arrival_at, '%H:%M:%S.%g') as arrival, strftime(end_at, '%H:%M:%S.%g') as ended, "
        "floor(latency_ms)::int as ms, topic, partition, cause, root_cause, link_method, handler_tid, handler_thread, "
        "blocker_tid, blocker_thread, round(commit_latency_ms, 1) as commit_ms, missing "
        "from attribution where slow order by arrival_at"
    ).rows()
    assert slow == [
        (
            "17:58:00.644",
            "17:58:00.770",
            126,
            "topicF",
            6,
            "slow_write",
            "journal_commit",
            "crc",
            4462,
            "data-plane-kafka-request-handler-2",
            None,
            None,
            131.0,
            [],
        ),
        (
            "17:58:00.651",
            "17:58:00.770",
            119,
            "topicF",
            6,
            "monitor_wait",
            "journal_commit",
            "crc",
            4484,
            "data-plane-kafka-request-handler-24",
            4462,
            "data-plane-kafka-request-handler-2",
            131.0,
            [],
        ),
        (
            "17:58:00.655",
            "17:58:00.775",
            119,
            "topicF",
            6,
            "monitor_wait",
            "journal_commit",
            "crc",
            4499,
            "data-plane-kafka-request-handler-39",
            4462,
            "data-plane-kafka-request-handler-2",
            131.0,
            [],
        ),
        (
            "17:58:00.661",
            "17:58:00.776",
            114,
            "topicF",
            6,
            "monitor_wait",
            "journal_commit",
            "crc",
            4467,
            "data-plane-kafka-request-handler-7",
            4462,
            "data-plane-kafka-request-handler-2",
            131.0,
            [],
        ),
    ]
    # The seed's slow write and the fast writes right after it, as the tracer printed them.
    writes = store.frame(
        "select strftime(raw_start_at, '%H:%M:%S.%g') as s, round(latency_ms)::int as ms, tid, bytes "
        "from writes where topic = 'topicF' and partition = 6 and raw_start_at >= '2026-11-20 17:58:00.6' order by raw_start_at"
    ).rows()
    assert writes == [
        ("17:58:00.643", 126, 4462, 498),
        ("17:58:00.770", 0, 4484, 798),
        ("17:58:00.775", 0, 4499, 14410),
        ("17:58:00.776", 0, 4467, 1138),
    ]
    # JFR's previousOwner named TID 4462 only for the first waiter: the hint is not the proof.
    hints = store.frame("select owner_hint_tid from attribution where cause = 'monitor_wait' order by arrival_at")[
        "owner_hint_tid"
    ].to_list()
    assert hints == [4462, 4484, 4499]
    assert store.frame("select count(*) as n from attribution where not slow")["n"][0] == len(sim.requests) - 4


@pytest.mark.parametrize("name", FULL_EVIDENCE)
def test_full_evidence_matches_ground_truth(correlated, name):
    store, sim, result = correlated(SCENARIOS[name]())
    assert result.audit_failures == {}
    got, want = attribution(store), truth(sim)
    assert got.keys() == want.keys()
    mismatches = [
        (k, (want[k]["cause"], want[k]["root_cause"]), (g["cause"], g["root_cause"]))
        for k, g in got.items()
        if (g["cause"], g["root_cause"]) != (want[k]["cause"], want[k]["root_cause"])
    ]
    assert mismatches == []
    slow = [k for k, t in want.items() if t["slow"]]
    assert slow, "a scenario without slow requests proves nothing"
    assert all(got[k]["missing"] == [] for k in slow)
    # the blocker is the thread whose write held the lock, whatever JFR's previousOwner says
    for k in slow:
        if want[k]["cause"] == "monitor_wait" and want[k]["blocker_tid"]:
            assert got[k]["blocker_tid"] == want[k]["blocker_tid"]


def test_every_cause_kind_is_exercised():
    from fixtures.scenarios.model import simulate

    kinds = {t["cause"] for t in simulate(SCENARIOS["mixed"]()).truth() if t["cause"]}
    assert kinds == {"slow_write", "monitor_wait", "head_of_line", "replication_wait", "unexplained"}
    kinds = {t["cause"] for t in simulate(SCENARIOS["saturated"]()).truth() if t["cause"]}
    assert {"queue_wait", "monitor_wait", "slow_write"} <= kinds


@pytest.mark.parametrize(
    ("blank", "method"),
    [
        ("update produce_partitions set batch_crc = null", "producer_seq"),
        ("update produce_partitions set batch_crc = null, producer_id = -1", "message_id"),
        ("update produce_partitions set batch_crc = null, producer_id = -1, message_ids = []", "time_overlap"),
    ],
)
def test_link_methods_from_strongest_to_weakest(correlated, blank, method):
    store, sim, result = correlated(SCENARIOS["seed"](), before=blank)
    assert result.audit_failures == {}
    assert store.frame("select distinct link_method from attribution")["link_method"].to_list() == [method]
    got, want = attribution(store), truth(sim)
    assert {k: (g["cause"], g["root_cause"]) for k, g in got.items()} == {
        k: (t["cause"], t["root_cause"]) for k, t in want.items()
    }


DEGRADED = [
    ("seed", {"jfr"}),
    ("seed", {"segments"}),
    ("seed", {"ebpf"}),
    ("seed", {"journal"}),
    ("mixed", {"segments"}),
    ("mixed", {"jfr"}),
    ("mixed", {"ebpf"}),
    ("mixed", {"journal"}),
    ("mixed", {"jfr", "threaddump"}),
    ("skewed", {"segments"}),
    ("saturated", {"threaddump", "jfr"}),
    ("saturated", {"jfr"}),
    ("midstream", set()),
    ("multi_partition", {"jfr"}),
    ("multi_partition", {"ebpf"}),
    ("crowded", {"jfr"}),
]


@pytest.mark.parametrize(
    ("name", "missing"), DEGRADED, ids=[f"{n}-{'+'.join(sorted(m)) or 'capture'}" for n, m in DEGRADED]
)
def test_missing_evidence_never_gives_a_wrong_confident_answer(correlated, name, missing):
    sc = SCENARIOS[name]()
    sc.missing = set(missing)
    store, sim, result = correlated(sc)
    assert result.audit_failures == {}
    got, want = attribution(store), truth(sim)
    weaker = 0
    for k, g in got.items():
        t = want[k]
        if g["slow"] is None:  # response not captured
            assert g["missing"] == ["response"]
            continue
        assert g["slow"] == t["slow"]
        if not t["slow"]:
            continue
        if (g["cause"], g["root_cause"]) == (t["cause"], t["root_cause"]):
            continue
        weaker += 1
        assert g["missing"], (
            f"{k}: {g['cause']}/{g['root_cause']} instead of {t['cause']}/{t['root_cause']} with nothing missing"
        )
        if g["cause"] == t["cause"]:
            assert ROOT_DEPTH[g["root_cause"]] < ROOT_DEPTH[t["root_cause"]]
        else:
            assert g["cause"] == "unexplained", f"{k}: wrong cause {g['cause']} (truth {t['cause']})"
    assert weaker or missing in ({"segments"},), "removing evidence changed nothing: the test proves nothing"


def test_without_segments_links_fall_back_to_the_time_window(correlated):
    sc = SCENARIOS["seed"]()
    sc.missing = {"segments"}
    store, _, _ = correlated(sc)
    methods = store.frame("select link_method, count(*) as n from attribution group by all order by all").rows()
    assert methods == [("time_overlap", 85)]
    missing = store.frame("select missing from attribution where slow")["missing"].to_list()
    assert missing == [["segments"]] * 4


def test_without_jfr_the_lock_wait_is_a_hint_not_an_answer(correlated):
    sc = SCENARIOS["seed"]()
    sc.missing = {"jfr"}
    store, _, _ = correlated(sc)
    rows = store.frame("select cause, missing, chain from attribution where slow order by arrival_at").rows()
    assert rows[0][0] == "slow_write"
    for cause, missing, chain in rows[1:]:
        assert cause == "unexplained"
        assert missing == ["monitor_waits"]
        assert "TID 4462 wrote topicF-6 for 125.6 ms across it (lock wait likely, not proven)" in chain


def test_tracer_threshold_hides_fast_writes(correlated):
    sc = SCENARIOS["seed"]()
    sc.ebpf_min_us = 10_000  # ext4slower 10: only the slow write is printed
    store, _, result = correlated(sc)
    assert result.audit_failures == {}
    rows = store.frame("select cause, root_cause, missing from attribution where slow order by arrival_at").rows()
    assert rows == [("slow_write", "journal_commit", []), *[("unexplained", "none", ["fs_writes"])] * 3]


def test_clock_offsets_are_estimated_and_recorded(correlated):
    store, _, _ = correlated(SCENARIOS["skewed"]())
    rows = {r["source"]: r for r in store.frame("select * from clock_offsets").to_dicts()}
    assert rows["ebpf"]["method"] == "linked_pairs"
    assert rows["ebpf"]["offset_ms"] == pytest.approx(-37.0, abs=0.2)
    assert rows["ebpf"]["spread_ms"] < 0.5
    assert rows["jfr"]["method"] == "file_write_pairs"
    assert rows["jfr"]["offset_ms"] == pytest.approx(23.0, abs=0.2)
    assert rows["capture"]["offset_ms"] == 0.0


def test_manifest_offsets_are_applied_before_the_estimate(correlated):
    sc = SCENARIOS["seed"]()
    sc.skews_ms = {"ebpf": 40.0}
    store, _, _ = correlated(sc, {"clock_offset_ms.ebpf": -40.0})
    row = store.frame(
        "select manifest_offset_ms, estimated_ms, offset_ms from clock_offsets where source = 'ebpf'"
    ).row(0)
    assert row[0] == -40.0
    assert abs(row[1]) < 0.5 and row[2] == pytest.approx(-40.0, abs=0.5)


def test_without_ebpf_jfr_file_writes_still_prove_the_slow_write(correlated):
    sc = SCENARIOS["seed"]()
    sc.missing = {"ebpf"}
    store, _, result = correlated(sc)
    assert result.audit_failures == {}
    rows = store.frame(
        "select cause, root_cause, link_method, write_tid, missing from attribution where slow order by arrival_at"
    ).rows()
    assert rows[0] == ("slow_write", "slow_write", "time_overlap", 4462, ["journal_commits"])
    assert rows[1:] == [("unexplained", "none", None, None, ["fs_writes"])] * 3
    chain = store.frame("select chain from attribution where slow order by arrival_at")["chain"].to_list()
    assert (
        chain[0] == "own write took 125.6 ms (TID 4462, data-plane-kafka-request-handler-2) [missing: journal_commits]"
    )


def _seed_with_offcpu_instead_of_commits(correlated, stack: list[str]):
    """The seed with its journal lines replaced by one off-CPU spell of the slow writer inside
    write(), as the collection kit records it where kprobes are unavailable."""
    frames = ", ".join(f"'{f}'" for f in stack)
    before = f"""
        insert into kernel_calls (artifact_id, position, func, start_at, end_at, latency_ms, tid, comm, stack)
        select w.artifact_id, 999999, 'offcpu_write', w.start_at + interval 1 millisecond,
               w.end_at - interval 1 millisecond, w.latency_ms - 2, w.tid, w.comm, [{frames}]
        from fs_writes w where w.tid = 4462 and w.latency_ms > 100;
        delete from kernel_calls where func <> 'offcpu_write';
    """
    store, _, result = correlated(SCENARIOS["seed"](), before=before)
    assert result.audit_failures == {}
    return store.frame("select cause, root_cause from attribution where slow order by arrival_at").rows()


def test_offcpu_stack_in_the_journal_proves_the_commit(correlated):
    stack = ["schedule", "wait_transaction_locked", "start_this_handle", "jbd2__journal_start", "ext4_dirty_inode"]
    rows = _seed_with_offcpu_instead_of_commits(correlated, stack)
    assert rows == [("slow_write", "journal_commit")] + [("monitor_wait", "journal_commit")] * 3


def test_offcpu_stack_elsewhere_proves_no_commit(correlated):
    rows = _seed_with_offcpu_instead_of_commits(correlated, ["schedule", "io_schedule", "folio_wait_bit_common"])
    assert rows == [("slow_write", "slow_write")] + [("monitor_wait", "slow_write")] * 3
