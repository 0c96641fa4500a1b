-- audit: every link points at existing rows, and link tables keep their grain
SELECT 'request_writes: unknown request' AS problem, rw.pp_id AS id FROM request_writes rw
WHERE NOT EXISTS (SELECT 1 FROM produce p WHERE p.pp_id = rw.pp_id)
UNION ALL
SELECT 'request_writes: unknown write', rw.write_id FROM request_writes rw
WHERE NOT EXISTS (SELECT 1 FROM writes w WHERE w.write_id = rw.write_id)
UNION ALL
SELECT 'request_writes: request linked twice', pp_id FROM request_writes GROUP BY pp_id HAVING count(*) > 1
UNION ALL
SELECT 'request_writes: write linked twice', write_id FROM request_writes GROUP BY write_id HAVING count(*) > 1
UNION ALL
SELECT 'request_writes: bad link_method', pp_id FROM request_writes
WHERE link_method NOT IN ('crc', 'producer_seq', 'message_id', 'time_overlap')
UNION ALL
SELECT 'request_waits: unknown wait', rq.wait_id FROM request_waits rq
WHERE NOT EXISTS (SELECT 1 FROM waits w WHERE w.wait_id = rq.wait_id)
UNION ALL
SELECT 'request_waits: unknown blocker write', rq.blocker_write_id FROM request_waits rq
WHERE rq.blocker_write_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM writes w WHERE w.write_id = rq.blocker_write_id)
UNION ALL
SELECT 'request_waits: wait twice for one request', wait_id FROM request_waits
GROUP BY conn_id, correlation_id, wait_id HAVING count(*) > 1
UNION ALL
SELECT 'request_waits: unknown request', rq.wait_id FROM request_waits rq
WHERE NOT EXISTS (SELECT 1 FROM produce p WHERE p.conn_id = rq.conn_id AND p.correlation_id = rq.correlation_id)
UNION ALL
SELECT 'write_commits: unknown commit', wc.journal_id FROM write_commits wc
WHERE wc.journal_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM journal j WHERE j.journal_id = wc.journal_id)
UNION ALL
SELECT 'attribution: unknown write', a.write_id FROM attribution a
WHERE a.write_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM writes w WHERE w.write_id = a.write_id)
UNION ALL
SELECT 'attribution: root request unknown', a.root_pp_id FROM attribution a
WHERE a.root_pp_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM produce p WHERE p.pp_id = a.root_pp_id);
