-- stage:   13_request_waits
-- purpose: Monitor waits of the handler threads that served slow requests. A handler waits for
--          a partition's log lock and then writes that partition's batch, so a wait belongs to the
--          request of its thread's next write (ASOF), and the lock is that write's partition (a
--          request to several partitions takes their locks in turn); the wait must start after
--          the request arrived. The blocker is the thread that wrote that
--          partition across the wait (the write overlapping the wait most). JFR's previousOwner
--          is kept as a hint only (it is the last releaser). The blocker's write explains the
--          wait when the overlap covers explain_fraction of it; its root is then journal_commit
--          (proven commit under that write) or slow_write.
-- grain:   one row per slow produce request (conn_id, correlation_id) x handler wait (wait_id)
-- reads:   request_writes, produce, waits, writes, write_commits, threads, settings, clock_offsets
-- creates: request_waits
CREATE OR REPLACE TABLE request_waits AS
WITH s AS (
    SELECT *, to_microseconds(round((slack_ms + coalesce((SELECT max(spread_ms) FROM clock_offsets WHERE source IN ('ebpf', 'jfr')), 0)) * 1000)::BIGINT) AS slack
    FROM settings
),
req AS (
    SELECT p.conn_id, p.correlation_id, min(p.arrival_at) AS arrival_at, max(p.end_at) AS end_at
    FROM produce p
    WHERE p.slow
    GROUP BY p.conn_id, p.correlation_id
),
-- a handler waits for a partition's lock and then writes that partition's batch: each wait
-- belongs to the request of the thread's next write (ASOF), whose partition is the lock's
next_write AS (
    SELECT w.*, nw.write_id AS next_write_id, nw.topic, nw.partition
    FROM (SELECT waits.*, waits.end_at - s.slack AS after_at FROM waits CROSS JOIN s) w
    ASOF JOIN writes nw ON w.tid = nw.tid AND w.after_at <= nw.start_at
),
own_wait AS (
    SELECT
        r.conn_id, r.correlation_id, w.tid, r.arrival_at, r.end_at,
        w.wait_id, w.start_at AS wait_start_at, w.end_at AS wait_end_at, w.owner_hint_tid, w.monitor_address,
        greatest(0, (epoch_us(least(w.end_at, coalesce(r.end_at, w.end_at))) - epoch_us(greatest(w.start_at, r.arrival_at))) / 1000.0) AS wait_ms,
        w.topic, w.partition
    FROM next_write w
    JOIN request_writes rw ON rw.write_id = w.next_write_id
    JOIN produce p ON p.pp_id = rw.pp_id
    JOIN req r ON r.conn_id = p.conn_id AND r.correlation_id = p.correlation_id
    CROSS JOIN s
    WHERE w.start_at >= r.arrival_at - s.slack
),
blockers AS (
    SELECT
        o.conn_id,
        o.correlation_id,
        o.wait_id,
        w.write_id AS blocker_write_id,
        w.tid AS blocker_tid,
        w.latency_ms AS blocker_write_latency_ms,
        w.start_at AS blocker_write_start_at,
        w.end_at AS blocker_write_end_at,
        (epoch_us(least(w.end_at, o.wait_end_at)) - epoch_us(greatest(w.start_at, o.wait_start_at))) / 1000.0 AS blocker_overlap_ms
    FROM own_wait o
    JOIN writes w
        ON w.topic = o.topic AND w.partition = o.partition AND w.tid <> o.tid
        AND w.start_at < o.wait_end_at AND w.end_at > o.wait_start_at
    CROSS JOIN s
    WHERE w.latency_ms >= s.min_write_ms
    QUALIFY row_number() OVER (PARTITION BY o.conn_id, o.correlation_id, o.wait_id ORDER BY blocker_overlap_ms DESC, w.write_id) = 1
)
SELECT
    o.conn_id,
    o.correlation_id,
    o.wait_id,
    o.tid AS handler_tid,
    o.wait_start_at,
    o.wait_end_at,
    o.wait_ms,
    o.monitor_address,
    o.owner_hint_tid,
    o.topic AS lock_topic,
    o.partition AS lock_partition,
    b.blocker_write_id,
    b.blocker_tid,
    bt.name AS blocker_thread,
    b.blocker_write_start_at,
    b.blocker_write_end_at,
    b.blocker_write_latency_ms,
    b.blocker_overlap_ms,
    CASE
        WHEN b.blocker_overlap_ms IS NULL OR b.blocker_overlap_ms < s.explain_fraction * (epoch_us(o.wait_end_at) - epoch_us(o.wait_start_at)) / 1000.0 THEN 'none'
        WHEN coalesce(wc.proven, false) THEN 'journal_commit'
        ELSE 'slow_write'
    END AS blocker_root,
    wc.commit_start_at,
    wc.commit_latency_ms
FROM own_wait o
LEFT JOIN blockers b USING (conn_id, correlation_id, wait_id)
LEFT JOIN threads bt ON bt.tid = b.blocker_tid
LEFT JOIN write_commits wc ON wc.write_id = b.blocker_write_id AND wc.proven
CROSS JOIN s;
