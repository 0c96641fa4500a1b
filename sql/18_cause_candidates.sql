-- stage:   18_cause_candidates
-- purpose: Every explanation the evidence supports for each slow request, with how much of its
--          latency it accounts for (explained_ms, clipped to the latency) and its root cause
--          (head_of_line roots are resolved in attribution, through the request ahead).
--          Adding a cause = adding one branch with these columns.
-- grain:   one row per slow produce partition x candidate cause
-- reads:   produce, request_writes, write_commits, request_waits, head_of_line, queue_waits,
--          replication_waits
-- creates: cause_candidates
CREATE OR REPLACE TABLE cause_candidates AS
WITH slow AS (SELECT pp_id, latency_ms FROM produce WHERE slow)
SELECT s.pp_id, 'slow_write' AS cause, 1 AS preference,
    least(rw.write_latency_ms, s.latency_ms) AS explained_ms,
    CASE WHEN coalesce(wc.proven, false) THEN 'journal_commit' ELSE 'slow_write' END AS root_cause
FROM slow s JOIN request_writes rw USING (pp_id) LEFT JOIN write_commits wc ON wc.write_id = rw.write_id
UNION ALL
SELECT s.pp_id, 'monitor_wait', 2, least(rq.wait_ms, s.latency_ms), rq.blocker_root
FROM slow s JOIN request_waits rq USING (pp_id)
UNION ALL
SELECT s.pp_id, 'head_of_line', 3, least(h.hol_ms, s.latency_ms), NULL
FROM slow s JOIN head_of_line h USING (pp_id)
UNION ALL
SELECT s.pp_id, 'queue_wait', 4, least(q.queue_ms, s.latency_ms), q.root_cause
FROM slow s JOIN queue_waits q USING (pp_id)
WHERE q.all_busy
UNION ALL
SELECT s.pp_id, 'replication_wait', 5, least(r.repl_ms, s.latency_ms), 'none'
FROM slow s JOIN replication_waits r USING (pp_id);
