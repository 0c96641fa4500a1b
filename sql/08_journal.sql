-- stage:   08_journal
-- purpose: Journal activity on the capture's clock: jbd2 commits (jbd2_journal_commit_transaction,
--          and fast commits jbd2_fc_begin_commit / ext4_fc_commit), XFS log writes
--          (xfs_log_iclog_write), and the per-thread waits for them: ext4_dirty_inode calls, and
--          off-CPU spells inside write() whose kernel stack is in the journal (where kprobes are
--          unavailable). The kernel log shares the eBPF clock and offset.
-- grain:   one row per traced journal call (journal_id)
-- reads:   kernel_calls, clock_offsets
-- creates: journal
CREATE OR REPLACE TABLE journal AS
WITH o AS (SELECT to_microseconds(round(offset_ms * 1000)::BIGINT) AS shift FROM clock_offsets WHERE source = 'journal'),
k AS (
    SELECT
        *,
        coalesce(start_at, end_at - to_microseconds(round(latency_ms * 1000)::BIGINT)) AS start_raw,
        coalesce(end_at, start_at + to_microseconds(round(latency_ms * 1000)::BIGINT)) AS end_raw
    FROM kernel_calls
    WHERE func IN (
            'jbd2_journal_commit_transaction', 'jbd2_fc_begin_commit', 'ext4_fc_commit', 'xfs_log_iclog_write',
            'ext4_dirty_inode'
        )
        OR (
            func = 'offcpu_write'
            AND list_has_any(
                stack, ['ext4_dirty_inode', 'jbd2_fc_begin_commit', 'start_this_handle', 'wait_transaction_locked',
                        'jbd2_log_wait_commit', 'jbd2__journal_start']
            )
        )
)
SELECT
    row_number() OVER (ORDER BY k.start_raw, k.artifact_id, k.position) AS journal_id,
    k.func,
    CASE WHEN k.func IN ('ext4_dirty_inode', 'offcpu_write') THEN 'dirty_inode' ELSE 'commit' END AS kind,
    k.tid,
    k.start_raw + o.shift AS start_at,
    k.end_raw + o.shift AS end_at,
    coalesce(k.latency_ms, (epoch_us(k.end_raw) - epoch_us(k.start_raw)) / 1000.0) AS latency_ms
FROM k CROSS JOIN o;
