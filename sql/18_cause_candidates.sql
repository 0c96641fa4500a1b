-- stage:   18_cause_candidates
-- purpose: Every explanation the evidence supports for each slow request, with how much of its
--          latency it accounts for (explained_ms, clipped to the latency), its root cause
--          (head_of_line roots are resolved in attribution, through the request ahead) and the
--          evidence at the bottom (culprit_write_id, wait_id). A produce request is answered once
--          for all its partitions, so writes and waits count for the whole request: its slowest
--          write, its longest wait. Adding a cause = adding one branch with these columns.
-- grain:   one row per slow produce partition x candidate cause
-- reads:   produce, request_writes, write_commits, request_waits, head_of_line, queue_waits,
--          replication_waits
-- creates: cause_candidates
CREATE OR REPLACE TABLE cause_candidates AS
WITH slow AS (SELECT pp_id, conn_id, correlation_id, latency_ms FROM produce WHERE slow),
longest_write AS (
    SELECT p.conn_id, p.correlation_id,
        arg_max(rw.write_id, rw.write_latency_ms) AS write_id, max(rw.write_latency_ms) AS write_ms
    FROM produce p JOIN request_writes rw USING (pp_id)
    WHERE p.slow
    GROUP BY p.conn_id, p.correlation_id
),
longest_wait AS (
    SELECT conn_id, correlation_id, arg_max(wait_id, wait_ms) AS wait_id, max(wait_ms) AS wait_ms
    FROM request_waits
    GROUP BY conn_id, correlation_id
)
SELECT s.pp_id, 'slow_write' AS cause, 1 AS preference,
    least(lw.write_ms, s.latency_ms) AS explained_ms,
    CASE WHEN coalesce(wc.proven, false) THEN 'journal_commit' ELSE 'slow_write' END AS root_cause,
    lw.write_id AS culprit_write_id, NULL::BIGINT AS wait_id
FROM slow s
JOIN longest_write lw USING (conn_id, correlation_id)
LEFT JOIN write_commits wc ON wc.write_id = lw.write_id
UNION ALL
SELECT s.pp_id, 'monitor_wait', 2, least(lw.wait_ms, s.latency_ms), rq.blocker_root, rq.blocker_write_id, lw.wait_id
FROM slow s
JOIN longest_wait lw USING (conn_id, correlation_id)
JOIN request_waits rq ON rq.conn_id = lw.conn_id AND rq.correlation_id = lw.correlation_id AND rq.wait_id = lw.wait_id
UNION ALL
SELECT s.pp_id, 'head_of_line', 3, least(h.hol_ms, s.latency_ms), NULL, NULL, NULL
FROM slow s JOIN head_of_line h USING (pp_id)
UNION ALL
SELECT s.pp_id, 'queue_wait', 4, least(q.queue_ms, s.latency_ms), q.root_cause, NULL, NULL
FROM slow s JOIN queue_waits q USING (conn_id, correlation_id)
WHERE q.all_busy
UNION ALL
SELECT s.pp_id, 'replication_wait', 5, least(r.repl_ms, s.latency_ms), 'none', NULL, NULL
FROM slow s JOIN replication_waits r USING (conn_id, correlation_id);
