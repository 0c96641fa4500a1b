-- audit: every slow request has exactly one known cause and root cause and a chain; others none
SELECT 'slow without cause' AS problem, pp_id, cause, root_cause
FROM attribution
WHERE slow AND (cause IS NULL OR root_cause IS NULL OR chain IS NULL)
UNION ALL
SELECT 'cause on a request that is not slow', pp_id, cause, root_cause
FROM attribution
WHERE NOT coalesce(slow, false) AND (cause IS NOT NULL OR root_cause IS NOT NULL)
UNION ALL
SELECT 'unknown cause', pp_id, cause, root_cause
FROM attribution
WHERE cause NOT IN ('slow_write', 'monitor_wait', 'head_of_line', 'queue_wait', 'replication_wait', 'unexplained')
    OR root_cause NOT IN ('journal_commit', 'slow_write', 'none')
UNION ALL
SELECT 'slow latency_ms inconsistent with slow flag', a.pp_id, a.cause, a.root_cause
FROM attribution a CROSS JOIN settings s
WHERE a.slow IS DISTINCT FROM (a.latency_ms >= s.slo_ms);
