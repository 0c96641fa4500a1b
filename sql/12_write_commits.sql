-- stage:   12_write_commits
-- purpose: For each write long enough to matter, the journal commit it overlapped most. The
--          commit is proven as the write's root cause when the overlap covers at least
--          commit_fraction of the write, or when an ext4_dirty_inode call on the same thread
--          inside the write blocked for that share of it (the call waits for the commit).
-- grain:   one row per write with an overlapping commit or dirty_inode (write_id)
-- reads:   writes, journal, settings
-- creates: write_commits
CREATE OR REPLACE TABLE write_commits AS
WITH s AS (SELECT * FROM settings),
slow_w AS (
    SELECT w.* FROM writes w, s WHERE w.latency_ms >= s.min_write_ms
),
commits AS (SELECT * FROM journal WHERE kind = 'commit'),
by_commit AS (
    SELECT
        w.write_id,
        c.journal_id,
        c.func,
        c.start_at AS commit_start_at,
        c.end_at AS commit_end_at,
        c.latency_ms AS commit_latency_ms,
        (epoch_us(least(w.end_at, c.end_at)) - epoch_us(greatest(w.start_at, c.start_at))) / 1000.0 AS overlap_ms,
        w.latency_ms AS write_latency_ms
    FROM slow_w w
    JOIN commits c ON c.start_at < w.end_at AND c.end_at > w.start_at
    QUALIFY row_number() OVER (PARTITION BY w.write_id ORDER BY overlap_ms DESC, c.journal_id) = 1
),
by_inode AS (
    SELECT
        w.write_id,
        max((epoch_us(least(w.end_at, d.end_at)) - epoch_us(greatest(w.start_at, d.start_at))) / 1000.0) AS dirty_inode_ms
    FROM slow_w w
    JOIN journal d ON d.kind = 'dirty_inode' AND d.tid = w.tid AND d.start_at < w.end_at AND d.end_at > w.start_at
    GROUP BY w.write_id
)
SELECT
    coalesce(c.write_id, i.write_id) AS write_id,
    c.journal_id,
    c.func,
    c.commit_start_at,
    c.commit_end_at,
    c.commit_latency_ms,
    coalesce(c.overlap_ms, 0) AS overlap_ms,
    i.dirty_inode_ms,
    coalesce(c.overlap_ms >= s.commit_fraction * c.write_latency_ms, false)
        OR coalesce(i.dirty_inode_ms >= s.commit_fraction * w.latency_ms, false) AS proven
FROM by_commit c
FULL JOIN by_inode i ON i.write_id = c.write_id
JOIN writes w ON w.write_id = coalesce(c.write_id, i.write_id)
CROSS JOIN s;
